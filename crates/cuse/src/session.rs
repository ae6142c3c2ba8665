//! One CUSE device: the handshake, the reader threads, dispatch to a [`Device`], poll
//! notification, interrupts, and unregistration that keeps open handles served.

use std::collections::{HashMap, HashSet};
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use parking_lot::Mutex;
use zerocopy::IntoBytes;

use crate::abi::*;
use crate::ioctl::IoctlRequest;
use crate::memory::ClientMemory;
use crate::reply::{encode, slices, Reply, ReplyData, ReplyIoctl, ReplyWrite};
use crate::request::{parse, Operation};

/// What a transport's `receive` can report besides a request.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The connection is gone (server shut it down, the kernel aborted it, or init failed).
    #[error("the CUSE connection is closed")]
    Closed,
    /// Nothing to read right now; call again.
    #[error("interrupted; try again")]
    Again,
    #[error("transport read failed")]
    Io(#[source] std::io::Error),
}

/// Where requests come from and replies go: `/dev/cuse`, or the in-process kernel in tests.
pub trait Transport: Send + Sync + 'static {
    /// Reads exactly one request into `buf`, blocking until one is there or the transport closes.
    fn receive(&self, buf: &mut [u8]) -> Result<usize, RecvError>;
    /// Writes exactly one message. `ENOENT` means the request is gone (interrupted or aborted).
    fn send(&self, msg: &[IoSlice<'_>]) -> std::io::Result<()>;
    /// Access to a client's memory for payloads larger than an ioctl round.
    fn client_memory(&self, pid: u32) -> Result<Arc<dyn ClientMemory>, Errno>;
    /// Called once the CUSE_INIT reply was written (for `info`). True when the kernel accepted
    /// it and the node exists; false when it refused (name or device number taken).
    fn registered(&self, _info: &DeviceInfo) -> bool {
        true
    }
    /// Hides the node from new opens (removes the /dev entry) while open handles stay served.
    fn hide(&self, _name: &str) {}
    /// Closes the connection: the kernel unregisters the device. `receive` returns `Closed`.
    /// Returns once the kernel has released the channel (also when another thread closed it).
    fn close(&self);
}

/// Credentials and helpers for the request being handled.
pub struct Context<'a> {
    pub unique: u64,
    pub uid: u32,
    pub gid: u32,
    /// The calling thread's id in our pid namespace; 0 if not visible (and for RELEASE).
    pub pid: u32,
    shared: &'a Arc<Shared>,
}

impl Context<'_> {
    /// The caller's memory, for payloads beyond what an ioctl round carries.
    pub fn memory(&self) -> Option<Arc<dyn ClientMemory>> {
        self.shared.transport.client_memory(self.pid).ok()
    }
    pub fn notifier(&self) -> Notifier {
        Notifier(Arc::downgrade(self.shared))
    }
}

/// The device behind one node. Methods run on reader threads and must not block: a request that
/// has to wait (a blocking read, DQBUF, DQEVENT) keeps its reply and answers it later.
pub trait Device: Send + Sync + 'static {
    /// Returns the handle number echoed in every later request on this open file.
    fn open(&self, ctx: &Context<'_>, flags: u32) -> Result<u64, Errno>;
    /// The last close of an open file. The reply is sent by the session, immediately.
    fn release(&self, fh: u64);
    /// The errno for an open() that reaches the node after it was unregistered (through a stale
    /// or bind-mounted node).
    fn open_refused(&self) -> Errno {
        Errno::ENODEV
    }
    fn read(&self, _ctx: &Context<'_>, _fh: u64, _size: u32, _flags: u32, reply: ReplyData) {
        reply.error(Errno::EINVAL)
    }
    fn write(&self, _ctx: &Context<'_>, _fh: u64, _data: &[u8], _flags: u32, reply: ReplyWrite) {
        reply.error(Errno::EINVAL)
    }
    fn ioctl(&self, _ctx: &Context<'_>, _req: IoctlRequest<'_>, reply: ReplyIoctl) {
        reply.error(Errno::ENOTTY)
    }
    /// Current readiness (POLL* bits). Wake-ups go through [`Notifier::wake`].
    fn poll(&self, _ctx: &Context<'_>, _fh: u64, _events: u32) -> Result<u32, Errno> {
        Ok((libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32)
    }
}

/// Wakes the pollers of an open file (FUSE_NOTIFY_POLL to every poll handle it registered).
#[derive(Clone)]
pub struct Notifier(std::sync::Weak<Shared>);

impl Notifier {
    pub fn wake(&self, fh: u64) {
        if let Some(s) = self.0.upgrade() {
            s.wake(fh);
        }
    }
}

/// The device node's name and numbers.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// DEVNAME: the node appears as /dev/<name>.
    pub name: String,
    /// 0 asks the kernel for a dynamic major (a whole major for this one node).
    pub dev_major: u32,
    pub dev_minor: u32,
    pub max_read: u32,
    pub max_write: u32,
}

