//! A small FUSE filesystem that mirrors the sysfs habit of binding and unbinding a driver from
//! its device, so bind/unbind shell loops (like the kernel selftests' bind_unbind_sample.sh and
//! media_dev_allocator.sh) work against mcemu with only a path change:
//!
//! ```text
//! <mountpoint>/bus/platform/drivers/omap3isp/unbind   echo 480bc000.isp > unbind   (= ctl unplug)
//! <mountpoint>/bus/platform/drivers/omap3isp/bind     echo 480bc000.isp > bind     (= ctl replug)
//! <mountpoint>/bus/usb/drivers/au0828/unbind          echo 1-2 > unbind   (= ctl unbind --driver au0828)
//! <mountpoint>/bus/usb/drivers/snd-usb-audio/bind     echo 1-2:1.1 > bind (= ctl bind --driver snd-usb-audio)
//! ```
//!
//! Each driver directory also lists its device while the driver is bound to it (sysfs has a
//! symlink there; here an empty directory). A topology's bus and device name come from its
//! `bus_info`: `platform:NAME` is platform device NAME; `usb-...-PORT` is USB device `1-PORT`,
//! and the N-th further driver of a shared media device binds its interface `1-PORT:1.N`.
//!
//! As in sysfs, bind and unbind are write-only; an unknown device name or unbinding an unbound
//! device gives ENODEV, binding a bound one EBUSY.

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

/// What writing a device name to a driver's files does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The whole device of this model goes or comes (`ctl unplug` / `ctl replug`).
    Device { model: String },
    /// One driver of a shared media device (`ctl unbind` / `ctl bind --driver`).
    Driver,
}

/// A driver directory: `bus/BUS/drivers/DRIVER/`, bound to device `device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusDriver {
    pub bus: String,
    pub driver: String,
    pub device: String,
    pub action: Action,
}

