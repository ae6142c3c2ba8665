//! The media device model behind `/dev/mediaN`: a [`MediaDevice`] with its [`Graph`] of
//! entities, pads, links and interfaces, in the reference lifetime model of the 2016/2024
//! lifetime patches:
//!
//! * the media device is reference-counted (`Arc`); every registered device node and every open
//!   file handle ([`MediaFh`]) holds a reference;
//! * graph objects live inside the media device and go only when it is released;
//! * unregistration ([`MediaDevice::unregister`]) and release are separate, ordered steps: the
//!   driver's release callback runs when the last reference goes, just before the memory does;
//! * [`Audit`] counts live objects of every kind.
//!
//! The Media Controller ioctls are one method each of [`MediaIoctls`], defaulting to ENOTTY.

pub mod audit;
pub mod controls;
pub mod graph;
pub mod pads;
pub mod v4l2;
pub mod vb2;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use audit::{Audit, Kind};
pub use graph::{EntityKind, EntityOps, EntitySpec, Graph, PadRef, Remote, Topology};
use ioctl_abi::media::{media_device_info, media_entity_desc, media_link_desc, media_links_enum};
use ioctl_abi::set_cstr;
use nix::errno::Errno;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use v4l2::{SubdevIoctls, VideoIoctls};

/// What `MEDIA_IOC_DEVICE_INFO` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDeviceInfo {
    pub driver: String,
    pub model: String,
    pub serial: String,
    pub bus_info: String,
    pub hw_revision: u32,
    /// `LINUX_VERSION_CODE` of the kernel the driver claims to be part of.
    pub media_version: u32,
    pub driver_version: u32,
}

impl MediaDeviceInfo {
    /// The uapi struct, as `media_device_get_info()` fills it (zeroed, then the fields).
    pub fn to_uapi(&self) -> media_device_info {
        let mut info = media_device_info::zeroed();
        set_cstr(&mut info.driver, &self.driver);
        set_cstr(&mut info.model, &self.model);
        set_cstr(&mut info.serial, &self.serial);
        set_cstr(&mut info.bus_info, &self.bus_info);
        info.hw_revision = self.hw_revision;
        info.media_version = self.media_version;
        info.driver_version = self.driver_version;
        info
    }
}

/// `KERNEL_VERSION(a, b, c)`, with each part clamped as the kernel's macro does for sublevels.
pub fn kernel_version_code(major: u32, minor: u32, sub: u32) -> u32 {
    (major << 16) | ((minor & 0xff) << 8) | sub.min(255)
}

/// Parses a `uname -r` release ("6.1.0-56-amd64", "6.18.44-fc") into a version code.
pub fn parse_kernel_release(release: &str) -> Option<u32> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().ok());
    let a = parts.next()??;
    let b = parts.next()??;
    let c = if release.split('.').count() > 2 {
        parts.next().flatten().unwrap_or(0)
    } else {
        0
    };
    Some(kernel_version_code(a, b, c))
}

/// The running kernel's version code, from uname(2).
pub fn running_kernel_version() -> u32 {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| u.release().to_str().and_then(parse_kernel_release))
        .unwrap_or_else(|| kernel_version_code(6, 1, 0))
}

/// The Media Controller ioctls of a media device node, one method per ioctl. Each unimplemented
/// one answers ENOTTY, as the kernel does for an unknown command.
pub trait MediaIoctls: Send + Sync {
    fn device_info(&self) -> Result<media_device_info, Errno> {
        Err(Errno::ENOTTY)
    }
    fn enum_entities(&self, _desc: media_entity_desc) -> Result<media_entity_desc, Errno> {
        Err(Errno::ENOTTY)
    }
    /// The entity's pads and outbound links (the arrays of `media_links_enum`).
    #[allow(clippy::type_complexity)]
    fn enum_links(
        &self,
        _req: &media_links_enum,
    ) -> Result<(Vec<ioctl_abi::media::media_pad_desc>, Vec<media_link_desc>), Errno> {
        Err(Errno::ENOTTY)
    }
    fn setup_link(&self, _desc: media_link_desc) -> Result<media_link_desc, Errno> {
        Err(Errno::ENOTTY)
    }
    fn topology(&self) -> Result<Topology, Errno> {
        Err(Errno::ENOTTY)
    }
}

