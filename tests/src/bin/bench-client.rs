//! The benchmark clients scripts/bench runs in the VM (issue 7); each prints a table line and a
//! JSON object (one line, after "JSON ") for the bench's report.
//!
//!   bench-client stream NODE userptr|mmap WxH FOURCC FRAMES DAEMON_PID
//!       capture FRAMES frames (4 buffers): frames/s from the buffer timestamps, drops from the
//!       sequence numbers, the daemon's CPU time per frame (/proc/PID/stat). MMAP needs the
//!       preload shim (LD_PRELOAD) on mcemu's nodes.
//!   bench-client drain ROUNDS
//!       32 clients on the daemon's newest instance (16 in an ioctl loop on the other nodes, 1
//!       blocked in DQBUF on a streaming queue with nothing queued, 15 in poll on it; vb2 lets
//!       only one DQBUF wait per queue, others get EBUSY) and an unplug: time until all of them
//!       have returned, per round (replugs in between).
//!   bench-client soak CYCLES THREADS [HOSTILE] DAEMON_PID
//!       CYCLES unplug/replug cycles with THREADS clients opening, calling and closing random
//!       nodes throughout: the daemon's RSS and live objects along the way and at the end.
//!       With HOSTILE, that many more threads storm random nodes with hostile calls (a sample
//!       of tests/src/abuse.rs's cases on each opened node); their wrong answers and the
//!       well-behaved clients' errors other than the unplug's are counted.
//!   bench-client scale N...
//!       for each N, start `mcemu serve --instances N` on its own control socket: time until
//!       every node is registered, RSS, then stop it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ioctl_abi::videodev2::*;
use mcemu_tests::*;
use nix::errno::Errno;

const SOCKET: &str = "/run/mcemu/control.sock";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = match a.as_slice() {
        ["stream", node, mem, size, fourcc, frames, pid] => {
            stream(node, mem, size, fourcc, parse(frames), parse(pid))
        }
        ["drain", rounds] => drain(parse(rounds)),
        ["soak", cycles, threads, pid] => soak(parse(cycles), parse(threads), 0, parse(pid)),
        ["soak", cycles, threads, hostile, pid] => {
            soak(parse(cycles), parse(threads), parse(hostile), parse(pid))
        }
        ["scale", counts @ ..] if !counts.is_empty() => {
            scale(&counts.iter().map(|c| parse(c)).collect::<Vec<u32>>())
        }
        _ => {
            eprintln!("usage: see the comment at the top of tests/src/bin/bench-client.rs");
            std::process::exit(2);
        }
    };
    match r {
        Ok(json) => println!("JSON {json}"),
        Err(e) => {
            eprintln!("bench-client: {e}");
            std::process::exit(1);
        }
    }
}

fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| {
        eprintln!("bench-client: not a number: {s:?}");
        std::process::exit(2)
    })
}

/// The process's user + system CPU time in seconds (0 when it cannot be read).
fn cpu_seconds(pid: u32) -> f64 {
    cpu_times(pid).map_or(0.0, |(u, s)| u + s)
}

