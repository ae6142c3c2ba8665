//! Fuzz harness for the server side of the wire (fuzz/fuzz_targets/cuse_requests.rs): raw
//! messages, as read from /dev/cuse, go through [`Session`] to the loopback test device, and
//! every message the server writes back must be well formed: a header whose length is the
//! message's, an error of 0 or a negative errno, and the unique of a request it was sent
//! (exactly once; an INTERRUPT at most once, with EAGAIN) or 0 for a notification.
//!
//! Input: messages, each a little-endian u16 length and that many bytes. The first is the
//! CUSE_INIT request (as the kernel queues it at open).

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::sync::Arc;

use nix::errno::Errno;
use parking_lot::Mutex;
use zerocopy::{FromBytes, IntoBytes};

use crate::abi::*;
use crate::memory::{ClientMemory, SimMemory};
use crate::session::{DeviceInfo, RecvError, Session, Transport};

/// Splits the input into messages.
pub fn messages(data: &[u8]) -> VecDeque<Vec<u8>> {
    let mut out = VecDeque::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        out.push_back(rest[2..2 + n].to_vec());
        rest = &rest[2 + n..];
    }
    out
}

/// The inverse of [`messages`], for seeds.
pub fn join(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u16).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

struct Script {
    requests: Mutex<VecDeque<Vec<u8>>>,
    /// Uniques of the requests handed to the server and not yet answered, counted (the input
    /// may repeat one; the kernel never does while it is pending).
    open: Mutex<HashMap<u64, usize>>,
    /// Uniques of INTERRUPT requests: answered at most once, and only with EAGAIN (the
    /// target is not known yet: the kernel queues the interrupt again).
    interrupts: Mutex<HashMap<u64, usize>>,
    memory: Arc<SimMemory>,
}

impl Transport for Script {
    fn receive(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let Some(m) = self.requests.lock().pop_front() else {
            return Err(RecvError::Closed);
        };
        let n = m.len().min(buf.len());
        buf[..n].copy_from_slice(&m[..n]);
        // Every request is answered but INTERRUPT; one too malformed to decode is answered
        // (EIO) when it is long enough to carry a unique.
        let interrupt = matches!(
            crate::request::parse(&m[..n]),
            Ok((_, crate::request::Operation::Interrupt(_)))
        );
        if n >= 16 && m[8..16] != [0; 8] {
            let unique = u64::from_ne_bytes(m[8..16].try_into().unwrap_or_default());
            let map = if interrupt {
                &self.interrupts
            } else {
                &self.open
            };
            *map.lock().entry(unique).or_default() += 1;
        }
        Ok(n)
    }

