//! The unrestricted-ioctl RETRY protocol, as a per-round helper.
//!
//! The kernel keeps no state between rounds except the iovec lists, so a handler re-derives
//! everything from the current round: it declares, in a fixed order, each client region it reads
//! ([`IoctlRound::input`]) and writes ([`IoctlRound::output`]). When this round's data does not
//! cover the declarations yet, the handler answers with a RETRY that asks for exactly them.
//! A fixed-size struct needs 2 rounds; a struct carrying pointers needs 3 (struct, then arrays).
//!
//! Regions that do not fit a round (more than 32 pages per direction or 256 iovecs) are moved
//! through [`ClientMemory`] (`process_vm_readv/writev` on the caller) instead.

use std::borrow::Cow;
use std::sync::Arc;

use nix::errno::Errno;
use zerocopy::FromBytes;

use crate::abi::{fuse_ioctl_iovec, FUSE_DEFAULT_MAX_PAGES, FUSE_IOCTL_MAX_IOV};
use crate::memory::ClientMemory;

/// Bytes one direction of one round may carry.
pub fn round_limit() -> usize {
    FUSE_DEFAULT_MAX_PAGES * page_size()
}

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(4096)
}

/// One FUSE_IOCTL request as received.
#[derive(Debug, Clone, Copy)]
pub struct IoctlRequest<'a> {
    pub fh: u64,
    pub cmd: u32,
    pub arg: u64,
    pub flags: u32,
    pub in_data: &'a [u8],
    pub out_size: usize,
}

#[derive(Debug, Clone, Copy)]
enum Route {
    Iovec,
    Side,
    /// A zero-length region: declared (so outputs stay in step) but never transferred.
    Empty,
}

/// Where a handler stands in the RETRY exchange for one ioctl.
pub struct IoctlRound<'a> {
    req: IoctlRequest<'a>,
    memory: Option<Arc<dyn ClientMemory>>,
    limit: usize,
    in_iovs: Vec<fuse_ioctl_iovec>,
    in_iov_bytes: usize,
    in_missing: bool,
    out_regions: Vec<(fuse_ioctl_iovec, Route)>,
    out_iov_bytes: usize,
}

impl<'a> IoctlRound<'a> {
    /// `memory` reaches the caller for regions too large for a round; without it such regions
    /// fail with ENOMEM, as the kernel would.
    pub fn new(req: IoctlRequest<'a>, memory: Option<Arc<dyn ClientMemory>>) -> Self {
        Self::with_limit(req, memory, round_limit())
    }

    pub fn with_limit(
        req: IoctlRequest<'a>,
        memory: Option<Arc<dyn ClientMemory>>,
        limit: usize,
    ) -> Self {
        Self {
            req,
            memory,
            limit,
            in_iovs: Vec::new(),
            in_iov_bytes: 0,
            in_missing: false,
            out_regions: Vec::new(),
            out_iov_bytes: 0,
        }
    }

