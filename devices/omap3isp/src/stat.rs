//! The statistics engines' private ioctls (ispstat.c, isph3a_aewb.c, isph3a_af.c, isphist.c):
//! `VIDIOC_OMAP3ISP_{AEWB,AF,HIST}_CFG`, `STAT_EN` and `STAT_REQ`, with the drivers' parameter
//! checks, buffer-size correction, configuration counter, buffer allocation rule and state
//! machine. While a pipeline with the CCDC streams, each frame's CCDC video-port data fills a
//! buffer of an enabled engine ([`Stat::frame`]) and the engine signals it with its event;
//! `STAT_REQ` copies the oldest filled buffer to the client.
//!
//! Buffer layouts are plausible, not the hardware's bit packing: AEWB has per window four
//! 32-bit sums of the unsaturated subsampled Gr, R, B, Gb samples, and after every eight
//! windows a packet of eight 16-bit unsaturated-sample counts; AF has per paxel twelve 32-bit
//! words (green sum, focus value as the sum of absolute horizontal green differences, its
//! maximum, the rest zero); the histogram has per region four colour planes of 32-bit bin
//! counts of the 10-bit samples.

use std::collections::VecDeque;

use ioctl_abi::omap3isp::*;
use media_graph::vb2::UserMemory;
use nix::errno::Errno;
use parking_lot::Mutex;
use zerocopy::{FromBytes, IntoBytes};

use crate::frames::Image;

/// `STAT_MAX_BUFS`: filled buffers the engine keeps.
const MAX_BUFS: usize = 5;

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Aewb,
    Af,
    Hist,
}

impl Engine {
    /// The engine behind a sub-device name.
    pub fn of(name: &str) -> Option<Self> {
        match name {
            "OMAP3 ISP AEWB" => Some(Self::Aewb),
            "OMAP3 ISP AF" => Some(Self::Af),
            "OMAP3 ISP histogram" => Some(Self::Hist),
            _ => None,
        }
    }
}

/// `enum ispstat_state_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Disabled,
    Disabling,
    Enabled,
    Enabling,
}

const MAGIC_SIZE: u32 = 16;
const NUM_H3A_RECOVER_BUFS: u32 = 10;
const PAGE_SIZE: u32 = 4096;
const AEWB_PACKET_SIZE: u32 = 16;

// uapi limits (include/uapi/linux/omap3isp.h, checked against the header in ioctl-abi).
const AEWB_MAX_SATURATION_LIM: u16 = OMAP3ISP_AEWB_MAX_SATURATION_LIM as u16;
const AEWB_MIN_WIN_H: u16 = OMAP3ISP_AEWB_MIN_WIN_H as u16;
const AEWB_MAX_WIN_H: u16 = OMAP3ISP_AEWB_MAX_WIN_H as u16;
const AEWB_MIN_WIN_W: u16 = OMAP3ISP_AEWB_MIN_WIN_W as u16;
const AEWB_MAX_WIN_W: u16 = OMAP3ISP_AEWB_MAX_WIN_W as u16;
const AEWB_MIN_WINVC: u16 = OMAP3ISP_AEWB_MIN_WINVC as u16;
const AEWB_MAX_WINVC: u16 = OMAP3ISP_AEWB_MAX_WINVC as u16;
const AEWB_MIN_WINHC: u16 = OMAP3ISP_AEWB_MIN_WINHC as u16;
const AEWB_MAX_WINHC: u16 = OMAP3ISP_AEWB_MAX_WINHC as u16;
const AEWB_MAX_WINSTART: u16 = OMAP3ISP_AEWB_MAX_WINSTART as u16;
const AEWB_MIN_SUB_INC: u16 = OMAP3ISP_AEWB_MIN_SUB_INC as u16;
const AEWB_MAX_SUB_INC: u16 = OMAP3ISP_AEWB_MAX_SUB_INC as u16;
const AEWB_MAX_BUF_SIZE: u32 = OMAP3ISP_AEWB_MAX_BUF_SIZE;
const AF_PAXEL_SIZE: u32 = OMAP3ISP_AF_PAXEL_SIZE;
const AF_MAX_BUF_SIZE: u32 = OMAP3ISP_AF_MAX_BUF_SIZE;
const HIST_MAX_BUF_SIZE: u32 = OMAP3ISP_HIST_MAX_BUF_SIZE;
const HIST_CFA_FOVEONX3: u8 = OMAP3ISP_HIST_CFA_FOVEONX3 as u8;
const HIST_MIN_REGIONS: u8 = OMAP3ISP_HIST_MIN_REGIONS as u8;
const HIST_MAX_REGIONS: u8 = OMAP3ISP_HIST_MAX_REGIONS as u8;
const HIST_BINS_256: u16 = OMAP3ISP_HIST_BINS_256 as u16;
const HIST_BINS_128: u16 = OMAP3ISP_HIST_BINS_128 as u16;
const HIST_BINS_64: u16 = OMAP3ISP_HIST_BINS_64 as u16;
/// `ISPHIST_REG_START_END_MASK`.
const HIST_REG_MASK: u16 = 0x3fff;

