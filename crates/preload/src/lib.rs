//! `libmcemu_preload.so`: with `LD_PRELOAD`, `mmap()`/`mmap64()` of an mcemu video node maps
//! the daemon's MMAP buffer at that offset. CUSE devices have no `mmap`; this shim asks the node
//! for a grant (`MCEMU_IOC_MMAP`, on the same file descriptor, so the daemon knows whose queue),
//! collects the buffer's memfd on the daemon's buffer socket and maps that. Everything else goes
//! straight to the kernel (raw `mmap` system call, no symbol lookup), so a process without mcemu
//! descriptors behaves as without the shim. `munmap` needs nothing: the mapping is an ordinary
//! shared mapping of a memfd. `fcntl(F_SETFL)` on a CUSE node is also told to the node
//! (`MCEMU_IOC_SETFL`), because CUSE passes only `open()`'s flags and a later `O_NONBLOCK` would
//! otherwise not make DQBUF/DQEVENT non-blocking.

use std::ffi::c_void;
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use ioctl_abi::mcemu::*;
use libc::{c_int, off_t, size_t};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// The kernel's `mmap`, bypassing every interposer.
///
/// # Safety
/// As `mmap(2)`: the caller owns the consequences of the mapping it asks for.
unsafe fn raw_mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    // SAFETY: the arguments are passed through unchanged to the system call; glibc's syscall()
    // returns -1 (MAP_FAILED) and sets errno on failure.
    unsafe { libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, off) as *mut c_void }
}

fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// Whether `fd` is a CUSE character device (its `/sys/dev/char` link goes through `/cuse/`).
fn is_cuse_node(fd: c_int) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole struct stat into `st` or fails.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return false;
    }
    let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    std::fs::read_link(format!("/sys/dev/char/{major}:{minor}"))
        .map(|p| p.to_string_lossy().contains("/cuse/"))
        .unwrap_or(false)
}

/// Asks the node for a grant, collects the memfd. Err(errno) on failure; Ok(None) when the node
/// is not an mcemu video node (it does not know the request).
fn buffer_fd(
    fd: c_int,
    off: i64,
    len: size_t,
    prot: c_int,
    flags: c_int,
) -> Result<Option<OwnedFd>, i32> {
    let mut req = mcemu_mmap::zeroed();
    req.offset = off as u64;
    req.length = len as u64;
    req.vm = (if flags & libc::MAP_SHARED != 0 {
        MCEMU_VM_SHARED
    } else {
        0
    }) | (if prot & libc::PROT_READ != 0 {
        MCEMU_VM_READ
    } else {
        0
    }) | (if prot & libc::PROT_WRITE != 0 {
        MCEMU_VM_WRITE
    } else {
        0
    });
    // SAFETY: `req` is a live struct of the size MCEMU_IOC_MMAP encodes.
    let r = unsafe { libc::ioctl(fd, MCEMU_IOC_MMAP as _, &mut req as *mut mcemu_mmap) };
    if r < 0 {
        let e = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        return if e == libc::ENOTTY { Ok(None) } else { Err(e) };
    }
    let end = req
        .socket
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(req.socket.len());
    let path = std::str::from_utf8(&req.socket[..end]).map_err(|_| libc::EIO)?;
    let mut conn = UnixStream::connect(path).map_err(|_| libc::ENODEV)?;
    conn.write_all(&req.token.to_ne_bytes())
        .map_err(|_| libc::ENODEV)?;
    let mut status = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut status)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| e as i32)?;
    let mut got = None;
    for c in msg.cmsgs().map_err(|_| libc::EIO)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for f in fds {
                // SAFETY: SCM_RIGHTS gave this process a new descriptor nothing else owns.
                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                got.get_or_insert(owned);
            }
        }
    }
    match (status[0], got) {
        (0, Some(f)) => Ok(Some(f)),
        (0, None) => Err(libc::EIO),
        (e, _) => Err(i32::from(e)),
    }
}

