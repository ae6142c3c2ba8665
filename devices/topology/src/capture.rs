//! The video node of a capture or output entity, as a vb2 driver built on the core's helpers
//! (`vb2_ioctl_*`, `vb2_fop_*`) runs it: one format and one buffer queue per device, the queue
//! owned by the file handle that allocated buffers (EBUSY for the others), priority, a single
//! input or output, and streaming: STREAMON checks the pipeline, then a frame thread writes
//! the sensor's test pattern into queued buffers at the sensor's frame rate (an output node
//! consumes its buffers at that rate).
//!
//! A node with sub-device nodes upstream is MC-centric (`V4L2_CAP_IO_MC`, as vimc's): its
//! format is its own, and STREAMON fails with EPIPE unless every link of the pipeline carries
//! matching formats. A node with none is video-centric (as uvcvideo's): S_FMT configures the
//! pipeline behind it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ioctl_abi::set_cstr;
use ioctl_abi::videodev2::*;
use media_graph::v4l2::{self as core, Priorities, QueueNotify};
use media_graph::vb2::{Budget, Buffer, DqResult, MemfdBuffer, Queue, UserMemory};
use media_graph::VideoIoctls;
use nix::errno::Errno;
use parking_lot::{Condvar, Mutex};

use crate::blocks::{fit, DEFAULT_SIZE};
use crate::device::{Hop, Runtime};
use crate::formats::{by_fourcc, Layout, PixelFormat};
use crate::Block;

/// What one queue may hold (`vb2` drivers bound it by memory; this is vimc's order).
const MAX_QUEUE_BYTES: u64 = 256 << 20;

struct State {
    fmt: v4l2_pix_format,
    queue: Queue,
    /// `vdev->queue->owner`: the handle that allocated the buffers.
    owner: Option<u64>,
    prio: Priorities,
    budgets: HashMap<u64, Arc<dyn Budget>>,
}

/// A running frame thread.
struct Streaming {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    busy: Vec<usize>,
}

pub struct VideoNode {
    rt: Arc<Runtime>,
    entity: usize,
    capture: bool,
    io_mc: bool,
    formats: Vec<&'static PixelFormat>,
    me: Weak<VideoNode>,
    state: Mutex<State>,
    stream: Mutex<Option<Streaming>>,
    /// Held through STREAMON and while streaming stops, so that a stop (STREAMOFF, the
    /// owner's close, unplug) waits for a STREAMON in progress instead of missing its thread.
    ops: Mutex<()>,
    notify: Mutex<Option<QueueNotify>>,
    /// Set at unplug: nothing streams again.
    gone: AtomicBool,
    /// Injected faults (`ctl inject`): frames still to lose, and the end of a stall.
    faults: Mutex<(u32, Option<Instant>)>,
}

/// Whether any entity that can reach `entity` through links (enabled or not) has a node.
fn has_subdev_nodes_upstream(rt: &Runtime, entity: usize) -> bool {
    let mut todo = vec![entity];
    let mut seen = vec![false; rt.topo.entities.len()];
    while let Some(e) = todo.pop() {
        for l in rt.topo.links.iter().filter(|l| l.sink.0 == e) {
            let from = l.source.0;
            if seen[from] {
                continue;
            }
            seen[from] = true;
            let fe = &rt.topo.entities[from];
            if !fe.block.is_video() && fe.node {
                return true;
            }
            todo.push(from);
        }
    }
    false
}

impl VideoNode {
    pub fn new(rt: Arc<Runtime>, entity: usize) -> Arc<Self> {
        let e = &rt.topo.entities[entity];
        let capture = e.block == Block::Capture;
        let io_mc = !capture || has_subdev_nodes_upstream(&rt, entity);
        let formats: Vec<_> = e.formats.iter().filter_map(|f| by_fourcc(*f)).collect();
        let type_ = if capture {
            V4L2_BUF_TYPE_VIDEO_CAPTURE
        } else {
            V4L2_BUF_TYPE_VIDEO_OUTPUT
        };
        let kernel_version = rt.kernel_version;
        let mut req = v4l2_pix_format::zeroed();
        req.pixelformat = formats.first().map(|p| p.fourcc).unwrap_or(0);
        (req.width, req.height) = DEFAULT_SIZE;
        Arc::new_cyclic(|me| {
            let mut n = Self {
                rt,
                entity,
                capture,
                io_mc,
                formats,
                me: me.clone(),
                state: Mutex::new(State {
                    fmt: req,
                    queue: Queue::new(type_).for_kernel(kernel_version),
                    owner: None,
                    prio: Priorities::default(),
                    budgets: HashMap::new(),
                }),
                stream: Mutex::new(None),
                ops: Mutex::new(()),
                notify: Mutex::new(None),
                gone: AtomicBool::new(false),
                faults: Mutex::new((0, None)),
            };
            let fmt = n.try_pix(&req);
            n.state.get_mut().fmt = fmt;
            n
        })
    }

