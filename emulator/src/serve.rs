//! `mcemu serve`: registers the nodes through CUSE, serves them, answers the control socket, and
//! shuts down cleanly on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cuse::channel::{ensure_cuse_loaded, pick_local_major, DevCuse, OpenError};
use cuse::{Device, DeviceInfo, Errno, Session, SessionError, SessionHandle};
use media_graph::{running_kernel_version, Audit, Kind, MediaDevice};
use nix::sys::signal::{SigSet, Signal};
use omap3isp::topology::{NodeRegistrar, SubdevInfo, VideoNodeInfo};
use parking_lot::Mutex;

use crate::breakpoints::{Breakpoints, Stage};
use crate::control::{Control, InstanceStatus, NodeStatus, Status};
use crate::instance::{ErrnoProfile, InstanceState, Lifetime};
use crate::nodes::{Handler, Node};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// What the instances are: a board, or one or more topologies (`--instances` of each).
    pub models: Vec<crate::model::Model>,
    pub control: PathBuf,
    /// None: pick a free local/experimental major; Some(0): a dynamic major per node.
    pub major: Option<u32>,
    pub threads: usize,
    /// Where device nodes appear (devtmpfs), to find free names.
    pub dev_root: PathBuf,
    pub errno_profile: ErrnoProfile,
    pub lifetime: Lifetime,
    /// Where to mount the sysfs-like bind/unbind filesystem, if anywhere.
    pub bus_root: Option<PathBuf>,
    /// Instances plugged in at start.
    pub instances: u32,
    /// Owner, group and permission bits of every device node.
    pub node_access: NodeAccess,
    /// What one client process may hold.
    pub caps: crate::limits::Caps,
}

