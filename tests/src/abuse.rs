//! Hostile ioctl calls and what each may answer: every ioctl number the nodes know (plus
//! mis-sized and unknown numbers), called with NULL, unmapped, guarded, kernel-range and
//! non-canonical argument pointers, with all-ones arguments (absurd counts and indices), and
//! with bad pointers inside otherwise valid structs. The rules follow the kernel: a bad
//! argument pointer is EFAULT for a command the node serves (its `video_usercopy` copies the
//! argument in before the driver runs), a number the node does not know is ENOTTY, and nothing
//! may hang or succeed through a bad pointer.

use std::os::fd::{AsRawFd, OwnedFd};

use ioctl_abi::{ioc, ioc_dir, ioc_nr, ioc_size, ioc_type};
use nix::errno::Errno;

/// What kind of node a path names (by its device name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Media,
    Video,
    Subdev,
}

impl Kind {
    pub fn of(path: &str) -> Kind {
        let name = path.rsplit('/').next().unwrap_or("");
        if name.starts_with("media") {
            Kind::Media
        } else if name.starts_with("v4l-subdev") {
            Kind::Subdev
        } else {
            Kind::Video
        }
    }
}

/// Every ioctl number the emulated nodes implement or might be asked, with its C name.
pub fn commands() -> Vec<(&'static str, u32)> {
    let mut v: Vec<_> = ioctl_abi::all_ioctls().copied().collect();
    v.push(("MCEMU_IOC_MMAP", ioctl_abi::mcemu::MCEMU_IOC_MMAP));
    v.push(("MCEMU_IOC_SETFL", ioctl_abi::mcemu::MCEMU_IOC_SETFL));
    v
}

/// Where a bad argument points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPtr {
    Null,
    /// Page 1: below `mmap_min_addr`, never mapped.
    Low,
    /// A page of ours mapped PROT_NONE.
    Guard,
    /// The last bytes of a readable page followed by the PROT_NONE page: the argument
    /// straddles the end of the mapping.
    Straddle,
    /// The kernel's direct map.
    Kernel,
    /// Not a canonical address.
    NonCanonical,
}

pub const BAD_PTRS: [BadPtr; 6] = [
    BadPtr::Null,
    BadPtr::Low,
    BadPtr::Guard,
    BadPtr::Straddle,
    BadPtr::Kernel,
    BadPtr::NonCanonical,
];

/// One hostile call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// The command with a zero-filled argument: what the node answers a well-formed call,
    /// the reference for the others.
    Zero,
    /// The argument pointer is bad.
    Ptr(BadPtr),
    /// Every byte of the argument 0xff: absurd counts, indices, flags, and pointers.
    Ones,
    /// The command's size field one byte larger / smaller: a number the node does not know.
    Oversize,
    Undersize,
    /// A pointer inside the argument is bad (the commands that carry one).
    Inner(BadPtr),
}

/// A process's hostile memory: a readable page followed by a PROT_NONE page.
pub struct Arena {
    page: *mut u8,
    buf: Vec<u64>,
}

// SAFETY: the arena's pages are only ever passed to the kernel as ioctl arguments; the
// process never reads or writes them through `page` from more than one place at a time
// (each thread has its own arena).
unsafe impl Send for Arena {}

const PAGE: usize = 4096;

impl Arena {
    pub fn new() -> Arena {
        // SAFETY: a fresh anonymous private mapping of two pages; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap: {}", Errno::last());
        // SAFETY: the second page of the mapping made above.
        let r = unsafe { libc::mprotect(p.cast::<u8>().add(PAGE).cast(), PAGE, libc::PROT_NONE) };
        assert!(r == 0, "mprotect: {}", Errno::last());
        Arena {
            page: p.cast(),
            buf: vec![0; 16384 / 8],
        }
    }

    /// The address `bad` stands for, for an argument of `size` bytes.
    pub fn addr(&self, bad: BadPtr, size: usize) -> u64 {
        let page = self.page as u64;
        match bad {
            BadPtr::Null => 0,
            BadPtr::Low => 0x1000,
            BadPtr::Guard => page + PAGE as u64,
            BadPtr::Straddle => page + PAGE as u64 - (size / 2).max(1) as u64,
            BadPtr::Kernel => 0xffff_8880_0000_0000,
            BadPtr::NonCanonical => 0x8000_0000_0000_0000,
        }
    }

