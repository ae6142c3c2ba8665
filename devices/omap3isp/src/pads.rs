//! Pad formats and crop rectangles of the ISP blocks (omap3isp.md §2): each block's `try`
//! function, what setting a pad propagates, code enumeration, frame-size enumeration and the crop
//! selections, for ACTIVE state and per-file-handle TRY state.

use std::sync::Arc;

use ioctl_abi::subdev::*;
use ioctl_abi::videodev2::*;
use nix::errno::Errno;

use crate::links::{Ccp2, Input, Preview};
pub use media_graph::pads::{mbus, rect, Block, PadState, SubdevPads};

/// One row of the driver's format table (ispvideo.c `formats[]`): the code, its 10-bit
/// truncation, its uncompressed form and its 8-bit "flavor" (0: not shiftable).
#[derive(Debug, Clone, Copy)]
pub struct FormatInfo {
    pub code: u32,
    pub truncated: u32,
    pub uncompressed: u32,
    pub flavor: u32,
    pub pixelformat: u32,
    pub width: u32,
    pub bpp: u32,
}

const fn f(
    code: u32,
    truncated: u32,
    uncompressed: u32,
    flavor: u32,
    pixelformat: u32,
    width: u32,
    bpp: u32,
) -> FormatInfo {
    FormatInfo {
        code,
        truncated,
        uncompressed,
        flavor,
        pixelformat,
        width,
        bpp,
    }
}

/// The table in the driver's order (Linux 7.0: YUYV8_1X16 after UYVY8_2X8).
pub const FORMATS: &[FormatInfo] = &[
    f(
        MEDIA_BUS_FMT_Y8_1X8,
        MEDIA_BUS_FMT_Y8_1X8,
        MEDIA_BUS_FMT_Y8_1X8,
        MEDIA_BUS_FMT_Y8_1X8,
        fourcc(b'G', b'R', b'E', b'Y'),
        8,
        1,
    ),
    f(
        MEDIA_BUS_FMT_Y10_1X10,
        MEDIA_BUS_FMT_Y10_1X10,
        MEDIA_BUS_FMT_Y10_1X10,
        MEDIA_BUS_FMT_Y8_1X8,
        fourcc(b'Y', b'1', b'0', b' '),
        10,
        2,
    ),
    f(
        MEDIA_BUS_FMT_Y12_1X12,
        MEDIA_BUS_FMT_Y10_1X10,
        MEDIA_BUS_FMT_Y12_1X12,
        MEDIA_BUS_FMT_Y8_1X8,
        fourcc(b'Y', b'1', b'2', b' '),
        12,
        2,
    ),
    f(
        MEDIA_BUS_FMT_SBGGR8_1X8,
        MEDIA_BUS_FMT_SBGGR8_1X8,
        MEDIA_BUS_FMT_SBGGR8_1X8,
        MEDIA_BUS_FMT_SBGGR8_1X8,
        fourcc(b'B', b'A', b'8', b'1'),
        8,
        1,
    ),
    f(
        MEDIA_BUS_FMT_SGBRG8_1X8,
        MEDIA_BUS_FMT_SGBRG8_1X8,
        MEDIA_BUS_FMT_SGBRG8_1X8,
        MEDIA_BUS_FMT_SGBRG8_1X8,
        fourcc(b'G', b'B', b'R', b'G'),
        8,
        1,
    ),
    f(
        MEDIA_BUS_FMT_SGRBG8_1X8,
        MEDIA_BUS_FMT_SGRBG8_1X8,
        MEDIA_BUS_FMT_SGRBG8_1X8,
        MEDIA_BUS_FMT_SGRBG8_1X8,
        fourcc(b'G', b'R', b'B', b'G'),
        8,
        1,
    ),
    f(
        MEDIA_BUS_FMT_SRGGB8_1X8,
        MEDIA_BUS_FMT_SRGGB8_1X8,
        MEDIA_BUS_FMT_SRGGB8_1X8,
        MEDIA_BUS_FMT_SRGGB8_1X8,
        fourcc(b'R', b'G', b'G', b'B'),
        8,
        1,
    ),
    f(
        MEDIA_BUS_FMT_SBGGR10_DPCM8_1X8,
        MEDIA_BUS_FMT_SBGGR10_DPCM8_1X8,
        MEDIA_BUS_FMT_SBGGR10_1X10,
        0,
        fourcc(b'b', b'B', b'A', b'8'),
        8,
        1,
    ),
    f(
        MEDIA_BUS_FMT_SGBRG10_DPCM8_1X8,
        MEDIA_BUS_FMT_SGBRG10_DPCM8_1X8,
        MEDIA_BUS_FMT_SGBRG10_1X10,
        0,
        fourcc(b'b', b'G', b'A', b'8'),
        8,
        1,
    ),
    f(
        MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8,
        MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8,
        MEDIA_BUS_FMT_SGRBG10_1X10,
        0,
        fourcc(b'B', b'D', b'1', b'0'),
        8,
        1,
    ),
    f(
        MEDIA_BUS_FMT_SRGGB10_DPCM8_1X8,
        MEDIA_BUS_FMT_SRGGB10_DPCM8_1X8,
        MEDIA_BUS_FMT_SRGGB10_1X10,
        0,
        fourcc(b'b', b'R', b'A', b'8'),
        8,
        1,
    ),
    f(
        MEDIA_BUS_FMT_SBGGR10_1X10,
        MEDIA_BUS_FMT_SBGGR10_1X10,
        MEDIA_BUS_FMT_SBGGR10_1X10,
        MEDIA_BUS_FMT_SBGGR8_1X8,
        fourcc(b'B', b'G', b'1', b'0'),
        10,
        2,
    ),
    f(
        MEDIA_BUS_FMT_SGBRG10_1X10,
        MEDIA_BUS_FMT_SGBRG10_1X10,
        MEDIA_BUS_FMT_SGBRG10_1X10,
        MEDIA_BUS_FMT_SGBRG8_1X8,
        fourcc(b'G', b'B', b'1', b'0'),
        10,
        2,
    ),
    f(
        MEDIA_BUS_FMT_SGRBG10_1X10,
        MEDIA_BUS_FMT_SGRBG10_1X10,
        MEDIA_BUS_FMT_SGRBG10_1X10,
        MEDIA_BUS_FMT_SGRBG8_1X8,
        fourcc(b'B', b'A', b'1', b'0'),
        10,
        2,
    ),
    f(
        MEDIA_BUS_FMT_SRGGB10_1X10,
        MEDIA_BUS_FMT_SRGGB10_1X10,
        MEDIA_BUS_FMT_SRGGB10_1X10,
        MEDIA_BUS_FMT_SRGGB8_1X8,
        fourcc(b'R', b'G', b'1', b'0'),
        10,
        2,
    ),
    f(
        MEDIA_BUS_FMT_SBGGR12_1X12,
        MEDIA_BUS_FMT_SBGGR10_1X10,
        MEDIA_BUS_FMT_SBGGR12_1X12,
        MEDIA_BUS_FMT_SBGGR8_1X8,
        fourcc(b'B', b'G', b'1', b'2'),
        12,
        2,
    ),
    f(
        MEDIA_BUS_FMT_SGBRG12_1X12,
        MEDIA_BUS_FMT_SGBRG10_1X10,
        MEDIA_BUS_FMT_SGBRG12_1X12,
        MEDIA_BUS_FMT_SGBRG8_1X8,
        fourcc(b'G', b'B', b'1', b'2'),
        12,
        2,
    ),
    f(
        MEDIA_BUS_FMT_SGRBG12_1X12,
        MEDIA_BUS_FMT_SGRBG10_1X10,
        MEDIA_BUS_FMT_SGRBG12_1X12,
        MEDIA_BUS_FMT_SGRBG8_1X8,
        fourcc(b'B', b'A', b'1', b'2'),
        12,
        2,
    ),
    f(
        MEDIA_BUS_FMT_SRGGB12_1X12,
        MEDIA_BUS_FMT_SRGGB10_1X10,
        MEDIA_BUS_FMT_SRGGB12_1X12,
        MEDIA_BUS_FMT_SRGGB8_1X8,
        fourcc(b'R', b'G', b'1', b'2'),
        12,
        2,
    ),
    f(
        MEDIA_BUS_FMT_UYVY8_1X16,
        MEDIA_BUS_FMT_UYVY8_1X16,
        MEDIA_BUS_FMT_UYVY8_1X16,
        0,
        fourcc(b'U', b'Y', b'V', b'Y'),
        16,
        2,
    ),
    f(
        MEDIA_BUS_FMT_UYVY8_2X8,
        MEDIA_BUS_FMT_UYVY8_2X8,
        MEDIA_BUS_FMT_UYVY8_2X8,
        0,
        fourcc(b'U', b'Y', b'V', b'Y'),
        8,
        2,
    ),
    f(
        MEDIA_BUS_FMT_YUYV8_1X16,
        MEDIA_BUS_FMT_YUYV8_1X16,
        MEDIA_BUS_FMT_YUYV8_1X16,
        0,
        fourcc(b'Y', b'U', b'Y', b'V'),
        16,
        2,
    ),
    f(
        MEDIA_BUS_FMT_YUYV8_2X8,
        MEDIA_BUS_FMT_YUYV8_2X8,
        MEDIA_BUS_FMT_YUYV8_2X8,
        0,
        fourcc(b'Y', b'U', b'Y', b'V'),
        8,
        2,
    ),
];