type ReleaseFn = Box<dyn FnOnce() + Send>;
/// Tells whether an entity (by id) is part of a started pipeline.
pub type BusyFn = Arc<dyn Fn(u32) -> bool + Send + Sync>;

/// A media device.
pub struct MediaDevice {
    info: MediaDeviceInfo,
    graph: RwLock<Graph>,
    registered: AtomicBool,
    release: Mutex<Option<ReleaseFn>>,
    audit: Arc<Audit>,
    /// Whether an entity is part of a started pipeline (links then refuse changes: EBUSY):
    /// one check per driver that registered entities, by key.
    busy: RwLock<Vec<(u64, BusyFn)>>,
}

impl std::fmt::Debug for MediaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaDevice")
            .field("info", &self.info)
            .field("registered", &self.is_registered())
            .finish()
    }
}

impl MediaDevice {
    pub fn new(info: MediaDeviceInfo, audit: Arc<Audit>) -> Arc<Self> {
        audit.add(Kind::MediaDevice, 1);
        Arc::new(Self {
            info,
            graph: RwLock::new(Graph::new(audit.clone())),
            registered: AtomicBool::new(false),
            release: Mutex::new(None),
            audit,
            busy: RwLock::new(Vec::new()),
        })
    }

    pub fn info(&self) -> &MediaDeviceInfo {
        &self.info
    }

    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }

    /// The graph, for reading (the kernel's `graph_mutex`).
    pub fn graph(&self) -> RwLockReadGuard<'_, Graph> {
        self.graph.read()
    }

    pub fn graph_mut(&self) -> RwLockWriteGuard<'_, Graph> {
        self.graph.write()
    }

    /// The driver's release callback: runs once, when the last reference goes, after the graph
    /// objects are removed and just before the media device's memory is freed.
    pub fn set_release(&self, f: impl FnOnce() + Send + 'static) {
        *self.release.lock() = Some(Box::new(f));
    }

    /// Adds a driver's busy check; returns its key for [`Self::remove_busy_check`].
    pub fn add_busy_check(&self, f: BusyFn) -> u64 {
        let mut b = self.busy.write();
        let key = b.iter().map(|(k, _)| k + 1).max().unwrap_or(1);
        b.push((key, f));
        key
    }

    /// A driver that goes takes its check with it.
    pub fn remove_busy_check(&self, key: u64) {
        self.busy.write().retain(|(k, _)| *k != key);
    }

    /// `media_device_register`: the node is live.
    pub fn register(&self) {
        self.registered.store(true, Ordering::SeqCst);
    }

    /// `media_device_unregister`: new syscalls are refused from now on; the memory stays until
    /// the last reference is dropped. Returns false if it was not registered.
    pub fn unregister(&self) -> bool {
        self.registered.swap(false, Ordering::SeqCst)
    }

    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::SeqCst)
    }
}

impl Drop for MediaDevice {
    fn drop(&mut self) {
        // Graph objects first, as `__media_device_release` does, then the driver's callback.
        let empty = Graph::new(self.audit.clone());
        drop(std::mem::replace(self.graph.get_mut(), empty));
        if let Some(f) = self.release.get_mut().take() {
            f();
        }
        self.audit.remove(Kind::MediaDevice, 1);
    }
}

impl MediaIoctls for MediaDevice {
    fn device_info(&self) -> Result<media_device_info, Errno> {
        Ok(self.info.to_uapi())
    }

