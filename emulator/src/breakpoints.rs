//! Race breakpoints: park a chosen ioctl on a chosen node at a chosen stage until a script says
//! continue, so "unplug while the call is inside the driver" happens every time, not by luck.
//!
//! A breakpoint is one-shot: the first matching call parks and the breakpoint is gone. Calls that
//! may hit one run on their own thread, never on a CUSE reader thread.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;

/// Where in an ioctl a call can be parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Right after the registered check at syscall entry.
    Entry,
    /// Inside the handler, holding the device's objects.
    Mid,
    /// Result computed, about to be written back.
    Reply,
}

impl Stage {
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "entry" => Some(Stage::Entry),
            "mid" => Some(Stage::Mid),
            "reply" => Some(Stage::Reply),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub id: u32,
    pub node: String,
    pub ioctl: String,
    pub stage: Stage,
    /// The calling thread (as the kernel reports it).
    pub pid: u32,
    #[serde(skip)]
    reported: bool,
    #[serde(skip)]
    released: bool,
}

struct Armed {
    id: u32,
    node: String,
    cmd: u32,
    name: String,
    stage: Stage,
}

/// What `ctl inject` asks for: the next `count` calls of `ioctl` on `node` are delayed by
/// `delay_ms` and/or answered with the errno named `errno` (e.g. "EIO"); or, on a video node's
/// pipeline, the next `drop_frames` frames are lost and/or the pipeline is stuck for `stall_ms`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FaultSpec {
    pub node: String,
    #[serde(default)]
    pub ioctl: String,
    #[serde(default)]
    pub errno: Option<String>,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub drop_frames: u32,
    #[serde(default)]
    pub stall_ms: u64,
}

impl FaultSpec {
    /// A fault of the node's pipeline rather than of its ioctls.
    pub fn is_stream_fault(&self) -> bool {
        self.drop_frames > 0 || self.stall_ms > 0
    }
}

fn one() -> u32 {
    1
}

/// An injected fault: the next `count` matching calls are delayed and/or fail.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub id: u32,
    pub node: String,
    pub ioctl: String,
    #[serde(skip)]
    cmd: u32,
    /// Positive errno value to answer with, after the delay.
    pub errno: Option<i32>,
    pub delay_ms: u64,
    /// Calls still to affect.
    pub remaining: u32,
}

#[derive(Default)]
struct Inner {
    next_id: u32,
    armed: Vec<Armed>,
    hits: Vec<Hit>,
    faults: Vec<Fault>,
}

#[derive(Default)]
pub struct Breakpoints {
    inner: Mutex<Inner>,
    changed: Condvar,
    /// Armed breakpoints plus injected faults, kept under `inner`'s lock: every ioctl round
    /// asks at several stages, and with nothing set it must not take the daemon-wide lock.
    set: std::sync::atomic::AtomicUsize,
}

/// The ioctl number for a name like `VIDIOC_QUERYCAP` or `MEDIA_IOC_DEVICE_INFO`.
pub fn ioctl_by_name(name: &str) -> Option<u32> {
    ioctl_abi::all_ioctls()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
}

/// A positive errno value for a name like `EIO`.
pub fn errno_by_name(name: &str) -> Option<i32> {
    (1..134).find(|n| format!("{:?}", nix::errno::Errno::from_raw(*n)) == name)
}

fn ioctl_name(cmd: u32) -> String {
    ioctl_abi::all_ioctls()
        .find(|(_, c)| *c == cmd)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("{cmd:#x}"))
}

