//! The real transport: one open of `/dev/cuse` per device node.

use std::fs::OpenOptions;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
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
    #[error("creating the shutdown eventfd failed")]
    EventFd(#[source] Errno),
}

/// A `/dev/cuse` channel.
pub struct DevCuse {
    fd: RwLock<Option<OwnedFd>>,
    stop: EventFd,
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
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| OpenError::Open {
                path: path.to_owned(),
                source,
            })?;
        let stop = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(OpenError::EventFd)?;
        Ok(Arc::new(Self {
            fd: RwLock::new(Some(OwnedFd::from(file))),
            stop,
            closed: AtomicBool::new(false),
            dev_root: dev_root.to_owned(),
            devt: Mutex::new(None),
        }))
    }

    /// The device number the kernel gave the node, once registered.
    pub fn devt(&self) -> Option<(u32, u32)> {
        *self.devt.lock()
    }
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
        if self.closed.load(Ordering::SeqCst) {
            return Err(RecvError::Closed);
        }
        let mut fds = [
            PollFd::new(fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.stop.as_fd(), PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Err(RecvError::Again),
            Err(e) => return Err(RecvError::Io(e.into())),
        }
        let stop = fds[1].revents().unwrap_or(PollFlags::empty());
        if !stop.is_empty() {
            return Err(RecvError::Closed);
        }
        match nix::unistd::read(fd.as_raw_fd(), buf) {
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
        let path = self.dev_root.join(name);
        let Some((maj, min)) = self.devt() else {
            return;
        };
        // Only remove the node if it is ours: a char device with our number.
        match std::fs::symlink_metadata(&path) {
            Ok(md)
                if md.file_type().is_char_device()
                    && md.rdev() == nix::sys::stat::makedev(maj.into(), min.into()) =>
            {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove device node");
                }
            }
            _ => {}
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.stop.write(1);
        // Waits for readers to leave poll(); they see the stop event at once.
        let fd = self.fd.write().take();
        drop(fd);
    }
}
