//! ioctl latency and throughput of mcemu's nodes against the CUSE floor (`bench/cuse-floor.c`,
//! the same RETRY rounds with no work behind them) and, where given, the in-kernel vivid driver
//! (a reference: no CUSE at all), measured in interleaved batches in one run:
//!
//!   ioctl-bench floor=NODE floor1=NODE video=NODE subdev=NODE media=NODE
//!               [vivid-video=NODE vivid-media=NODE] [json=PATH]
//!
//! `floor` is the multithreaded floor (libfuse's default loop), `floor1` the single-threaded one
//! (`cuse-floor -s`). Prints a table of best and median per-call latency and calls/s for 1 and
//! 4 threads, with the ratios the targets are stated in (latency <= 1.05x the floor with 1
//! thread, throughput >= 1.5x the floor's with 4 threads), and writes the figures as JSON.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use mcemu_tests::open_or_panic;

use ioctl_abi::media::{media_v2_topology, MEDIA_IOC_G_TOPOLOGY};
use ioctl_abi::subdev::{v4l2_subdev_format, VIDIOC_SUBDEV_G_FMT};
use ioctl_abi::videodev2::{
    v4l2_capability, v4l2_format, V4L2_BUF_TYPE_VIDEO_CAPTURE, VIDIOC_G_FMT, VIDIOC_QUERYCAP,
};
use zerocopy::IntoBytes;

const BATCH: usize = 2000;
const ROUNDS: usize = 7;

/// One ioctl under test: its command and a template argument.
#[derive(Clone)]
struct Case {
    name: &'static str,
    cmd: u32,
    arg: Vec<u8>,
    /// G_TOPOLOGY: the media node whose topology sizes the arrays (the floor, which has none,
    /// gets mcemu's, and asks for the same rounds).
    topology_of: Option<String>,
}

/// G_TOPOLOGY with its four arrays, as media-ctl calls it: a first call for the counts, then
/// arrays of that size (generously: 512 bytes per element). Returns the argument and the arrays
/// it points into (which must live as long as it is used).
fn topology_arg(fd: &OwnedFd) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut t = media_v2_topology::zeroed();
    // SAFETY: `t` is a live struct of the size the command encodes.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), MEDIA_IOC_G_TOPOLOGY as _, &mut t) };
    assert_eq!(r, 0, "G_TOPOLOGY: {}", std::io::Error::last_os_error());
    let arrays: Vec<Vec<u8>> = [t.num_entities, t.num_interfaces, t.num_pads, t.num_links]
        .iter()
        .map(|n| vec![0u8; (*n as usize).max(1) * 512])
        .collect();
    t.ptr_entities = arrays[0].as_ptr() as u64;
    t.ptr_interfaces = arrays[1].as_ptr() as u64;
    t.ptr_pads = arrays[2].as_ptr() as u64;
    t.ptr_links = arrays[3].as_ptr() as u64;
    (t.as_bytes().to_vec(), arrays)
}

/// A server's (user, system) CPU seconds; zeros without a pid.
fn cpu(pid: Option<u32>) -> (f64, f64) {
    pid.and_then(mcemu_tests::cpu_times).unwrap_or((0.0, 0.0))
}

/// `threads` threads each issue `BATCH` calls on their own descriptor; returns the wall time.
fn batch(path: &str, case: &Case, threads: usize) -> f64 {
    let fds: Vec<OwnedFd> = (0..threads).map(|_| open_or_panic(path)).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for fd in &fds {
            let case = case.clone();
            s.spawn(move || {
                let (mut arg, _arrays) = if let Some(of) = &case.topology_of {
                    topology_arg(&open_or_panic(of))
                } else {
                    (case.arg.clone(), Vec::new())
                };
                for _ in 0..BATCH {
                    // SAFETY: `arg` is a live buffer of the size the command encodes.
                    let r = unsafe { libc::ioctl(fd.as_raw_fd(), case.cmd as _, arg.as_mut_ptr()) };
                    assert_eq!(
                        r,
                        0,
                        "{} failed: {}",
                        case.name,
                        std::io::Error::last_os_error()
                    );
                }
            });
        }
    });
    start.elapsed().as_secs_f64()
}