    fn name(&self) -> &str {
        &self.rt.topo.entities[self.entity].name
    }

    fn buf_type(&self) -> u32 {
        if self.capture {
            V4L2_BUF_TYPE_VIDEO_CAPTURE
        } else {
            V4L2_BUF_TYPE_VIDEO_OUTPUT
        }
    }

    fn check_type(&self, t: u32) -> Result<(), Errno> {
        if t == self.buf_type() {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        }
    }

    pub fn device_caps(&self) -> u32 {
        let dir = if self.capture {
            V4L2_CAP_VIDEO_CAPTURE
        } else {
            V4L2_CAP_VIDEO_OUTPUT
        };
        let mc = if self.io_mc { V4L2_CAP_IO_MC } else { 0 };
        dir | V4L2_CAP_STREAMING | V4L2_CAP_EXT_PIX_FORMAT | mc
    }

    fn format_of(&self, fourcc: u32) -> &'static PixelFormat {
        self.formats
            .iter()
            .copied()
            .find(|p| p.fourcc == fourcc)
            .unwrap_or(self.formats[0])
    }

    /// TRY_FMT: a listed pixel format (else the first), the nearest allowed size (an even
    /// width for packed 4:2:2), progressive sRGB, no line padding.
    fn try_pix(&self, req: &v4l2_pix_format) -> v4l2_pix_format {
        let pf = self.format_of(req.pixelformat);
        let sizes = &self.rt.topo.entities[self.entity].sizes;
        let (mut w, h) = fit(sizes, req.width, req.height);
        if matches!(pf.layout, Layout::Yuyv | Layout::Uyvy) && w % 2 == 1 {
            w = if w > 16 { w - 1 } else { w + 1 };
        }
        let mut pix = v4l2_pix_format::zeroed();
        pix.width = w;
        pix.height = h;
        pix.pixelformat = pf.fourcc;
        pix.field = V4L2_FIELD_NONE;
        pix.bytesperline = w * pf.bytes_per_pixel;
        pix.sizeimage = pix.bytesperline * h;
        pix.colorspace = V4L2_COLORSPACE_SRGB;
        pix
    }

    fn prio_check(st: &State, fh: u64) -> Result<(), Errno> {
        st.prio.check(fh)
    }

    /// `vb2_queue_is_busy`.
    fn owner_check(st: &State, fh: u64) -> Result<(), Errno> {
        match st.owner {
            Some(o) if o != fh => Err(Errno::EBUSY),
            _ => Ok(()),
        }
    }

    fn notify(&self, fh: Option<u64>) {
        let n = self.notify.lock().clone();
        if let (Some(n), Some(fh)) = (n, fh) {
            n(fh);
        }
    }

    /// `queue_setup`: one plane of `size` (the format's sizeimage, or CREATE_BUFS's larger
    /// one), as many buffers as the node's memory allows.
    fn setup(size: u32, count: &mut u32) -> Result<u32, Errno> {
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        let max = (MAX_QUEUE_BYTES / u64::from(size)).max(1) as u32;
        *count = (*count).min(max);
        Ok(size)
    }

    fn take_budget(st: &mut State, fh: u64) {
        if let Some(b) = st.budgets.get(&fh).cloned() {
            st.queue.set_budget(b);
        }
    }

    /// The pipeline's frame rate: the head sensor's.
    fn fps(&self, hops: &[Hop]) -> u32 {
        let head = hops.first().map(|h| h.entity).unwrap_or(self.entity);
        self.rt.topo.entities[head].frame_rate.max(1)
    }

    fn period(&self, hops: &[Hop]) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.fps(hops)))
    }

    /// The frame interval of the pipeline behind the node now.
    fn timeperframe(&self) -> v4l2_fract {
        let hops = self.rt.upstream(self.entity).unwrap_or_default();
        v4l2_fract {
            numerator: 1,
            denominator: self.fps(&hops),
        }
    }

    /// STREAMON's pipeline checks; returns the pipeline (sensor first) and what it makes busy.
    fn start_pipeline(&self, fmt: &v4l2_pix_format) -> Result<(Vec<Hop>, Vec<usize>), Errno> {
        if self.capture {
            let hops = self.rt.upstream(self.entity)?;
            self.rt.validate(&hops)?;
            let last = hops.last().ok_or(Errno::ENOLINK)?;
            let src = self.rt.active(last.entity, last.pad).ok_or(Errno::EPIPE)?;
            let pf = self.format_of(fmt.pixelformat);
            if !pf.codes.contains(&src.code) || (src.width, src.height) != (fmt.width, fmt.height) {
                return Err(Errno::EPIPE);
            }
            let mut busy: Vec<usize> = hops.iter().map(|h| h.entity).collect();
            busy.push(self.entity);
            Ok((hops, busy))
        } else {
            // An output node feeds the sink pad its link enters.
            let dev = self.rt.dev.upgrade().ok_or(Errno::ENODEV)?;
            let remote = dev
                .graph()
                .remote_of(self.rt.ids[self.entity], 0)
                .ok_or(Errno::ENOLINK)?;
            let to = self.rt.index_of(remote.entity).ok_or(Errno::EINVAL)?;
            if let Some(sink) = self.rt.active(to, remote.index) {
                let pf = self.format_of(fmt.pixelformat);
                if !pf.codes.contains(&sink.code)
                    || (sink.width, sink.height) != (fmt.width, fmt.height)
                {
                    return Err(Errno::EPIPE);
                }
            }
            Ok((Vec::new(), vec![self.entity, to]))
        }
    }

    /// STREAMOFF's work, also at the owner's close and at unplug: the frame thread stops (and
    /// is waited for), then the pipeline is released.
    fn stop_streaming(&self) {
        let _ops = self.ops.lock();
        let s = self.stream.lock().take();
        if let Some(mut s) = s {
            *s.stop.0.lock() = true;
            s.stop.1.notify_all();
            if let Some(t) = s.thread.take() {
                if t.thread().id() != std::thread::current().id() {
                    let _ = t.join();
                }
            }
            self.rt.mark_busy(&s.busy, false);
        }
    }

    /// One frame: the oldest buffer the driver owns gets the pattern (capture) or is taken
    /// (output), and is done.
    fn frame(&self, seq: u32, hops: &[Hop]) {
        // An injected loss: the frame happens (its number is used) but reaches no buffer.
        {
            let mut f = self.faults.lock();
            if f.0 > 0 {
                f.0 -= 1;
                return;
            }
        }
        let (active, fmt, owner) = {
            let st = self.state.lock();
            (st.queue.next_active(), st.fmt, st.owner)
        };
        let Some(a) = active else {
            return;
        };
        let mut error = false;
        if self.capture {
            let pf = self.format_of(fmt.pixelformat);
            let pattern = hops.first().map(|h| self.rt.pattern(h.entity)).unwrap_or(0);
            let draw = |out: &mut [u8]| {
                crate::pattern::render(
                    pf.layout,
                    fmt.width,
                    fmt.height,
                    fmt.bytesperline,
                    pattern,
                    u64::from(seq),
                    out,
                )
            };
            match (&a.mmap, &a.memory) {
                (Some(buf), _) => buf.fill(|b| draw(b)),
                (None, Some(m)) => {
                    let mut data = vec![0u8; (fmt.sizeimage.min(a.length)) as usize];
                    draw(&mut data);
                    error = m.write(a.userptr, &data).is_err();
                }
                _ => error = true,
            }
        }
        let done = self.state.lock().queue.buffer_done(
            &a,
            error,
            core::monotonic_ns(),
            seq,
            V4L2_FIELD_NONE,
        );
        if done {
            self.notify(owner);
        }
    }

    /// The end of an injected stall still to come.
    fn stalled_until(&self) -> Option<Instant> {
        let mut f = self.faults.lock();
        match f.1 {
            Some(t) if t > Instant::now() => Some(t),
            _ => {
                f.1 = None;
                None
            }
        }
    }

    fn spawn(&self, hops: Vec<Hop>, busy: Vec<usize>) {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let period = self.period(&hops);
        let me = self.me.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("frames-{}", self.rt.ids[self.entity]))
            .spawn(move || {
                let mut next = Instant::now() + period;
                let mut seq: u32 = 0;
                loop {
                    {
                        let mut stopped = flag.0.lock();
                        while !*stopped && Instant::now() < next {
                            flag.1.wait_until(&mut stopped, next);
                        }
                        if *stopped {
                            return;
                        }
                    }
                    let Some(node) = me.upgrade() else { return };
                    // An injected stall: no frame starts until it ends.
                    let stalled = node.stalled_until();
                    drop(node);
                    if let Some(until) = stalled {
                        let mut stopped = flag.0.lock();
                        while !*stopped && Instant::now() < until {
                            flag.1.wait_until(&mut stopped, until);
                        }
                        if *stopped {
                            return;
                        }
                        next = Instant::now();
                        continue;
                    }
                    let Some(node) = me.upgrade() else { return };
                    node.frame(seq, &hops);
                    drop(node);
                    seq = seq.wrapping_add(1);
                    next += period;
                    let now = Instant::now();
                    if next < now {
                        // Slower than the sensor: the frames meanwhile are lost.
                        let behind = (now - next).as_nanos() / period.as_nanos().max(1);
                        seq = seq.wrapping_add(behind as u32);
                        next += period * behind as u32 + period;
                    }
                }
            })
            .ok();
        *self.stream.lock() = Some(Streaming { stop, thread, busy });
    }
}

