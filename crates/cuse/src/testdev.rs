//! A small loopback device that exercises every path of the server: the CUSE test suites run it
//! in-process and, through `/dev/cuse`, inside the VM.
//!
//! * `write` appends to a shared buffer (64 KiB); `read` takes from it, parking while it is empty
//!   (EAGAIN with O_NONBLOCK, EINTR on a signal); poll reports POLLIN when data is buffered.
//! * [`TEST_ADD`]: fixed-size `_IOWR` struct (2 rounds).
//! * [`TEST_SUM`]: struct with a pointer to a `u32` array, summed and doubled in place (3 rounds;
//!   arrays over one round's limit move through process memory).
//! * [`TEST_WAIT`]: parks until the next write, EINTR on a signal.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use parking_lot::Mutex;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ioctl::{IoctlRequest, IoctlRound};
use crate::reply::{ReplyData, ReplyIoctl, ReplyWrite};
use crate::session::{Context, Device, Notifier};

pub const CAPACITY: usize = 64 * 1024;

const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    (3u32 << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TestAdd {
    pub a: u64,
    pub b: u64,
    pub sum: u64,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TestSum {
    /// Client address of `count` u32 values.
    pub values: u64,
    pub count: u32,
    pub sum: u32,
}

pub const TEST_ADD: u32 = iowr(b'k', 1, core::mem::size_of::<TestAdd>());
pub const TEST_SUM: u32 = iowr(b'k', 2, core::mem::size_of::<TestSum>());
/// `_IO('k', 3)`.
pub const TEST_WAIT: u32 = ((b'k' as u32) << 8) | 3;
/// Most elements TEST_SUM accepts (16 MiB of values).
pub const TEST_SUM_MAX: u32 = 4 << 20;

enum Waiter {
    Read(ReplyData, usize, u64),
    Wait(ReplyIoctl, u64),
}

impl Waiter {
    fn unique(&self) -> u64 {
        match self {
            Waiter::Read(r, ..) => r.unique(),
            Waiter::Wait(r, _) => r.unique(),
        }
    }
    fn fh(&self) -> u64 {
        match self {
            Waiter::Read(_, _, fh) | Waiter::Wait(_, fh) => *fh,
        }
    }
    fn fail(self, e: Errno) {
        match self {
            Waiter::Read(r, ..) => r.error(e),
            Waiter::Wait(r, _) => r.error(e),
        }
    }
}

#[derive(Default)]
struct Inner {
    data: VecDeque<u8>,
    waiters: Vec<Waiter>,
    open: Vec<u64>,
}

#[derive(Default)]
pub struct LoopbackDevice {
    inner: Arc<Mutex<Inner>>,
    next_fh: AtomicU64,
    notifier: Mutex<Option<Notifier>>,
}

impl LoopbackDevice {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn park(&self, w: Waiter) {
        let unique = w.unique();
        let handle = match &w {
            Waiter::Read(r, ..) => r.interrupt_handle(),
            Waiter::Wait(r, _) => r.interrupt_handle(),
        };
        self.inner.lock().waiters.push(w);
        let weak = Arc::downgrade(&self.inner);
        handle.on_interrupt(move || {
            let Some(inner) = weak.upgrade() else { return };
            let mut g = inner.lock();
            let Some(pos) = g.waiters.iter().position(|w| w.unique() == unique) else {
                return;
            };
            let w = g.waiters.remove(pos);
            drop(g);
            w.fail(Errno::EINTR);
        });
    }

    fn add(round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
        let mut v: TestAdd = match round.inout_struct(round.request().arg) {
            Ok(Some(v)) => v,
            Ok(None) => return reply.retry_round(round),
            Err(e) => return reply.error(e),
        };
        v.sum = v.a.wrapping_add(v.b);
        reply.finish(round, Ok(0), &[v.as_bytes()]);
    }

    fn sum(round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
        let arg = round.request().arg;
        let mut s: TestSum = match round.inout_struct(arg) {
            Ok(Some(s)) => s,
            Ok(None) => return reply.retry_round(round),
            Err(e) => return reply.error(e),
        };
        if s.count > TEST_SUM_MAX {
            return reply.error(Errno::EINVAL);
        }
        let bytes = s.count as usize * 4;
        let values = match round.input(s.values, bytes) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        round.output(s.values, bytes);
        let Some(values) = values.filter(|_| round.is_complete()) else {
            return reply.retry_round(round);
        };
        let mut out = Vec::with_capacity(bytes);
        let mut sum = 0u32;
        for c in values.chunks_exact(4) {
            let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
            sum = sum.wrapping_add(v);
            out.extend_from_slice(&v.wrapping_mul(2).to_ne_bytes());
        }
        s.sum = sum;
        reply.finish(round, Ok(0), &[s.as_bytes(), &out]);
    }
}

impl Device for LoopbackDevice {
    fn open(&self, ctx: &Context<'_>, _flags: u32) -> Result<u64, Errno> {
        self.notifier.lock().get_or_insert_with(|| ctx.notifier());
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed) + 1;
        self.inner.lock().open.push(fh);
        Ok(fh)
    }

    fn release(&self, fh: u64) {
        let mut g = self.inner.lock();
        g.open.retain(|f| *f != fh);
        // Requests parked on a closing handle cannot be waited for any more.
        let (gone, keep): (Vec<_>, Vec<_>) = g.waiters.drain(..).partition(|w| w.fh() == fh);
        g.waiters = keep;
        drop(g);
        for w in gone {
            w.fail(Errno::EBADF);
        }
    }

    fn read(&self, _ctx: &Context<'_>, fh: u64, size: u32, flags: u32, reply: ReplyData) {
        let mut g = self.inner.lock();
        if !g.data.is_empty() {
            let n = (size as usize).min(g.data.len());
            let out: Vec<u8> = g.data.drain(..n).collect();
            drop(g);
            return reply.data(&out);
        }
        drop(g);
        if flags & libc::O_NONBLOCK as u32 != 0 {
            return reply.error(Errno::EAGAIN);
        }
        self.park(Waiter::Read(reply, size as usize, fh));
    }

    fn write(&self, _ctx: &Context<'_>, _fh: u64, data: &[u8], flags: u32, reply: ReplyWrite) {
        let mut g = self.inner.lock();
        let room = CAPACITY - g.data.len();
        if room == 0 {
            drop(g);
            return reply.error(if flags & libc::O_NONBLOCK as u32 != 0 {
                Errno::EAGAIN
            } else {
                Errno::ENOSPC
            });
        }
        let n = room.min(data.len());
        g.data.extend(&data[..n]);
        // Complete parked requests in arrival order while there is data.
        let waiters = std::mem::take(&mut g.waiters);
        let mut done = Vec::new();
        for w in waiters {
            match w {
                Waiter::Wait(r, _) => done.push((Waiter::Wait(r, 0), Vec::new())),
                Waiter::Read(r, size, fh) if !g.data.is_empty() => {
                    let k = size.min(g.data.len());
                    let out: Vec<u8> = g.data.drain(..k).collect();
                    done.push((Waiter::Read(r, size, fh), out));
                }
                other => g.waiters.push(other),
            }
        }
        let open = g.open.clone();
        drop(g);
        reply.written(n as u32);
        for (w, out) in done {
            match w {
                Waiter::Read(r, ..) => r.data(&out),
                Waiter::Wait(r, _) => r.done(0, &[]),
            }
        }
        if let Some(n) = self.notifier.lock().as_ref() {
            for fh in open {
                n.wake(fh);
            }
        }
    }

    fn ioctl(&self, ctx: &Context<'_>, req: IoctlRequest<'_>, reply: ReplyIoctl) {
        let mut round = IoctlRound::new(req, ctx.memory());
        match req.cmd {
            TEST_ADD => Self::add(&mut round, reply),
            TEST_SUM => Self::sum(&mut round, reply),
            TEST_WAIT => self.park(Waiter::Wait(reply, req.fh)),
            _ => reply.error(Errno::ENOTTY),
        }
    }

    fn poll(&self, _ctx: &Context<'_>, _fh: u64, _events: u32) -> Result<u32, Errno> {
        let mut r = (libc::POLLOUT | libc::POLLWRNORM) as u32;
        if !self.inner.lock().data.is_empty() {
            r |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        Ok(r)
    }
}
