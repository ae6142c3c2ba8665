//! A small FUSE filesystem that mirrors the sysfs habit of binding and unbinding a driver from
//! its device, so bind/unbind shell loops (like the kernel selftests' bind_unbind_sample.sh) work
//! against mcemu with only a path change:
//!
//! ```text
//! <mountpoint>/bus/platform/drivers/omap3isp/unbind   echo 480bc000.isp > unbind   (= ctl unplug)
//! <mountpoint>/bus/platform/drivers/omap3isp/bind     echo 480bc000.isp > bind     (= ctl replug)
//! ```
//!
//! As in sysfs, both files are write-only; an unknown device name or unbinding an unbound device
//! gives ENODEV, binding a bound one EBUSY.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyWrite, Request,
    WriteFlags,
};

use crate::control::Control;

/// The platform device name the ISP has on OMAP3 boards (`isp@480bc000`).
pub const DEVICE: &str = "480bc000.isp";

const TTL: Duration = Duration::from_secs(1);

/// (inode, parent, name, is_dir)
const TREE: &[(u64, u64, &str, bool)] = &[
    (1, 1, "", true),
    (2, 1, "bus", true),
    (3, 2, "platform", true),
    (4, 3, "drivers", true),
    (5, 4, "omap3isp", true),
    (6, 5, "bind", false),
    (7, 5, "unbind", false),
];
const BIND: u64 = 6;
const UNBIND: u64 = 7;

pub struct BusFs {
    ctl: Arc<dyn Control>,
    uid: u32,
    gid: u32,
}

impl BusFs {
    pub fn new(ctl: Arc<dyn Control>) -> Self {
        Self {
            ctl,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (_, _, _, dir) = TREE.iter().find(|t| t.0 == ino)?;
        let t = SystemTime::UNIX_EPOCH;
        Some(FileAttr {
            ino: INodeNo(ino),
            size: if *dir { 0 } else { 4096 },
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: if *dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: if *dir { 0o755 } else { 0o200 },
            nlink: if *dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

fn errno_for(msg: &str) -> Errno {
    if msg.contains("still registered") {
        Errno::EBUSY
    } else {
        Errno::ENODEV
    }
}

impl Filesystem for BusFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let hit = TREE
            .iter()
            .find(|t| t.1 == parent.0 && t.0 != 1 && OsStr::new(t.2) == name);
        match hit.and_then(|t| self.attr(t.0)) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // `echo > file` truncates first; sysfs ignores that too.
        match self.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match ino.0 {
            BIND | UNBIND => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            _ if self.attr(ino.0).is_some() => reply.error(Errno::EISDIR),
            _ => reply.error(Errno::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Store-only attributes have no show method.
        reply.error(Errno::EIO);
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let name = String::from_utf8_lossy(data);
        if name.trim() != DEVICE {
            return reply.error(Errno::ENODEV);
        }
        let r = match ino.0 {
            UNBIND => self.ctl.unplug(None),
            BIND => self.ctl.replug(None),
            _ => return reply.error(Errno::EIO),
        };
        match r {
            Ok(_) => reply.written(data.len() as u32),
            Err(e) => {
                tracing::debug!(error = %e, "bus file write refused");
                reply.error(errno_for(&e))
            }
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if self.attr(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        let parent = TREE.iter().find(|t| t.0 == ino.0).map(|t| t.1).unwrap_or(1);
        let mut entries = vec![
            (ino.0, FileType::Directory, ".".to_string()),
            (parent, FileType::Directory, "..".into()),
        ];
        for t in TREE.iter().filter(|t| t.1 == ino.0 && t.0 != 1) {
            let kind = if t.3 {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            entries.push((t.0, kind, t.2.into()));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mounts the filesystem at `mountpoint` (created if missing); unmounted when the handle drops.
pub fn mount(
    mountpoint: &std::path::Path,
    ctl: Arc<dyn Control>,
) -> std::io::Result<fuser::BackgroundSession> {
    // A daemon killed with the filesystem mounted leaves a dead FUSE mount behind ("transport
    // endpoint is not connected"): detach it, so a restarted daemon can mount in its place.
    if let Err(e) = std::fs::metadata(mountpoint) {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            tracing::info!(path = %mountpoint.display(), "detaching the dead mount a killed daemon left");
            nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH)
                .map_err(std::io::Error::from)?;
        }
    }
    std::fs::create_dir_all(mountpoint)?;
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        fuser::MountOption::FSName("mcemu".into()),
        fuser::MountOption::Subtype("mcemu-bus".into()),
    ];
    fuser::spawn_mount(BusFs::new(ctl), mountpoint, &cfg)
}