fn fourcc(s: &str) -> Result<u32, String> {
    let b = s.as_bytes();
    if b.len() != 4 {
        return Err(format!("pixel format {s:?} is not four characters"));
    }
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

enum Buffers {
    User(Vec<Vec<u8>>),
    Mapped(Vec<(*mut libc::c_void, usize)>),
}

impl Drop for Buffers {
    fn drop(&mut self) {
        if let Buffers::Mapped(maps) = self {
            for (p, len) in maps.drain(..) {
                // SAFETY: each mapping came from mmap with this length and is unmapped once.
                unsafe { libc::munmap(p, len) };
            }
        }
    }
}

fn stream(
    node: &str,
    mem: &str,
    size: &str,
    pixfmt: &str,
    frames: u32,
    pid: u32,
) -> Result<serde_json::Value, String> {
    let memory = match mem {
        "userptr" => V4L2_MEMORY_USERPTR,
        "mmap" => V4L2_MEMORY_MMAP,
        _ => return Err(format!("memory {mem:?}: userptr or mmap")),
    };
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .ok_or_else(|| format!("size {size:?} is not WxH"))?;
    let fd = open(node).map_err(|e| format!("open {node}: {e}"))?;
    let mut f = v4l2_format::zeroed();
    f.type_ = CAP;
    let mut p = v4l2_pix_format::zeroed();
    p.width = w;
    p.height = h;
    p.pixelformat = fourcc(pixfmt)?;
    p.field = V4L2_FIELD_NONE;
    f.set_pix(&p);
    vioctl(&fd, VIDIOC_S_FMT, &mut f).map_err(|e| format!("S_FMT: {e}"))?;
    let (fw, fh, sizeimage) = (f.pix().width, f.pix().height, f.pix().sizeimage as usize);
    if (fw, fh) != (w, h) {
        return Err(format!("S_FMT gave {fw}x{fh}, not {w}x{h}"));
    }
    // Frame rate where the driver has one to set (vivid); omap3isp follows its sensor.
    let mut parm = v4l2_streamparm::zeroed();
    parm.type_ = CAP;
    let mut cp = v4l2_captureparm::zeroed();
    cp.timeperframe = v4l2_fract {
        numerator: 1,
        denominator: 30,
    };
    parm.set_capture(&cp);
    let _ = vioctl(&fd, VIDIOC_S_PARM, &mut parm);
    let mut rb = v4l2_requestbuffers::zeroed();
    rb.count = 4;
    rb.type_ = CAP;
    rb.memory = memory;
    vioctl(&fd, VIDIOC_REQBUFS, &mut rb).map_err(|e| format!("REQBUFS: {e}"))?;
    let n = rb.count as usize;
    let mut bufs = if memory == V4L2_MEMORY_USERPTR {
        Buffers::User((0..n).map(|_| vec![0u8; sizeimage]).collect())
    } else {
        let mut maps = Vec::new();
        for i in 0..n {
            let mut b = v4l2_buffer::zeroed();
            b.index = i as u32;
            b.type_ = CAP;
            b.memory = memory;
            vioctl(&fd, VIDIOC_QUERYBUF, &mut b).map_err(|e| format!("QUERYBUF: {e}"))?;
            // SAFETY: a new shared mapping of the buffer the driver describes; nothing in this
            // process aliases it, and it is unmapped when `Buffers` drops.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    b.length as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    b.m as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(format!(
                    "mmap buffer {i}: {} (is the preload shim loaded?)",
                    std::io::Error::last_os_error()
                ));
            }
            maps.push((p, b.length as usize));
        }
        Buffers::Mapped(maps)
    };
    let qbuf = |bufs: &mut Buffers, i: usize| -> Result<(), Errno> {
        let mut b = v4l2_buffer::zeroed();
        b.index = i as u32;
        b.type_ = CAP;
        b.memory = memory;
        if let Buffers::User(u) = bufs {
            b.m = u[i].as_mut_ptr() as u64;
            b.length = u[i].len() as u32;
        }
        vioctl(&fd, VIDIOC_QBUF, &mut b)
    };
    for i in 0..n {
        qbuf(&mut bufs, i).map_err(|e| format!("QBUF: {e}"))?;
    }
    let mut t: u32 = CAP;
    vioctl(&fd, VIDIOC_STREAMON, &mut t).map_err(|e| format!("STREAMON: {e}"))?;
    let (cpu0, wall0) = (cpu_seconds(pid), Instant::now());
    let (mut seqs, mut stamps) = (Vec::new(), Vec::new());
    let mut bytes = 0usize;
    for _ in 0..frames {
        let mut b = v4l2_buffer::zeroed();
        b.type_ = CAP;
        b.memory = memory;
        vioctl(&fd, VIDIOC_DQBUF, &mut b).map_err(|e| format!("DQBUF: {e}"))?;
        seqs.push(b.sequence);
        stamps.push(b.timestamp.tv_sec as f64 + b.timestamp.tv_usec as f64 * 1e-6);
        bytes = b.bytesused as usize;
        qbuf(&mut bufs, b.index as usize).map_err(|e| format!("QBUF: {e}"))?;
    }
    let (cpu, wall) = (cpu_seconds(pid) - cpu0, wall0.elapsed().as_secs_f64());
    let mut t: u32 = CAP;
    vioctl(&fd, VIDIOC_STREAMOFF, &mut t).map_err(|e| format!("STREAMOFF: {e}"))?;
    drop(bufs);
    let span = stamps.last().copied().unwrap_or(0.0) - stamps.first().copied().unwrap_or(0.0);
    let fps = if span > 0.0 {
        (frames.saturating_sub(1)) as f64 / span
    } else {
        0.0
    };
    let drops: u64 = seqs
        .windows(2)
        .map(|p| u64::from(p[1].wrapping_sub(p[0]).saturating_sub(1)))
        .sum();
    let cpu_ms = cpu / f64::from(frames.max(1)) * 1e3;
    println!(
        "{node:<14} {mem:<8} {w}x{h} {pixfmt}  {frames} frames of {bytes} B: {fps:.1} frames/s, {drops} dropped, daemon CPU {cpu_ms:.1} ms/frame, wall {wall:.1} s"
    );
    Ok(serde_json::json!({
        "node": node, "memory": mem, "width": w, "height": h, "pixelformat": pixfmt,
        "frames": frames, "bytes": bytes, "fps": fps, "drops": drops,
        "daemon_cpu_ms_per_frame": cpu_ms, "wall_s": wall,
    }))
}

