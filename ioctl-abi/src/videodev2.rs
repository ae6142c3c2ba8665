//! `linux/videodev2.h`: the V4L2 structs and ioctls a video node of this project answers.

use core::mem::size_of;

use crate::{abi_consts, abi_ioctls, abi_structs, io, ior, iow, iowr};

abi_structs! {
    /// `struct timeval` on LP64.
    #[repr(C)]
    struct timeval(16) {
        tv_sec: i64,
        tv_usec: i64,
    }

    /// `struct timespec` on LP64.
    #[repr(C)]
    struct timespec(16) {
        tv_sec: i64,
        tv_nsec: i64,
    }

    #[repr(C)]
    struct v4l2_capability(104) {
        driver: [u8; 16],
        card: [u8; 32],
        bus_info: [u8; 32],
        version: u32,
        capabilities: u32,
        device_caps: u32,
        reserved: [u32; 3],
    }

    #[repr(C)]
    struct v4l2_rect(16) {
        left: i32,
        top: i32,
        width: u32,
        height: u32,
    }

    #[repr(C)]
    struct v4l2_fract(8) {
        numerator: u32,
        denominator: u32,
    }

    #[repr(C)]
    struct v4l2_fmtdesc(64) {
        index: u32,
        type_: u32,
        flags: u32,
        description: [u8; 32],
        pixelformat: u32,
        mbus_code: u32,
        reserved: [u32; 3],
    }

    #[repr(C)]
    struct v4l2_frmsize_discrete(8) {
        width: u32,
        height: u32,
    }

    #[repr(C)]
    struct v4l2_frmsize_stepwise(24) {
        min_width: u32,
        max_width: u32,
        step_width: u32,
        min_height: u32,
        max_height: u32,
        step_height: u32,
    }

    /// The union at `discrete` is a [`v4l2_frmsize_discrete`] or a [`v4l2_frmsize_stepwise`].
    #[repr(C)]
    struct v4l2_frmsizeenum(44) {
        index: u32,
        pixel_format: u32,
        type_: u32,
        discrete: [u32; 6],
        reserved: [u32; 2],
    }

    #[repr(C)]
    struct v4l2_frmival_stepwise(24) {
        min: v4l2_fract,
        max: v4l2_fract,
        step: v4l2_fract,
    }

    /// The union at `discrete` is a [`v4l2_fract`] or a [`v4l2_frmival_stepwise`].
    #[repr(C)]
    struct v4l2_frmivalenum(52) {
        index: u32,
        pixel_format: u32,
        width: u32,
        height: u32,
        type_: u32,
        discrete: [u32; 6],
        reserved: [u32; 2],
    }

    #[repr(C)]
    struct v4l2_timecode(16) {
        type_: u32,
        flags: u32,
        frames: u8,
        seconds: u8,
        minutes: u8,
        hours: u8,
        userbits: [u8; 4],
    }

    /// `ycbcr_enc` shares its union with `hsv_enc`.
    #[repr(C)]
    struct v4l2_pix_format(48) {
        width: u32,
        height: u32,
        pixelformat: u32,
        field: u32,
        bytesperline: u32,
        sizeimage: u32,
        colorspace: u32,
        priv_: u32,
        flags: u32,
        ycbcr_enc: u32,
        quantization: u32,
        xfer_func: u32,
    }

    #[repr(C, packed)]
    struct v4l2_plane_pix_format(20) {
        sizeimage: u32,
        bytesperline: u32,
        reserved: [u16; 6],
    }

    #[repr(C, packed)]
    struct v4l2_pix_format_mplane(192) {
        width: u32,
        height: u32,
        pixelformat: u32,
        field: u32,
        colorspace: u32,
        plane_fmt: [v4l2_plane_pix_format; 8],
        num_planes: u8,
        flags: u8,
        ycbcr_enc: u8,
        quantization: u8,
        xfer_func: u8,
        reserved: [u8; 7],
    }

    #[repr(C, packed)]
    struct v4l2_meta_format(8) {
        dataformat: u32,
        buffersize: u32,
    }

    /// The union at `fmt` (8-aligned on LP64: `v4l2_window` has pointers) holds
    /// [`v4l2_pix_format`], [`v4l2_pix_format_mplane`], [`v4l2_meta_format`], ...
    #[repr(C)]
    struct v4l2_format(208) {
        type_: u32,
        _pad0: u32,
        fmt: [u8; 200],
    }

    #[repr(C)]
    struct v4l2_requestbuffers(20) {
        count: u32,
        type_: u32,
        memory: u32,
        capabilities: u32,
        flags: u8,
        reserved: [u8; 3],
    }

    /// The union at `m` is `mem_offset` (u32), `userptr` (client address) or `fd` (s32).
    #[repr(C)]
    struct v4l2_plane(64) {
        bytesused: u32,
        length: u32,
        m: u64,
        data_offset: u32,
        reserved: [u32; 11],
    }

    /// The union at `m` is `offset`, `userptr` or `fd`, or for multi-planar types `planes`: the
    /// client address of `length` [`v4l2_plane`]s. `request_fd` shares a union with `reserved`.
    #[repr(C)]
    struct v4l2_buffer(88) {
        index: u32,
        type_: u32,
        bytesused: u32,
        flags: u32,
        field: u32,
        _pad0: u32,
        timestamp: timeval,
        timecode: v4l2_timecode,
        sequence: u32,
        memory: u32,
        m: u64,
        length: u32,
        reserved2: u32,
        request_fd: i32,
        _pad1: u32,
    }

    #[repr(C)]
    struct v4l2_exportbuffer(64) {
        type_: u32,
        index: u32,
        plane: u32,
        flags: u32,
        fd: i32,
        reserved: [u32; 11],
    }

    #[repr(C)]
    struct v4l2_create_buffers(256) {
        index: u32,
        count: u32,
        memory: u32,
        _pad0: u32,
        format: v4l2_format,
        capabilities: u32,
        flags: u32,
        reserved: [u32; 6],
    }

    #[repr(C)]
    struct v4l2_captureparm(40) {
        capability: u32,
        capturemode: u32,
        timeperframe: v4l2_fract,
        extendedmode: u32,
        readbuffers: u32,
        reserved: [u32; 4],
    }

    #[repr(C)]
    struct v4l2_outputparm(40) {
        capability: u32,
        outputmode: u32,
        timeperframe: v4l2_fract,
        extendedmode: u32,
        writebuffers: u32,
        reserved: [u32; 4],
    }

    /// The union at `parm` holds a [`v4l2_captureparm`] or a [`v4l2_outputparm`].
    #[repr(C)]
    struct v4l2_streamparm(204) {
        type_: u32,
        parm: [u8; 200],
    }

    #[repr(C)]
    struct v4l2_input(80) {
        index: u32,
        name: [u8; 32],
        type_: u32,
        audioset: u32,
        tuner: u32,
        std: u64,
        status: u32,
        capabilities: u32,
        reserved: [u32; 3],
        _pad0: u32,
    }

    #[repr(C)]
    struct v4l2_output(72) {
        index: u32,
        name: [u8; 32],
        type_: u32,
        audioset: u32,
        modulator: u32,
        std: u64,
        capabilities: u32,
        reserved: [u32; 3],
    }

    #[repr(C)]
    struct v4l2_standard(72) {
        index: u32,
        _pad0: u32,
        id: u64,
        name: [u8; 24],
        frameperiod: v4l2_fract,
        framelines: u32,
        reserved: [u32; 4],
        _pad1: u32,
    }

    #[repr(C)]
    struct v4l2_control(8) {
        id: u32,
        value: i32,
    }

    #[repr(C)]
    struct v4l2_queryctrl(68) {
        id: u32,
        type_: u32,
        name: [u8; 32],
        minimum: i32,
        maximum: i32,
        step: i32,
        default_value: i32,
        flags: u32,
        reserved: [u32; 2],
    }

    #[repr(C)]
    struct v4l2_query_ext_ctrl(232) {
        id: u32,
        type_: u32,
        name: [u8; 32],
        minimum: i64,
        maximum: i64,
        step: u64,
        default_value: i64,
        flags: u32,
        elem_size: u32,
        elems: u32,
        nr_of_dims: u32,
        dims: [u32; 4],
        reserved: [u32; 32],
    }

    /// The union at `name` is the menu item's name or, for integer menus, an s64 `value`.
    #[repr(C, packed)]
    struct v4l2_querymenu(44) {
        id: u32,
        index: u32,
        name: [u8; 32],
        reserved: u32,
    }

    /// The union at `value64` is `value` (s32), `value64` (s64) or a client pointer to `size`
    /// bytes of compound or string payload.
    #[repr(C, packed)]
    struct v4l2_ext_control(20) {
        id: u32,
        size: u32,
        reserved2: [u32; 1],
        value64: i64,
    }

    /// `which` shares a union with `ctrl_class`; `controls` is the client address of `count`
    /// [`v4l2_ext_control`]s.
    #[repr(C)]
    struct v4l2_ext_controls(32) {
        which: u32,
        count: u32,
        error_idx: u32,
        request_fd: i32,
        reserved: [u32; 1],
        _pad0: u32,
        controls: u64,
    }

    #[repr(C)]
    struct v4l2_event_vsync(1) {
        field: u8,
    }

    /// The union at `value64` is `value` (s32) or `value64`.
    #[repr(C)]
    struct v4l2_event_ctrl(40) {
        changes: u32,
        type_: u32,
        value64: i64,
        flags: u32,
        minimum: i32,
        maximum: i32,
        step: i32,
        default_value: i32,
        _pad0: u32,
    }

    #[repr(C)]
    struct v4l2_event_frame_sync(4) {
        frame_sequence: u32,
    }

    #[repr(C)]
    struct v4l2_event_src_change(4) {
        changes: u32,
    }

    /// The union at `u` (8-aligned) holds the event-specific payload, 64 bytes.
    #[repr(C)]
    struct v4l2_event(136) {
        type_: u32,
        _pad0: u32,
        u: [u8; 64],
        pending: u32,
        sequence: u32,
        timestamp: timespec,
        id: u32,
        reserved: [u32; 8],
        _pad1: u32,
    }

    #[repr(C)]
    struct v4l2_event_subscription(32) {
        type_: u32,
        id: u32,
        flags: u32,
        reserved: [u32; 5],
    }

    #[repr(C)]
    struct v4l2_selection(64) {
        type_: u32,
        target: u32,
        flags: u32,
        r: v4l2_rect,
        reserved: [u32; 9],
    }

    #[repr(C)]
    struct v4l2_cropcap(44) {
        type_: u32,
        bounds: v4l2_rect,
        defrect: v4l2_rect,
        pixelaspect: v4l2_fract,
    }

    #[repr(C)]
    struct v4l2_crop(20) {
        type_: u32,
        c: v4l2_rect,
    }
}

