//! `linux/media.h`: the Media Controller API (v1 enumeration and v2 topology).

use core::mem::size_of;

use crate::{abi_consts, abi_ioctls, abi_structs, io, ior, iowr};

abi_structs! {
    #[repr(C)]
    struct media_device_info(256) {
        driver: [u8; 16],
        model: [u8; 32],
        serial: [u8; 40],
        bus_info: [u8; 32],
        media_version: u32,
        hw_revision: u32,
        driver_version: u32,
        reserved: [u32; 31],
    }

    /// The union at `raw` holds `dev { major, minor }` for entities with a device node.
    #[repr(C)]
    struct media_entity_desc(256) {
        id: u32,
        name: [u8; 32],
        type_: u32,
        revision: u32,
        flags: u32,
        group_id: u32,
        pads: u16,
        links: u16,
        reserved: [u32; 4],
        raw: [u8; 184],
    }

    #[repr(C)]
    struct media_pad_desc(20) {
        entity: u32,
        index: u16,
        _pad0: u16,
        flags: u32,
        reserved: [u32; 2],
    }

    #[repr(C)]
    struct media_link_desc(52) {
        source: media_pad_desc,
        sink: media_pad_desc,
        flags: u32,
        reserved: [u32; 2],
    }

    /// `pads` and `links` are client addresses of arrays.
    #[repr(C)]
    struct media_links_enum(40) {
        entity: u32,
        _pad0: u32,
        pads: u64,
        links: u64,
        reserved: [u32; 4],
    }

    #[repr(C, packed)]
    struct media_v2_entity(96) {
        id: u32,
        name: [u8; 64],
        function: u32,
        flags: u32,
        reserved: [u32; 5],
    }

    #[repr(C, packed)]
    struct media_v2_intf_devnode(8) {
        major: u32,
        minor: u32,
    }

    /// The union at `raw` holds a [`media_v2_intf_devnode`] for device node interfaces.
    #[repr(C, packed)]
    struct media_v2_interface(112) {
        id: u32,
        intf_type: u32,
        flags: u32,
        reserved: [u32; 9],
        raw: [u32; 16],
    }

    #[repr(C, packed)]
    struct media_v2_pad(32) {
        id: u32,
        entity_id: u32,
        flags: u32,
        index: u32,
        reserved: [u32; 4],
    }

    #[repr(C, packed)]
    struct media_v2_link(40) {
        id: u32,
        source_id: u32,
        sink_id: u32,
        flags: u32,
        reserved: [u32; 6],
    }

    /// The `ptr_*` fields are client addresses of arrays (same layout for 32- and 64-bit callers).
    #[repr(C, packed)]
    struct media_v2_topology(72) {
        topology_version: u64,
        num_entities: u32,
        reserved1: u32,
        ptr_entities: u64,
        num_interfaces: u32,
        reserved2: u32,
        ptr_interfaces: u64,
        num_pads: u32,
        reserved3: u32,
        ptr_pads: u64,
        num_links: u32,
        reserved4: u32,
        ptr_links: u64,
    }
}

impl media_entity_desc {
    /// `dev.major`/`dev.minor` of the union.
    pub fn set_dev(&mut self, major: u32, minor: u32) {
        self.raw[..4].copy_from_slice(&major.to_ne_bytes());
        self.raw[4..8].copy_from_slice(&minor.to_ne_bytes());
    }
    pub fn dev(&self) -> (u32, u32) {
        let r = &self.raw;
        (
            u32::from_ne_bytes([r[0], r[1], r[2], r[3]]),
            u32::from_ne_bytes([r[4], r[5], r[6], r[7]]),
        )
    }
}

impl media_v2_interface {
    pub fn set_devnode(&mut self, major: u32, minor: u32) {
        let mut raw = self.raw;
        raw[0] = major;
        raw[1] = minor;
        self.raw = raw;
    }
    pub fn devnode(&self) -> media_v2_intf_devnode {
        let raw = self.raw;
        media_v2_intf_devnode {
            major: raw[0],
            minor: raw[1],
        }
    }
}

