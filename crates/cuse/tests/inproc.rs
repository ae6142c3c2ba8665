//! The server against the in-process kernel: every wire path without /dev/cuse.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use cuse::inproc::InProcKernel;
use cuse::testdev::{LoopbackDevice, TestAdd, TestSum, TEST_ADD, TEST_SUM, TEST_WAIT};
use cuse::{Context, Device, DeviceInfo, Errno, IoctlRequest, ReplyIoctl, Session, SessionHandle};
use zerocopy::{FromBytes, IntoBytes};

const T: Duration = Duration::from_secs(10);

fn serve<D: Device>(dev: Arc<D>) -> (InProcKernel, SessionHandle, JoinHandle<()>) {
    let k = InProcKernel::new();
    let session = Session::start(k.transport(), &DeviceInfo::new("cusetest"), dev).unwrap();
    let handle = session.handle();
    let t = std::thread::spawn(move || session.run(2));
    assert!(k.wait_registered(T));
    (k, handle, t)
}

#[test]
fn init_registers_the_devname() {
    let (k, h, t) = serve(LoopbackDevice::new());
    assert_eq!(k.devname().as_deref(), Some("cusetest"));
    h.close();
    t.join().unwrap();
}

#[test]
fn fixed_size_ioctl_round_trips() {
    let (k, _h, _t) = serve(LoopbackDevice::new());
    let f = k.open(libc::O_RDWR).unwrap();
    k.memory().map(
        0x1000,
        TestAdd {
            a: 40,
            b: 2,
            sum: 0,
        }
        .as_bytes()
        .to_vec(),
    );
    assert_eq!(f.ioctl(TEST_ADD, 0x1000), Ok(0));
    let got = TestAdd::read_from_bytes(&k.memory().region(0x1000).unwrap()).unwrap();
    assert_eq!(got.sum, 42);
    // A bad pointer faults in the kernel's copy, before the server sees the data.
    assert_eq!(f.ioctl(TEST_ADD, 0xdead_0000), Err(Errno::EFAULT));
    assert_eq!(f.ioctl(0xc0047c99, 0x1000), Err(Errno::ENOTTY));
}

fn sum_case(k: &InProcKernel, f: &cuse::inproc::InProcFile, n: u32, base: u64) {
    let values: Vec<u32> = (1..=n).collect();
    k.memory().map(base, values.as_bytes().to_vec());
    let arg = base - 0x100;
    k.memory().map(
        arg,
        TestSum {
            values: base,
            count: n,
            sum: 0,
        }
        .as_bytes()
        .to_vec(),
    );
    assert_eq!(f.ioctl(TEST_SUM, arg), Ok(0));
    let s = TestSum::read_from_bytes(&k.memory().region(arg).unwrap()).unwrap();
    assert_eq!(s.sum, values.iter().fold(0u32, |a, v| a.wrapping_add(*v)));
    let doubled = k.memory().region(base).unwrap();
    assert_eq!(&doubled[..8], [2u32, 4].as_bytes());
    assert_eq!(&doubled[doubled.len() - 4..], (n * 2).as_bytes());
}

#[test]
fn compat_ioctls_are_refused_with_enotty() {
    let (k, _h, _t) = serve(LoopbackDevice::new());
    let f = k.open(libc::O_RDWR).unwrap();
    k.memory()
        .map(0x1000, TestAdd { a: 1, b: 2, sum: 0 }.as_bytes().to_vec());
    assert_eq!(f.ioctl_compat(TEST_ADD, 0x1000), Err(Errno::ENOTTY));
    assert_eq!(
        f.ioctl(TEST_ADD, 0x1000),
        Ok(0),
        "64-bit callers still served"
    );
}

/// A tiny deterministic generator, so the robustness tests need no extra crate.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn hostile_bytes_never_panic_the_decoder_or_the_dispatcher() {
    let k = InProcKernel::new();
    let session = Session::start(
        k.transport(),
        &DeviceInfo::new("fuzz"),
        LoopbackDevice::new(),
    )
    .unwrap();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..20_000 {
        let len = (xorshift(&mut s) % 200) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| xorshift(&mut s) as u8).collect();
        if len >= 8 && i % 2 == 0 {
            // Half the cases have a consistent length and a real opcode, to get past the header.
            buf[..4].copy_from_slice(&(len as u32).to_ne_bytes());
            let ops = [14u32, 15, 16, 18, 36, 39, 40, 4096, 25];
            let op = ops[(xorshift(&mut s) % ops.len() as u64) as usize];
            buf[4..8].copy_from_slice(&op.to_ne_bytes());
        }
        let _ = cuse::request::parse(&buf);
        session.dispatch(&buf);
    }
}

#[test]
fn pointer_carrying_ioctl_takes_three_rounds() {
    let (k, _h, _t) = serve(LoopbackDevice::new());
    let f = k.open(libc::O_RDWR).unwrap();
    sum_case(&k, &f, 100, 0x10_0000);
}

#[test]
fn payload_beyond_one_round_moves_through_client_memory() {
    let (k, _h, _t) = serve(LoopbackDevice::new());
    let f = k.open(libc::O_RDWR).unwrap();
    // 1 MiB of values: eight times what one round may carry.
    sum_case(&k, &f, 256 * 1024, 0x100_0000);
}

