//! Shared memory for emulating `mmap` of a CUSE node: a sealed memfd the daemon maps and writes
//! in place, and hands (as a descriptor) to the client that maps the same pages. CUSE itself
//! has no `mmap`; a client-side shim maps the descriptor instead.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use parking_lot::Mutex;

/// A shared mapping of a sealed memfd (whole pages).
pub struct SharedMemory {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    /// One daemon-side writer at a time.
    write: Mutex<()>,
}

// SAFETY: the mapping is process-wide memory; every access goes through `write`/`read`, which
// copy under a lock (the client's side of the sharing is another process).
unsafe impl Send for SharedMemory {}
// SAFETY: as above.
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    /// `len` rounded up to pages; zero-filled.
    pub fn new(len: usize) -> Result<Self, Errno> {
        use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
        let page = 4096;
        let len = len.max(1).div_ceil(page) * page;
        let fd = memfd_create(
            c"mcemu-buffer",
            MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
        )?;
        nix::unistd::ftruncate(&fd, len as i64)?;
        nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            nix::fcntl::FcntlArg::F_ADD_SEALS(
                nix::fcntl::SealFlag::F_SEAL_GROW
                    | nix::fcntl::SealFlag::F_SEAL_SHRINK
                    | nix::fcntl::SealFlag::F_SEAL_SEAL,
            ),
        )?;
        let size = std::num::NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
        // SAFETY: a new shared mapping of the whole memfd, which is `len` bytes long and sealed
        // against shrinking, so every byte of the mapping stays backed.
        let ptr = unsafe {
            nix::sys::mman::mmap(
                None,
                size,
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_SHARED,
                &fd,
                0,
            )?
        };
        Ok(Self {
            fd,
            ptr: ptr.cast(),
            len,
            write: Mutex::new(()),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memfd, for the client that maps it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Fills the memory in place through `f` (no intermediate copy).
    pub fn fill<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let _g = self.write.lock();
        // SAFETY: `ptr` maps `len` writable bytes for the life of `self`; daemon-side access is
        // serialised by `write`. Clients may read concurrently, as they may read a buffer the
        // hardware is writing.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) };
        f(buf)
    }

    /// Copies `len` bytes at `offset` out.
    pub fn read(&self, offset: usize, len: usize) -> Result<Vec<u8>, Errno> {
        let end = offset.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > self.len {
            return Err(Errno::EFAULT);
        }
        Ok(self.fill(|b| b[offset..end].to_vec()))
    }

    /// Copies `data` in at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), Errno> {
        let end = offset.checked_add(data.len()).ok_or(Errno::EFAULT)?;
        if end > self.len {
            return Err(Errno::EFAULT);
        }
        self.fill(|b| b[offset..end].copy_from_slice(data));
        Ok(())
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`; no slice into it outlives `fill`.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), self.len) };
    }
}

/// A private anonymous mapping used as a plain byte buffer: the reader threads' request buffers
/// (about 132 KiB each, one per reader thread, which come and go with nodes). Mapped and
/// unmapped directly, so they never pass through the heap: freeing a malloc'd buffer that size
/// raises glibc's dynamic mmap threshold, after which such buffers land in per-thread arenas
/// that keep the memory, and a daemon that plugs and unplugs thousands of nodes grows.
pub struct PageBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer is exclusively owned memory (like a Vec<u8>); `&`/`&mut` access follows
// Rust's borrow rules through Deref/DerefMut.
unsafe impl Send for PageBuffer {}
// SAFETY: as above.
unsafe impl Sync for PageBuffer {}

impl PageBuffer {
    /// `len` bytes (rounded up to pages), zero-filled.
    pub fn new(len: usize) -> Result<Self, Errno> {
        let len = len.max(1).div_ceil(4096) * 4096;
        let size = std::num::NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let ptr = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                size,
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_PRIVATE,
            )?
        };
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl std::ops::Deref for PageBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for PageBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, writable, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PageBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no reference outlives `self`.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), self.len) };
    }
}

/// Sets the allocator up for a long-running server with many mostly idle threads (a few per
/// node), before those threads start:
/// - one malloc arena unless the user chose (`MALLOC_ARENA_MAX` or a `GLIBC_TUNABLES`
///   setting): glibc gives threads up to 8 arenas per CPU, each keeping its own free memory,
///   so a daemon that plugs and unplugs devices grew from 5 to 12 MiB over 400 cycles and
///   moved by megabytes between samples; with one arena it stays within a few per cent.
///   Small allocations mostly come from each thread's cache, which needs no arena lock.
/// - no transparent huge pages: a 2 MiB thread stack that happens to be aligned is backed by
///   one huge page, so a thread that uses a few KiB of stack holds 2 MiB.
pub fn tune_for_long_running() {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && !std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"))
    {
        // SAFETY: mallopt only changes the allocator's own parameters; called before the
        // server's threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::debug!(error = %e, "transparent huge pages stay enabled");
    }
}

/// Returns the heap's free pages to the kernel (glibc keeps freed memory in its per-thread
/// arenas). Called when a channel has closed and its threads are gone, so a daemon that plugs
/// and unplugs devices for days holds what its live nodes use, not the high-water mark.
pub fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_in_place_seen_through_the_fd() {
        let m = SharedMemory::new(5000).unwrap();
        assert_eq!(m.len(), 8192);
        m.write(4090, b"hello!").unwrap();
        m.fill(|b| b[0] = 7);
        // Another view of the same memfd (as a client's mapping would be) sees the bytes.
        let f = std::fs::File::from(m.fd().try_clone_to_owned().unwrap());
        let mut got = [0u8; 6];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut got, 4090).unwrap();
        assert_eq!(&got, b"hello!");
        assert_eq!(m.read(0, 1).unwrap(), vec![7]);
        assert_eq!(m.write(8190, b"abc"), Err(Errno::EFAULT));
        // The size is sealed.
        assert!(f.set_len(16384).is_err());
    }

    #[test]
    fn page_buffers_are_zeroed_writable_and_whole_pages() {
        let mut b = PageBuffer::new(5000).unwrap();
        assert_eq!(b.len(), 8192);
        assert!(b.iter().all(|&x| x == 0));
        b[8191] = 7;
        b[..4].copy_from_slice(b"cuse");
        assert_eq!((&b[..4], b[8191]), (&b"cuse"[..], 7));
        release_free_heap();
    }
}
