//! Helpers shared by the programs that the VM suites run against real device nodes.

pub mod abuse;

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

use ioctl_abi::media::{media_device_info, MEDIA_IOC_DEVICE_INFO};
use ioctl_abi::subdev::{v4l2_subdev_capability, VIDIOC_SUBDEV_QUERYCAP};
use ioctl_abi::videodev2::{v4l2_capability, VIDIOC_QUERYCAP};
use nix::errno::Errno;

/// Prints TAP-like result lines and the closing "N passed, N failed" line.
#[derive(Default)]
pub struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    pub fn check(&mut self, name: &str, r: Result<(), String>) {
        match r {
            Ok(()) => {
                self.passed += 1;
                println!("ok - {name}");
            }
            Err(e) => {
                self.failed += 1;
                println!("not ok - {name}: {e}");
            }
        }
    }

    /// Prints the summary and returns the process exit code.
    pub fn finish(self) -> i32 {
        println!("{} passed, {} failed", self.passed, self.failed);
        i32::from(self.failed > 0)
    }
}

/// Turns an expectation into a `Result` with a message.
pub fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

pub fn open(path: &str) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map(|fd| {
        // SAFETY: open() returned a new descriptor that nothing else owns.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    })
}

/// [`open`] for programs where a node that cannot be opened ends the run.
pub fn open_or_panic(path: &str) -> OwnedFd {
    open(path).unwrap_or_else(|e| panic!("open {path}: {e}"))
}

/// The node's identifying ioctl: DEVICE_INFO, QUERYCAP or SUBDEV_QUERYCAP by its name.
pub fn probe(fd: &OwnedFd, path: &str) -> Result<(), Errno> {
    let name = path.rsplit('/').next().unwrap_or("");
    let r = if name.starts_with("media") {
        let mut v = media_device_info::zeroed();
        // SAFETY: `v` is a live struct of the size the command encodes.
        unsafe { libc::ioctl(fd.as_raw_fd(), MEDIA_IOC_DEVICE_INFO as _, &mut v) }
    } else if name.starts_with("v4l-subdev") {
        let mut v = v4l2_subdev_capability::zeroed();
        // SAFETY: as above.
        unsafe { libc::ioctl(fd.as_raw_fd(), VIDIOC_SUBDEV_QUERYCAP as _, &mut v) }
    } else {
        let mut v = v4l2_capability::zeroed();
        // SAFETY: as above.
        unsafe { libc::ioctl(fd.as_raw_fd(), VIDIOC_QUERYCAP as _, &mut v) }
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

pub fn poll(fd: &OwnedFd, events: i16, timeout_ms: i32) -> (i32, i16) {
    let mut p = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }];
    // SAFETY: `p` is a valid array of one pollfd.
    let n = unsafe { libc::poll(p.as_mut_ptr(), 1, timeout_ms) };
    (n, p[0].revents)
}

pub fn ctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("mcemu")
        .arg("ctl")
        .args(args)
        .output()
        .expect("running mcemu ctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn ctl_ok(args: &[&str]) -> Result<String, String> {
    match ctl(args) {
        (0, out, _) => Ok(out),
        (c, _, err) => Err(format!(
            "mcemu ctl {}: exit {c}: {}",
            args.join(" "),
            err.trim()
        )),
    }
}

pub fn summary() -> String {
    ctl(&["audit", "--summary"]).1.trim().to_string()
}

pub fn field(summary: &str, key: &str) -> i64 {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// Node paths of the newest instance, by kind: (media, videos, subdevs).
pub fn nodes() -> (String, Vec<String>, Vec<String>) {
    let out = ctl_ok(&["status"]).expect("status");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    let inst = v["instances"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or_default();
    let mut media = String::new();
    let (mut videos, mut subdevs) = (Vec::new(), Vec::new());
    for n in inst["nodes"].as_array().cloned().unwrap_or_default() {
        let path = n["path"].as_str().unwrap_or("").to_string();
        match n["kind"].as_str() {
            Some("media") => media = path,
            Some("video") => videos.push(path),
            _ => subdevs.push(path),
        }
    }
    (media, videos, subdevs)
}

/// A USERPTR capture on the resizer output of the BeagleBoard-xM recipe at 320x240 UYVY, on the
/// daemon's newest instance.
pub struct Capture {
    pub fd: OwnedFd,
    pub path: String,
    pub bufs: Vec<Vec<u8>>,
}

pub const CAP: u32 = ioctl_abi::videodev2::V4L2_BUF_TYPE_VIDEO_CAPTURE;
pub const USERPTR: u32 = ioctl_abi::videodev2::V4L2_MEMORY_USERPTR;

pub fn media_ctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("media-ctl")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    expect(out.status.success(), || {
        String::from_utf8_lossy(&out.stderr).into_owned()
    })
}

pub fn vioctl<T>(fd: &OwnedFd, cmd: u32, arg: &mut T) -> Result<(), Errno> {
    // SAFETY: `arg` is a live struct of the size `cmd` encodes (the callers pair them).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, arg as *mut T) };
    Errno::result(r).map(|_| ())
}

impl Capture {
    /// Links and formats the recipe, opens the node, S_FMT, REQBUFS(USERPTR, n).
    pub fn setup(n: u32) -> Result<Self, String> {
        use ioctl_abi::videodev2::*;
        let media = nodes().0;
        media_ctl(&[
            "-d",
            &media,
            "-r",
            "-l",
            r#""mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]"#,
        ])?;
        media_ctl(&[
            "-d",
            &media,
            "-V",
            r#""mt9p031 1-0048":0[SGRBG12 640x480], "OMAP3 ISP CCDC":2[SGRBG10 640x480], "OMAP3 ISP preview":1[UYVY 640x480], "OMAP3 ISP resizer":1[UYVY 320x240]"#,
        ])?;
        let out = Command::new("media-ctl")
            .args(["-d", &media, "-e", "OMAP3 ISP resizer output"])
            .output()
            .map_err(|e| e.to_string())?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let fd = open(&path).map_err(|e| format!("open {path}: {e}"))?;
        let mut f = v4l2_format::zeroed();
        f.type_ = CAP;
        vioctl(&fd, VIDIOC_S_FMT, &mut f).map_err(|e| format!("S_FMT: {e}"))?;
        let size = f.pix().sizeimage as usize;
        let mut rb = v4l2_requestbuffers::zeroed();
        rb.count = n;
        rb.type_ = CAP;
        rb.memory = USERPTR;
        vioctl(&fd, VIDIOC_REQBUFS, &mut rb).map_err(|e| format!("REQBUFS: {e}"))?;
        let bufs = (0..rb.count).map(|_| vec![0u8; size]).collect();
        Ok(Self { fd, path, bufs })
    }

    pub fn qbuf(&mut self, i: usize) -> Result<(), Errno> {
        let mut b = ioctl_abi::videodev2::v4l2_buffer::zeroed();
        b.index = i as u32;
        b.type_ = CAP;
        b.memory = USERPTR;
        b.m = self.bufs[i].as_mut_ptr() as u64;
        b.length = self.bufs[i].len() as u32;
        vioctl(&self.fd, ioctl_abi::videodev2::VIDIOC_QBUF, &mut b)
    }

    pub fn stream(&self, cmd: u32) -> Result<(), Errno> {
        let mut t: u32 = CAP;
        vioctl(&self.fd, cmd, &mut t)
    }
}

pub fn dqbuf(fd: &OwnedFd) -> Result<ioctl_abi::videodev2::v4l2_buffer, Errno> {
    let mut b = ioctl_abi::videodev2::v4l2_buffer::zeroed();
    b.type_ = CAP;
    b.memory = USERPTR;
    vioctl(fd, ioctl_abi::videodev2::VIDIOC_DQBUF, &mut b).map(|_| b)
}

/// One request to the daemon's control socket (JSON line in, JSON line out), without spawning
/// `mcemu ctl`: for loops that time or repeat control operations.
pub fn control(socket: &str, req: serde_json::Value) -> Result<serde_json::Value, String> {
    use std::io::{BufRead, Write};
    let mut conn = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach the daemon at {socket}: {e}"))?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok();
    let mut line = req.to_string();
    line.push('\n');
    conn.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    std::io::BufReader::new(conn)
        .read_line(&mut resp)
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_str(&resp).map_err(|e| format!("malformed answer {resp:?}: {e}"))?;
    if v["ok"] == true {
        Ok(v)
    } else {
        Err(v["error"].as_str().unwrap_or("request failed").to_string())
    }
}

/// Node paths of the daemon's newest instance, through the control socket.
pub fn newest_nodes(socket: &str) -> Result<Vec<String>, String> {
    let v = control(socket, serde_json::json!({ "cmd": "status" }))?;
    Ok(v["status"]["instances"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|i| i["nodes"].as_array())
        .map(|n| {
            n.iter()
                .filter_map(|n| n["path"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// A process's resident set size in KiB (VmRSS from /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A process's (user, system) CPU time in seconds: utime and stime from /proc/PID/stat.
pub fn cpu_times(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces; the
    // first of them is field 3, so utime and stime (fields 14 and 15) are at 11 and 12.
    let f: Vec<f64> = stat
        .rsplit(')')
        .next()?
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((*f.get(11)? / hz, *f.get(12)? / hz))
}