#[test]
fn read_write_and_nonblocking_read() {
    let (k, _h, _t) = serve(LoopbackDevice::new());
    let f = k.open(libc::O_RDWR | libc::O_NONBLOCK).unwrap();
    assert_eq!(f.read(10), Err(Errno::EAGAIN));
    assert_eq!(f.write(b"hello"), Ok(5));
    assert_eq!(f.read(3).unwrap(), b"hel");
    assert_eq!(f.read(10).unwrap(), b"lo");
}

#[test]
fn poll_is_woken_by_a_write_on_another_handle() {
    let (k, _h, _t) = serve(LoopbackDevice::new());
    let a = k.open(libc::O_RDWR).unwrap();
    let b = k.open(libc::O_RDWR).unwrap();
    assert_eq!(a.poll(libc::POLLIN as u32) & libc::POLLIN as u32, 0);
    let seen = a.wakeups();
    b.write(b"x").unwrap();
    assert!(a.wait_wakeup(seen, T), "no FUSE_NOTIFY_POLL for the poller");
    assert_ne!(a.poll(libc::POLLIN as u32) & libc::POLLIN as u32, 0);
}

#[test]
fn parked_read_completes_on_write_and_interrupts_give_eintr() {
    let (k, _h, _t) = serve(LoopbackDevice::new());
    let a = k.open(libc::O_RDWR).unwrap();
    let b = k.open(libc::O_RDWR).unwrap();
    let pending = a.start_read(100);
    pending.wait_sent();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !pending.is_finished(),
        "a read on an empty device must block"
    );
    b.write(b"data").unwrap();
    assert_eq!(pending.join().unwrap(), b"data");

    let pending = a.start_read(100);
    pending.wait_sent();
    pending.interrupt();
    assert_eq!(pending.join(), Err(Errno::EINTR));

    let pending = a.start_ioctl(TEST_WAIT, 0);
    pending.wait_sent();
    pending.interrupt();
    assert_eq!(pending.join(), Err(Errno::EINTR));
    // Nothing is left parked: a write completes no stale request.
    assert_eq!(b.write(b"z"), Ok(1));
}

#[test]
fn unregister_hides_the_node_and_closes_at_the_last_release() {
    let (k, h, t) = serve(LoopbackDevice::new());
    let f = k.open(libc::O_RDWR | libc::O_NONBLOCK).unwrap();
    h.unregister();
    assert_eq!(k.open(libc::O_RDWR).err(), Some(Errno::ENOENT));
    assert!(k.is_connected(), "open handles are still served");
    assert_eq!(f.write(b"ok"), Ok(2));
    assert_eq!(f.read(2).unwrap(), b"ok");
    f.close().unwrap();
    t.join().unwrap();
    assert!(!k.is_connected());
    assert!(h.is_closed());
}

#[test]
fn server_going_away_aborts_in_flight_and_later_calls() {
    let (k, h, t) = serve(LoopbackDevice::new());
    let f = k.open(libc::O_RDWR).unwrap();
    let pending = f.start_read(10);
    pending.wait_sent();
    h.close();
    assert_eq!(pending.join(), Err(Errno::ECONNABORTED));
    assert_eq!(f.ioctl(TEST_WAIT, 0), Err(Errno::ENOTCONN));
    t.join().unwrap();
}

struct Forgetful;
impl Device for Forgetful {
    fn open(&self, _: &Context<'_>, _: u32) -> Result<u64, Errno> {
        Ok(1)
    }
    fn release(&self, _: u64) {}
    fn ioctl(&self, _: &Context<'_>, _: IoctlRequest<'_>, reply: ReplyIoctl) {
        drop(reply);
    }
}

#[test]
fn a_dropped_reply_answers_eio() {
    let (k, _h, _t) = serve(Arc::new(Forgetful));
    let f = k.open(libc::O_RDWR).unwrap();
    assert_eq!(f.ioctl(1, 0), Err(Errno::EIO));
}

#[test]
fn bad_devname_is_refused_before_the_handshake() {
    let k = InProcKernel::new();
    let r = Session::start(
        k.transport(),
        &DeviceInfo::new("../etc"),
        LoopbackDevice::new(),
    );
    assert!(matches!(r, Err(cuse::SessionError::BadName(_))));
}

/// Threads of this process whose name is `name` (thread names are cut at 15 bytes).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|n| n.trim() == name))
        .count()
}

#[test]
fn linger_ends_when_the_channel_closes_and_unregister_twice_starts_one() {
    let k = InProcKernel::new();
    let session = Session::start(
        k.transport(),
        &DeviceInfo::new("lingr"),
        LoopbackDevice::new(),
    )
    .unwrap();
    let handle = session.handle();
    let t = std::thread::spawn(move || session.run(1));
    assert!(k.wait_registered(T));
    handle.unregister();
    handle.unregister();
    // (A new thread names itself as it starts.)
    let deadline = std::time::Instant::now() + T;
    while threads_named("cuse-linger-lin") == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(threads_named("cuse-linger-lin"), 1, "one linger thread");
    // The kernel side goes away (the daemon's descriptor closes): the linger thread ends at
    // once, not after its full time.
    cuse::Transport::close(&*k.transport());
    t.join().unwrap();
    let deadline = std::time::Instant::now() + cuse::session::LINGER / 4;
    while threads_named("cuse-linger-lin") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the linger thread is still there"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