abi_ioctls! {
    MEDIA_IOC_DEVICE_INFO = iowr(b'|', 0x00, size_of::<media_device_info>());
    MEDIA_IOC_ENUM_ENTITIES = iowr(b'|', 0x01, size_of::<media_entity_desc>());
    MEDIA_IOC_ENUM_LINKS = iowr(b'|', 0x02, size_of::<media_links_enum>());
    MEDIA_IOC_SETUP_LINK = iowr(b'|', 0x03, size_of::<media_link_desc>());
    MEDIA_IOC_G_TOPOLOGY = iowr(b'|', 0x04, size_of::<media_v2_topology>());
    MEDIA_IOC_REQUEST_ALLOC = ior(b'|', 0x05, size_of::<i32>());
    MEDIA_REQUEST_IOC_QUEUE = io(b'|', 0x80);
    MEDIA_REQUEST_IOC_REINIT = io(b'|', 0x81);
}

/// Graph object types: bits 24-31 of every object id (kernel-internal `enum media_gobj_type`,
/// visible to userspace only through the ids).
pub const MEDIA_GRAPH_ENTITY: u32 = 0;
pub const MEDIA_GRAPH_PAD: u32 = 1;
pub const MEDIA_GRAPH_LINK: u32 = 2;
pub const MEDIA_GRAPH_INTF_DEVNODE: u32 = 3;

abi_consts! {
    MEDIA_ENT_ID_FLAG_NEXT = 1 << 31;
    MEDIA_ENT_FL_DEFAULT = 1 << 0;
    MEDIA_ENT_FL_CONNECTOR = 1 << 1;
    MEDIA_PAD_FL_SINK = 1 << 0;
    MEDIA_PAD_FL_SOURCE = 1 << 1;
    MEDIA_PAD_FL_MUST_CONNECT = 1 << 2;
    MEDIA_LNK_FL_ENABLED = 1 << 0;
    MEDIA_LNK_FL_IMMUTABLE = 1 << 1;
    MEDIA_LNK_FL_DYNAMIC = 1 << 2;
    MEDIA_LNK_FL_LINK_TYPE = 0xf << 28;
    MEDIA_LNK_FL_DATA_LINK = 0;
    MEDIA_LNK_FL_INTERFACE_LINK = 1 << 28;
    MEDIA_LNK_FL_ANCILLARY_LINK = 2 << 28;
    MEDIA_ENT_F_UNKNOWN = 0x0000_0000;
    MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN = 0x0002_0000;
    MEDIA_ENT_F_IO_V4L = 0x0001_0001;
    MEDIA_ENT_F_CAM_SENSOR = 0x0002_0001;
    MEDIA_ENT_F_FLASH = 0x0002_0002;
    MEDIA_ENT_F_LENS = 0x0002_0003;
    MEDIA_ENT_F_PROC_VIDEO_PIXEL_FORMATTER = 0x4002;
    MEDIA_ENT_F_PROC_VIDEO_PIXEL_ENC_CONV = 0x4003;
    MEDIA_ENT_F_PROC_VIDEO_LUT = 0x4004;
    MEDIA_ENT_F_PROC_VIDEO_SCALER = 0x4005;
    MEDIA_ENT_F_PROC_VIDEO_STATISTICS = 0x4006;
    MEDIA_ENT_F_PROC_VIDEO_ISP = 0x4009;
    MEDIA_ENT_F_VID_IF_BRIDGE = 0x5002;
    MEDIA_ENT_F_OLD_BASE = 0x0001_0000;
    MEDIA_ENT_F_OLD_SUBDEV_BASE = 0x0002_0000;
    MEDIA_ENT_F_TUNER = 0x0002_0005;
    MEDIA_ENT_F_ATV_DECODER = 0x0002_0004;
    MEDIA_ENT_F_AUDIO_CAPTURE = 0x3001;
    MEDIA_ENT_F_AUDIO_MIXER = 0x3003;
    MEDIA_ENT_T_DEVNODE_UNKNOWN = 0x0001_ffff;
    MEDIA_ENT_T_DEVNODE_V4L = MEDIA_ENT_F_IO_V4L;
    MEDIA_ENT_T_V4L2_SUBDEV_SENSOR = MEDIA_ENT_F_CAM_SENSOR;
    MEDIA_INTF_T_V4L_VIDEO = 0x200;
    MEDIA_INTF_T_V4L_SUBDEV = 0x203;
    MEDIA_INTF_T_ALSA_PCM_CAPTURE = 0x300;
    MEDIA_INTF_T_ALSA_CONTROL = 0x302;
}
