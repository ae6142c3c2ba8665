//! ioctl latency and throughput of mcemu's nodes against the CUSE floor (`bench/cuse-floor.c`,
//! the same RETRY rounds with no work behind them), measured in interleaved batches in one run:
//!
//!   ioctl-bench FLOOR_NODE VIDEO_NODE SUBDEV_NODE [JSON_OUT]
//!
//! Prints a table of best and median per-call latency and calls/s for 1 and 4 threads, with the
//! ratios the targets are stated in (latency <= 1.05x the floor with 1 thread, throughput >=
//! 1.5x the floor's with 4 threads), and writes the figures as JSON.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use ioctl_abi::subdev::{v4l2_subdev_format, VIDIOC_SUBDEV_G_FMT};
use ioctl_abi::videodev2::{
    v4l2_capability, v4l2_format, V4L2_BUF_TYPE_VIDEO_CAPTURE, VIDIOC_G_FMT, VIDIOC_QUERYCAP,
};
use zerocopy::IntoBytes;

const BATCH: usize = 2000;
const ROUNDS: usize = 7;

fn open(path: &str) -> OwnedFd {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: open() returned a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// One ioctl under test: its command and a template argument.
#[derive(Clone)]
struct Case {
    name: &'static str,
    cmd: u32,
    arg: Vec<u8>,
}

/// `threads` threads each issue `BATCH` calls on their own descriptor; returns the wall time.
fn batch(path: &str, case: &Case, threads: usize) -> f64 {
    let fds: Vec<OwnedFd> = (0..threads).map(|_| open(path)).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for fd in &fds {
            let case = case.clone();
            s.spawn(move || {
                let mut arg = case.arg.clone();
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: ioctl-bench FLOOR_NODE VIDEO_NODE SUBDEV_NODE [JSON_OUT]");
        std::process::exit(2);
    }
    let (floor, video, subdev) = (&args[0], &args[1], &args[2]);
    let mut fmt = v4l2_format::zeroed();
    fmt.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    let cases = [
        (
            Case {
                name: "VIDIOC_QUERYCAP",
                cmd: VIDIOC_QUERYCAP,
                arg: v4l2_capability::zeroed().as_bytes().to_vec(),
            },
            video,
        ),
        (
            Case {
                name: "VIDIOC_G_FMT",
                cmd: VIDIOC_G_FMT,
                arg: fmt.as_bytes().to_vec(),
            },
            video,
        ),
        (
            Case {
                name: "VIDIOC_SUBDEV_G_FMT",
                cmd: VIDIOC_SUBDEV_G_FMT,
                arg: {
                    let mut f = v4l2_subdev_format::zeroed();
                    f.which = ioctl_abi::subdev::V4L2_SUBDEV_FORMAT_ACTIVE;
                    f.as_bytes().to_vec()
                },
            },
            subdev,
        ),
    ];
    println!(
        "{:<22} {:>3}  {:>22}  {:>22}  {:>7} {:>7}  target",
        "ioctl", "thr", "floor best/med us c/s", "mcemu best/med us c/s", "lat x", "thr x"
    );
    let mut json = Vec::new();
    for (case, node) in &cases {
        for threads in [1usize, 4] {
            let (mut f, mut m) = (Vec::new(), Vec::new());
            // Interleaved rounds: both see the same machine state.
            for _ in 0..ROUNDS {
                f.push(batch(floor, case, threads));
                m.push(batch(node, case, threads));
            }
            let (f, m) = (figures(f, threads), figures(m, threads));
            let lat = m.median_us / f.median_us;
            let thr = m.calls_per_s / f.calls_per_s;
            let target = if threads == 1 {
                format!(
                    "latency <= 1.05x: {}",
                    if lat <= 1.05 { "met" } else { "missed" }
                )
            } else {
                format!(
                    "throughput >= 1.5x: {}",
                    if thr >= 1.5 { "met" } else { "missed" }
                )
            };
            println!(
                "{:<22} {:>3}  {:>6.1}/{:>6.1} {:>8.0}  {:>6.1}/{:>6.1} {:>8.0}  {:>7.2} {:>7.2}  {}",
                case.name, threads, f.best_us, f.median_us, f.calls_per_s, m.best_us,
                m.median_us, m.calls_per_s, lat, thr, target
            );
            json.push(serde_json::json!({
                "ioctl": case.name, "threads": threads,
                "floor": {"best_us": f.best_us, "median_us": f.median_us, "calls_per_s": f.calls_per_s},
                "mcemu": {"best_us": m.best_us, "median_us": m.median_us, "calls_per_s": m.calls_per_s},
                "latency_ratio": lat, "throughput_ratio": thr,
            }));
        }
    }
    if let Some(out) = args.get(3) {
        let text = serde_json::to_string_pretty(&serde_json::json!({ "ioctl": json })).unwrap();
        std::fs::write(out, text).unwrap_or_else(|e| panic!("{out}: {e}"));
    }
}
