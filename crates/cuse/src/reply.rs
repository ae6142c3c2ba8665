//! Replies: each request gets exactly one. A reply value is consumed when sent; one dropped
//! unsent answers EIO and logs a warning, so a forgotten reply can never hang a client.

use std::io::IoSlice;
use std::sync::Arc;

use nix::errno::Errno;
use zerocopy::IntoBytes;

use crate::abi::*;
use crate::ioctl::IoctlRound;
use crate::session::Shared;

/// The untyped reply to one request.
pub(crate) struct Reply {
    shared: Arc<Shared>,
    unique: u64,
    sent: bool,
}

impl Reply {
    pub(crate) fn new(shared: Arc<Shared>, unique: u64) -> Self {
        Self {
            shared,
            unique,
            sent: false,
        }
    }

    pub(crate) fn unique(&self) -> u64 {
        self.unique
    }

    /// Sends `error` (0 or a positive errno value) with `payload`.
    pub(crate) fn send(mut self, error: i32, payload: &[&[u8]]) -> std::io::Result<()> {
        self.sent = true;
        self.shared.send_reply(self.unique, error, payload)
    }

    pub(crate) fn interrupted(&self) -> bool {
        self.shared.is_interrupted(self.unique)
    }

    pub(crate) fn interrupt_handle(&self) -> InterruptHandle {
        InterruptHandle {
            shared: self.shared.clone(),
            unique: self.unique,
        }
    }
}

/// Lets a device learn of a signal hitting the client of a request it parked.
///
/// Take it before parking the reply, park, release your locks, then call
/// [`on_interrupt`](Self::on_interrupt): the hook runs at once if the signal already came.
pub struct InterruptHandle {
    shared: Arc<Shared>,
    unique: u64,
}

impl InterruptHandle {
    /// Runs `hook` when an INTERRUPT arrives for the request (at once if one already has; never
    /// once the request was answered). A parked request uses it to answer EINTR.
    pub fn on_interrupt(self, hook: impl FnOnce() + Send + 'static) {
        self.shared.set_interrupt_hook(self.unique, Box::new(hook));
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.sent {
            tracing::warn!(
                unique = self.unique,
                "request dropped without a reply; answering EIO"
            );
            let _ = self.shared.send_reply(self.unique, Errno::EIO as i32, &[]);
        }
    }
}

macro_rules! common_reply_methods {
    () => {
        /// Answers with an errno.
        pub fn error(self, e: Errno) {
            let _ = self.0.send(e as i32, &[]);
        }
        /// The request's id on the channel.
        pub fn unique(&self) -> u64 {
            self.0.unique()
        }
        /// True once the client was interrupted by a signal while waiting for this reply.
        pub fn interrupted(&self) -> bool {
            self.0.interrupted()
        }
        /// See [`InterruptHandle`].
        pub fn interrupt_handle(&self) -> InterruptHandle {
            self.0.interrupt_handle()
        }
    };
}

/// Reply to READ.
pub struct ReplyData(pub(crate) Reply);
impl ReplyData {
    common_reply_methods!();
    /// Sends data; zero bytes means end of file to the client.
    pub fn data(self, data: &[u8]) {
        let _ = self.0.send(0, &[data]);
    }
}

/// Reply to WRITE.
pub struct ReplyWrite(pub(crate) Reply);
impl ReplyWrite {
    common_reply_methods!();
    pub fn written(self, size: u32) {
        let out = fuse_write_out { size, padding: 0 };
        let _ = self.0.send(0, &[out.as_bytes()]);
    }
}

/// Reply to IOCTL.
pub struct ReplyIoctl(pub(crate) Reply);
impl ReplyIoctl {
    common_reply_methods!();

    /// Final answer: `result` is the ioctl(2) return value (negative: -errno); `data` fills the
    /// round's out-iovecs in order. Out data reaches the client even with a negative result.
    pub fn done(self, result: i32, data: &[u8]) {
        let out = fuse_ioctl_out {
            result,
            ..Default::default()
        };
        let _ = self.0.send(0, &[out.as_bytes(), data]);
    }

    /// Asks the kernel to run the ioctl again with these iovecs.
    pub fn retry(self, in_iovs: &[fuse_ioctl_iovec], out_iovs: &[fuse_ioctl_iovec]) {
        let out = fuse_ioctl_out {
            result: 0,
            flags: FUSE_IOCTL_RETRY,
            in_iovs: in_iovs.len() as u32,
            out_iovs: out_iovs.len() as u32,
        };
        let _ = self.0.send(
            0,
            &[out.as_bytes(), in_iovs.as_bytes(), out_iovs.as_bytes()],
        );
    }

    /// RETRY with what `round` declared.
    pub fn retry_round(self, round: &IoctlRound<'_>) {
        let (i, o) = round.retry_iovecs();
        self.retry(&i, &o);
    }

    /// Final answer through `round`: lays out `outputs` in declaration order.
    pub fn finish(self, round: &IoctlRound<'_>, result: Result<i32, Errno>, outputs: &[&[u8]]) {
        match round.finish(outputs) {
            Ok(payload) => self.done(result.unwrap_or_else(|e| -(e as i32)), &payload),
            Err(e) => self.error(e),
        }
    }
}

/// Writes one message to the transport as a single write.
pub(crate) fn encode(unique: u64, error: i32, payload: &[&[u8]]) -> (fuse_out_header, usize) {
    let body: usize = if error == 0 {
        payload.iter().map(|p| p.len()).sum()
    } else {
        0
    };
    let len = core::mem::size_of::<fuse_out_header>() + body;
    (
        fuse_out_header {
            len: len as u32,
            error: -error,
            unique,
        },
        len,
    )
}

pub(crate) fn slices<'a>(
    hdr: &'a fuse_out_header,
    error: i32,
    payload: &[&'a [u8]],
) -> Vec<IoSlice<'a>> {
    let mut v = vec![IoSlice::new(hdr.as_bytes())];
    if error == 0 {
        v.extend(
            payload
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| IoSlice::new(p)),
        );
    }
    v
}
