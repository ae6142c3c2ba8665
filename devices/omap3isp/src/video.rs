//! The ISP's video nodes (ispvideo.c, with the Linux 7.0 compliance fixes, omap3isp.md §3, §8):
//! QUERYCAP, formats per file handle, priority, the single input or output, the output nodes'
//! frame interval, and streaming: a videobuf2 queue per file handle, STREAMON with the driver's
//! checks in its order, and the pipeline's frames delivered into the streaming handle's buffers.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use ioctl_abi::set_cstr;
use ioctl_abi::subdev::v4l2_mbus_framefmt;
use ioctl_abi::videodev2::*;
use media_graph::v4l2::{self as core, Priorities, QueueNotify};
use media_graph::vb2::{ActiveBuffer, Buffer, DqResult, Queue, UserMemory};
use media_graph::{MediaDevice, VideoIoctls};
use nix::errno::Errno;
use parking_lot::Mutex;

use crate::pads::{format_info, FORMATS};
use crate::pipeline::{Pipeline, Runtime};

/// The instance's ISP state, shared by its nodes (pads, controls, pipelines).
pub type PadsRegistry = Arc<Runtime>;

/// `ISP_VIDEO_DRIVER_NAME`.
pub const VIDEO_DRIVER: &str = "ispvideo";

const CAP_TIMEPERFRAME: u32 = 0x1000;

/// Per-node bytesperline rules (omap3isp.md §3.3).
#[derive(Debug, Clone, Copy)]
pub struct BplRules {
    pub alignment: u32,
    pub zero_padding: bool,
    /// 0: the user's bytesperline is ignored.
    pub max: u32,
}

impl BplRules {
    /// The rules of the node called `name`.
    pub fn for_node(name: &str) -> Self {
        let (alignment, zero_padding, max) = match name {
            "OMAP3 ISP CCP2 input" => (32, false, 0xFFFF_FFE0),
            "OMAP3 ISP CSI2a output" => (32, true, 0x1FFE0),
            "OMAP3 ISP preview input" => (64, false, 0),
            _ => (32, false, 0),
        };
        Self {
            alignment,
            zero_padding,
            max,
        }
    }
}

struct Handle {
    fmt: v4l2_pix_format,
    timeperframe: v4l2_fract,
    queue: Queue,
}

/// The handle whose queue streams (`video->queue`), and its pipeline.
struct Stream {
    fh: u64,
    pipe: Arc<Pipeline>,
    fmt: v4l2_pix_format,
}

pub struct IspVideo {
    pub name: String,
    pub capture: bool,
    pub kernel_version: u32,
    pub entity: u32,
    pub dev: Weak<MediaDevice>,
    pub pads: PadsRegistry,
    pub bpl: BplRules,
    /// `capture_mem`: bounds the buffer count (omap3isp.md §3.3).
    capture_mem: u32,
    handles: Mutex<HashMap<u64, Handle>>,
    prio: Mutex<Priorities>,
    stream: Mutex<Option<Stream>>,
    notify: Mutex<Option<QueueNotify>>,
    /// Set at unplug: the hardware is gone, nothing starts again.
    gone: std::sync::atomic::AtomicBool,
    /// Injected pipeline faults: frames still to lose, and the end of a stall.
    faults: Mutex<(u32, Option<std::time::Instant>)>,
}

const PAGE_SIZE: u32 = 4096;

fn v4l2_type(capture: bool) -> u32 {
    if capture {
        V4L2_BUF_TYPE_VIDEO_CAPTURE
    } else {
        V4L2_BUF_TYPE_VIDEO_OUTPUT
    }
}

