//! An in-process stand-in for the kernel side of CUSE, for testing devices without a kernel.
//!
//! It speaks the same wire format as `/dev/cuse` to a [`Session`](crate::Session), and gives
//! tests a client API (open/read/write/ioctl/poll/close, signals) that follows `fs/fuse`: the
//! unrestricted-ioctl RETRY loop with its 32-page and 256-iovec limits, interrupts queued ahead of
//! requests, poll handles and FUSE_NOTIFY_POLL, and the errnos clients see when the server closes
//! the channel. Client memory is a [`SimMemory`].

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use parking_lot::{Condvar, Mutex};
use zerocopy::{FromBytes, IntoBytes};

use crate::abi::*;
use crate::memory::{ClientMemory, SimMemory};
use crate::session::{RecvError, Transport};

/// The simulated client's pid in request headers.
pub const SIM_PID: u32 = 4242;

type Answer = Result<Vec<u8>, Errno>;

#[derive(Default)]
struct KState {
    interrupts: VecDeque<Vec<u8>>,
    requests: VecDeque<Vec<u8>>,
    waiting: HashMap<u64, mpsc::Sender<Answer>>,
    /// Interrupts sent, by target unique, so an EAGAIN answer can re-queue them.
    interrupt_msgs: HashMap<u64, Vec<u8>>,
    next_unique: u64,
    next_kh: u64,
    connected: bool,
    init_unique: u64,
    devname: Option<String>,
    devt: (u32, u32),
    max_read: u32,
    max_write: u32,
    hidden: bool,
    wakeups: HashMap<u64, u64>,
}

struct Kernel {
    st: Mutex<KState>,
    server_cv: Condvar,
    poll_cv: Condvar,
    memory: SimMemory,
}

/// The in-process kernel. Cloning shares it.
#[derive(Clone)]
pub struct InProcKernel(Arc<Kernel>);

impl Default for InProcKernel {
    fn default() -> Self {
        Self::new()
    }
}

fn header(len: usize, opcode: Opcode, unique: u64, pid: u32) -> fuse_in_header {
    fuse_in_header {
        len: len as u32,
        opcode: opcode as u32,
        unique,
        uid: 0,
        gid: 0,
        pid,
        ..Default::default()
    }
}