fn page_align(v: u32) -> u32 {
    v.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

fn aewb_buf_size(c: &omap3isp_h3a_aewb_config) -> u32 {
    let mut windows = (c.ver_win_count as u32 + 1) * c.hor_win_count as u32;
    windows += windows.div_ceil(8);
    windows * AEWB_PACKET_SIZE
}

fn af_buf_size(c: &omap3isp_h3a_af_config) -> u32 {
    c.paxel.h_cnt as u32 * c.paxel.v_cnt as u32 * AF_PAXEL_SIZE
}

fn hist_buf_size(c: &omap3isp_hist_config) -> u32 {
    // OMAP3ISP_HIST_MEM_SIZE_BINS(n) * regions
    ((1u32 << (c.hist_bins as u32 + 5).min(31)) * 16).wrapping_mul(c.num_regions as u32)
}

/// Corrects the requested buffer size as every engine does: up to what the configuration
/// needs, down to the engine's maximum.
fn fix_buf_size(user: &mut u32, needed: u32, max: u32) {
    let v = *user;
    if needed > v {
        *user = needed;
    } else if v > max {
        *user = max;
    }
}

fn aewb_validate(c: &mut omap3isp_h3a_aewb_config) -> Result<(), Errno> {
    let even_in = |v: u16, lo: u16, hi: u16| v >= lo && v <= hi && v & 1 == 0;
    let ok = c.saturation_limit <= AEWB_MAX_SATURATION_LIM
        && even_in(c.win_height, AEWB_MIN_WIN_H, AEWB_MAX_WIN_H)
        && even_in(c.win_width, AEWB_MIN_WIN_W, AEWB_MAX_WIN_W)
        && (AEWB_MIN_WINVC..=AEWB_MAX_WINVC).contains(&c.ver_win_count)
        && (AEWB_MIN_WINHC..=AEWB_MAX_WINHC).contains(&c.hor_win_count)
        && c.ver_win_start <= AEWB_MAX_WINSTART
        && c.hor_win_start <= AEWB_MAX_WINSTART
        && c.blk_ver_win_start <= AEWB_MAX_WINSTART
        && even_in(c.blk_win_height, AEWB_MIN_WIN_H, AEWB_MAX_WIN_H)
        && even_in(c.subsample_ver_inc, AEWB_MIN_SUB_INC, AEWB_MAX_SUB_INC)
        && even_in(c.subsample_hor_inc, AEWB_MIN_SUB_INC, AEWB_MAX_SUB_INC);
    if !ok {
        return Err(Errno::EINVAL);
    }
    let needed = aewb_buf_size(c);
    fix_buf_size(&mut c.buf_size, needed, AEWB_MAX_BUF_SIZE);
    Ok(())
}

fn af_validate(c: &mut omap3isp_h3a_af_config) -> Result<(), Errno> {
    let p = c.paxel;
    let iir = c.iir;
    let within = |v: u32, lo: u32, hi: u32| (lo..=hi).contains(&v);
    let even = |v: u8| v & 1 == 0;
    let ok = within(
        p.h_cnt.into(),
        OMAP3ISP_AF_PAXEL_HORIZONTAL_COUNT_MIN,
        OMAP3ISP_AF_PAXEL_HORIZONTAL_COUNT_MAX,
    ) && within(
        p.v_cnt.into(),
        OMAP3ISP_AF_PAXEL_VERTICAL_COUNT_MIN,
        OMAP3ISP_AF_PAXEL_VERTICAL_COUNT_MAX,
    ) && within(
        p.height.into(),
        OMAP3ISP_AF_PAXEL_HEIGHT_MIN,
        OMAP3ISP_AF_PAXEL_HEIGHT_MAX,
    ) && even(p.height)
        && within(p.width.into(), OMAP3ISP_AF_PAXEL_WIDTH_MIN, OMAP3ISP_AF_PAXEL_WIDTH_MAX)
        && even(p.width)
        && within(
            p.line_inc.into(),
            OMAP3ISP_AF_PAXEL_INCREMENT_MIN,
            OMAP3ISP_AF_PAXEL_INCREMENT_MAX,
        )
        && even(p.line_inc)
        && p.h_start >= iir.h_start
        && within(
            p.h_start.into(),
            OMAP3ISP_AF_PAXEL_HZSTART_MIN,
            OMAP3ISP_AF_PAXEL_HZSTART_MAX,
        )
        && iir.coeff_set0.iter().all(|&v| u32::from(v) <= OMAP3ISP_AF_COEF_MAX)
        && iir.coeff_set1.iter().all(|&v| u32::from(v) <= OMAP3ISP_AF_COEF_MAX)
        && within(iir.h_start.into(), OMAP3ISP_AF_IIRSH_MIN, OMAP3ISP_AF_IIRSH_MAX)
        // The driver's workaround: a 12-pixel paxel corrupts the 10th window.
        && !(p.h_cnt as u32 * p.v_cnt as u32 > 9 && p.width as u32 * p.height as u32 == 12);
    if !ok {
        return Err(Errno::EINVAL);
    }
    let needed = af_buf_size(c);
    fix_buf_size(&mut c.buf_size, needed, AF_MAX_BUF_SIZE);
    Ok(())
}

fn hist_validate(c: &mut omap3isp_hist_config) -> Result<(), Errno> {
    if c.cfa > HIST_CFA_FOVEONX3 || !(HIST_MIN_REGIONS..=HIST_MAX_REGIONS).contains(&c.num_regions)
    {
        return Err(Errno::EINVAL);
    }
    for r in &c.region[..c.num_regions as usize] {
        let out = |v: u16| v & !HIST_REG_MASK != 0;
        if out(r.h_start) || out(r.h_end) || out(r.v_start) || out(r.v_end) {
            return Err(Errno::EINVAL);
        }
        if r.h_start > r.h_end || r.v_start > r.v_end {
            return Err(Errno::EINVAL);
        }
    }
    let max_bins = match c.num_regions {
        1 => HIST_BINS_256,
        2 => HIST_BINS_128,
        _ => HIST_BINS_64,
    };
    if c.hist_bins > max_bins {
        return Err(Errno::EINVAL);
    }
    let needed = hist_buf_size(c);
    fix_buf_size(&mut c.buf_size, needed, HIST_MAX_BUF_SIZE);
    Ok(())
}

/// The parameters a `set_params` compares to decide whether a configuration is new.
fn aewb_key(c: &omap3isp_h3a_aewb_config) -> Vec<u8> {
    let mut k = *c;
    k.buf_size = 0;
    k.config_counter = 0;
    k._pad0 = [0; 3];
    k.as_bytes().to_vec()
}

fn af_key(c: &omap3isp_h3a_af_config) -> Vec<u8> {
    let mut k = *c;
    k.buf_size = 0;
    k.config_counter = 0;
    k._pad0 = [0; 3];
    k.paxel._pad0 = 0;
    k.as_bytes().to_vec()
}

/// `hist_comp_params`: the fourth weight does not count for Foveon X3 data, regions beyond
/// `num_regions` never do.
fn hist_key(c: &omap3isp_hist_config) -> Vec<u8> {
    let mut k = vec![c.cfa, c.num_acc_frames, c.num_regions];
    k.extend_from_slice(&c.hist_bins.to_ne_bytes());
    let weights = if c.cfa == HIST_CFA_FOVEONX3 { 3 } else { 4 };
    k.extend_from_slice(&c.wg[..weights]);
    for r in &c.region[..(c.num_regions as usize).min(c.region.len())] {
        k.extend_from_slice(r.as_bytes());
    }
    k
}

/// The raw samples of an image with their colour filter position (0 Gr/G, 1 R, 2 B, 3 Gb).
struct Raw<'a> {
    w: u32,
    h: u32,
    code: u32,
    data: &'a [u16],
}

