//! `linux/v4l2-subdev.h` and `linux/v4l2-mediabus.h`: sub-device pad operations.

use core::mem::size_of;

use crate::videodev2::{v4l2_fract, v4l2_rect};
use crate::{abi_consts, abi_ioctls, abi_structs, ior, iowr};

abi_structs! {
    /// `ycbcr_enc` shares its union with `hsv_enc`.
    #[repr(C)]
    struct v4l2_mbus_framefmt(48) {
        width: u32,
        height: u32,
        code: u32,
        field: u32,
        colorspace: u32,
        ycbcr_enc: u16,
        quantization: u16,
        xfer_func: u16,
        flags: u16,
        reserved: [u16; 10],
    }

    #[repr(C)]
    struct v4l2_subdev_format(88) {
        which: u32,
        pad: u32,
        format: v4l2_mbus_framefmt,
        reserved: [u32; 8],
    }

    #[repr(C)]
    struct v4l2_subdev_crop(56) {
        which: u32,
        pad: u32,
        rect: v4l2_rect,
        reserved: [u32; 8],
    }

    #[repr(C)]
    struct v4l2_subdev_mbus_code_enum(48) {
        pad: u32,
        index: u32,
        code: u32,
        which: u32,
        flags: u32,
        reserved: [u32; 7],
    }

    #[repr(C)]
    struct v4l2_subdev_frame_size_enum(64) {
        index: u32,
        pad: u32,
        code: u32,
        min_width: u32,
        max_width: u32,
        min_height: u32,
        max_height: u32,
        which: u32,
        reserved: [u32; 8],
    }

    #[repr(C)]
    struct v4l2_subdev_frame_interval(48) {
        pad: u32,
        interval: v4l2_fract,
        reserved: [u32; 9],
    }

    #[repr(C)]
    struct v4l2_subdev_frame_interval_enum(64) {
        index: u32,
        pad: u32,
        code: u32,
        width: u32,
        height: u32,
        interval: v4l2_fract,
        which: u32,
        reserved: [u32; 8],
    }

    #[repr(C)]
    struct v4l2_subdev_selection(64) {
        which: u32,
        pad: u32,
        target: u32,
        flags: u32,
        r: v4l2_rect,
        reserved: [u32; 8],
    }

    #[repr(C)]
    struct v4l2_subdev_capability(64) {
        version: u32,
        capabilities: u32,
        reserved: [u32; 14],
    }
}

abi_ioctls! {
    VIDIOC_SUBDEV_QUERYCAP = ior(b'V', 0, size_of::<v4l2_subdev_capability>());
    VIDIOC_SUBDEV_G_FMT = iowr(b'V', 4, size_of::<v4l2_subdev_format>());
    VIDIOC_SUBDEV_S_FMT = iowr(b'V', 5, size_of::<v4l2_subdev_format>());
    VIDIOC_SUBDEV_G_FRAME_INTERVAL = iowr(b'V', 21, size_of::<v4l2_subdev_frame_interval>());
    VIDIOC_SUBDEV_S_FRAME_INTERVAL = iowr(b'V', 22, size_of::<v4l2_subdev_frame_interval>());
    VIDIOC_SUBDEV_ENUM_MBUS_CODE = iowr(b'V', 2, size_of::<v4l2_subdev_mbus_code_enum>());
    VIDIOC_SUBDEV_ENUM_FRAME_SIZE = iowr(b'V', 74, size_of::<v4l2_subdev_frame_size_enum>());
    VIDIOC_SUBDEV_ENUM_FRAME_INTERVAL = iowr(b'V', 75, size_of::<v4l2_subdev_frame_interval_enum>());
    VIDIOC_SUBDEV_G_CROP = iowr(b'V', 59, size_of::<v4l2_subdev_crop>());
    VIDIOC_SUBDEV_S_CROP = iowr(b'V', 60, size_of::<v4l2_subdev_crop>());
    VIDIOC_SUBDEV_G_SELECTION = iowr(b'V', 61, size_of::<v4l2_subdev_selection>());
    VIDIOC_SUBDEV_S_SELECTION = iowr(b'V', 62, size_of::<v4l2_subdev_selection>());
}

abi_consts! {
    MEDIA_BUS_FMT_FIXED = 0x0001;
    MEDIA_BUS_FMT_RGB888_1X24 = 0x100a;
    MEDIA_BUS_FMT_BGR888_1X24 = 0x1013;
    MEDIA_BUS_FMT_Y8_1X8 = 0x2001;
    MEDIA_BUS_FMT_UYVY8_2X8 = 0x2006;
    MEDIA_BUS_FMT_YUYV8_2X8 = 0x2008;
    MEDIA_BUS_FMT_Y10_1X10 = 0x200a;
    MEDIA_BUS_FMT_UYVY8_1X16 = 0x200f;
    MEDIA_BUS_FMT_YUYV8_1X16 = 0x2011;
    MEDIA_BUS_FMT_Y12_1X12 = 0x2013;
    MEDIA_BUS_FMT_SBGGR8_1X8 = 0x3001;
    MEDIA_BUS_FMT_SGRBG8_1X8 = 0x3002;
    MEDIA_BUS_FMT_SBGGR10_1X10 = 0x3007;
    MEDIA_BUS_FMT_SBGGR12_1X12 = 0x3008;
    MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8 = 0x3009;
    MEDIA_BUS_FMT_SGRBG10_1X10 = 0x300a;
    MEDIA_BUS_FMT_SBGGR10_DPCM8_1X8 = 0x300b;
    MEDIA_BUS_FMT_SGBRG10_DPCM8_1X8 = 0x300c;
    MEDIA_BUS_FMT_SRGGB10_DPCM8_1X8 = 0x300d;
    MEDIA_BUS_FMT_SGBRG10_1X10 = 0x300e;
    MEDIA_BUS_FMT_SRGGB10_1X10 = 0x300f;
    MEDIA_BUS_FMT_SGBRG12_1X12 = 0x3010;
    MEDIA_BUS_FMT_SGRBG12_1X12 = 0x3011;
    MEDIA_BUS_FMT_SRGGB12_1X12 = 0x3012;
    MEDIA_BUS_FMT_SGBRG8_1X8 = 0x3013;
    MEDIA_BUS_FMT_SRGGB8_1X8 = 0x3014;
    V4L2_SUBDEV_FORMAT_TRY = 0;
    V4L2_SUBDEV_FORMAT_ACTIVE = 1;
    V4L2_SUBDEV_CAP_RO_SUBDEV = 1;
}
