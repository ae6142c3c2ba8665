//! Hot-unplug scenarios against a running `mcemu serve`, driven through `mcemu ctl`:
//!
//!   hotplug-client errnos mainline|enodev|strict   handles left open across unplug, replug, close order
//!   hotplug-client selftests CYCLES                the kernel selftests' loops while unplugging
//!   hotplug-client close-orders                    every close order of handles kept across unplug
//!   hotplug-client stress CYCLES THREADS           random open/ioctl/close across unplug/replug cycles
//!   hotplug-client stale PATH                      unplug with PATH open, then one ioctl and close
//!   hotplug-client streaming PROFILE               unplug while streaming, with DQBUF and poll blocked
//!   hotplug-client streamon-race                   unplug while STREAMON is parked at stage "mid"
//!   hotplug-client mmap-unplug                     unplug with MMAP buffers mapped (LD_PRELOAD the shim)
//!   hotplug-client allocator LIFETIME              a shared media device (usb-av-like): the kernel's
//!                                                  media_dev_allocator.sh procedure, both orders,
//!                                                  with handles held across the unbinds

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ioctl_abi::videodev2::{
    v4l2_event, v4l2_event_subscription, V4L2_EVENT_FRAME_SYNC, VIDIOC_DQEVENT,
    VIDIOC_SUBSCRIBE_EVENT,
};
use mcemu_tests::*;
use nix::errno::Errno;
use parking_lot::Mutex;

fn read(fd: &OwnedFd) -> Result<usize, Errno> {
    let mut b = [0u8; 16];
    nix::unistd::read(fd.as_raw_fd(), &mut b)
}

fn wait_for(cond: impl Fn() -> bool, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

extern "C" fn on_usr1(_: libc::c_int) {}

/// Subscribes `fd` (the CCDC) to FRAME_SYNC and blocks in VIDIOC_DQEVENT on another thread.
/// Returns the thread (its result) and its pthread id for signalling.
fn blocked_dqevent(fd: &OwnedFd) -> (std::thread::JoinHandle<Result<(), Errno>>, Arc<AtomicU64>) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_usr1),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing, which is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR1, &act) }.expect("sigaction");
    let mut sub = v4l2_event_subscription::zeroed();
    sub.type_ = V4L2_EVENT_FRAME_SYNC;
    // SAFETY: `sub` is a live struct of the size the command encodes.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), VIDIOC_SUBSCRIBE_EVENT as _, &mut sub) };
    assert_eq!(r, 0, "subscribing to FRAME_SYNC on the CCDC");
    let fd = fd.try_clone().unwrap();
    let tid = Arc::new(AtomicU64::new(0));
    let t = tid.clone();
    let h = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        t.store(unsafe { libc::pthread_self() } as u64, Ordering::SeqCst);
        let mut ev = v4l2_event::zeroed();
        // SAFETY: `ev` is a live struct of the size the command encodes.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), VIDIOC_DQEVENT as _, &mut ev) };
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    });
    (h, tid)
}

/// VIDIOC_G_CTRL of the brightness control.
fn g_brightness(fd: &OwnedFd) -> Result<i32, Errno> {
    let mut c = ioctl_abi::videodev2::v4l2_control {
        id: ioctl_abi::videodev2::V4L2_CID_BRIGHTNESS,
        value: 0,
    };
    // SAFETY: `c` is a live struct of the size the command encodes.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            ioctl_abi::videodev2::VIDIOC_G_CTRL as _,
            &mut c,
        )
    };
    Errno::result(r).map(|_| c.value)
}

/// VIDIOC_OMAP3ISP_STAT_EN 1.
fn stat_en(fd: &OwnedFd) -> Result<(), Errno> {
    let mut on: u64 = 1;
    // SAFETY: `on` is the unsigned long the command encodes.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            ioctl_abi::omap3isp::VIDIOC_OMAP3ISP_STAT_EN as _,
            &mut on,
        )
    };
    Errno::result(r).map(|_| ())
}

