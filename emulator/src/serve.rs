//! `mcemu serve`: registers the nodes through CUSE, serves them, answers the control socket, and
//! shuts down cleanly on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cuse::channel::{ensure_cuse_loaded, pick_local_major, DevCuse, OpenError};
use cuse::{Device, DeviceInfo, Session, SessionError, SessionHandle};
use media_graph::{running_kernel_version, MediaDevice};
use nix::sys::signal::{SigSet, Signal};
use omap3isp::Board;
use parking_lot::Mutex;

use crate::control::{Control, NodeStatus, Status};
use crate::media_node::MediaNode;

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
}

struct Node {
    name: String,
    kind: &'static str,
    handle: SessionHandle,
    transport: Arc<DevCuse>,
}

struct Daemon {
    board: Board,
    dev_root: PathBuf,
    nodes: Mutex<Vec<Node>>,
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
    let mut numbers = Numbers {
        major,
        next_minor: 0,
    };
    let kernel = running_kernel_version();
    let daemon = Arc::new(Daemon {
        board: cfg.board,
        dev_root: cfg.dev_root.clone(),
        nodes: Mutex::new(Vec::new()),
    });

    let media = Arc::new(MediaDevice::new(cfg.board.media_device_info(kernel)));
    let name = free_name(&cfg.dev_root, "media")?;
    let (session, transport) = register(&name, &mut numbers, MediaNode::new(media))?;
    tracing::info!(node = %name, devt = ?transport.devt(), board = cfg.board.name(), "registered");
    daemon.nodes.lock().push(Node {
        name: name.clone(),
        kind: "media",
        handle: session.handle(),
        transport,
    });
    let threads = cfg.threads;
    std::thread::Builder::new()
        .name(format!("serve-{name}"))
        .spawn(move || {
            session.run(threads);
            tracing::info!(node = %name, "channel closed");
        })
        .expect("spawning a node thread");

    crate::control::serve(&cfg.control, daemon.clone())?;
    tracing::info!(control = %cfg.control.display(), "ready");

    let sig = sigs.wait().ok();
    tracing::info!(signal = ?sig, "shutting down");
    for n in daemon.nodes.lock().iter() {
        n.handle.close();
    }
    let _ = std::fs::remove_file(&cfg.control);
    Ok(())
}