macro_rules! union_view {
    ($outer:ident . $field:ident : $($get:ident / $set:ident -> $ty:ty),*) => {
        impl $outer {
            $(
                pub fn $get(&self) -> $ty {
                    let bytes = self.$field;
                    <$ty as zerocopy::FromBytes>::read_from_prefix(zerocopy::IntoBytes::as_bytes(&bytes))
                        .map(|(v, _)| v)
                        .unwrap_or_default()
                }
                pub fn $set(&mut self, v: &$ty) {
                    let mut bytes = self.$field;
                    let src = zerocopy::IntoBytes::as_bytes(v);
                    zerocopy::IntoBytes::as_mut_bytes(&mut bytes)[..src.len()].copy_from_slice(src);
                    self.$field = bytes;
                }
            )*
        }
    };
}

union_view!(v4l2_format.fmt:
    pix / set_pix -> v4l2_pix_format,
    pix_mp / set_pix_mp -> v4l2_pix_format_mplane,
    meta / set_meta -> v4l2_meta_format);
union_view!(v4l2_streamparm.parm:
    capture / set_capture -> v4l2_captureparm,
    output / set_output -> v4l2_outputparm);
union_view!(v4l2_frmsizeenum.discrete:
    frmsize_discrete / set_frmsize_discrete -> v4l2_frmsize_discrete,
    frmsize_stepwise / set_frmsize_stepwise -> v4l2_frmsize_stepwise);