impl Breakpoints {
    /// Call with `inner` locked after changing its lists.
    fn count(&self, g: &Inner) {
        self.set.store(
            g.armed.len() + g.faults.len(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    fn none_set(&self) -> bool {
        self.set.load(std::sync::atomic::Ordering::SeqCst) == 0
    }

    pub fn arm(&self, node: &str, ioctl: &str, stage: Stage) -> Result<u32, String> {
        let cmd = ioctl_by_name(ioctl).ok_or_else(|| format!("unknown ioctl {ioctl:?}"))?;
        let mut g = self.inner.lock();
        g.next_id += 1;
        let id = g.next_id;
        g.armed.push(Armed {
            id,
            node: node.into(),
            cmd,
            name: ioctl.into(),
            stage,
        });
        self.count(&g);
        Ok(id)
    }

    /// Whether a call of `cmd` on `node` may stop or be delayed somewhere (it then runs on its
    /// own thread).
    pub fn armed_for(&self, node: &str, cmd: u32) -> bool {
        if self.none_set() {
            return false;
        }
        let g = self.inner.lock();
        g.armed.iter().any(|a| a.node == node && a.cmd == cmd)
            || g.faults.iter().any(|f| f.node == node && f.cmd == cmd)
    }

    /// Injects a fault.
    pub fn inject(&self, spec: &FaultSpec) -> Result<u32, String> {
        let FaultSpec {
            node,
            ioctl,
            errno,
            delay_ms,
            count,
            ..
        } = spec;
        let (delay_ms, count) = (*delay_ms, *count);
        let cmd = ioctl_by_name(ioctl).ok_or_else(|| format!("unknown ioctl {ioctl:?}"))?;
        let errno = match errno.as_deref() {
            None => None,
            Some(name) => {
                Some(errno_by_name(name).ok_or_else(|| format!("unknown errno {name:?}"))?)
            }
        };
        if errno.is_none() && delay_ms == 0 {
            return Err("a fault needs an errno, a delay, or both".into());
        }
        if count == 0 {
            return Err("count must be at least 1".into());
        }
        let mut g = self.inner.lock();
        g.next_id += 1;
        let id = g.next_id;
        g.faults.push(Fault {
            id,
            node: node.into(),
            ioctl: ioctl.into(),
            cmd,
            errno,
            delay_ms: delay_ms.min(600_000),
            remaining: count,
        });
        self.count(&g);
        Ok(id)
    }

    /// Applies an injected fault at syscall entry: sleeps for its delay, then returns its errno.
    pub fn fault(&self, node: &str, cmd: u32) -> Option<nix::errno::Errno> {
        if self.none_set() {
            return None;
        }
        let (delay, errno) = {
            let mut g = self.inner.lock();
            let pos = g
                .faults
                .iter()
                .position(|f| f.node == node && f.cmd == cmd)?;
            let f = &mut g.faults[pos];
            f.remaining -= 1;
            let out = (f.delay_ms, f.errno);
            if f.remaining == 0 {
                g.faults.remove(pos);
                self.count(&g);
            }
            out
        };
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        errno.map(nix::errno::Errno::from_raw)
    }

    /// Parks the calling thread if a breakpoint for (`node`, `cmd`, `stage`) is armed, until
    /// `continue` releases it.
    pub fn at(&self, node: &str, cmd: u32, stage: Stage, pid: u32) {
        if self.none_set() {
            return;
        }
        let mut g = self.inner.lock();
        let Some(pos) = g
            .armed
            .iter()
            .position(|a| a.node == node && a.cmd == cmd && a.stage == stage)
        else {
            return;
        };
        let a = g.armed.remove(pos);
        self.count(&g);
        tracing::info!(id = a.id, node, ioctl = %a.name, ?stage, "breakpoint hit");
        g.hits.push(Hit {
            id: a.id,
            node: node.into(),
            ioctl: ioctl_name(cmd),
            stage,
            pid,
            reported: false,
            released: false,
        });
        self.changed.notify_all();
        while !g.hits.iter().any(|h| h.id == a.id && h.released) {
            self.changed.wait(&mut g);
        }
    }

    /// The next hit not reported yet, waiting up to `timeout`.
    pub fn wait_hit(&self, timeout: Duration) -> Option<Hit> {
        let deadline = Instant::now() + timeout;
        let mut g = self.inner.lock();
        loop {
            if let Some(h) = g.hits.iter_mut().find(|h| !h.reported && !h.released) {
                h.reported = true;
                return Some(h.clone());
            }
            if self.changed.wait_until(&mut g, deadline).timed_out() {
                return None;
            }
        }
    }

    /// Releases a parked call (by breakpoint id, or all of them).
    pub fn cont(&self, id: Option<u32>) -> Result<Vec<u32>, String> {
        let mut g = self.inner.lock();
        let mut done = Vec::new();
        for h in g
            .hits
            .iter_mut()
            .filter(|h| !h.released && id.is_none_or(|i| h.id == i))
        {
            h.released = true;
            done.push(h.id);
        }
        if done.is_empty() {
            return Err(match id {
                Some(i) => format!("no call is parked at breakpoint {i}"),
                None => "no call is parked".into(),
            });
        }
        self.changed.notify_all();
        Ok(done)
    }

    /// Armed breakpoints and parked calls, for status.
    pub fn describe(&self) -> serde_json::Value {
        let g = self.inner.lock();
        serde_json::json!({
            "armed": g.armed.iter().map(|a| serde_json::json!({"id": a.id, "node": a.node, "ioctl": a.name, "stage": a.stage})).collect::<Vec<_>>(),
            "parked": g.hits.iter().filter(|h| !h.released).cloned().collect::<Vec<_>>(),
            "faults": g.faults.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn faults_apply_count_times() {
        let b = Breakpoints::default();
        assert_eq!(errno_by_name("EIO"), Some(5));
        let spec = |errno: Option<&str>, delay_ms, count| FaultSpec {
            drop_frames: 0,
            stall_ms: 0,
            node: "/dev/video0".into(),
            ioctl: "VIDIOC_QUERYCAP".into(),
            errno: errno.map(String::from),
            delay_ms,
            count,
        };
        assert!(b.inject(&spec(Some("EBOGUS"), 0, 1)).is_err());
        assert!(b.inject(&spec(None, 0, 1)).is_err());
        assert!(b.inject(&spec(Some("EIO"), 0, 0)).is_err());
        b.inject(&spec(Some("EIO"), 1, 2)).unwrap();
        let cmd = ioctl_by_name("VIDIOC_QUERYCAP").unwrap();
        assert!(b.armed_for("/dev/video0", cmd));
        assert_eq!(b.fault("/dev/video0", cmd), Some(nix::errno::Errno::EIO));
        assert_eq!(b.fault("/dev/video0", cmd), Some(nix::errno::Errno::EIO));
        assert_eq!(b.fault("/dev/video0", cmd), None);
        assert!(!b.armed_for("/dev/video0", cmd));
    }

    #[test]
    fn park_wait_hit_continue() {
        let b = Arc::new(Breakpoints::default());
        assert!(b.arm("/dev/media0", "NO_SUCH_IOCTL", Stage::Mid).is_err());
        let id = b
            .arm("/dev/media0", "MEDIA_IOC_DEVICE_INFO", Stage::Mid)
            .unwrap();
        let cmd = ioctl_by_name("MEDIA_IOC_DEVICE_INFO").unwrap();
        assert!(b.armed_for("/dev/media0", cmd));
        assert!(!b.armed_for("/dev/video0", cmd));
        // The wrong stage passes straight through.
        b.at("/dev/media0", cmd, Stage::Entry, 1);
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.at("/dev/media0", cmd, Stage::Mid, 7));
        let hit = b.wait_hit(Duration::from_secs(5)).expect("a hit");
        assert_eq!(
            (hit.id, hit.pid, hit.ioctl.as_str()),
            (id, 7, "MEDIA_IOC_DEVICE_INFO")
        );
        assert!(!t.is_finished());
        assert!(
            b.wait_hit(Duration::from_millis(10)).is_none(),
            "each hit is reported once"
        );
        assert_eq!(
            b.cont(Some(id + 1)).unwrap_err(),
            format!("no call is parked at breakpoint {}", id + 1)
        );
        assert_eq!(b.cont(None).unwrap(), vec![id]);
        t.join().unwrap();
        assert!(!b.armed_for("/dev/media0", cmd), "one-shot");
        assert!(b.cont(None).is_err());
    }
}