/// A video-centric capture node's pipeline starts configured for its default format.
pub fn configure_default(rt: &Arc<Runtime>, entity: usize) {
    let e = &rt.topo.entities[entity];
    let Some(pf) = e.formats.first().and_then(|f| by_fourcc(*f)) else {
        return;
    };
    let upstream_nodes = has_subdev_nodes_upstream(rt, entity);
    if upstream_nodes {
        return;
    }
    if let Ok(hops) = rt.upstream(entity) {
        let (w, h) = fit(&e.sizes, DEFAULT_SIZE.0, DEFAULT_SIZE.1);
        rt.configure(&hops, pf.codes, w, h);
    }
}

impl VideoIoctls for VideoNode {
    fn querycap(&self) -> Result<v4l2_capability, Errno> {
        let mut cap = v4l2_capability::zeroed();
        set_cstr(&mut cap.driver, &self.rt.topo.device.driver);
        set_cstr(&mut cap.card, self.name());
        set_cstr(&mut cap.bus_info, &self.rt.topo.device.bus_info);
        cap.version = self.rt.kernel_version;
        cap.device_caps = self.device_caps();
        cap.capabilities = self.device_caps() | V4L2_CAP_DEVICE_CAPS;
        Ok(cap)
    }

    fn open(&self, fh: u64) {
        self.state.lock().prio.open(fh);
    }