union_view!(v4l2_frmivalenum.discrete:
    frmival_discrete / set_frmival_discrete -> v4l2_fract);
union_view!(v4l2_event.u:
    event_ctrl / set_event_ctrl -> v4l2_event_ctrl,
    event_frame_sync / set_event_frame_sync -> v4l2_event_frame_sync,
    event_src_change / set_event_src_change -> v4l2_event_src_change);

abi_ioctls! {
    VIDIOC_QUERYCAP = ior(b'V', 0, size_of::<v4l2_capability>());
    VIDIOC_ENUM_FMT = iowr(b'V', 2, size_of::<v4l2_fmtdesc>());
    VIDIOC_G_FMT = iowr(b'V', 4, size_of::<v4l2_format>());
    VIDIOC_S_FMT = iowr(b'V', 5, size_of::<v4l2_format>());
    VIDIOC_REQBUFS = iowr(b'V', 8, size_of::<v4l2_requestbuffers>());
    VIDIOC_QUERYBUF = iowr(b'V', 9, size_of::<v4l2_buffer>());
    VIDIOC_QBUF = iowr(b'V', 15, size_of::<v4l2_buffer>());
    VIDIOC_EXPBUF = iowr(b'V', 16, size_of::<v4l2_exportbuffer>());
    VIDIOC_DQBUF = iowr(b'V', 17, size_of::<v4l2_buffer>());
    VIDIOC_STREAMON = iow(b'V', 18, size_of::<i32>());
    VIDIOC_STREAMOFF = iow(b'V', 19, size_of::<i32>());
    VIDIOC_G_PARM = iowr(b'V', 21, size_of::<v4l2_streamparm>());
    VIDIOC_S_PARM = iowr(b'V', 22, size_of::<v4l2_streamparm>());
    VIDIOC_G_STD = ior(b'V', 23, size_of::<u64>());
    VIDIOC_S_STD = iow(b'V', 24, size_of::<u64>());
    VIDIOC_ENUMSTD = iowr(b'V', 25, size_of::<v4l2_standard>());
    VIDIOC_ENUMINPUT = iowr(b'V', 26, size_of::<v4l2_input>());
    VIDIOC_G_CTRL = iowr(b'V', 27, size_of::<v4l2_control>());
    VIDIOC_S_CTRL = iowr(b'V', 28, size_of::<v4l2_control>());
    VIDIOC_QUERYCTRL = iowr(b'V', 36, size_of::<v4l2_queryctrl>());
    VIDIOC_QUERYMENU = iowr(b'V', 37, size_of::<v4l2_querymenu>());
    VIDIOC_G_INPUT = ior(b'V', 38, size_of::<i32>());
    VIDIOC_S_INPUT = iowr(b'V', 39, size_of::<i32>());
    VIDIOC_G_OUTPUT = ior(b'V', 46, size_of::<i32>());
    VIDIOC_S_OUTPUT = iowr(b'V', 47, size_of::<i32>());
    VIDIOC_ENUMOUTPUT = iowr(b'V', 48, size_of::<v4l2_output>());
    VIDIOC_CROPCAP = iowr(b'V', 58, size_of::<v4l2_cropcap>());
    VIDIOC_G_CROP = iowr(b'V', 59, size_of::<v4l2_crop>());
    VIDIOC_S_CROP = iow(b'V', 60, size_of::<v4l2_crop>());
    VIDIOC_TRY_FMT = iowr(b'V', 64, size_of::<v4l2_format>());
    VIDIOC_G_PRIORITY = ior(b'V', 67, size_of::<u32>());
    VIDIOC_S_PRIORITY = iow(b'V', 68, size_of::<u32>());
    VIDIOC_LOG_STATUS = io(b'V', 70);
    VIDIOC_G_EXT_CTRLS = iowr(b'V', 71, size_of::<v4l2_ext_controls>());
    VIDIOC_S_EXT_CTRLS = iowr(b'V', 72, size_of::<v4l2_ext_controls>());
    VIDIOC_TRY_EXT_CTRLS = iowr(b'V', 73, size_of::<v4l2_ext_controls>());
    VIDIOC_ENUM_FRAMESIZES = iowr(b'V', 74, size_of::<v4l2_frmsizeenum>());
    VIDIOC_ENUM_FRAMEINTERVALS = iowr(b'V', 75, size_of::<v4l2_frmivalenum>());
    VIDIOC_DQEVENT = ior(b'V', 89, size_of::<v4l2_event>());
    VIDIOC_SUBSCRIBE_EVENT = iow(b'V', 90, size_of::<v4l2_event_subscription>());
    VIDIOC_UNSUBSCRIBE_EVENT = iow(b'V', 91, size_of::<v4l2_event_subscription>());
    VIDIOC_CREATE_BUFS = iowr(b'V', 92, size_of::<v4l2_create_buffers>());
    VIDIOC_PREPARE_BUF = iowr(b'V', 93, size_of::<v4l2_buffer>());
    VIDIOC_G_SELECTION = iowr(b'V', 94, size_of::<v4l2_selection>());
    VIDIOC_S_SELECTION = iowr(b'V', 95, size_of::<v4l2_selection>());
    VIDIOC_QUERY_EXT_CTRL = iowr(b'V', 103, size_of::<v4l2_query_ext_ctrl>());
}