    fn fill(&mut self, byte: u8) -> &mut [u8] {
        let b: &mut [u8] = zerocopy::IntoBytes::as_mut_bytes(&mut self.buf[..]);
        b.fill(byte);
        b
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.page.cast(), 2 * PAGE) };
    }
}

/// One raw ioctl; the argument is an address, as the kernel sees it.
pub fn raw(fd: &OwnedFd, cmd: u32, arg: u64) -> Result<i32, Errno> {
    // SAFETY: the kernel checks the address; a bad one is the point of these calls, and the
    // memory it may write belongs to the arena or the buffer the caller passed.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, arg as usize) };
    Errno::result(r)
}

/// The cases that apply to `cmd` on a node of `kind`.
pub fn cases(kind: Kind, cmd: u32) -> Vec<Case> {
    let mut v = vec![Case::Zero, Case::Ones];
    if ioc_size(cmd) > 0 {
        v.extend(BAD_PTRS.iter().map(|&b| Case::Ptr(b)));
        let known: Vec<u32> = commands().iter().map(|c| c.1).collect();
        for (case, delta) in [(Case::Oversize, 1), (Case::Undersize, -1)] {
            if !known.contains(&resized(cmd, delta)) {
                v.push(case);
            }
        }
    }
    if inner_field(kind, cmd).is_some() {
        // NULL inside a media argument means "do not fill this array": a valid call.
        let null_valid = kind == Kind::Media;
        v.extend(
            BAD_PTRS
                .iter()
                .filter(|&&b| !(null_valid && b == BadPtr::Null))
                .map(|&b| Case::Inner(b)),
        );
    }
    v
}

/// The argument's pointer field for the commands that carry one: its byte offset, and the
/// prepared argument (little endian u32 words at byte offsets) that makes the node use it.
fn inner_field(kind: Kind, cmd: u32) -> Option<(usize, Vec<(usize, u32)>)> {
    use ioctl_abi::media::*;
    use ioctl_abi::videodev2::*;
    match (kind, cmd) {
        // ptr_entities with num_entities past the graph's: the node writes every entity.
        (Kind::Media, MEDIA_IOC_G_TOPOLOGY) => Some((16, vec![(8, u32::MAX)])),
        // Entity 1's pad array.
        (Kind::Media, MEDIA_IOC_ENUM_LINKS) => Some((8, vec![(0, 1)])),
        // One control at a bad address.
        (Kind::Video | Kind::Subdev, VIDIOC_G_EXT_CTRLS)
        | (Kind::Video | Kind::Subdev, VIDIOC_S_EXT_CTRLS)
        | (Kind::Video | Kind::Subdev, VIDIOC_TRY_EXT_CTRLS) => Some((24, vec![(4, 1)])),
        _ => None,
    }
}

/// A command number the node cannot know: `cmd` with its size field one byte off.
pub fn resized(cmd: u32, delta: i64) -> u32 {
    let size = (ioc_size(cmd) as i64 + delta).clamp(0, 0x3fff) as usize;
    ioc(ioc_dir(cmd), ioc_type(cmd), ioc_nr(cmd), size)
}

/// Numbers no node serves: unused numbers of each type byte the nodes use.
pub fn unknown_commands() -> Vec<u32> {
    let known: Vec<u32> = commands().iter().map(|c| c.1).collect();
    let mut v = Vec::new();
    for (ty, nrs) in [
        (b'V', &[1u8, 3, 6, 99, 120, 127, 200, 255][..]),
        (b'|', &[0x06, 0x7f, 0x82, 0xff][..]),
        (ioctl_abi::mcemu::MCEMU_IOC_TYPE, &[0, 3, 200][..]),
        (b'X', &[0, 1][..]),
    ] {
        for &nr in nrs {
            for cmd in [
                ioctl_abi::io(ty, nr),
                ioctl_abi::iowr(ty, nr, 64),
                ioctl_abi::ior(ty, nr, 8),
            ] {
                if !known.contains(&cmd) {
                    v.push(cmd);
                }
            }
        }
    }
    v
}