    fn set_budget(&self, fh: u64, budget: Arc<dyn Budget>) {
        self.state.lock().budgets.insert(fh, budget);
    }

    /// `vb2_fop_release`: the owner's close stops streaming and frees the buffers.
    fn release(&self, fh: u64) {
        let owner = {
            let mut st = self.state.lock();
            st.prio.close(fh);
            st.budgets.remove(&fh);
            st.owner == Some(fh)
        };
        if owner {
            self.stop_streaming();
            let mut st = self.state.lock();
            st.queue.release();
            st.owner = None;
        }
    }

    fn enum_fmt(&self, _fh: u64, mut f: v4l2_fmtdesc) -> Result<v4l2_fmtdesc, Errno> {
        self.check_type(f.type_)?;
        // The core clears mbus_code for nodes without V4L2_CAP_IO_MC.
        if !self.io_mc {
            f.mbus_code = 0;
        }
        let listed: Vec<&PixelFormat> = self
            .formats
            .iter()
            .copied()
            .filter(|p| f.mbus_code == 0 || p.codes.contains(&f.mbus_code))
            .collect();
        let pf = listed.get(f.index as usize).ok_or(Errno::EINVAL)?;
        f.flags = 0;
        f.pixelformat = pf.fourcc;
        set_cstr(
            &mut f.description,
            media_graph::v4l2::pixfmt_description(pf.fourcc),
        );
        f.reserved = [0; 3];
        Ok(f)
    }