/// `v4l2_fourcc(a, b, c, d)`.
pub const fn fourcc(a: u8, b: u8, c: u8, d: u8) -> u32 {
    (a as u32) | ((b as u32) << 8) | ((c as u32) << 16) | ((d as u32) << 24)
}

abi_consts! {
    V4L2_SEL_TGT_CROP = 0x0000;
    V4L2_SEL_TGT_CROP_DEFAULT = 0x0001;
    V4L2_SEL_TGT_CROP_BOUNDS = 0x0002;
    V4L2_SEL_TGT_NATIVE_SIZE = 0x0003;
    V4L2_SEL_TGT_COMPOSE = 0x0100;
    V4L2_SEL_FLAG_GE = 1 << 0;
    V4L2_SEL_FLAG_LE = 1 << 1;
    V4L2_SEL_FLAG_KEEP_CONFIG = 1 << 2;
    V4L2_COLORSPACE_DEFAULT = 0;
    V4L2_COLORSPACE_JPEG = 7;
    V4L2_COLORSPACE_SRGB = 8;
    V4L2_FIELD_ALTERNATE = 7;
    V4L2_FIELD_INTERLACED_TB = 8;
    V4L2_FIELD_INTERLACED_BT = 9;
    V4L2_CAP_VIDEO_CAPTURE = 0x0000_0001;
    V4L2_CAP_VIDEO_OUTPUT = 0x0000_0002;
    V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x0000_1000;
    V4L2_CAP_VIDEO_OUTPUT_MPLANE = 0x0000_2000;
    V4L2_CAP_META_CAPTURE = 0x0080_0000;
    V4L2_CAP_READWRITE = 0x0100_0000;
    V4L2_CAP_STREAMING = 0x0400_0000;
    V4L2_CAP_EXT_PIX_FORMAT = 0x0020_0000;
    V4L2_CAP_IO_MC = 0x2000_0000;
    V4L2_CAP_DEVICE_CAPS = 0x8000_0000;
    V4L2_CAP_TIMEPERFRAME = 0x1000;
    V4L2_FRMSIZE_TYPE_DISCRETE = 1;
    V4L2_FRMSIZE_TYPE_CONTINUOUS = 2;
    V4L2_FRMSIZE_TYPE_STEPWISE = 3;
    V4L2_FRMIVAL_TYPE_DISCRETE = 1;
    V4L2_BUF_TYPE_VIDEO_CAPTURE = 1;
    V4L2_BUF_TYPE_VIDEO_OUTPUT = 2;
    V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE = 9;
    V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE = 10;
    V4L2_BUF_TYPE_META_CAPTURE = 13;
    V4L2_MEMORY_MMAP = 1;
    V4L2_MEMORY_USERPTR = 2;
    V4L2_MEMORY_DMABUF = 4;
    V4L2_FIELD_ANY = 0;
    V4L2_FIELD_NONE = 1;
    V4L2_FIELD_INTERLACED = 4;
    V4L2_EVENT_ALL = 0;
    V4L2_EVENT_VSYNC = 1;
    V4L2_EVENT_EOS = 2;
    V4L2_EVENT_CTRL = 3;
    V4L2_EVENT_FRAME_SYNC = 4;
    V4L2_EVENT_SOURCE_CHANGE = 5;
    V4L2_EVENT_PRIVATE_START = 0x0800_0000;
    V4L2_EVENT_SUB_FL_SEND_INITIAL = 1;
    V4L2_EVENT_SUB_FL_ALLOW_FEEDBACK = 2;
    V4L2_CTRL_TYPE_INTEGER = 1;
    V4L2_CTRL_TYPE_BOOLEAN = 2;
    V4L2_CTRL_TYPE_MENU = 3;
    V4L2_CTRL_TYPE_BUTTON = 4;
    V4L2_CTRL_TYPE_INTEGER64 = 5;
    V4L2_CTRL_TYPE_CTRL_CLASS = 6;
    V4L2_CTRL_FLAG_DISABLED = 0x0001;
    V4L2_CTRL_FLAG_GRABBED = 0x0002;
    V4L2_CTRL_FLAG_READ_ONLY = 0x0004;
    V4L2_CTRL_FLAG_INACTIVE = 0x0010;
    V4L2_CTRL_FLAG_SLIDER = 0x0020;
    V4L2_CTRL_FLAG_WRITE_ONLY = 0x0040;
    V4L2_CTRL_FLAG_EXECUTE_ON_WRITE = 0x0200;
    V4L2_CTRL_FLAG_NEXT_CTRL = 0x8000_0000;
    V4L2_CTRL_FLAG_NEXT_COMPOUND = 0x4000_0000;
    V4L2_CTRL_ID_MASK = 0x0fff_ffff;
    V4L2_CTRL_WHICH_CUR_VAL = 0;
    V4L2_CTRL_WHICH_DEF_VAL = 0x0f00_0000;
    V4L2_CTRL_WHICH_REQUEST_VAL = 0x0f01_0000;
    V4L2_CTRL_CLASS_USER = 0x0098_0000;
    V4L2_CTRL_CLASS_IMAGE_PROC = 0x009f_0000;
    V4L2_CID_MAX_CTRLS = 1024;
    V4L2_CID_PRIVATE_BASE = 0x0800_0000;
    V4L2_CID_USER_CLASS = 0x0098_0001;
    V4L2_CID_USER_BASE = 0x0098_0900;
    V4L2_CID_BRIGHTNESS = 0x0098_0900;
    V4L2_CID_CONTRAST = 0x0098_0901;
    V4L2_CID_EXPOSURE = 0x0098_0911;
    V4L2_CID_GAIN = 0x0098_0913;
    V4L2_CID_HFLIP = 0x0098_0914;
    V4L2_CID_VFLIP = 0x0098_0915;
    V4L2_CID_IMAGE_PROC_CLASS = 0x009f_0001;
    V4L2_CID_PIXEL_RATE = 0x009f_0902;
    V4L2_CID_TEST_PATTERN = 0x009f_0903;
    V4L2_BUF_CAP_SUPPORTS_MMAP = 1 << 0;
    V4L2_BUF_CAP_SUPPORTS_USERPTR = 1 << 1;
    V4L2_BUF_CAP_SUPPORTS_DMABUF = 1 << 2;
    V4L2_BUF_CAP_SUPPORTS_ORPHANED_BUFS = 1 << 4;
    V4L2_BUF_FLAG_MAPPED = 0x0000_0001;
    V4L2_BUF_FLAG_QUEUED = 0x0000_0002;
    V4L2_BUF_FLAG_DONE = 0x0000_0004;
    V4L2_BUF_FLAG_KEYFRAME = 0x0000_0008;
    V4L2_BUF_FLAG_PFRAME = 0x0000_0010;
    V4L2_BUF_FLAG_BFRAME = 0x0000_0020;
    V4L2_BUF_FLAG_ERROR = 0x0000_0040;
    V4L2_BUF_FLAG_IN_REQUEST = 0x0000_0080;
    V4L2_BUF_FLAG_TIMECODE = 0x0000_0100;
    V4L2_BUF_FLAG_PREPARED = 0x0000_0400;
    V4L2_BUF_FLAG_NO_CACHE_INVALIDATE = 0x0000_0800;
    V4L2_BUF_FLAG_NO_CACHE_CLEAN = 0x0000_1000;
    V4L2_BUF_FLAG_TIMESTAMP_MASK = 0x0000_e000;
    V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC = 0x0000_2000;
    V4L2_BUF_FLAG_TSTAMP_SRC_MASK = 0x0007_0000;
    V4L2_BUF_FLAG_TSTAMP_SRC_EOF = 0x0000_0000;
    V4L2_BUF_FLAG_LAST = 0x0010_0000;
    V4L2_BUF_FLAG_REQUEST_FD = 0x0080_0000;
}

/// Newer than the headers the layout test compiles against (Linux 6.8): CREATE_BUFS reports the
/// queue's maximum buffer count.
pub const V4L2_BUF_CAP_SUPPORTS_MAX_NUM_BUFFERS: u32 = 1 << 7;
