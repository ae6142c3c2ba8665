//! The Toshiba ET8EK8 sensor of the Nokia N900 (drivers/media/i2c/et8ek8): a fixed table of
//! register-list "modes", each a size, a media-bus code and a frame interval. Formats snap to
//! the nearest mode, frame intervals choose among the modes of the current size.
//!
//! The driver sorts its table at probe with the kernel's `sort()` (a heapsort, so modes of
//! equal size come out in an order the algorithm decides, not the file's). That order is what
//! userspace sees: the default mode, enumeration order, which of two equal-size modes a format
//! picks. [`kernel_sort`] reproduces the current lib/sort.c so the emulation sees the same.

use std::cmp::Ordering;
use std::sync::Arc;

use ioctl_abi::subdev::*;
use ioctl_abi::videodev2::*;
use media_graph::controls::Controls;
use nix::errno::Errno;

use crate::pads::{rect, Block, PadState};

/// One register list of et8ek8_mode.c: whether it is a streaming mode (the first list only
/// powers the sensor on) and the `et8ek8_mode` fields userspace can observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub is_mode: bool,
    pub window_width: u32,
    pub window_height: u32,
    pub code: u32,
    /// `timeperframe` (numerator, denominator).
    pub ival: (u32, u32),
    /// `pixel_clock` in Hz and the line length `width` in pixel clocks, for PIXEL_RATE.
    pub pixel_clock: u32,
    pub line_width: u32,
    pub max_exp: u32,
}

const fn m(
    is_mode: bool,
    (window_width, window_height): (u32, u32),
    code: u32,
    ival: (u32, u32),
    pixel_clock: u32,
    line_width: u32,
    max_exp: u32,
) -> Mode {
    Mode {
        is_mode,
        window_width,
        window_height,
        code,
        ival,
        pixel_clock,
        line_width,
        max_exp,
    }
}

const RAW10: u32 = MEDIA_BUS_FMT_SGRBG10_1X10;
const DPCM8: u32 = MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8;

/// `meta_reglist` in file order (version "V14 03-June-2008").
pub const REGLISTS: [Mode; 9] = [
    m(
        false,
        (2592, 1968),
        RAW10,
        (100, 1207),
        80_000_000,
        3288,
        2012,
    ),
    m(
        true,
        (2592, 1968),
        DPCM8,
        (100, 1292),
        80_000_000,
        3072,
        2012,
    ),
    m(
        true,
        (1296, 984),
        DPCM8,
        (100, 3000),
        96_533_333,
        3192,
        1004,
    ),
    m(true, (864, 656), RAW10, (100, 2988), 80_000_000, 3984, 668),
    m(true, (648, 492), RAW10, (100, 2993), 80_000_000, 5304, 500),
    m(
        true,
        (2592, 1968),
        RAW10,
        (100, 399),
        80_000_000,
        3288,
        6092,
    ),
    m(true, (648, 492), RAW10, (100, 499), 13_333_333, 5304, 500),
    m(true, (1296, 984), RAW10, (100, 501), 49_400_000, 3288, 2996),
    m(
        true,
        (1296, 984),
        DPCM8,
        (100, 2500),
        84_266_667,
        3192,
        1052,
    ),
];

/// `et8ek8_reglist_cmp`: streaming modes first, then descending width, then height.
fn reglist_cmp(a: &Mode, b: &Mode) -> Ordering {
    b.is_mode
        .cmp(&a.is_mode)
        .then(b.window_width.cmp(&a.window_width))
        .then(b.window_height.cmp(&a.window_height))
}

/// lib/sort.c's bottom-up heapsort in its current form (the root and the larger of its two
/// children popped per round, the last two or three elements finished by hand). Not stable:
/// equal elements end up where the algorithm puts them, which is the point of using it.
pub fn kernel_sort<T>(v: &mut [T], cmp: impl Fn(&T, &T) -> Ordering) {
    let num = v.len();
    let mut n = num;
    let mut a = num / 2;
    if a == 0 {
        return;
    }
    let parent = |i: usize| (i - 1) / 2;
    let mut shift = 0;
    loop {
        if a != 0 {
            a -= 1 << shift;
        } else if n > 3 {
            n -= 1;
            v.swap(0, n);
            shift = usize::from(cmp(&v[1], &v[2]) != Ordering::Greater);
            a = 1 << shift;
            n -= 1;
            v.swap(a, n);
        } else {
            break;
        }
        // Find the sift-down path to a leaf, one comparison per level.
        let mut b = a;
        let (mut c, mut d);
        loop {
            c = 2 * b + 1;
            d = c + 1;
            if d >= n {
                break;
            }
            b = if cmp(&v[c], &v[d]) == Ordering::Greater {
                c
            } else {
                d
            };
        }
        if d == n {
            b = c;
        }
        // Back up to where the element at `a` belongs, then rotate it into place.
        while b != a && cmp(&v[a], &v[b]) != Ordering::Less {
            b = parent(b);
        }
        let c = b;
        while b != a {
            b = parent(b);
            v.swap(b, c);
        }
    }
    n -= 1;
    v.swap(0, n);
    if n == 2 && cmp(&v[0], &v[1]) == Ordering::Greater {
        v.swap(0, 1);
    }
}

