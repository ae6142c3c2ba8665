//! Sub-device pad state: the formats and crop rectangle of a block's pads, ACTIVE and per file
//! handle TRY ([`SubdevPads`]), the block's pad operations ([`Block`]), and the subdev core's
//! part of the pad ioctls (`which` and pad checks, the uapi structs) on top of them.

use std::collections::HashMap;
use std::sync::Arc;

use ioctl_abi::subdev::*;
use ioctl_abi::videodev2::*;
use nix::errno::Errno;
use parking_lot::Mutex;

/// Formats and crop rectangle of one block, for one `which`.
#[derive(Debug, Clone, PartialEq)]
pub struct PadState {
    pub fmt: Vec<v4l2_mbus_framefmt>,
    pub crop: v4l2_rect,
    /// A mode-table sensor's current mode (the ET8EK8's `current_reglist`); 0 elsewhere.
    pub mode: usize,
}

pub fn mbus(code: u32, width: u32, height: u32) -> v4l2_mbus_framefmt {
    let mut m = v4l2_mbus_framefmt::zeroed();
    m.code = code;
    m.width = width;
    m.height = height;
    m.field = V4L2_FIELD_NONE;
    m.colorspace = V4L2_COLORSPACE_SRGB;
    m
}

pub fn rect(left: i32, top: i32, width: u32, height: u32) -> v4l2_rect {
    v4l2_rect {
        left,
        top,
        width,
        height,
    }
}

/// One block's pad operations: what a sub-device driver's pad ops do with a [`PadState`].
pub trait Block: Send + Sync {
    fn num_pads(&self) -> usize;
    /// `init_formats`: the state a new file handle (TRY) and probe (ACTIVE) start from.
    fn init(&self) -> PadState;
    /// The block's try function for `pad`, given the current state.
    fn try_fmt(&self, st: &PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt);
    /// Stores a tried format and propagates it (sink: reset crop, re-derive sources).
    fn set_fmt(&self, st: &mut PadState, pad: usize, fmt: &mut v4l2_mbus_framefmt) {
        self.try_fmt(st, pad, fmt);
        st.fmt[pad] = *fmt;
    }
    fn enum_mbus_code(&self, st: &PadState, pad: usize, index: u32) -> Result<u32, Errno>;
    fn get_selection(&self, _st: &PadState, _pad: usize, _target: u32) -> Result<v4l2_rect, Errno> {
        Err(Errno::EINVAL)
    }
    fn set_selection(
        &self,
        _st: &mut PadState,
        _pad: usize,
        _target: u32,
        _flags: u32,
        _r: v4l2_rect,
    ) -> Result<v4l2_rect, Errno> {
        Err(Errno::EINVAL)
    }
    fn has_selection(&self) -> bool {
        false
    }
    /// A driver-specific `enum_frame_size` (min and max width, min and max height); None uses
    /// the ISP blocks' rule (the try function at 1x1 and at the largest size).
    fn enum_frame_size(
        &self,
        _st: &PadState,
        _pad: usize,
        _index: u32,
        _code: u32,
    ) -> Option<Result<[u32; 4], Errno>> {
        None
    }
    /// Called after a format or frame interval was set on the ACTIVE state (drivers that
    /// derive control values from the mode update them here).
    fn active_set(&self, _st: &PadState) {}
    /// `enum_frame_interval` for a code and size; None: the block has no frame interval
    /// operations (`ENOTTY`, as on every ISP block and the MT9P031).
    fn enum_frame_interval(
        &self,
        _index: u32,
        _code: u32,
        _width: u32,
        _height: u32,
    ) -> Option<Result<v4l2_fract, Errno>> {
        None
    }
    /// `get_frame_interval` on the ACTIVE state.
    fn get_frame_interval(&self, _st: &PadState) -> Option<Result<v4l2_fract, Errno>> {
        None
    }
    /// `set_frame_interval` on the ACTIVE state; returns the interval now in effect.
    fn set_frame_interval(
        &self,
        _st: &mut PadState,
        _ival: v4l2_fract,
    ) -> Option<Result<v4l2_fract, Errno>> {
        None
    }
}

