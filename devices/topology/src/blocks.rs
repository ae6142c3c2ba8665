//! The pad operations of the generic blocks a topology file names: what each kind accepts on
//! its pads and what setting a sink propagates to its sources. They implement
//! [`media_graph::pads::Block`], so the sub-device nodes share the subdev core with omap3isp's.
//!
//! | block   | sink pads                     | source pads                                        |
//! |---------|-------------------------------|----------------------------------------------------|
//! | sensor  | —                             | its `formats`, its `sizes`                         |
//! | bridge  | its `formats` (or every code) | the first sink's format, unchanged                 |
//! | debayer | 8-bit Bayer codes             | RGB888_1X24 or BGR888_1X24 at the sink's size      |
//! | scaler  | its `formats`                 | the sink's code, any size within `sizes`           |
//!
//! Frames are not transformed block by block: the capture node renders the sensor's test
//! pattern directly in its own format (see [`crate::capture`]).

use ioctl_abi::subdev::v4l2_mbus_framefmt;
use ioctl_abi::videodev2::{V4L2_COLORSPACE_SRGB, V4L2_FIELD_NONE};
use media_graph::pads::{mbus, Block as PadOps, PadState};
use nix::errno::Errno;

use crate::formats::{all_codes, DEBAYER_OUT};
use crate::{Block, Entity, PadDir, Sizes};

/// The size a block starts with: 640x480, or the nearest it allows.
pub const DEFAULT_SIZE: (u32, u32) = (640, 480);

/// The allowed size nearest to `w`x`h` (`v4l2_find_nearest_size` for a list; a clamp for a
/// range).
pub fn fit(sizes: &Sizes, w: u32, h: u32) -> (u32, u32) {
    match sizes {
        Sizes::Range { min, max } => (w.clamp(min.0, max.0), h.clamp(min.1, max.1)),
        Sizes::Discrete(list) => list
            .iter()
            .copied()
            .min_by_key(|&(lw, lh)| lw.abs_diff(w) as u64 + lh.abs_diff(h) as u64)
            .unwrap_or(DEFAULT_SIZE),
    }
}

/// `enum_frame_size` over `sizes`: one entry per listed size, or index 0 for a range.
pub fn size_at(sizes: &Sizes, index: u32) -> Result<[u32; 4], Errno> {
    match sizes {
        Sizes::Range { min, max } if index == 0 => Ok([min.0, max.0, min.1, max.1]),
        Sizes::Range { .. } => Err(Errno::EINVAL),
        Sizes::Discrete(list) => list
            .get(index as usize)
            .map(|&(w, h)| [w, w, h, h])
            .ok_or(Errno::EINVAL),
    }
}

/// One sub-device entity's pad operations.
pub struct Pads {
    kind: Block,
    dirs: Vec<PadDir>,
    /// Codes the sink pads (a sensor's source pads) accept.
    codes: Vec<u32>,
    sizes: Sizes,
}

impl Pads {
    pub fn new(e: &Entity) -> Self {
        let codes = if e.formats.is_empty() {
            all_codes()
        } else {
            e.formats.clone()
        };
        Self {
            kind: e.block,
            dirs: e.pads.clone(),
            codes,
            sizes: e.sizes.clone(),
        }
    }

    /// A pad whose format the user chooses (a sink, or a sensor's source).
    fn is_input(&self, pad: usize) -> bool {
        self.kind == Block::Sensor || self.dirs[pad] == PadDir::Sink
    }

    fn first_sink(&self) -> usize {
        self.dirs
            .iter()
            .position(|d| *d == PadDir::Sink)
            .unwrap_or(0)
    }

    /// A source pad's format from the first sink's (keeping a debayer's chosen output code).
    fn derive(&self, st: &PadState, pad: usize) -> v4l2_mbus_framefmt {
        let sink = st.fmt[self.first_sink()];
        let mut m = sink;
        if self.kind == Block::Debayer {
            let cur = st.fmt[pad].code;
            m.code = if DEBAYER_OUT.contains(&cur) {
                cur
            } else {
                DEBAYER_OUT[0]
            };
        }
        m
    }