    fn enum_entities(&self, desc: media_entity_desc) -> Result<media_entity_desc, Errno> {
        self.graph().enum_entity(desc.id)
    }

    fn enum_links(
        &self,
        req: &media_links_enum,
    ) -> Result<(Vec<ioctl_abi::media::media_pad_desc>, Vec<media_link_desc>), Errno> {
        self.graph().enum_links(req.entity)
    }

    fn setup_link(&self, mut desc: media_link_desc) -> Result<media_link_desc, Errno> {
        let busy: Vec<BusyFn> = self.busy.read().iter().map(|(_, f)| f.clone()).collect();
        let check = |e: u32| busy.iter().any(|b| b(e));
        self.graph_mut().setup_link(&desc, &check)?;
        desc.reserved = [0; 2];
        Ok(desc)
    }

    fn topology(&self) -> Result<Topology, Errno> {
        Ok(self.graph().topology())
    }
}

/// An open file handle on a media device node. In the reference model it pins the media device
/// until closed; in the legacy models ([`MediaFh::unpinned`]) it does not, as a file handle did
/// not before the lifetime patches.
pub struct MediaFh {
    pin: Option<Arc<MediaDevice>>,
    audit: Arc<Audit>,
}

impl MediaFh {
    pub fn new(dev: Arc<MediaDevice>) -> Self {
        dev.audit.add(Kind::FileHandle, 1);
        Self {
            audit: dev.audit.clone(),
            pin: Some(dev),
        }
    }

    pub fn unpinned(dev: &MediaDevice) -> Self {
        dev.audit.add(Kind::FileHandle, 1);
        Self {
            audit: dev.audit.clone(),
            pin: None,
        }
    }

    pub fn device(&self) -> Option<&Arc<MediaDevice>> {
        self.pin.as_ref()
    }
}

impl Drop for MediaFh {
    fn drop(&mut self) {
        self.audit.remove(Kind::FileHandle, 1);
    }
}

#[cfg(test)]
mod tests {
    use ioctl_abi::cstr;

    use super::*;

    #[test]
    fn version_codes() {
        assert_eq!(parse_kernel_release("6.1.0-56-amd64"), Some(0x060100));
        assert_eq!(parse_kernel_release("6.18.44-fc-v669"), Some(0x06122c));
        assert_eq!(parse_kernel_release("5.4.300"), Some(0x0504ff));
        assert_eq!(parse_kernel_release("7.0"), Some(0x070000));
        assert_eq!(parse_kernel_release("garbage"), None);
    }

    #[test]
    fn device_info_fills_every_field_and_terminates_strings() {
        let dev = MediaDevice::new(
            MediaDeviceInfo {
                driver: "omap3isp".into(),
                model: "TI OMAP3 ISP".into(),
                serial: String::new(),
                bus_info: "platform:480bc000.isp".into(),
                hw_revision: 0xf0,
                media_version: 0x060100,
                driver_version: 0x060100,
            },
            Audit::new(),
        );
        let i = dev.device_info().unwrap();
        assert_eq!(cstr(&i.driver), "omap3isp");
        assert_eq!(cstr(&i.model), "TI OMAP3 ISP");
        assert_eq!(cstr(&i.serial), "");
        assert_eq!(i.hw_revision, 0xf0);
        assert_eq!(i.media_version, 0x060100);
        assert_eq!(i.reserved, [0; 31]);
    }

    fn info() -> MediaDeviceInfo {
        MediaDeviceInfo {
            driver: "test".into(),
            model: "model".into(),
            serial: String::new(),
            bus_info: String::new(),
            hw_revision: 1,
            media_version: 0x060100,
            driver_version: 0x060100,
        }
    }