    fn g_fmt(&self, _fh: u64, mut f: v4l2_format) -> Result<v4l2_format, Errno> {
        self.check_type(f.type_)?;
        let pix = self.state.lock().fmt;
        f.fmt = [0; 200];
        f.set_pix(&pix);
        Ok(f)
    }

    fn try_fmt(&self, _fh: u64, mut f: v4l2_format) -> Result<v4l2_format, Errno> {
        self.check_type(f.type_)?;
        let pix = self.try_pix(&f.pix());
        f.fmt = [0; 200];
        f.set_pix(&pix);
        Ok(f)
    }

    /// EBUSY while buffers exist (`vb2_is_busy`); a video-centric node configures its
    /// pipeline.
    fn s_fmt(&self, fh: u64, mut f: v4l2_format) -> Result<v4l2_format, Errno> {
        self.check_type(f.type_)?;
        let pix = self.try_pix(&f.pix());
        {
            let mut st = self.state.lock();
            Self::prio_check(&st, fh)?;
            if st.queue.num_buffers() > 0 {
                return Err(Errno::EBUSY);
            }
            st.fmt = pix;
        }
        if self.capture && !self.io_mc {
            if let Ok(hops) = self.rt.upstream(self.entity) {
                let pf = self.format_of(pix.pixelformat);
                self.rt.configure(&hops, pf.codes, pix.width, pix.height);
            }
        }
        f.fmt = [0; 200];
        f.set_pix(&pix);
        Ok(f)
    }

    /// The capture's sizes for a listed pixel format: each listed size, or the range
    /// (continuous; in steps of 2 for packed 4:2:2, whose widths are even).
    fn enum_framesizes(
        &self,
        _fh: u64,
        mut f: v4l2_frmsizeenum,
    ) -> Result<v4l2_frmsizeenum, Errno> {
        let pf = self
            .formats
            .iter()
            .find(|p| p.fourcc == f.pixel_format)
            .ok_or(Errno::EINVAL)?;
        f.reserved = [0; 2];
        f.discrete = [0; 6];
        match &self.rt.topo.entities[self.entity].sizes {
            crate::Sizes::Discrete(list) => {
                let &(width, height) = list.get(f.index as usize).ok_or(Errno::EINVAL)?;
                f.type_ = V4L2_FRMSIZE_TYPE_DISCRETE;
                f.set_frmsize_discrete(&v4l2_frmsize_discrete { width, height });
            }
            crate::Sizes::Range { min, max } if f.index == 0 => {
                let packed = matches!(pf.layout, Layout::Yuyv | Layout::Uyvy);
                let step = if packed { 2 } else { 1 };
                let min_width = if packed {
                    min.0.next_multiple_of(2)
                } else {
                    min.0
                };
                let max_width = if packed { max.0 - max.0 % 2 } else { max.0 };
                f.type_ = if step == 1 {
                    V4L2_FRMSIZE_TYPE_CONTINUOUS
                } else {
                    V4L2_FRMSIZE_TYPE_STEPWISE
                };
                f.set_frmsize_stepwise(&v4l2_frmsize_stepwise {
                    min_width,
                    max_width,
                    step_width: step,
                    min_height: min.1,
                    max_height: max.1,
                    step_height: 1,
                });
            }
            crate::Sizes::Range { .. } => return Err(Errno::EINVAL),
        }
        Ok(f)
    }

    /// A video-centric node's frame interval: the sensor's one rate, for a size it takes
    /// (uvcvideo lists the camera's intervals; an MC-centric node has none: ENOTTY).
    fn enum_frameintervals(
        &self,
        _fh: u64,
        mut f: v4l2_frmivalenum,
    ) -> Result<v4l2_frmivalenum, Errno> {
        if self.io_mc || !self.capture {
            return Err(Errno::ENOTTY);
        }
        let known = self.formats.iter().any(|p| p.fourcc == f.pixel_format);
        let mut probe = v4l2_pix_format::zeroed();
        (probe.pixelformat, probe.width, probe.height) = (f.pixel_format, f.width, f.height);
        let fits = self.try_pix(&probe);
        if !known || f.index != 0 || (fits.width, fits.height) != (f.width, f.height) {
            return Err(Errno::EINVAL);
        }
        f.type_ = V4L2_FRMIVAL_TYPE_DISCRETE;
        f.discrete = [0; 6];
        f.reserved = [0; 2];
        f.set_frmival_discrete(&self.timeperframe());
        Ok(f)
    }

