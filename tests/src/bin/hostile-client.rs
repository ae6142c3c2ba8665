//! Clients that misbehave on purpose, for the VM suites:
//!
//!   hostile-client silent SOCKET N SECONDS
//!       keeps N connections to a unix socket open for SECONDS without sending a byte; when
//!       the server closes one, connects again. Prints how many connections were made.
//!   hostile-client open-many NODE N
//!       opens NODE N times, holding every handle; prints how many opened and the errno that
//!       stopped it.
//!   hostile-client reqbufs VIDEO COUNT COUNT2
//!       two handles on a capture node, S_FMT 640x480 UYVY on each, REQBUFS MMAP COUNT on the first and
//!       COUNT2 on the second; prints the size and what each REQBUFS gave.
//!   hostile-client dqevent-many SUBDEV N
//!       N threads in a blocking VIDIOC_DQEVENT on one handle subscribed to FRAME_SYNC (which
//!       an idle pipeline never sends); after 2 s prints how many are still waiting and how
//!       many failed with which errno.
//!   hostile-client storm NODE...
//!       every ioctl number on every NODE with NULL, unmapped, guarded, kernel-range and
//!       non-canonical argument pointers, all-ones arguments, bad pointers inside the
//!       argument, mis-sized and unknown numbers, read/write to bad buffers (tests/src/abuse.rs
//!       says what each may answer); prints the answers counted and every answer the kernel
//!       could not have given; exits 1 if there was one.
//!   hostile-client storm-loop SECONDS newest|NODE...
//!       storms again and again for SECONDS, through unplug and replug: a node that is gone is
//!       skipped, a wrong answer from a node that turns out unplugged ends that pass. `newest`
//!       reads the newest instance's nodes from the control socket before each pass. SIGTERM
//!       or SIGINT ends it after the pass under way, with the report.
//!   hostile-client userptr VIDEO
//!       a USERPTR capture queue on VIDEO (its current format, 4 buffers) given bad buffers:
//!       NULL, unmapped, PROT_NONE, kernel-range, non-canonical, running off a mapping,
//!       read-only, with a hole, too short, bad indices, the wrong memory type; then 3 frames with good
//!       buffers. Prints ok/not ok lines and a summary.
//!   hostile-client poll SUBDEV
//!       subscribes to FRAME_SYNC on a sub-device node and waits in poll(2) for it without a
//!       time limit (to be killed while it waits).

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["silent", socket, n, secs] => silent(socket, parse(n), parse(secs)),
        ["storm", nodes @ ..] if !nodes.is_empty() => storm(nodes, 0, false),
        ["storm-loop", secs, nodes @ ..] if !nodes.is_empty() => storm(nodes, parse(secs), true),
        ["poll", node] => poll_forever(node),
        ["userptr", node] => std::process::exit(userptr(node)),
        ["open-many", node, n] => open_many(node, parse(n)),
        ["reqbufs", node, a, b] => reqbufs(node, parse(a), parse(b)),
        ["dqevent-many", node, n] => dqevent_many(node, parse(n)),
        _ => {
            eprintln!("usage: see the comment at the top of tests/src/bin/hostile-client.rs");
            std::process::exit(2);
        }
    }
}

fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| {
        eprintln!("hostile-client: not a number: {s:?}");
        std::process::exit(2)
    })
}

fn silent(socket: &str, n: u32, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let made = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (socket, made) = (socket.to_string(), made.clone());
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let Ok(mut c) = UnixStream::connect(&socket) else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    made.fetch_add(1, Ordering::Relaxed);
                    let left = deadline.saturating_duration_since(Instant::now());
                    let _ = c.set_read_timeout(Some(left.max(Duration::from_millis(1))));
                    // Returns when the server closes the connection (or the time is up).
                    let _ = c.read(&mut [0u8; 64]);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    println!(
        "silent: {} connections to {socket} in {secs} s",
        made.load(Ordering::Relaxed)
    );
}

