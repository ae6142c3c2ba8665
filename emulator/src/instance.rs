//! One emulated device instance's unplug state: the "registered" bit checked at syscall entry,
//! the errnos handles see after unplug (errno profiles, lifetime.md §1.3 and §6), and the
//! "active calls" counter that lets simulated hardware teardown wait for calls in flight.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cuse::Errno;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;

/// The node types, as the errno tables distinguish them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Media,
    Video,
    Subdev,
}

impl NodeKind {
    /// The ioctl that identifies a node of this kind (DEVICE_INFO, QUERYCAP, SUBDEV_QUERYCAP).
    pub fn identifying_ioctl(self) -> u32 {
        match self {
            NodeKind::Media => ioctl_abi::media::MEDIA_IOC_DEVICE_INFO,
            NodeKind::Video => ioctl_abi::videodev2::VIDIOC_QUERYCAP,
            NodeKind::Subdev => ioctl_abi::subdev::VIDIOC_SUBDEV_QUERYCAP,
        }
    }
}

/// What handles left open see after unplug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrnoProfile {
    /// Linux today: video/subdev ioctls ENODEV, media ioctls EIO, stale media open ENXIO,
    /// poll ERR|HUP (+PRI on video/subdev), blocked DQEVENT keeps blocking.
    Mainline,
    /// Hans Verkuil's 2024 proposal: the media node answers ENODEV as the V4L2 nodes do.
    Enodev,
    /// ENODEV everywhere, every blocked call wakes with ENODEV, and unplug waits for calls in
    /// flight to finish.
    Strict,
}

impl ErrnoProfile {
    pub fn name(self) -> &'static str {
        match self {
            ErrnoProfile::Mainline => "mainline",
            ErrnoProfile::Enodev => "enodev",
            ErrnoProfile::Strict => "strict",
        }
    }

    /// An ioctl on a handle opened before unplug.
    pub fn ioctl(self, kind: NodeKind) -> Errno {
        match (self, kind) {
            (ErrnoProfile::Mainline, NodeKind::Media) => Errno::EIO,
            _ => Errno::ENODEV,
        }
    }

    /// open() of a node path that outlived the unplug (a stale or bind-mounted node).
    pub fn open(self, kind: NodeKind) -> Errno {
        match (self, kind) {
            (ErrnoProfile::Mainline, NodeKind::Media) => Errno::ENXIO,
            _ => Errno::ENODEV,
        }
    }

    /// poll() revents on a handle opened before unplug.
    pub fn poll(self, kind: NodeKind) -> u32 {
        let base = (libc::POLLERR | libc::POLLHUP) as u32;
        match kind {
            NodeKind::Media => base,
            // EPOLLPRI so that select() on exceptfds wakes too (5cb0a64effe7).
            NodeKind::Video | NodeKind::Subdev => base | libc::POLLPRI as u32,
        }
    }
}

/// Who owns the media device's memory, and so what a late access finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lifetime {
    /// The RFC model: open handles and registered nodes pin the media device; it is released at
    /// the last put. Nothing reachable from a handle is ever freed early.
    Refcount,
    /// Drivers using devm_: the driver context, with the media device, its device node and the
    /// video devices embedded in it, is freed at unbind. Every later syscall on a stale handle,
    /// and its close, touches freed memory.
    Devm,
    /// The 2016 fix: a separately allocated device node with a registered bit checked at
    /// syscall entry; the media device is still freed at unbind, so a call already past the check
    /// touches freed memory.
    RegisteredBit,
}

impl Lifetime {
    pub fn name(self) -> &'static str {
        match self {
            Lifetime::Refcount => "refcount",
            Lifetime::Devm => "devm",
            Lifetime::RegisteredBit => "registered-bit",
        }
    }
}

/// An access to freed memory that the legacy lifetime models would have made. The daemon never
/// touches freed memory: the access is detected (a `Weak` that no longer upgrades), recorded and
/// answered with an errno.
#[derive(Debug, Clone, Serialize)]
pub struct UafEvent {
    pub node: String,
    pub syscall: String,
    pub stage: String,
    pub object: String,
    /// The client thread, as the kernel reports it (0 for close).
    pub pid: u32,
    pub thread: String,
}