pub fn format_info(code: u32) -> Option<&'static FormatInfo> {
    FORMATS.iter().find(|f| f.code == code)
}

/// `clamp_t(u32, v, lo, hi)`: the kernel clamps after casting to u32 (a negative left becomes
/// huge and clamps to the upper bound).
fn clamp(v: u32, lo: u32, hi: u32) -> u32 {
    v.max(lo).min(hi)
}

/// OMAP3 ISP CCP2 (omap3isp.md §2.2, with Linux 7.0's clamping when no input is chosen).
pub struct Ccp2Pads {
    pub links: Arc<Ccp2>,
}

impl Block for Ccp2Pads {
    fn num_pads(&self) -> usize {
        2
    }
    fn init(&self) -> PadState {
        let m = mbus(MEDIA_BUS_FMT_SGRBG10_1X10, 4096, 4096);
        let mut st = PadState {
            fmt: vec![m, m],
            crop: rect(0, 0, 0, 0),
            mode: 0,
        };
        let mut sink = m;
        self.set_fmt(&mut st, 0, &mut sink);
        st
    }
    fn try_fmt(&self, st: &PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        if pad == 0 {
            if fmt.code != MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8 {
                fmt.code = MEDIA_BUS_FMT_SGRBG10_1X10;
            }
            if self.links.state.lock().0 == Input::OnTheFly {
                fmt.width = clamp(fmt.width, 0, 4095);
                fmt.height = clamp(fmt.height, 0, 4095);
            } else {
                fmt.width = clamp(fmt.width, 16, 8191);
                fmt.height = clamp(fmt.height, 1, 8191);
            }
        } else {
            // The source format is the sink's, decompressed.
            *fmt = st.fmt[0];
            fmt.code = MEDIA_BUS_FMT_SGRBG10_1X10;
        }
        fmt.field = V4L2_FIELD_NONE;
        fmt.colorspace = V4L2_COLORSPACE_SRGB;
    }
    fn set_fmt(&self, st: &mut PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        self.try_fmt(st, pad, fmt);
        st.fmt[pad] = *fmt;
        if pad == 0 {
            let mut src = *fmt;
            self.try_fmt(st, 1, &mut src);
            st.fmt[1] = src;
        }
    }
    fn enum_mbus_code(&self, st: &PadState, pad: usize, index: u32) -> Result<u32, Errno> {
        match (pad, index) {
            (0, 0) => Ok(MEDIA_BUS_FMT_SGRBG10_1X10),
            (0, 1) => Ok(MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8),
            // The driver enumerates the sink's code on the source (omap3isp.md §2.2).
            (1, 0) => Ok(st.fmt[0].code),
            _ => Err(Errno::EINVAL),
        }
    }
}

const CSI2_SINK_CODES: [u32; 9] = [
    MEDIA_BUS_FMT_SGRBG10_1X10,
    MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8,
    MEDIA_BUS_FMT_SRGGB10_1X10,
    MEDIA_BUS_FMT_SRGGB10_DPCM8_1X8,
    MEDIA_BUS_FMT_SBGGR10_1X10,
    MEDIA_BUS_FMT_SBGGR10_DPCM8_1X8,
    MEDIA_BUS_FMT_SGBRG10_1X10,
    MEDIA_BUS_FMT_SGBRG10_DPCM8_1X8,
    MEDIA_BUS_FMT_YUYV8_2X8,
];

/// OMAP3 ISP CSI2a (omap3isp.md §2.3).
pub struct Csi2Pads;

