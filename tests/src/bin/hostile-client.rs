//! Clients that misbehave on purpose, for the VM suites:
//!
//!   hostile-client silent SOCKET N SECONDS
//!       keeps N connections to a unix socket open for SECONDS without sending a byte; when
//!       the server closes one, connects again. Prints how many connections were made.
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
        ["poll", node] => poll_forever(node),
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