    /// G_PARM on a video-centric capture node: the sensor's frame interval.
    fn g_parm(&self, _fh: u64, mut p: v4l2_streamparm) -> Result<v4l2_streamparm, Errno> {
        if self.io_mc || !self.capture {
            return Err(Errno::ENOTTY);
        }
        self.check_type(p.type_)?;
        let mut c = v4l2_captureparm::zeroed();
        c.capability = V4L2_CAP_TIMEPERFRAME;
        c.timeperframe = self.timeperframe();
        p.parm = [0; 200];
        p.set_capture(&c);
        Ok(p)
    }

    /// S_PARM: the nearest interval the camera has, which is its only one.
    fn s_parm(&self, fh: u64, p: v4l2_streamparm) -> Result<v4l2_streamparm, Errno> {
        if self.io_mc || !self.capture {
            return Err(Errno::ENOTTY);
        }
        self.check_type(p.type_)?;
        Self::prio_check(&self.state.lock(), fh)?;
        self.g_parm(fh, p)
    }

    fn g_priority(&self, _fh: u64) -> Result<u32, Errno> {
        Ok(self.state.lock().prio.max())
    }

    fn s_priority(&self, fh: u64, prio: u32) -> Result<(), Errno> {
        self.state.lock().prio.set(fh, prio)
    }

    /// One input: the node itself for an MC-centric node (the core's answer), the sensor
    /// for a video-centric one (uvcvideo names it after the input terminal).
    fn enum_input(&self, _fh: u64, i: v4l2_input) -> Result<v4l2_input, Errno> {
        let name = if self.io_mc || !self.capture {
            self.name().to_string()
        } else {
            self.rt
                .upstream(self.entity)
                .ok()
                .and_then(|h| {
                    h.first()
                        .map(|h| self.rt.topo.entities[h.entity].name.clone())
                })
                .unwrap_or_else(|| self.name().to_string())
        };
        core::enum_single_input(self.capture, i.index, &name)
    }

    fn g_input(&self, _fh: u64) -> Result<u32, Errno> {
        core::g_single_io(self.capture)
    }

    fn s_input(&self, fh: u64, index: u32) -> Result<u32, Errno> {
        let prio = self.state.lock().prio.check(fh);
        core::s_single_io(self.capture, prio, index)
    }

    fn enum_output(&self, _fh: u64, o: v4l2_output) -> Result<v4l2_output, Errno> {
        core::enum_single_output(!self.capture, o.index, self.name())
    }

    fn g_output(&self, _fh: u64) -> Result<u32, Errno> {
        core::g_single_io(!self.capture)
    }

    fn s_output(&self, fh: u64, index: u32) -> Result<u32, Errno> {
        let prio = self.state.lock().prio.check(fh);
        core::s_single_io(!self.capture, prio, index)
    }

    fn reqbufs(&self, fh: u64, r: v4l2_requestbuffers) -> Result<v4l2_requestbuffers, Errno> {
        let streaming_owner = {
            let st = self.state.lock();
            Self::prio_check(&st, fh)?;
            Self::owner_check(&st, fh)?;
            st.queue.is_streaming() && r.count == 0
        };
        // Freeing the buffers of a streaming queue stops it first (`vb2_core_reqbufs`).
        if streaming_owner {
            self.stop_streaming();
        }
        let mut st = self.state.lock();
        Self::take_budget(&mut st, fh);
        let size = st.fmt.sizeimage;
        let r = st.queue.reqbufs(r, |count| Self::setup(size, count))?;
        st.owner = if r.count == 0 { None } else { Some(fh) };
        Ok(r)
    }

    fn create_bufs(&self, fh: u64, c: v4l2_create_buffers) -> Result<v4l2_create_buffers, Errno> {
        let mut st = self.state.lock();
        Self::prio_check(&st, fh)?;
        Self::owner_check(&st, fh)?;
        Self::take_budget(&mut st, fh);
        let (size, requested, type_ok) = (
            st.fmt.sizeimage,
            c.format.pix().sizeimage,
            c.format.type_ == self.buf_type(),
        );
        let c = st.queue.create_bufs(c, |count| {
            // `queue_setup` with a format: its size must hold the current one.
            if !type_ok || requested < size {
                return Err(Errno::EINVAL);
            }
            Self::setup(requested, count)
        })?;
        if st.queue.num_buffers() > 0 {
            st.owner = Some(fh);
        }
        Ok(c)
    }