impl Block for Csi2Pads {
    fn num_pads(&self) -> usize {
        2
    }
    fn init(&self) -> PadState {
        let m = mbus(MEDIA_BUS_FMT_SGRBG10_1X10, 4096, 4096);
        PadState {
            fmt: vec![m, m],
            crop: rect(0, 0, 0, 0),
            mode: 0,
        }
    }
    fn try_fmt(&self, st: &PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        if pad == 0 {
            if !CSI2_SINK_CODES.contains(&fmt.code) {
                fmt.code = MEDIA_BUS_FMT_SGRBG10_1X10;
            }
            fmt.width = clamp(fmt.width, 1, 8191);
            fmt.height = clamp(fmt.height, 1, 8191);
        } else {
            // The source copies the sink; a DPCM sink may be decompressed on request.
            let wanted = fmt.code;
            *fmt = st.fmt[0];
            let info = format_info(fmt.code);
            if info.is_some_and(|i| i.uncompressed == wanted && i.code != wanted) {
                fmt.code = wanted;
            }
        }
        fmt.field = V4L2_FIELD_NONE;
        fmt.colorspace = V4L2_COLORSPACE_SRGB;
    }
    fn set_fmt(&self, st: &mut PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        self.try_fmt(st, pad, fmt);
        st.fmt[pad] = *fmt;
        if pad == 0 {
            let mut src = *fmt;
            self.try_fmt(st, 1, &mut src);
            st.fmt[1] = src;
        }
    }
    fn enum_mbus_code(&self, st: &PadState, pad: usize, index: u32) -> Result<u32, Errno> {
        if pad == 0 {
            return CSI2_SINK_CODES
                .get(index as usize)
                .copied()
                .ok_or(Errno::EINVAL);
        }
        let sink = st.fmt[0].code;
        match index {
            0 => Ok(sink),
            1 => match format_info(sink) {
                Some(i) if i.uncompressed != sink => Ok(i.uncompressed),
                _ => Err(Errno::EINVAL),
            },
            _ => Err(Errno::EINVAL),
        }
    }
}

const CCDC_SINK_CODES: [u32; 17] = [
    MEDIA_BUS_FMT_Y8_1X8,
    MEDIA_BUS_FMT_Y10_1X10,
    MEDIA_BUS_FMT_Y12_1X12,
    MEDIA_BUS_FMT_SGRBG8_1X8,
    MEDIA_BUS_FMT_SRGGB8_1X8,
    MEDIA_BUS_FMT_SBGGR8_1X8,
    MEDIA_BUS_FMT_SGBRG8_1X8,
    MEDIA_BUS_FMT_SGRBG10_1X10,
    MEDIA_BUS_FMT_SRGGB10_1X10,
    MEDIA_BUS_FMT_SBGGR10_1X10,
    MEDIA_BUS_FMT_SGBRG10_1X10,
    MEDIA_BUS_FMT_SGRBG12_1X12,
    MEDIA_BUS_FMT_SRGGB12_1X12,
    MEDIA_BUS_FMT_SBGGR12_1X12,
    MEDIA_BUS_FMT_SGBRG12_1X12,
    MEDIA_BUS_FMT_YUYV8_2X8,
    MEDIA_BUS_FMT_UYVY8_2X8,
];
const CCDC_MIN: u32 = 32;

fn is_yuv_2x8(code: u32) -> bool {
    code == MEDIA_BUS_FMT_YUYV8_2X8 || code == MEDIA_BUS_FMT_UYVY8_2X8
}

/// OMAP3 ISP CCDC (omap3isp.md §2.4): sink, OF (memory/resizer, size = crop) and VP (preview
/// and statistics, truncated to 10 bits, one line less).
pub struct CcdcPads;

impl CcdcPads {
    /// `ccdc_try_crop`.
    fn try_crop(sink: &v4l2_mbus_framefmt, crop: &mut v4l2_rect) {
        let bayer = format_info(sink.code).is_none_or(|i| i.flavor != MEDIA_BUS_FMT_Y8_1X8);
        let (mut left, mut top) = (crop.left as u32, crop.top as u32);
        if bayer {
            left &= !1;
            top &= !1;
        }
        left = clamp(left, 0, sink.width.saturating_sub(CCDC_MIN));
        top = clamp(top, 0, sink.height.saturating_sub(CCDC_MIN));
        // The formatter writes multiples of 16 pixels: allow up to the next multiple of 16.
        let max_width = (sink.width - left + 15) & !15;
        let mut width = clamp(crop.width, CCDC_MIN, max_width) & !15;
        let mut height = clamp(crop.height, CCDC_MIN, sink.height - top);
        if bayer {
            width &= !1;
            height &= !1;
        }
        *crop = rect(left as i32, top as i32, width, height);
    }
}

impl Block for CcdcPads {
    fn num_pads(&self) -> usize {
        3
    }
    fn has_selection(&self) -> bool {
        true
    }
    fn init(&self) -> PadState {
        let m = mbus(MEDIA_BUS_FMT_SGRBG10_1X10, 4096, 4096);
        let mut st = PadState {
            fmt: vec![m, m, m],
            crop: rect(0, 0, 4096, 4096),
            mode: 0,
        };
        let mut sink = m;
        self.set_fmt(&mut st, 0, &mut sink);
        st
    }
    fn try_fmt(&self, st: &PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        let (width, height) = (fmt.width, fmt.height);
        match pad {
            0 => {
                if !CCDC_SINK_CODES.contains(&fmt.code) {
                    fmt.code = MEDIA_BUS_FMT_SGRBG10_1X10;
                }
                fmt.width = clamp(width, CCDC_MIN, 4096);
                fmt.height = clamp(height, CCDC_MIN, 4096);
                if fmt.field == V4L2_FIELD_ANY {
                    fmt.field = V4L2_FIELD_NONE;
                }
            }
            1 => {
                let (wanted, field) = (fmt.code, fmt.field);
                *fmt = st.fmt[0];
                // The bridge turns YUV 2X8 into 1X16 and may swap bytes.
                if is_yuv_2x8(fmt.code) {
                    if [
                        MEDIA_BUS_FMT_YUYV8_2X8,
                        MEDIA_BUS_FMT_UYVY8_2X8,
                        MEDIA_BUS_FMT_YUYV8_1X16,
                        MEDIA_BUS_FMT_UYVY8_1X16,
                    ]
                    .contains(&wanted)
                    {
                        fmt.code = wanted;
                    }
                    if fmt.code == MEDIA_BUS_FMT_YUYV8_2X8 {
                        fmt.code = MEDIA_BUS_FMT_YUYV8_1X16;
                    } else if fmt.code == MEDIA_BUS_FMT_UYVY8_2X8 {
                        fmt.code = MEDIA_BUS_FMT_UYVY8_1X16;
                    }
                }
                fmt.width = st.crop.width;
                fmt.height = st.crop.height;
                // Alternating fields can be interleaved into one frame.
                if fmt.field == V4L2_FIELD_ALTERNATE
                    && (field == V4L2_FIELD_INTERLACED_TB || field == V4L2_FIELD_INTERLACED_BT)
                {
                    fmt.field = field;
                    fmt.height *= 2;
                }
            }
            _ => {
                *fmt = st.fmt[0];
                // The video port truncates to 10 bits and takes no YUV.
                fmt.code = format_info(fmt.code).map(|i| i.truncated).unwrap_or(0);
                if is_yuv_2x8(fmt.code) {
                    fmt.code = 0;
                }
                // At least one line less than the input.
                fmt.width = clamp(width, CCDC_MIN, fmt.width);
                fmt.height = clamp(height, CCDC_MIN, fmt.height.saturating_sub(1));
            }
        }
        fmt.colorspace = V4L2_COLORSPACE_SRGB;
    }
    fn set_fmt(&self, st: &mut PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        self.try_fmt(st, pad, fmt);
        st.fmt[pad] = *fmt;
        if pad == 0 {
            st.crop = rect(0, 0, fmt.width, fmt.height);
            Self::try_crop(fmt, &mut st.crop);
            for src in [1, 2] {
                let mut f = *fmt;
                self.try_fmt(st, src, &mut f);
                st.fmt[src] = f;
            }
        }
    }
    fn enum_mbus_code(&self, st: &PadState, pad: usize, index: u32) -> Result<u32, Errno> {
        match pad {
            0 => CCDC_SINK_CODES
                .get(index as usize)
                .copied()
                .ok_or(Errno::EINVAL),
            1 => {
                let code = st.fmt[1].code;
                // The byte-swap branch tests the OF code, which is never 2X8 (omap3isp.md §2.4).
                match (is_yuv_2x8(code), index) {
                    (true, 0) => Ok(MEDIA_BUS_FMT_YUYV8_1X16),
                    (true, 1) => Ok(MEDIA_BUS_FMT_UYVY8_1X16),
                    (false, 0) => Ok(code),
                    _ => Err(Errno::EINVAL),
                }
            }
            _ => match (index, st.fmt[2].code) {
                (0, c) if c != 0 => Ok(c),
                _ => Err(Errno::EINVAL),
            },
        }
    }
    fn get_selection(&self, st: &PadState, pad: usize, target: u32) -> Result<v4l2_rect, Errno> {
        if pad != 1 {
            return Err(Errno::EINVAL);
        }
        match target {
            V4L2_SEL_TGT_CROP_BOUNDS => {
                let mut r = rect(0, 0, i32::MAX as u32, i32::MAX as u32);
                Self::try_crop(&st.fmt[0], &mut r);
                Ok(r)
            }
            V4L2_SEL_TGT_CROP => Ok(st.crop),
            _ => Err(Errno::EINVAL),
        }
    }
    fn set_selection(
        &self,
        st: &mut PadState,
        pad: usize,
        target: u32,
        flags: u32,
        mut r: v4l2_rect,
    ) -> Result<v4l2_rect, Errno> {
        if target != V4L2_SEL_TGT_CROP || pad != 1 {
            return Err(Errno::EINVAL);
        }
        if flags & V4L2_SEL_FLAG_KEEP_CONFIG != 0 {
            return Ok(st.crop);
        }
        Self::try_crop(&st.fmt[0], &mut r);
        st.crop = r;
        let mut of = st.fmt[1];
        self.try_fmt(st, 1, &mut of);
        st.fmt[1] = of;
        Ok(r)
    }
}