impl IspVideo {
    pub fn new(
        name: String,
        capture: bool,
        kernel_version: u32,
        entity: u32,
        dev: Weak<MediaDevice>,
        pads: PadsRegistry,
    ) -> Arc<Self> {
        let bpl = BplRules::for_node(&name);
        let capture_mem = if name.contains("preview") || name.contains("resizer") {
            96 << 20
        } else {
            48 << 20
        };
        let rt = pads.clone();
        let v = Arc::new(Self {
            name,
            capture,
            kernel_version,
            entity,
            dev,
            pads,
            bpl,
            capture_mem,
            handles: Mutex::new(HashMap::new()),
            prio: Mutex::new(Priorities::default()),
            stream: Mutex::new(None),
            notify: Mutex::new(None),
            gone: Default::default(),
            faults: Mutex::new((0, None)),
        });
        rt.add_video(entity, Arc::downgrade(&v));
        v
    }

    /// Whether an injected stall holds the pipeline until some instant.
    pub(crate) fn stalled_until(&self) -> Option<std::time::Instant> {
        let mut f = self.faults.lock();
        match f.1 {
            Some(t) if t > std::time::Instant::now() => Some(t),
            _ => {
                f.1 = None;
                None
            }
        }
    }

    /// Takes one injected frame loss, if any is left.
    pub(crate) fn take_drop(&self) -> bool {
        let mut f = self.faults.lock();
        if f.0 > 0 {
            f.0 -= 1;
            true
        } else {
            false
        }
    }

    fn notify(&self, fh: u64) {
        let n = self.notify.lock().clone();
        if let Some(n) = n {
            n(fh);
        }
    }

    /// The streaming handle's oldest queued buffer, with the format to write it in.
    pub(crate) fn next_buffer(&self) -> Option<(u64, ActiveBuffer, v4l2_pix_format)> {
        let (fh, fmt) = {
            let s = self.stream.lock();
            let s = s.as_ref()?;
            (s.fh, s.fmt)
        };
        let h = self.handles.lock();
        let a = h.get(&fh)?.queue.next_active()?;
        Some((fh, a, fmt))
    }

    /// `omap3isp_video_buffer_next`: the buffer is done (or failed), the handle is woken.
    pub(crate) fn complete(
        &self,
        fh: u64,
        a: &ActiveBuffer,
        error: bool,
        timestamp_ns: u64,
        sequence: u32,
        field: u32,
    ) {
        let done = {
            let mut h = self.handles.lock();
            h.get_mut(&fh)
                .is_some_and(|h| h.queue.buffer_done(a, error, timestamp_ns, sequence, field))
        };
        if done {
            self.notify(fh);
        }
    }