impl Raw<'_> {
    fn of(img: &Image) -> Option<Raw<'_>> {
        match img {
            Image::Raw {
                width,
                height,
                code,
                data,
                ..
            } => Some(Raw {
                w: *width,
                h: *height,
                code: *code,
                data,
            }),
            Image::Yuv { .. } => None,
        }
    }

    fn at(&self, x: u32, y: u32) -> Option<(usize, u16)> {
        if x >= self.w || y >= self.h {
            return None;
        }
        let v = self.data[(y * self.w + x) as usize];
        let c = match crate::frames::cfa(self.code, x, y) {
            0 => 1,
            2 => 2,
            // Green: on a red row (Gr) or a blue row (Gb).
            _ if (0..2).any(|dx| crate::frames::cfa(self.code, x ^ dx, y) == 0) => 0,
            _ => 3,
        };
        Some((c, v))
    }
}

fn aewb_data(c: &omap3isp_h3a_aewb_config, img: &Image) -> Vec<u8> {
    let mut out = Vec::with_capacity(c.buf_size as usize);
    let Some(raw) = Raw::of(img) else {
        out.resize(c.buf_size as usize, 0);
        return out;
    };
    let (hinc, vinc) = (
        c.subsample_hor_inc.max(2) as u32,
        c.subsample_ver_inc.max(2) as u32,
    );
    let window = |x0: u32, y0: u32, w: u32, h: u32| -> ([u32; 4], u16) {
        let mut sums = [0u32; 4];
        let mut unsat = 0u16;
        let mut y = y0;
        while y < y0 + h {
            let mut x = x0;
            while x < x0 + w {
                // Each step covers a 2x2 cell: all four colours.
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    if let Some((col, v)) = raw.at(x + dx, y + dy) {
                        if v <= c.saturation_limit {
                            sums[col] = sums[col].saturating_add(v.into());
                            unsat = unsat.saturating_add(1);
                        }
                    }
                }
                x += hinc;
            }
            y += vinc;
        }
        (sums, unsat)
    };
    let mut counts: Vec<u16> = Vec::new();
    let push = |out: &mut Vec<u8>, sums: [u32; 4], unsat: u16, counts: &mut Vec<u16>| {
        for v in sums {
            out.extend_from_slice(&v.to_ne_bytes());
        }
        counts.push(unsat);
        if counts.len() == 8 {
            for v in counts.drain(..) {
                out.extend_from_slice(&v.to_ne_bytes());
            }
        }
    };
    for row in 0..c.ver_win_count as u32 {
        for col in 0..c.hor_win_count as u32 {
            let x = c.hor_win_start as u32 + col * c.win_width as u32;
            let y = c.ver_win_start as u32 + row * c.win_height as u32;
            let (sums, unsat) = window(x, y, c.win_width.into(), c.win_height.into());
            push(&mut out, sums, unsat, &mut counts);
        }
    }
    // The black row: one line of windows at its own start and height.
    for col in 0..c.hor_win_count as u32 {
        let x = c.hor_win_start as u32 + col * c.win_width as u32;
        let (sums, unsat) = window(
            x,
            c.blk_ver_win_start.into(),
            c.win_width.into(),
            c.blk_win_height.into(),
        );
        push(&mut out, sums, unsat, &mut counts);
    }
    if !counts.is_empty() {
        counts.resize(8, 0);
        for v in counts {
            out.extend_from_slice(&v.to_ne_bytes());
        }
    }
    out.resize(c.buf_size as usize, 0);
    out
}

