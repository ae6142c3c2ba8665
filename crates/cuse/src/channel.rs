//! The real transport: one open of `/dev/cuse` per device node.

use std::fs::OpenOptions;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use parking_lot::{Mutex, RwLock};

use crate::memory::{ClientMemory, ProcessMemory};
use crate::session::{DeviceInfo, RecvError, Transport};

pub const DEV_CUSE: &str = "/dev/cuse";

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "{path} does not exist (the kernel has no CUSE support, or the cuse module is not loaded)"
    )]
    Missing { path: PathBuf },
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A `/dev/cuse` channel.
///
/// Reader threads block in read(2) on the channel, as libfuse's do: the kernel wakes one
/// reader per request (an exclusive wait), where poll(2) would wake every reader for each
/// request. To stop them, [`close`](Transport::close) interrupts their reads with
/// [`WAKE_SIGNAL`] (a handler that does nothing, installed without SA_RESTART).
pub struct DevCuse {
    fd: RwLock<Option<OwnedFd>>,
    /// Threads in read(2) on the channel, for close() to interrupt.
    readers: Mutex<Vec<libc::pthread_t>>,
    closed: AtomicBool,
    dev_root: PathBuf,
    devt: Mutex<Option<(u32, u32)>>,
}

/// Tries `modprobe cuse` once when /dev/cuse is missing.
pub fn ensure_cuse_loaded() -> bool {
    if Path::new(DEV_CUSE).exists() {
        return true;
    }
    let _ = std::process::Command::new("modprobe")
        .arg("cuse")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    Path::new(DEV_CUSE).exists()
}

impl DevCuse {
    pub fn open() -> Result<Arc<Self>, OpenError> {
        Self::open_at(Path::new(DEV_CUSE), Path::new("/dev"))
    }

    /// Opens `path` (normally /dev/cuse); nodes appear under `dev_root` (normally /dev).
    pub fn open_at(path: &Path, dev_root: &Path) -> Result<Arc<Self>, OpenError> {
        if !path.exists() {
            return Err(OpenError::Missing {
                path: path.to_owned(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| OpenError::Open {
                path: path.to_owned(),
                source,
            })?;
        install_wake_handler();
        Ok(Arc::new(Self {
            fd: RwLock::new(Some(OwnedFd::from(file))),
            readers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            dev_root: dev_root.to_owned(),
            devt: Mutex::new(None),
        }))
    }

    /// The device number the kernel gave the node, once registered.
    pub fn devt(&self) -> Option<(u32, u32)> {
        *self.devt.lock()
    }

    /// `dev_root/name` if it is this channel's node: a character device with our number.
    fn our_node(&self, name: &str) -> Option<PathBuf> {
        let (maj, min) = self.devt()?;
        let path = self.dev_root.join(name);
        let md = std::fs::symlink_metadata(&path).ok()?;
        (md.file_type().is_char_device()
            && md.rdev() == nix::sys::stat::makedev(maj.into(), min.into()))
        .then_some(path)
    }

    /// Gives the registered node its owner, group and permission bits. devtmpfs creates the
    /// node (root:root 0600) while the kernel handles the CUSE_INIT reply; a udev rule, where
    /// udev runs, may set its own afterwards.
    pub fn set_access(&self, name: &str, uid: u32, gid: u32, mode: u32) -> std::io::Result<()> {
        let mut tries = 0;
        let path = loop {
            match self.our_node(name) {
                Some(p) => break p,
                None if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "{} is not this channel's device node",
                            self.dev_root.join(name).display()
                        ),
                    ))
                }
            }
        };
        // The mode first: the node never has the new owner with the old, wider bits.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
    }
}

/// The signal that interrupts a reader blocked in read(2) on a channel being closed.
pub fn wake_signal() -> libc::c_int {
    libc::SIGRTMIN() + 4
}

extern "C" fn on_wake(_: libc::c_int) {}

fn install_wake_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler does
        // nothing (async-signal-safe) and the real-time signal is one nothing else here uses.
        // No SA_RESTART: the interrupted read returns EINTR.
        let r = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_wake as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(wake_signal(), &act, std::ptr::null_mut())
        };
        if r != 0 {
            tracing::error!(error = %std::io::Error::last_os_error(), "cannot install the reader wake-up handler");
        }
    });
}

/// Character majors reserved for local/experimental use (Documentation/admin-guide/devices.txt)
/// that the kernel never hands out dynamically.
pub const LOCAL_MAJORS: [u32; 12] = [60, 61, 62, 63, 120, 121, 122, 123, 124, 125, 126, 127];