fn poll_forever(node: &str) {
    use ioctl_abi::videodev2::{
        v4l2_event_subscription, V4L2_EVENT_FRAME_SYNC, VIDIOC_SUBSCRIBE_EVENT,
    };
    use std::os::fd::AsRawFd;
    let fd = mcemu_tests::open_or_panic(node);
    let mut sub = v4l2_event_subscription::zeroed();
    sub.type_ = V4L2_EVENT_FRAME_SYNC;
    // SAFETY: `sub` is a live struct of the size the command encodes.
    if unsafe { libc::ioctl(fd.as_raw_fd(), VIDIOC_SUBSCRIBE_EVENT as _, &mut sub) } < 0 {
        eprintln!("VIDIOC_SUBSCRIBE_EVENT: {}", nix::errno::Errno::last());
        std::process::exit(1);
    }
    println!("polling {node}");
    loop {
        let (n, revents) = mcemu_tests::poll(&fd, libc::POLLPRI, -1);
        println!("poll: {n} {revents:#x}");
    }
}

fn open_many(node: &str, n: u32) {
    let mut held = Vec::new();
    let mut stop = None;
    for _ in 0..n {
        match mcemu_tests::open(node) {
            Ok(fd) => held.push(fd),
            Err(e) => {
                stop = Some(e);
                break;
            }
        }
    }
    match stop {
        Some(e) => println!("open-many: opened {}, then {e:?}", held.len()),
        None => println!("open-many: opened {}", held.len()),
    }
}

fn reqbufs(node: &str, first: u32, second: u32) {
    use ioctl_abi::videodev2::*;
    use mcemu_tests::{vioctl, CAP};
    let handles = [
        mcemu_tests::open_or_panic(node),
        mcemu_tests::open_or_panic(node),
    ];
    for (fd, count) in handles.iter().zip([first, second]) {
        let mut f = v4l2_format::zeroed();
        f.type_ = CAP;
        let mut p = v4l2_pix_format::zeroed();
        (p.width, p.height, p.field) = (640, 480, V4L2_FIELD_NONE);
        p.pixelformat = u32::from_le_bytes(*b"UYVY");
        f.set_pix(&p);
        if let Err(e) = vioctl(fd, VIDIOC_S_FMT, &mut f) {
            println!("reqbufs: S_FMT {e:?}");
            return;
        }
        let mut rb = v4l2_requestbuffers::zeroed();
        rb.count = count;
        rb.type_ = CAP;
        rb.memory = V4L2_MEMORY_MMAP;
        match vioctl(fd, VIDIOC_REQBUFS, &mut rb) {
            Ok(()) => println!(
                "reqbufs: {} bytes each: asked {count}, got {}",
                f.pix().sizeimage,
                rb.count
            ),
            Err(e) => println!(
                "reqbufs: {} bytes each: asked {count}, {e:?}",
                f.pix().sizeimage
            ),
        }
    }
}