fn af_data(c: &omap3isp_h3a_af_config, img: &Image) -> Vec<u8> {
    let mut out = Vec::with_capacity(c.buf_size as usize);
    if let Some(raw) = Raw::of(img) {
        let p = c.paxel;
        for row in 0..p.v_cnt as u32 {
            for col in 0..p.h_cnt as u32 {
                let x0 = p.h_start as u32 + col * p.width as u32;
                let y0 = p.v_start as u32 + row * p.height as u32;
                let (mut sum, mut focus, mut peak) = (0u32, 0u32, 0u32);
                let mut y = y0;
                while y < y0 + p.height as u32 {
                    let mut last: Option<u16> = None;
                    for x in x0..x0 + p.width as u32 {
                        if let Some((col, v)) = raw.at(x, y) {
                            if col == 0 || col == 3 {
                                sum = sum.saturating_add(v.into());
                                if let Some(l) = last {
                                    let d = u32::from(v.abs_diff(l));
                                    focus = focus.saturating_add(d);
                                    peak = peak.max(d);
                                }
                                last = Some(v);
                            }
                        }
                    }
                    y += p.line_inc.max(2) as u32;
                }
                let mut words = [0u32; 12];
                words[0] = sum;
                words[1] = focus;
                words[2] = peak;
                for w in words {
                    out.extend_from_slice(&w.to_ne_bytes());
                }
            }
        }
    }
    out.resize(c.buf_size as usize, 0);
    out
}

