//! Clients that misbehave on purpose, for the VM suites:
//!
//!   hostile-client silent SOCKET N SECONDS
//!       keeps N connections to a unix socket open for SECONDS without sending a byte; when
//!       the server closes one, connects again. Prints how many connections were made.

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