fn dqevent_many(node: &str, n: u32) {
    use ioctl_abi::videodev2::{
        v4l2_event, v4l2_event_subscription, V4L2_EVENT_FRAME_SYNC, VIDIOC_DQEVENT,
        VIDIOC_SUBSCRIBE_EVENT,
    };
    let fd = Arc::new(mcemu_tests::open_or_panic(node));
    let mut sub = v4l2_event_subscription::zeroed();
    sub.type_ = V4L2_EVENT_FRAME_SYNC;
    if let Err(e) = mcemu_tests::vioctl(&fd, VIDIOC_SUBSCRIBE_EVENT, &mut sub) {
        println!("dqevent-many: SUBSCRIBE_EVENT {e:?}");
        return;
    }
    let failed = Arc::new(parking_lot::Mutex::new(Vec::new()));
    for _ in 0..n {
        let (fd, failed) = (fd.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut ev = v4l2_event::zeroed();
            if let Err(e) = mcemu_tests::vioctl(&fd, VIDIOC_DQEVENT, &mut ev) {
                failed.lock().push(e);
            }
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    let failed = failed.lock().clone();
    println!(
        "dqevent-many: {} waiting, {} failed: {failed:?}",
        n as usize - failed.len(),
        failed.len()
    );
    // Exiting ends the waiting calls (the kernel interrupts them).
    std::process::exit(0);
}

/// Set by SIGTERM or SIGINT: a looping storm finishes its pass and reports.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn storm(nodes: &[&str], secs: u64, looping: bool) {
    use mcemu_tests::abuse::{storm_node, Arena, Tally};
    let deadline = Instant::now() + Duration::from_secs(secs);
    extern "C" fn stop(_: libc::c_int) {
        STOP.store(true, Ordering::SeqCst);
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, stop as *const () as libc::sighandler_t) };
    }
    let mut arena = Arena::new();
    let mut total = Tally::default();
    let (mut passes, mut missing) = (0u64, 0u64);
    loop {
        let paths: Vec<String> = if nodes == ["newest"] {
            mcemu_tests::newest_nodes("/run/mcemu/control.sock").unwrap_or_default()
        } else {
            nodes.iter().map(|s| s.to_string()).collect()
        };
        for p in &paths {
            match storm_node(p, &mut arena, looping, |_| true) {
                Ok(t) => total.merge(t),
                Err(e) if looping => {
                    let _ = e;
                    missing += 1;
                }
                Err(e) => total.violations.push(format!("{p}: open: {e:?}")),
            }
        }
        passes += 1;
        if !looping || Instant::now() >= deadline || STOP.load(Ordering::SeqCst) {
            break;
        }
        if paths.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for v in &total.violations {
        println!("violation: {v}");
    }
    let answers: Vec<String> = total
        .answers
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "storm: {} passes, {} calls, {} violations, {} cut short by unplug, {} nodes missing; answers: {}",
        passes,
        total.calls,
        total.violations.len(),
        total.unplugged,
        missing,
        answers.join(", ")
    );
    std::process::exit(i32::from(!total.violations.is_empty()));
}