/// Unplug while an application streams: frames flow, then DQBUF and poll block with no buffer
/// queued, the device goes, and the blocked calls and the handle behave as the profile says.
fn streaming(profile: &str, r: &mut Report) {
    use ioctl_abi::videodev2::{VIDIOC_STREAMOFF, VIDIOC_STREAMON};
    let mut c = match Capture::setup(3) {
        Ok(c) => c,
        Err(e) => return r.check("streaming setup", Err(e)),
    };
    r.check("queue 3 USERPTR buffers and STREAMON", {
        let q = (0..3).try_for_each(|i| c.qbuf(i));
        let s = c.stream(VIDIOC_STREAMON);
        expect(q.is_ok() && s.is_ok(), || format!("{q:?} {s:?}"))
    });
    r.check(
        "3 frames come back, sequence growing, written into our memory",
        {
            let got: Result<Vec<_>, _> = (0..3).map(|_| dqbuf(&c.fd)).collect();
            match got {
                Ok(b) => expect(
                    b.windows(2).all(|w| w[1].sequence > w[0].sequence)
                        && c.bufs.iter().all(|m| m.iter().any(|&x| x != 0)),
                    || {
                        format!(
                            "sequences {:?}",
                            b.iter().map(|b| b.sequence).collect::<Vec<_>>()
                        )
                    },
                ),
                Err(e) => Err(format!("DQBUF: {e}")),
            }
        },
    );
    // No buffer queued now: DQBUF and poll block.
    let fd = c.fd.try_clone().unwrap();
    let dq = std::thread::spawn(move || dqbuf(&fd).map(|_| ()));
    let pfd = c.fd.try_clone().unwrap();
    let poller = std::thread::spawn(move || poll(&pfd, libc::POLLIN, 10_000));
    std::thread::sleep(Duration::from_millis(300));
    r.check(
        "DQBUF and poll block with nothing queued",
        expect(!dq.is_finished() && !poller.is_finished(), || {
            "a call returned".into()
        }),
    );
    r.check("mcemu ctl unplug", ctl_ok(&["unplug"]).map(|_| ()));
    let want = if profile == "strict" {
        Errno::ENODEV
    } else {
        Errno::EINVAL
    };
    r.check(
        &format!("{profile}: the blocked DQBUF wakes with {want}"),
        match wait_for(|| dq.is_finished(), "DQBUF to return") {
            Ok(()) => {
                let e = dq.join().unwrap();
                expect(e == Err(want), || format!("{e:?}"))
            }
            Err(e) => Err(e),
        },
    );
    r.check("the parked poll(POLLIN) wakes with ERR|HUP", {
        let (n, rev) = poller.join().unwrap();
        let want = libc::POLLERR | libc::POLLHUP;
        expect(n == 1 && rev == want, || format!("n={n} revents={rev:#x}"))
    });
    r.check("QBUF, DQBUF and STREAMOFF after unplug: ENODEV", {
        let (a, b, s) = (
            c.qbuf(0),
            dqbuf(&c.fd).map(|_| ()),
            c.stream(VIDIOC_STREAMOFF),
        );
        expect(
            a == Err(Errno::ENODEV) && b == Err(Errno::ENODEV) && s == Err(Errno::ENODEV),
            || format!("{a:?} {b:?} {s:?}"),
        )
    });
    let path = c.path.clone();
    drop(c);
    r.check(
        &format!("close of {path} after unplug, then the instance is released"),
        {
            wait_for(
                || {
                    let s = summary();
                    field(&s, "released") == 1 && field(&s, "open_handles") == 0
                },
                "release",
            )
            .map_err(|e| format!("{e}: {}", summary()))
        },
    );
}

/// Unplug while STREAMON is parked at stage "mid" (past the registered check, holding the
/// device): the call completes on its own terms, no frame thread survives the instance.
fn streamon_race(r: &mut Report) {
    use ioctl_abi::videodev2::VIDIOC_STREAMON;
    let mut c = match Capture::setup(2) {
        Ok(c) => c,
        Err(e) => return r.check("streamon-race setup", Err(e)),
    };
    r.check(
        "queue 2 buffers",
        (0..2)
            .try_for_each(|i| c.qbuf(i))
            .map_err(|e| e.to_string()),
    );
    r.check(
        "arm a breakpoint on STREAMON at mid",
        ctl_ok(&[
            "break",
            "--node",
            &c.path,
            "--ioctl",
            "VIDIOC_STREAMON",
            "--stage",
            "mid",
        ])
        .map(|_| ()),
    );
    let fd = c.fd.try_clone().unwrap();
    let on = std::thread::spawn(move || {
        let mut t: u32 = CAP;
        vioctl(&fd, VIDIOC_STREAMON, &mut t)
    });
    r.check(
        "STREAMON reaches the breakpoint",
        ctl_ok(&["wait-hit", "--timeout", "10"]).map(|_| ()),
    );
    r.check("unplug while it is parked", ctl_ok(&["unplug"]).map(|_| ()));
    r.check("continue", ctl_ok(&["continue"]).map(|_| ()));
    r.check("STREAMON ends with EINVAL: unplug released the queue", {
        let e = on.join().unwrap();
        expect(e == Err(Errno::EINVAL), || format!("{e:?}"))
    });
    r.check("DQBUF after unplug: ENODEV", {
        let e = dqbuf(&c.fd).map(|_| ());
        expect(e == Err(Errno::ENODEV), || format!("{e:?}"))
    });
    drop(c);
    r.check("the instance is released after close", {
        wait_for(|| field(&summary(), "released") == 1, "release")
            .map_err(|e| format!("{e}: {}", summary()))
    });
}

