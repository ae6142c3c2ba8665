//! `mcemu serve`: registers the nodes through CUSE, serves them, answers the control socket, and
//! shuts down cleanly on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cuse::channel::{ensure_cuse_loaded, pick_local_major, DevCuse, OpenError};
use cuse::{Device, DeviceInfo, Errno, Session, SessionError, SessionHandle};
use media_graph::{running_kernel_version, Audit, MediaDevice};
use nix::sys::signal::{SigSet, Signal};
use omap3isp::nodes::{IspSubdev, IspVideo};
use omap3isp::topology::{NodeRegistrar, SubdevInfo, VideoNodeInfo};
use omap3isp::Board;
use parking_lot::Mutex;

use crate::control::{Control, NodeStatus, Status};
use crate::nodes::{Handler, Node};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub board: Board,
    pub control: PathBuf,
    /// None: pick a free local/experimental major; Some(0): a dynamic major per node.
    pub major: Option<u32>,
    pub threads: usize,
    /// Where device nodes appear (devtmpfs), to find free names.
    pub dev_root: PathBuf,
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
}

struct NodeEntry {
    name: String,
    kind: &'static str,
    handle: SessionHandle,
    transport: Arc<DevCuse>,
}

struct Daemon {
    board: Board,
    dev_root: PathBuf,
    nodes: Mutex<Vec<NodeEntry>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Control for Daemon {
    fn status(&self) -> Status {
        let nodes: Vec<NodeStatus> = self
            .nodes
            .lock()
            .iter()
            .map(|n| {
                let devt = n.transport.devt();
                NodeStatus {
                    name: n.name.clone(),
                    path: self.dev_root.join(&n.name).display().to_string(),
                    kind: n.kind.into(),
                    registered: !n.handle.is_closed() && devt.is_some(),
                    major: devt.map(|d| d.0),
                    minor: devt.map(|d| d.1),
                    open_handles: n.handle.open_handles(),
                }
            })
            .collect();
        Status {
            board: self.board.name().into(),
            ready: !nodes.is_empty() && nodes.iter().all(|n| n.registered),
            nodes,
        }
    }
}

/// First `prefix<N>` with no node under `dev_root` and no CUSE device of that name.
fn free_name(dev_root: &Path, prefix: &'static str) -> Result<String, ServeError> {
    (0..256)
        .map(|i| format!("{prefix}{i}"))
        .find(|n| !dev_root.join(n).exists() && !Path::new("/sys/class/cuse").join(n).exists())
        .ok_or_else(|| ServeError::NoName(prefix, dev_root.to_owned()))
}

/// Allocates device numbers: minors under one major, falling back to dynamic majors when the
/// kernel refuses the fixed one.
struct Numbers {
    major: u32,
    next_minor: u32,
}

impl Numbers {
    fn next(&mut self) -> (u32, u32) {
        let m = self.next_minor;
        if self.major != 0 {
            self.next_minor += 1;
        }
        (self.major, if self.major != 0 { m } else { 0 })
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
    numbers: Numbers,
    dev: Arc<MediaDevice>,
    kernel_version: u32,
    threads: usize,
}

impl Registrar<'_> {
    fn node(
        &mut self,
        prefix: &'static str,
        kind: &'static str,
        handler: Handler,
    ) -> Result<(u32, u32), ServeError> {
        let name = free_name(&self.daemon.dev_root, prefix)?;
        let (session, transport) = register(
            &name,
            &mut self.numbers,
            Node::new(self.dev.clone(), handler),
        )?;
        let devt = transport
            .devt()
            .ok_or_else(|| ServeError::NoDevt(name.clone()))?;
        tracing::debug!(node = %name, ?devt, "registered");
        self.daemon.nodes.lock().push(NodeEntry {
            name: name.clone(),
            kind,
            handle: session.handle(),
            transport,
        });
        let threads = self.threads;
        let t = std::thread::Builder::new()
            .name(format!("serve-{name}"))
            .spawn(move || {
                session.run(threads);
                tracing::debug!(node = %name, "channel closed");
            })
            .expect("spawning a node thread");
        self.daemon.threads.lock().push(t);
        Ok(devt)
    }
}

impl NodeRegistrar for Registrar<'_> {
    type Error = ServeError;

    fn register_video(&mut self, node: &VideoNodeInfo) -> Result<(u32, u32), ServeError> {
        let h = IspVideo {
            name: node.name.clone(),
            capture: node.capture,
            kernel_version: self.kernel_version,
        };
        self.node("video", "video", Handler::Video(Arc::new(h)))
    }

    fn register_subdev(&mut self, node: &SubdevInfo) -> Result<(u32, u32), ServeError> {
        let h = IspSubdev {
            name: node.name.clone(),
            kernel_version: self.kernel_version,
        };
        self.node("v4l-subdev", "subdev", Handler::Subdev(Arc::new(h)))
    }
}

pub fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    // Signals are taken synchronously by this thread; block them before any thread starts.
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    let _ = sigs.thread_block();

    if !ensure_cuse_loaded() {
        return Err(ServeError::NoCuse);
    }
    let major = match cfg.major {
        Some(m) => m,
        None => pick_local_major().unwrap_or(0),
    };
    let numbers = Numbers {
        major,
        next_minor: 0,
    };
    let kernel_version = running_kernel_version();
    let daemon = Arc::new(Daemon {
        board: cfg.board,
        dev_root: cfg.dev_root.clone(),
        nodes: Mutex::new(Vec::new()),
        threads: Mutex::new(Vec::new()),
    });

    let audit = Audit::new();
    let media = MediaDevice::new(cfg.board.media_device_info(kernel_version), audit);
    media.set_release(|| tracing::info!("media device released"));
    let mut reg = Registrar {
        daemon: &daemon,
        numbers,
        dev: media.clone(),
        kernel_version,
        threads: cfg.threads,
    };
    // Probe and notifier completion: video nodes, links, sensor, sub-device nodes...
    omap3isp::topology::build(cfg.board, &media, &mut reg)?;
    // ...and the media node last.
    media.register();
    reg.node("media", "media", Handler::Media)?;
    drop(reg);
    drop(media);
    tracing::info!(
        board = cfg.board.name(),
        nodes = daemon.nodes.lock().len(),
        "registered"
    );

    crate::control::serve(&cfg.control, daemon.clone())?;
    tracing::info!(control = %cfg.control.display(), "ready");

    let sig = sigs.wait().ok();
    tracing::info!(signal = ?sig, "shutting down");
    for n in daemon.nodes.lock().iter() {
        n.handle.close();
    }
    // Each node's thread ends with its channel and drops the node's media device reference; the
    // media device is released after the last one.
    for t in daemon.threads.lock().drain(..) {
        let _ = t.join();
    }
    let _ = std::fs::remove_file(&cfg.control);
    Ok(())
}