fn userptr(node: &str) -> i32 {
    use ioctl_abi::videodev2::*;
    use mcemu_tests::abuse::{Arena, BadPtr};
    use mcemu_tests::{expect, vioctl, Report, CAP, USERPTR};
    use nix::errno::Errno;
    let mut rep = Report::default();
    let fd = mcemu_tests::open_or_panic(node);
    let mut f = v4l2_format::zeroed();
    f.type_ = CAP;
    if let Err(e) =
        vioctl(&fd, VIDIOC_G_FMT, &mut f).and_then(|_| vioctl(&fd, VIDIOC_S_FMT, &mut f))
    {
        rep.check("userptr: G_FMT and S_FMT", Err(format!("{e:?}")));
        return rep.finish();
    }
    let size = f.pix().sizeimage;
    let mut rb = v4l2_requestbuffers::zeroed();
    (rb.count, rb.type_, rb.memory) = (4, CAP, USERPTR);
    rep.check(
        "userptr: REQBUFS USERPTR 4",
        vioctl(&fd, VIDIOC_REQBUFS, &mut rb).map_err(|e| format!("{e:?}")),
    );
    let arena = Arena::new();
    // SAFETY: a fresh read-only anonymous mapping, unmapped when the program ends.
    let ro = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size as usize,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    // A buffer with a hole: the page in its middle unmapped.
    let pages = (size as usize).div_ceil(4096);
    // SAFETY: a fresh anonymous mapping, then one page of it unmapped; never freed (the
    // program ends).
    let holed = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            pages * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        libc::munmap(p.cast::<u8>().add(pages / 2 * 4096).cast(), 4096);
        p as u64
    };
    let mut good: Vec<Vec<u8>> = (0..4).map(|_| vec![0u8; size as usize]).collect();
    let g0 = good[0].as_mut_ptr() as u64;
    let qbuf = |index: u32, memory: u32, m: u64, length: u32| {
        let mut b = v4l2_buffer::zeroed();
        (b.index, b.type_, b.memory, b.m, b.length) = (index, CAP, memory, m, length);
        vioctl(&fd, VIDIOC_QBUF, &mut b)
    };
    // (what, index, memory type, userptr, length, the errnos the kernel gives)
    type Case<'a> = (&'a str, u32, u32, u64, u32, &'a [Errno]);
    let cases: [Case; 14] = [
        ("NULL", 0, USERPTR, 0, size, &[Errno::EINVAL, Errno::EFAULT]),
        (
            "page 1",
            0,
            USERPTR,
            arena.addr(BadPtr::Low, 0),
            size,
            &[Errno::EFAULT],
        ),
        (
            "PROT_NONE",
            0,
            USERPTR,
            arena.addr(BadPtr::Guard, 0),
            size,
            &[Errno::EFAULT],
        ),
        (
            "kernel range",
            0,
            USERPTR,
            arena.addr(BadPtr::Kernel, 0),
            size,
            &[Errno::EFAULT],
        ),
        (
            "non-canonical",
            0,
            USERPTR,
            arena.addr(BadPtr::NonCanonical, 0),
            size,
            &[Errno::EFAULT],
        ),
        (
            "running into PROT_NONE",
            0,
            USERPTR,
            arena.addr(BadPtr::Straddle, 16),
            size,
            &[Errno::EFAULT],
        ),
        ("read-only", 0, USERPTR, ro, size, &[Errno::EFAULT]),
        (
            "with an unmapped page inside",
            0,
            USERPTR,
            holed,
            size,
            &[Errno::EFAULT],
        ),
        ("one byte short", 0, USERPTR, g0, size - 1, &[Errno::EINVAL]),
        (
            "top of the address space",
            0,
            USERPTR,
            u64::MAX - 64,
            size,
            &[Errno::EFAULT],
        ),
        ("index = count", 4, USERPTR, g0, size, &[Errno::EINVAL]),
        (
            "index u32::MAX",
            u32::MAX,
            USERPTR,
            g0,
            size,
            &[Errno::EINVAL],
        ),
        (
            "MMAP on a USERPTR queue",
            0,
            V4L2_MEMORY_MMAP,
            g0,
            size,
            &[Errno::EINVAL],
        ),
        ("memory type 77", 0, 77, g0, size, &[Errno::EINVAL]),
    ];
    for (name, index, memory, m, length, allowed) in cases {
        let r = qbuf(index, memory, m, length);
        rep.check(
            &format!(
                "userptr: QBUF {name}: {}",
                allowed
                    .iter()
                    .map(|e| format!("{e:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            expect(matches!(r, Err(e) if allowed.contains(&e)), || {
                format!("got {r:?}")
            }),
        );
    }
    // The queue still works: good buffers, 3 frames, none marked ERROR.
    let mut queued = true;
    for (i, b) in good.iter_mut().enumerate() {
        queued &= qbuf(i as u32, USERPTR, b.as_mut_ptr() as u64, size).is_ok();
    }
    rep.check(
        "userptr: then 4 good buffers queue",
        expect(queued, String::new),
    );
    let mut t: u32 = CAP;
    rep.check(
        "userptr: STREAMON",
        vioctl(&fd, VIDIOC_STREAMON, &mut t).map_err(|e| format!("{e:?}")),
    );
    for n in 0..3 {
        let r = mcemu_tests::dqbuf(&fd);
        rep.check(
            &format!("userptr: frame {n} arrives whole"),
            match r {
                Ok(b) => expect(
                    b.flags & V4L2_BUF_FLAG_ERROR == 0 && b.bytesused == size,
                    || format!("flags {:#x}, {} of {size} bytes", b.flags, b.bytesused),
                ),
                Err(e) => Err(format!("DQBUF {e:?}")),
            },
        );
    }
    let _ = vioctl(&fd, VIDIOC_STREAMOFF, &mut t);
    rep.finish()
}