    #[test]
    fn outlives_unregistration_while_a_handle_is_open_and_releases_once() {
        let audit = Audit::new();
        let released = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let dev = MediaDevice::new(info(), audit.clone());
        let r = released.clone();
        let audit_at_release = audit.clone();
        dev.set_release(move || {
            // The graph is gone before the driver's callback runs; the device is still counted.
            assert_eq!(audit_at_release.live(Kind::Entity), 0);
            assert_eq!(audit_at_release.live(Kind::MediaDevice), 1);
            r.fetch_add(1, Ordering::SeqCst);
        });
        dev.graph_mut().add_entity(EntitySpec {
            name: "e".into(),
            function: 0,
            flags: 0,
            kind: EntityKind::Subdev,
            pads: vec![ioctl_abi::media::MEDIA_PAD_FL_SINK],
            ops: None,
        });
        dev.register();
        let fh = MediaFh::new(dev.clone());
        assert!(dev.unregister());
        assert!(!dev.unregister(), "unregistering twice is a no-op");
        drop(dev);
        assert_eq!(
            released.load(Ordering::SeqCst),
            0,
            "the open handle pins it"
        );
        assert_eq!(
            audit.live(Kind::Entity),
            1,
            "graph objects stay until release"
        );
        assert_eq!(fh.device().unwrap().graph().entities()[0].name, "e");
        drop(fh);
        assert_eq!(released.load(Ordering::SeqCst), 1);
        for (kind, n) in audit.snapshot() {
            assert_eq!(n, 0, "{kind} still live");
        }
    }

    #[test]
    fn overlong_strings_are_truncated_with_a_nul() {
        let mut info = media_device_info::zeroed();
        set_cstr(&mut info.driver, "a-driver-name-longer-than-16");
        assert_eq!(info.driver[15], 0);
        assert_eq!(cstr(&info.driver).len(), 15);
    }

    #[test]
    fn removing_an_entity_takes_its_pads_links_interfaces_and_busy_check() {
        use ioctl_abi::media::*;
        let audit = Audit::new();
        let dev = MediaDevice::new(info(), audit.clone());
        let spec = |name: &str, pads: Vec<u32>| EntitySpec {
            name: name.into(),
            function: MEDIA_ENT_F_CAM_SENSOR,
            flags: 0,
            kind: EntityKind::Subdev,
            pads,
            ops: None,
        };
        let (a, b) = {
            let mut g = dev.graph_mut();
            let a = g.add_entity(spec("a", vec![MEDIA_PAD_FL_SOURCE]));
            let b = g.add_entity(spec("b", vec![MEDIA_PAD_FL_SINK]));
            let pad = |entity, index| PadRef { entity, index };
            g.add_link(pad(a, 0), pad(b, 0), MEDIA_LNK_FL_ENABLED)
                .unwrap();
            g.add_devnode_interface(b, MEDIA_INTF_T_V4L_SUBDEV, 81, 1)
                .unwrap();
            (a, b)
        };
        let key = dev.add_busy_check(Arc::new(move |e| e == a));
        let mut l = media_link_desc::zeroed();
        (l.source.entity, l.sink.entity) = (a, b);
        assert_eq!(dev.setup_link(l).map(|_| ()), Err(Errno::EBUSY));
        dev.remove_busy_check(key);
        assert!(dev.setup_link(l).is_ok(), "the check went with its key");
        let version = dev.graph().topology_version();
        assert!(dev.graph_mut().remove_entity(b));
        assert!(!dev.graph_mut().remove_entity(b), "already gone");
        let t = dev.topology().unwrap();
        assert_eq!(
            (
                t.entities.len(),
                t.pads.len(),
                t.links.len(),
                t.interfaces.len()
            ),
            (1, 1, 0, 0)
        );
        assert!(dev.graph().topology_version() > version);
        assert_eq!(
            (
                audit.live(Kind::Entity),
                audit.live(Kind::Pad),
                audit.live(Kind::Link),
                audit.live(Kind::Interface)
            ),
            (1, 1, 0, 0)
        );
        assert!(dev.graph().remote_of(a, 0).is_none());
    }
}
