//! What one client may hold in the daemon: open handles, MMAP buffer memory and calls parked
//! waiting (blocking DQBUF/DQEVENT). A client is a process (thread group), and what a handle
//! holds is counted for the process that opened it, as the kernel charges a file to its
//! opener. Past a cap the call fails with the errno the kernel gives when that resource runs
//! out — EMFILE for handles, ENOMEM for buffers (REQBUFS gets fewer, none is ENOMEM), EBUSY
//! for parked calls — and the daemon logs a line naming the process and the cap.

use std::collections::HashMap;
use std::sync::Arc;

use media_graph::vb2::Budget;
use nix::errno::Errno;
use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub handles: u32,
    pub buffer_bytes: u64,
    pub parked: u32,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            handles: 1024,
            buffer_bytes: 1 << 30,
            parked: 256,
        }
    }
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub handles: u32,
    pub buffer_bytes: u64,
    pub parked: u32,
}

impl Usage {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Default)]
pub struct Limits {
    pub caps: Caps,
    usage: Mutex<HashMap<i32, Usage>>,
}

impl Limits {
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            caps,
            usage: Mutex::default(),
        })
    }

    /// What `tgid` holds now.
    #[cfg(test)]
    pub fn usage(&self, tgid: i32) -> Usage {
        self.usage.lock().get(&tgid).copied().unwrap_or_default()
    }

    /// For `ctl status`: the caps, and what each process holding anything holds.
    pub fn describe(&self) -> serde_json::Value {
        let mut all: Vec<_> = self.usage.lock().iter().map(|(p, u)| (*p, *u)).collect();
        all.sort_by_key(|(p, _)| *p);
        serde_json::json!({
            "caps": { "handles": self.caps.handles, "buffer_bytes": self.caps.buffer_bytes, "parked": self.caps.parked },
            "processes": all.iter().map(|(pid, u)| serde_json::json!({
                "pid": pid, "handles": u.handles, "buffer_bytes": u.buffer_bytes, "parked": u.parked,
            })).collect::<Vec<_>>(),
        })
    }

    fn update(&self, tgid: i32, f: impl FnOnce(&mut Usage)) {
        let mut all = self.usage.lock();
        let u = all.entry(tgid).or_default();
        f(u);
        if u.is_empty() {
            all.remove(&tgid);
        }
    }

    /// An open by `tgid`: EMFILE past the handle cap.
    pub fn open_handle(&self, tgid: i32, path: &str) -> Result<(), Errno> {
        let mut all = self.usage.lock();
        let u = all.entry(tgid).or_default();
        if u.handles >= self.caps.handles {
            tracing::warn!(
                pid = tgid,
                node = path,
                cap = self.caps.handles,
                "client holds the most handles it may (--max-handles): open fails with EMFILE"
            );
            return Err(Errno::EMFILE);
        }
        u.handles += 1;
        Ok(())
    }

    pub fn close_handle(&self, tgid: i32) {
        self.update(tgid, |u| u.handles = u.handles.saturating_sub(1));
    }

    /// A call of `tgid` about to wait: EBUSY past the cap; the slot is free again when the
    /// returned guard goes (the call answered, interrupted or its handle released).
    pub fn park(self: &Arc<Self>, tgid: i32, what: &str) -> Result<Parked, Errno> {
        let mut all = self.usage.lock();
        let u = all.entry(tgid).or_default();
        if u.parked >= self.caps.parked {
            tracing::warn!(pid = tgid, call = what, cap = self.caps.parked,
                "client has the most calls waiting it may (--max-parked): this one fails with EBUSY");
            if u.is_empty() {
                all.remove(&tgid);
            }
            return Err(Errno::EBUSY);
        }
        u.parked += 1;
        Ok(Parked {
            limits: self.clone(),
            tgid,
        })
    }

    /// The MMAP buffer memory of `tgid`'s queues.
    pub fn budget(self: &Arc<Self>, tgid: i32) -> Arc<dyn Budget> {
        Arc::new(ProcessBudget {
            limits: self.clone(),
            tgid,
        })
    }
}

/// A parked call's slot (see [`Limits::park`]).
pub struct Parked {
    limits: Arc<Limits>,
    tgid: i32,
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.limits
            .update(self.tgid, |u| u.parked = u.parked.saturating_sub(1));
    }
}

struct ProcessBudget {
    limits: Arc<Limits>,
    tgid: i32,
}

impl Budget for ProcessBudget {
    fn take(&self, bytes: u64) -> bool {
        let cap = self.limits.caps.buffer_bytes;
        let mut all = self.limits.usage.lock();
        let u = all.entry(self.tgid).or_default();
        if u.buffer_bytes + bytes > cap {
            tracing::warn!(pid = self.tgid, held = u.buffer_bytes, asked = bytes, cap,
                "client's MMAP buffers would pass its memory cap (--max-buffer-mib): no more buffers (REQBUFS: fewer, or ENOMEM)");
            if u.is_empty() {
                all.remove(&self.tgid);
            }
            return false;
        }
        u.buffer_bytes += bytes;
        true
    }

    fn give_back(&self, bytes: u64) {
        self.limits.update(self.tgid, |u| {
            u.buffer_bytes = u.buffer_bytes.saturating_sub(bytes)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Arc<Limits> {
        Limits::new(Caps {
            handles: 2,
            buffer_bytes: 1000,
            parked: 1,
        })
    }

    #[test]
    fn handles_past_the_cap_are_emfile_per_process() {
        let l = limits();
        assert_eq!(l.open_handle(7, "/dev/video0"), Ok(()));
        assert_eq!(l.open_handle(7, "/dev/video0"), Ok(()));
        assert_eq!(l.open_handle(7, "/dev/video1"), Err(Errno::EMFILE));
        assert_eq!(l.open_handle(8, "/dev/video0"), Ok(()), "another process");
        l.close_handle(7);
        assert_eq!(l.open_handle(7, "/dev/video0"), Ok(()));
        l.close_handle(7);
        l.close_handle(7);
        l.close_handle(8);
        assert!(
            l.usage.lock().is_empty(),
            "nothing kept for processes holding nothing"
        );
    }

    #[test]
    fn parked_calls_past_the_cap_are_ebusy_until_one_returns() {
        let l = limits();
        let first = l.park(7, "VIDIOC_DQEVENT").unwrap();
        assert_eq!(l.park(7, "VIDIOC_DQEVENT").err(), Some(Errno::EBUSY));
        assert!(l.park(8, "VIDIOC_DQEVENT").is_ok(), "another process");
        drop(first);
        assert!(l.park(7, "VIDIOC_DQEVENT").is_ok());
        assert!(l.usage.lock().is_empty());
    }

    #[test]
    fn buffer_memory_is_given_back_with_the_buffer() {
        let l = limits();
        let b = l.budget(7);
        let a = media_graph::vb2::Charge::take(&b, 600).expect("under the cap");
        assert!(
            media_graph::vb2::Charge::take(&b, 600).is_none(),
            "past the cap"
        );
        assert!(media_graph::vb2::Charge::take(&l.budget(8), 600).is_some());
        assert_eq!(l.usage(7).buffer_bytes, 600);
        drop(a);
        assert_eq!(l.usage(7), Usage::default());
        assert!(media_graph::vb2::Charge::take(&b, 1000).is_some());
    }
}