const PREVIEW_SINK_CODES: [u32; 10] = [
    MEDIA_BUS_FMT_Y8_1X8,
    MEDIA_BUS_FMT_SGRBG8_1X8,
    MEDIA_BUS_FMT_SRGGB8_1X8,
    MEDIA_BUS_FMT_SBGGR8_1X8,
    MEDIA_BUS_FMT_SGBRG8_1X8,
    MEDIA_BUS_FMT_Y10_1X10,
    MEDIA_BUS_FMT_SGRBG10_1X10,
    MEDIA_BUS_FMT_SRGGB10_1X10,
    MEDIA_BUS_FMT_SBGGR10_1X10,
    MEDIA_BUS_FMT_SGBRG10_1X10,
];

/// OMAP3 ISP preview (omap3isp.md §2.5, Linux 7.0: the sink always clamps, SRGB source).
pub struct PreviewPads {
    pub links: Arc<Preview>,
    /// 3300 on ISP revision 2.0, 4096 on 15.0 (`preview_max_in_width`).
    pub max_in_width: u32,
}

impl PreviewPads {
    /// `preview_try_crop`: margins for the CFA, the noise filter and on-the-fly CCDC input.
    fn try_crop(&self, sink: &v4l2_mbus_framefmt, crop: &mut v4l2_rect) {
        let (mut left, mut right) = (6u32, sink.width.saturating_sub(4));
        let (mut top, mut bottom) = (2u32, sink.height.saturating_sub(2));
        if self.links.state.lock().0 == Input::OnTheFly {
            left += 2;
            right = right.saturating_sub(2);
        }
        if sink.code != MEDIA_BUS_FMT_Y8_1X8 && sink.code != MEDIA_BUS_FMT_Y10_1X10 {
            left += 2;
            right = right.saturating_sub(2);
            top += 2;
            bottom = bottom.saturating_sub(2);
        }
        let l = clamp((crop.left as u32) & !1, left, right.max(left));
        let t = clamp((crop.top as u32) & !1, top, bottom.max(top));
        let w = clamp(crop.width, 0, right.saturating_sub(l));
        let h = clamp(crop.height, 0, bottom.saturating_sub(t));
        *crop = rect(l as i32, t as i32, w, h);
    }
}