/// A block's ACTIVE state and every open file handle's TRY state.
pub struct SubdevPads {
    block: Box<dyn Block>,
    active: Mutex<PadState>,
    try_state: Mutex<HashMap<u64, PadState>>,
}

impl SubdevPads {
    pub fn new(block: Box<dyn Block>) -> Arc<Self> {
        let active = block.init();
        Arc::new(Self {
            block,
            active: Mutex::new(active),
            try_state: Mutex::new(HashMap::new()),
        })
    }

    pub fn block(&self) -> &dyn Block {
        &*self.block
    }

    /// The subdev `open` internal op: a new TRY state from `init_formats`.
    pub fn open(&self, fh: u64) {
        self.try_state.lock().insert(fh, self.block.init());
    }

    pub fn release(&self, fh: u64) {
        self.try_state.lock().remove(&fh);
    }

    /// Runs `f` on the state `which` selects (the core has checked `which` and the pad).
    pub fn with<R>(
        &self,
        fh: u64,
        which: u32,
        f: impl FnOnce(&dyn Block, &mut PadState) -> R,
    ) -> Result<R, Errno> {
        self.run(fh, which, false, f)
    }

    /// Like [`Self::with`] for a set operation: the block hears of ACTIVE changes.
    pub fn with_set<R>(
        &self,
        fh: u64,
        which: u32,
        f: impl FnOnce(&dyn Block, &mut PadState) -> R,
    ) -> Result<R, Errno> {
        self.run(fh, which, true, f)
    }

    fn run<R>(
        &self,
        fh: u64,
        which: u32,
        set: bool,
        f: impl FnOnce(&dyn Block, &mut PadState) -> R,
    ) -> Result<R, Errno> {
        if which == V4L2_SUBDEV_FORMAT_ACTIVE {
            let mut st = self.active.lock();
            let r = f(&*self.block, &mut st);
            if set {
                self.block.active_set(&st);
            }
            return Ok(r);
        }
        let mut t = self.try_state.lock();
        let st = t.entry(fh).or_insert_with(|| self.block.init());
        Ok(f(&*self.block, st))
    }

    /// A copy of the ACTIVE state (what the hardware is programmed with).
    pub fn active_state(&self) -> PadState {
        self.active.lock().clone()
    }

    /// The ACTIVE format of a pad (for link validation and the video nodes).
    pub fn active_format(&self, pad: usize) -> Option<v4l2_mbus_framefmt> {
        self.active.lock().fmt.get(pad).copied()
    }
}