    fn send(&self, msg: &[IoSlice<'_>]) -> std::io::Result<()> {
        let bytes: Vec<u8> = msg.iter().flat_map(|s| s.iter().copied()).collect();
        let (h, _) = fuse_out_header::read_from_prefix(&bytes)
            .unwrap_or_else(|_| panic!("a reply shorter than its header: {} bytes", bytes.len()));
        assert_eq!(h.len as usize, bytes.len(), "reply length field");
        if h.unique == 0 {
            // A notification: error is the notify code.
            assert!(h.error > 0, "notification code {}", h.error);
            return Ok(());
        }
        assert!(
            h.error <= 0 && h.error > -4096,
            "reply error {} is not a negative errno",
            h.error
        );
        if h.error == -libc::EAGAIN && take(&mut self.interrupts.lock(), h.unique) {
            return Ok(());
        }
        if !take(&mut self.open.lock(), h.unique) {
            panic!(
                "reply to unique {} that is not pending (twice, or never sent)",
                h.unique
            );
        }
        Ok(())
    }

    fn client_memory(&self, _pid: u32) -> Result<Arc<dyn ClientMemory>, Errno> {
        Ok(self.memory.clone())
    }

    fn close(&self) {
        self.requests.lock().clear();
    }
}

/// Counts one answer to `unique` off `map`; false if none was owed.
fn take(map: &mut HashMap<u64, usize>, unique: u64) -> bool {
    match map.get_mut(&unique) {
        Some(n) if *n > 1 => *n -= 1,
        Some(_) => {
            map.remove(&unique);
        }
        None => return false,
    }
    true
}

/// Runs one input. Panics (the fuzzer's crash) on a malformed or duplicated reply.
pub fn run(data: &[u8]) {
    let memory = Arc::new(SimMemory::new());
    // Some client memory for the device's pointer-carrying ioctls to find.
    memory.map(0x1000, (0..4096u32).map(|i| i as u8).collect());
    let script = Arc::new(Script {
        requests: Mutex::new(messages(data)),
        open: Mutex::new(HashMap::new()),
        interrupts: Mutex::new(HashMap::new()),
        memory,
    });
    let dev = crate::testdev::LoopbackDevice::new();
    let Ok(s) = Session::start(script.clone(), &DeviceInfo::new("fuzz"), dev) else {
        return;
    };
    s.run(1);
}

fn request(opcode: Opcode, unique: u64, body: &[&[u8]]) -> Vec<u8> {
    let len = 40 + body.iter().map(|b| b.len()).sum::<usize>();
    let h = fuse_in_header {
        len: len as u32,
        opcode: opcode as u32,
        unique,
        pid: 1,
        ..Default::default()
    };
    let mut m = h.as_bytes().to_vec();
    for b in body {
        m.extend_from_slice(b);
    }
    m
}

/// Seed inputs: an init, then opens, ioctls with and without their data, reads, writes,
/// polls, an interrupt and releases, as the kernel sends them.
pub fn seeds() -> Vec<Vec<u8>> {
    let init = cuse_init_in {
        major: 7,
        minor: 38,
        unused: 0,
        flags: CUSE_UNRESTRICTED_IOCTL,
    };
    let init = request(Opcode::CuseInit, 2, &[init.as_bytes()]);
    let open = request(
        Opcode::Open,
        4,
        &[fuse_open_in {
            flags: libc::O_RDWR as u32,
            open_flags: 0,
        }
        .as_bytes()],
    );
    let ioctl = |unique, cmd: u32, arg, in_size, out_size, data: &[u8]| {
        let i = fuse_ioctl_in {
            fh: 1,
            flags: FUSE_IOCTL_UNRESTRICTED,
            cmd,
            arg,
            in_size,
            out_size,
        };
        request(Opcode::Ioctl, unique, &[i.as_bytes(), data])
    };
    let rw = |op, unique, size: u32, data: &[u8]| {
        let r = fuse_read_in {
            fh: 1,
            size,
            ..Default::default()
        };
        request(op, unique, &[r.as_bytes(), data])
    };
    let poll = request(
        Opcode::Poll,
        20,
        &[fuse_poll_in {
            fh: 1,
            kh: 7,
            flags: 1,
            events: 1,
        }
        .as_bytes()],
    );
    let release = request(
        Opcode::Release,
        30,
        &[fuse_release_in {
            fh: 1,
            ..Default::default()
        }
        .as_bytes()],
    );
    let interrupt = request(
        Opcode::Interrupt,
        31,
        &[fuse_interrupt_in { unique: 12 }.as_bytes()],
    );
    let add = crate::testdev::TEST_ADD;
    let sum = crate::testdev::TEST_SUM;
    let add_size = (add >> 16) & 0x3fff;
    let sum_size = (sum >> 16) & 0x3fff;
    vec![
        join(std::slice::from_ref(&init)),
        join(&[init.clone(), open.clone(), release.clone()]),
        join(&[
            init.clone(),
            open.clone(),
            ioctl(6, add, 0x1000, 0, 0, &[]),
            ioctl(
                8,
                add,
                0x1000,
                add_size,
                add_size,
                &vec![7; add_size as usize],
            ),
            ioctl(
                10,
                sum,
                0x1000,
                sum_size,
                sum_size,
                &vec![0; sum_size as usize],
            ),
            ioctl(12, 0xdead, 0, 0, 0, &[]),
            release.clone(),
        ]),
        join(&[
            init.clone(),
            open.clone(),
            rw(Opcode::Write, 14, 5, b"hello"),
            rw(Opcode::Read, 16, 5, &[]),
            poll.clone(),
            rw(Opcode::Read, 12, 64, &[]),
            interrupt,
            release.clone(),
        ]),
        join(&[
            init,
            open,
            poll,
            request(Opcode::Flush, 40, &[&[0; 24]]),
            release,
        ]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_run_and_replies_are_well_formed() {
        for s in seeds() {
            run(&s);
        }
    }

    #[test]
    fn truncated_and_garbled_seeds_run() {
        for s in seeds() {
            for cut in (0..s.len()).step_by(7) {
                run(&s[..cut]);
            }
            let mut g = s.clone();
            for (i, b) in g.iter_mut().enumerate() {
                if i % 13 == 5 {
                    *b ^= 0x5a;
                }
            }
            run(&g);
        }
    }
}