impl Block for PreviewPads {
    fn num_pads(&self) -> usize {
        2
    }
    fn has_selection(&self) -> bool {
        true
    }
    fn init(&self) -> PadState {
        let m = mbus(MEDIA_BUS_FMT_SGRBG10_1X10, 4096, 4096);
        let mut st = PadState {
            fmt: vec![m, m],
            crop: rect(0, 0, 4096, 4096),
            mode: 0,
        };
        let mut sink = m;
        self.set_fmt(&mut st, 0, &mut sink);
        let mut src = mbus(MEDIA_BUS_FMT_YUYV8_1X16, 0, 0);
        self.set_fmt(&mut st, 1, &mut src);
        st
    }
    fn try_fmt(&self, st: &PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        if pad == 0 {
            fmt.width = clamp(fmt.width, 64, self.max_in_width);
            fmt.height = clamp(fmt.height, 8, 16384);
            fmt.colorspace = V4L2_COLORSPACE_SRGB;
            if !PREVIEW_SINK_CODES.contains(&fmt.code) {
                fmt.code = MEDIA_BUS_FMT_SGRBG10_1X10;
            }
        } else {
            let wanted = fmt.code;
            *fmt = st.fmt[0];
            fmt.code = if wanted == MEDIA_BUS_FMT_UYVY8_1X16 || wanted == MEDIA_BUS_FMT_YUYV8_1X16 {
                wanted
            } else {
                MEDIA_BUS_FMT_YUYV8_1X16
            };
            fmt.width = st.crop.width;
            fmt.height = st.crop.height;
            fmt.colorspace = V4L2_COLORSPACE_SRGB;
        }
        fmt.field = V4L2_FIELD_NONE;
    }
    fn set_fmt(&self, st: &mut PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        self.try_fmt(st, pad, fmt);
        st.fmt[pad] = *fmt;
        if pad == 0 {
            st.crop = rect(0, 0, fmt.width, fmt.height);
            self.try_crop(fmt, &mut st.crop);
            let mut src = st.fmt[1];
            self.try_fmt(st, 1, &mut src);
            st.fmt[1] = src;
        }
    }
    fn enum_mbus_code(&self, _st: &PadState, pad: usize, index: u32) -> Result<u32, Errno> {
        let codes: &[u32] = if pad == 0 {
            &PREVIEW_SINK_CODES
        } else {
            &[MEDIA_BUS_FMT_UYVY8_1X16, MEDIA_BUS_FMT_YUYV8_1X16]
        };
        codes.get(index as usize).copied().ok_or(Errno::EINVAL)
    }
    fn get_selection(&self, st: &PadState, pad: usize, target: u32) -> Result<v4l2_rect, Errno> {
        if pad != 0 {
            return Err(Errno::EINVAL);
        }
        match target {
            V4L2_SEL_TGT_CROP_BOUNDS => {
                let mut r = rect(0, 0, i32::MAX as u32, i32::MAX as u32);
                self.try_crop(&st.fmt[0], &mut r);
                Ok(r)
            }
            V4L2_SEL_TGT_CROP => Ok(st.crop),
            _ => Err(Errno::EINVAL),
        }
    }
    fn set_selection(
        &self,
        st: &mut PadState,
        pad: usize,
        target: u32,
        flags: u32,
        mut r: v4l2_rect,
    ) -> Result<v4l2_rect, Errno> {
        if target != V4L2_SEL_TGT_CROP || pad != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & V4L2_SEL_FLAG_KEEP_CONFIG != 0 {
            return Ok(st.crop);
        }
        self.try_crop(&st.fmt[0], &mut r);
        st.crop = r;
        let mut src = st.fmt[1];
        self.try_fmt(st, 1, &mut src);
        st.fmt[1] = src;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wh(f: &v4l2_mbus_framefmt) -> (u32, u32, u32) {
        (f.code, f.width, f.height)
    }

    #[test]
    fn ccdc_defaults_and_propagation() {
        let b = CcdcPads;
        let mut st = b.init();
        assert_eq!(wh(&st.fmt[0]), (MEDIA_BUS_FMT_SGRBG10_1X10, 4096, 4096));
        assert_eq!(wh(&st.fmt[1]), (MEDIA_BUS_FMT_SGRBG10_1X10, 4096, 4096));
        assert_eq!(wh(&st.fmt[2]), (MEDIA_BUS_FMT_SGRBG10_1X10, 4096, 4095));
        // Dump 1: a 1298x970 SGRBG12 sensor gives OF 1296x970 and VP SGRBG10 1298x969.
        let mut f = mbus(MEDIA_BUS_FMT_SGRBG12_1X12, 1298, 970);
        b.set_fmt(&mut st, 0, &mut f);
        assert_eq!(st.crop, rect(0, 0, 1296, 970));
        assert_eq!(wh(&st.fmt[1]), (MEDIA_BUS_FMT_SGRBG12_1X12, 1296, 970));
        assert_eq!(wh(&st.fmt[2]), (MEDIA_BUS_FMT_SGRBG10_1X10, 1298, 969));
        assert_eq!(
            b.get_selection(&st, 1, V4L2_SEL_TGT_CROP_BOUNDS).unwrap(),
            rect(0, 0, 1312, 970)
        );
        // Dump 2: 2040 wide gives 2032.
        let mut f = mbus(MEDIA_BUS_FMT_SGRBG10_1X10, 2040, 1536);
        b.set_fmt(&mut st, 0, &mut f);
        assert_eq!(st.fmt[1].width, 2032);
        // Crop: even left/top, width a multiple of 16, the OF follows.
        let r = b
            .set_selection(&mut st, 1, V4L2_SEL_TGT_CROP, 0, rect(3, 5, 1000, 601))
            .unwrap();
        assert_eq!(r, rect(2, 4, 992, 600));
        assert_eq!(wh(&st.fmt[1]), (MEDIA_BUS_FMT_SGRBG10_1X10, 992, 600));
        assert_eq!(
            b.set_selection(
                &mut st,
                1,
                V4L2_SEL_TGT_CROP,
                V4L2_SEL_FLAG_KEEP_CONFIG,
                rect(0, 0, 64, 64)
            ),
            Ok(r)
        );
        assert_eq!(
            b.set_selection(&mut st, 2, V4L2_SEL_TGT_CROP, 0, r),
            Err(Errno::EINVAL)
        );
        // Clamps and unknown codes.
        let mut f = mbus(0x1234, 10, 99999);
        b.set_fmt(&mut st, 0, &mut f);
        assert_eq!(wh(&f), (MEDIA_BUS_FMT_SGRBG10_1X10, 32, 4096));
        // YUV: OF takes the requested 1X16 order, VP is disabled.
        let mut f = mbus(MEDIA_BUS_FMT_UYVY8_2X8, 720, 480);
        b.set_fmt(&mut st, 0, &mut f);
        assert_eq!(st.fmt[1].code, MEDIA_BUS_FMT_UYVY8_1X16);
        assert_eq!(st.fmt[2].code, 0);
        assert_eq!(b.enum_mbus_code(&st, 2, 0), Err(Errno::EINVAL));
        let mut of = mbus(MEDIA_BUS_FMT_YUYV8_1X16, 0, 0);
        b.set_fmt(&mut st, 1, &mut of);
        assert_eq!(wh(&of), (MEDIA_BUS_FMT_YUYV8_1X16, 720, 480));
        assert_eq!(b.enum_mbus_code(&st, 0, 16), Ok(MEDIA_BUS_FMT_UYVY8_2X8));
        assert_eq!(b.enum_mbus_code(&st, 0, 17), Err(Errno::EINVAL));
    }

    fn preview(rev_width: u32, input: Input) -> PreviewPads {
        let links = Arc::new(Preview::default());
        links.state.lock().0 = input;
        PreviewPads {
            links,
            max_in_width: rev_width,
        }
    }

    #[test]
    fn preview_crop_margins() {
        let p = preview(4096, Input::None);
        let st = p.init();
        assert_eq!(st.crop, rect(8, 4, 4082, 4088));
        assert_eq!(wh(&st.fmt[1]), (MEDIA_BUS_FMT_YUYV8_1X16, 4082, 4088));
        // Dump 1: from the CCDC, 1298x969 gives (10,4)/1280x961.
        let p = preview(4096, Input::OnTheFly);
        let mut st = p.init();
        let mut f = mbus(MEDIA_BUS_FMT_SGRBG10_1X10, 1298, 969);
        p.set_fmt(&mut st, 0, &mut f);
        assert_eq!(st.crop, rect(10, 4, 1280, 961));
        let mut src = mbus(MEDIA_BUS_FMT_UYVY8_1X16, 0, 0);
        p.set_fmt(&mut st, 1, &mut src);
        assert_eq!(wh(&src), (MEDIA_BUS_FMT_UYVY8_1X16, 1280, 961));
        // Linux 7.0 on OMAP34xx: the sink clamps to 3300 wide.
        let p = preview(3300, Input::None);
        let st = p.init();
        assert_eq!(st.fmt[0].width, 3300);
        assert_eq!(st.crop, rect(8, 4, 3286, 4088));
        // Y formats need no CFA margins.
        let p = preview(4096, Input::None);
        let mut st = p.init();
        let mut f = mbus(MEDIA_BUS_FMT_Y10_1X10, 640, 480);
        p.set_fmt(&mut st, 0, &mut f);
        assert_eq!(st.crop, rect(6, 2, 630, 476));
    }

    #[test]
    fn ccp2_and_csi2() {
        let c = Ccp2Pads {
            links: Arc::new(Ccp2::default()),
        };
        let mut st = c.init();
        let mut f = mbus(MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8, 9000, 0);
        c.set_fmt(&mut st, 0, &mut f);
        assert_eq!(wh(&st.fmt[0]), (MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8, 8191, 1));
        assert_eq!(wh(&st.fmt[1]), (MEDIA_BUS_FMT_SGRBG10_1X10, 8191, 1));
        assert_eq!(
            c.enum_mbus_code(&st, 1, 0),
            Ok(MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8)
        );
        c.links.state.lock().0 = Input::OnTheFly;
        let mut f = mbus(MEDIA_BUS_FMT_SGRBG10_1X10, 5000, 5000);
        c.set_fmt(&mut st, 0, &mut f);
        assert_eq!((f.width, f.height), (4095, 4095));

        let s = Csi2Pads;
        let mut st = s.init();
        let mut f = mbus(MEDIA_BUS_FMT_SRGGB10_DPCM8_1X8, 640, 480);
        s.set_fmt(&mut st, 0, &mut f);
        assert_eq!(s.enum_mbus_code(&st, 1, 1), Ok(MEDIA_BUS_FMT_SRGGB10_1X10));
        let mut src = mbus(MEDIA_BUS_FMT_SRGGB10_1X10, 1, 1);
        s.set_fmt(&mut st, 1, &mut src);
        assert_eq!(wh(&src), (MEDIA_BUS_FMT_SRGGB10_1X10, 640, 480));
        let mut f = mbus(MEDIA_BUS_FMT_SGRBG12_1X12, 0, 9000);
        s.set_fmt(&mut st, 0, &mut f);
        assert_eq!(wh(&f), (MEDIA_BUS_FMT_SGRBG10_1X10, 1, 8191));
        assert_eq!(s.enum_mbus_code(&st, 1, 1), Err(Errno::EINVAL));
    }
}

/// The Aptina MT9P031 sensor on the BeagleBoard-xM (drivers/media/i2c/mt9p031.c): one source
/// pad whose size is the crop window divided by the nearest skipping ratio.
pub struct Mt9p031Pads;

impl Mt9p031Pads {
    const PIXEL_ARRAY: (u32, u32) = (2752, 2004);
    const START_MAX: (i64, i64) = (2750, 2004);
    const WINDOW_MIN: u32 = 2;
    const WINDOW_MAX: (u32, u32) = (2752, 2006);
    const WINDOW_DEF: (u32, u32) = (2592, 1944);
}

fn align2(v: u32) -> u32 {
    v.saturating_add(1) & !1
}

/// `DIV_ROUND_CLOSEST` for unsigned values.
fn div_round_closest(a: u32, b: u32) -> u32 {
    (a + b / 2) / b.max(1)
}

impl Block for Mt9p031Pads {
    fn num_pads(&self) -> usize {
        1
    }
    fn has_selection(&self) -> bool {
        true
    }
    fn init(&self) -> PadState {
        let (w, h) = Self::WINDOW_DEF;
        PadState {
            fmt: vec![mbus(MEDIA_BUS_FMT_SGRBG12_1X12, w, h)],
            crop: rect(16, 54, w, h),
            mode: 0,
        }
    }
    /// `mt9p031_set_format`: the size snaps to the crop divided by a skipping ratio (the code,
    /// field and colorspace stay).
    fn try_fmt(&self, st: &PadState, _pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        let c = st.crop;
        let width = clamp(
            align2(fmt.width),
            (c.width / 7).max(Self::WINDOW_MIN),
            c.width,
        );
        let height = clamp(
            align2(fmt.height),
            (c.height / 8).max(Self::WINDOW_MIN),
            c.height,
        );
        let (hratio, vratio) = (
            div_round_closest(c.width, width),
            div_round_closest(c.height, height),
        );
        *fmt = st.fmt[0];
        fmt.width = c.width / hratio.max(1);
        fmt.height = c.height / vratio.max(1);
    }
    fn enum_mbus_code(&self, st: &PadState, pad: usize, index: u32) -> Result<u32, Errno> {
        if pad != 0 || index != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(st.fmt[0].code)
    }
    fn enum_frame_size(
        &self,
        st: &PadState,
        _pad: usize,
        index: u32,
        code: u32,
    ) -> Option<Result<[u32; 4], Errno>> {
        Some(mt9p031_frame_size(index, code, st.fmt[0].code).map(|(w, h)| [w, w, h, h]))
    }
    fn get_selection(&self, st: &PadState, _pad: usize, target: u32) -> Result<v4l2_rect, Errno> {
        if target != V4L2_SEL_TGT_CROP {
            return Err(Errno::EINVAL);
        }
        Ok(st.crop)
    }
    fn set_selection(
        &self,
        st: &mut PadState,
        _pad: usize,
        target: u32,
        _flags: u32,
        r: v4l2_rect,
    ) -> Result<v4l2_rect, Errno> {
        if target != V4L2_SEL_TGT_CROP {
            return Err(Errno::EINVAL);
        }
        let align = |v: i32| (i64::from(v) + 1) & !1;
        let left = align(r.left).clamp(0, Self::START_MAX.0) as u32;
        let top = align(r.top).clamp(0, Self::START_MAX.1) as u32;
        let mut width = clamp(align2(r.width), Self::WINDOW_MIN, Self::WINDOW_MAX.0);
        let mut height = clamp(align2(r.height), Self::WINDOW_MIN, Self::WINDOW_MAX.1);
        width = width.min(Self::PIXEL_ARRAY.0 - left);
        height = height.min(Self::PIXEL_ARRAY.1.saturating_sub(top));
        let new = rect(left as i32, top as i32, width, height);
        if new.width != st.crop.width || new.height != st.crop.height {
            // A new window size resets the output size.
            st.fmt[0].width = width;
            st.fmt[0].height = height;
        }
        st.crop = new;
        Ok(new)
    }
}

/// `mt9p031_enum_frame_size`: eight skipping ratios of the default window.
pub fn mt9p031_frame_size(index: u32, code: u32, active_code: u32) -> Result<(u32, u32), Errno> {
    if index >= 8 || code != active_code {
        return Err(Errno::EINVAL);
    }
    let (w, h) = Mt9p031Pads::WINDOW_DEF;
    Ok((w / (index + 1).min(7), h / (index + 1)))
}

#[cfg(test)]
mod sensor_tests {
    use super::*;