    /// `isp_video_check_format`: the handle's format must be what the connected pad gives.
    fn check_format(&self, fmt: &v4l2_pix_format) -> Result<(), Errno> {
        let m = self.remote_format()?;
        let want = self.mbus_to_pix(&m, fmt.bytesperline);
        let same = want.pixelformat == fmt.pixelformat
            && want.width == fmt.width
            && want.height == fmt.height
            && want.bytesperline == fmt.bytesperline
            && want.sizeimage == fmt.sizeimage
            && want.field == fmt.field;
        if same {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// `queue_setup`: one plane of the handle's sizeimage, as many buffers as capture_mem holds.
    fn setup(&self, size: u32, count: &mut u32) -> Result<u32, Errno> {
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        let page_aligned = size.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
        *count = (*count).min(self.capture_mem / page_aligned.max(1));
        Ok(size)
    }

    /// STREAMOFF's work, also run at close and at unplug: the pipeline stops (its frame thread
    /// is waited for) before the queue is cancelled.
    fn stop_streaming(&self, fh: u64) -> bool {
        let s = {
            let mut st = self.stream.lock();
            if st.as_ref().is_some_and(|s| s.fh == fh) {
                st.take()
            } else {
                None
            }
        };
        let Some(s) = s else { return false };
        self.pads.pipeline_stop(&s.pipe);
        true
    }

    /// `vdev->device_caps` (Linux 7.0: with V4L2_CAP_IO_MC).
    pub fn device_caps(&self) -> u32 {
        let dir = if self.capture {
            V4L2_CAP_VIDEO_CAPTURE
        } else {
            V4L2_CAP_VIDEO_OUTPUT
        };
        dir | V4L2_CAP_STREAMING | V4L2_CAP_IO_MC | V4L2_CAP_EXT_PIX_FORMAT
    }

    fn check_type(&self, t: u32) -> Result<(), Errno> {
        if t == v4l2_type(self.capture) {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// `isp_video_mbus_to_pix`: pixel format, bytesperline (the request within the node's rules)
    /// and sizeimage for a bus format.
    pub fn mbus_to_pix(&self, m: &v4l2_mbus_framefmt, requested_bpl: u32) -> v4l2_pix_format {
        let mut pix = v4l2_pix_format::zeroed();
        pix.width = m.width;
        pix.height = m.height;
        // Linux 7.0: an unknown code maps to the last real entry.
        let info = format_info(m.code).unwrap_or(&FORMATS[FORMATS.len() - 1]);
        pix.pixelformat = info.pixelformat;
        let min_bpl = m.width.saturating_mul(info.bpp);
        let mut bpl = if self.bpl.max != 0 {
            requested_bpl.clamp(min_bpl, self.bpl.max.max(min_bpl))
        } else {
            min_bpl
        };
        if !(self.bpl.zero_padding && bpl == min_bpl) {
            bpl = bpl
                .div_ceil(self.bpl.alignment)
                .saturating_mul(self.bpl.alignment);
        }
        pix.bytesperline = bpl;
        pix.sizeimage = bpl.saturating_mul(m.height);
        pix.field = m.field;
        pix.colorspace = m.colorspace;
        pix
    }

    /// The reverse lookup: the first table entry with this pixel format (Linux 7.0: unknown
    /// formats map to the last real entry).
    fn pix_to_mbus(&self, pix: &v4l2_pix_format) -> v4l2_mbus_framefmt {
        let info = FORMATS
            .iter()
            .find(|f| f.pixelformat == pix.pixelformat)
            .unwrap_or(&FORMATS[FORMATS.len() - 1]);
        let mut m = v4l2_mbus_framefmt::zeroed();
        m.code = info.code;
        m.width = pix.width;
        m.height = pix.height;
        m.field = pix.field;
        m.colorspace = pix.colorspace;
        m
    }

    /// The ACTIVE format of the sub-device pad this node is linked to.
    fn remote_format(&self) -> Result<v4l2_mbus_framefmt, Errno> {
        let dev = self.dev.upgrade().ok_or(Errno::ENODEV)?;
        let remote = dev.graph().remote_of(self.entity, 0).ok_or(Errno::EINVAL)?;
        let pads = self
            .pads
            .pads
            .lock()
            .get(&remote.entity)
            .cloned()
            .ok_or(Errno::ENOTTY)?;
        pads.active_format(remote.index as usize)
            .ok_or(Errno::EINVAL)
    }

    /// Field fix-ups of S_FMT/TRY_FMT.
    fn fix_field(&self, field: u32) -> u32 {
        match field {
            V4L2_FIELD_NONE => V4L2_FIELD_NONE,
            V4L2_FIELD_ALTERNATE if self.capture => V4L2_FIELD_ALTERNATE,
            V4L2_FIELD_INTERLACED => V4L2_FIELD_INTERLACED_TB,
            V4L2_FIELD_INTERLACED_TB | V4L2_FIELD_INTERLACED_BT
                if self.name == "OMAP3 ISP CCDC output" =>
            {
                field
            }
            _ => V4L2_FIELD_NONE,
        }
    }

    fn try_pix(&self, req: &v4l2_pix_format) -> Result<v4l2_pix_format, Errno> {
        if self.capture {
            // Capture nodes take the connected source pad's format; only bytesperline is theirs.
            let m = self.remote_format()?;
            return Ok(self.mbus_to_pix(&m, req.bytesperline));
        }
        // Output nodes normalise without looking at the sub-device.
        let mut r = *req;
        r.field = self.fix_field(r.field);
        // Colorspaces run from SMPTE170M (1) to DCI_P3 (12); anything else is sRGB.
        if !(1..=12).contains(&r.colorspace) {
            r.colorspace = V4L2_COLORSPACE_SRGB;
        }
        let m = self.pix_to_mbus(&r);
        Ok(self.mbus_to_pix(&m, r.bytesperline))
    }

    fn prio_check(&self, fh: u64) -> Result<(), Errno> {
        self.prio.lock().check(fh)
    }

    /// `isp_video_buffer_prepare`: the payload is the handle's sizeimage.
    fn prepare_fn(sizeimage: u32) -> impl Fn(&Buffer) -> Result<u32, Errno> {
        move |_b: &Buffer| Ok(sizeimage)
    }

    fn with_handle<R>(
        &self,
        fh: u64,
        f: impl FnOnce(&mut Handle) -> Result<R, Errno>,
    ) -> Result<R, Errno> {
        let mut h = self.handles.lock();
        f(h.get_mut(&fh).ok_or(Errno::EBADF)?)
    }

    fn initial_format(&self) -> v4l2_pix_format {
        // Linux 7.0: 720x480 UYVY, progressive, sRGB.
        let mut m = v4l2_mbus_framefmt::zeroed();
        m.code = ioctl_abi::subdev::MEDIA_BUS_FMT_UYVY8_1X16;
        m.width = 720;
        m.height = 480;
        m.field = V4L2_FIELD_NONE;
        m.colorspace = V4L2_COLORSPACE_SRGB;
        self.mbus_to_pix(&m, 0)
    }
}

impl VideoIoctls for IspVideo {
    fn querycap(&self) -> Result<v4l2_capability, Errno> {
        let mut cap = v4l2_capability::zeroed();
        set_cstr(&mut cap.driver, VIDEO_DRIVER);
        set_cstr(&mut cap.card, &self.name);
        // Linux 7.0 leaves bus_info to the core: "platform:" + the ISP's device name.
        set_cstr(&mut cap.bus_info, crate::BUS_INFO);
        cap.version = self.kernel_version;
        cap.device_caps = self.device_caps();
        // The driver reports both directions in `capabilities`.
        cap.capabilities = V4L2_CAP_VIDEO_CAPTURE
            | V4L2_CAP_VIDEO_OUTPUT
            | V4L2_CAP_STREAMING
            | V4L2_CAP_IO_MC
            | V4L2_CAP_EXT_PIX_FORMAT
            | V4L2_CAP_DEVICE_CAPS;
        Ok(cap)
    }

    fn open(&self, fh: u64) {
        let h = Handle {
            fmt: self.initial_format(),
            timeperframe: v4l2_fract {
                numerator: 1,
                denominator: 1,
            },
            queue: Queue::new(v4l2_type(self.capture)).for_kernel(self.kernel_version),
        };
        self.handles.lock().insert(fh, h);
        self.prio.lock().open(fh);
    }

    fn set_budget(&self, fh: u64, budget: Arc<dyn media_graph::vb2::Budget>) {
        if let Some(h) = self.handles.lock().get_mut(&fh) {
            h.queue.set_budget(budget);
        }
    }

    /// `isp_video_release`: an implicit STREAMOFF, then the queue goes.
    fn release(&self, fh: u64) {
        self.stop_streaming(fh);
        if let Some(mut h) = self.handles.lock().remove(&fh) {
            h.queue.release();
        }
        self.prio.lock().close(fh);
    }

    fn reqbufs(&self, fh: u64, r: v4l2_requestbuffers) -> Result<v4l2_requestbuffers, Errno> {
        self.with_handle(fh, |h| {
            let size = h.fmt.sizeimage;
            h.queue.reqbufs(r, |count| self.setup(size, count))
        })
    }

    /// Linux 7.0: CREATE_BUFS, with the format's sizeimage at least the handle's.
    fn create_bufs(&self, fh: u64, c: v4l2_create_buffers) -> Result<v4l2_create_buffers, Errno> {
        let requested = c.format.pix().sizeimage;
        self.with_handle(fh, |h| {
            let size = h.fmt.sizeimage;
            h.queue.create_bufs(c, |count| {
                if requested == 0 || c.format.type_ != v4l2_type(self.capture) {
                    return Err(Errno::EINVAL);
                }
                if requested < size {
                    return Err(Errno::EINVAL);
                }
                self.setup(requested, count)
            })
        })
    }

    fn querybuf(&self, fh: u64, b: v4l2_buffer) -> Result<v4l2_buffer, Errno> {
        self.with_handle(fh, |h| h.queue.querybuf(&b))
    }

    fn prepare_buf(
        &self,
        fh: u64,
        b: v4l2_buffer,
        memory: Option<Arc<dyn UserMemory>>,
    ) -> Result<v4l2_buffer, Errno> {
        self.with_handle(fh, |h| {
            let prep = Self::prepare_fn(h.fmt.sizeimage);
            h.queue.prepare_buf(&b, memory, &prep)
        })
    }

    fn qbuf(
        &self,
        fh: u64,
        b: v4l2_buffer,
        memory: Option<Arc<dyn UserMemory>>,
    ) -> Result<v4l2_buffer, Errno> {
        let (b, to_driver) = self.with_handle(fh, |h| {
            let prep = Self::prepare_fn(h.fmt.sizeimage);
            h.queue.qbuf(&b, memory, &prep)
        })?;
        // `isp_video_buffer_queue`: a memory-to-memory pipeline may be able to run a frame.
        if to_driver {
            let pipe = self.stream.lock().as_ref().map(|s| s.pipe.clone());
            if let Some(p) = pipe.filter(|p| p.input.lock().is_some()) {
                self.pads.kick(&p);
            }
        }
        Ok(b)
    }

    fn dqbuf(&self, fh: u64, b: v4l2_buffer, nonblocking: bool) -> DqResult {
        match self.handles.lock().get_mut(&fh) {
            Some(h) => h.queue.dqbuf(&b, nonblocking),
            None => DqResult {
                result: Err(Errno::EBADF),
                would_block: false,
            },
        }
    }

    /// `isp_video_streamon`, in the driver's order (omap3isp.md §3.5).
    fn streamon(&self, fh: u64, type_: u32) -> Result<(), Errno> {
        self.check_type(type_)?;
        {
            let st = self.stream.lock();
            match st.as_ref() {
                Some(s) if s.fh == fh => return Ok(()),
                // The driver would let a second handle take over the node's queue pointer;
                // here the node streams for one handle at a time.
                Some(_) => return Err(Errno::EBUSY),
                None => {}
            }
        }
        let dev = self.dev.upgrade().ok_or(Errno::ENODEV)?;
        let graph = dev.graph();
        let pipe = self.pads.pipeline_start(&graph, self.entity)?;
        let started = (|| {
            let fmt = self.with_handle(fh, |h| Ok(h.fmt))?;
            self.check_format(&fmt)?;
            self.pads
                .graph_data(&graph, &pipe, self.entity, self.capture)?;
            self.pads.check_external(&graph, &pipe)?;
            self.with_handle(fh, |h| {
                h.queue.streamon(type_)?;
                h.queue.start();
                Ok(())
            })?;
            *self.stream.lock() = Some(Stream {
                fh,
                pipe: pipe.clone(),
                fmt,
            });
            Ok(())
        })();
        drop(graph);
        if let Err(e) = started {
            self.pads.pipeline_stop(&pipe);
            return Err(e);
        }
        // Sensor pipelines start at the capture node's STREAMON; memory-to-memory ones are
        // armed by either node and run a frame when both are ready.
        let m2m = pipe.input.lock().is_some();
        if self.capture || m2m {
            if let Err(e) = self.pads.start_stream(&pipe, self.dev.clone()) {
                self.stop_streaming(fh);
                let _ = self.with_handle(fh, |h| h.queue.streamoff(type_));
                return Err(e);
            }
        }
        // An unplug that overtook this call has torn the hardware down: the stream it started
        // produces nothing.
        if self.gone.load(std::sync::atomic::Ordering::SeqCst) {
            self.stop_streaming(fh);
            self.pads.stop_stream(&pipe);
        }
        Ok(())
    }

    fn streamoff(&self, fh: u64, type_: u32) -> Result<(), Errno> {
        self.check_type(type_)?;
        self.stop_streaming(fh);
        self.with_handle(fh, |h| h.queue.streamoff(type_))?;
        self.notify(fh);
        Ok(())
    }

    fn poll(&self, fh: u64) -> u32 {
        self.handles
            .lock()
            .get(&fh)
            .map(|h| h.queue.poll())
            .unwrap_or(libc::POLLERR as u32)
    }

    fn stream_fault(&self, drop_frames: u32, stall: std::time::Duration) {
        let mut f = self.faults.lock();
        f.0 = f.0.saturating_add(drop_frames);
        if !stall.is_zero() {
            f.1 = Some(std::time::Instant::now() + stall);
        }
    }

    fn mmap_buffer(
        &self,
        fh: u64,
        offset: u64,
        length: u64,
        vm: u32,
    ) -> Result<Arc<media_graph::vb2::MemfdBuffer>, Errno> {
        self.with_handle(fh, |h| h.queue.mmap_vm(offset, length, vm))
    }

    fn set_notify(&self, notify: QueueNotify) {
        *self.notify.lock() = Some(notify);
    }

    /// `vb2_video_unregister_device`: streaming stops and every queue is released now, so a
    /// blocked DQBUF wakes to find the queue not streaming (EINVAL).
    fn unplugged(&self) {
        self.gone.store(true, std::sync::atomic::Ordering::SeqCst);
        let fhs: Vec<u64> = self.handles.lock().keys().copied().collect();
        for &fh in &fhs {
            self.stop_streaming(fh);
        }
        for (_, h) in self.handles.lock().iter_mut() {
            h.queue.release();
        }
        for fh in fhs {
            self.notify(fh);
        }
    }

    /// Linux 7.0: the table's pixel formats without repeats, filtered by `mbus_code`.
    fn enum_fmt(&self, _fh: u64, mut f: v4l2_fmtdesc) -> Result<v4l2_fmtdesc, Errno> {
        self.check_type(f.type_)?;
        let mut listed: Vec<u32> = Vec::new();
        for info in FORMATS {
            if f.mbus_code != 0 && info.code != f.mbus_code {
                continue;
            }
            if !listed.contains(&info.pixelformat) {
                listed.push(info.pixelformat);
            }
        }
        let pixelformat = *listed.get(f.index as usize).ok_or(Errno::EINVAL)?;
        f.flags = 0;
        f.pixelformat = pixelformat;
        set_cstr(
            &mut f.description,
            media_graph::v4l2::pixfmt_description(pixelformat),
        );
        f.reserved = [0; 3];
        Ok(f)
    }

    fn g_fmt(&self, fh: u64, mut f: v4l2_format) -> Result<v4l2_format, Errno> {
        self.check_type(f.type_)?;
        let h = self.handles.lock();
        let pix = h.get(&fh).map(|h| h.fmt).ok_or(Errno::EBADF)?;
        f.fmt = [0; 200];
        f.set_pix(&pix);
        Ok(f)
    }

    fn try_fmt(&self, _fh: u64, mut f: v4l2_format) -> Result<v4l2_format, Errno> {
        self.check_type(f.type_)?;
        let pix = self.try_pix(&f.pix())?;
        f.fmt = [0; 200];
        f.set_pix(&pix);
        Ok(f)
    }

    /// Linux 7.0: S_FMT is TRY_FMT, then stored for this handle.
    fn s_fmt(&self, fh: u64, mut f: v4l2_format) -> Result<v4l2_format, Errno> {
        self.check_type(f.type_)?;
        self.prio_check(fh)?;
        let pix = self.try_pix(&f.pix())?;
        if let Some(h) = self.handles.lock().get_mut(&fh) {
            h.fmt = pix;
        }
        f.fmt = [0; 200];
        f.set_pix(&pix);
        Ok(f)
    }

    fn g_priority(&self, _fh: u64) -> Result<u32, Errno> {
        Ok(self.prio.lock().max())
    }

    fn s_priority(&self, fh: u64, prio: u32) -> Result<(), Errno> {
        self.prio.lock().set(fh, prio)
    }

    /// With V4L2_CAP_IO_MC the core answers for the single input of a capture node.
    fn enum_input(&self, _fh: u64, i: v4l2_input) -> Result<v4l2_input, Errno> {
        core::enum_single_input(self.capture, i.index, &self.name)
    }

    fn g_input(&self, _fh: u64) -> Result<u32, Errno> {
        core::g_single_io(self.capture)
    }

    fn s_input(&self, fh: u64, index: u32) -> Result<u32, Errno> {
        core::s_single_io(self.capture, self.prio_check(fh), index)
    }

    fn enum_output(&self, _fh: u64, o: v4l2_output) -> Result<v4l2_output, Errno> {
        core::enum_single_output(!self.capture, o.index, &self.name)
    }

    fn g_output(&self, _fh: u64) -> Result<u32, Errno> {
        core::g_single_io(!self.capture)
    }

    fn s_output(&self, fh: u64, index: u32) -> Result<u32, Errno> {
        core::s_single_io(!self.capture, self.prio_check(fh), index)
    }

    /// Linux 7.0: capture nodes have no frame interval; output nodes keep one per handle (a
    /// soft maximum frame time for memory input).
    fn g_parm(&self, fh: u64, mut p: v4l2_streamparm) -> Result<v4l2_streamparm, Errno> {
        if self.capture {
            return Err(Errno::ENOTTY);
        }
        self.check_type(p.type_)?;
        let t = self
            .handles
            .lock()
            .get(&fh)
            .map(|h| h.timeperframe)
            .ok_or(Errno::EBADF)?;
        p.parm = [0; 200];
        let mut out = v4l2_outputparm::zeroed();
        out.capability = CAP_TIMEPERFRAME;
        out.timeperframe = t;
        p.set_output(&out);
        Ok(p)
    }

    fn s_parm(&self, fh: u64, mut p: v4l2_streamparm) -> Result<v4l2_streamparm, Errno> {
        if self.capture {
            return Err(Errno::ENOTTY);
        }
        self.check_type(p.type_)?;
        self.prio_check(fh)?;
        let mut out = p.output();
        if out.timeperframe.numerator == 0 {
            out.timeperframe.numerator = 1;
        }
        if out.timeperframe.denominator == 0 {
            out.timeperframe.denominator = 1;
        }
        if let Some(h) = self.handles.lock().get_mut(&fh) {
            h.timeperframe = out.timeperframe;
        }
        let mut reply = v4l2_outputparm::zeroed();
        reply.capability = CAP_TIMEPERFRAME;
        reply.timeperframe = out.timeperframe;
        p.parm = [0; 200];
        p.set_output(&reply);
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_graph::v4l2::{PRIO_INTERACTIVE, PRIO_RECORD};

    fn node(name: &str, capture: bool) -> Arc<IspVideo> {
        IspVideo::new(
            name.into(),
            capture,
            0x060100,
            19,
            Weak::new(),
            Runtime::new(crate::Board::BeagleboardXm),
        )
    }

    #[test]
    fn querycap_and_initial_format() {
        let v = node("OMAP3 ISP CCDC output", true);
        let c = v.querycap().unwrap();
        assert_eq!(ioctl_abi::cstr(&c.driver), "ispvideo");
        assert_eq!(c.device_caps, 0x2420_0001);
        assert_eq!(c.capabilities, 0xa420_0003);
        assert_eq!(
            node("OMAP3 ISP CCP2 input", false).device_caps(),
            0x2420_0002
        );
        v.open(1);
        let mut f = v4l2_format::zeroed();
        f.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        let p = v.g_fmt(1, f).unwrap().pix();
        assert_eq!(
            (p.width, p.height, p.bytesperline, p.sizeimage),
            (720, 480, 1440, 691200)
        );
        let pi = node("OMAP3 ISP preview input", false);
        pi.open(1);
        f.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        assert_eq!(
            pi.g_fmt(1, f).unwrap().pix().bytesperline,
            1472,
            "64-byte alignment"
        );
        f.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        assert_eq!(pi.g_fmt(1, f), Err(Errno::EINVAL), "wrong type");
    }

    #[test]
    fn enum_fmt_dedups_and_filters() {
        let v = node("OMAP3 ISP resizer output", true);
        let mut d = v4l2_fmtdesc::zeroed();
        d.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        let mut seen = Vec::new();
        while let Ok(r) = v.enum_fmt(0, d) {
            seen.push(r.pixelformat);
            assert!(!ioctl_abi::cstr(&r.description).is_empty());
            d.index += 1;
        }
        assert_eq!(seen.len(), 21, "23 table rows, UYVY and YUYV twice");
        d.index = 0;
        d.mbus_code = ioctl_abi::subdev::MEDIA_BUS_FMT_UYVY8_2X8;
        assert_eq!(
            v.enum_fmt(0, d).unwrap().pixelformat,
            fourcc(b'U', b'Y', b'V', b'Y')
        );
        d.index = 1;
        assert_eq!(v.enum_fmt(0, d), Err(Errno::EINVAL));
    }

    #[test]
    fn output_nodes_normalise_and_priority() {
        let v = node("OMAP3 ISP resizer input", false);
        v.open(1);
        v.open(2);
        let mut f = v4l2_format::zeroed();
        f.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        let mut p = v4l2_pix_format::zeroed();
        p.width = 641;
        p.height = 480;
        p.pixelformat = fourcc(b'Y', b'U', b'Y', b'V');
        p.field = V4L2_FIELD_INTERLACED;
        f.set_pix(&p);
        let r = v.s_fmt(1, f).unwrap().pix();
        assert_eq!(
            (r.bytesperline, r.sizeimage, r.field),
            (1312, 1312 * 480, V4L2_FIELD_INTERLACED_TB)
        );
        // Priority: RECORD on handle 2 blocks handle 1's S_FMT.
        assert_eq!(v.g_priority(1), Ok(PRIO_INTERACTIVE));
        v.s_priority(2, PRIO_RECORD).unwrap();
        assert_eq!(v.g_priority(1), Ok(PRIO_RECORD));
        assert_eq!(v.s_fmt(1, f), Err(Errno::EBUSY));
        assert_eq!(
            v.s_priority(1, PRIO_INTERACTIVE),
            Err(Errno::EBUSY),
            "S_PRIORITY is checked too"
        );
        assert_eq!(v.s_priority(1, 4), Err(Errno::EINVAL));
        v.release(2);
        assert!(v.s_fmt(1, f).is_ok());
        // One output; no inputs on an output node.
        assert_eq!(v.g_output(1), Ok(0));
        assert_eq!(v.s_output(1, 1), Err(Errno::EINVAL));
        assert_eq!(v.g_input(1), Err(Errno::ENOTTY));
        // Frame interval: a zero numerator becomes 1.
        let mut parm = v4l2_streamparm::zeroed();
        parm.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        let r = v.s_parm(1, parm).unwrap().output();
        assert_eq!(
            (
                r.capability,
                r.timeperframe.numerator,
                r.timeperframe.denominator
            ),
            (CAP_TIMEPERFRAME, 1, 1)
        );
    }

    #[test]
    fn capture_try_fmt_needs_an_enabled_link() {
        let v = node("OMAP3 ISP CCDC output", true);
        v.open(1);
        let mut f = v4l2_format::zeroed();
        f.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        // No media device (or no enabled link): as the driver, no remote pad to ask.
        assert!(v.try_fmt(1, f).is_err());
        let i = v.enum_input(1, v4l2_input::zeroed()).unwrap();
        assert_eq!(
            (ioctl_abi::cstr(&i.name), i.type_),
            ("OMAP3 ISP CCDC output", 2) // V4L2_INPUT_TYPE_CAMERA
        );
        assert_eq!(v.g_parm(1, v4l2_streamparm::zeroed()), Err(Errno::ENOTTY));
    }
}