impl DeviceInfo {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            dev_major: 0,
            dev_minor: 0,
            max_read: 128 * 1024,
            max_write: 128 * 1024,
        }
    }
}

#[derive(Default)]
struct Pending {
    interrupted: bool,
    hook: Option<Box<dyn FnOnce() + Send>>,
}

#[derive(Default)]
struct State {
    open: HashSet<u64>,
    unregistered: bool,
}

/// How long a channel stays open after the last release of an unregistered node, answering
/// late OPENs (from opens that found the path before it was removed) with the refusal errno
/// instead of letting the kernel abort them with ECONNABORTED.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(200);

pub(crate) struct Shared {
    transport: Arc<dyn Transport>,
    name: String,
    /// Requests read so far: the linger thread sees whether any came in while it slept
    /// (a counter, not a clock: no clock read per request).
    requests: std::sync::atomic::AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    polls: Mutex<HashMap<u64, HashSet<u64>>>,
    state: Mutex<State>,
    closed: AtomicBool,
    /// The linger thread, woken when the channel closes before its time is up.
    linger: Mutex<Option<std::thread::Thread>>,
}

impl Shared {
    pub(crate) fn send_reply(
        &self,
        unique: u64,
        error: i32,
        payload: &[&[u8]],
    ) -> std::io::Result<()> {
        self.pending.lock().remove(&unique);
        let (hdr, _) = encode(unique, error, payload);
        let r = self.transport.send(&slices(&hdr, error, payload));
        if let Err(e) = &r {
            if e.raw_os_error() == Some(libc::ENOENT) {
                tracing::debug!(
                    unique,
                    "reply for a request that is gone (interrupted or aborted)"
                );
            } else {
                tracing::warn!(unique, error = %e, "writing a reply failed");
            }
        }
        r
    }

    pub(crate) fn is_interrupted(&self, unique: u64) -> bool {
        self.pending
            .lock()
            .get(&unique)
            .is_some_and(|p| p.interrupted)
    }

    pub(crate) fn set_interrupt_hook(&self, unique: u64, hook: Box<dyn FnOnce() + Send>) {
        let mut pending = self.pending.lock();
        match pending.get_mut(&unique) {
            Some(p) if p.interrupted => {
                drop(pending);
                hook();
            }
            Some(p) => p.hook = Some(hook),
            // Already answered: nothing can interrupt it any more.
            None => {}
        }
    }

    fn interrupt(&self, target: u64, own_unique: u64) {
        let hook = {
            let mut pending = self.pending.lock();
            match pending.get_mut(&target) {
                Some(p) => {
                    p.interrupted = true;
                    Some(p.hook.take())
                }
                None => None,
            }
        };
        match hook {
            Some(Some(h)) => h(),
            Some(None) => {}
            None => {
                // Either answered already, or another reader thread has the request but has not
                // registered it yet: ask the kernel to queue the interrupt again (it answers
                // ENOENT if the request is gone).
                let (hdr, _) = encode(own_unique, libc::EAGAIN, &[]);
                let _ = self.transport.send(&slices(&hdr, libc::EAGAIN, &[]));
            }
        }
    }

    fn wake_all(&self) {
        let fhs: Vec<u64> = self.polls.lock().keys().copied().collect();
        for fh in fhs {
            self.wake(fh);
        }
    }

    fn wake(&self, fh: u64) {
        let khs: Vec<u64> = self
            .polls
            .lock()
            .get(&fh)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for kh in khs {
            let out = fuse_notify_poll_wakeup_out { kh };
            let hdr = fuse_out_header {
                len: 24,
                error: FUSE_NOTIFY_POLL,
                unique: 0,
            };
            if let Err(e) = self
                .transport
                .send(&[IoSlice::new(hdr.as_bytes()), IoSlice::new(out.as_bytes())])
            {
                tracing::debug!(kh, error = %e, "poll notification not delivered");
            }
        }
    }