    #[test]
    fn mt9p031_skipping_and_crop() {
        let s = Mt9p031Pads;
        let mut st = s.init();
        assert_eq!(st.crop, rect(16, 54, 2592, 1944));
        // 2592/1280 rounds to 2, 1944/720 rounds to 3.
        let mut f = mbus(MEDIA_BUS_FMT_SBGGR8_1X8, 1280, 720);
        s.set_fmt(&mut st, 0, &mut f);
        assert_eq!(
            (f.code, f.width, f.height),
            (MEDIA_BUS_FMT_SGRBG12_1X12, 1296, 648)
        );
        // A smaller window resets the output size.
        let r = s
            .set_selection(&mut st, 0, V4L2_SEL_TGT_CROP, 0, rect(1, -3, 641, 481))
            .unwrap();
        assert_eq!(r, rect(2, 0, 642, 482));
        assert_eq!((st.fmt[0].width, st.fmt[0].height), (642, 482));
        let r = s
            .set_selection(
                &mut st,
                0,
                V4L2_SEL_TGT_CROP,
                0,
                rect(2700, 1990, 9999, 9999),
            )
            .unwrap();
        assert_eq!(r, rect(2700, 1990, 52, 14));
        assert_eq!(
            s.get_selection(&st, 0, V4L2_SEL_TGT_CROP_BOUNDS),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            mt9p031_frame_size(1, MEDIA_BUS_FMT_SGRBG12_1X12, MEDIA_BUS_FMT_SGRBG12_1X12),
            Ok((1296, 972))
        );
        assert_eq!(
            mt9p031_frame_size(7, MEDIA_BUS_FMT_SGRBG12_1X12, MEDIA_BUS_FMT_SGRBG12_1X12),
            Ok((370, 243))
        );
        assert!(
            mt9p031_frame_size(8, MEDIA_BUS_FMT_SGRBG12_1X12, MEDIA_BUS_FMT_SGRBG12_1X12).is_err()
        );
        assert!(
            mt9p031_frame_size(0, MEDIA_BUS_FMT_SGRBG10_1X10, MEDIA_BUS_FMT_SGRBG12_1X12).is_err()
        );
    }
}

/// OMAP3 ISP resizer (omap3isp.md §2.6): the output size follows from the resizing ratios the
/// hardware can do for the crop rectangle, and the crop it reports is re-centred on what the
/// hardware really reads.
pub struct ResizerPads {
    pub links: Arc<crate::links::Resizer>,
    /// Widest output in 4-tap and in 7-tap mode: (3312, 1650) on ISP 2.0, (4096, 2048) on 15.0.
    pub max_out_width: (u32, u32),
}

/// Horizontal and vertical resizing ratios, in 1/256 units (64: x4, 1024: x1/4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub horz: u32,
    pub vert: u32,
}