    fn querybuf(&self, _fh: u64, b: v4l2_buffer) -> Result<v4l2_buffer, Errno> {
        self.state.lock().queue.querybuf(&b)
    }

    fn prepare_buf(
        &self,
        fh: u64,
        b: v4l2_buffer,
        memory: Option<Arc<dyn UserMemory>>,
    ) -> Result<v4l2_buffer, Errno> {
        let mut st = self.state.lock();
        Self::owner_check(&st, fh)?;
        let size = st.fmt.sizeimage;
        st.queue
            .prepare_buf(&b, memory, &move |_: &Buffer| Ok(size))
    }

    fn qbuf(
        &self,
        fh: u64,
        b: v4l2_buffer,
        memory: Option<Arc<dyn UserMemory>>,
    ) -> Result<v4l2_buffer, Errno> {
        let mut st = self.state.lock();
        Self::owner_check(&st, fh)?;
        let size = st.fmt.sizeimage;
        // (An output buffer's payload is what the client wrote; the queue keeps it.)
        st.queue
            .qbuf(&b, memory, &move |_: &Buffer| Ok(size))
            .map(|(b, _)| b)
    }

    fn dqbuf(&self, fh: u64, b: v4l2_buffer, nonblocking: bool) -> DqResult {
        let mut st = self.state.lock();
        if let Err(e) = Self::owner_check(&st, fh) {
            return DqResult {
                result: Err(e),
                would_block: false,
            };
        }
        st.queue.dqbuf(&b, nonblocking)
    }

    fn streamon(&self, fh: u64, type_: u32) -> Result<(), Errno> {
        self.check_type(type_)?;
        let _ops = self.ops.lock();
        let fmt = {
            let mut st = self.state.lock();
            Self::prio_check(&st, fh)?;
            Self::owner_check(&st, fh)?;
            if !st.queue.streamon(type_)? {
                return Ok(());
            }
            st.fmt
        };
        if self.gone.load(Ordering::SeqCst) {
            return Err(Errno::ENODEV);
        }
        // `start_streaming`: the pipeline checks; on failure the queue stays stopped.
        let (hops, busy) = self.start_pipeline(&fmt)?;
        {
            let mut st = self.state.lock();
            st.queue.start();
            st.owner = Some(fh);
        }
        self.rt.mark_busy(&busy, true);
        self.spawn(hops, busy);
        Ok(())
    }

    fn streamoff(&self, fh: u64, type_: u32) -> Result<(), Errno> {
        self.check_type(type_)?;
        {
            let st = self.state.lock();
            Self::prio_check(&st, fh)?;
            Self::owner_check(&st, fh)?;
        }
        self.stop_streaming();
        self.state.lock().queue.streamoff(type_)?;
        self.notify(Some(fh));
        Ok(())
    }

    fn poll(&self, _fh: u64) -> u32 {
        self.state.lock().queue.poll()
    }

    fn mmap_buffer(
        &self,
        _fh: u64,
        offset: u64,
        length: u64,
        vm: u32,
    ) -> Result<Arc<MemfdBuffer>, Errno> {
        self.state.lock().queue.mmap_vm(offset, length, vm)
    }

    fn set_notify(&self, notify: QueueNotify) {
        *self.notify.lock() = Some(notify);
    }

    fn stream_fault(&self, drop_frames: u32, stall: Duration) {
        let mut f = self.faults.lock();
        f.0 = f.0.saturating_add(drop_frames);
        if !stall.is_zero() {
            f.1 = Some(Instant::now() + stall);
        }
    }

    /// `vb2_video_unregister_device`: streaming stops and the queue is released now.
    fn unplugged(&self) {
        self.gone.store(true, Ordering::SeqCst);
        self.stop_streaming();
        let owner = {
            let mut st = self.state.lock();
            st.queue.release();
            st.owner.take()
        };
        self.notify(owner);
    }
}

impl Drop for VideoNode {
    fn drop(&mut self) {
        if let Some(s) = self.stream.get_mut().take() {
            *s.stop.0.lock() = true;
            s.stop.1.notify_all();
            self.rt.mark_busy(&s.busy, false);
        }
    }
}