    /// Closes once no request has come in for [`LINGER`].
    fn close_when_quiet(self: &Arc<Self>) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("cuse-linger-{}", self.name))
            .spawn(move || loop {
                let before = me.requests.load(Ordering::SeqCst);
                let until = std::time::Instant::now() + LINGER;
                // Parked until the time is up, or until the channel closes another way.
                while !me.closed.load(Ordering::SeqCst) {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::park_timeout(left);
                }
                if me.closed.load(Ordering::SeqCst) || me.requests.load(Ordering::SeqCst) == before
                {
                    me.close();
                    *me.linger.lock() = None;
                    return;
                }
            });
        match spawned {
            Ok(h) => *self.linger.lock() = Some(h.thread().clone()),
            Err(_) => self.close(),
        }
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            tracing::debug!(node = %self.name, "closing the CUSE channel");
            self.transport.close();
            self.wake_linger();
        }
    }

    /// The channel was closed from the other side: nothing left to linger for.
    fn closed_by_peer(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_linger();
    }

    fn wake_linger(&self) {
        if let Some(t) = self.linger.lock().take() {
            t.unpark();
        }
    }
}

/// A handle to a running session, for the control plane.
#[derive(Clone)]
pub struct SessionHandle(Arc<Shared>);

impl SessionHandle {
    /// Removes the node from /dev now and closes the channel at the last RELEASE, so handles
    /// still open keep being served until their owners close them. New opens of a leftover
    /// node fail with ENODEV.
    pub fn unregister(&self) {
        let close_now = {
            let mut st = self.0.state.lock();
            // A second unregister changes nothing (and starts no second linger).
            let first = !std::mem::replace(&mut st.unregistered, true);
            first && st.open.is_empty()
        };
        self.0.transport.hide(&self.0.name);
        // Pollers re-poll and see the device's unregistered state.
        self.0.wake_all();
        if close_now {
            self.0.close_when_quiet();
        }
    }
    /// Wakes every poller of the node so it polls again (and sees what the device answers now).
    pub fn wake_pollers(&self) {
        self.0.wake_all();
    }
    pub fn open_handles(&self) -> usize {
        self.0.state.lock().open.len()
    }
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::SeqCst)
    }
    pub fn notifier(&self) -> Notifier {
        Notifier(Arc::downgrade(&self.0))
    }
    /// Closes the channel at once: clients see ENOTCONN/ECONNABORTED, as when a server dies.
    pub fn close(&self) {
        self.0.close();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the kernel closed the connection before CUSE_INIT")]
    NoInit,
    #[error("first request was opcode {0}, not CUSE_INIT")]
    UnexpectedFirst(u32),
    #[error("CUSE_INIT carries unique 0, which no kernel request has")]
    ZeroUnique,
    #[error("kernel speaks FUSE {0}.{1}; need 7.16 or later")]
    Version(u32, u32),
    #[error("kernel does not offer unrestricted ioctls")]
    Restricted,
    #[error("device name {0:?} is not a valid DEVNAME")]
    BadName(String),
    #[error("malformed request")]
    Parse(#[from] crate::request::ParseError),
    #[error("transport failed")]
    Io(#[from] std::io::Error),
    #[error("the kernel refused the device (name taken or device number busy)")]
    Refused,
}

/// One CUSE device being served.
pub struct Session<D: Device> {
    shared: Arc<Shared>,
    device: Arc<D>,
    buf_size: usize,
}

fn valid_devname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 256
        && !name.starts_with('/')
        && !name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b))
}