/// The character majors in use, from /proc/devices.
pub fn majors_in_use() -> Vec<u32> {
    let Ok(s) = std::fs::read_to_string("/proc/devices") else {
        return Vec::new();
    };
    s.lines()
        .skip_while(|l| !l.starts_with("Character devices"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// A free local/experimental major for all of the daemon's nodes, so hundreds of nodes share one
/// major instead of using up the ~150 dynamic ones. None when all are taken.
pub fn pick_local_major() -> Option<u32> {
    let used = majors_in_use();
    LOCAL_MAJORS.into_iter().find(|m| !used.contains(m))
}

/// Reads "MAJ:MIN" from sysfs for a CUSE device (`/` in DEVNAME becomes `!` there).
pub fn sysfs_devt(name: &str) -> Option<(u32, u32)> {
    let p = format!("/sys/class/cuse/{}/dev", name.replace('/', "!"));
    let s = std::fs::read_to_string(p).ok()?;
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl Transport for DevCuse {
    fn receive(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let guard = self.fd.read();
        let Some(fd) = guard.as_ref() else {
            return Err(RecvError::Closed);
        };
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        // Registered before the check: close() either finds this thread or is seen here.
        self.readers.lock().push(me);
        let r = if self.closed.load(Ordering::SeqCst) {
            Err(Errno::ENODEV)
        } else {
            nix::unistd::read(fd.as_raw_fd(), buf)
        };
        {
            let mut readers = self.readers.lock();
            if let Some(i) = readers.iter().position(|t| *t == me) {
                readers.swap_remove(i);
            }
        }
        match r {
            Ok(n) => Ok(n),
            // Another reader took it, a signal, or a request that vanished while being read.
            Err(Errno::EAGAIN) | Err(Errno::EINTR) | Err(Errno::ENOENT) => Err(RecvError::Again),
            // The connection was aborted (failed init, `abort` in sysfs, or teardown).
            Err(Errno::ENODEV) | Err(Errno::ECONNABORTED) => Err(RecvError::Closed),
            Err(e) => Err(RecvError::Io(e.into())),
        }
    }

    fn send(&self, msg: &[IoSlice<'_>]) -> std::io::Result<()> {
        let guard = self.fd.read();
        let fd = guard
            .as_ref()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOTCONN))?;
        let want: usize = msg.iter().map(|s| s.len()).sum();
        let n = nix::sys::uio::writev(fd, msg)?;
        if n != want {
            return Err(std::io::Error::other(format!(
                "short write to /dev/cuse: {n} of {want} bytes"
            )));
        }
        Ok(())
    }

    fn client_memory(&self, pid: u32) -> Result<Arc<dyn ClientMemory>, Errno> {
        Ok(Arc::new(ProcessMemory::new(pid)?))
    }

    fn registered(&self, info: &DeviceInfo) -> bool {
        // A refused CUSE_INIT reply aborts the connection: the channel then polls POLLERR.
        let aborted = {
            let guard = self.fd.read();
            let Some(fd) = guard.as_ref() else {
                return false;
            };
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let _ = nix::poll::poll(&mut fds, PollTimeout::ZERO);
            fds[0].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL)
            })
        };
        let devt = sysfs_devt(&info.name);
        let ok = !aborted
            && match devt {
                Some((maj, min)) if info.dev_major != 0 => {
                    (maj, min) == (info.dev_major, info.dev_minor)
                }
                Some(_) => true,
                None => false,
            };
        if ok {
            *self.devt.lock() = devt;
        }
        ok
    }

    fn hide(&self, name: &str) {
        if let Some(path) = self.our_node(name) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove device node");
            }
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Interrupt the readers' read(2) until all have left (a signal that lands just before
        // a reader enters read(2) is lost, so keep sending); they hold the fd's read lock.
        let mut fd = loop {
            for t in self.readers.lock().iter() {
                // SAFETY: `t` is a live thread: it removes itself from `readers` (under this
                // lock) before it can exit, and only after its read returned.
                unsafe { libc::pthread_kill(*t, wake_signal()) };
            }
            if let Some(g) = self.fd.try_write_for(std::time::Duration::from_millis(5)) {
                break g;
            }
        };
        // Closed under the lock: a later close() returns only after the kernel has released
        // the channel. That matters: cuse_channel_release() frees the device number before it
        // deletes the cdev, so a new device registered with the same number in between leaves
        // the old, freed cdev in the kernel's map (a use-after-free at the next open of that
        // number). Callers hand a number out again only after close() has returned.
        drop(fd.take());
    }
}