    fn propagate(&self, st: &mut PadState) {
        for pad in 0..self.dirs.len() {
            if !self.is_input(pad) {
                st.fmt[pad] = self.derive(st, pad);
            }
        }
    }
}

/// Field, colorspace and the rest as the blocks produce them: progressive sRGB, defaults.
fn normalise(m: &mut v4l2_mbus_framefmt) {
    m.field = V4L2_FIELD_NONE;
    m.colorspace = V4L2_COLORSPACE_SRGB;
    m.ycbcr_enc = 0;
    m.quantization = 0;
    m.xfer_func = 0;
    m.flags = 0;
}

impl PadOps for Pads {
    fn num_pads(&self) -> usize {
        self.dirs.len()
    }

    fn init(&self) -> PadState {
        let (w, h) = fit(&self.sizes, DEFAULT_SIZE.0, DEFAULT_SIZE.1);
        let mut st = PadState {
            fmt: vec![mbus(self.codes[0], w, h); self.dirs.len()],
            crop: Default::default(),
            mode: 0,
        };
        self.propagate(&mut st);
        st
    }

    fn try_fmt(&self, st: &PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        if self.is_input(pad) {
            if !self.codes.contains(&fmt.code) {
                fmt.code = self.codes[0];
            }
            (fmt.width, fmt.height) = fit(&self.sizes, fmt.width, fmt.height);
            normalise(fmt);
            return;
        }
        let mut m = self.derive(st, pad);
        match self.kind {
            Block::Debayer if DEBAYER_OUT.contains(&fmt.code) => m.code = fmt.code,
            Block::Scaler => (m.width, m.height) = fit(&self.sizes, fmt.width, fmt.height),
            _ => {}
        }
        *fmt = m;
    }

    fn set_fmt(&self, st: &mut PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        self.try_fmt(st, pad, fmt);
        st.fmt[pad] = *fmt;
        if self.is_input(pad) && self.kind != Block::Sensor {
            self.propagate(st);
        }
    }

    fn enum_mbus_code(&self, st: &PadState, pad: usize, index: u32) -> Result<u32, Errno> {
        let i = index as usize;
        if self.is_input(pad) {
            return self.codes.get(i).copied().ok_or(Errno::EINVAL);
        }
        match self.kind {
            Block::Debayer => DEBAYER_OUT.get(i).copied().ok_or(Errno::EINVAL),
            _ if i == 0 => Ok(st.fmt[self.first_sink()].code),
            _ => Err(Errno::EINVAL),
        }
    }