fn hist_data(c: &omap3isp_hist_config, img: &Image) -> Vec<u8> {
    let bins = 1usize << (c.hist_bins as usize + 5).min(8);
    let mut out = Vec::with_capacity(c.buf_size as usize);
    if let Some(raw) = Raw::of(img) {
        let shift = 10 - bins.trailing_zeros();
        for r in &c.region[..(c.num_regions as usize).min(c.region.len())] {
            let mut counts = vec![0u32; bins * 4];
            for y in r.v_start as u32..=(r.v_end as u32).min(raw.h.saturating_sub(1)) {
                for x in r.h_start as u32..=(r.h_end as u32).min(raw.w.saturating_sub(1)) {
                    if let Some((col, v)) = raw.at(x, y) {
                        let b = ((v.min(1023) >> shift) as usize).min(bins - 1);
                        counts[col * bins + b] += 1;
                    }
                }
            }
            for v in counts {
                out.extend_from_slice(&v.to_ne_bytes());
            }
        }
    }
    out.resize(c.buf_size as usize, 0);
    out
}

/// The parameters in effect.
#[derive(Clone, Copy)]
enum Cfg {
    Aewb(omap3isp_h3a_aewb_config),
    Af(omap3isp_h3a_af_config),
    Hist(omap3isp_hist_config),
}

struct StatBuf {
    data: Vec<u8>,
    frame_number: u32,
    config_counter: u16,
    ts_ns: u64,
}

struct Inner {
    state: State,
    configured: bool,
    cfg: Option<Cfg>,
    bufs: VecDeque<StatBuf>,
    /// The frame number of the last frame the engine saw.
    frame_number: u32,
    /// The set_params comparison key of the current configuration.
    current: Option<Vec<u8>>,
    config_counter: u32,
    inc_config: u32,
    buf_alloc_size: u32,
}

/// One statistics engine's ioctl state.
pub struct Stat {
    pub engine: Engine,
    inner: Mutex<Inner>,
}