/// `TIMEPERFRAME_AVG_FPS`: frames per second rounded to nearest.
fn avg_fps((num, den): (u32, u32)) -> Option<u32> {
    (num != 0).then(|| (den + (num >> 1)) / num)
}

/// The ET8EK8's pad operations over its sorted mode table.
pub struct Et8ek8Pads {
    /// Streaming modes in the order the driver's sort left them.
    modes: Vec<Mode>,
    /// Exposure range and pixel rate follow the ACTIVE mode.
    controls: Arc<Controls>,
}

impl Default for Et8ek8Pads {
    fn default() -> Self {
        Self::new()
    }
}

impl Et8ek8Pads {
    /// `enum_mbus_code` stops at this many codes.
    const MAX_FMTS: u32 = 4;

    /// `et8ek8_reglist_import` at probe: sort the table; the current mode is the first.
    pub fn new() -> Self {
        let mut lists = REGLISTS.to_vec();
        kernel_sort(&mut lists, reglist_cmp);
        let modes: Vec<Mode> = lists.into_iter().filter(|l| l.is_mode).collect();
        let controls = crate::controls::et8ek8(modes[0].max_exp);
        Self { modes, controls }
    }

    pub fn controls(&self) -> Arc<Controls> {
        self.controls.clone()
    }

    pub fn modes(&self) -> &[Mode] {
        &self.modes
    }

    /// `et8ek8_reglist_find_mode_fmt`: the mode whose size overlaps the request best, among
    /// those with the requested code if any has it.
    fn find_mode_fmt(&self, fmt: &v4l2_mbus_framefmt) -> usize {
        let mut best_match: Option<(usize, u64)> = None;
        let mut best_other: Option<(usize, u64)> = None;
        for (i, mode) in self.modes.iter().enumerate() {
            let (mw, mh) = (mode.window_width as u64, mode.window_height as u64);
            let (fw, fh) = (fmt.width as u64, fmt.height as u64);
            // The driver computes this in unsigned int; sizes up to 65535 fit either way.
            let overlap = mw.min(fw) * mh.min(fh);
            let dist = (mw * mh + fw * fh - 2 * overlap) & 0xffff_ffff;
            let slot = if fmt.code == mode.code {
                &mut best_match
            } else {
                &mut best_other
            };
            if slot.is_none_or(|(_, d)| dist < d) {
                *slot = Some((i, dist));
            }
        }
        best_match.or(best_other).map_or(0, |(i, _)| i)
    }

    /// `et8ek8_reglist_to_mbus`: size and code from a mode, the rest of `fmt` untouched.
    fn apply_mode(&self, mode: usize, fmt: &mut v4l2_mbus_framefmt) {
        let m = &self.modes[mode];
        fmt.code = m.code;
        fmt.width = m.window_width;
        fmt.height = m.window_height;
    }

    /// `et8ek8_update_controls`: the pixel rate the driver reports for a mode (the stock N900
    /// kernel's per-line average).
    pub fn pixel_rate(mode: &Mode) -> i64 {
        const S: u32 = 8;
        let per_line = ((mode.pixel_clock + (1 << S) - 1) >> S) + mode.line_width;
        let rate = mode.window_width * (per_line - 1) / mode.line_width;
        (rate as i64) << S
    }
}