    pub fn request(&self) -> &IoctlRequest<'a> {
        &self.req
    }

    /// The caller's memory, for handlers that keep a client address beyond this call
    /// (USERPTR buffers).
    pub fn memory(&self) -> Option<Arc<dyn ClientMemory>> {
        self.memory.clone()
    }

    fn iov_count(&self) -> usize {
        self.in_iovs.len()
            + self
                .out_regions
                .iter()
                .filter(|(_, r)| matches!(r, Route::Iovec))
                .count()
    }

    /// Declares that the ioctl reads `len` bytes at client address `addr`. Returns them when this
    /// round carries them, `Ok(None)` when a RETRY is needed first.
    pub fn input(&mut self, addr: u64, len: usize) -> Result<Option<Cow<'a, [u8]>>, Errno> {
        if len == 0 {
            return Ok(Some(Cow::Borrowed(&[])));
        }
        let fits = self.in_iov_bytes + len <= self.limit && self.iov_count() < FUSE_IOCTL_MAX_IOV;
        if !fits {
            let mem = self.memory.as_ref().ok_or(Errno::ENOMEM)?;
            return mem.read(addr, len).map(|v| Some(Cow::Owned(v)));
        }
        let start = self.in_iov_bytes;
        self.in_iovs.push(fuse_ioctl_iovec {
            base: addr,
            len: len as u64,
        });
        self.in_iov_bytes += len;
        if self.in_missing || self.req.in_data.len() < start + len {
            self.in_missing = true;
            return Ok(None);
        }
        Ok(Some(Cow::Borrowed(&self.req.in_data[start..start + len])))
    }

    /// [`input`](Self::input) of one `T` at `addr`, decoded.
    pub fn input_struct<T: FromBytes>(&mut self, addr: u64) -> Result<Option<T>, Errno> {
        Ok(self
            .input(addr, core::mem::size_of::<T>())?
            .map(|b| T::read_from_bytes(&b).expect("input() returns exactly the declared size")))
    }

    /// The usual `_IOWR` argument: one `T` at `addr`, read and written back. `Ok(None)` means
    /// the handler answers with a RETRY ([`ReplyIoctl::retry_round`](crate::ReplyIoctl::retry_round)).
    pub fn inout_struct<T: FromBytes>(&mut self, addr: u64) -> Result<Option<T>, Errno> {
        let v = self.input_struct(addr)?;
        self.output(addr, core::mem::size_of::<T>());
        Ok(v)
    }

    /// Declares that the ioctl writes `len` bytes at client address `addr`.
    pub fn output(&mut self, addr: u64, len: usize) {
        if len == 0 {
            self.out_regions
                .push((fuse_ioctl_iovec { base: addr, len: 0 }, Route::Empty));
            return;
        }
        let iov = fuse_ioctl_iovec {
            base: addr,
            len: len as u64,
        };
        let fits = self.out_iov_bytes + len <= self.limit && self.iov_count() < FUSE_IOCTL_MAX_IOV;
        if fits {
            self.out_iov_bytes += len;
            self.out_regions.push((iov, Route::Iovec));
        } else {
            self.out_regions.push((iov, Route::Side));
        }
    }

    /// True when this round delivered exactly the declared inputs and offers exactly the declared
    /// outputs, so the ioctl can complete now.
    pub fn is_complete(&self) -> bool {
        !self.in_missing
            && self.req.in_data.len() == self.in_iov_bytes
            && self.req.out_size == self.out_iov_bytes
    }

    /// The iovec lists for a RETRY reply: inputs first, then outputs.
    pub fn retry_iovecs(&self) -> (Vec<fuse_ioctl_iovec>, Vec<fuse_ioctl_iovec>) {
        let outs = self
            .out_regions
            .iter()
            .filter(|(_, r)| matches!(r, Route::Iovec))
            .map(|(i, _)| *i)
            .collect();
        (self.in_iovs.clone(), outs)
    }

    /// Lays out the final reply payload. `outputs[i]` is the data for the i-th declared output;
    /// fewer outputs than declared write only those (e.g. just the struct on an error). Each given
    /// output must have its declared length. Side-routed regions are written to the caller now,
    /// before the reply releases it.
    pub fn finish(&self, outputs: &[&[u8]]) -> Result<Vec<u8>, Errno> {
        if outputs.len() > self.out_regions.len() {
            tracing::error!(
                cmd = format_args!("{:#x}", self.req.cmd),
                "ioctl handler produced more outputs than it declared"
            );
            return Err(Errno::EIO);
        }
        let mut payload = Vec::with_capacity(self.out_iov_bytes);
        for (data, (iov, route)) in outputs.iter().zip(&self.out_regions) {
            if data.len() as u64 != iov.len {
                tracing::error!(
                    cmd = format_args!("{:#x}", self.req.cmd),
                    declared = iov.len,
                    produced = data.len(),
                    "ioctl handler output length differs from its declaration"
                );
                return Err(Errno::EIO);
            }
            match route {
                Route::Iovec => payload.extend_from_slice(data),
                Route::Side => {
                    let mem = self.memory.as_ref().ok_or(Errno::ENOMEM)?;
                    mem.write(iov.base, data)?;
                }
                Route::Empty => {}
            }
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SimMemory;

    fn req(in_data: &[u8], out_size: usize) -> IoctlRequest<'_> {
        IoctlRequest {
            fh: 1,
            cmd: 0xc0287c02,
            arg: 0x1000,
            flags: 2,
            in_data,
            out_size,
        }
    }

    #[test]
    fn first_round_asks_for_the_struct() {
        let mut r = IoctlRound::new(req(&[], 0), None);
        assert!(r.input(0x1000, 40).unwrap().is_none());
        r.output(0x1000, 40);
        assert!(!r.is_complete());
        let (i, o) = r.retry_iovecs();
        assert_eq!(
            i,
            vec![fuse_ioctl_iovec {
                base: 0x1000,
                len: 40
            }]
        );
        assert_eq!(
            o,
            vec![fuse_ioctl_iovec {
                base: 0x1000,
                len: 40
            }]
        );
    }

    #[test]
    fn later_round_reads_in_order_and_completes() {
        let data: Vec<u8> = (0..48).collect();
        let mut r = IoctlRound::new(req(&data, 48), None);
        let a = r.input(0x1000, 40).unwrap().unwrap();
        assert_eq!(a[0], 0);
        let b = r.input(0x5000, 8).unwrap().unwrap();
        assert_eq!(&b[..], &data[40..48]);
        r.output(0x1000, 40);
        r.output(0x6000, 8);
        assert!(r.is_complete());
        let p = r.finish(&[&[1u8; 40], &[2u8; 8]]).unwrap();
        assert_eq!(p.len(), 48);
        assert!(r.finish(&[&[1u8; 39]]).is_err());
    }

    #[test]
    fn empty_outputs_keep_their_place() {
        let mut r = IoctlRound::new(req(&[], 8), None);
        r.output(0x1000, 0);
        r.output(0x2000, 8);
        assert!(r.is_complete());
        assert_eq!(r.retry_iovecs().1.len(), 1);
        assert_eq!(r.finish(&[&[], &[3u8; 8]]).unwrap(), vec![3u8; 8]);
    }

    #[test]
    fn oversized_regions_go_through_client_memory() {
        let mem = SimMemory::new();
        mem.map(0x10_0000, vec![5u8; 300]);
        mem.map(0x20_0000, vec![0u8; 300]);
        let mem: Arc<dyn ClientMemory> = Arc::new(mem.clone());
        let mut r = IoctlRound::with_limit(req(&[9u8; 40], 40), Some(mem.clone()), 100);
        assert!(r.input(0x1000, 40).unwrap().is_some());
        let big = r.input(0x10_0000, 300).unwrap().unwrap();
        assert_eq!(big.len(), 300);
        r.output(0x1000, 40);
        r.output(0x20_0000, 300);
        assert!(r.is_complete(), "the side region is not part of the round");
        let payload = r.finish(&[&[0u8; 40], &[7u8; 300]]).unwrap();
        assert_eq!(payload.len(), 40);
        assert_eq!(mem.read(0x20_0000, 300).unwrap(), vec![7u8; 300]);
        // Without client memory the kernel's answer for too much data is ENOMEM.
        let mut r = IoctlRound::with_limit(req(&[], 0), None, 100);
        assert_eq!(r.input(0x10_0000, 300).unwrap_err(), Errno::ENOMEM);
    }
}
