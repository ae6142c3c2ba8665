//! Pipelines: what `video_device_pipeline_start` and `isp_video_streamon` check (omap3isp.md
//! §3.5, §4.3), and the simulated hardware that streams through a started pipeline.
//!
//! A pipeline is every entity reachable from the video node through enabled data links (all
//! pads of an entity depend on each other, as the media core assumes by default). The sensor
//! side runs on its own thread per pipeline: each frame period it renders the scene through the
//! blocks ([`crate::frames`]) into the capture node's oldest queued buffer, or counts a drop when
//! none is queued. Nothing here runs on a CUSE reader thread.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ioctl_abi::media::{MEDIA_LNK_FL_ENABLED, MEDIA_PAD_FL_MUST_CONNECT};
use ioctl_abi::subdev::v4l2_mbus_framefmt;
use ioctl_abi::videodev2::*;
use media_graph::controls::Controls;
use media_graph::graph::Ends;
use media_graph::{EntityKind, Graph, MediaDevice};
use nix::errno::Errno;
use parking_lot::{Condvar, Mutex};

use crate::frames::{self, Image, Scene};
use crate::pads::{format_info, PadState, SubdevPads};
use crate::video::IspVideo;
use crate::Board;

const CCDC: &str = "OMAP3 ISP CCDC";
const CCP2: &str = "OMAP3 ISP CCP2";
const CSI2A: &str = "OMAP3 ISP CSI2a";
const PREVIEW: &str = "OMAP3 ISP preview";
const RESIZER: &str = "OMAP3 ISP resizer";

/// Queues a V4L2 event (type, id, payload) on a sub-device node's subscribers.
pub type EventSink = Arc<dyn Fn(u32, u32, &[u8]) + Send + Sync>;

/// The instance's shared ISP state: pad models, control handlers, video nodes, pipelines.
pub struct Runtime {
    pub board: Board,
    pub pads: Mutex<HashMap<u32, Arc<SubdevPads>>>,
    pub controls: Mutex<HashMap<u32, Arc<Controls>>>,
    videos: Mutex<HashMap<u32, Weak<IspVideo>>>,
    pipelines: Mutex<Vec<Arc<Pipeline>>>,
    /// Event queues of the sub-device nodes, by entity (the CCDC's FRAME_SYNC, statistics).
    sinks: Mutex<HashMap<u32, EventSink>>,
    /// The statistics engines by entity.
    pub stats: Mutex<HashMap<u32, Arc<crate::stat::Stat>>>,
}

#[derive(Default)]
struct Ctl {
    stop: bool,
    running: bool,
    /// Memory-to-memory: a node streamed or got a buffer; see whether a frame can run.
    kicked: bool,
    /// `pipe->frame_number`: -1 at STREAMON, +1 at each frame start.
    frame: i64,
    drops: u64,
}

pub struct Pipeline {
    pub entities: BTreeSet<u32>,
    users: Mutex<u32>,
    /// The memory input node of a memory-to-memory pipeline.
    pub input: Mutex<Option<u32>>,
    /// The capture node.
    pub output: Mutex<Option<u32>>,
    ctl: Mutex<Ctl>,
    cond: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Pipeline {
    /// Frames the sensor produced while no buffer was queued.
    pub fn drops(&self) -> u64 {
        self.ctl.lock().drops
    }
}

/// One block of the chain from the source to the capture node.
struct Step {
    /// A sensor (the chain starts with its image) rather than a processing block.
    source: bool,
    name: String,
    /// The source pad the chain leaves through.
    pad: usize,
    state: PadState,
}

impl Step {
    fn is_source(&self) -> bool {
        self.source
    }
}

impl Runtime {
    pub fn new(board: Board) -> Arc<Self> {
        Arc::new(Self {
            board,
            pads: Mutex::default(),
            controls: Mutex::default(),
            videos: Mutex::default(),
            pipelines: Mutex::default(),
            sinks: Mutex::default(),
            stats: Mutex::default(),
        })
    }

    pub fn add_video(&self, entity: u32, v: Weak<IspVideo>) {
        self.videos.lock().insert(entity, v);
    }

    pub fn set_event_sink(&self, entity: u32, f: EventSink) {
        self.sinks.lock().insert(entity, f);
    }

    fn event(&self, entity: u32, type_: u32, id: u32, payload: &[u8]) {
        let sink = self.sinks.lock().get(&entity).cloned();
        if let Some(f) = sink {
            f(type_, id, payload);
        }
    }

    /// The statistics engines see the CCDC video port of each frame of a pipeline that
    /// contains the CCDC (they are linked to it for good).
    fn statistics(&self, graph: &Graph, p: &Pipeline, frame: u32) {
        let engines: Vec<(u32, Arc<crate::stat::Stat>)> = self
            .stats
            .lock()
            .iter()
            .filter(|(e, _)| p.entities.contains(e))
            .map(|(e, s)| (*e, s.clone()))
            .collect();
        if engines.is_empty() {
            return;
        }
        let vp = engines
            .iter()
            .any(|(_, s)| s.active())
            .then(|| {
                let ccdc = graph.entity_by_name(CCDC)?.id;
                let steps = self.chain_to(graph, ccdc, 2)?;
                self.render_steps(graph, &steps, u64::from(frame))
            })
            .flatten();
        let empty = Image::Raw {
            width: 0,
            height: 0,
            bits: 10,
            code: 0,
            data: Vec::new(),
        };
        let ts = media_graph::v4l2::monotonic_ns();
        for (entity, s) in engines {
            if let Some(ev) = s.frame(vp.as_ref().unwrap_or(&empty), frame, ts) {
                use zerocopy::IntoBytes;
                self.event(entity, s.event_type(), 0, ev.as_bytes());
            }
        }
    }

    fn video(&self, entity: u32) -> Option<Arc<IspVideo>> {
        self.videos.lock().get(&entity)?.upgrade()
    }

    /// Whether an entity belongs to a started pipeline (links touching it are then EBUSY).
    pub fn busy(&self, entity: u32) -> bool {
        self.pipelines
            .lock()
            .iter()
            .any(|p| p.entities.contains(&entity))
    }