impl Block for Et8ek8Pads {
    fn num_pads(&self) -> usize {
        1
    }
    /// The probe-time format and the open-time TRY format: the first mode's size and code;
    /// the driver fills nothing else (field `ANY`, colorspace `DEFAULT`).
    fn init(&self) -> PadState {
        let mode = &self.modes[0];
        let mut f = v4l2_mbus_framefmt::zeroed();
        f.code = mode.code;
        f.width = mode.window_width;
        f.height = mode.window_height;
        PadState {
            fmt: vec![f],
            crop: rect(0, 0, 0, 0),
            mode: 0,
        }
    }
    /// `et8ek8_set_pad_format`: size and code come from the nearest mode; every other field is
    /// the caller's, stored as given.
    fn try_fmt(&self, _st: &PadState, _pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        self.apply_mode(self.find_mode_fmt(fmt), fmt);
    }
    fn set_fmt(&self, st: &mut PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        st.mode = self.find_mode_fmt(fmt);
        self.apply_mode(st.mode, fmt);
        st.fmt[pad] = *fmt;
    }
    /// `et8ek8_update_controls` after an ACTIVE format or frame interval: the exposure range
    /// of the mode (default its maximum) and its pixel rate.
    fn active_set(&self, st: &PadState) {
        let mode = &self.modes[st.mode];
        let max = mode.max_exp as i64;
        self.controls.with(|c| {
            c.modify_range(V4L2_CID_EXPOSURE, 1, max, 1, max);
            c.set_value(V4L2_CID_PIXEL_RATE, Self::pixel_rate(mode));
        });
    }
    /// `et8ek8_enum_mbus_code`: distinct codes in table order, at most four.
    fn enum_mbus_code(&self, _st: &PadState, _pad: usize, index: u32) -> Result<u32, Errno> {
        if index >= Self::MAX_FMTS {
            return Err(Errno::EINVAL);
        }
        let mut codes: Vec<u32> = Vec::new();
        for mode in &self.modes {
            if !codes.contains(&mode.code) {
                codes.push(mode.code);
            }
        }
        codes.get(index as usize).copied().ok_or(Errno::EINVAL)
    }
    /// `et8ek8_enum_frame_size`: each run of equal sizes among the code's modes, once.
    fn enum_frame_size(
        &self,
        _st: &PadState,
        _pad: usize,
        index: u32,
        code: u32,
    ) -> Option<Result<[u32; 4], Errno>> {
        let mut last = None;
        let mut sizes = Vec::new();
        for mode in self.modes.iter().filter(|m| m.code == code) {
            let size = (mode.window_width, mode.window_height);
            if last != Some(size) {
                sizes.push(size);
                last = Some(size);
            }
        }
        Some(
            sizes
                .get(index as usize)
                .map(|&(w, h)| [w, w, h, h])
                .ok_or(Errno::EINVAL),
        )
    }
    /// `et8ek8_enum_frame_ival`: the intervals of the modes with this code and size.
    fn enum_frame_interval(
        &self,
        index: u32,
        code: u32,
        width: u32,
        height: u32,
    ) -> Option<Result<v4l2_fract, Errno>> {
        let found = self
            .modes
            .iter()
            .filter(|m| m.code == code && m.window_width == width && m.window_height == height)
            .nth(index as usize)
            .map(|m| v4l2_fract {
                numerator: m.ival.0,
                denominator: m.ival.1,
            });
        Some(found.ok_or(Errno::EINVAL))
    }
    fn get_frame_interval(&self, st: &PadState) -> Option<Result<v4l2_fract, Errno>> {
        let (numerator, denominator) = self.modes[st.mode].ival;
        Some(Ok(v4l2_fract {
            numerator,
            denominator,
        }))
    }
    /// `et8ek8_set_frame_interval`: the first mode of the current size (any code) whose
    /// rounded frame rate equals the request's. The format is left alone, as in the driver,
    /// even when the chosen mode has another code. A zero numerator divides by zero in the
    /// driver; here it is `EINVAL`.
    fn set_frame_interval(
        &self,
        st: &mut PadState,
        ival: v4l2_fract,
    ) -> Option<Result<v4l2_fract, Errno>> {
        let Some(fps) = avg_fps((ival.numerator, ival.denominator)) else {
            tracing::warn!(
                "et8ek8: S_FRAME_INTERVAL with numerator 0 (a division by zero in the driver)"
            );
            return Some(Err(Errno::EINVAL));
        };
        let cur = self.modes[st.mode];
        let found = self.modes.iter().position(|m| {
            m.window_width == cur.window_width
                && m.window_height == cur.window_height
                && avg_fps(m.ival) == Some(fps)
        });
        Some(match found {
            Some(i) => {
                st.mode = i;
                let (numerator, denominator) = self.modes[i].ival;
                Ok(v4l2_fract {
                    numerator,
                    denominator,
                })
            }
            None => Err(Errno::EINVAL),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(p: &Et8ek8Pads) -> Vec<(u32, u32, u32, u32)> {
        p.modes()
            .iter()
            .map(|m| (m.window_width, m.window_height, m.code, m.ival.1))
            .collect()
    }

    #[test]
    fn kernel_sort_sorts_like_a_sort() {
        // Against the standard sort on distinct keys (where stability cannot matter).
        let mut seed = 0x2545_f491_u32;
        for len in 0..40 {
            let mut v: Vec<u32> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed
                })
                .collect();
            let mut want = v.clone();
            want.sort();
            kernel_sort(&mut v, |a, b| a.cmp(b));
            assert_eq!(v, want, "length {len}");
        }
    }

    #[test]
    fn sorted_mode_table() {
        let p = Et8ek8Pads::new();
        // The heapsort puts the 3.99 fps RAW10 mode ahead of the DPCM8 one of the same size,
        // so the sensor starts in SGRBG10 2592x1968.
        assert_eq!(
            order(&p),
            vec![
                (2592, 1968, RAW10, 399),
                (2592, 1968, DPCM8, 1292),
                (1296, 984, DPCM8, 2500),
                (1296, 984, RAW10, 501),
                (1296, 984, DPCM8, 3000),
                (864, 656, RAW10, 2988),
                (648, 492, RAW10, 2993),
                (648, 492, RAW10, 499),
            ]
        );
        let st = p.init();
        assert_eq!(
            (st.fmt[0].code, st.fmt[0].width, st.fmt[0].height),
            (RAW10, 2592, 1968)
        );
        assert_eq!(st.fmt[0].field, 0, "the driver leaves field ANY");
    }

    #[test]
    fn codes_sizes_intervals() {
        let p = Et8ek8Pads::new();
        let st = p.init();
        assert_eq!(p.enum_mbus_code(&st, 0, 0), Ok(RAW10));
        assert_eq!(p.enum_mbus_code(&st, 0, 1), Ok(DPCM8));
        assert_eq!(p.enum_mbus_code(&st, 0, 2), Err(Errno::EINVAL));
        assert_eq!(p.enum_mbus_code(&st, 0, 4), Err(Errno::EINVAL));
        let sizes = |code| {
            (0..)
                .map_while(|i| p.enum_frame_size(&st, 0, i, code).unwrap().ok())
                .map(|s| (s[0], s[2]))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            sizes(RAW10),
            vec![(2592, 1968), (1296, 984), (864, 656), (648, 492)]
        );
        assert_eq!(sizes(DPCM8), vec![(2592, 1968), (1296, 984)]);
        let ivals = |w, h| {
            (0..)
                .map_while(|i| p.enum_frame_interval(i, DPCM8, w, h).unwrap().ok())
                .map(|f| (f.numerator, f.denominator))
                .collect::<Vec<_>>()
        };
        assert_eq!(ivals(1296, 984), vec![(100, 2500), (100, 3000)]);
        assert_eq!(ivals(864, 656), vec![]);
    }

    #[test]
    fn format_snaps_to_nearest_mode_and_keeps_the_rest() {
        let p = Et8ek8Pads::new();
        let mut st = p.init();
        let mut f = v4l2_mbus_framefmt::zeroed();
        f.code = DPCM8;
        f.width = 1280;
        f.height = 720;
        f.field = V4L2_FIELD_NONE;
        f.colorspace = V4L2_COLORSPACE_SRGB;
        p.set_fmt(&mut st, 0, &mut f);
        assert_eq!((f.code, f.width, f.height), (DPCM8, 1296, 984));
        assert_eq!(
            (f.field, f.colorspace),
            (V4L2_FIELD_NONE, V4L2_COLORSPACE_SRGB)
        );
        // The first 1296x984 DPCM8 mode in table order: 25 fps.
        let fi = p.get_frame_interval(&st).unwrap().unwrap();
        assert_eq!((fi.numerator, fi.denominator), (100, 2500));
        // A code no mode has: the nearest size of any code.
        f.code = MEDIA_BUS_FMT_UYVY8_1X16;
        f.width = 700;
        f.height = 500;
        p.try_fmt(&st, 0, &mut f);
        assert_eq!((f.code, f.width, f.height), (RAW10, 648, 492));
    }

    #[test]
    fn frame_interval_picks_among_modes_of_the_current_size() {
        let p = Et8ek8Pads::new();
        let mut st = p.init();
        let mut f = v4l2_mbus_framefmt::zeroed();
        f.code = DPCM8;
        f.width = 1296;
        f.height = 984;
        p.set_fmt(&mut st, 0, &mut f);
        let set = |st: &mut PadState, n, d| {
            p.set_frame_interval(
                st,
                v4l2_fract {
                    numerator: n,
                    denominator: d,
                },
            )
            .unwrap()
            .map(|f| (f.numerator, f.denominator))
        };
        assert_eq!(set(&mut st, 1, 30), Ok((100, 3000)));
        // 5 fps exists at this size only as RAW10: the mode changes, the format does not.
        assert_eq!(set(&mut st, 1, 5), Ok((100, 501)));
        assert_eq!(st.fmt[0].code, DPCM8);
        assert_eq!(set(&mut st, 1, 15), Err(Errno::EINVAL));
        assert_eq!(set(&mut st, 0, 15), Err(Errno::EINVAL));
    }

    #[test]
    fn pixel_rate_per_mode() {
        let p = Et8ek8Pads::new();
        // The 3.99 fps mode: 80 MHz / 256 = 312500 clocks per line period, plus the line length
        // 3288, less one, times 2592 / 3288 = 248941, scaled back by 256.
        assert_eq!(Et8ek8Pads::pixel_rate(&p.modes()[0]), 248_941 << 8);
    }
}
