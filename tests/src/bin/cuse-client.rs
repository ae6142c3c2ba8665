//! Drives the loopback test device through real syscalls on its node: fixed-size and
//! pointer-carrying ioctls (2 and 3 RETRY rounds, and a payload beyond one round), read/write,
//! non-blocking read, poll wake-up, signals interrupting parked requests, and unregistration
//! while a handle is open.
//!
//!   cuse-client [NODE] [SERVER_PID]     (defaults: /dev/cusetest, no unregister step)

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use cuse::testdev::{TestAdd, TestSum, TEST_ADD, TEST_SUM, TEST_WAIT};
use mcemu_tests::{expect, Report};
use nix::errno::Errno;

fn open(path: &str, flags: i32) -> Result<OwnedFd, Errno> {
    let c = CString::new(path).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path; the returned fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `fd` was just returned by open() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl<T>(fd: &OwnedFd, cmd: u32, arg: *mut T) -> Result<i32, Errno> {
    // SAFETY: `arg` points to a live `T` of the size the command encodes (or is null for _IO).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as libc::c_ulong, arg) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

fn write(fd: &OwnedFd, data: &[u8]) -> Result<usize, Errno> {
    nix::unistd::write(fd, data)
}

fn read(fd: &OwnedFd, n: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; n];
    let got = nix::unistd::read(fd.as_raw_fd(), &mut buf)?;
    buf.truncate(got);
    Ok(buf)
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// Arms SIGALRM in `ms` without SA_RESTART, so a blocked syscall returns EINTR.
fn alarm_in(ms: u64) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_alarm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing, which is async-signal-safe.
    unsafe { sigaction(Signal::SIGALRM, &act) }.expect("sigaction");
    let it = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: (ms / 1000) as libc::time_t,
            tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
        },
    };
    // SAFETY: `it` is a valid itimerval; the old value is not requested.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
}