/// Performs one case; returns the call's result.
pub fn call(
    fd: &OwnedFd,
    arena: &mut Arena,
    kind: Kind,
    cmd: u32,
    case: Case,
) -> Result<i32, Errno> {
    let size = ioc_size(cmd);
    match case {
        Case::Zero | Case::Ones => {
            let b = arena.fill(if case == Case::Zero { 0 } else { 0xff });
            let p = b.as_mut_ptr() as u64;
            raw(fd, cmd, p)
        }
        Case::Ptr(bad) => {
            let a = arena.addr(bad, size);
            if bad == BadPtr::Straddle {
                // The readable half holds zeroes, as a well-formed call would.
                // SAFETY: the bytes before the guard page, inside the arena's readable page.
                unsafe { std::ptr::write_bytes(a as *mut u8, 0, (size / 2).max(1)) };
            }
            raw(fd, cmd, a)
        }
        Case::Oversize => {
            let p = arena.fill(0).as_mut_ptr() as u64;
            raw(fd, resized(cmd, 1), p)
        }
        Case::Undersize => {
            let p = arena.fill(0).as_mut_ptr() as u64;
            raw(fd, resized(cmd, -1), p)
        }
        Case::Inner(bad) => {
            let Some((at, words)) = inner_field(kind, cmd) else {
                return Err(Errno::EINVAL);
            };
            // Straddling: 8 bytes readable, the rest of any element behind the guard.
            let target = arena.addr(bad, 16);
            let b = arena.fill(0);
            for (o, w) in words {
                b[o..o + 4].copy_from_slice(&w.to_le_bytes());
            }
            b[at..at + 8].copy_from_slice(&target.to_le_bytes());
            let p = b.as_mut_ptr() as u64;
            raw(fd, cmd, p)
        }
    }
}

/// Whether `got` is an answer the kernel could give to `case`, where `zero` is what the node
/// answered the same command with a zero-filled argument. `Err` says what was wrong.
pub fn judge(
    cmd: u32,
    case: Case,
    zero: Result<i32, Errno>,
    got: Result<i32, Errno>,
) -> Result<(), String> {
    let unknown = zero == Err(Errno::ENOTTY);
    let ok = match case {
        Case::Zero | Case::Ones => true,
        Case::Ptr(_) => match got {
            Ok(_) => false,
            Err(Errno::EFAULT) => true,
            // A node that does not serve the command may say so before looking at memory.
            Err(Errno::ENOTTY) => unknown,
            // A command that only writes back runs before the copy fails: its own error first.
            Err(e) => ioc_dir(cmd) == ioctl_abi::IOC_READ && zero == Err(e),
        },
        Case::Oversize | Case::Undersize => got == Err(Errno::ENOTTY),
        Case::Inner(_) => match got {
            Ok(_) => false,
            Err(Errno::EFAULT) => true,
            Err(e) => zero == Err(e) || unknown,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{case:?}: got {}, zero-filled call got {}",
            show(got),
            show(zero)
        ))
    }
}

pub fn show(r: Result<i32, Errno>) -> String {
    match r {
        Ok(v) => format!("success ({v})"),
        Err(e) => format!("{e:?}"),
    }
}

/// read(2) and write(2) of a large length to bad buffers: an errno, never a hang or success.
pub fn rw(fd: &OwnedFd, arena: &Arena, bad: BadPtr) -> [Result<isize, Errno>; 2] {
    let a = arena.addr(bad, 64) as usize;
    // SAFETY: the kernel checks the address; the arena's pages are ours if it is one of them.
    let r = unsafe { libc::read(fd.as_raw_fd(), a as *mut libc::c_void, 1 << 20) };
    // SAFETY: as above.
    let w = unsafe { libc::write(fd.as_raw_fd(), a as *const libc::c_void, 1 << 20) };
    [Errno::result(r), Errno::result(w)]
}