impl InProcKernel {
    /// A new connection, with CUSE_INIT queued as the kernel does on open("/dev/cuse").
    pub fn new() -> Self {
        let k = Kernel {
            st: Mutex::new(KState {
                connected: true,
                next_unique: 2,
                ..Default::default()
            }),
            server_cv: Condvar::new(),
            poll_cv: Condvar::new(),
            memory: SimMemory::new(),
        };
        let me = Self(Arc::new(k));
        {
            let mut st = me.0.st.lock();
            let unique = st.next_unique;
            st.next_unique += 2;
            st.init_unique = unique;
            let init = cuse_init_in {
                major: 7,
                minor: 38,
                unused: 0,
                flags: CUSE_UNRESTRICTED_IOCTL,
            };
            let mut msg = header(56, Opcode::CuseInit, unique, 1).as_bytes().to_vec();
            msg.extend_from_slice(init.as_bytes());
            st.requests.push_back(msg);
        }
        me
    }

    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.clone())
    }

    pub fn memory(&self) -> &SimMemory {
        &self.0.memory
    }

    /// The DEVNAME the server registered, once it has.
    pub fn devname(&self) -> Option<String> {
        self.0.st.lock().devname.clone()
    }

    pub fn devt(&self) -> (u32, u32) {
        self.0.st.lock().devt
    }

    pub fn is_connected(&self) -> bool {
        self.0.st.lock().connected
    }

    /// Waits until the server registered its node (after the CUSE_INIT reply).
    pub fn wait_registered(&self, timeout: Duration) -> bool {
        let mut st = self.0.st.lock();
        let deadline = std::time::Instant::now() + timeout;
        while st.devname.is_none() && st.connected {
            if self.0.poll_cv.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        st.devname.is_some()
    }

    /// Queues a request and returns its unique and the channel its answer arrives on.
    fn submit(
        &self,
        opcode: Opcode,
        body: &[&[u8]],
    ) -> Result<(u64, mpsc::Receiver<Answer>), Errno> {
        let mut st = self.0.st.lock();
        if !st.connected {
            return Err(Errno::ENOTCONN);
        }
        let unique = st.next_unique;
        st.next_unique += 2;
        let len = 40 + body.iter().map(|b| b.len()).sum::<usize>();
        let pid = if opcode == Opcode::Release {
            0
        } else {
            SIM_PID
        };
        let mut msg = header(len, opcode, unique, pid).as_bytes().to_vec();
        for b in body {
            msg.extend_from_slice(b);
        }
        let (tx, rx) = mpsc::channel();
        st.waiting.insert(unique, tx);
        st.requests.push_back(msg);
        self.0.server_cv.notify_one();
        Ok((unique, rx))
    }

    fn call(&self, opcode: Opcode, body: &[&[u8]]) -> Answer {
        let (_, rx) = self.submit(opcode, body)?;
        rx.recv().unwrap_or(Err(Errno::ECONNABORTED))
    }

    /// Delivers a signal to the client waiting on `unique`: queues FUSE_INTERRUPT ahead of
    /// every other request.
    pub fn interrupt(&self, unique: u64) {
        let mut st = self.0.st.lock();
        if !st.waiting.contains_key(&unique) {
            return;
        }
        let mut msg = header(48, Opcode::Interrupt, unique | FUSE_INT_REQ_BIT, 0)
            .as_bytes()
            .to_vec();
        msg.extend_from_slice(fuse_interrupt_in { unique }.as_bytes());
        st.interrupt_msgs.insert(unique, msg.clone());
        st.interrupts.push_back(msg);
        self.0.server_cv.notify_one();
    }

    /// open(2) of the node.
    pub fn open(&self, flags: i32) -> Result<InProcFile, Errno> {
        {
            let st = self.0.st.lock();
            if st.devname.is_none() || st.hidden {
                return Err(Errno::ENOENT);
            }
            if !st.connected {
                return Err(Errno::ENODEV);
            }
        }
        let oin = fuse_open_in {
            flags: flags as u32,
            open_flags: 0,
        };
        let out = self.call(Opcode::Open, &[oin.as_bytes()])?;
        let o = fuse_open_out::read_from_prefix(&out)
            .map_err(|_| Errno::EIO)?
            .0;
        let kh = {
            let mut st = self.0.st.lock();
            st.next_kh += 1;
            st.next_kh
        };
        Ok(InProcFile {
            k: self.clone(),
            fh: o.fh,
            kh,
            flags,
            closed: false,
        })
    }
}

fn parse_out(msg: &[u8]) -> std::io::Result<(fuse_out_header, &[u8])> {
    let (hdr, rest) = fuse_out_header::read_from_prefix(msg)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    if hdr.len as usize != msg.len() {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok((hdr, rest))
}

impl Transport for InProcKernel {
    fn receive(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let mut st = self.0.st.lock();
        loop {
            if !st.connected {
                return Err(RecvError::Closed);
            }
            let msg = match st.interrupts.pop_front() {
                Some(m) => Some(m),
                None => st.requests.pop_front(),
            };
            if let Some(msg) = msg {
                if msg.len() > buf.len() {
                    // The kernel fails a request that does not fit the read buffer with EIO.
                    let unique = fuse_in_header::read_from_prefix(&msg)
                        .map(|h| h.0.unique)
                        .unwrap_or(0);
                    if let Some(tx) = st.waiting.remove(&unique) {
                        let _ = tx.send(Err(Errno::EIO));
                    }
                    continue;
                }
                buf[..msg.len()].copy_from_slice(&msg);
                return Ok(msg.len());
            }
            self.0.server_cv.wait(&mut st);
        }
    }

    fn send(&self, msg: &[IoSlice<'_>]) -> std::io::Result<()> {
        let bytes: Vec<u8> = msg.iter().flat_map(|s| s.iter().copied()).collect();
        let (hdr, payload) = parse_out(&bytes)?;
        let einval = || std::io::Error::from_raw_os_error(libc::EINVAL);
        let mut st = self.0.st.lock();
        if !st.connected {
            return Err(std::io::Error::from_raw_os_error(libc::ENODEV));
        }
        if hdr.unique == 0 {
            if hdr.error != FUSE_NOTIFY_POLL || payload.len() != 8 {
                return Err(einval());
            }
            let kh = u64::from_ne_bytes(payload.try_into().map_err(|_| einval())?);
            *st.wakeups.entry(kh).or_default() += 1;
            self.0.poll_cv.notify_all();
            return Ok(());
        }
        if hdr.error > 0 || hdr.error <= -512 || (hdr.error != 0 && !payload.is_empty()) {
            return Err(einval());
        }
        if hdr.unique & FUSE_INT_REQ_BIT != 0 {
            let orig = hdr.unique & !FUSE_INT_REQ_BIT;
            if !st.waiting.contains_key(&orig) {
                return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
            }
            if hdr.error == -libc::EAGAIN {
                if let Some(m) = st.interrupt_msgs.get(&orig).cloned() {
                    st.interrupts.push_back(m);
                    self.0.server_cv.notify_one();
                }
            }
            return Ok(());
        }
        if hdr.unique == st.init_unique && st.devname.is_none() {
            st.waiting.remove(&hdr.unique);
            match parse_init_reply(payload) {
                Some((out, name)) => {
                    st.devname = Some(name);
                    st.devt = (
                        if out.dev_major == 0 {
                            511
                        } else {
                            out.dev_major
                        },
                        out.dev_minor,
                    );
                    st.max_read = out.max_read.max(4096);
                    st.max_write = out.max_write.max(4096);
                }
                None => abort(&mut st, Errno::ECONNABORTED),
            }
            self.0.poll_cv.notify_all();
            return Ok(());
        }
        let tx = st
            .waiting
            .remove(&hdr.unique)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))?;
        st.interrupt_msgs.remove(&hdr.unique);
        let answer = if hdr.error != 0 {
            Err(Errno::from_raw(-hdr.error))
        } else {
            Ok(payload.to_vec())
        };
        let _ = tx.send(answer);
        Ok(())
    }

    fn client_memory(&self, _pid: u32) -> Result<Arc<dyn ClientMemory>, Errno> {
        Ok(Arc::new(self.0.memory.clone()))
    }

    fn registered(&self, _info: &crate::session::DeviceInfo) -> bool {
        self.0.st.lock().devname.is_some()
    }

    fn hide(&self, _name: &str) {
        self.0.st.lock().hidden = true;
    }

    fn close(&self) {
        let mut st = self.0.st.lock();
        abort(&mut st, Errno::ECONNABORTED);
        self.0.server_cv.notify_all();
        self.0.poll_cv.notify_all();
    }
}