impl Stat {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            inner: Mutex::new(Inner {
                state: State::Disabled,
                configured: false,
                cfg: None,
                bufs: VecDeque::new(),
                frame_number: 0,
                current: None,
                config_counter: 0,
                inc_config: 0,
                buf_alloc_size: 0,
            }),
        }
    }

    pub fn state(&self) -> State {
        self.inner.lock().state
    }

    /// `omap3isp_stat_config`: validate (correcting `buf_size`), make sure the five buffers are
    /// big enough (growing them is EBUSY unless the engine is disabled), store the parameters
    /// and report the configuration counter that will tag their data.
    /// Returns the counter and whether the parameters were new (`set_params` took them).
    fn config(&self, user_buf_size: u32, key: Vec<u8>) -> Result<(u16, bool), Errno> {
        let mut s = self.inner.lock();
        let alloc = match self.engine {
            Engine::Aewb | Engine::Af => {
                let mut size = user_buf_size * 2 + MAGIC_SIZE;
                let recover = if self.engine == Engine::Af {
                    size += AF_PAXEL_SIZE * (NUM_H3A_RECOVER_BUFS + 2);
                    AF_PAXEL_SIZE // one paxel: the recover configuration
                } else {
                    3 * AEWB_PACKET_SIZE // one window plus the black row
                };
                page_align(size + recover * NUM_H3A_RECOVER_BUFS)
            }
            Engine::Hist => page_align(user_buf_size + MAGIC_SIZE),
        };
        if alloc > s.buf_alloc_size {
            if s.state != State::Disabled {
                return Err(Errno::EBUSY);
            }
            s.buf_alloc_size = alloc;
        }
        let new = !s.configured || s.current.as_ref() != Some(&key);
        if new {
            s.current = Some(key);
            s.inc_config += 1;
        }
        s.configured = true;
        Ok(((s.config_counter + s.inc_config) as u16, new))
    }

    /// `omap3isp_stat_enable`: a never-configured engine cannot be enabled; enabling takes
    /// effect at the next frame of a running pipeline (until then the engine is "enabling").
    pub fn enable(&self, enable: bool) -> Result<(), Errno> {
        let mut s = self.inner.lock();
        if enable && !s.configured {
            return Err(Errno::EINVAL);
        }
        s.state = match (enable, s.state) {
            (true, State::Disabling) => State::Enabled,
            (true, State::Disabled) => State::Enabling,
            (false, State::Enabling) => State::Disabled,
            (false, State::Enabled) => State::Disabling,
            (_, st) => st,
        };
        Ok(())
    }

    /// `omap3isp_stat_request_statistics`: EINVAL until the engine is enabled, EBUSY while no
    /// buffer is filled, EINVAL when the client's buffer is too small, EFAULT when it cannot be
    /// written; otherwise the oldest buffer is copied out and consumed.
    pub fn request(
        &self,
        data: &mut omap3isp_stat_data,
        memory: Option<&dyn UserMemory>,
    ) -> Result<(), Errno> {
        let mut s = self.inner.lock();
        if s.state != State::Enabled {
            return Err(Errno::EINVAL);
        }
        let buf = s.bufs.front().ok_or(Errno::EBUSY)?;
        if buf.data.len() > data.buf_size as usize {
            return Err(Errno::EINVAL);
        }
        memory
            .ok_or(Errno::EFAULT)?
            .write(data.buf, &buf.data)
            .map_err(|_| Errno::EFAULT)?;
        data.ts.tv_sec = (buf.ts_ns / 1_000_000_000) as i64;
        data.ts.tv_usec = ((buf.ts_ns % 1_000_000_000) / 1000) as i64;
        data.buf_size = buf.data.len() as u32;
        data.frame_number = buf.frame_number as u16;
        data.config_counter = buf.config_counter;
        data.cur_frame = s.frame_number as u16;
        s.bufs.pop_front();
        Ok(())
    }

    /// Whether the engine wants the next frame's data (enabled, or enabling).
    pub fn active(&self) -> bool {
        matches!(self.inner.lock().state, State::Enabled | State::Enabling)
    }

    /// A frame of CCDC video-port data (`vp`, 10-bit raw) went by: pending enable/disable
    /// requests and configurations take effect, an enabled engine fills a buffer. Returns the
    /// event to send when it did.
    pub fn frame(&self, vp: &Image, frame: u32, ts_ns: u64) -> Option<omap3isp_stat_event_status> {
        let mut s = self.inner.lock();
        s.frame_number = frame;
        s.state = match s.state {
            State::Enabling => State::Enabled,
            State::Disabling => State::Disabled,
            st => st,
        };
        s.config_counter += s.inc_config;
        s.inc_config = 0;
        if s.state != State::Enabled {
            return None;
        }
        let data = match s.cfg? {
            Cfg::Aewb(c) => aewb_data(&c, vp),
            Cfg::Af(c) => af_data(&c, vp),
            Cfg::Hist(c) => hist_data(&c, vp),
        };
        let config_counter = s.config_counter as u16;
        if s.bufs.len() >= MAX_BUFS {
            s.bufs.pop_front();
        }
        s.bufs.push_back(StatBuf {
            data,
            frame_number: frame,
            config_counter,
            ts_ns,
        });
        let mut ev = omap3isp_stat_event_status::zeroed();
        ev.frame_number = frame;
        ev.config_counter = config_counter;
        Some(ev)
    }

    /// The engine's event type.
    pub fn event_type(&self) -> u32 {
        match self.engine {
            Engine::Aewb => V4L2_EVENT_OMAP3ISP_AEWB,
            Engine::Af => V4L2_EVENT_OMAP3ISP_AF,
            Engine::Hist => V4L2_EVENT_OMAP3ISP_HIST,
        }
    }

    fn store(&self, cfg: Cfg) {
        self.inner.lock().cfg = Some(cfg);
    }

    /// The engine's private ioctls on their argument bytes (`core.ioctl`); ENOTTY for others.
    pub fn ioctl(
        &self,
        cmd: u32,
        arg: &mut [u8],
        memory: Option<&dyn UserMemory>,
    ) -> Result<i32, Errno> {
        fn with<T: FromBytes + IntoBytes + zerocopy::Immutable + zerocopy::KnownLayout>(
            arg: &mut [u8],
            f: impl FnOnce(&mut T) -> Result<(), Errno>,
        ) -> Result<i32, Errno> {
            let mut v = T::read_from_bytes(arg).map_err(|_| Errno::EFAULT)?;
            f(&mut v)?;
            arg.copy_from_slice(v.as_bytes());
            Ok(0)
        }
        match (self.engine, cmd) {
            (Engine::Aewb, VIDIOC_OMAP3ISP_AEWB_CFG) => {
                with(arg, |c: &mut omap3isp_h3a_aewb_config| {
                    aewb_validate(c)?;
                    let (counter, new) = self.config(c.buf_size, aewb_key(c))?;
                    c.config_counter = counter;
                    if new {
                        self.store(Cfg::Aewb(*c));
                    }
                    Ok(())
                })
            }
            (Engine::Af, VIDIOC_OMAP3ISP_AF_CFG) => with(arg, |c: &mut omap3isp_h3a_af_config| {
                af_validate(c)?;
                let (counter, new) = self.config(c.buf_size, af_key(c))?;
                c.config_counter = counter;
                if new {
                    self.store(Cfg::Af(*c));
                }
                Ok(())
            }),
            (Engine::Hist, VIDIOC_OMAP3ISP_HIST_CFG) => {
                with(arg, |c: &mut omap3isp_hist_config| {
                    hist_validate(c)?;
                    let (counter, new) = self.config(c.buf_size, hist_key(c))?;
                    c.config_counter = counter;
                    // hist_set_params writes num_acc_frames 0 back as 1 when it takes a
                    // new configuration (the stored copy keeps 0).
                    if new && c.num_acc_frames == 0 {
                        c.num_acc_frames = 1;
                    }
                    if new {
                        self.store(Cfg::Hist(*c));
                    }
                    Ok(())
                })
            }
            (_, VIDIOC_OMAP3ISP_STAT_REQ) => {
                with(arg, |d: &mut omap3isp_stat_data| self.request(d, memory))
            }
            (_, VIDIOC_OMAP3ISP_STAT_EN) => {
                // AEWB reads an unsigned long, AF and the histogram an int.
                let raw = u64::from_ne_bytes(arg.try_into().map_err(|_| Errno::EFAULT)?);
                let on = match self.engine {
                    Engine::Aewb => raw != 0,
                    _ => raw as u32 != 0,
                };
                self.enable(on).map(|_| 0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aewb() -> omap3isp_h3a_aewb_config {
        let mut c = omap3isp_h3a_aewb_config::zeroed();
        c.saturation_limit = 1023;
        c.win_height = 16;
        c.win_width = 16;
        c.ver_win_count = 8;
        c.hor_win_count = 8;
        c.blk_win_height = 2;
        c.subsample_ver_inc = 2;
        c.subsample_hor_inc = 2;
        c
    }

    fn cfg(s: &Stat, c: &mut omap3isp_h3a_aewb_config) -> Result<i32, Errno> {
        let mut b = c.as_bytes().to_vec();
        let r = s.ioctl(VIDIOC_OMAP3ISP_AEWB_CFG, &mut b, None);
        if r.is_ok() {
            *c = omap3isp_h3a_aewb_config::read_from_bytes(&b).unwrap();
        }
        r
    }

    #[test]
    fn aewb_config_enable_request() {
        let s = Stat::new(Engine::Aewb);
        let mut en = 1u64.to_ne_bytes();
        assert_eq!(
            s.ioctl(VIDIOC_OMAP3ISP_STAT_EN, &mut en, None),
            Err(Errno::EINVAL),
            "never configured"
        );
        let mut c = aewb();
        c.win_width = 7;
        assert_eq!(cfg(&s, &mut c), Err(Errno::EINVAL), "odd width");
        let mut c = aewb();
        c.buf_size = 10;
        assert_eq!(cfg(&s, &mut c), Ok(0));
        // (8 + 1) * 8 windows + 9 unsaturated counts, 16 bytes each.
        assert_eq!({ c.buf_size }, (72 + 9) * 16);
        assert_eq!({ c.config_counter }, 1);
        assert_eq!(cfg(&s, &mut c), Ok(0));
        assert_eq!(
            { c.config_counter },
            1,
            "the same parameters are not a new configuration"
        );
        c.buf_size = 1_000_000;
        c.win_height = 18;
        assert_eq!(cfg(&s, &mut c), Ok(0));
        assert_eq!(
            ({ c.buf_size }, { c.config_counter }),
            (AEWB_MAX_BUF_SIZE, 2)
        );
        let mut req = omap3isp_stat_data::zeroed().as_bytes().to_vec();
        assert_eq!(
            s.ioctl(VIDIOC_OMAP3ISP_STAT_REQ, &mut req, None),
            Err(Errno::EINVAL)
        );
        assert_eq!(s.ioctl(VIDIOC_OMAP3ISP_STAT_EN, &mut en, None), Ok(0));
        assert_eq!(s.state(), State::Enabling);
        assert_eq!(
            s.ioctl(VIDIOC_OMAP3ISP_STAT_REQ, &mut req, None),
            Err(Errno::EINVAL),
            "enabled only at a frame"
        );
        // Growing the buffers while enabling is EBUSY; what fits is fine.
        let s = Stat::new(Engine::Aewb);
        assert_eq!(cfg(&s, &mut aewb()), Ok(0));
        assert_eq!(s.ioctl(VIDIOC_OMAP3ISP_STAT_EN, &mut en, None), Ok(0));
        let mut big = aewb();
        big.ver_win_count = 128;
        big.hor_win_count = 36;
        assert_eq!(cfg(&s, &mut big), Err(Errno::EBUSY));
        let mut small = aewb();
        small.win_width = 8;
        assert_eq!(cfg(&s, &mut small), Ok(0));
        let mut off = 0u64.to_ne_bytes();
        assert_eq!(s.ioctl(VIDIOC_OMAP3ISP_STAT_EN, &mut off, None), Ok(0));
        assert_eq!(s.state(), State::Disabled);
        assert_eq!(cfg(&s, &mut big), Ok(0));
        // AEWB takes the whole unsigned long: a high bit alone enables it.
        let mut high = (1u64 << 32).to_ne_bytes();
        assert_eq!(s.ioctl(VIDIOC_OMAP3ISP_STAT_EN, &mut high, None), Ok(0));
        assert_eq!(s.state(), State::Enabling);
        assert_eq!(
            s.ioctl(VIDIOC_OMAP3ISP_AF_CFG, &mut [0; 76], None),
            Err(Errno::ENOTTY)
        );
    }

    #[test]
    fn af_and_histogram() {
        let af = Stat::new(Engine::Af);
        let mut c = omap3isp_h3a_af_config::zeroed();
        c.paxel.h_cnt = 4;
        c.paxel.v_cnt = 4;
        c.paxel.width = 16;
        c.paxel.height = 2;
        c.paxel.line_inc = 2;
        c.paxel.h_start = 1;
        let run = |c: &omap3isp_h3a_af_config| {
            let mut b = c.as_bytes().to_vec();
            af.ioctl(VIDIOC_OMAP3ISP_AF_CFG, &mut b, None)
                .map(|_| omap3isp_h3a_af_config::read_from_bytes(&b).unwrap())
        };
        assert_eq!({ run(&c).unwrap().buf_size }, 16 * 48);
        let mut bad = c;
        bad.iir.h_start = 2; // past the paxel start
        assert_eq!(run(&bad).err(), Some(Errno::EINVAL));
        let mut bad = c;
        bad.iir.coeff_set1[10] = 4096;
        assert_eq!(run(&bad).err(), Some(Errno::EINVAL));
        // AF reads STAT_EN as an int: a high bit alone does not enable it.
        let mut high = (1u64 << 32).to_ne_bytes();
        assert_eq!(af.ioctl(VIDIOC_OMAP3ISP_STAT_EN, &mut high, None), Ok(0));
        assert_eq!(af.state(), State::Disabled);

        let hist = Stat::new(Engine::Hist);
        let mut h = omap3isp_hist_config::zeroed();
        h.num_regions = 2;
        h.hist_bins = HIST_BINS_256;
        let run = |h: &omap3isp_hist_config| {
            let mut b = h.as_bytes().to_vec();
            hist.ioctl(VIDIOC_OMAP3ISP_HIST_CFG, &mut b, None)
                .map(|_| omap3isp_hist_config::read_from_bytes(&b).unwrap())
        };
        assert_eq!(
            run(&h).err(),
            Some(Errno::EINVAL),
            "256 bins need a single region"
        );
        h.hist_bins = HIST_BINS_128;
        h.region[1].h_start = 5;
        assert_eq!(run(&h).err(), Some(Errno::EINVAL), "start past end");
        h.region[1].h_end = 0x4000;
        assert_eq!(
            run(&h).err(),
            Some(Errno::EINVAL),
            "beyond the register field"
        );
        h.region[1].h_end = 100;
        let out = run(&h).unwrap();
        assert_eq!({ out.buf_size }, 2 * 128 * 16);
        assert_eq!((out.num_acc_frames, { out.config_counter }), (1, 1));
        let out = run(&h).unwrap();
        assert_eq!(
            (out.num_acc_frames, { out.config_counter }),
            (0, 1),
            "unchanged: not rewritten"
        );
    }
}