impl ResizerPads {
    const MID_RATIO: u32 = 512;

    fn max_in_width(&self) -> u32 {
        // 4095 from memory, and on the fly on ISP 2.0 and 15.0.
        4095
    }

    /// `resizer_calc_ratios` with the default phase 1: clamps `out` to what the hardware can
    /// produce from `input`, and shrinks and re-centres `input` to exactly what it will read.
    pub fn calc_ratios(&self, input: &mut v4l2_rect, out: &mut v4l2_mbus_framefmt) -> Ratio {
        let (iw, ih) = (i64::from(input.width), i64::from(input.height));
        let min_h = (((ih - 7) * 256 - 32 - 64) / 1024 + 1).max(2);
        let max_h = (((ih - 4) * 256 + 255 - 16 - 32) / 64 + 1).min(4095);
        let oh = i64::from(out.height).max(min_h).min(max_h).max(2);
        let mut vert = ((ih - 4) * 256 + 255 - 16 - 32) / (oh - 1);
        if vert > i64::from(Self::MID_RATIO) {
            vert = ((ih - 7) * 256 + 255 - 32 - 64) / (oh - 1);
        }
        let vert = vert.clamp(64, 1024);
        let height = if vert <= i64::from(Self::MID_RATIO) {
            (((oh - 1) * vert + 32 + 16) >> 8) + 4
        } else {
            (((oh - 1) * vert + 64 + 32) >> 8) + 7
        };

        let min_w = (((iw - 7) * 256 - 32 - 64) / 1024 + 1).max(16);
        let tap_max = if vert <= i64::from(Self::MID_RATIO) {
            self.max_out_width.0
        } else {
            self.max_out_width.1
        };
        let max_w = (((iw - 7) * 256 + 255 - 16 - 32) / 64 + 1).min(i64::from(tap_max));
        let align: i64 = if vert < 256 { 8 } else { 2 };
        let ow = i64::from(out.width).max(min_w).min(max_w & !(align - 1));
        let ow = ((ow + align - 1) & !(align - 1)).max(2);
        let mut horz = ((iw - 7) * 256 + 255 - 16 - 32) / (ow - 1);
        if horz > i64::from(Self::MID_RATIO) {
            horz = ((iw - 7) * 256 + 255 - 32 - 64) / (ow - 1);
        }
        let horz = horz.clamp(64, 1024);
        let width = if horz <= i64::from(Self::MID_RATIO) {
            (((ow - 1) * horz + 32 + 16) >> 8) + 7
        } else {
            (((ow - 1) * horz + 64 + 32) >> 8) + 7
        };

        out.width = ow as u32;
        out.height = oh as u32;
        input.left = input.left.wrapping_add(((iw - width) / 2) as i32);
        input.top = input.top.wrapping_add(((ih - height) / 2) as i32);
        input.width = width as u32;
        input.height = height as u32;
        Ratio {
            horz: horz as u32,
            vert: vert as u32,
        }
    }

    /// `resizer_try_crop`: the zoom stays within x1/4..x4 of the output, inside the sink.
    fn try_crop(sink: &v4l2_mbus_framefmt, source: &v4l2_mbus_framefmt, crop: &mut v4l2_rect) {
        let (ow, oh) = (source.width.max(1), source.height.max(1));
        let min_w = ((32 + (ow - 1) * 64 + 16) >> 8) + 7;
        let min_h = ((32 + (oh - 1) * 64 + 16) >> 8) + 4;
        let max_w = ((64 + (ow - 1) * 1024 + 32) >> 8) + 7;
        let max_h = ((64 + (oh - 1) * 1024 + 32) >> 8) + 7;
        let w = clamp(crop.width, min_w, max_w);
        let h = clamp(crop.height, min_h, max_h);
        let left = clamp(crop.left as u32, 0, sink.width.saturating_sub(32));
        let top = clamp(crop.top as u32, 0, sink.height.saturating_sub(32));
        *crop = rect(
            left as i32,
            top as i32,
            clamp(w, 32, sink.width - left),
            clamp(h, 32, sink.height - top),
        );
    }
}