/// The pad ioctls as the subdev core runs them (`check_which`, `check_pad`, reserved fields
/// cleared) on a block's [`SubdevPads`].
impl SubdevPads {
    /// The subdev core's `check_which` and `check_pad`.
    pub fn check(&self, which: u32, pad: u32) -> Result<(), Errno> {
        if which != V4L2_SUBDEV_FORMAT_TRY && which != V4L2_SUBDEV_FORMAT_ACTIVE {
            return Err(Errno::EINVAL);
        }
        if pad as usize >= self.block.num_pads() {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    pub fn enum_mbus_code(
        &self,
        fh: u64,
        mut c: v4l2_subdev_mbus_code_enum,
    ) -> Result<v4l2_subdev_mbus_code_enum, Errno> {
        self.check(c.which, c.pad)?;
        c.reserved = [0; 7];
        c.code = self.with(fh, c.which, |b, st| {
            b.enum_mbus_code(st, c.pad as usize, c.index)
        })??;
        Ok(c)
    }

    pub fn enum_frame_size(
        &self,
        fh: u64,
        mut f: v4l2_subdev_frame_size_enum,
    ) -> Result<v4l2_subdev_frame_size_enum, Errno> {
        self.check(f.which, f.pad)?;
        f.reserved = [0; 8];
        let sizes = self.with(fh, f.which, |b, st| {
            if let Some(r) = b.enum_frame_size(st, f.pad as usize, f.index, f.code) {
                return r;
            }
            // The ISP blocks' rule: index 0 only; the try function at 1x1 and at the largest
            // request; EINVAL if it changes the code.
            if f.index != 0 {
                return Err(Errno::EINVAL);
            }
            let probe = |w: u32, h: u32| {
                let mut m = v4l2_mbus_framefmt::zeroed();
                m.code = f.code;
                m.width = w;
                m.height = h;
                b.try_fmt(st, f.pad as usize, &mut m);
                m
            };
            let (min, max) = (probe(1, 1), probe(u32::MAX, u32::MAX));
            if min.code != f.code {
                return Err(Errno::EINVAL);
            }
            Ok([min.width, max.width, min.height, max.height])
        })??;
        [f.min_width, f.max_width, f.min_height, f.max_height] = sizes;
        Ok(f)
    }

    pub fn enum_frame_interval(
        &self,
        fh: u64,
        mut f: v4l2_subdev_frame_interval_enum,
    ) -> Result<v4l2_subdev_frame_interval_enum, Errno> {
        self.check(f.which, f.pad)?;
        f.reserved = [0; 8];
        f.interval = self
            .with(fh, f.which, |b, _| {
                b.enum_frame_interval(f.index, f.code, f.width, f.height)
            })?
            .ok_or(Errno::ENOTTY)??;
        Ok(f)
    }

    /// The core forces `which` to ACTIVE for clients without
    /// `V4L2_SUBDEV_CLIENT_CAP_INTERVAL_USES_WHICH` (mcemu offers no client caps), and drivers
    /// such as the ET8EK8 clear the whole structure before filling in the interval.
    pub fn get_frame_interval(
        &self,
        fh: u64,
        f: v4l2_subdev_frame_interval,
    ) -> Result<v4l2_subdev_frame_interval, Errno> {
        self.check(V4L2_SUBDEV_FORMAT_ACTIVE, f.pad)?;
        let interval = self
            .with(fh, V4L2_SUBDEV_FORMAT_ACTIVE, |b, st| {
                b.get_frame_interval(st)
            })?
            .ok_or(Errno::ENOTTY)??;
        let mut out = v4l2_subdev_frame_interval::zeroed();
        out.interval = interval;
        Ok(out)
    }

    pub fn set_frame_interval(
        &self,
        fh: u64,
        mut f: v4l2_subdev_frame_interval,
    ) -> Result<v4l2_subdev_frame_interval, Errno> {
        self.check(V4L2_SUBDEV_FORMAT_ACTIVE, f.pad)?;
        f.interval = self
            .with_set(fh, V4L2_SUBDEV_FORMAT_ACTIVE, |b, st| {
                b.set_frame_interval(st, f.interval)
            })?
            .ok_or(Errno::ENOTTY)??;
        Ok(f)
    }

    pub fn get_fmt(&self, fh: u64, mut f: v4l2_subdev_format) -> Result<v4l2_subdev_format, Errno> {
        self.check(f.which, f.pad)?;
        f.reserved = [0; 8];
        f.format = self.with(fh, f.which, |_, st| st.fmt[f.pad as usize])?;
        Ok(f)
    }

    pub fn set_fmt(&self, fh: u64, mut f: v4l2_subdev_format) -> Result<v4l2_subdev_format, Errno> {
        self.check(f.which, f.pad)?;
        f.reserved = [0; 8];
        f.format.reserved = [0; 10];
        let mut m = f.format;
        self.with_set(fh, f.which, |b, st| b.set_fmt(st, f.pad as usize, &mut m))?;
        f.format = m;
        Ok(f)
    }

    /// ENOTTY for a block without selections.
    pub fn get_selection(
        &self,
        fh: u64,
        mut s: v4l2_subdev_selection,
    ) -> Result<v4l2_subdev_selection, Errno> {
        if !self.block.has_selection() {
            return Err(Errno::ENOTTY);
        }
        self.check(s.which, s.pad)?;
        s.reserved = [0; 8];
        s.r = self.with(fh, s.which, |b, st| {
            b.get_selection(st, s.pad as usize, s.target)
        })??;
        Ok(s)
    }

    pub fn set_selection(
        &self,
        fh: u64,
        mut s: v4l2_subdev_selection,
    ) -> Result<v4l2_subdev_selection, Errno> {
        if !self.block.has_selection() {
            return Err(Errno::ENOTTY);
        }
        self.check(s.which, s.pad)?;
        s.reserved = [0; 8];
        s.r = self.with(fh, s.which, |b, st| {
            b.set_selection(st, s.pad as usize, s.target, s.flags, s.r)
        })??;
        Ok(s)
    }
}
