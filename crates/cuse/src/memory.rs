//! Access to the calling process's memory outside the ioctl iovec rounds.
//!
//! CUSE moves at most 32 pages per direction per ioctl round. Larger payloads go through
//! bounded `process_vm_readv`/`process_vm_writev` on the caller, which needs ptrace-level access
//! (root, or `CAP_SYS_PTRACE`). Client pointers stay `u64` addresses throughout.

use std::collections::BTreeMap;
use std::sync::Arc;

use nix::errno::Errno;
use parking_lot::Mutex;

/// The most we move through the side channel for one region (a full-HD NV12 frame is ~3 MiB).
pub const MAX_SIDE_TRANSFER: usize = 64 << 20;

/// Reads and writes a client's address space.
pub trait ClientMemory: Send + Sync {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno>;
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno>;
    /// The same address space, reachable for as long as the process lives rather than the
    /// calling thread (to write into a buffer later, from another thread).
    fn process(&self) -> Arc<dyn ClientMemory>;
    /// What `get_user_pages` checks when a driver pins a user buffer: every page of
    /// `[addr, addr + len)` is mapped, and writable if `write` (each page's first byte in the
    /// range is read, and written back unchanged). EFAULT otherwise.
    fn pin(&self, addr: u64, len: usize, write: bool) -> Result<(), Errno> {
        pin_bytewise(
            addr,
            len,
            write,
            |a| self.read(a, 1),
            |a, b| self.write(a, b),
        )
    }
}

/// [`ClientMemory::pin`] through single-byte accesses: each page probe read (and written back
/// unchanged when `write`). The default for memories without a batched way.
pub fn pin_bytewise(
    addr: u64,
    len: usize,
    write: bool,
    read: impl Fn(u64) -> Result<Vec<u8>, Errno>,
    write_back: impl Fn(u64, &[u8]) -> Result<(), Errno>,
) -> Result<(), Errno> {
    for at in page_probes(addr, len)? {
        let b = read(at)?;
        if write {
            write_back(at, &b)?;
        }
    }
    Ok(())
}

/// One address in each page of `[addr, addr + len)` (the range's first byte, then each later
/// page's first byte) and the range's last byte. EFAULT if the range runs past the end of the
/// address space.
pub fn page_probes(addr: u64, len: usize) -> Result<impl Iterator<Item = u64>, Errno> {
    const PAGE: u64 = 4096;
    if len == 0 {
        return Err(Errno::EFAULT);
    }
    let last = addr.checked_add(len as u64 - 1).ok_or(Errno::EFAULT)?;
    let pages = (addr / PAGE + 1..=last / PAGE).map(|p| p * PAGE);
    let tail = (last != addr && last % PAGE != 0).then_some(last);
    Ok(std::iter::once(addr).chain(pages).chain(tail))
}

/// The memory of a real process, reached with `process_vm_readv`/`process_vm_writev`.
///
/// `pid` is the thread id from the FUSE header; process_vm_* accept any thread id of the
/// target and act on its address space.
pub struct ProcessMemory {
    pid: i32,
}

impl ProcessMemory {
    pub fn new(pid: u32) -> Result<Self, Errno> {
        // The header carries pid 0 when the caller is not visible in our pid namespace.
        let pid = i32::try_from(pid).map_err(|_| Errno::ESRCH)?;
        if pid == 0 {
            return Err(Errno::ESRCH);
        }
        Ok(Self { pid })
    }
}

fn check_len(len: usize) -> Result<(), Errno> {
    if len > MAX_SIDE_TRANSFER {
        return Err(Errno::ENOMEM);
    }
    Ok(())
}

/// The thread group of a thread id, from `/proc/<tid>/status`.
pub fn tgid_of(tid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

impl ClientMemory for ProcessMemory {
    fn process(&self) -> Arc<dyn ClientMemory> {
        Arc::new(ProcessMemory {
            pid: tgid_of(self.pid).unwrap_or(self.pid),
        })
    }

    /// One byte of every page through process_vm_readv (and back with process_vm_writev),
    /// up to 1024 pages per call.
    fn pin(&self, addr: u64, len: usize, write: bool) -> Result<(), Errno> {
        let pid = nix::unistd::Pid::from_raw(self.pid);
        let probes: Vec<u64> = page_probes(addr, len)?.collect();
        for chunk in probes.chunks(1024) {
            let remote: Vec<nix::sys::uio::RemoteIoVec> = chunk
                .iter()
                .map(|&a| nix::sys::uio::RemoteIoVec {
                    base: a as usize,
                    len: 1,
                })
                .collect();
            let mut bytes = vec![0u8; chunk.len()];
            // A partial transfer stops at the first page that is not there.
            let n = nix::sys::uio::process_vm_readv(
                pid,
                &mut [std::io::IoSliceMut::new(&mut bytes)],
                &remote,
            )?;
            if n != chunk.len() {
                return Err(Errno::EFAULT);
            }
            if write {
                let n = nix::sys::uio::process_vm_writev(
                    pid,
                    &[std::io::IoSlice::new(&bytes)],
                    &remote,
                )?;
                if n != chunk.len() {
                    return Err(Errno::EFAULT);
                }
            }
        }
        Ok(())
    }

    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        check_len(len)?;
        let mut out = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let remote = [nix::sys::uio::RemoteIoVec {
                base: (addr as usize).checked_add(done).ok_or(Errno::EFAULT)?,
                len: len - done,
            }];
            let mut local = [std::io::IoSliceMut::new(&mut out[done..])];
            let n = nix::sys::uio::process_vm_readv(
                nix::unistd::Pid::from_raw(self.pid),
                &mut local,
                &remote,
            )?;
            if n == 0 {
                return Err(Errno::EFAULT);
            }
            done += n;
        }
        Ok(out)
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        check_len(data.len())?;
        let mut done = 0;
        while done < data.len() {
            let remote = [nix::sys::uio::RemoteIoVec {
                base: (addr as usize).checked_add(done).ok_or(Errno::EFAULT)?,
                len: data.len() - done,
            }];
            let local = [std::io::IoSlice::new(&data[done..])];
            let n = nix::sys::uio::process_vm_writev(
                nix::unistd::Pid::from_raw(self.pid),
                &local,
                &remote,
            )?;
            if n == 0 {
                return Err(Errno::EFAULT);
            }
            done += n;
        }
        Ok(())
    }
}