/// What one drain round measured: when the unplug was acknowledged and when the last client
/// returned (after the unplug was sent), and each client's outcome with its return time in ms.
struct DrainRound {
    ack: Duration,
    all: Duration,
    clients: Vec<(String, f64)>,
}

/// The 32 clients of one drain round.
fn drain_round() -> Result<DrainRound, String> {
    let (media, videos, subdevs) = nodes();
    let mut cap = Capture::setup(3)?;
    for i in 0..3 {
        cap.qbuf(i).map_err(|e| format!("QBUF: {e}"))?;
    }
    cap.stream(VIDIOC_STREAMON)
        .map_err(|e| format!("STREAMON: {e}"))?;
    for _ in 0..3 {
        dqbuf(&cap.fd).map_err(|e| format!("DQBUF: {e}"))?;
    }
    // Nothing is queued now: DQBUF and poll(POLLIN) block.
    let cap_fd = cap.fd.as_raw_fd();
    let others: Vec<String> = std::iter::once(media)
        .chain(videos.into_iter().filter(|v| *v != cap.path))
        .chain(subdevs)
        .collect();
    let returned: Arc<parking_lot::Mutex<Vec<(String, Instant)>>> = Arc::default();
    let started = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for i in 0..16 {
        let path = others[i % others.len()].clone();
        let fd: OwnedFd = open(&path).map_err(|e| format!("open {path}: {e}"))?;
        let (returned, started) = (returned.clone(), started.clone());
        threads.push(std::thread::spawn(move || {
            started.fetch_add(1, Ordering::SeqCst);
            let e = loop {
                if let Err(e) = probe(&fd, &path) {
                    break e;
                }
            };
            returned
                .lock()
                .push((format!("ioctl loop on {path}: {e}"), Instant::now()));
        }));
    }
    {
        let (returned, started) = (returned.clone(), started.clone());
        threads.push(std::thread::spawn(move || {
            started.fetch_add(1, Ordering::SeqCst);
            let mut b = v4l2_buffer::zeroed();
            b.type_ = CAP;
            b.memory = USERPTR;
            // SAFETY: `b` is a live v4l2_buffer for DQBUF; the descriptor outlives the thread
            // (the main thread joins before closing it).
            let r = unsafe { libc::ioctl(cap_fd, VIDIOC_DQBUF as _, &mut b) };
            let what = if r < 0 {
                Errno::last().to_string()
            } else {
                "a buffer".into()
            };
            returned
                .lock()
                .push((format!("DQBUF: {what}"), Instant::now()));
        }));
    }
    for _ in 0..15 {
        let (returned, started) = (returned.clone(), started.clone());
        threads.push(std::thread::spawn(move || {
            started.fetch_add(1, Ordering::SeqCst);
            let mut p = [libc::pollfd {
                fd: cap_fd,
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: `p` is a valid array of one pollfd.
            let n = unsafe { libc::poll(p.as_mut_ptr(), 1, 30_000) };
            returned.lock().push((
                format!("poll: {n} revents {:#x}", p[0].revents),
                Instant::now(),
            ));
        }));
    }
    while started.load(Ordering::SeqCst) < 32 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the blocking calls reach the daemon and park.
    std::thread::sleep(Duration::from_millis(500));
    if !returned.lock().is_empty() {
        return Err(format!(
            "a client returned before the unplug: {:?}",
            returned.lock()
        ));
    }
    let t0 = Instant::now();
    control(SOCKET, serde_json::json!({ "cmd": "unplug" }))?;
    let ack = t0.elapsed();
    for t in threads {
        let _ = t.join();
    }
    let ret = returned.lock();
    let last = ret.iter().map(|(_, t)| *t).max().unwrap_or(t0);
    let how: Vec<(String, f64)> = ret
        .iter()
        .map(|(s, t)| (s.clone(), t.duration_since(t0).as_secs_f64() * 1e3))
        .collect();
    drop(ret);
    drop(cap);
    Ok(DrainRound {
        ack,
        all: last.duration_since(t0),
        clients: how,
    })
}

fn drain(rounds: u32) -> Result<serde_json::Value, String> {
    let mut acks = Vec::new();
    let mut drains = Vec::new();
    // Per kind of client and result: how many, and the latest return (ms after the unplug).
    let mut outcomes = std::collections::BTreeMap::<String, (u32, f64)>::new();
    for round in 0..rounds {
        let DrainRound {
            ack,
            all,
            clients: how,
        } = drain_round().map_err(|e| format!("round {round}: {e}"))?;
        for (h, ms) in how {
            // Group by kind and result, not by node.
            let key = h
                .split_once(" on ")
                .map(|(k, rest)| format!("{k}:{}", rest.split_once(':').map_or("", |r| r.1)))
                .unwrap_or(h);
            let e = outcomes.entry(key).or_default();
            e.0 += 1;
            e.1 = e.1.max(ms);
        }
        acks.push(ack.as_secs_f64() * 1e3);
        drains.push(all.as_secs_f64() * 1e3);
        control(SOCKET, serde_json::json!({ "cmd": "replug" }))?;
        wait_ready()?;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (ack_med, drain_med) = (median(&mut acks), median(&mut drains));
    let drain_max = drains.last().copied().unwrap_or(0.0);
    println!(
        "unplug drain, 32 clients, {rounds} rounds: all returned after {drain_med:.1} ms median ({drain_max:.1} max); unplug acknowledged after {ack_med:.1} ms median; target <= 10 ms: {}",
        if drain_med <= 10.0 { "met" } else { "missed" }
    );
    for (k, (n, ms)) in &outcomes {
        println!("  {n:>4} x {k} (the last after {ms:.1} ms)");
    }
    Ok(serde_json::json!({
        "rounds": rounds, "clients": 32,
        "drain_ms_median": drain_med, "drain_ms_max": drain_max, "drain_ms": drains,
        "unplug_ack_ms_median": ack_med, "outcomes": outcomes,
    }))
}

fn wait_ready() -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(v) = control(SOCKET, serde_json::json!({ "cmd": "status" })) {
            if v["status"]["ready"] == true {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("the daemon did not become ready within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn audit_field(key: &str) -> i64 {
    control(SOCKET, serde_json::json!({ "cmd": "audit" }))
        .ok()
        .and_then(|v| v["result"]["summary"].as_str().map(|s| field(s, key)))
        .unwrap_or(-1)
}

/// Where a process's resident memory is, from /proc/PID/smaps: the brk heap, other anonymous
/// mappings (malloc's other arenas, thread stacks, reader buffers), file mappings (the binary,
/// libraries, memfd frame buffers); and its thread count.
fn memory_kinds(pid: u32) -> Vec<(&'static str, u64)> {
    let (mut heap, mut anon, mut file) = (0, 0, 0);
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let mut kind = "anon";
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range, perms, offset, dev, inode, [path].
            let path = f.nth(4).unwrap_or("");
            kind = match path {
                "[heap]" => "heap",
                "" => "anon",
                p if p.starts_with('[') => "other",
                _ => "file",
            };
        } else if first == "Rss:" {
            let kib: u64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            match kind {
                "heap" => heap += kib,
                "anon" => anon += kib,
                "file" => file += kib,
                _ => {}
            }
        }
    }
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    vec![
        ("heap", heap),
        ("anon", anon),
        ("file", file),
        ("threads", threads),
    ]
}

fn soak(cycles: u32, threads: u32, hostile: u32, pid: u32) -> Result<serde_json::Value, String> {
    let current = Arc::new(parking_lot::Mutex::new(newest_nodes(SOCKET)?));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    // Errors of the well-behaved clients other than the unplugged node's, and what the hostile
    // ones saw.
    let errors = Arc::new(parking_lot::Mutex::new(std::collections::BTreeMap::new()));
    let storms = Arc::new(parking_lot::Mutex::new(abuse::Tally::default()));
    // Samples are taken at quiet points: the clients pause (holding nothing open) and the
    // unplugged instances are released, so RSS shows what stays, not what is in flight.
    let pause = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicU64::new(0));
    let mut hammer = Vec::new();
    for t in 0..threads + hostile {
        let (current, stop, calls) = (current.clone(), stop.clone(), calls.clone());
        let (pause, paused) = (pause.clone(), paused.clone());
        let (errors, storms) = (errors.clone(), storms.clone());
        let is_hostile = t >= threads;
        hammer.push(std::thread::spawn(move || {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(t + 1);
            let mut rnd = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut arena = None;
            while !stop.load(Ordering::Relaxed) {
                if pause.load(Ordering::SeqCst) {
                    paused.fetch_add(1, Ordering::SeqCst);
                    while pause.load(Ordering::SeqCst) && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    paused.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let path = {
                    let c = current.lock();
                    if c.is_empty() {
                        continue;
                    }
                    c[rnd() as usize % c.len()].clone()
                };
                if is_hostile {
                    // About one case in 16 of every command, on one node.
                    let arena = arena.get_or_insert_with(abuse::Arena::new);
                    if let Ok(tally) = abuse::storm_node(&path, arena, true, |_| rnd() % 16 == 0) {
                        calls.fetch_add(tally.calls, Ordering::Relaxed);
                        storms.lock().merge(tally);
                    }
                    continue;
                }
                let Ok(fd) = open(&path) else { continue };
                for _ in 0..1 + rnd() % 4 {
                    match probe(&fd, &path) {
                        // What an unplugged node answers (video and sub-device, media).
                        Ok(()) | Err(Errno::ENODEV | Errno::EIO) => {}
                        Err(e) => *errors.lock().entry(format!("{e:?}")).or_insert(0u64) += 1,
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
                if rnd() % 4 == 0 {
                    let _ = poll(&fd, libc::POLLIN | libc::POLLPRI, 0);
                }
            }
        }));
    }
    let t0 = Instant::now();
    let every = (cycles / 10).max(1);
    let mut samples = Vec::new();
    let sample = |cycle: u32, samples: &mut Vec<serde_json::Value>| {
        pause.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(20);
        while (paused.load(Ordering::SeqCst) < u64::from(threads + hostile)
            || audit_field("unplugged") != 0)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (rss, live, insts) = (
            rss_kib(pid).unwrap_or(0),
            audit_field("live_objects"),
            audit_field("instances"),
        );
        let mem = memory_kinds(pid);
        println!(
            "  cycle {cycle:>6}: daemon RSS {rss} KiB ({}), live objects {live}, instance records {insts}, {:.0} s",
            mem.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
            t0.elapsed().as_secs_f64()
        );
        samples.push(serde_json::json!({
            "cycle": cycle, "rss_kib": rss, "live_objects": live,
            "kinds_kib": mem.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        }));
        pause.store(false, Ordering::SeqCst);
        rss
    };
    let mut rss = vec![sample(0, &mut samples)];
    // Where a cycle's time goes: the unplug call, the replug call, the status that names the
    // new nodes (summed since the last sample).
    let mut phases = [Duration::ZERO; 3];
    for c in 1..=cycles {
        let t = Instant::now();
        control(SOCKET, serde_json::json!({ "cmd": "unplug" }))?;
        let t1 = Instant::now();
        control(SOCKET, serde_json::json!({ "cmd": "replug" }))?;
        let t2 = Instant::now();
        *current.lock() = newest_nodes(SOCKET)?;
        for (p, d) in phases.iter_mut().zip([t1 - t, t2 - t1, t2.elapsed()]) {
            *p += d;
        }
        if c % every == 0 {
            let n = f64::from(every);
            println!(
                "  per cycle: unplug {:.0} ms, replug {:.0} ms, status {:.0} ms",
                phases[0].as_secs_f64() * 1e3 / n,
                phases[1].as_secs_f64() * 1e3 / n,
                phases[2].as_secs_f64() * 1e3 / n
            );
            phases = [Duration::ZERO; 3];
            rss.push(sample(c, &mut samples));
        }
    }
    stop.store(true, Ordering::SeqCst);
    for h in hammer {
        let _ = h.join();
    }
    control(SOCKET, serde_json::json!({ "cmd": "unplug" }))?;
    // Channels close a moment after their last release.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut live = audit_field("live_objects");
    while live != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        live = audit_field("live_objects");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // Flat RSS: after warm-up (the first tenth: allocator arenas, cached thread stacks), the
    // mean of the last three samples against the mean of the three after warm-up. Single
    // samples also move with the allocator's free lists; a leak shows as drift.
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let after = &rss[1.min(rss.len() - 1)..];
    let (early, late) = (
        mean(&after[..after.len().min(3)]),
        mean(&after[after.len().saturating_sub(3)..]),
    );
    let drift = late / early.max(1.0) - 1.0;
    let dev = after
        .iter()
        .map(|r| (*r as f64 / early.max(1.0) - 1.0).abs())
        .fold(0.0, f64::max);
    let flat = drift.abs() <= 0.05;
    let errors = errors.lock().clone();
    let storms = std::mem::take(&mut *storms.lock());
    if hostile > 0 {
        for v in storms.violations.iter().take(20) {
            println!("  violation: {v}");
        }
        println!(
            "soak: {hostile} hostile threads: {} calls, {} wrong answers (target 0: {}), {} passes cut short by unplug; answers: {}; well-behaved clients: errors other than the unplug's: {errors:?} (target none: {})",
            storms.calls,
            storms.violations.len(),
            if storms.violations.is_empty() { "met" } else { "missed" },
            storms.unplugged,
            storms.answers.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
            if errors.is_empty() { "met" } else { "missed" },
        );
    }
    println!(
        "soak: {cycles} unplug/replug cycles with {threads} client threads ({} calls) in {elapsed:.0} s; RSS drift {:+.1}% (last three samples against the three after the first tenth; target within 5%: {}; single samples within {:.1}%); live objects after the last close: {live} (target 0: {})",
        calls.load(Ordering::SeqCst),
        drift * 100.0,
        if flat { "met" } else { "missed" },
        dev * 100.0,
        if live == 0 { "met" } else { "missed" }
    );
    Ok(serde_json::json!({
        "cycles": cycles, "threads": threads, "calls": calls.load(Ordering::SeqCst),
        "seconds": elapsed, "rss_drift": drift, "rss_max_deviation": dev,
        "live_objects_after_close": live,
        "hostile_threads": hostile, "hostile_calls": storms.calls,
        "hostile_wrong_answers": storms.violations.len(),
        "hostile_answers": storms.answers,
        "well_behaved_errors": errors,
        "samples": samples,
    }))
}

fn scale(counts: &[u32]) -> Result<serde_json::Value, String> {
    let mut out = Vec::new();
    for &n in counts {
        let socket = format!("/run/mcemu/scale-{n}.sock");
        let t0 = Instant::now();
        let mut child = std::process::Command::new("mcemu")
            .args(["serve", "--instances", &n.to_string(), "--control", &socket])
            .stderr(
                std::fs::File::create(format!("/tmp/scale-{n}.log")).map_err(|e| e.to_string())?,
            )
            .spawn()
            .map_err(|e| format!("starting mcemu serve: {e}"))?;
        let deadline = t0 + Duration::from_secs(600);
        let (nodes, start) = loop {
            if let Ok(v) = control(&socket, serde_json::json!({ "cmd": "status" })) {
                if v["status"]["ready"] == true {
                    let insts = v["status"]["instances"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let nodes: usize = insts
                        .iter()
                        .map(|i| i["nodes"].as_array().map_or(0, |n| n.len()))
                        .sum();
                    break (nodes, t0.elapsed());
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("{n} instances were not ready after 600 s"));
            }
            if let Ok(Some(s)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(format!("/tmp/scale-{n}.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(format!(
                    "mcemu serve --instances {n} exited: {s}: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(300));
        let rss = rss_kib(child.id()).unwrap_or(0);
        // Every node answers: open and identify each one.
        let v = control(&socket, serde_json::json!({ "cmd": "status" }))?;
        let mut answered = 0;
        for i in v["status"]["instances"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            for node in i["nodes"].as_array().cloned().unwrap_or_default() {
                let path = node["path"].as_str().unwrap_or("");
                if open(path).is_ok_and(|fd| probe(&fd, path).is_ok()) {
                    answered += 1;
                }
            }
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .map_err(|e| e.to_string())?;
        let _ = child.wait();
        let per = rss as f64 / f64::from(n) / 1024.0;
        println!(
            "{n:>3} instances: {nodes} nodes ({answered} answered) ready after {:.2} s, daemon RSS {:.1} MiB ({per:.2} MiB per instance)",
            start.as_secs_f64(),
            rss as f64 / 1024.0
        );
        out.push(serde_json::json!({
            "instances": n, "nodes": nodes, "answered": answered,
            "start_s": start.as_secs_f64(), "rss_kib": rss, "rss_mib_per_instance": per,
        }));
    }
    // The marginal cost of an instance: the slope between the smallest and largest runs.
    if let (Some(a), Some(b)) = (out.first(), out.last()) {
        let (na, nb) = (
            a["instances"].as_f64().unwrap_or(0.0),
            b["instances"].as_f64().unwrap_or(0.0),
        );
        if nb > na {
            let slope = (b["rss_kib"].as_f64().unwrap_or(0.0)
                - a["rss_kib"].as_f64().unwrap_or(0.0))
                / (nb - na)
                / 1024.0;
            let start = b["start_s"].as_f64().unwrap_or(0.0);
            println!(
                "marginal RSS per instance {slope:.2} MiB (target <= 2 MiB: {}); {nb} instances start in {start:.2} s (target < 5 s: {})",
                if slope <= 2.0 { "met" } else { "missed" },
                if start < 5.0 { "met" } else { "missed" }
            );
        }
    }
    Ok(serde_json::json!(out))
}