    /// `__media_pipeline_start` from the video node `start`: the walk, joining the pipeline the
    /// node already belongs to, MUST_CONNECT pads (ENOLINK) and link validation (EPIPE).
    pub fn pipeline_start(&self, graph: &Graph, start: u32) -> Result<Arc<Pipeline>, Errno> {
        let entities = walk(graph, start);
        let mut pipes = self.pipelines.lock();
        if let Some(p) = pipes.iter().find(|p| p.entities.contains(&start)) {
            if p.entities == entities {
                *p.users.lock() += 1;
                return Ok(p.clone());
            }
            return Err(Errno::EBUSY);
        }
        if pipes.iter().any(|p| !p.entities.is_disjoint(&entities)) {
            return Err(Errno::EBUSY);
        }
        for &e in &entities {
            let Some(ent) = graph.entity(e) else { continue };
            for pad in &ent.pads {
                if pad.flags & MEDIA_PAD_FL_MUST_CONNECT != 0
                    && graph.remote_of(e, pad.index).is_none()
                {
                    return Err(Errno::ENOLINK);
                }
            }
        }
        for l in graph.links() {
            let Ends::Data { source, sink } = l.ends else {
                continue;
            };
            if l.flags & MEDIA_LNK_FL_ENABLED == 0 || !entities.contains(&sink.entity) {
                continue;
            }
            self.link_validate(graph, source.entity, source.index, sink.entity, sink.index)?;
        }
        let p = Arc::new(Pipeline {
            entities,
            users: Mutex::new(1),
            input: Mutex::new(None),
            output: Mutex::new(None),
            ctl: Mutex::new(Ctl {
                frame: -1,
                ..Default::default()
            }),
            cond: Condvar::new(),
            thread: Mutex::new(None),
        });
        pipes.push(p.clone());
        Ok(p)
    }

    /// `video_device_pipeline_stop`: the last user stops the hardware and releases the entities.
    pub fn pipeline_stop(&self, p: &Arc<Pipeline>) {
        {
            let mut users = p.users.lock();
            *users = users.saturating_sub(1);
            if *users > 0 {
                return;
            }
        }
        self.pipelines.lock().retain(|q| !Arc::ptr_eq(q, p));
        self.stop_stream(p);
    }