impl<D: Device> Session<D> {
    /// Performs the CUSE_INIT handshake on `transport`; the node exists when this returns Ok.
    pub fn start(
        transport: Arc<dyn Transport>,
        info: &DeviceInfo,
        device: Arc<D>,
    ) -> Result<Self, SessionError> {
        if !valid_devname(&info.name) {
            return Err(SessionError::BadName(info.name.clone()));
        }
        let page = crate::ioctl::round_limit() / FUSE_DEFAULT_MAX_PAGES;
        let max_write = info.max_write.max(4096) as usize;
        let buf_size = (FUSE_DEFAULT_MAX_PAGES * page + 4096)
            .max(80 + max_write)
            .max(FUSE_MIN_READ_BUFFER);
        let mut buf = vec![0u8; FUSE_MIN_READ_BUFFER];
        let n = loop {
            match transport.receive(&mut buf) {
                Ok(n) => break n,
                Err(RecvError::Again) => continue,
                Err(RecvError::Closed) => return Err(SessionError::NoInit),
                Err(RecvError::Io(e)) => return Err(e.into()),
            }
        };
        let (hdr, op) = parse(&buf[..n])?;
        let init = match op {
            Operation::CuseInit(i) => i,
            _ => return Err(SessionError::UnexpectedFirst(hdr.opcode)),
        };
        if hdr.unique == 0 {
            return Err(SessionError::ZeroUnique);
        }
        if init.major != FUSE_KERNEL_VERSION || init.minor < 16 {
            return Err(SessionError::Version(init.major, init.minor));
        }
        if init.flags & CUSE_UNRESTRICTED_IOCTL == 0 {
            return Err(SessionError::Restricted);
        }
        let out = cuse_init_out {
            major: FUSE_KERNEL_VERSION,
            minor: init.minor.min(FUSE_KERNEL_MINOR_VERSION),
            flags: CUSE_UNRESTRICTED_IOCTL,
            max_read: info.max_read,
            max_write: info.max_write,
            dev_major: info.dev_major,
            dev_minor: info.dev_minor,
            ..Default::default()
        };
        let devinfo = format!("DEVNAME={}\0", info.name);
        let (ohdr, _) = encode(hdr.unique, 0, &[out.as_bytes(), devinfo.as_bytes()]);
        transport.send(&slices(&ohdr, 0, &[out.as_bytes(), devinfo.as_bytes()]))?;
        let shared = Arc::new(Shared {
            transport: transport.clone(),
            name: info.name.clone(),
            pending: Mutex::new(HashMap::new()),
            polls: Mutex::new(HashMap::new()),
            state: Mutex::new(State::default()),
            closed: AtomicBool::new(false),
            linger: Mutex::new(None),
            requests: std::sync::atomic::AtomicU64::new(0),
        });
        if !transport.registered(info) {
            transport.close();
            return Err(SessionError::Refused);
        }
        tracing::debug!(node = %info.name, kernel_minor = init.minor, "CUSE device registered");
        Ok(Self {
            shared,
            device,
            buf_size,
        })
    }

    pub fn handle(&self) -> SessionHandle {
        SessionHandle(self.shared.clone())
    }

    /// Serves requests on `threads` reader threads until the connection closes.
    pub fn run(&self, threads: usize) {
        std::thread::scope(|s| {
            for i in 0..threads.max(1) {
                std::thread::Builder::new()
                    .name(format!("cuse-{}-{i}", self.shared.name))
                    .spawn_scoped(s, || self.reader_loop())
                    .expect("spawning a reader thread");
            }
        });
        // The channel is closed and its readers are gone: hand their memory back.
        crate::shm::release_free_heap();
    }