fn abort(st: &mut KState, e: Errno) {
    st.connected = false;
    for (_, tx) in st.waiting.drain() {
        let _ = tx.send(Err(e));
    }
    st.requests.clear();
    st.interrupts.clear();
}

/// Checks a CUSE_INIT reply as `cuse_process_init_reply` does.
fn parse_init_reply(payload: &[u8]) -> Option<(cuse_init_out, String)> {
    let (out, info) = cuse_init_out::read_from_prefix(payload).ok()?;
    if out.major != 7 || out.minor < 11 || info.is_empty() || info.len() > CUSE_INIT_INFO_MAX {
        return None;
    }
    if *info.last()? != 0 {
        return None;
    }
    let mut name = None;
    for kv in info.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let s = std::str::from_utf8(kv).ok()?;
        let (k, v) = s.split_once('=').unwrap_or((s, ""));
        if k.trim().is_empty() {
            return None;
        }
        if k.trim() == "DEVNAME" {
            name = Some(v.trim().to_string());
        }
    }
    name.filter(|n| !n.is_empty()).map(|n| (out, n))
}

/// A call in flight, for tests that interrupt it.
pub struct InFlight<T> {
    k: InProcKernel,
    current: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<Result<T, Errno>>,
}

impl<T> InFlight<T> {
    /// The unique of the request the client is waiting on, once it was sent.
    pub fn unique(&self) -> u64 {
        self.current.load(Ordering::SeqCst)
    }
    /// Sends a signal to the waiting client.
    pub fn interrupt(&self) {
        let u = self.unique();
        if u != 0 {
            self.k.interrupt(u);
        }
    }
    /// Waits until the request was queued (so an interrupt has a target).
    pub fn wait_sent(&self) {
        while self.unique() == 0 && !self.handle.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    pub fn join(self) -> Result<T, Errno> {
        self.handle.join().unwrap_or(Err(Errno::EIO))
    }
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// An open file on the simulated node. Dropping it closes it (RELEASE).
pub struct InProcFile {
    k: InProcKernel,
    fh: u64,
    kh: u64,
    flags: i32,
    closed: bool,
}

impl InProcFile {
    pub fn fh(&self) -> u64 {
        self.fh
    }

    pub fn kernel(&self) -> &InProcKernel {
        &self.k
    }

    /// read(2): one READ request of up to `max_read` bytes.
    pub fn read(&self, size: usize) -> Result<Vec<u8>, Errno> {
        read_impl(&self.k, self.fh, self.flags, size, None)
    }

    /// read(2) on another thread, so the test can signal it.
    pub fn start_read(&self, size: usize) -> InFlight<Vec<u8>> {
        let (k, fh, flags) = (self.k.clone(), self.fh, self.flags);
        let current = Arc::new(AtomicU64::new(0));
        let c = current.clone();
        let handle = std::thread::spawn(move || read_impl(&k, fh, flags, size, Some(&c)));
        InFlight {
            k: self.k.clone(),
            current,
            handle,
        }
    }

    pub fn write(&self, data: &[u8]) -> Result<usize, Errno> {
        let max = self.k.0.st.lock().max_write as usize;
        let chunk = &data[..data.len().min(max)];
        let w = fuse_write_in {
            fh: self.fh,
            size: chunk.len() as u32,
            flags: self.flags as u32,
            ..Default::default()
        };
        let out = self.k.call(Opcode::Write, &[w.as_bytes(), chunk])?;
        let o = fuse_write_out::read_from_prefix(&out)
            .map_err(|_| Errno::EIO)?
            .0;
        if o.size as usize > chunk.len() {
            return Err(Errno::EIO);
        }
        Ok(o.size as usize)
    }

    /// ioctl(2) with `arg` an address in [`InProcKernel::memory`] (or a plain value).
    pub fn ioctl(&self, cmd: u32, arg: u64) -> Result<i32, Errno> {
        ioctl_impl(&self.k, self.fh, cmd, arg, FUSE_IOCTL_UNRESTRICTED, None)
    }

    /// ioctl(2) from a 32-bit process (`.compat_ioctl`).
    pub fn ioctl_compat(&self, cmd: u32, arg: u64) -> Result<i32, Errno> {
        let flags = FUSE_IOCTL_UNRESTRICTED | FUSE_IOCTL_COMPAT | FUSE_IOCTL_32BIT;
        ioctl_impl(&self.k, self.fh, cmd, arg, flags, None)
    }

    /// ioctl(2) on another thread, so the test can signal it.
    pub fn start_ioctl(&self, cmd: u32, arg: u64) -> InFlight<i32> {
        let (k, fh) = (self.k.clone(), self.fh);
        let current = Arc::new(AtomicU64::new(0));
        let c = current.clone();
        let handle = std::thread::spawn(move || {
            ioctl_impl(&k, fh, cmd, arg, FUSE_IOCTL_UNRESTRICTED, Some(&c))
        });
        InFlight {
            k: self.k.clone(),
            current,
            handle,
        }
    }

    /// One ->poll call as poll(2) makes it with a waiter: asks for notification.
    pub fn poll(&self, events: u32) -> u32 {
        let p = fuse_poll_in {
            fh: self.fh,
            kh: self.kh,
            flags: FUSE_POLL_SCHEDULE_NOTIFY,
            events,
        };
        match self.k.call(Opcode::Poll, &[p.as_bytes()]) {
            Ok(out) => fuse_poll_out::read_from_prefix(&out)
                .map(|o| o.0.revents)
                .unwrap_or(libc::POLLERR as u32),
            Err(_) => libc::POLLERR as u32,
        }
    }

    /// How many FUSE_NOTIFY_POLL wake-ups this file received so far.
    pub fn wakeups(&self) -> u64 {
        self.k
            .0
            .st
            .lock()
            .wakeups
            .get(&self.kh)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until the wake-up count exceeds `seen`.
    pub fn wait_wakeup(&self, seen: u64, timeout: Duration) -> bool {
        let mut st = self.k.0.st.lock();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if st.wakeups.get(&self.kh).copied().unwrap_or(0) > seen {
                return true;
            }
            if self.k.0.poll_cv.wait_until(&mut st, deadline).timed_out() {
                return st.wakeups.get(&self.kh).copied().unwrap_or(0) > seen;
            }
        }
    }

    /// close(2). RELEASE is forced and synchronous, as in the kernel.
    pub fn close(mut self) -> Result<(), Errno> {
        self.closed = true;
        self.release()
    }

    fn release(&self) -> Result<(), Errno> {
        let r = fuse_release_in {
            fh: self.fh,
            flags: self.flags as u32,
            ..Default::default()
        };
        match self.k.call(Opcode::Release, &[r.as_bytes()]) {
            // After the server is gone close() still succeeds; RELEASE is never delivered.
            Ok(_) | Err(Errno::ENOTCONN) | Err(Errno::ECONNABORTED) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for InProcFile {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.release();
        }
    }
}

fn wait(rx: mpsc::Receiver<Answer>) -> Answer {
    rx.recv().unwrap_or(Err(Errno::ECONNABORTED))
}

fn read_impl(
    k: &InProcKernel,
    fh: u64,
    flags: i32,
    size: usize,
    cur: Option<&AtomicU64>,
) -> Result<Vec<u8>, Errno> {
    let max = k.0.st.lock().max_read as usize;
    let size = size.min(max).min(FUSE_DEFAULT_MAX_PAGES * 4096);
    let r = fuse_read_in {
        fh,
        size: size as u32,
        read_flags: 2,
        flags: flags as u32,
        ..Default::default()
    };
    let (u, rx) = k.submit(Opcode::Read, &[r.as_bytes()])?;
    if let Some(c) = cur {
        c.store(u, Ordering::SeqCst);
    }
    let data = wait(rx)?;
    if data.len() > size {
        return Err(Errno::EINVAL);
    }
    Ok(data)
}

fn parse_iovecs(b: &[u8], n: usize) -> Option<Vec<fuse_ioctl_iovec>> {
    (0..n)
        .map(|i| fuse_ioctl_iovec::read_from_bytes(b.get(i * 16..i * 16 + 16)?).ok())
        .collect()
}

/// The unrestricted branch of `fuse_do_ioctl`.
fn ioctl_impl(
    k: &InProcKernel,
    fh: u64,
    cmd: u32,
    arg: u64,
    flags: u32,
    cur: Option<&AtomicU64>,
) -> Result<i32, Errno> {
    let limit = FUSE_DEFAULT_MAX_PAGES * 4096;
    let mem = &k.0.memory;
    let mut in_iovs: Vec<fuse_ioctl_iovec> = Vec::new();
    let mut out_iovs: Vec<fuse_ioctl_iovec> = Vec::new();
    loop {
        let in_size: u64 = in_iovs.iter().map(|i| i.len).sum();
        let out_size: u64 = out_iovs.iter().map(|i| i.len).sum();
        if in_size.max(out_size) > limit as u64 {
            return Err(Errno::ENOMEM);
        }
        let mut in_data = Vec::with_capacity(in_size as usize);
        for iov in &in_iovs {
            in_data.extend(mem.read(iov.base, iov.len as usize)?);
        }
        let io = fuse_ioctl_in {
            fh,
            flags,
            cmd,
            arg,
            in_size: in_size as u32,
            out_size: out_size as u32,
        };
        let (u, rx) = k.submit(Opcode::Ioctl, &[io.as_bytes(), &in_data])?;
        if let Some(c) = cur {
            c.store(u, Ordering::SeqCst);
        }
        let payload = wait(rx)?;
        let (out, rest) = fuse_ioctl_out::read_from_prefix(&payload).map_err(|_| Errno::EIO)?;
        if out.flags & FUSE_IOCTL_RETRY != 0 {
            let (ni, no) = (out.in_iovs as usize, out.out_iovs as usize);
            if ni > FUSE_IOCTL_MAX_IOV || no > FUSE_IOCTL_MAX_IOV || ni + no > FUSE_IOCTL_MAX_IOV {
                return Err(Errno::ENOMEM);
            }
            if rest.len() != (ni + no) * 16 {
                return Err(Errno::EIO);
            }
            in_iovs = parse_iovecs(rest, ni).ok_or(Errno::EIO)?;
            out_iovs = parse_iovecs(&rest[ni * 16..], no).ok_or(Errno::EIO)?;
            let tin: u64 = in_iovs.iter().map(|i| i.len).sum();
            let tout: u64 = out_iovs.iter().map(|i| i.len).sum();
            if tin > limit as u64 || tout > limit as u64 {
                return Err(Errno::ENOMEM);
            }
            continue;
        }
        if rest.len() as u64 > out_size {
            return Err(Errno::EIO);
        }
        let mut off = 0usize;
        for iov in &out_iovs {
            if off >= rest.len() {
                break;
            }
            let n = (iov.len as usize).min(rest.len() - off);
            mem.write(iov.base, &rest[off..off + n])?;
            off += n;
        }
        return if out.result < 0 {
            Err(Errno::from_raw(-out.result))
        } else {
            Ok(out.result)
        };
    }
}