struct Figures {
    best_us: f64,
    median_us: f64,
    calls_per_s: f64,
}

fn figures(mut walls: Vec<f64>, threads: usize) -> Figures {
    walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let per_call = |w: f64| w / BATCH as f64 * 1e6;
    let median = walls[walls.len() / 2];
    Figures {
        best_us: per_call(walls[0]),
        median_us: per_call(median),
        calls_per_s: (BATCH * threads) as f64 / median,
    }
}

fn main() {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let need = |k: &str| {
        args.get(k).cloned().unwrap_or_else(|| {
            eprintln!("usage: ioctl-bench floor=NODE floor1=NODE video=NODE subdev=NODE media=NODE [vivid-video=NODE vivid-media=NODE] [json=PATH] (missing {k})");
            std::process::exit(2);
        })
    };
    let (floor, floor1) = (need("floor"), need("floor1"));
    let pid = |k: &str| args.get(k).and_then(|p| p.parse::<u32>().ok());
    let (floor_pid, mcemu_pid) = (pid("floor-pid"), pid("mcemu-pid"));
    // Server CPU per call (user, system) over all 1-thread batches: (floor, mcemu).
    let mut server_cpu = Vec::new();
    let mut fmt = v4l2_format::zeroed();
    fmt.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    let case = |name, cmd, arg: Vec<u8>| Case {
        name,
        cmd,
        arg,
        topology_of: None,
    };
    // Each ioctl with mcemu's node and vivid's (None: vivid has no such node).
    let cases = [
        (
            case(
                "VIDIOC_QUERYCAP",
                VIDIOC_QUERYCAP,
                v4l2_capability::zeroed().as_bytes().to_vec(),
            ),
            need("video"),
            args.get("vivid-video").cloned(),
        ),
        (
            case("VIDIOC_G_FMT", VIDIOC_G_FMT, fmt.as_bytes().to_vec()),
            need("video"),
            args.get("vivid-video").cloned(),
        ),
        (
            case("VIDIOC_SUBDEV_G_FMT", VIDIOC_SUBDEV_G_FMT, {
                let mut f = v4l2_subdev_format::zeroed();
                f.which = ioctl_abi::subdev::V4L2_SUBDEV_FORMAT_ACTIVE;
                f.as_bytes().to_vec()
            }),
            need("subdev"),
            None,
        ),
        (
            case(
                "MEDIA_IOC_G_TOPOLOGY",
                MEDIA_IOC_G_TOPOLOGY,
                media_v2_topology::zeroed().as_bytes().to_vec(),
            ),
            need("media"),
            args.get("vivid-media").cloned(),
        ),
    ];
    println!(
        "{:<21} {:>3}  {:>20}  {:>20}  {:>20}  {:>20}  {:>6} {:>6} {:>6}  target",
        "ioctl",
        "thr",
        "floor med us, c/s",
        "floor-1t med us, c/s",
        "vivid med us, c/s",
        "mcemu med us, c/s",
        "lat x",
        "thr x",
        "thr x1"
    );
    let mut json = Vec::new();
    for (case, node, vivid) in &cases {
        // G_TOPOLOGY's arrays are sized by the media node asked: mcemu's for mcemu and the
        // floor (which has no topology of its own), vivid's for vivid.
        let sized_by = |of: Option<&String>| Case {
            topology_of: (case.cmd == MEDIA_IOC_G_TOPOLOGY)
                .then(|| of.cloned())
                .flatten(),
            ..case.clone()
        };
        let (mcemu_case, vivid_case) = (sized_by(Some(node)), sized_by(vivid.as_ref()));
        for threads in [1usize, 4] {
            let (mut f, mut f1, mut v, mut m) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            // Interleaved rounds: all see the same machine state.
            let (mut fc, mut mc) = ((0.0, 0.0), (0.0, 0.0));
            let add = |acc: &mut (f64, f64), a: (f64, f64), b: (f64, f64)| {
                acc.0 += b.0 - a.0;
                acc.1 += b.1 - a.1;
            };
            for _ in 0..ROUNDS {
                let c0 = cpu(floor_pid);
                f.push(batch(&floor, &mcemu_case, threads));
                add(&mut fc, c0, cpu(floor_pid));
                f1.push(batch(&floor1, &mcemu_case, threads));
                if let Some(vn) = vivid {
                    v.push(batch(vn, &vivid_case, threads));
                }
                let c0 = cpu(mcemu_pid);
                m.push(batch(node, &mcemu_case, threads));
                add(&mut mc, c0, cpu(mcemu_pid));
            }
            let calls = (ROUNDS * BATCH * threads) as f64;
            if threads == 1 && floor_pid.is_some() && mcemu_pid.is_some() {
                server_cpu.push(serde_json::json!({
                    "ioctl": case.name,
                    "floor_user_us": fc.0 / calls * 1e6, "floor_sys_us": fc.1 / calls * 1e6,
                    "mcemu_user_us": mc.0 / calls * 1e6, "mcemu_sys_us": mc.1 / calls * 1e6,
                }));
            }
            let (f, f1, m) = (
                figures(f, threads),
                figures(f1, threads),
                figures(m, threads),
            );
            let v = (!v.is_empty()).then(|| figures(v, threads));
            let lat = m.median_us / f.median_us;
            let thr = m.calls_per_s / f.calls_per_s;
            let thr1 = m.calls_per_s / f1.calls_per_s;
            let target = if threads == 1 {
                format!(
                    "latency <= 1.05x: {}",
                    if lat <= 1.05 { "met" } else { "missed" }
                )
            } else {
                format!(
                    "throughput >= 1.5x: {} (single-threaded floor: {})",
                    if thr >= 1.5 { "met" } else { "missed" },
                    if thr1 >= 1.5 { "met" } else { "missed" }
                )
            };
            let cell = |x: &Figures| format!("{:>8.1} {:>10.0}", x.median_us, x.calls_per_s);
            println!(
                "{:<21} {:>3}  {:>20}  {:>20}  {:>20}  {:>20}  {:>6.2} {:>6.2} {:>6.2}  {}",
                case.name,
                threads,
                cell(&f),
                cell(&f1),
                v.as_ref().map_or("-".into(), cell),
                cell(&m),
                lat,
                thr,
                thr1,
                target
            );
            let fig = |x: &Figures| serde_json::json!({"best_us": x.best_us, "median_us": x.median_us, "calls_per_s": x.calls_per_s});
            json.push(serde_json::json!({
                "ioctl": case.name, "threads": threads,
                "floor": fig(&f), "floor_single_thread": fig(&f1),
                "vivid": v.as_ref().map(fig), "mcemu": fig(&m),
                "latency_ratio": lat, "throughput_ratio": thr,
                "throughput_ratio_single_thread_floor": thr1,
                "vivid_latency_ratio": v.as_ref().map(|v| m.median_us / v.median_us),
            }));
        }
    }
    if !server_cpu.is_empty() {
        println!("server CPU per call, 1 thread (user + system us): floor | mcemu");
        for c in &server_cpu {
            let g = |k: &str| c[k].as_f64().unwrap_or(0.0);
            println!(
                "  {:<21} {:>6.1} + {:>6.1} | {:>6.1} + {:>6.1}",
                c["ioctl"].as_str().unwrap_or(""),
                g("floor_user_us"),
                g("floor_sys_us"),
                g("mcemu_user_us"),
                g("mcemu_sys_us")
            );
        }
    }
    if let Some(out) = args.get("json") {
        let json = serde_json::json!({ "cases": json, "server_cpu": server_cpu });
        let text = serde_json::to_string_pretty(&json).unwrap();
        std::fs::write(out, text).unwrap_or_else(|e| panic!("{out}: {e}"));
    }
}