/// What a storm saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub calls: u64,
    /// Answers the kernel could not have given, with the node, command and case.
    pub violations: Vec<String>,
    /// Passes cut short because the node was unplugged under them.
    pub unplugged: u64,
    /// Errno (or "success") of every answer, counted.
    pub answers: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    fn count(&mut self, r: Result<i32, Errno>) {
        self.calls += 1;
        let k = match r {
            Ok(_) => "success".to_string(),
            Err(e) => format!("{e:?}"),
        };
        *self.answers.entry(k).or_default() += 1;
    }

    pub fn merge(&mut self, o: Tally) {
        self.calls += o.calls;
        self.unplugged += o.unplugged;
        self.violations.extend(o.violations);
        for (k, v) in o.answers {
            *self.answers.entry(k).or_default() += v;
        }
    }
}

/// Opens a node as the storms do: non-blocking, so that no call can wait for an event or a
/// buffer that never comes.
pub fn open_nonblock(path: &str) -> Result<OwnedFd, Errno> {
    use nix::fcntl::OFlag;
    nix::fcntl::open(
        path,
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map(|fd| {
        // SAFETY: open() returned a new descriptor that nothing else owns.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    })
}

/// Whether the node behind `fd` has been unplugged (its identifying ioctl fails as after an
/// unregister: ENODEV on video and sub-device nodes, EIO on the media node).
pub fn gone(fd: &OwnedFd, path: &str) -> bool {
    matches!(crate::probe(fd, path), Err(Errno::ENODEV | Errno::EIO))
}

/// Every case of every command on one node, then unknown numbers and read/write to bad
/// buffers; `pick` chooses which (index, of how many) to run, for storms that sample.
/// With `unplug_ok`, a wrong answer from a node that turns out to be unplugged ends the pass
/// instead of counting as a violation.
pub fn storm_node(
    path: &str,
    arena: &mut Arena,
    unplug_ok: bool,
    mut pick: impl FnMut(usize) -> bool,
) -> Result<Tally, Errno> {
    use ioctl_abi::mcemu::MCEMU_IOC_SETFL;
    let fd = open_nonblock(path)?;
    let kind = Kind::of(path);
    let mut t = Tally::default();
    let wrong = |t: &mut Tally, what: String| -> bool {
        if unplug_ok && gone(&fd, path) {
            t.unplugged += 1;
            return true;
        }
        t.violations.push(format!("{path}: {what}"));
        false
    };
    let nonblock = (libc::O_RDWR | libc::O_NONBLOCK) as u32;
    for (name, cmd) in commands() {
        let all = cases(kind, cmd);
        let chosen: Vec<Case> = all.iter().copied().filter(|_| pick(all.len())).collect();
        if chosen.is_empty() {
            continue;
        }
        let zero = call(&fd, arena, kind, cmd, Case::Zero);
        t.count(zero);
        for case in chosen.into_iter().filter(|c| *c != Case::Zero) {
            let got = call(&fd, arena, kind, cmd, case);
            t.count(got);
            if let Err(msg) = judge(cmd, case, zero, got) {
                if wrong(&mut t, format!("{name} ({cmd:#010x}) {msg}")) {
                    return Ok(t);
                }
            }
        }
        if cmd == MCEMU_IOC_SETFL {
            // The zero-filled and all-ones calls changed the handle's flags: non-blocking again.
            let mut fl = nonblock;
            let _ = raw(&fd, cmd, &mut fl as *mut u32 as u64);
        }
    }
    let unknown = unknown_commands();
    let n = unknown.len();
    for cmd in unknown.into_iter().filter(|_| pick(n)) {
        let p = arena.fill(0).as_mut_ptr() as u64;
        let got = raw(&fd, cmd, p);
        t.count(got);
        if got != Err(Errno::ENOTTY)
            && wrong(&mut t, format!("unknown {cmd:#010x}: got {}", show(got)))
        {
            return Ok(t);
        }
    }
    for bad in BAD_PTRS.into_iter().filter(|_| pick(BAD_PTRS.len())) {
        for (what, r) in ["read", "write"].iter().zip(rw(&fd, arena, bad)) {
            t.count(r.map(|v| v as i32));
            if r.is_ok() && wrong(&mut t, format!("{what} to {bad:?}: success")) {
                return Ok(t);
            }
        }
    }
    let r = crate::probe(&fd, path);
    if let Err(e) = r {
        wrong(
            &mut t,
            format!("the node no longer answers its identifying ioctl: {e:?}"),
        );
    }
    Ok(t)
}