/// Simulated client memory for in-process tests: mapped regions at chosen addresses.
/// Accesses outside a mapped region fail with `EFAULT`, as a real fault would.
#[derive(Clone, Default)]
pub struct SimMemory {
    regions: Arc<Mutex<BTreeMap<u64, Vec<u8>>>>,
}

impl SimMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `data` at `addr`. Regions must not overlap.
    pub fn map(&self, addr: u64, data: Vec<u8>) {
        self.regions.lock().insert(addr, data);
    }

    /// Returns a copy of a whole mapped region.
    pub fn region(&self, addr: u64) -> Option<Vec<u8>> {
        self.regions.lock().get(&addr).cloned()
    }

    fn with_range<R>(
        &self,
        addr: u64,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, Errno> {
        let mut regions = self.regions.lock();
        let (base, buf) = regions
            .range_mut(..=addr)
            .next_back()
            .ok_or(Errno::EFAULT)?;
        let start = usize::try_from(addr - *base).map_err(|_| Errno::EFAULT)?;
        let end = start.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > buf.len() {
            return Err(Errno::EFAULT);
        }
        Ok(f(&mut buf[start..end]))
    }
}

impl ClientMemory for SimMemory {
    fn process(&self) -> Arc<dyn ClientMemory> {
        Arc::new(self.clone())
    }

    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        check_len(len)?;
        self.with_range(addr, len, |b| b.to_vec())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        check_len(data.len())?;
        self.with_range(addr, data.len(), |b| b.copy_from_slice(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_memory_faults_outside_regions() {
        let m = SimMemory::new();
        m.map(0x1000, vec![1, 2, 3, 4]);
        assert_eq!(m.read(0x1001, 2).unwrap(), vec![2, 3]);
        assert_eq!(m.read(0x1003, 2), Err(Errno::EFAULT));
        assert_eq!(m.read(0x0fff, 1), Err(Errno::EFAULT));
        m.write(0x1002, &[9, 9]).unwrap();
        assert_eq!(m.region(0x1000).unwrap(), vec![1, 2, 9, 9]);
    }

    #[test]
    fn pin_checks_every_page() {
        assert_eq!(
            page_probes(0x1ff0, 0x2020).unwrap().collect::<Vec<_>>(),
            vec![0x1ff0, 0x2000, 0x3000, 0x4000, 0x400f]
        );
        assert_eq!(
            page_probes(0x1000, 1).unwrap().collect::<Vec<_>>(),
            vec![0x1000]
        );
        assert!(page_probes(u64::MAX - 4, 16).is_err());
        // Three pages of our own with the middle one unmapped; a read-only page.
        // SAFETY: fresh anonymous mappings of our own, unmapped at the end.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                3 * 4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as u64;
        let pm = ProcessMemory::new(std::process::id()).unwrap();
        assert_eq!(pm.pin(p, 3 * 4096, true), Ok(()));
        // SAFETY: the middle page of the mapping above.
        unsafe { libc::munmap((p + 4096) as *mut libc::c_void, 4096) };
        assert_eq!(pm.pin(p, 3 * 4096, false), Err(Errno::EFAULT));
        assert_eq!(pm.pin(p, 4096, true), Ok(()));
        // SAFETY: the last page of the mapping above.
        unsafe { libc::mprotect((p + 8192) as *mut libc::c_void, 4096, libc::PROT_READ) };
        assert_eq!(pm.pin(p + 8192, 4096, false), Ok(()));
        assert_eq!(pm.pin(p + 8192, 4096, true), Err(Errno::EFAULT));
        // The same rules through the page-by-page default (SimMemory).
        let m = SimMemory::new();
        m.map(0x1000, vec![0; 0x1000]);
        m.map(0x3000, vec![0; 0x1000]);
        assert_eq!(m.pin(0x1000, 0x1000, true), Ok(()));
        assert_eq!(m.pin(0x1000, 0x3000, true), Err(Errno::EFAULT));
        // SAFETY: the first and last pages of the mapping above.
        unsafe {
            libc::munmap(p as *mut libc::c_void, 4096);
            libc::munmap((p + 8192) as *mut libc::c_void, 4096);
        }
    }

    #[test]
    fn process_memory_reads_own_address_space() {
        let data = vec![7u8; 300];
        let pm = ProcessMemory::new(std::process::id()).unwrap();
        let got = pm.read(data.as_ptr() as u64, data.len()).unwrap();
        assert_eq!(got, data);
        let mut target = vec![0u8; 4];
        pm.write(target.as_mut_ptr() as u64, &[1, 2, 3, 4]).unwrap();
        // The write went through the kernel, not through `target`'s borrow.
        assert_eq!(std::hint::black_box(&target), &vec![1, 2, 3, 4]);
        assert_eq!(ProcessMemory::new(0).err(), Some(Errno::ESRCH));
    }
}