/// Shared by every node of an instance.
pub struct InstanceState {
    pub id: u32,
    pub profile: ErrnoProfile,
    pub lifetime: Lifetime,
    unplugged: AtomicBool,
    /// Calls in flight. Lock-free on the syscall path: a call counts itself in, then checks
    /// the registered bit (and backs out if it is clear); unplug clears the bit, then waits
    /// for the count to reach zero. Either the call sees the bit clear or unplug sees it.
    active: AtomicUsize,
    /// Only for waking `wait_idle`.
    idle_lock: Mutex<()>,
    idle: Condvar,
    uaf: Mutex<Vec<UafEvent>>,
}

/// A call in flight; dropping it ends the call.
pub struct CallGuard(std::sync::Arc<InstanceState>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl InstanceState {
    pub fn new(id: u32, profile: ErrnoProfile, lifetime: Lifetime) -> Self {
        Self {
            id,
            profile,
            lifetime,
            unplugged: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            idle_lock: Mutex::new(()),
            idle: Condvar::new(),
            uaf: Mutex::new(Vec::new()),
        }
    }

    /// The registered check at syscall entry: a guard for the call, or None once unplugged.
    pub fn enter(self: &std::sync::Arc<Self>) -> Option<CallGuard> {
        self.active.fetch_add(1, Ordering::SeqCst);
        if self.unplugged.load(Ordering::SeqCst) {
            self.leave();
            return None;
        }
        Some(CallGuard(self.clone()))
    }

    fn leave(&self) {
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1 && self.is_unplugged() {
            // Taking the lock orders this wake-up after a waiter's check of the count.
            let _g = self.idle_lock.lock();
            self.idle.notify_all();
        }
    }

    /// Records a use-after-free the model would have made.
    pub fn record_uaf(&self, e: UafEvent) {
        tracing::warn!(instance = self.id, node = %e.node, syscall = %e.syscall, stage = %e.stage,
            object = %e.object, "use-after-free (detected, not performed)");
        self.uaf.lock().push(e);
    }

    pub fn uaf_events(&self) -> Vec<UafEvent> {
        self.uaf.lock().clone()
    }

    pub fn is_unplugged(&self) -> bool {
        self.unplugged.load(Ordering::SeqCst)
    }

    /// Clears the registered bit. Returns false if it was already unplugged.
    pub fn unplug(&self) -> bool {
        !self.unplugged.swap(true, Ordering::SeqCst)
    }

    pub fn active_calls(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Waits until no call is in flight (after unplug); false on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.idle_lock.lock();
        while self.active_calls() > 0 {
            if self.idle.wait_until(&mut g, deadline).timed_out() {
                return self.active_calls() == 0;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles() {
        assert_eq!(ErrnoProfile::Mainline.ioctl(NodeKind::Media), Errno::EIO);
        assert_eq!(ErrnoProfile::Mainline.ioctl(NodeKind::Video), Errno::ENODEV);
        assert_eq!(ErrnoProfile::Mainline.open(NodeKind::Media), Errno::ENXIO);
        assert_eq!(ErrnoProfile::Enodev.ioctl(NodeKind::Media), Errno::ENODEV);
        assert_eq!(ErrnoProfile::Enodev.open(NodeKind::Media), Errno::ENODEV);
        assert_eq!(ErrnoProfile::Strict.ioctl(NodeKind::Subdev), Errno::ENODEV);
        let pri = libc::POLLPRI as u32;
        assert_eq!(ErrnoProfile::Mainline.poll(NodeKind::Media) & pri, 0);
        assert_ne!(ErrnoProfile::Mainline.poll(NodeKind::Video) & pri, 0);
    }

    #[test]
    fn calls_in_flight_finish_and_unplug_can_wait_for_them() {
        let s = std::sync::Arc::new(InstanceState::new(
            0,
            ErrnoProfile::Strict,
            Lifetime::Refcount,
        ));
        let g = s.enter().unwrap();
        assert_eq!(s.active_calls(), 1);
        assert!(s.unplug());
        assert!(!s.unplug(), "double unplug is refused");
        assert!(s.enter().is_none(), "new calls are refused after unplug");
        assert!(
            !s.wait_idle(Duration::from_millis(20)),
            "the call in flight is still running"
        );
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.wait_idle(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        drop(g);
        assert!(t.join().unwrap());
    }
}