/// # Safety
/// As `mmap(2)`.
unsafe fn map(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    if fd < 0 || flags & libc::MAP_ANONYMOUS != 0 || !is_cuse_node(fd) {
        // SAFETY: forwarded unchanged.
        return unsafe { raw_mmap(addr, len, prot, flags, fd, off) };
    }
    match buffer_fd(fd, off, len, prot, flags) {
        // SAFETY: the same request, on the buffer's memfd from its start.
        Ok(Some(mem)) => unsafe { raw_mmap(addr, len, prot, flags, mem.as_raw_fd(), 0) },
        // Not ours: the CUSE node answers as CUSE does (ENODEV).
        // SAFETY: forwarded unchanged.
        Ok(None) => unsafe { raw_mmap(addr, len, prot, flags, fd, off) },
        Err(e) => {
            set_errno(e);
            libc::MAP_FAILED
        }
    }
}

/// # Safety
/// As `mmap(2)`.
#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    // SAFETY: the caller's contract is mmap(2)'s.
    unsafe { map(addr, len, prot, flags, fd, off) }
}

/// # Safety
/// As `mmap64(2)`.
#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off64_t,
) -> *mut c_void {
    // SAFETY: the caller's contract is mmap64(2)'s.
    unsafe { map(addr, len, prot, flags, fd, off) }
}

/// `fcntl` through the system call; a successful `F_SETFL` on a CUSE node is passed on to it.
///
/// # Safety
/// As `fcntl(2)`. Declared with one argument after `cmd`: on the Linux x86-64 and AArch64 ABIs
/// a variadic call passes it in the same register.
unsafe fn setfl_aware_fcntl(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
    // SAFETY: the arguments go to the system call unchanged; pointer arguments (locks, owner
    // structs) stay the caller's responsibility as with fcntl(2).
    let r = unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) } as c_int;
    if r >= 0 && cmd == libc::F_SETFL && is_cuse_node(fd) {
        let mut flags = arg as u32;
        // SAFETY: `flags` is the u32 MCEMU_IOC_SETFL encodes. A node that does not know the
        // request answers ENOTTY, which changes nothing.
        unsafe { libc::ioctl(fd, MCEMU_IOC_SETFL as _, &mut flags as *mut u32) };
    }
    r
}

/// # Safety
/// As `fcntl(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
    // SAFETY: the caller's contract is fcntl(2)'s.
    unsafe { setfl_aware_fcntl(fd, cmd, arg) }
}

/// # Safety
/// As `fcntl64(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
    // SAFETY: the caller's contract is fcntl64(2)'s.
    unsafe { setfl_aware_fcntl(fd, cmd, arg) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_mappings_pass_through() {
        // SAFETY: an anonymous private mapping of one page, unmapped below.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: `p` is the page just mapped.
        unsafe {
            *(p as *mut u8) = 7;
            assert_eq!(libc::munmap(p, 4096), 0);
        }
        // A regular file maps as it would without the shim.
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        // SAFETY: a read-only shared mapping of a file we keep open.
        let q = unsafe {
            mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(q, libc::MAP_FAILED);
        // SAFETY: reading the first byte of the mapped ELF header, then unmapping it.
        unsafe {
            assert_eq!(*(q as *const u8), 0x7f);
            libc::munmap(q, 4096);
        }
        // Errors keep the kernel's errno.
        // SAFETY: an invalid request (bad fd): nothing is mapped.
        let e = unsafe {
            mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                9999,
                0,
            )
        };
        assert_eq!(e, libc::MAP_FAILED);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn fcntl_passes_through() {
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let fd = f.as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own, then on an invalid one.
        unsafe {
            let fl = fcntl(fd, libc::F_GETFL, 0);
            assert!(fl >= 0);
            let nb = (fl | libc::O_NONBLOCK) as libc::c_ulong;
            assert_eq!(fcntl(fd, libc::F_SETFL, nb), 0);
            assert_ne!(fcntl(fd, libc::F_GETFL, 0) & libc::O_NONBLOCK, 0);
            assert_eq!(fcntl(-1, libc::F_GETFL, 0), -1);
        }
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EBADF)
        );
    }
}