/// Unplug while MMAP buffers are mapped (through the preload shim): the mappings stay readable
/// with the last frame in them, new mappings and ioctls fail, munmap and close work.
fn mmap_unplug(r: &mut Report) {
    use ioctl_abi::videodev2::*;
    let c = match Capture::setup(0) {
        Ok(c) => c,
        Err(e) => return r.check("mmap setup", Err(e)),
    };
    let mut rb = v4l2_requestbuffers::zeroed();
    rb.count = 2;
    rb.type_ = CAP;
    rb.memory = V4L2_MEMORY_MMAP;
    r.check(
        "REQBUFS 2 MMAP",
        vioctl(&c.fd, VIDIOC_REQBUFS, &mut rb).map_err(|e| e.to_string()),
    );
    let mut maps = Vec::new();
    for i in 0..rb.count {
        let mut b = v4l2_buffer::zeroed();
        b.index = i;
        b.type_ = CAP;
        b.memory = V4L2_MEMORY_MMAP;
        if vioctl(&c.fd, VIDIOC_QUERYBUF, &mut b).is_err() {
            return r.check("QUERYBUF", Err("failed".into()));
        }
        // SAFETY: a shared read-only mapping of the buffer QUERYBUF describes; unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                b.length as usize,
                libc::PROT_READ,
                libc::MAP_SHARED,
                c.fd.as_raw_fd(),
                b.m as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return r.check(
                "mmap of the buffers (is the shim preloaded?)",
                Err(std::io::Error::last_os_error().to_string()),
            );
        }
        maps.push((p as *const u8, b.length as usize, b.m));
        vioctl(&c.fd, VIDIOC_QBUF, &mut b).expect("QBUF");
    }
    r.check("both buffers mapped and queued", Ok(()));
    r.check(
        "STREAMON",
        c.stream(VIDIOC_STREAMON).map_err(|e| e.to_string()),
    );
    let mut b = v4l2_buffer::zeroed();
    b.type_ = CAP;
    b.memory = V4L2_MEMORY_MMAP;
    let got = vioctl(&c.fd, VIDIOC_DQBUF, &mut b);
    let (p, len, _) = maps[b.index as usize];
    // SAFETY: `p` maps `len` readable bytes until the munmap below.
    let frame = unsafe { std::slice::from_raw_parts(p, len) }.to_vec();
    r.check("a frame arrives in the mapped buffer", {
        expect(got.is_ok() && frame.iter().any(|&x| x != 0), || {
            format!("{got:?}")
        })
    });
    // O_NONBLOCK set with fcntl() after open(): the shim passes it on, so a DQBUF with nothing
    // queued returns EAGAIN instead of blocking.
    let mut second = v4l2_buffer::zeroed();
    second.type_ = CAP;
    second.memory = V4L2_MEMORY_MMAP;
    let got2 = vioctl(&c.fd, VIDIOC_DQBUF, &mut second);
    r.check(
        "fcntl(F_SETFL, O_NONBLOCK) makes DQBUF with nothing queued EAGAIN",
        {
            // SAFETY: F_GETFL/F_SETFL on our descriptor.
            let set = unsafe {
                let fl = libc::fcntl(c.fd.as_raw_fd(), libc::F_GETFL);
                libc::fcntl(c.fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK)
            };
            let fd = c.fd.try_clone().unwrap();
            let t = std::thread::spawn(move || {
                let mut b = v4l2_buffer::zeroed();
                b.type_ = CAP;
                b.memory = V4L2_MEMORY_MMAP;
                vioctl(&fd, VIDIOC_DQBUF, &mut b).map(|_| ())
            });
            let waited = wait_for(|| t.is_finished(), "the non-blocking DQBUF");
            let e = if waited.is_ok() {
                t.join().unwrap()
            } else {
                Ok(())
            };
            expect(got2.is_ok() && set == 0 && e == Err(Errno::EAGAIN), || {
                format!("second DQBUF {got2:?}, F_SETFL {set}, DQBUF {e:?} ({waited:?})")
            })
        },
    );
    // REQBUFS(0) with the buffers still mapped: they become orphans (V4L2_BUF_CAP_SUPPORTS_
    // ORPHANED_BUFS), the mappings stay.
    r.check("STREAMOFF and REQBUFS(0) while mapped", {
        let off = c.stream(VIDIOC_STREAMOFF);
        let mut zero = v4l2_requestbuffers::zeroed();
        zero.type_ = CAP;
        zero.memory = V4L2_MEMORY_MMAP;
        let rq = vioctl(&c.fd, VIDIOC_REQBUFS, &mut zero);
        expect(off.is_ok() && rq.is_ok(), || format!("{off:?} {rq:?}"))
    });
    r.check("the orphaned mapping still holds its frame", {
        // SAFETY: as above.
        let now = unsafe { std::slice::from_raw_parts(p, len) };
        expect(now == &frame[..], || "the mapped bytes changed".into())
    });
    r.check("mcemu ctl unplug", ctl_ok(&["unplug"]).map(|_| ()));
    r.check("the mapping stays readable after unplug, with its frame", {
        // SAFETY: as above; the mapping is still ours.
        let now = unsafe { std::slice::from_raw_parts(p, len) };
        expect(now == &frame[..], || "the mapped bytes changed".into())
    });
    r.check("QBUF after unplug: ENODEV", {
        let e = vioctl(&c.fd, VIDIOC_QBUF, &mut b);
        expect(e == Err(Errno::ENODEV), || format!("{e:?}"))
    });
    r.check("a new mmap after unplug: ENODEV", {
        // SAFETY: a request that fails; nothing is mapped.
        let q = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                c.fd.as_raw_fd(),
                maps[0].2 as libc::off_t,
            )
        };
        let e = std::io::Error::last_os_error().raw_os_error();
        expect(q == libc::MAP_FAILED && e == Some(libc::ENODEV), || {
            format!("{q:?} {e:?}")
        })
    });
    r.check("munmap works", {
        // SAFETY: unmapping exactly what was mapped above.
        let ok = maps
            .iter()
            .all(|(p, len, _)| unsafe { libc::munmap(*p as *mut _, *len) } == 0);
        expect(ok, || "munmap failed".into())
    });
    drop(c);
    r.check("the instance is released after close", {
        wait_for(|| field(&summary(), "released") == 1, "release")
            .map_err(|e| format!("{e}: {}", summary()))
    });
}