    /// Stops the pipeline's frame thread and waits for it (a frame being written completes
    /// first: hardware teardown waits for the DMA in flight).
    pub fn stop_stream(&self, p: &Pipeline) {
        {
            let mut c = p.ctl.lock();
            c.stop = true;
            c.running = false;
        }
        p.cond.notify_all();
        let t = p.thread.lock().take();
        if let Some(t) = t {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        let (frames, drops) = {
            let c = p.ctl.lock();
            (c.frame + 1, c.drops)
        };
        if frames > 0 {
            tracing::info!(
                frames,
                drops,
                "pipeline stopped (drops: frames no buffer took)"
            );
        }
    }

    /// The link's sink validates it: the CCDC with `ccdc_link_validate`, the other ISP blocks
    /// with the default check; links to or from video nodes and to the statistics engines are
    /// not validated.
    fn link_validate(
        &self,
        graph: &Graph,
        src: u32,
        src_pad: u16,
        sink: u32,
        sink_pad: u16,
    ) -> Result<(), Errno> {
        let (Some(se), Some(ke)) = (graph.entity(src), graph.entity(sink)) else {
            return Ok(());
        };
        if se.kind != EntityKind::Subdev || ke.kind != EntityKind::Subdev {
            return Ok(());
        }
        let name = ke.name.as_str();
        if !matches!(name, CCDC | CCP2 | CSI2A | PREVIEW | RESIZER) {
            return Ok(());
        }
        let pads = self.pads.lock();
        let (Some(sp), Some(kp)) = (pads.get(&src), pads.get(&sink)) else {
            return Ok(());
        };
        let a = sp.active_format(src_pad as usize).ok_or(Errno::EINVAL)?;
        let b = kp.active_format(sink_pad as usize).ok_or(Errno::EINVAL)?;
        if a.width != b.width || a.height != b.height {
            return Err(Errno::EPIPE);
        }
        if name == CCDC {
            // The lane shifter may drop up to 6 bits of a same-flavour code; the field is not
            // checked. Parallel sensors here have no extra data shift.
            if a.code != b.code {
                let (Some(i), Some(o)) = (format_info(a.code), format_info(b.code)) else {
                    return Err(Errno::EPIPE);
                };
                if i.flavor == 0 || o.flavor == 0 || i.flavor != o.flavor || i.width < o.width {
                    return Err(Errno::EPIPE);
                }
                if i.width - o.width > 6 {
                    return Err(Errno::EPIPE);
                }
            }
            return Ok(());
        }
        if a.code != b.code {
            return Err(Errno::EPIPE);
        }
        if a.field != b.field && b.field != V4L2_FIELD_NONE {
            return Err(Errno::EPIPE);
        }
        Ok(())
    }

    /// `isp_video_get_graph_data`: the video node of the other direction in the pipeline.
    /// Output nodes need a capture node (EPIPE).
    pub fn graph_data(
        &self,
        graph: &Graph,
        p: &Pipeline,
        video: u32,
        capture: bool,
    ) -> Result<(), Errno> {
        let far = p.entities.iter().copied().find(|&e| {
            e != video
                && graph
                    .entity(e)
                    .is_some_and(|x| x.kind == EntityKind::VideoNode)
                && self.video(e).is_some_and(|v| v.capture != capture)
        });
        if capture {
            *p.input.lock() = far;
            *p.output.lock() = Some(video);
        } else {
            let Some(far) = far else {
                return Err(Errno::EPIPE);
            };
            *p.input.lock() = Some(video);
            *p.output.lock() = Some(far);
        }
        Ok(())
    }

    /// `isp_video_check_external_subdevs`: a sensor pipeline needs a source on the first of
    /// CSI2a, CCP2, CCDC in the pipeline, a PIXEL_RATE control on it, and a rate the CCDC can
    /// take (L3_ICK/2, 90 % of that on the parallel interface): EINVAL, EINVAL, ENOSPC.
    pub fn check_external(&self, graph: &Graph, p: &Pipeline) -> Result<(), Errno> {
        if p.input.lock().is_some() {
            return Ok(());
        }
        let mut found = None;
        for name in [CSI2A, CCP2, CCDC] {
            let Some(e) = graph.entity_by_name(name) else {
                continue;
            };
            if !p.entities.contains(&e.id) {
                continue;
            }
            if let Some(r) = graph.remote_of(e.id, 0) {
                found = Some((name, r.entity));
                break;
            }
        }
        let Some((sink, source)) = found else {
            tracing::warn!("can't find source, failing now");
            return Err(Errno::EINVAL);
        };
        if graph.entity(source).map(|e| e.kind) != Some(EntityKind::Subdev) {
            return Ok(());
        }
        let rate = self.control(source, V4L2_CID_PIXEL_RATE).ok_or_else(|| {
            tracing::warn!("no pixel rate control in the source sub-device");
            Errno::EINVAL
        })?;
        let ccdc = graph.entity_by_name(CCDC).map(|e| e.id);
        if ccdc.is_some_and(|c| p.entities.contains(&c)) {
            let l3 = self.board.l3_ick();
            let parallel = sink == CCDC;
            let max = if parallel { l3 / 2 * 9 / 10 } else { l3 / 2 };
            if rate > max {
                return Err(Errno::ENOSPC);
            }
        }
        Ok(())
    }

    /// `omap3isp_pipeline_set_stream(CONTINUOUS)` for a sensor pipeline: starts the frame
    /// thread, which fills the capture node's buffers. A memory-to-memory pipeline gets a
    /// thread that runs one frame (SINGLESHOT) whenever both ends stream and have a buffer.
    pub fn start_stream(
        self: &Arc<Self>,
        p: &Arc<Pipeline>,
        dev: Weak<MediaDevice>,
    ) -> Result<(), Errno> {
        let m2m = p.input.lock().is_some();
        {
            let mut c = p.ctl.lock();
            if c.running {
                c.kicked = true;
                p.cond.notify_all();
                return Ok(());
            }
            c.running = true;
            c.stop = false;
            c.kicked = true;
            c.frame = -1;
        }
        let (rt, pipe) = (Arc::downgrade(self), Arc::downgrade(p));
        let t = std::thread::Builder::new()
            .name("isp-pipeline".into())
            .spawn(move || {
                if m2m {
                    singleshot(rt, pipe, dev)
                } else {
                    stream(rt, pipe, dev)
                }
            })
            .map_err(|_| Errno::ENOMEM)?;
        *p.thread.lock() = Some(t);
        Ok(())
    }

    /// A buffer was queued on a node of a memory-to-memory pipeline.
    pub fn kick(&self, p: &Pipeline) {
        p.ctl.lock().kicked = true;
        p.cond.notify_all();
    }

    /// One SINGLESHOT frame if both ends are ready: the input buffer's pixels through the
    /// blocks into the capture buffer; both buffers complete. False when not ready.
    fn run_singleshot(&self, graph: &Graph, p: &Pipeline) -> bool {
        let (Some(input), Some(output)) = (*p.input.lock(), *p.output.lock()) else {
            return false;
        };
        let (Some(iv), Some(ov)) = (self.video(input), self.video(output)) else {
            return false;
        };
        let (Some((ifh, ib, ipix)), Some((ofh, ob, opix))) = (iv.next_buffer(), ov.next_buffer())
        else {
            tracing::trace!(input, output, "single-shot: an end has no buffer");
            return false;
        };
        let frame = {
            let mut c = p.ctl.lock();
            c.frame += 1;
            c.frame as u32
        };
        if let Some(ccdc) = graph
            .entity_by_name(CCDC)
            .map(|e| e.id)
            .filter(|c| p.entities.contains(c))
        {
            self.event(ccdc, V4L2_EVENT_FRAME_SYNC, 0, &frame.to_ne_bytes());
        }
        let len = (ib.bytesused.min(ib.length)) as usize;
        let bytes = match &ib.memory {
            Some(m) => m.read(ib.userptr, len).ok(),
            // MMAP: the daemon keeps no pixels until the buffers are shared memory.
            None => Some(vec![0; len]),
        };
        let data = bytes
            .map(|b| frames::from_memory(&b, &ipix))
            .and_then(|img| {
                let at = graph.remote_of(output, 0)?;
                let steps = self.chain_to(graph, at.entity, at.index)?;
                let mut img = img;
                for s in steps.iter().skip_while(|s| s.is_source()) {
                    img = self.process(graph, s, &img)?;
                }
                Some(frames::to_memory(&img, &opix))
            });
        let error = match (&data, &ob.memory) {
            (Some(d), Some(m)) => m
                .write(ob.userptr, &d[..d.len().min(ob.length as usize)])
                .is_err(),
            (Some(_), None) => false,
            (None, _) => true,
        };
        let ts = media_graph::v4l2::monotonic_ns();
        iv.complete(ifh, &ib, false, ts, frame, ipix.field);
        ov.complete(ofh, &ob, error, ts, frame, opix.field);
        true
    }

    /// The blocks from the source to the capture node `video`, with their ACTIVE state now.
    fn chain(&self, graph: &Graph, video: u32) -> Option<VecDeque<Step>> {
        let at = graph.remote_of(video, 0)?;
        self.chain_to(graph, at.entity, at.index)
    }

    /// The blocks from the source to (`entity`, source pad `pad`).
    fn chain_to(&self, graph: &Graph, entity: u32, pad: u16) -> Option<VecDeque<Step>> {
        let mut steps = VecDeque::new();
        let mut at = media_graph::PadRef { entity, index: pad };
        let pads = self.pads.lock();
        loop {
            let e = graph.entity(at.entity)?;
            if e.kind != EntityKind::Subdev {
                // A memory input node feeds the first block.
                return Some(steps);
            }
            let model = pads.get(&e.id)?;
            let has_sink = e
                .pads
                .first()
                .is_some_and(|p| p.flags & ioctl_abi::media::MEDIA_PAD_FL_SINK != 0);
            steps.push_front(Step {
                source: !has_sink,
                name: e.name.clone(),
                pad: at.index as usize,
                state: model.active_state(),
            });
            if !has_sink {
                return Some(steps);
            }
            at = graph.remote_of(e.id, 0)?;
        }
    }

    /// The frame period of the pipeline's sensor: its frame interval when it has one, else
    /// (MT9P031) the pixels of a frame plus 25 blanking lines at its pixel rate.
    fn frame_period(&self, sensor: u32, fmt: &v4l2_mbus_framefmt) -> Duration {
        if let Some(model) = self.pads.lock().get(&sensor) {
            if let Some(Ok(iv)) = model.block().get_frame_interval(&model.active_state()) {
                if iv.denominator != 0 {
                    return Duration::from_nanos(
                        u64::from(iv.numerator) * 1_000_000_000 / u64::from(iv.denominator),
                    );
                }
            }
        }
        let rate = self
            .control(sensor, V4L2_CID_PIXEL_RATE)
            .unwrap_or(48_000_000)
            .max(1) as u64;
        let pixels = u64::from(fmt.width) * (u64::from(fmt.height) + 25);
        Duration::from_nanos((pixels * 1_000_000_000 / rate).max(1_000_000))
    }

    fn control(&self, entity: u32, id: u32) -> Option<i64> {
        self.controls
            .lock()
            .get(&entity)
            .and_then(|c| c.with(|s| s.get(id).map(|c| c.cur)))
    }

    /// One block's processing of its input image.
    fn process(&self, graph: &Graph, s: &Step, img: &Image) -> Option<Image> {
        let out = s.state.fmt[s.pad];
        Some(match s.name.as_str() {
            CCDC if s.pad == 1 => frames::ccdc(img, &out, Some(&s.state.crop)),
            CCDC => frames::ccdc(img, &out, None),
            PREVIEW => {
                let id = graph.entity_by_name(PREVIEW)?.id;
                let b = self.control(id, V4L2_CID_BRIGHTNESS).unwrap_or(0) as i32;
                let c = self.control(id, V4L2_CID_CONTRAST).unwrap_or(16) as i32;
                frames::preview(img, &s.state.crop, &out, (b, c))
            }
            RESIZER => frames::resizer(img, &s.state.crop, &out),
            // CCP2 and CSI2a pass the data on.
            _ => frames::ccdc(img, &out, None),
        })
    }

    /// The image leaving the last of `chain`'s blocks (the chain starts at a sensor).
    fn render_steps(&self, graph: &Graph, chain: &VecDeque<Step>, frame: u64) -> Option<Image> {
        let mut steps = chain.iter();
        let sensor = steps.next().filter(|s| s.source)?;
        let sensor_id = graph.entity_by_name(&sensor.name)?.id;
        let scene = Scene {
            frame,
            test_pattern: self.control(sensor_id, V4L2_CID_TEST_PATTERN).unwrap_or(0) as i32,
            gain16: 16,
        };
        let mut img: Image = frames::sensor(&sensor.state.fmt[sensor.pad], &scene);
        for s in steps {
            img = self.process(graph, s, &img)?;
        }
        Some(img)
    }
}

/// Every entity connected to `start` through enabled data links.
fn walk(graph: &Graph, start: u32) -> BTreeSet<u32> {
    let mut seen = BTreeSet::from([start]);
    let mut todo = vec![start];
    while let Some(e) = todo.pop() {
        for l in graph.links() {
            let Ends::Data { source, sink } = l.ends else {
                continue;
            };
            if l.flags & MEDIA_LNK_FL_ENABLED == 0 {
                continue;
            }
            let other = if source.entity == e {
                sink.entity
            } else if sink.entity == e {
                source.entity
            } else {
                continue;
            };
            if seen.insert(other) {
                todo.push(other);
            }
        }
    }
    seen
}

/// The thread of a memory-to-memory pipeline: a frame whenever both ends are ready.
fn singleshot(rt: Weak<Runtime>, pipe: Weak<Pipeline>, dev: Weak<MediaDevice>) {
    loop {
        let (Some(rt), Some(p)) = (rt.upgrade(), pipe.upgrade()) else {
            return;
        };
        {
            let mut c = p.ctl.lock();
            while !c.stop && !c.kicked {
                p.cond.wait(&mut c);
            }
            if c.stop {
                return;
            }
            c.kicked = false;
        }
        let Some(dev) = dev.upgrade() else { return };
        let graph = dev.graph();
        while rt.run_singleshot(&graph, &p) {
            if p.ctl.lock().stop {
                return;
            }
        }
    }
}

/// The frame thread of a sensor pipeline.
fn stream(rt: Weak<Runtime>, pipe: Weak<Pipeline>, dev: Weak<MediaDevice>) {
    let mut next = Instant::now();
    loop {
        let (Some(rt), Some(p)) = (rt.upgrade(), pipe.upgrade()) else {
            return;
        };
        let Some(capture) = *p.output.lock() else {
            return;
        };
        // Wait for the next frame start, or a stop. A stuck pipeline (injected) starts no
        // frame until the stall ends.
        let video = rt.video(capture);
        let frame = {
            let mut c = p.ctl.lock();
            loop {
                while !c.stop && Instant::now() < next {
                    p.cond.wait_until(&mut c, next);
                }
                if c.stop {
                    return;
                }
                match video.as_ref().and_then(|v| v.stalled_until()) {
                    Some(until) => {
                        while !c.stop && Instant::now() < until {
                            p.cond.wait_until(&mut c, until);
                        }
                        next = Instant::now();
                    }
                    None => break,
                }
            }
            c.frame += 1;
            c.frame
        };
        let Some(dev) = dev.upgrade() else { return };
        let graph = dev.graph();
        // The blocks' state for this frame: it sets the frame period and renders the frame.
        let chain = rt.chain(&graph, capture);
        let period = chain
            .as_ref()
            .and_then(|c| c.front())
            .and_then(|s| Some((graph.entity_by_name(&s.name)?.id, s.state.fmt[s.pad])))
            .map(|(id, f)| rt.frame_period(id, &f))
            .unwrap_or(Duration::from_millis(33));
        if let Some(ccdc) = graph
            .entity_by_name(CCDC)
            .map(|e| e.id)
            .filter(|c| p.entities.contains(c))
        {
            rt.event(
                ccdc,
                V4L2_EVENT_FRAME_SYNC,
                0,
                &(frame as u32).to_ne_bytes(),
            );
            rt.statistics(&graph, &p, frame as u32);
        }
        // An injected loss: the frame happened (its number is used) but reaches no buffer.
        let lost = video.as_ref().is_some_and(|v| v.take_drop());
        let filled = video
            .as_ref()
            .filter(|_| !lost)
            .and_then(|v| v.next_buffer());
        match (video, filled) {
            (Some(v), Some((fh, active, pix))) => {
                let img = chain
                    .as_ref()
                    .and_then(|c| rt.render_steps(&graph, c, frame as u64));
                drop(graph);
                let error = match (&img, &active.mmap, &active.memory) {
                    // MMAP: rendered in place into the shared buffer.
                    (Some(img), Some(buf), _) => {
                        buf.fill(|b| frames::write_into(img, &pix, b));
                        false
                    }
                    // USERPTR: into the client's memory.
                    (Some(img), None, Some(m)) => {
                        let d = frames::to_memory(img, &pix);
                        let n = d.len().min(active.length as usize);
                        m.write(active.userptr, &d[..n]).is_err()
                    }
                    _ => true,
                };
                let seq = if pix.field == V4L2_FIELD_NONE {
                    frame as u32
                } else {
                    (frame / 2) as u32
                };
                v.complete(
                    fh,
                    &active,
                    error,
                    media_graph::v4l2::monotonic_ns(),
                    seq,
                    pix.field,
                );
            }
            _ => {
                drop(graph);
                p.ctl.lock().drops += 1;
            }
        }
        next += period;
        let now = Instant::now();
        if next < now {
            // Rendering took longer than a frame: the sensor's frames meanwhile were lost.
            let behind = (now - next).as_nanos() / period.as_nanos().max(1);
            let mut c = p.ctl.lock();
            c.frame += behind as i64;
            c.drops += behind as u64;
            next += period * behind as u32;
            if next < now {
                next = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{build, NodeRegistrar, SubdevInfo, VideoNodeInfo};
    use ioctl_abi::media::media_link_desc;
    use ioctl_abi::subdev::*;
    use media_graph::vb2::UserMemory;
    use media_graph::{Audit, MediaIoctls, VideoIoctls};

    struct Reg {
        dev: Weak<MediaDevice>,
        videos: HashMap<String, Arc<IspVideo>>,
        n: u32,
    }

    impl NodeRegistrar for Reg {
        type Error = Errno;
        fn register_video(&mut self, v: &VideoNodeInfo) -> Result<(u32, u32), Errno> {
            let node = IspVideo::new(
                v.name.clone(),
                v.capture,
                0x070000,
                v.entity,
                self.dev.clone(),
                v.pads.clone(),
            );
            self.videos.insert(v.name.clone(), node);
            self.n += 1;
            Ok((81, self.n))
        }
        fn register_subdev(&mut self, _: &SubdevInfo) -> Result<(u32, u32), Errno> {
            self.n += 1;
            Ok((81, self.n))
        }
    }

    struct Isp {
        dev: Arc<MediaDevice>,
        rt: Arc<Runtime>,
        videos: HashMap<String, Arc<IspVideo>>,
    }

    impl Isp {
        fn new(board: Board) -> Self {
            let dev = MediaDevice::new(board.media_device_info(0x070000), Audit::new());
            let mut reg = Reg {
                dev: Arc::downgrade(&dev),
                videos: HashMap::new(),
                n: 0,
            };
            let isp = build(board, &dev, &mut reg).unwrap();
            dev.register();
            Self {
                dev,
                rt: isp.runtime,
                videos: reg.videos,
            }
        }

        fn id(&self, name: &str) -> u32 {
            self.dev.graph().entity_by_name(name).unwrap().id
        }

        fn link(&self, src: (&str, u16), sink: (&str, u16), on: bool) -> Result<(), Errno> {
            let mut d = media_link_desc::zeroed();
            d.source.entity = self.id(src.0);
            d.source.index = src.1;
            d.sink.entity = self.id(sink.0);
            d.sink.index = sink.1;
            d.flags = if on { MEDIA_LNK_FL_ENABLED } else { 0 };
            self.dev.setup_link(d).map(|_| ())
        }

        fn set_fmt(&self, entity: &str, pad: usize, code: u32, w: u32, h: u32) {
            let pads = self.rt.pads.lock().get(&self.id(entity)).cloned().unwrap();
            let mut f = v4l2_mbus_framefmt::zeroed();
            f.code = code;
            f.width = w;
            f.height = h;
            f.field = V4L2_FIELD_NONE;
            pads.with_set(0, V4L2_SUBDEV_FORMAT_ACTIVE, |b, st| {
                b.set_fmt(st, pad, &mut f)
            })
            .unwrap();
        }

        fn video(&self, name: &str) -> Arc<IspVideo> {
            self.videos[name].clone()
        }
    }

    const SENSOR: &str = "mt9p031 1-0048";
    const RSZ_OUT: &str = "OMAP3 ISP resizer output";

    /// The BeagleBoard-xM recipe's links, and formats along them at `w`x`h`.
    fn recipe(isp: &Isp, w: u32, h: u32) {
        isp.link((SENSOR, 0), (CCDC, 0), true).unwrap();
        isp.link((CCDC, 2), (PREVIEW, 0), true).unwrap();
        isp.link((PREVIEW, 1), (RESIZER, 0), true).unwrap();
        isp.link((RESIZER, 1), (RSZ_OUT, 0), true).unwrap();
        isp.set_fmt(SENSOR, 0, MEDIA_BUS_FMT_SGRBG12_1X12, w, h);
        let sensor = isp.rt.pads.lock()[&isp.id(SENSOR)]
            .active_format(0)
            .unwrap();
        isp.set_fmt(CCDC, 0, sensor.code, sensor.width, sensor.height);
        let vp = isp.rt.pads.lock()[&isp.id(CCDC)].active_format(2).unwrap();
        isp.set_fmt(PREVIEW, 0, vp.code, vp.width, vp.height);
        let pv = isp.rt.pads.lock()[&isp.id(PREVIEW)]
            .active_format(1)
            .unwrap();
        isp.set_fmt(RESIZER, 0, pv.code, pv.width, pv.height);
        isp.set_fmt(RESIZER, 1, MEDIA_BUS_FMT_UYVY8_1X16, w, h);
    }

    fn capture_fmt() -> v4l2_format {
        let mut f = v4l2_format::zeroed();
        f.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        f
    }

    fn reqbufs(v: &IspVideo, fh: u64, count: u32, memory: u32) -> Result<u32, Errno> {
        let mut r = v4l2_requestbuffers::zeroed();
        r.count = count;
        r.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        r.memory = memory;
        v.reqbufs(fh, r).map(|r| r.count)
    }

    #[derive(Default)]
    struct Mem(Mutex<Vec<u8>>);
    const BASE: u64 = 0x10_0000;
    impl UserMemory for Mem {
        fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
            let m = self.0.lock();
            let s = addr.checked_sub(BASE).ok_or(Errno::EFAULT)? as usize;
            m.get(s..s + len).map(|b| b.to_vec()).ok_or(Errno::EFAULT)
        }
        fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
            let mut m = self.0.lock();
            let s = addr.checked_sub(BASE).ok_or(Errno::EFAULT)? as usize;
            m.get_mut(s..s + data.len())
                .ok_or(Errno::EFAULT)?
                .copy_from_slice(data);
            Ok(())
        }
    }

    #[test]
    fn streamon_errnos_in_the_drivers_order() {
        let isp = Isp::new(Board::BeagleboardXm);
        let v = isp.video(RSZ_OUT);
        v.open(1);
        v.open(2);
        let cap = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        assert_eq!(
            v.streamon(1, V4L2_BUF_TYPE_VIDEO_OUTPUT),
            Err(Errno::EINVAL)
        );
        // The node's own MUST_CONNECT pad, then the resizer's sink.
        assert_eq!(v.streamon(1, cap), Err(Errno::ENOLINK));
        isp.link((RESIZER, 1), (RSZ_OUT, 0), true).unwrap();
        assert_eq!(v.streamon(1, cap), Err(Errno::ENOLINK));
        // Every link enabled, default formats: the sensor's 2592x1944 is not the CCDC's 4096.
        isp.link((SENSOR, 0), (CCDC, 0), true).unwrap();
        isp.link((CCDC, 2), (PREVIEW, 0), true).unwrap();
        isp.link((PREVIEW, 1), (RESIZER, 0), true).unwrap();
        assert_eq!(v.streamon(1, cap), Err(Errno::EPIPE));
        assert!(
            !isp.rt.busy(isp.id(CCDC)),
            "a failed start leaves nothing started"
        );
        recipe(&isp, 320, 240);
        // The handle's format is still 720x480.
        assert_eq!(v.streamon(1, cap), Err(Errno::EINVAL));
        let f = v.s_fmt(1, capture_fmt()).unwrap().pix();
        assert_eq!((f.width, f.height, f.sizeimage), (320, 240, 640 * 240));
        // No buffers.
        assert_eq!(v.streamon(1, cap), Err(Errno::EINVAL));
        assert_eq!(reqbufs(&v, 1, 4, V4L2_MEMORY_MMAP), Ok(4));
        // The CCDC's pixel rate limit (90 % of L3/2 on the parallel bus).
        let sensor_ctrls = isp.rt.controls.lock()[&isp.id(SENSOR)].clone();
        // (A faster sensor: the driver's control has a fixed range.)
        sensor_ctrls.with(|s| {
            s.modify_range(V4L2_CID_PIXEL_RATE, 1, 1 << 40, 1, 90_000_001);
            s.set_value(V4L2_CID_PIXEL_RATE, 90_000_001)
        });
        assert_eq!(v.streamon(1, cap), Err(Errno::ENOSPC));
        sensor_ctrls.with(|s| s.set_value(V4L2_CID_PIXEL_RATE, 90_000_000));
        assert_eq!(v.streamon(1, cap), Ok(()));
        assert_eq!(v.streamon(1, cap), Ok(()), "already streaming");
        // While streaming: links in the pipeline are busy, so is the node for another handle.
        assert_eq!(
            isp.link((PREVIEW, 1), (RESIZER, 0), false),
            Err(Errno::EBUSY)
        );
        // The CCDC's and the preview's crop are EBUSY while streaming, the resizer's is not;
        // reading them is fine.
        for (name, pad, want) in [
            (CCDC, 1, Err(Errno::EBUSY)),
            (PREVIEW, 0, Err(Errno::EBUSY)),
            (RESIZER, 0, Ok(())),
        ] {
            let entity = isp.id(name);
            let rt = Arc::downgrade(&isp.rt);
            let sd = crate::nodes::IspSubdev {
                name: name.into(),
                kernel_version: 0x070000,
                num_pads: if name == CCDC { 3 } else { 2 },
                pads: isp.rt.pads.lock().get(&entity).cloned(),
                controls: None,
                stat: None,
                streaming: Some(Arc::new(move || {
                    rt.upgrade().is_some_and(|r| r.busy(entity))
                })),
                ccdc_cfg: Default::default(),
                prev_cfg: Default::default(),
            };
            let mut sel = v4l2_subdev_selection::zeroed();
            sel.which = V4L2_SUBDEV_FORMAT_ACTIVE;
            sel.pad = pad;
            sel.target = V4L2_SEL_TGT_CROP;
            let cur = media_graph::SubdevIoctls::get_selection(&sd, 0, sel);
            assert!(cur.is_ok(), "{name}: reading the crop while streaming");
            sel.r = cur.unwrap().r;
            let got = media_graph::SubdevIoctls::set_selection(&sd, 0, sel).map(|_| ());
            assert_eq!(got, want, "{name} crop while streaming");
        }
        v.s_fmt(2, capture_fmt()).unwrap();
        reqbufs(&v, 2, 1, V4L2_MEMORY_MMAP).unwrap();
        assert_eq!(v.streamon(2, cap), Err(Errno::EBUSY));
        assert_eq!(reqbufs(&v, 1, 0, V4L2_MEMORY_MMAP), Err(Errno::EBUSY));
        assert_eq!(v.poll(1), 0, "streaming, nothing done");
        assert_eq!(v.poll(2), libc::POLLERR as u32, "not streaming");
        v.streamoff(1, cap).unwrap();
        assert!(!isp.rt.busy(isp.id(CCDC)));
        assert_eq!(v.streamoff(1, cap), Ok(()), "not streaming is fine");
        isp.link((PREVIEW, 1), (RESIZER, 0), false).unwrap();
    }

    #[test]
    fn an_output_node_needs_a_capture_node() {
        let isp = Isp::new(Board::BeagleboardXm);
        let v = isp.video("OMAP3 ISP preview input");
        v.open(1);
        isp.link(("OMAP3 ISP preview input", 0), (PREVIEW, 0), true)
            .unwrap();
        let sink = isp.rt.pads.lock()[&isp.id(PREVIEW)]
            .active_format(0)
            .unwrap();
        let mut f = v4l2_format::zeroed();
        f.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        let mut p = v4l2_pix_format::zeroed();
        p.width = sink.width;
        p.height = sink.height;
        p.pixelformat = format_info(sink.code).unwrap().pixelformat;
        f.set_pix(&p);
        v.s_fmt(1, f).unwrap();
        assert_eq!(v.streamon(1, V4L2_BUF_TYPE_VIDEO_OUTPUT), Err(Errno::EPIPE));
    }

    /// Not a test: the native cost of one frame (render along the chain + writing the buffer),
    /// which bounds the frame rate outside an emulator. scripts/bench runs it:
    /// `cargo test -p omap3isp --release -- --ignored frame_cost --nocapture`.
    #[test]
    #[ignore]
    fn frame_cost() {
        let mut out = Vec::new();
        for (label, w, h) in [
            ("1280x720 UYVY (resizer output)", 1280, 720),
            ("2592x1944 SGRBG12 (CCDC output)", 2592, 1944),
        ] {
            let isp = Isp::new(Board::BeagleboardXm);
            let (capture, pix_fmt) = if w == 1280 {
                recipe(&isp, w, h);
                (
                    RSZ_OUT,
                    format_info(MEDIA_BUS_FMT_UYVY8_1X16).unwrap().pixelformat,
                )
            } else {
                isp.link((SENSOR, 0), (CCDC, 0), true).unwrap();
                isp.link((CCDC, 1), ("OMAP3 ISP CCDC output", 0), true)
                    .unwrap();
                isp.set_fmt(SENSOR, 0, MEDIA_BUS_FMT_SGRBG12_1X12, w, h);
                isp.set_fmt(CCDC, 0, MEDIA_BUS_FMT_SGRBG12_1X12, w, h);
                (
                    "OMAP3 ISP CCDC output",
                    format_info(MEDIA_BUS_FMT_SGRBG12_1X12).unwrap().pixelformat,
                )
            };
            let graph = isp.dev.graph();
            let chain = isp.rt.chain(&graph, isp.id(capture)).unwrap();
            let sensor = isp.id(SENSOR);
            let period = isp
                .rt
                .frame_period(sensor, &chain[0].state.fmt[chain[0].pad]);
            let mut pix = v4l2_pix_format::zeroed();
            pix.width = w;
            pix.height = h;
            pix.pixelformat = pix_fmt;
            pix.bytesperline = w * 2;
            pix.sizeimage = w * h * 2;
            pix.field = V4L2_FIELD_NONE;
            let mut buf = vec![0u8; pix.sizeimage as usize];
            let n = 20;
            let t = Instant::now();
            for frame in 0..n {
                let img = isp.rt.render_steps(&graph, &chain, frame).unwrap();
                frames::write_into(&img, &pix, &mut buf);
            }
            let ms = t.elapsed().as_secs_f64() / n as f64 * 1e3;
            let sensor_fps = 1.0 / period.as_secs_f64();
            println!(
                "native frame cost, {label}: {ms:.1} ms per frame = {:.0} frames/s capacity; the sensor runs at {sensor_fps:.1} frames/s",
                1e3 / ms
            );
            out.push(format!(
                r#"{{"frame":"{label}","ms_per_frame":{ms:.2},"capacity_fps":{:.1},"sensor_fps":{sensor_fps:.1}}}"#,
                1e3 / ms
            ));
        }
        println!("JSON [{}]", out.join(","));
    }

    #[test]
    fn frames_arrive_in_userptr_buffers() {
        let isp = Isp::new(Board::BeagleboardXm);
        recipe(&isp, 160, 120);
        let v = isp.video(RSZ_OUT);
        let woken = Arc::new(Mutex::new(Vec::new()));
        let w = woken.clone();
        v.set_notify(Arc::new(move |fh| w.lock().push(fh)));
        v.open(1);
        let pix = v.s_fmt(1, capture_fmt()).unwrap().pix();
        assert_eq!(reqbufs(&v, 1, 2, V4L2_MEMORY_USERPTR), Ok(2));
        let size = pix.sizeimage as usize;
        let mem = Arc::new(Mem(Mutex::new(vec![0; 2 * size])));
        let m: Arc<dyn UserMemory> = mem.clone();
        for i in 0..2u32 {
            let mut b = v4l2_buffer::zeroed();
            b.index = i;
            b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
            b.memory = V4L2_MEMORY_USERPTR;
            b.m = BASE + u64::from(i) * size as u64;
            b.length = size as u32;
            v.qbuf(1, b, Some(m.clone())).unwrap();
        }
        v.streamon(1, V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < 4 && Instant::now() < deadline {
            let mut b = v4l2_buffer::zeroed();
            b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
            b.memory = V4L2_MEMORY_USERPTR;
            match v.dqbuf(1, b, true).result {
                Ok(d) => {
                    let off = (d.m - BASE) as usize;
                    let frame = mem.0.lock()[off..off + size].to_vec();
                    got.push((d, frame));
                    v.qbuf(1, d, Some(m.clone())).unwrap();
                }
                Err(Errno::EAGAIN) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("dqbuf: {e}"),
            }
        }
        v.streamoff(1, V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap();
        assert_eq!(got.len(), 4, "frames within 20 s");
        assert!(woken.lock().contains(&1));
        for (d, frame) in &got {
            assert_eq!(d.bytesused, pix.sizeimage);
            assert_eq!(d.flags & V4L2_BUF_FLAG_ERROR, 0);
            assert_eq!(
                d.flags & V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC,
                V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC
            );
            // UYVY: chroma and luma within the limited range, not an empty buffer.
            assert!(frame.iter().any(|&b| b > 16));
        }
        let seqs: Vec<u32> = got.iter().map(|(d, _)| d.sequence).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] > w[0]),
            "sequence grows: {seqs:?}"
        );
        assert_ne!(got[0].1, got[3].1, "the scene moves");
        let ts: Vec<i64> = got
            .iter()
            .map(|(d, _)| d.timestamp.tv_sec * 1_000_000 + d.timestamp.tv_usec)
            .collect();
        assert!(ts.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn memory_to_memory_through_the_resizer() {
        let isp = Isp::new(Board::BeagleboardXm);
        const RSZ_IN: &str = "OMAP3 ISP resizer input";
        isp.link((RSZ_IN, 0), (RESIZER, 0), true).unwrap();
        isp.link((RESIZER, 1), (RSZ_OUT, 0), true).unwrap();
        isp.set_fmt(RESIZER, 0, MEDIA_BUS_FMT_UYVY8_1X16, 64, 32);
        isp.set_fmt(RESIZER, 1, MEDIA_BUS_FMT_UYVY8_1X16, 128, 64);
        let (vin, vout) = (isp.video(RSZ_IN), isp.video(RSZ_OUT));
        vin.open(1);
        vout.open(1);
        let mut f = v4l2_format::zeroed();
        f.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        let mut p = v4l2_pix_format::zeroed();
        p.width = 64;
        p.height = 32;
        p.pixelformat = ioctl_abi::videodev2::fourcc(b'U', b'Y', b'V', b'Y');
        f.set_pix(&p);
        let ipix = vin.s_fmt(1, f).unwrap().pix();
        let opix = vout.s_fmt(1, capture_fmt()).unwrap().pix();
        assert_eq!((opix.width, opix.height), (128, 64));
        let mut r = v4l2_requestbuffers::zeroed();
        r.count = 1;
        r.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        r.memory = V4L2_MEMORY_USERPTR;
        vin.reqbufs(1, r).unwrap();
        reqbufs(&vout, 1, 1, V4L2_MEMORY_USERPTR).unwrap();
        // Input: luma rising left to right, neutral chroma.
        let isz = ipix.sizeimage as usize;
        let osz = opix.sizeimage as usize;
        let mut input = vec![0u8; isz + osz];
        for y in 0..32 {
            for x in 0..64 {
                let at = y * ipix.bytesperline as usize + x * 2;
                input[at] = 128;
                input[at + 1] = 16 + (x as u8) * 3;
            }
        }
        let mem = Arc::new(Mem(Mutex::new(input)));
        let m: Arc<dyn UserMemory> = mem.clone();
        let mut b = v4l2_buffer::zeroed();
        b.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        b.memory = V4L2_MEMORY_USERPTR;
        b.m = BASE;
        b.length = isz as u32;
        b.bytesused = isz as u32;
        vin.qbuf(1, b, Some(m.clone())).unwrap();
        if std::env::var("M2M_CAPTURE_FIRST").is_err() {
            vin.streamon(1, V4L2_BUF_TYPE_VIDEO_OUTPUT).unwrap();
        }
        b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.m = BASE + isz as u64;
        b.length = osz as u32;
        b.bytesused = 0;
        vout.qbuf(1, b, Some(m.clone())).unwrap();
        // Not streaming on the capture side yet: nothing runs.
        std::thread::sleep(Duration::from_millis(50));
        let mut q = v4l2_buffer::zeroed();
        q.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        q.memory = V4L2_MEMORY_USERPTR;
        if std::env::var("M2M_CAPTURE_FIRST").is_err() {
            assert_eq!(vin.dqbuf(1, q, true).result.err(), Some(Errno::EAGAIN));
        }
        vout.streamon(1, V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap();
        if std::env::var("M2M_CAPTURE_FIRST").is_ok() {
            vin.streamon(1, V4L2_BUF_TYPE_VIDEO_OUTPUT).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut c = q;
        c.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        let done = loop {
            match vout.dqbuf(1, c, true).result {
                Ok(d) => break d,
                Err(Errno::EAGAIN) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("dqbuf: {e}"),
            }
        };
        assert_eq!((done.sequence, done.bytesused), (0, opix.sizeimage));
        let back = vin.dqbuf(1, q, true).result.unwrap();
        assert_eq!(
            back.sequence, 0,
            "the input buffer completes with the frame"
        );
        // The output is the input scaled 2x: luma still rises left to right.
        let out = mem.0.lock()[isz..isz + osz].to_vec();
        let luma = |x: usize| out[10 * opix.bytesperline as usize + x * 2 + 1];
        assert!(
            luma(2) < luma(60) && luma(60) < luma(120),
            "{} {} {}",
            luma(2),
            luma(60),
            luma(120)
        );
        vout.streamoff(1, V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap();
        vin.streamoff(1, V4L2_BUF_TYPE_VIDEO_OUTPUT).unwrap();
        assert!(!isp.rt.busy(isp.id(RESIZER)));
    }

    #[test]
    fn injected_frame_loss_and_stall() {
        let isp = Isp::new(Board::BeagleboardXm);
        recipe(&isp, 160, 120);
        let v = isp.video(RSZ_OUT);
        v.open(1);
        let pix = v.s_fmt(1, capture_fmt()).unwrap().pix();
        reqbufs(&v, 1, 1, V4L2_MEMORY_USERPTR).unwrap();
        let mem: Arc<dyn UserMemory> = Arc::new(Mem(Mutex::new(vec![0; pix.sizeimage as usize])));
        let mut b = v4l2_buffer::zeroed();
        b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_USERPTR;
        b.m = BASE;
        b.length = pix.sizeimage;
        let next = |v: &IspVideo| {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match v.dqbuf(1, b, true).result {
                    Ok(d) => return d,
                    Err(Errno::EAGAIN) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(e) => panic!("dqbuf: {e}"),
                }
            }
        };
        v.qbuf(1, b, Some(mem.clone())).unwrap();
        v.streamon(1, V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap();
        let a = next(&v).sequence;
        // 500 frames lost: the next buffer's sequence jumps past them.
        v.stream_fault(500, Duration::ZERO);
        v.qbuf(1, b, Some(mem.clone())).unwrap();
        let after = next(&v).sequence;
        assert!(after > a + 500, "{a} -> {after}");
        // A 400 ms stall: nothing completes meanwhile.
        let t0 = Instant::now();
        v.stream_fault(0, Duration::from_millis(400));
        v.qbuf(1, b, Some(mem.clone())).unwrap();
        next(&v);
        assert!(
            t0.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t0.elapsed()
        );
        v.streamoff(1, V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap();
    }
}