fn sum_check(fd: &OwnedFd, n: u32) -> Result<(), String> {
    let mut values: Vec<u32> = (1..=n).collect();
    let want = values.iter().fold(0u32, |a, v| a.wrapping_add(*v));
    let mut s = TestSum {
        values: values.as_mut_ptr() as u64,
        count: n,
        sum: 0,
    };
    ioctl(fd, TEST_SUM, &mut s).map_err(|e| format!("TEST_SUM: {e}"))?;
    expect(s.sum == want, || format!("sum {} != {want}", s.sum))?;
    let doubled = std::hint::black_box(&values);
    expect(
        doubled[0] == 2 && doubled[n as usize - 1] == n.wrapping_mul(2),
        || {
            format!(
                "array not written back: first {} last {}",
                doubled[0],
                doubled[n as usize - 1]
            )
        },
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let node = args.next().unwrap_or_else(|| "/dev/cusetest".into());
    let server: Option<i32> = args.next().and_then(|p| p.parse().ok());
    let mut r = Report::default();

    let fd = match open(&node, libc::O_RDWR) {
        Ok(fd) => fd,
        Err(e) => {
            println!("not ok - open {node}: {e}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    r.check("open the node", Ok(()));

    r.check("fixed-size _IOWR ioctl (2 rounds)", {
        let mut a = TestAdd {
            a: 40,
            b: 2,
            sum: 0,
        };
        ioctl(&fd, TEST_ADD, &mut a)
            .map_err(|e| e.to_string())
            .and_then(|_| expect(a.sum == 42, || format!("sum {}", a.sum)))
    });
    r.check("pointer-carrying ioctl (3 rounds)", sum_check(&fd, 1000));
    r.check(
        "payload beyond one round via process_vm_readv/writev (4 MiB)",
        sum_check(&fd, 1 << 20),
    );
    r.check("bad pointer gives EFAULT", {
        let e = ioctl(&fd, TEST_ADD, 16 as *mut TestAdd);
        expect(e == Err(Errno::EFAULT), || format!("{e:?}"))
    });
    r.check("unknown ioctl gives ENOTTY", {
        let e = ioctl(&fd, 0xc0047c99, std::ptr::null_mut::<u8>());
        expect(e == Err(Errno::ENOTTY), || format!("{e:?}"))
    });
    r.check("write then read", {
        (|| {
            expect(write(&fd, b"hello") == Ok(5), || "write".into())?;
            let got = read(&fd, 64).map_err(|e| e.to_string())?;
            expect(got == b"hello", || format!("{got:?}"))
        })()
    });
    r.check("non-blocking read of an empty device gives EAGAIN", {
        match open(&node, libc::O_RDWR | libc::O_NONBLOCK) {
            Ok(nb) => {
                let e = read(&nb, 8);
                expect(e == Err(Errno::EAGAIN), || format!("{e:?}"))
            }
            Err(e) => Err(e.to_string()),
        }
    });
    r.check("poll wakes up on a write from another handle", {
        (|| {
            let other = open(&node, libc::O_RDWR).map_err(|e| e.to_string())?;
            let fd2 = fd.try_clone().map_err(|e| e.to_string())?;
            let t = std::thread::spawn(move || {
                let mut p = [libc::pollfd {
                    fd: fd2.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                let start = Instant::now();
                // SAFETY: `p` is a valid array of one pollfd.
                let n = unsafe { libc::poll(p.as_mut_ptr(), 1, 10_000) };
                (n, p[0].revents, start.elapsed())
            });
            std::thread::sleep(Duration::from_millis(300));
            write(&other, b"x").map_err(|e| e.to_string())?;
            let (n, revents, took) = t.join().unwrap();
            read(&fd, 8).map_err(|e| e.to_string())?;
            expect(n == 1 && revents & libc::POLLIN != 0, || {
                format!("poll gave {n}, revents {revents:#x}")
            })?;
            expect(took >= Duration::from_millis(250), || {
                format!("poll returned before the write ({took:?})")
            })
        })()
    });
    r.check("a signal interrupts a parked read with EINTR", {
        alarm_in(300);
        let start = Instant::now();
        let e = read(&fd, 8);
        expect(e == Err(Errno::EINTR), || format!("{e:?}")).and_then(|_| {
            expect(start.elapsed() >= Duration::from_millis(250), || {
                "returned early".into()
            })
        })
    });
    r.check("a signal interrupts a parked ioctl with EINTR", {
        alarm_in(300);
        let e = ioctl(&fd, TEST_WAIT, std::ptr::null_mut::<u8>());
        expect(e == Err(Errno::EINTR), || format!("{e:?}"))
    });
    r.check("the device still serves after interrupts", {
        let mut a = TestAdd { a: 1, b: 1, sum: 0 };
        ioctl(&fd, TEST_ADD, &mut a)
            .map_err(|e| e.to_string())
            .and_then(|_| expect(a.sum == 2, || format!("sum {}", a.sum)))
    });

    if let Some(pid) = server {
        r.check(
            "unregister removes the node while the open handle keeps working",
            {
                (|| {
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGUSR1,
                    )
                    .map_err(|e| e.to_string())?;
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while std::path::Path::new(&node).exists() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    expect(!std::path::Path::new(&node).exists(), || {
                        format!("{node} still exists")
                    })?;
                    let mut a = TestAdd { a: 5, b: 6, sum: 0 };
                    ioctl(&fd, TEST_ADD, &mut a)
                        .map_err(|e| format!("ioctl after unregister: {e}"))?;
                    expect(a.sum == 11, || format!("sum {}", a.sum))
                })()
            },
        );
        drop(fd);
        r.check("the last close ends the server's channel", {
            let name = node.trim_start_matches("/dev/").replace('/', "!");
            let sys = format!("/sys/class/cuse/{name}");
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::path::Path::new(&sys).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            expect(!std::path::Path::new(&sys).exists(), || {
                format!("{sys} still exists")
            })
        });
    }
    std::process::exit(r.finish());
}