fn errnos(profile: &str, r: &mut Report) {
    let media_errno = if profile == "mainline" {
        Errno::EIO
    } else {
        Errno::ENODEV
    };
    let (media, videos, subdevs) = nodes();
    let (video, subdev) = (videos[2].clone(), subdevs[2].clone());
    let m = open(&media).expect("open media");
    let v = open(&video).expect("open video");
    let s = open(&subdev).expect("open subdev");
    // The preview's controls and the AEWB engine's private ioctls go the same way.
    let (preview, aewb) = (
        open(&subdevs[3]).expect("open preview"),
        open(&subdevs[5]).expect("open AEWB"),
    );
    r.check(
        "before unplug: G_CTRL on the preview, STAT_EN on the unconfigured AEWB (EINVAL)",
        {
            let (c, e) = (g_brightness(&preview), stat_en(&aewb));
            expect(c.is_ok() && e == Err(Errno::EINVAL), || {
                format!("{c:?} {e:?}")
            })
        },
    );
    let (dq, dq_tid) = blocked_dqevent(&s);
    r.check("ioctls work before unplug", {
        expect(
            probe(&m, &media).is_ok() && probe(&v, &video).is_ok() && probe(&s, &subdev).is_ok(),
            || "a probe ioctl failed".into(),
        )
    });
    // A parked poller on the media node: POLLPRI, which it never reports while registered.
    // (A video node that is not streaming answers POLLERR at once, as vb2 does; the streaming
    // scenario parks a poller there.)
    r.check(
        "poll on a video node that is not streaming: POLLERR at once",
        {
            let (n, rev) = poll(&v, libc::POLLIN | libc::POLLPRI, 10_000);
            expect(n == 1 && rev == libc::POLLERR, || {
                format!("poll {n} revents {rev:#x}")
            })
        },
    );
    let mp = m.try_clone().unwrap();
    let parked_m = std::thread::spawn(move || poll(&mp, libc::POLLPRI, 10_000));
    std::thread::sleep(Duration::from_millis(200));
    r.check(
        "DQEVENT blocks before unplug",
        expect(!dq.is_finished(), || "DQEVENT returned".into()),
    );
    r.check(
        "the media node's poller is parked before unplug",
        expect(!parked_m.is_finished(), || {
            "poll(POLLPRI) returned while registered".into()
        }),
    );
    r.check("mcemu ctl unplug", ctl_ok(&["unplug"]).map(|_| ()));
    r.check("nodes leave /dev at once", {
        let gone = [&media, &video, &subdev]
            .iter()
            .all(|p| open(p).err() == Some(Errno::ENOENT));
        expect(gone, || "a node path still opens".into())
    });
    r.check(&format!("media ioctl after unplug: {media_errno}"), {
        let e = probe(&m, &media);
        expect(e == Err(media_errno), || format!("{e:?}"))
    });
    r.check("video and subdev ioctls after unplug: ENODEV", {
        let (a, b) = (probe(&v, &video), probe(&s, &subdev));
        expect(a == Err(Errno::ENODEV) && b == Err(Errno::ENODEV), || {
            format!("{a:?} {b:?}")
        })
    });
    r.check("control and private ioctls after unplug: ENODEV", {
        let (c, e) = (g_brightness(&preview), stat_en(&aewb));
        expect(c == Err(Errno::ENODEV) && e == Err(Errno::ENODEV), || {
            format!("{c:?} {e:?}")
        })
    });
    drop((preview, aewb));
    r.check("read after unplug: EINVAL (no read op)", {
        let (a, b) = (read(&m), read(&v));
        expect(a == Err(Errno::EINVAL) && b == Err(Errno::EINVAL), || {
            format!("{a:?} {b:?}")
        })
    });
    r.check("poll on the video node after unplug: ERR|HUP|PRI", {
        let (n, rev) = poll(&v, libc::POLLPRI, 10_000);
        let want = libc::POLLERR | libc::POLLHUP | libc::POLLPRI;
        expect(n == 1 && rev == want, || {
            format!("poll {n} revents {rev:#x}")
        })
    });
    r.check("parked poll on the media node wakes with ERR|HUP", {
        let (n, rev) = parked_m.join().unwrap();
        expect(n == 1 && rev == libc::POLLERR | libc::POLLHUP, || {
            format!("poll {n} revents {rev:#x}")
        })
    });
    r.check("poll on the subdev node: ERR|HUP|PRI", {
        let (n, rev) = poll(&s, libc::POLLIN | libc::POLLPRI, 0);
        expect(
            n == 1 && rev == libc::POLLERR | libc::POLLHUP | libc::POLLPRI,
            || format!("{n} {rev:#x}"),
        )
    });
    if profile == "strict" {
        r.check("strict: the blocked DQEVENT wakes with ENODEV", {
            let _ = wait_for(|| dq.is_finished(), "DQEVENT to return");
            let got = if dq.is_finished() {
                dq.join().unwrap()
            } else {
                Ok(())
            };
            expect(got == Err(Errno::ENODEV), || format!("{got:?}"))
        });
    } else {
        std::thread::sleep(Duration::from_millis(300));
        r.check(
            &format!("{profile}: the blocked DQEVENT keeps blocking across unplug"),
            expect(!dq.is_finished(), || "DQEVENT returned".into()),
        );
        // SAFETY: the thread is alive (blocked in the ioctl); SIGUSR1 has a no-op handler.
        unsafe {
            libc::pthread_kill(
                dq_tid.load(Ordering::SeqCst) as libc::pthread_t,
                libc::SIGUSR1,
            )
        };
        r.check(&format!("{profile}: a signal ends it with EINTR"), {
            let _ = wait_for(|| dq.is_finished(), "DQEVENT to return");
            let got = if dq.is_finished() {
                dq.join().unwrap()
            } else {
                Ok(())
            };
            expect(got == Err(Errno::EINTR), || format!("{got:?}"))
        });
    }
    r.check(
        "double unplug is refused with a message",
        match ctl(&["unplug", "--instance", "0"]) {
            (1, _, err) if err.contains("already unplugged") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    r.check("audit: unplugged, not released, 3 handles pin it", {
        let s = summary();
        expect(
            field(&s, "unplugged") == 1
                && field(&s, "released") == 0
                && field(&s, "open_handles") == 3,
            || s.clone(),
        )
    });
    // Replug while the old handles are open: a fresh instance on new node numbers.
    r.check(
        "replug while old handles are open",
        ctl_ok(&["replug"]).map(|_| ()),
    );
    r.check(
        "the new instance is ready",
        ctl_ok(&["status", "--wait", "30"]).map(|_| ()),
    );
    let (new_media, new_videos, _) = nodes();
    r.check(
        "the new nodes take other numbers while the old ones are held",
        {
            expect(new_media != media && !new_videos.contains(&video), || {
                format!("{new_media} {new_videos:?}")
            })
        },
    );
    r.check("the new media node answers", {
        let fd = open(&new_media).map_err(|e| e.to_string());
        fd.and_then(|fd| probe(&fd, &new_media).map_err(|e| e.to_string()))
    });
    r.check("old handles still get the unplug errnos", {
        let e = probe(&v, &video);
        expect(e == Err(Errno::ENODEV), || format!("{e:?}"))
    });
    // Close order: media first, then subdev, then video; the memory goes at the last close.
    drop(m);
    std::thread::sleep(Duration::from_millis(50));
    r.check("still pinned after closing the media handle", {
        let s = summary();
        expect(field(&s, "released") == 0, || s.clone())
    });
    drop(s);
    drop(v);
    r.check(
        "released after the last close; the old instance's objects are gone",
        {
            wait_for(|| field(&summary(), "released") == 1, "release").and_then(|_| {
                let a: serde_json::Value =
                    serde_json::from_str(&ctl_ok(&["audit"])?).map_err(|e| e.to_string())?;
                let old = &a["instances"][0];
                let live: i64 = old["live"]
                    .as_object()
                    .map(|m| m.values().filter_map(|v| v.as_i64()).sum())
                    .unwrap_or(-1);
                let log: Vec<String> = old["log"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                expect(live == 0, || format!("live objects of instance 0: {old}"))?;
                expect(
                    log.last()
                        .is_some_and(|l| l.ends_with("media device released")),
                    || format!("release is not the last event: {log:?}"),
                )
            })
        },
    );
}

/// Every order of closing a media, a video and a sub-device handle kept open across unplug: the
/// media device goes at the last close, never before; a replug after that reuses the numbers.
fn close_orders(r: &mut Report) {
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let kinds = ["media", "video", "subdev"];
    for (n, order) in orders.iter().enumerate() {
        let (media, videos, subdevs) = nodes();
        let paths = [media.clone(), videos[2].clone(), subdevs[2].clone()];
        let mut fds: Vec<Option<OwnedFd>> = paths.iter().map(|p| open(p).ok()).collect();
        let released_before = field(&summary(), "released");
        let name = order
            .iter()
            .map(|i| kinds[*i])
            .collect::<Vec<_>>()
            .join(", ");
        r.check(
            &format!("order {name}: unplug with three handles open"),
            ctl_ok(&["unplug"]).map(|_| ()),
        );
        for (k, i) in order.iter().enumerate() {
            fds[*i] = None;
            if k < 2 {
                std::thread::sleep(Duration::from_millis(250));
                let s = summary();
                r.check(
                    &format!("order {name}: still pinned after closing the {}", kinds[*i]),
                    expect(field(&s, "released") == released_before, || s.clone()),
                );
            }
        }
        r.check(&format!("order {name}: released at the last close"), {
            wait_for(
                || field(&summary(), "released") == released_before + 1,
                "release",
            )
        });
        r.check(&format!("order {name}: replug"), {
            ctl_ok(&["replug"])
                .and_then(|_| ctl_ok(&["status", "--wait", "30"]))
                .map(|_| ())
        });
        if n == 0 {
            let (again, _, _) = nodes();
            r.check(
                "after the final release a replug reuses the node numbers",
                expect(again == media, || format!("{again} after {media}")),
            );
        }
    }
}

/// media_device_test / video_device_test / open_loop_test.sh, while unplug and replug cycle.
fn selftests(cycles: u32, r: &mut Report) {
    let stop = Arc::new(AtomicBool::new(false));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let ops = Arc::new(AtomicU64::new(0));
    let (media, videos, _) = nodes();
    let mut workers = Vec::new();
    // Keep-open loops: the handle stays open across the unbind; ioctls answer EIO/ENODEV after it.
    for path in [media.clone(), videos[6].clone()] {
        let (stop, unexpected, ops) = (stop.clone(), unexpected.clone(), ops.clone());
        workers.push(std::thread::spawn(move || {
            let fd = open(&path).expect("open");
            let mut gone = false;
            while !stop.load(Ordering::SeqCst) {
                match probe(&fd, &path) {
                    Ok(()) if gone => unexpected
                        .lock()
                        .push(format!("{path}: ioctl works after unplug")),
                    Ok(()) => {}
                    Err(Errno::EIO) | Err(Errno::ENODEV) => gone = true,
                    Err(e) => unexpected
                        .lock()
                        .push(format!("{path}: kept-open ioctl {e}")),
                }
                ops.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    // open_loop_test.sh: open, DEVICE_INFO, close, on whatever media node is current.
    {
        let (stop, unexpected, ops) = (stop.clone(), unexpected.clone(), ops.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let path = nodes().0;
                match open(&path) {
                    Ok(fd) => match probe(&fd, &path) {
                        Ok(()) | Err(Errno::EIO) => {}
                        Err(e) => unexpected.lock().push(format!("open loop ioctl {e}")),
                    },
                    Err(Errno::ENOENT) | Err(Errno::ENXIO) | Err(Errno::ENODEV) => {}
                    Err(e) => unexpected.lock().push(format!("open loop open {e}")),
                }
                ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut cycle_errors = Vec::new();
    for _ in 0..cycles {
        std::thread::sleep(Duration::from_millis(30));
        if let Err(e) = ctl_ok(&["unplug"])
            .and_then(|_| ctl_ok(&["replug"]))
            .and_then(|_| ctl_ok(&["status", "--wait", "30"]))
        {
            cycle_errors.push(e);
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    r.check(
        &format!("{cycles} unplug/replug cycles"),
        expect(cycle_errors.is_empty(), || cycle_errors.join("; ")),
    );
    r.check("the selftest loops saw only the documented errnos", {
        let u = unexpected.lock();
        expect(u.is_empty(), || {
            u.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        })
    });
    println!("# selftest loops: {} syscalls", ops.load(Ordering::Relaxed));
    audit_settles(cycles + 1, r);
}

/// Every instance but the newest is released with nothing left alive.
fn audit_settles(instances: u32, r: &mut Report) {
    r.check(
        "audit: every unplugged instance released, no handles, no use-after-free",
        {
            wait_for(
                || {
                    let s = summary();
                    field(&s, "released") == i64::from(instances) - 1
                        && field(&s, "open_handles") == 0
                },
                "the audit to settle",
            )
            .and_then(|_| {
                let s = summary();
                expect(
                    field(&s, "instances") == i64::from(instances)
                        && field(&s, "registered") == 1
                        && field(&s, "unplugged") == 0
                        && field(&s, "uaf_events") == 0,
                    || s.clone(),
                )
            })
        },
    );
}

fn stress(cycles: u32, threads: u32, r: &mut Report) {
    let stop = Arc::new(AtomicBool::new(false));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let ops = Arc::new(AtomicU64::new(0));
    let current = Arc::new(Mutex::new(nodes()));
    let mut workers = Vec::new();
    for t in 0..threads {
        let (stop, unexpected, ops, current) = (
            stop.clone(),
            unexpected.clone(),
            ops.clone(),
            current.clone(),
        );
        workers.push(std::thread::spawn(move || {
            let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(t + 1);
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut held: Vec<(String, OwnedFd)> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let path = {
                    let c = current.lock();
                    let all: Vec<&String> = std::iter::once(&c.0).chain(&c.1).chain(&c.2).collect();
                    all[(next() % all.len() as u64) as usize].clone()
                };
                match open(&path) {
                    Ok(fd) => held.push((path, fd)),
                    Err(Errno::ENOENT) | Err(Errno::ENODEV) | Err(Errno::ENXIO) => {}
                    Err(e) => unexpected.lock().push(format!("open {path}: {e}")),
                }
                if !held.is_empty() {
                    let i = (next() % held.len() as u64) as usize;
                    let (p, fd) = &held[i];
                    match probe(fd, p) {
                        Ok(()) | Err(Errno::ENODEV) | Err(Errno::EIO) => {}
                        Err(e) => unexpected.lock().push(format!("ioctl {p}: {e}")),
                    }
                    if next() % 3 == 0 || held.len() > 8 {
                        held.swap_remove(i);
                    }
                }
                ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut cycle_errors = Vec::new();
    for _ in 0..cycles {
        std::thread::sleep(Duration::from_millis(20));
        let step = ctl_ok(&["unplug"])
            .and_then(|_| ctl_ok(&["replug"]))
            .and_then(|_| ctl_ok(&["status", "--wait", "30"]));
        match step {
            Ok(_) => *current.lock() = nodes(),
            Err(e) => cycle_errors.push(e),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut hung = 0;
    for w in workers {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !w.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if w.is_finished() {
            let _ = w.join();
        } else {
            hung += 1;
        }
    }
    r.check(
        &format!("{cycles} unplug/replug cycles under {threads} threads"),
        expect(cycle_errors.is_empty(), || cycle_errors.join("; ")),
    );
    r.check(
        "no thread hung",
        expect(hung == 0, || format!("{hung} threads stuck")),
    );
    r.check("no unexpected errno", {
        let u = unexpected.lock();
        expect(u.is_empty(), || {
            format!(
                "{} unexpected: {}",
                u.len(),
                u.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        })
    });
    println!(
        "# stress: {} open/ioctl/close steps",
        ops.load(Ordering::Relaxed)
    );
    audit_settles(cycles + 1, r);
}

/// The shared media device's driver name and entity count, or None once no /dev/mediaN
/// answers (a fresh media device may get another number while the old node lingers).
fn shared_media() -> Option<(String, usize)> {
    let mut paths: Vec<_> = std::fs::read_dir("/dev")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("media"))
        })
        .collect();
    paths.sort();
    paths.into_iter().find_map(|p| {
        let path = p.to_str()?.to_string();
        let fd = open(&path).ok()?;
        let mut info = ioctl_abi::media::media_device_info::zeroed();
        vioctl(&fd, ioctl_abi::media::MEDIA_IOC_DEVICE_INFO, &mut info).ok()?;
        let out = std::process::Command::new("media-ctl")
            .args(["-d", &path, "-p"])
            .output()
            .ok()?;
        let entities = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("- entity"))
            .count();
        Some((ioctl_abi::cstr(&info.driver).to_string(), entities))
    })
}

/// The kernel's media_dev_allocator.sh against usb-av-like (au0828 video, snd-usb-audio
/// audio sharing /dev/media0), then the reverse order; a media handle and a video handle are
/// held across the unbinds. `lifetime` decides the use-after-free events expected.
fn allocator(lifetime: &str, r: &mut Report) {
    const V: &str = "au0828";
    const A: &str = "snd-usb-audio";
    let step =
        |r: &mut Report, what: &str, verb: &str, driver: &str, want: Option<(&str, usize)>| {
            let done = ctl_ok(&[verb, "--driver", driver]);
            let res = done.and_then(|_| {
                let ok = || match (shared_media(), want) {
                    (None, None) => true,
                    (Some((d, n)), Some((wd, wn))) => d == wd && n == wn,
                    _ => false,
                };
                wait_for(ok, "the media device as expected")
                    .map_err(|e| format!("{e}: have {:?}, want {want:?}", shared_media()))
            });
            r.check(
                &format!(
                    "{lifetime}: {what}: {verb} {driver}: {}",
                    match want {
                        None => "media device deleted".to_string(),
                        Some((d, n)) => format!("media device present ({d}, {n} entities)"),
                    }
                ),
                res,
            );
        };
    r.check(
        &format!("{lifetime}: both drivers bound: au0828's media device, 4 entities"),
        expect(shared_media() == Some((V.into(), 4)), || {
            format!("{:?}", shared_media())
        }),
    );
    let media = open("/dev/media0").expect("open /dev/media0");
    let video = open("/dev/video0").expect("open /dev/video0");
    // Test unbind both devices.
    step(r, "unbind both", "unbind", V, Some((V, 1)));
    r.check(
        &format!("{lifetime}: the video handle of the unbound driver gets ENODEV"),
        expect(probe(&video, "/dev/video0") == Err(Errno::ENODEV), || {
            format!("{:?}", probe(&video, "/dev/video0"))
        }),
    );
    r.check(
        &format!("{lifetime}: the media handle still works while audio is bound"),
        probe(&media, "/dev/media0").map_err(|e| e.to_string()),
    );
    // devm: au0828's video_device lived in its driver context, freed at its unbind while
    // snd-usb-audio keeps the media device: that ioctl touched freed memory.
    let want = i64::from(lifetime == "devm");
    r.check(
        &format!("{lifetime}: {want} use-after-free event(s) from the video handle"),
        expect(field(&summary(), "uaf_events") == want, summary),
    );
    step(r, "unbind both", "unbind", A, None);
    r.check(
        &format!("{lifetime}: the held media handle gets EIO after the last unbind"),
        expect(probe(&media, "/dev/media0") == Err(Errno::EIO), || {
            format!("{:?}", probe(&media, "/dev/media0"))
        }),
    );
    drop(video);
    drop(media);
    // devm: the video handle's ioctl and close touch au0828's freed context, the stale media
    // ioctl and its close the media device freed at the last unbind.
    let want_uaf = if lifetime == "devm" { 4 } else { 0 };
    r.check(
        &format!(
            "{lifetime}: the deleted media device is released; {want_uaf} use-after-free event(s)"
        ),
        wait_for(
            || {
                let s = summary();
                field(&s, "released") == 1 && field(&s, "uaf_events") == want_uaf
            },
            "the release",
        )
        .map_err(|e| format!("{e}: {}", summary())),
    );
    // Test bind both devices.
    step(r, "bind both", "bind", V, Some((V, 3)));
    step(r, "bind both", "bind", A, Some((V, 4)));
    // Unbind and bind each in turn: the media device is there throughout.
    step(r, "one at a time", "unbind", V, Some((V, 1)));
    step(r, "one at a time", "bind", V, Some((V, 4)));
    step(r, "one at a time", "unbind", A, Some((V, 3)));
    step(r, "one at a time", "bind", A, Some((V, 4)));
    // The other order: audio goes first, then comes first, and names the new device.
    step(r, "reverse order", "unbind", A, Some((V, 3)));
    step(r, "reverse order", "unbind", V, None);
    step(r, "reverse order", "bind", A, Some((A, 1)));
    step(r, "reverse order", "bind", V, Some((A, 4)));
    r.check(
        &format!("{lifetime}: binding a bound driver is refused"),
        expect(ctl_ok(&["bind", "--driver", V]).is_err(), String::new),
    );
    r.check(
        &format!("{lifetime}: unbinding an unknown driver is refused"),
        expect(
            ctl_ok(&["unbind", "--driver", "nope"]).is_err(),
            String::new,
        ),
    );
    // The video function streams in the rebuilt graph.
    r.check(
        &format!("{lifetime}: v4l2-ctl streams 5 frames from the rebound video driver"),
        (|| {
            let out = std::process::Command::new("v4l2-ctl")
                .args([
                    "-d",
                    "/dev/video0",
                    "--stream-user",
                    "--stream-count=5",
                    "--stream-to=/tmp/av.raw",
                ])
                .output()
                .map_err(|e| e.to_string())?;
            let len = std::fs::metadata("/tmp/av.raw")
                .map(|m| m.len())
                .unwrap_or(0);
            expect(out.status.success() && len == 5 * 720 * 480 * 2, || {
                format!("exit {:?}, {len} bytes", out.status.code())
            })
        })(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut r = Report::default();
    let num = |i: usize, d: u32| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("errnos") => errnos(
            args.get(1).map(String::as_str).unwrap_or("mainline"),
            &mut r,
        ),
        Some("selftests") => selftests(num(1, 10), &mut r),
        Some("close-orders") => close_orders(&mut r),
        Some("stress") => stress(num(1, 30), num(2, 4), &mut r),
        Some("streaming") => streaming(
            args.get(1).map(String::as_str).unwrap_or("mainline"),
            &mut r,
        ),
        Some("streamon-race") => streamon_race(&mut r),
        Some("mmap-unplug") => mmap_unplug(&mut r),
        Some("allocator") => allocator(
            args.get(1).map(String::as_str).unwrap_or("refcount"),
            &mut r,
        ),
        Some("stale") => {
            // Open PATH, unplug, use the stale handle once, close it: prints the errno.
            let path = args.get(1).cloned().unwrap_or_else(|| "/dev/media0".into());
            let fd = open(&path).expect("open");
            ctl_ok(&["unplug"]).expect("unplug");
            println!("stale ioctl: {:?}", probe(&fd, &path));
            drop(fd);
            return;
        }
        _ => {
            eprintln!(
                "usage: hotplug-client errnos PROFILE | selftests CYCLES | stress CYCLES THREADS"
            );
            std::process::exit(2);
        }
    }
    std::process::exit(r.finish());
}