    fn enum_frame_size(
        &self,
        st: &PadState,
        pad: usize,
        index: u32,
        code: u32,
    ) -> Option<Result<[u32; 4], Errno>> {
        let r = (|| {
            if self.is_input(pad) {
                if !self.codes.contains(&code) {
                    return Err(Errno::EINVAL);
                }
                return size_at(&self.sizes, index);
            }
            let sink = st.fmt[self.first_sink()];
            let code_ok = match self.kind {
                Block::Debayer => DEBAYER_OUT.contains(&code),
                _ => code == sink.code,
            };
            if !code_ok {
                return Err(Errno::EINVAL);
            }
            match self.kind {
                Block::Scaler => size_at(&self.sizes, index),
                _ if index == 0 => Ok([sink.width, sink.width, sink.height, sink.height]),
                _ => Err(Errno::EINVAL),
            }
        })();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ioctl_abi::subdev::*;

    fn entity(text: &str) -> Entity {
        let t = crate::parse(&format!(
            "[device]\ndriver = \"d\"\nmodel = \"m\"\nbus_info = \"b\"\n[[entity]]\n{text}"
        ))
        .unwrap();
        t.entities[0].clone()
    }

    #[test]
    fn sensor_fits_codes_and_sizes() {
        let p = Pads::new(&entity(
            "name = \"s\"\nblock = \"sensor\"\nformats = [\"YUYV8_2X8\"]\nsizes = [\"640x480\", \"1280x720\"]",
        ));
        let st = p.init();
        assert_eq!(
            (st.fmt[0].code, st.fmt[0].width),
            (MEDIA_BUS_FMT_YUYV8_2X8, 640)
        );
        let mut m = mbus(0xffff_ffff, 1200, 700);
        p.try_fmt(&st, 0, &mut m);
        assert_eq!(
            (m.code, m.width, m.height),
            (MEDIA_BUS_FMT_YUYV8_2X8, 1280, 720)
        );
        assert_eq!(p.enum_mbus_code(&st, 0, 1), Err(Errno::EINVAL));
        assert_eq!(
            p.enum_frame_size(&st, 0, 1, MEDIA_BUS_FMT_YUYV8_2X8),
            Some(Ok([1280, 1280, 720, 720]))
        );
        assert_eq!(
            p.enum_frame_size(&st, 0, 2, MEDIA_BUS_FMT_YUYV8_2X8),
            Some(Err(Errno::EINVAL))
        );
    }

    #[test]
    fn debayer_propagates_the_size_and_keeps_its_output_code() {
        let p = Pads::new(&entity("name = \"d\"\nblock = \"debayer\""));
        let mut st = p.init();
        assert_eq!(st.fmt[1].code, MEDIA_BUS_FMT_RGB888_1X24);
        let mut out = mbus(MEDIA_BUS_FMT_BGR888_1X24, 1, 1);
        p.set_fmt(&mut st, 1, &mut out);
        assert_eq!((out.code, out.width), (MEDIA_BUS_FMT_BGR888_1X24, 640));
        let mut sink = mbus(MEDIA_BUS_FMT_SGRBG8_1X8, 1920, 1080);
        p.set_fmt(&mut st, 0, &mut sink);
        assert_eq!(
            (st.fmt[1].code, st.fmt[1].width, st.fmt[1].height),
            (MEDIA_BUS_FMT_BGR888_1X24, 1920, 1080)
        );
        // A colour code on the sink is not Bayer: the first Bayer code instead.
        let mut bad = mbus(MEDIA_BUS_FMT_RGB888_1X24, 64, 64);
        p.try_fmt(&st, 0, &mut bad);
        assert_eq!(bad.code, MEDIA_BUS_FMT_SBGGR8_1X8);
    }

    #[test]
    fn scaler_source_takes_any_size_in_range_and_bridge_copies() {
        let p = Pads::new(&entity("name = \"sc\"\nblock = \"scaler\""));
        let mut st = p.init();
        let mut out = mbus(MEDIA_BUS_FMT_SBGGR8_1X8, 1920, 1080);
        p.set_fmt(&mut st, 1, &mut out);
        assert_eq!((out.code, out.width), (MEDIA_BUS_FMT_RGB888_1X24, 1920));
        assert_eq!(
            p.enum_frame_size(&st, 1, 0, MEDIA_BUS_FMT_RGB888_1X24),
            Some(Ok([16, 4096, 16, 2160]))
        );
        let b = Pads::new(&entity("name = \"b\"\nblock = \"bridge\""));
        let mut st = b.init();
        let mut sink = mbus(MEDIA_BUS_FMT_UYVY8_2X8, 320, 240);
        b.set_fmt(&mut st, 0, &mut sink);
        let mut out = mbus(MEDIA_BUS_FMT_RGB888_1X24, 64, 64);
        b.try_fmt(&st, 1, &mut out);
        assert_eq!(
            (out.code, out.width, out.height),
            (MEDIA_BUS_FMT_UYVY8_2X8, 320, 240)
        );
        assert_eq!(b.enum_mbus_code(&st, 1, 0), Ok(MEDIA_BUS_FMT_UYVY8_2X8));
        assert_eq!(b.enum_mbus_code(&st, 1, 1), Err(Errno::EINVAL));
    }
}