impl BusDriver {
    /// The driver directories a daemon serving `models` shows (one per model and driver).
    pub fn for_models(models: &[crate::model::Model]) -> Vec<BusDriver> {
        use crate::model::Model;
        let mut out: Vec<BusDriver> = Vec::new();
        for m in models {
            let entries = match m {
                Model::Board(_) => vec![BusDriver {
                    bus: "platform".into(),
                    driver: omap3isp::DRIVER.into(),
                    device: DEVICE.into(),
                    action: Action::Device { model: m.name() },
                }],
                Model::Topology { topo, .. } => {
                    let info = &topo.device.bus_info;
                    let (bus, device) =
                        match (info.strip_prefix("platform:"), info.strip_prefix("usb-")) {
                            (Some(name), _) => ("platform", name.to_string()),
                            (_, Some(path)) => (
                                "usb",
                                format!("1-{}", path.rsplit('-').next().unwrap_or("1")),
                            ),
                            _ => ("platform", info.replace(['/', ':'], "_")),
                        };
                    if m.shared().is_some() {
                        topo.drivers()
                            .into_iter()
                            .enumerate()
                            .map(|(i, d)| BusDriver {
                                bus: bus.into(),
                                driver: d,
                                device: if i == 0 {
                                    device.clone()
                                } else {
                                    format!("{device}:1.{i}")
                                },
                                action: Action::Driver,
                            })
                            .collect()
                    } else {
                        vec![BusDriver {
                            bus: bus.into(),
                            driver: topo.device.driver.clone(),
                            device,
                            action: Action::Device { model: m.name() },
                        }]
                    }
                }
            };
            for e in entries {
                if !out.iter().any(|o| o.bus == e.bus && o.driver == e.driver) {
                    out.push(e);
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Bind(usize),
    Unbind(usize),
    /// The bound device's entry in its driver's directory.
    Device(usize),
}

/// (inode, parent, name, kind)
type Entry = (u64, u64, String, Kind);

pub struct BusFs {
    ctl: Arc<dyn Control>,
    uid: u32,
    gid: u32,
    drivers: Vec<BusDriver>,
    tree: Vec<Entry>,
}

impl BusFs {
    pub fn new(ctl: Arc<dyn Control>, drivers: Vec<BusDriver>) -> Self {
        let mut tree: Vec<Entry> = vec![
            (1, 1, String::new(), Kind::Dir),
            (2, 1, "bus".into(), Kind::Dir),
        ];
        let dir = |tree: &mut Vec<Entry>, parent: u64, name: &str, kind: Kind| -> u64 {
            if let Some(e) = tree
                .iter()
                .find(|e| e.1 == parent && e.2 == name && e.0 != 1)
            {
                return e.0;
            }
            let ino = tree.len() as u64 + 1;
            tree.push((ino, parent, name.to_string(), kind));
            ino
        };
        for (i, d) in drivers.iter().enumerate() {
            let bus = dir(&mut tree, 2, &d.bus, Kind::Dir);
            let drivers_dir = dir(&mut tree, bus, "drivers", Kind::Dir);
            let drv = dir(&mut tree, drivers_dir, &d.driver, Kind::Dir);
            dir(&mut tree, drv, "bind", Kind::Bind(i));
            dir(&mut tree, drv, "unbind", Kind::Unbind(i));
            dir(&mut tree, drv, &d.device, Kind::Device(i));
        }
        Self {
            ctl,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            drivers,
            tree,
        }
    }

    fn entry(&self, ino: u64) -> Option<&Entry> {
        self.tree.iter().find(|e| e.0 == ino)
    }

    /// Whether driver `i` is bound to its device now.
    fn bound(&self, i: usize) -> bool {
        let st = self.ctl.status();
        let d = &self.drivers[i];
        match &d.action {
            Action::Device { model } => st
                .instances
                .iter()
                .any(|s| &s.model == model && s.state == "registered"),
            Action::Driver => st.instances.iter().any(|s| s.drivers.contains(&d.driver)),
        }
    }

    /// An entry that exists now (a device entry only while its driver is bound).
    fn visible(&self, e: &Entry) -> bool {
        match e.3 {
            Kind::Device(i) => self.bound(i),
            _ => true,
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let e = self.entry(ino)?;
        let dir = matches!(e.3, Kind::Dir | Kind::Device(_));
        let t = SystemTime::UNIX_EPOCH;
        Some(FileAttr {
            ino: INodeNo(ino),
            size: if dir { 0 } else { 4096 },
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: if dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: if dir { 0o755 } else { 0o200 },
            nlink: if dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// A write of `name` to driver `i`'s bind (`bind` true) or unbind file.
    fn bind_unbind(&self, i: usize, bind: bool, name: &str) -> Result<(), Errno> {
        let d = &self.drivers[i];
        if name != d.device {
            return Err(Errno::ENODEV);
        }
        let r = match (&d.action, bind) {
            (Action::Driver, false) => self.ctl.unbind(&d.driver, None),
            (Action::Driver, true) => self.ctl.bind(&d.driver, None),
            (Action::Device { model }, _) => {
                // The newest instance of this model: unbind needs it registered, bind needs
                // it unplugged (a replug always makes a newer one).
                let st = self.ctl.status();
                let newest = st.instances.iter().rev().find(|s| &s.model == model);
                match (newest, bind) {
                    (Some(s), false) if s.state == "registered" => self.ctl.unplug(Some(s.id)),
                    (Some(s), true) if s.state == "registered" => return Err(Errno::EBUSY),
                    (Some(s), true) => self.ctl.replug(Some(s.id)),
                    _ => return Err(Errno::ENODEV),
                }
            }
        };
        r.map(|_| ()).map_err(|e| {
            tracing::debug!(error = %e, "bus file write refused");
            errno_for(&e)
        })
    }
}

fn errno_for(msg: &str) -> Errno {
    if msg.contains("still registered") || msg.contains("bound already") {
        Errno::EBUSY
    } else {
        Errno::ENODEV
    }
}

impl Filesystem for BusFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let hit = self
            .tree
            .iter()
            .find(|t| t.1 == parent.0 && t.0 != 1 && OsStr::new(&t.2) == name && self.visible(t));
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
        match self.entry(ino.0).map(|e| e.3) {
            Some(Kind::Bind(_) | Kind::Unbind(_)) => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO)
            }
            Some(_) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
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
        let r = match self.entry(ino.0).map(|e| e.3) {
            Some(Kind::Unbind(i)) => self.bind_unbind(i, false, name.trim()),
            Some(Kind::Bind(i)) => self.bind_unbind(i, true, name.trim()),
            _ => Err(Errno::EIO),
        };
        match r {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
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
        let parent = self.entry(ino.0).map(|t| t.1).unwrap_or(1);
        let mut entries = vec![
            (ino.0, FileType::Directory, ".".to_string()),
            (parent, FileType::Directory, "..".into()),
        ];
        for t in self
            .tree
            .iter()
            .filter(|t| t.1 == ino.0 && t.0 != 1 && self.visible(t))
        {
            let kind = if matches!(t.3, Kind::Dir | Kind::Device(_)) {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            entries.push((t.0, kind, t.2.clone()));
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
    drivers: Vec<BusDriver>,
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
    fuser::spawn_mount(BusFs::new(ctl, drivers), mountpoint, &cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{InstanceStatus, Status};
    use crate::model::Model;
    use parking_lot::Mutex;

    #[test]
    fn driver_directories_per_model() {
        let models = [
            Model::Board(omap3isp::Board::N900),
            Model::topology("vimc-like").unwrap(),
            Model::topology("uvc-like").unwrap(),
            Model::topology("usb-av-like").unwrap(),
        ];
        let d = BusDriver::for_models(&models);
        let got: Vec<(&str, &str, &str)> = d
            .iter()
            .map(|d| (d.bus.as_str(), d.driver.as_str(), d.device.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("platform", "omap3isp", "480bc000.isp"),
                ("platform", "vimc", "vimc"),
                ("usb", "uvcvideo", "1-1"),
                ("usb", "au0828", "1-2"),
                ("usb", "snd-usb-audio", "1-2:1.1"),
            ]
        );
        assert_eq!(d[4].action, Action::Driver);
    }

    /// A daemon with one shared instance whose drivers bind and unbind.
    struct Shared(Mutex<Vec<String>>);
    impl Control for Shared {
        fn status(&self) -> Status {
            Status {
                board: String::new(),
                lifetime: String::new(),
                errno_profile: String::new(),
                ready: true,
                instances: vec![InstanceStatus {
                    id: 0,
                    model: "topology usb-av-like".into(),
                    state: "registered".into(),
                    drivers: self.0.lock().clone(),
                    nodes: vec![],
                }],
                breakpoints: serde_json::Value::Null,
                clients: serde_json::Value::Null,
            }
        }
        fn unplug(&self, _: Option<u32>) -> Result<serde_json::Value, String> {
            Err("no".into())
        }
        fn replug(&self, _: Option<u32>) -> Result<serde_json::Value, String> {
            Err("no".into())
        }
        fn unbind(&self, driver: &str, _: Option<u32>) -> Result<serde_json::Value, String> {
            let mut b = self.0.lock();
            let n = b.len();
            b.retain(|d| d != driver);
            if b.len() == n {
                Err(format!("{driver:?} is not bound"))
            } else {
                Ok(serde_json::Value::Null)
            }
        }
        fn bind(&self, driver: &str, _: Option<u32>) -> Result<serde_json::Value, String> {
            let mut b = self.0.lock();
            if b.iter().any(|d| d == driver) {
                return Err(format!("instance 0: {driver:?} is bound already"));
            }
            b.push(driver.into());
            Ok(serde_json::Value::Null)
        }
        fn audit(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
        fn arm(&self, _: &str, _: &str, _: &str) -> Result<serde_json::Value, String> {
            Err("no".into())
        }
        fn wait_hit(&self, _: f64) -> Result<serde_json::Value, String> {
            Err("no".into())
        }
        fn cont(&self, _: Option<u32>) -> Result<serde_json::Value, String> {
            Err("no".into())
        }
        fn inject(&self, _: &crate::control::FaultSpec) -> Result<serde_json::Value, String> {
            Err("no".into())
        }
    }

    #[test]
    fn shared_drivers_bind_and_unbind_with_sysfs_errnos() {
        let ctl = Arc::new(Shared(Mutex::new(vec![
            "au0828".into(),
            "snd-usb-audio".into(),
        ])));
        let models = [Model::topology("usb-av-like").unwrap()];
        let fs = BusFs::new(ctl.clone(), BusDriver::for_models(&models));
        let device_entry = |i: usize| {
            fs.tree
                .iter()
                .find(|e| e.3 == Kind::Device(i))
                .is_some_and(|e| fs.visible(e))
        };
        assert!(device_entry(0) && device_entry(1));
        assert_eq!(fs.bind_unbind(0, false, "1-2:1.1"), Err(Errno::ENODEV));
        assert_eq!(fs.bind_unbind(0, false, "1-2"), Ok(()));
        assert!(!device_entry(0), "an unbound driver lists no device");
        assert_eq!(fs.bind_unbind(0, false, "1-2"), Err(Errno::ENODEV));
        assert_eq!(fs.bind_unbind(1, true, "1-2:1.1"), Err(Errno::EBUSY));
        assert_eq!(fs.bind_unbind(0, true, "1-2"), Ok(()));
        assert!(device_entry(0));
        assert_eq!(*ctl.0.lock(), ["snd-usb-audio", "au0828"]);
    }
}