    fn reader_loop(&self) {
        let mut buf = match crate::shm::PageBuffer::new(self.buf_size) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(node = %self.shared.name, error = %e, "no memory for a reader buffer");
                return;
            }
        };
        loop {
            let n = match self.shared.transport.receive(&mut buf) {
                Ok(n) => n,
                Err(RecvError::Again) => continue,
                Err(RecvError::Closed) => {
                    self.shared.closed_by_peer();
                    break;
                }
                Err(RecvError::Io(e)) => {
                    tracing::error!(node = %self.shared.name, error = %e, "reading /dev/cuse failed");
                    self.shared.close();
                    break;
                }
            };
            self.shared.requests.fetch_add(1, Ordering::Relaxed);
            self.dispatch(&buf[..n]);
        }
    }

    /// Handles one request (public for fuzzing and tests).
    pub fn dispatch(&self, buf: &[u8]) {
        let (hdr, op) = match parse(buf) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "dropping malformed request");
                // Answer it if we can find its unique, so no client waits forever. Unique 0
                // is not a request's (the kernel would read the answer as a notification).
                if buf.len() >= 16 {
                    let unique = u64::from_ne_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
                    if unique != 0 {
                        let _ = self.shared.send_reply(unique, libc::EIO, &[]);
                    }
                }
                return;
            }
        };
        if hdr.unique == 0 {
            // Not a request the kernel sends: an answer would be read as a notification.
            tracing::warn!(opcode = hdr.opcode, "dropping a request with unique 0");
            return;
        }
        let shared = &self.shared;
        let ctx = Context {
            unique: hdr.unique,
            uid: hdr.uid,
            gid: hdr.gid,
            pid: hdr.pid,
            shared,
        };
        let reply = || Reply::new(shared.clone(), hdr.unique);
        match op {
            Operation::Open(o) => {
                if shared.state.lock().unregistered {
                    let _ = reply().send(self.device.open_refused() as i32, &[]);
                    return;
                }
                match self.device.open(&ctx, o.flags) {
                    Ok(fh) => {
                        shared.state.lock().open.insert(fh);
                        let out = fuse_open_out {
                            fh,
                            ..Default::default()
                        };
                        if reply().send(0, &[out.as_bytes()]).is_err() {
                            // The opener is gone (interrupted): no RELEASE will come for it.
                            self.release(fh);
                        }
                    }
                    Err(e) => {
                        let _ = reply().send(e as i32, &[]);
                    }
                }
            }
            Operation::Release(r) => {
                let _ = reply().send(0, &[]);
                self.release(r.fh);
            }
            Operation::Read(r) => {
                shared.pending.lock().insert(hdr.unique, Pending::default());
                self.device
                    .read(&ctx, r.fh, r.size, r.flags, ReplyData(reply()));
            }
            Operation::Write(w, data) => {
                shared.pending.lock().insert(hdr.unique, Pending::default());
                self.device
                    .write(&ctx, w.fh, data, w.flags, ReplyWrite(reply()));
            }
            Operation::Ioctl(i, data) => {
                if i.flags & FUSE_IOCTL_COMPAT != 0 {
                    tracing::warn!(
                        cmd = format_args!("{:#x}", i.cmd),
                        pid = hdr.pid,
                        "32-bit compat ioctl refused with ENOTTY: only 64-bit clients are supported"
                    );
                    let _ = reply().send(libc::ENOTTY, &[]);
                    return;
                }
                shared.pending.lock().insert(hdr.unique, Pending::default());
                let req = IoctlRequest {
                    fh: i.fh,
                    cmd: i.cmd,
                    arg: i.arg,
                    flags: i.flags,
                    in_data: data,
                    out_size: i.out_size as usize,
                };
                self.device.ioctl(&ctx, req, ReplyIoctl(reply()));
            }
            Operation::Poll(p) => {
                if p.flags & FUSE_POLL_SCHEDULE_NOTIFY != 0 {
                    shared.polls.lock().entry(p.fh).or_default().insert(p.kh);
                }
                match self.device.poll(&ctx, p.fh, p.events) {
                    Ok(revents) => {
                        let out = fuse_poll_out {
                            revents,
                            padding: 0,
                        };
                        let _ = reply().send(0, &[out.as_bytes()]);
                    }
                    // Never ENOSYS: that would switch polling off for the whole device.
                    Err(e) => {
                        let e = if e == Errno::ENOSYS { Errno::EIO } else { e };
                        let _ = reply().send(e as i32, &[]);
                    }
                }
            }
            Operation::Interrupt(i) => shared.interrupt(i.unique, hdr.unique),
            Operation::CuseInit(_) => {
                tracing::warn!("second CUSE_INIT ignored");
                let _ = reply().send(libc::EINVAL, &[]);
            }
            Operation::Other(op) => {
                tracing::debug!(opcode = op, "unsupported opcode");
                let _ = reply().send(libc::ENOSYS, &[]);
            }
        }
    }

    fn release(&self, fh: u64) {
        self.shared.polls.lock().remove(&fh);
        self.device.release(fh);
        let close = {
            let mut st = self.shared.state.lock();
            st.open.remove(&fh);
            st.unregistered && st.open.is_empty()
        };
        if close {
            self.shared.close_when_quiet();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_devname;

    #[test]
    fn devnames() {
        assert!(valid_devname("media0"));
        assert!(valid_devname("v4l-subdev12"));
        assert!(valid_devname("mcemu/video0"));
        for bad in ["", "/x", "a//b", "../x", "a/..", "sp ace", "a\0b"] {
            assert!(!valid_devname(bad), "{bad:?}");
        }
    }
}