impl Block for ResizerPads {
    fn num_pads(&self) -> usize {
        2
    }
    fn has_selection(&self) -> bool {
        true
    }
    fn init(&self) -> PadState {
        let m = mbus(MEDIA_BUS_FMT_YUYV8_1X16, 4096, 4096);
        let mut st = PadState {
            fmt: vec![m, m],
            crop: rect(0, 0, 4096, 4096),
            mode: 0,
        };
        let mut sink = m;
        self.set_fmt(&mut st, 0, &mut sink);
        st
    }
    fn try_fmt(&self, st: &PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        if pad == 0 {
            if fmt.code != MEDIA_BUS_FMT_YUYV8_1X16 && fmt.code != MEDIA_BUS_FMT_UYVY8_1X16 {
                fmt.code = MEDIA_BUS_FMT_YUYV8_1X16;
            }
            let _ = &self.links;
            fmt.width = clamp(fmt.width, 32, self.max_in_width());
            fmt.height = clamp(fmt.height, 32, 4095);
        } else {
            fmt.code = st.fmt[0].code;
            let mut crop = st.crop;
            self.calc_ratios(&mut crop, fmt);
        }
        // Linux 7.0: SRGB (JPEG before).
        fmt.colorspace = V4L2_COLORSPACE_SRGB;
        fmt.field = V4L2_FIELD_NONE;
    }
    fn set_fmt(&self, st: &mut PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        self.try_fmt(st, pad, fmt);
        st.fmt[pad] = *fmt;
        if pad == 0 {
            st.crop = rect(0, 0, fmt.width, fmt.height);
            let mut src = *fmt;
            self.try_fmt(st, 1, &mut src);
            st.fmt[1] = src;
        }
    }
    fn enum_mbus_code(&self, st: &PadState, pad: usize, index: u32) -> Result<u32, Errno> {
        match (pad, index) {
            (0, 0) => Ok(MEDIA_BUS_FMT_UYVY8_1X16),
            (0, 1) => Ok(MEDIA_BUS_FMT_YUYV8_1X16),
            (1, 0) => Ok(st.fmt[0].code),
            _ => Err(Errno::EINVAL),
        }
    }
    fn get_selection(&self, st: &PadState, pad: usize, target: u32) -> Result<v4l2_rect, Errno> {
        if pad != 0 {
            return Err(Errno::EINVAL);
        }
        let mut source = st.fmt[1];
        let mut r = match target {
            V4L2_SEL_TGT_CROP_BOUNDS => {
                let mut r = rect(0, 0, i32::MAX as u32, i32::MAX as u32);
                Self::try_crop(&st.fmt[0], &source, &mut r);
                r
            }
            V4L2_SEL_TGT_CROP => st.crop,
            _ => return Err(Errno::EINVAL),
        };
        self.calc_ratios(&mut r, &mut source);
        Ok(r)
    }
    /// Always as with KEEP_CONFIG: the unmangled request is stored, the source follows.
    fn set_selection(
        &self,
        st: &mut PadState,
        pad: usize,
        target: u32,
        _flags: u32,
        mut r: v4l2_rect,
    ) -> Result<v4l2_rect, Errno> {
        if target != V4L2_SEL_TGT_CROP || pad != 0 {
            return Err(Errno::EINVAL);
        }
        let mut source = st.fmt[1];
        Self::try_crop(&st.fmt[0], &source, &mut r);
        st.crop = r;
        self.calc_ratios(&mut r, &mut source);
        st.fmt[1] = source;
        Ok(r)
    }
}

#[cfg(test)]
mod resizer_tests {
    use super::*;

    fn resizer(max_out_width: (u32, u32)) -> ResizerPads {
        ResizerPads {
            links: Arc::new(crate::links::Resizer::default()),
            max_out_width,
        }
    }

    #[test]
    fn defaults_per_isp_revision() {
        // Rev 15.0: seen in a dump: crop (4,6)/4086x4082, source 4096x4095.
        let r = resizer((4096, 2048));
        let st = r.init();
        assert_eq!((st.fmt[0].width, st.fmt[0].height), (4095, 4095));
        assert_eq!((st.fmt[1].width, st.fmt[1].height), (4096, 4095));
        assert_eq!(
            r.get_selection(&st, 0, V4L2_SEL_TGT_CROP),
            Ok(rect(4, 6, 4086, 4082))
        );
        assert_eq!(
            r.get_selection(&st, 0, V4L2_SEL_TGT_CROP_BOUNDS),
            Ok(rect(4, 6, 4086, 4082))
        );
        // Rev 2.0 (computed in omap3isp.md §2.6): crop (0,6)/4094x4082, source 3312x4095.
        let r = resizer((3312, 1650));
        let st = r.init();
        assert_eq!((st.fmt[1].width, st.fmt[1].height), (3312, 4095));
        assert_eq!(
            r.get_selection(&st, 0, V4L2_SEL_TGT_CROP),
            Ok(rect(0, 6, 4094, 4082))
        );
    }

    #[test]
    fn downscale_and_digital_zoom() {
        let r = resizer((4096, 2048));
        let mut st = r.init();
        // Dump 1: UYVY 1280x961 in, 320x240 out.
        let mut f = mbus(MEDIA_BUS_FMT_UYVY8_1X16, 1280, 961);
        r.set_fmt(&mut st, 0, &mut f);
        let mut out = mbus(0, 320, 240);
        r.set_fmt(&mut st, 1, &mut out);
        assert_eq!(
            (out.code, out.width, out.height),
            (MEDIA_BUS_FMT_UYVY8_1X16, 320, 240)
        );
        let mut crop = st.crop;
        let ratio = r.calc_ratios(&mut crop, &mut out.clone());
        assert!(
            ratio.horz > 512 && ratio.vert > 512,
            "x1/4 uses the 7-tap filter: {ratio:?}"
        );
        // Asking for more than x4 upscaling is clamped.
        let mut big = mbus(0, 9999, 9999);
        r.set_fmt(&mut st, 1, &mut big);
        assert!(big.width <= 4096 && big.height <= 4095);
        // The crop may not zoom beyond x4: with a huge output it cannot be small.
        let wide = r
            .set_selection(&mut st, 0, V4L2_SEL_TGT_CROP, 0, rect(0, 0, 64, 64))
            .unwrap();
        assert!(
            wide.width >= big.width / 4 - 8,
            "{wide:?} for {}x{}",
            big.width,
            big.height
        );
        // Back to 320x240: a crop request is stored unmangled; the reported one is what the
        // hardware reads.
        let mut out = mbus(0, 320, 240);
        r.set_fmt(&mut st, 1, &mut out);
        let got = r
            .set_selection(&mut st, 0, V4L2_SEL_TGT_CROP, 0, rect(100, 100, 640, 480))
            .unwrap();
        assert_eq!(st.crop, rect(100, 100, 640, 480));
        assert!(got.width <= 640 && got.height <= 480 && got.left >= 100 && got.top >= 100);
        assert_eq!(
            r.set_selection(&mut st, 1, V4L2_SEL_TGT_CROP, 0, got),
            Err(Errno::EINVAL)
        );
    }
}