/// Who may open the device nodes (default root:video 0660, as udev gives V4L2 nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAccess {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl NodeAccess {
    /// From the command line: a user and a group by name or number, the mode in octal. The
    /// default group `video` may be missing (a minimal system): then the nodes are root's.
    pub fn resolve(owner: &str, group: Option<&str>, mode: &str) -> Result<Self, String> {
        use nix::unistd::{Group, User};
        let uid = match owner.parse::<u32>() {
            Ok(n) => n,
            Err(_) => User::from_name(owner)
                .map_err(|e| format!("looking up user {owner:?}: {e}"))?
                .ok_or_else(|| format!("--node-owner: no user named {owner:?}"))?
                .uid
                .as_raw(),
        };
        let gid = match group {
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => Group::from_name(g)
                    .map_err(|e| format!("looking up group {g:?}: {e}"))?
                    .ok_or_else(|| format!("--node-group: no group named {g:?}"))?
                    .gid
                    .as_raw(),
            },
            None => match Group::from_name("video") {
                Ok(Some(g)) => g.gid.as_raw(),
                _ => {
                    tracing::warn!("no group named \"video\": device nodes get group root (--node-group sets one)");
                    0
                }
            },
        };
        let digits = mode.strip_prefix("0o").unwrap_or(mode);
        let mode = u32::from_str_radix(digits, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                format!("--node-mode: {mode:?} is not permission bits in octal (e.g. 0660)")
            })?;
        Ok(Self { uid, gid, mode })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "/dev/cuse is not available (tried `modprobe cuse`): this kernel has no CUSE support.\n\
         Run the daemon inside the VM harness instead, e.g.\n  scripts/vm-run mcemu serve"
    )]
    NoCuse,
    #[error("opening /dev/cuse")]
    Open(#[from] OpenError),
    #[error("registering /dev/{0}")]
    Register(String, #[source] SessionError),
    #[error("control socket")]
    Control(#[from] crate::control::ServerError),
    #[error("no free name for a {0} node under {1}")]
    NoName(&'static str, PathBuf),
    #[error("the kernel registered /dev/{0} but sysfs does not show its device number")]
    NoDevt(String),
    #[error("building the media graph")]
    Graph(#[from] Errno),
    #[error("mounting the bind/unbind filesystem at {0}")]
    BusFs(PathBuf, #[source] std::io::Error),
}

struct NodeEntry {
    name: String,
    kind: &'static str,
    handle: SessionHandle,
    transport: Arc<DevCuse>,
    /// Not a pin: the node (and its media device reference) goes with its channel.
    node: std::sync::Weak<Node>,
    /// The registered bit this node's calls check: the instance's, or (a shared media
    /// device's V4L2 nodes) their driver's.
    state: Arc<InstanceState>,
    /// The driver of a shared media device that registered it.
    driver: Option<String>,
}

/// One driver bound to a shared media device: its own registered bit (its nodes go at its
/// unbind) and its entities.
struct Function {
    driver: String,
    /// Under the legacy lifetime models, the driver's context its nodes live in: dropped at
    /// its unbind.
    context: Option<Arc<crate::nodes::DriverContext>>,
    state: Arc<InstanceState>,
    runtime: Arc<topology::device::Runtime>,
    bound: bool,
}

/// One plugged-in device: its nodes, its media device (the driver's reference, dropped at
/// unplug), its live-object counters and its release log.
struct Instance {
    id: u32,
    state: Arc<InstanceState>,
    nodes: Vec<NodeEntry>,
    media: Option<Arc<MediaDevice>>,
    audit: Arc<Audit>,
    released: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    /// A replug has put a fresh instance in this one's place.
    replaced: bool,
    /// A shared media device's drivers, bound and (for their records) unbound.
    functions: Vec<Function>,
    /// Which of the daemon's models it is (an index into `ServeConfig::models`).
    model: usize,
}

impl Instance {
    fn state_name(&self) -> &'static str {
        if self.released.load(Ordering::SeqCst) {
            "released"
        } else if self.state.is_unplugged() {
            "unplugged"
        } else {
            "registered"
        }
    }
}

/// Released instances whose records the daemon keeps for status and audit.
const RELEASED_HISTORY: usize = 32;

struct Daemon {
    cfg: ServeConfig,
    kernel_version: u32,
    numbers: Mutex<Numbers>,
    instances: Mutex<Vec<Instance>>,
    next_id: std::sync::atomic::AtomicU32,
    /// Per node name prefix, the lowest number that may be free (names are only freed after
    /// an unplug, which resets these).
    name_hints: Mutex<std::collections::HashMap<&'static str, u32>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    started: std::time::Instant,
    breakpoints: Arc<Breakpoints>,
    limits: Arc<crate::limits::Limits>,
    me: std::sync::Weak<Daemon>,
}

impl Daemon {
    fn stamp(&self) -> String {
        format!("{:.3}", self.started.elapsed().as_secs_f64())
    }

    /// Nodes of an unplugged instance that nobody holds close within [`cuse::LINGER`]; until
    /// then their names are taken. The kernel frees a devnode at its last release, so a rebind
    /// right after an unbind reuses the numbers: wait for such nodes (never for nodes a client
    /// still holds open, which keep their numbers as on Linux).
    fn settle_released_nodes(&self) {
        let deadline = std::time::Instant::now() + cuse::LINGER * 5;
        while std::time::Instant::now() < deadline {
            let lingering = self.instances.lock().iter().any(|i| {
                i.state.is_unplugged()
                    && i.nodes
                        .iter()
                        .any(|n| n.handle.open_handles() == 0 && !n.handle.is_closed())
            });
            if !lingering {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Keeps a long-running daemon's memory flat across unplug/replug cycles: node threads
    /// that have ended are joined, and the records of instances that are released, with every
    /// channel closed and no live object left, are dropped beyond the newest
    /// [`RELEASED_HISTORY`] (status and audit show those). Instances that leaked stay listed.
    fn forget_released(&self) {
        let ended: Vec<_> = {
            let mut threads = self.threads.lock();
            let (ended, running) = threads.drain(..).partition(|t| t.is_finished());
            *threads = running;
            ended
        };
        for t in ended {
            let _ = t.join();
        }
        let mut insts = self.instances.lock();
        let done = |i: &Instance| {
            i.released.load(Ordering::SeqCst)
                && i.nodes.iter().all(|n| n.handle.is_closed())
                && i.audit.snapshot().iter().all(|(_, n)| *n == 0)
        };
        let mut excess = insts
            .iter()
            .filter(|i| done(i))
            .count()
            .saturating_sub(RELEASED_HISTORY);
        insts.retain(|i| {
            if excess > 0 && done(i) {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Probe: a fresh instance of model `model` with its graph, nodes and media device; for a
    /// shared media device, with only `driver` bound (None: all its drivers).
    fn plug(&self, model_index: usize, driver: Option<&str>) -> Result<u32, ServeError> {
        let model = &self.cfg.models[model_index];
        self.settle_released_nodes();
        self.forget_released();
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let state = Arc::new(InstanceState::new(
            id,
            self.cfg.errno_profile,
            self.cfg.lifetime,
        ));
        let audit = Audit::new();
        let drivers: Vec<String> = match (model.shared(), driver) {
            (Some(_), Some(d)) => vec![d.to_string()],
            (Some(t), None) => t.drivers(),
            (None, _) => Vec::new(),
        };
        let mut info = model.media_device_info(self.kernel_version);
        // The Media Device Allocator names the device after the driver that allocates it.
        if let Some(first) = drivers.first() {
            info.driver = first.clone();
        }
        let media = MediaDevice::new(info, audit.clone());
        let released = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        {
            let (released, log, t0) = (released.clone(), log.clone(), self.started);
            media.set_release(move || {
                log.lock().push(format!(
                    "{:.3} media device released",
                    t0.elapsed().as_secs_f64()
                ));
                released.store(true, Ordering::SeqCst);
                tracing::info!(instance = id, "media device released");
            });
        }
        let mut reg = Registrar {
            daemon: self,
            dev: media.clone(),
            state: state.clone(),
            log: log.clone(),
            nodes: Vec::new(),
            runtime: None,
            driver: None,
            context: None,
        };
        let mut functions = Vec::new();
        // Probe and notifier completion: video nodes, links, sensor, sub-device nodes (each
        // driver's, for a shared media device)...
        let built = match model.shared() {
            Some(topo) => drivers.iter().try_for_each(|d| {
                let peer = functions.first().map(|f: &Function| f.runtime.clone());
                functions.push(reg.bind_function(topo, d, peer.as_deref())?);
                Ok(())
            }),
            None => model.build(self.kernel_version, &media, &mut reg),
        }
        .and_then(|_| {
            // ...and the media node last.
            media.register();
            reg.node("media", "media", Handler::Media)
        });
        let nodes = std::mem::take(&mut reg.nodes);
        if let Err(e) = built {
            // Registration failed half way: take down what exists.
            state.unplug();
            for f in &functions {
                f.state.unplug();
            }
            for n in &nodes {
                n.handle.unregister();
            }
            return Err(e);
        }
        log.lock()
            .push(format!("{} registered {} nodes", self.stamp(), nodes.len()));
        tracing::info!(
            instance = id,
            model = %model.name(),
            nodes = nodes.len(),
            "registered"
        );
        self.instances.lock().push(Instance {
            id,
            state,
            nodes,
            media: Some(media),
            audit,
            released,
            log,
            replaced: false,
            functions,
            model: model_index,
        });
        Ok(id)
    }

    /// Unbind: new syscalls get the profile's errnos, nodes leave /dev, each node's channel
    /// closes at its last release, and the media device goes after the last reference.
    fn unplug(&self, id: Option<u32>) -> Result<u32, String> {
        let (state, media, handles, log, fstates) = {
            let mut insts = self.instances.lock();
            let inst = pick(
                &mut insts,
                id,
                |i| !i.state.is_unplugged(),
                || "no registered instance to unplug".into(),
            )?;
            if inst.state.is_unplugged() {
                return Err(format!("instance {} is already unplugged", inst.id));
            }
            let handles: Vec<(SessionHandle, std::sync::Weak<Node>)> = inst
                .nodes
                .iter()
                .map(|n| (n.handle.clone(), n.node.clone()))
                .collect();
            let fstates: Vec<Arc<InstanceState>> = inst
                .functions
                .iter_mut()
                .filter(|f| f.bound)
                .map(|f| {
                    f.bound = false;
                    f.state.clone()
                })
                .collect();
            (
                inst.state.clone(),
                inst.media.take(),
                handles,
                inst.log.clone(),
                fstates,
            )
        };
        let t0 = std::time::Instant::now();
        state.unplug();
        for f in &fstates {
            f.unplug();
        }
        // Its names become free once its nodes are released.
        self.name_hints.lock().clear();
        if let Some(m) = &media {
            m.unregister();
        }
        for s in std::iter::once(&state).chain(&fstates) {
            if self.cfg.errno_profile == ErrnoProfile::Strict
                && !s.wait_idle(Duration::from_secs(10))
            {
                tracing::warn!(
                    instance = s.id,
                    calls = s.active_calls(),
                    "calls still in flight after 10 s"
                );
            }
        }
        let woken = take_down(handles, t0);
        log.lock().push(format!("{} unplugged", self.stamp()));
        tracing::info!(
            instance = state.id,
            ms = format_args!("{:.1}", t0.elapsed().as_secs_f64() * 1e3),
            woken_ms = format_args!("{:.1}", woken.as_secs_f64() * 1e3),
            "unplugged (woken_ms: blocked callers answered)"
        );
        // The driver's own reference goes last; open handles and live nodes keep it alive.
        drop(media);
        Ok(state.id)
    }

    /// One driver of a shared media device goes (`media_device_delete` at its remove): its
    /// nodes get the unplugged errnos and leave /dev, its entities leave the graph; the media
    /// device stays while another driver is bound, and goes with the last one.
    fn unbind(&self, driver: &str, id: Option<u32>) -> Result<serde_json::Value, String> {
        let (inst_id, fstate, runtime, handles, media, last, log, context) = {
            let mut insts = self.instances.lock();
            let has = |i: &Instance| i.functions.iter().any(|f| f.bound && f.driver == driver);
            let inst = pick(&mut insts, id, has, || {
                format!("no instance has a bound driver {driver:?}")
            })?;
            let Some(f) = inst
                .functions
                .iter_mut()
                .find(|f| f.bound && f.driver == driver)
            else {
                let bound: Vec<&str> = inst
                    .functions
                    .iter()
                    .filter(|f| f.bound)
                    .map(|f| f.driver.as_str())
                    .collect();
                return Err(format!(
                    "instance {}: {driver:?} is not bound (bound: {})",
                    inst.id,
                    if bound.is_empty() {
                        "none".to_string()
                    } else {
                        bound.join(", ")
                    }
                ));
            };
            f.bound = false;
            let context = f.context.take();
            let (fstate, runtime) = (f.state.clone(), f.runtime.clone());
            let handles: Vec<(SessionHandle, std::sync::Weak<Node>)> = inst
                .nodes
                .iter()
                .filter(|n| n.driver.as_deref() == Some(driver) && Arc::ptr_eq(&n.state, &fstate))
                .map(|n| (n.handle.clone(), n.node.clone()))
                .collect();
            let last = !inst.functions.iter().any(|f| f.bound);
            (
                inst.id,
                fstate,
                runtime,
                handles,
                inst.media.clone(),
                last,
                inst.log.clone(),
                context,
            )
        };
        fstate.unplug();
        self.name_hints.lock().clear();
        if self.cfg.errno_profile == ErrnoProfile::Strict
            && !fstate.wait_idle(Duration::from_secs(10))
        {
            tracing::warn!(
                instance = inst_id,
                driver,
                "calls still in flight after 10 s"
            );
        }
        take_down(handles, std::time::Instant::now());
        if let Some(m) = &media {
            topology::device::unbuild(&runtime, m);
        }
        drop(media);
        // devm: the driver's memory goes after its remove callback (devres_release_all).
        drop(context);
        log.lock()
            .push(format!("{} {driver} unbound", self.stamp()));
        tracing::info!(instance = inst_id, driver, last, "driver unbound");
        // The allocator's last reference: the media device is unregistered and goes.
        if last {
            self.unplug(Some(inst_id))?;
        }
        Ok(serde_json::json!({
            "instance": inst_id,
            "driver": driver,
            "media_device": if last { "deleted" } else { "kept" },
        }))
    }

    /// A driver of a shared media device probes again (`media_device_usb_allocate`): into the
    /// media device another driver keeps, or, once every driver had gone, a fresh one (a new
    /// instance in the old one's place).
    fn bind(&self, driver: &str, id: Option<u32>) -> Result<serde_json::Value, String> {
        // The shared topology that has this driver.
        let has_driver = |m: usize| {
            self.cfg.models[m]
                .shared()
                .is_some_and(|t| t.drivers().iter().any(|d| d == driver))
        };
        if !(0..self.cfg.models.len()).any(has_driver) {
            return Err(format!(
                "no shared media device (a topology with several drivers) has a driver {driver:?}"
            ));
        }
        let target = {
            let mut insts = self.instances.lock();
            let inst = pick(
                &mut insts,
                id,
                |i| !i.replaced && has_driver(i.model),
                || "no instance to bind to".into(),
            )?;
            if !has_driver(inst.model) {
                return Err(format!("no instance {} with a driver {driver:?}", inst.id));
            }
            let model = inst.model;
            if inst.functions.iter().any(|f| f.bound && f.driver == driver) {
                return Err(format!("instance {}: {driver:?} is bound already", inst.id));
            }
            if inst.state.is_unplugged() {
                if inst.replaced {
                    return Err(format!("instance {} has been replaced already", inst.id));
                }
                inst.replaced = true;
                Err((inst.id, model))
            } else {
                // Records of this driver's earlier binds whose nodes are all gone.
                let gone: Vec<Arc<InstanceState>> = inst
                    .functions
                    .iter()
                    .filter(|f| !f.bound && f.state.uaf_events().is_empty())
                    .map(|f| f.state.clone())
                    .collect();
                inst.nodes.retain(|n| {
                    !(n.handle.is_closed() && gone.iter().any(|g| Arc::ptr_eq(g, &n.state)))
                });
                inst.functions.retain(|f| {
                    f.bound
                        || !f.state.uaf_events().is_empty()
                        || inst.nodes.iter().any(|n| Arc::ptr_eq(&n.state, &f.state))
                });
                Ok((
                    inst.id,
                    inst.media.clone().ok_or("the media device is gone")?,
                    inst.state.clone(),
                    inst.log.clone(),
                    model,
                    inst.functions
                        .iter()
                        .find(|f| f.bound)
                        .map(|f| f.runtime.clone()),
                ))
            }
        };
        match target {
            // Every driver had gone: a fresh media device with this one.
            Err((old, model)) => match self.plug(model, Some(driver)) {
                Ok(new) => Ok(serde_json::json!({
                    "replaced": old,
                    "instance": new,
                    "driver": driver,
                    "media_device": "allocated",
                })),
                Err(e) => {
                    if let Some(i) = self.instances.lock().iter_mut().find(|i| i.id == old) {
                        i.replaced = false;
                    }
                    Err(crate::error_chain(&e))
                }
            },
            Ok((inst_id, media, state, log, model, peer)) => {
                let topo = self.cfg.models[model]
                    .shared()
                    .cloned()
                    .ok_or("not a shared media device")?;
                self.settle_released_nodes();
                let mut reg = Registrar {
                    daemon: self,
                    dev: media,
                    state,
                    log: log.clone(),
                    nodes: Vec::new(),
                    runtime: None,
                    driver: None,
                    context: None,
                };
                let f = reg.bind_function(&topo, driver, peer.as_deref());
                let nodes = std::mem::take(&mut reg.nodes);
                let f = match f {
                    Ok(f) => f,
                    Err(e) => {
                        for n in &nodes {
                            n.handle.unregister();
                        }
                        return Err(crate::error_chain(&e));
                    }
                };
                log.lock().push(format!("{} {driver} bound", self.stamp()));
                tracing::info!(instance = inst_id, driver, "driver bound");
                let mut insts = self.instances.lock();
                if let Some(i) = insts.iter_mut().find(|i| i.id == inst_id) {
                    i.nodes.extend(nodes);
                    i.functions.push(f);
                }
                Ok(serde_json::json!({
                    "instance": inst_id,
                    "driver": driver,
                    "media_device": "kept",
                }))
            }
        }
    }

    fn replug(&self, id: Option<u32>) -> Result<(Option<u32>, u32), String> {
        let replaced = {
            let mut insts = self.instances.lock();
            let i = match id {
                Some(id) => {
                    let i = insts
                        .iter_mut()
                        .find(|i| i.id == id)
                        .ok_or_else(|| format!("no instance {id}"))?;
                    if !i.state.is_unplugged() {
                        return Err(format!(
                            "instance {id} is still registered: unplug it first"
                        ));
                    }
                    if i.replaced {
                        return Err(format!("instance {id} has been replaced already"));
                    }
                    i
                }
                // The newest unplugged instance nobody has replaced yet.
                None => insts
                    .iter_mut()
                    .rev()
                    .find(|i| i.state.is_unplugged() && !i.replaced)
                    .ok_or("an instance is still registered: unplug it first")?,
            };
            i.replaced = true;
            (i.id, i.model)
        };
        let (replaced, model) = replaced;
        match self.plug(model, None) {
            Ok(new) => Ok((Some(replaced), new)),
            Err(e) => {
                if let Some(i) = self.instances.lock().iter_mut().find(|i| i.id == replaced) {
                    i.replaced = false;
                }
                Err(crate::error_chain(&e))
            }
        }
    }

    fn shutdown(&self) {
        for inst in self.instances.lock().iter_mut() {
            inst.state.unplug();
            for n in &inst.nodes {
                n.handle.close();
            }
            inst.media.take();
        }
        // Each node's thread ends with its channel and drops the node's media device
        // reference; the media device is released after the last one.
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Daemon {
    fn check_node(&self, node: &str) -> Result<(), String> {
        let known = self.instances.lock().iter().any(|i| {
            i.nodes
                .iter()
                .any(|n| self.cfg.dev_root.join(&n.name).display().to_string() == node)
        });
        if known {
            Ok(())
        } else {
            Err(format!("no node {node}"))
        }
    }
}

impl Control for Daemon {
    fn status(&self) -> Status {
        let insts = self.instances.lock();
        let instances: Vec<InstanceStatus> = insts
            .iter()
            .map(|i| InstanceStatus {
                id: i.id,
                model: self.cfg.models[i.model].name(),
                state: i.state_name().into(),
                drivers: i
                    .functions
                    .iter()
                    .filter(|f| f.bound)
                    .map(|f| f.driver.clone())
                    .collect(),
                nodes: i
                    .nodes
                    .iter()
                    .map(|n| {
                        let devt = n.transport.devt();
                        NodeStatus {
                            name: n.name.clone(),
                            path: self.cfg.dev_root.join(&n.name).display().to_string(),
                            kind: n.kind.into(),
                            registered: !n.state.is_unplugged()
                                && !n.handle.is_closed()
                                && devt.is_some(),
                            major: devt.map(|d| d.0),
                            minor: devt.map(|d| d.1),
                            open_handles: n.handle.open_handles(),
                        }
                    })
                    .collect(),
            })
            .collect();
        Status {
            board: self
                .cfg
                .models
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", "),
            lifetime: self.cfg.lifetime.name().into(),
            errno_profile: self.cfg.errno_profile.name().into(),
            // The newest instance's nodes (those of unbound drivers aside) are registered.
            ready: insts.last().is_some_and(|i| {
                let live: Vec<&NodeEntry> =
                    i.nodes.iter().filter(|n| !n.state.is_unplugged()).collect();
                !live.is_empty()
                    && live
                        .iter()
                        .all(|n| !n.handle.is_closed() && n.transport.devt().is_some())
            }),
            instances,
            breakpoints: self.breakpoints.describe(),
            clients: self.limits.describe(),
        }
    }

    fn unplug(&self, instance: Option<u32>) -> Result<serde_json::Value, String> {
        self.unplug(instance)
            .map(|id| serde_json::json!({ "instance": id }))
    }

    fn replug(&self, instance: Option<u32>) -> Result<serde_json::Value, String> {
        self.replug(instance)
            .map(|(old, new)| serde_json::json!({ "replaced": old, "instance": new }))
    }

    fn unbind(&self, driver: &str, instance: Option<u32>) -> Result<serde_json::Value, String> {
        Daemon::unbind(self, driver, instance)
    }

    fn bind(&self, driver: &str, instance: Option<u32>) -> Result<serde_json::Value, String> {
        Daemon::bind(self, driver, instance)
    }

    fn arm(&self, node: &str, ioctl: &str, stage: &str) -> Result<serde_json::Value, String> {
        let stage = Stage::from_name(stage)
            .ok_or_else(|| format!("unknown stage {stage:?} (entry, mid, reply)"))?;
        let known = self.instances.lock().iter().any(|i| {
            i.nodes
                .iter()
                .any(|n| self.cfg.dev_root.join(&n.name).display().to_string() == node)
        });
        if !known {
            return Err(format!("no node {node}"));
        }
        let id = self.breakpoints.arm(node, ioctl, stage)?;
        Ok(serde_json::json!({ "breakpoint": id }))
    }

    fn wait_hit(&self, timeout: f64) -> Result<serde_json::Value, String> {
        let hit = self
            .breakpoints
            .wait_hit(Duration::from_secs_f64(timeout.clamp(0.0, 3600.0)))
            .ok_or_else(|| format!("no breakpoint hit within {timeout}s"))?;
        serde_json::to_value(hit).map_err(|e| e.to_string())
    }

    fn inject(&self, spec: &crate::control::FaultSpec) -> Result<serde_json::Value, String> {
        self.check_node(&spec.node)?;
        if spec.is_stream_fault() {
            let node = self
                .instances
                .lock()
                .iter()
                .flat_map(|i| i.nodes.iter())
                .find(|n| self.cfg.dev_root.join(&n.name).display().to_string() == spec.node)
                .and_then(|n| n.node.upgrade())
                .ok_or_else(|| format!("no node {}", spec.node))?;
            node.stream_fault(
                spec.drop_frames,
                Duration::from_millis(spec.stall_ms.min(600_000)),
            )?;
            return Ok(serde_json::json!({ "stream_fault": spec.node }));
        }
        let id = self.breakpoints.inject(spec)?;
        Ok(serde_json::json!({ "fault": id }))
    }

    fn cont(&self, id: Option<u32>) -> Result<serde_json::Value, String> {
        self.breakpoints
            .cont(id)
            .map(|ids| serde_json::json!({ "continued": ids }))
    }

    fn audit(&self) -> serde_json::Value {
        let insts = self.instances.lock();
        let mut total = [0usize; 4]; // registered, unplugged, released, open handles
        let mut live_objects = 0i64;
        let mut uaf_total = 0usize;
        let per: Vec<serde_json::Value> = insts
            .iter()
            .map(|i| {
                match i.state_name() {
                    "registered" => total[0] += 1,
                    "unplugged" => total[1] += 1,
                    _ => total[2] += 1,
                }
                let open = i.audit.live(Kind::FileHandle);
                total[3] += open.max(0) as usize;
                let live: serde_json::Map<String, serde_json::Value> =
                    i.audit.snapshot().into_iter().map(|(k, n)| (k.to_string(), n.into())).collect();
                live_objects += i.audit.snapshot().iter().map(|(_, n)| n).sum::<i64>();
                // Who pins the media device: the driver until unplug, each node whose channel is
                // still open, each open file handle.
                let pins: Vec<serde_json::Value> = i
                    .nodes
                    .iter()
                    .filter(|n| !n.handle.is_closed())
                    .map(|n| serde_json::json!({ "node": n.name, "open_handles": n.handle.open_handles() }))
                    .collect();
                let mut uaf = i.state.uaf_events();
                for f in &i.functions {
                    uaf.extend(f.state.uaf_events());
                }
                uaf_total += uaf.len();
                serde_json::json!({
                    "id": i.id,
                    "state": i.state_name(),
                    "live": live,
                    "pins": { "driver": i.media.is_some(), "nodes": pins },
                    "log": *i.log.lock(),
                    "uaf_events": uaf,
                })
            })
            .collect();
        let summary = format!(
            "instances={} registered={} unplugged={} released={} open_handles={} live_objects={} uaf_events={}",
            insts.len(),
            total[0],
            total[1],
            total[2],
            total[3],
            live_objects,
            uaf_total
        );
        serde_json::json!({ "summary": summary, "instances": per })
    }
}

/// The instance a control command names (`id`), or else the newest one `newest` accepts.
fn pick(
    insts: &mut [Instance],
    id: Option<u32>,
    newest: impl Fn(&Instance) -> bool,
    none: impl FnOnce() -> String,
) -> Result<&mut Instance, String> {
    match id {
        Some(id) => insts
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or_else(|| format!("no instance {id}")),
        None => insts.iter_mut().rev().find(|i| newest(i)).ok_or_else(none),
    }
}

/// Nodes going away (an unplug, a driver's unbind): everything blocked wakes first (DQBUF
/// answers, pollers poll again and see the unplugged device); then the nodes leave /dev,
/// which takes longer. Returns how long the waking took from `t0`.
fn take_down(
    handles: Vec<(SessionHandle, std::sync::Weak<Node>)>,
    t0: std::time::Instant,
) -> Duration {
    for (h, node) in &handles {
        if let Some(n) = node.upgrade() {
            n.unplugged();
        }
        h.wake_pollers();
    }
    let woken = t0.elapsed();
    for (h, _) in handles {
        h.unregister();
    }
    woken
}

/// First `prefix<N>`, N from `from`, with no node under `dev_root` and no CUSE device of that
/// name. Not bounded by the kernel's 256 V4L2 minors: 64 instances have 1,024 V4L2 nodes.
fn free_name(
    dev_root: &Path,
    prefix: &'static str,
    from: u32,
) -> Result<(String, u32), ServeError> {
    (from..MAX_NAMES)
        .map(|i| (format!("{prefix}{i}"), i))
        .find(|(n, _)| !dev_root.join(n).exists() && !Path::new("/sys/class/cuse").join(n).exists())
        .ok_or_else(|| ServeError::NoName(prefix, dev_root.to_owned()))
}

const MAX_NAMES: u32 = 4096;

/// Allocates device numbers: minors under one major, falling back to dynamic majors when the
/// kernel refuses the fixed one.
/// Device numbers: minors under one major. As on Linux today, a node's minor is free again only
/// when the node is finally released (its channel closes after the last handle), so a replug
/// while old handles are open gets other numbers, and one after they closed reuses them.
struct Numbers {
    major: u32,
    next_minor: u32,
    free: std::collections::BTreeSet<u32>,
}

impl Numbers {
    fn next(&mut self) -> (u32, u32) {
        if self.major == 0 {
            return (0, 0);
        }
        let m = match self.free.pop_first() {
            Some(m) => m,
            None => {
                self.next_minor += 1;
                self.next_minor - 1
            }
        };
        (self.major, m)
    }

    fn release(&mut self, devt: (u32, u32)) {
        if self.major != 0 && devt.0 == self.major {
            self.free.insert(devt.1);
        }
    }
}

fn register<D: Device>(
    name: &str,
    numbers: &mut Numbers,
    device: Arc<D>,
) -> Result<(Session<D>, Arc<DevCuse>), ServeError> {
    loop {
        let (dev_major, dev_minor) = numbers.next();
        let transport = DevCuse::open()?;
        let info = DeviceInfo {
            dev_major,
            dev_minor,
            ..DeviceInfo::new(name)
        };
        match Session::start(transport.clone(), &info, device.clone()) {
            Ok(s) => return Ok((s, transport)),
            Err(SessionError::Refused) if dev_major != 0 => {
                tracing::warn!(
                    node = name,
                    major = dev_major,
                    minor = dev_minor,
                    "the kernel refused the device number; falling back to dynamic majors"
                );
                numbers.major = 0;
            }
            Err(e) => return Err(ServeError::Register(name.into(), e)),
        }
    }
}

/// Registers each device node through CUSE as the ISP graph is built, and serves it.
struct Registrar<'a> {
    daemon: &'a Daemon,
    dev: Arc<MediaDevice>,
    state: Arc<InstanceState>,
    log: Arc<Mutex<Vec<String>>>,
    nodes: Vec<NodeEntry>,
    runtime: Option<Arc<omap3isp::pipeline::Runtime>>,
    /// The shared media device's driver whose nodes are being registered.
    driver: Option<String>,
    /// Its context, under the legacy lifetime models.
    context: Option<std::sync::Weak<crate::nodes::DriverContext>>,
}

impl Registrar<'_> {
    /// A driver's probe on a shared media device: its own registered bit, its entities and
    /// nodes.
    fn bind_function(
        &mut self,
        topo: &topology::Topology,
        driver: &str,
        peer: Option<&topology::device::Runtime>,
    ) -> Result<Function, ServeError> {
        let instance = self.state.clone();
        let fstate = Arc::new(InstanceState::new(
            instance.id,
            instance.profile,
            instance.lifetime,
        ));
        self.state = fstate.clone();
        self.driver = Some(driver.to_string());
        let context = (instance.lifetime != Lifetime::Refcount)
            .then(|| Arc::new(crate::nodes::DriverContext));
        self.context = context.as_ref().map(Arc::downgrade);
        let dev = self.dev.clone();
        let built = topology::device::build_function(
            topo,
            Some(driver),
            peer,
            self.daemon.kernel_version,
            &dev,
            self,
        );
        self.state = instance;
        self.driver = None;
        self.context = None;
        Ok(Function {
            driver: driver.to_string(),
            context,
            state: fstate,
            runtime: built?,
            bound: true,
        })
    }

    fn node(
        &mut self,
        prefix: &'static str,
        kind: &'static str,
        handler: Handler,
    ) -> Result<(u32, u32), ServeError> {
        let from = self
            .daemon
            .name_hints
            .lock()
            .get(prefix)
            .copied()
            .unwrap_or(0);
        let (name, number) = free_name(&self.daemon.cfg.dev_root, prefix, from)?;
        self.daemon.name_hints.lock().insert(prefix, number + 1);
        let path = self.daemon.cfg.dev_root.join(&name).display().to_string();
        let node = Node::new(
            path,
            self.dev.clone(),
            self.state.clone(),
            self.daemon.breakpoints.clone(),
            handler,
            self.daemon.limits.clone(),
        );
        if let Some(c) = &self.context {
            node.set_driver_context(c.clone());
        }
        let weak = Arc::downgrade(&node);
        let (session, transport) = register(&name, &mut self.daemon.numbers.lock(), node)?;
        let devt = transport
            .devt()
            .ok_or_else(|| ServeError::NoDevt(name.clone()))?;
        tracing::debug!(node = %name, ?devt, "registered");
        let a = self.daemon.cfg.node_access;
        if let Err(e) = transport.set_access(&name, a.uid, a.gid, a.mode) {
            tracing::warn!(node = %name, error = %e, "could not set the node's owner and mode");
        }
        self.nodes.push(NodeEntry {
            name: name.clone(),
            kind,
            handle: session.handle(),
            transport,
            node: weak,
            state: self.state.clone(),
            driver: self.driver.clone(),
        });
        let threads = self.daemon.cfg.threads;
        let (log, t0) = (self.log.clone(), self.daemon.started);
        let daemon = self.daemon.me.clone();
        let channel = self.nodes.last().map(|n| n.transport.clone());
        let t = std::thread::Builder::new()
            .name(format!("serve-{name}"))
            .spawn(move || {
                session.run(threads);
                // The readers end when the channel starts closing; the number is free only
                // once the kernel has released the channel (see DevCuse::close).
                if let Some(c) = channel {
                    cuse::Transport::close(&*c);
                }
                // The final release: the device number can be handed out again.
                if let Some(d) = daemon.upgrade() {
                    d.numbers.lock().release(devt);
                }
                log.lock()
                    .push(format!("{:.3} {name} closed", t0.elapsed().as_secs_f64()));
                tracing::debug!(node = %name, "channel closed");
                // The node's media device reference goes with the session.
                drop(session);
            })
            .expect("spawning a node thread");
        self.daemon.threads.lock().push(t);
        Ok(devt)
    }
}

impl topology::device::NodeRegistrar for Registrar<'_> {
    type Error = ServeError;

    fn register_video(
        &mut self,
        _name: &str,
        h: Arc<dyn media_graph::VideoIoctls>,
    ) -> Result<(u32, u32), ServeError> {
        self.node("video", "video", Handler::Video(h))
    }

    fn register_subdev(
        &mut self,
        _name: &str,
        h: Arc<dyn media_graph::SubdevIoctls>,
    ) -> Result<(u32, u32), ServeError> {
        self.node("v4l-subdev", "subdev", Handler::Subdev(h))
    }
}

impl NodeRegistrar for Registrar<'_> {
    type Error = ServeError;

    fn register_video(&mut self, node: &VideoNodeInfo) -> Result<(u32, u32), ServeError> {
        self.runtime = Some(node.pads.clone());
        let h = Handler::isp_video(node, self.daemon.kernel_version, &self.dev);
        self.node("video", "video", h)
    }

    fn register_subdev(&mut self, node: &SubdevInfo) -> Result<(u32, u32), ServeError> {
        let h = Handler::isp_subdev(node, self.daemon.kernel_version);
        let numbers = self.node("v4l-subdev", "subdev", h)?;
        let me = self.nodes.last().map(|n| n.node.clone());
        if let (Some(rt), Some(me)) = (&self.runtime, me) {
            crate::nodes::route_events(rt, node.entity, me);
        }
        Ok(numbers)
    }
}

/// Each node holds a /dev/cuse descriptor (and each MMAP buffer a memfd): 64 instances have
/// 1,088 nodes, past the usual soft limit of 1,024. Raise the soft limit to the hard one, as
/// servers with many descriptors do.
fn raise_fd_limit(instances: u32) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
        }
    }
    let need = u64::from(instances) * 17 + 64;
    if hard < need {
        tracing::warn!(
            limit = hard,
            need,
            "the open-file limit may be too low for this many instances (ulimit -n)"
        );
    }
}

/// What the daemon needs once set up, from the capabilities it has: `CAP_CHOWN` to give
/// nodes registered later their owner and group, `CAP_SYS_PTRACE` to reach the buffers of
/// clients of other users (USERPTR, through `process_vm_readv/writev`), and `CAP_SYS_ADMIN`
/// only with `--bus-root` (the FUSE mount and its unmount). Opening /dev/cuse and removing
/// nodes from /dev need none (the daemon's uid owns them). Everything else goes from the
/// effective, permitted, inheritable, ambient and bounding sets, so a program it might run
/// cannot regain it either. Without the capabilities to drop (not root), nothing changes.
fn drop_capabilities(bus: bool) {
    use caps::{CapSet, Capability};
    let mut keep = caps::CapsHashSet::from([Capability::CAP_CHOWN, Capability::CAP_SYS_PTRACE]);
    if bus {
        keep.insert(Capability::CAP_SYS_ADMIN);
    }
    let Ok(permitted) = caps::read(None, CapSet::Permitted) else {
        return;
    };
    let keep: caps::CapsHashSet = keep.intersection(&permitted).copied().collect();
    if permitted.contains(&Capability::CAP_SETPCAP) {
        for c in caps::all().difference(&keep) {
            let _ = caps::drop(None, CapSet::Bounding, *c);
        }
    }
    let _ = caps::clear(None, CapSet::Ambient);
    let result = caps::clear(None, CapSet::Inheritable)
        .and_then(|_| caps::set(None, CapSet::Effective, &keep))
        .and_then(|_| caps::set(None, CapSet::Permitted, &keep));
    match result {
        Ok(()) => {
            let mut names: Vec<String> = keep.iter().map(|c| c.to_string()).collect();
            names.sort();
            tracing::info!(kept = %names.join(","), "capabilities dropped");
        }
        Err(e) => tracing::warn!(error = %e, "could not drop capabilities"),
    }
}

pub fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    // Signals are taken synchronously by this thread; block them before any thread starts.
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    let _ = sigs.thread_block();

    raise_fd_limit(cfg.instances.saturating_mul(cfg.models.len() as u32));
    cuse::shm::tune_for_long_running();
    if !ensure_cuse_loaded() {
        return Err(ServeError::NoCuse);
    }
    // Before any thread starts: capabilities are per thread, and threads inherit them.
    drop_capabilities(cfg.bus_root.is_some());
    let major = match cfg.major {
        Some(m) => m,
        None => pick_local_major().unwrap_or(0),
    };
    let daemon = Arc::new_cyclic(|me| Daemon {
        cfg: cfg.clone(),
        kernel_version: running_kernel_version(),
        numbers: Mutex::new(Numbers {
            major,
            next_minor: 0,
            free: Default::default(),
        }),
        instances: Mutex::new(Vec::new()),
        next_id: Default::default(),
        name_hints: Default::default(),
        threads: Mutex::new(Vec::new()),
        started: std::time::Instant::now(),
        breakpoints: Arc::default(),
        limits: crate::limits::Limits::new(cfg.caps),
        me: me.clone(),
    });
    for _ in 0..cfg.instances.max(1) {
        for m in 0..cfg.models.len() {
            daemon.plug(m, None)?;
        }
    }
    crate::control::serve(&cfg.control, daemon.clone())?;
    // MMAP buffers go to the preload shim through a socket next to the control socket.
    let buffers = cfg
        .control
        .parent()
        .unwrap_or(std::path::Path::new("/run/mcemu"))
        .join("buffers.sock");
    if let Err(e) = crate::buffers::GRANTS.serve(&buffers) {
        tracing::warn!(path = %buffers.display(), error = %e, "no buffer socket: MMAP cannot be mapped");
    }
    let bus = match &cfg.bus_root {
        Some(p) => Some(
            crate::busfs::mount(
                p,
                daemon.clone(),
                crate::busfs::BusDriver::for_models(&cfg.models),
            )
            .map_err(|e| ServeError::BusFs(p.clone(), e))?,
        ),
        None => None,
    };
    tracing::info!(control = %cfg.control.display(), "ready");

    let sig = sigs.wait().ok();
    tracing::info!(signal = ?sig, "shutting down");
    drop(bus);
    daemon.shutdown();
    let _ = std::fs::remove_file(&cfg.control);
    let _ = std::fs::remove_file(&buffers);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{NodeAccess, Numbers};

    #[test]
    fn node_access_takes_numbers_names_and_octal_modes() {
        assert_eq!(
            NodeAccess::resolve("0", Some("44"), "0660"),
            Ok(NodeAccess {
                uid: 0,
                gid: 44,
                mode: 0o660
            })
        );
        let root = NodeAccess::resolve("root", Some("0"), "640").unwrap();
        assert_eq!((root.uid, root.mode), (0, 0o640));
        assert_eq!(
            NodeAccess::resolve("7", Some("7"), "0o600").unwrap().mode,
            0o600
        );
        for bad in ["999", "4755", "rw-rw----", "", "1777"] {
            let e = NodeAccess::resolve("0", Some("0"), bad).unwrap_err();
            assert!(e.contains("is not permission bits in octal"), "{bad}: {e}");
        }
        let e = NodeAccess::resolve("no-such-user-here", Some("0"), "0660").unwrap_err();
        assert!(e.contains("no user named"), "{e}");
        let e = NodeAccess::resolve("0", Some("no-such-group-here"), "0660").unwrap_err();
        assert!(e.contains("no group named"), "{e}");
    }

    #[test]
    fn minors_are_reused_after_release_lowest_first() {
        let mut n = Numbers {
            major: 60,
            next_minor: 0,
            free: Default::default(),
        };
        assert_eq!((n.next(), n.next(), n.next()), ((60, 0), (60, 1), (60, 2)));
        n.release((60, 1));
        n.release((60, 0));
        assert_eq!((n.next(), n.next(), n.next()), ((60, 0), (60, 1), (60, 3)));
        n.release((254, 0));
        assert_eq!(n.next(), (60, 4), "another major's numbers are not ours");
    }
}
