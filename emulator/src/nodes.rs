//! The CUSE devices behind `/dev/mediaN`, `/dev/videoN` and `/dev/v4l-subdevN`.
//!
//! In the reference lifetime model a registered node holds a reference to the media device, and
//! so does every file handle open on it ([`MediaFh`]): the media device and its graph stay while
//! either exists. In the legacy models they hold only a `Weak`, the driver frees the media device
//! at unplug, and every access that would have touched freed memory is recorded as a
//! use-after-free event instead. After unplug, syscalls on handles still open get what the
//! instance's errno profile says.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use std::collections::VecDeque;

use cuse::{ClientMemory, Context, Device, Errno, IoctlRequest, IoctlRound, Notifier, ReplyIoctl};
use ioctl_abi::videodev2::{
    v4l2_buffer, v4l2_event, v4l2_event_subscription, V4L2_CTRL_FLAG_WRITE_ONLY, V4L2_EVENT_ALL,
    V4L2_EVENT_CTRL, V4L2_EVENT_SUB_FL_ALLOW_FEEDBACK, V4L2_EVENT_SUB_FL_SEND_INITIAL,
    VIDIOC_DQBUF, VIDIOC_DQEVENT, VIDIOC_SUBSCRIBE_EVENT, VIDIOC_UNSUBSCRIBE_EVENT,
};
use media_graph::controls::{Change, CH_FLAGS, CH_VALUE};
use media_graph::vb2::UserMemory;
use media_graph::{MediaDevice, MediaFh, MediaIoctls, SubdevIoctls, VideoIoctls};
use parking_lot::Mutex;
use zerocopy::IntoBytes;

use crate::breakpoints::{Breakpoints, Stage};
use crate::dispatch::{self, Stages};
use crate::instance::{CallGuard, InstanceState, Lifetime, NodeKind, UafEvent};
use crate::limits::{Limits, Parked};

/// A client's address space as the buffer queues see it: reachable for the process's life.
struct ProcessBuffers(Arc<dyn ClientMemory>);

impl UserMemory for ProcessBuffers {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        self.0.read(addr, len)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.0.write(addr, data)
    }
    fn pin(&self, addr: u64, len: usize, write: bool) -> Result<(), Errno> {
        self.0.pin(addr, len, write)
    }
}

/// Where a USERPTR buffer queued by this caller is written.
pub fn user_memory(m: Arc<dyn ClientMemory>) -> Arc<dyn UserMemory> {
    Arc::new(ProcessBuffers(m.process()))
}

/// What a node answers ioctls with.
pub enum Handler {
    Media,
    Video(Arc<dyn VideoIoctls>),
    Subdev(Arc<dyn SubdevIoctls>),
}

impl Handler {
    fn kind(&self) -> NodeKind {
        match self {
            Handler::Media => NodeKind::Media,
            Handler::Video(_) => NodeKind::Video,
            Handler::Subdev(_) => NodeKind::Subdev,
        }
    }
}

impl Handler {
    /// The handler of an ISP video node.
    pub fn isp_video(
        node: &omap3isp::topology::VideoNodeInfo,
        kernel_version: u32,
        dev: &Arc<MediaDevice>,
    ) -> Handler {
        Handler::Video(omap3isp::video::IspVideo::new(
            node.name.clone(),
            node.capture,
            kernel_version,
            node.entity,
            Arc::downgrade(dev),
            node.pads.clone(),
        ))
    }

    /// The handler of an ISP sub-device node.
    pub fn isp_subdev(node: &omap3isp::topology::SubdevInfo, kernel_version: u32) -> Handler {
        Handler::Subdev(Arc::new(omap3isp::nodes::IspSubdev {
            name: node.name.clone(),
            kernel_version,
            num_pads: node.num_pads,
            pads: node.pads.clone(),
            controls: node.controls.clone(),
            stat: node.stat.clone(),
            streaming: Some(node.streaming_check()),
            ccdc_cfg: Default::default(),
            prev_cfg: Default::default(),
        }))
    }
}

/// Routes the events the pipeline raises for `entity` (the CCDC's FRAME_SYNC, the statistics
/// engines') to the subscribers of its sub-device node.
pub fn route_events(rt: &omap3isp::pipeline::Runtime, entity: u32, node: Weak<Node>) {
    rt.set_event_sink(
        entity,
        Arc::new(move |type_, id, payload| {
            if let Some(n) = node.upgrade() {
                n.queue_event(type_, id, payload);
            }
        }),
    );
}

/// The node's hold on the media device: a pin, or (legacy models) a pointer that may dangle.
enum DevRef {
    Pinned(Arc<MediaDevice>),
    Unpinned(Weak<MediaDevice>),
}

impl DevRef {
    fn get(&self) -> Option<Arc<MediaDevice>> {
        match self {
            DevRef::Pinned(d) => Some(d.clone()),
            DevRef::Unpinned(w) => w.upgrade(),
        }
    }
}

/// One open file: its media device hold, O_NONBLOCK from open(), and its V4L2 event queue.
struct FhState {
    _media: MediaFh,
    nonblock: bool,
    /// The process that opened it: what the handle holds counts against its limits.
    tgid: i32,
    /// Subscriptions: (type, id) -> (flags, queue depth of that subscription).
    subs: HashMap<(u32, u32), (u32, usize)>,
    events: VecDeque<v4l2_event>,
    sequence: u32,
}

pub struct Node {
    me: Weak<Node>,
    path: String,
    dev: DevRef,
    state: Arc<InstanceState>,
    breakpoints: Arc<Breakpoints>,
    handler: Handler,
    next_fh: AtomicU64,
    open: Mutex<HashMap<u64, FhState>>,
    /// Blocking VIDIOC_DQEVENT calls waiting for an event, by file handle.
    parked: Mutex<Vec<(u64, ReplyIoctl, Parked)>>,
    /// Blocking VIDIOC_DQBUF calls waiting for a buffer: handle, the caller's struct, reply.
    parked_dq: Mutex<Vec<(u64, v4l2_buffer, ReplyIoctl, Parked)>>,
    notifier: Mutex<Option<Notifier>>,
    limits: Arc<Limits>,
    /// A shared media device's node under a legacy lifetime model: its driver's context,
    /// which that driver's unbind frees while another driver keeps the media device.
    driver_context: std::sync::OnceLock<Weak<DriverContext>>,
}

/// The memory a driver allocates at probe (its `video_device`s inside), freed at its unbind
/// under the legacy lifetime models.
#[derive(Debug, Default)]
pub struct DriverContext;

impl Node {
    /// The node lives in `ctx`: once it is gone, reaching the node's objects is a
    /// use-after-free (as reaching a freed media device is).
    pub fn set_driver_context(&self, ctx: Weak<DriverContext>) {
        let _ = self.driver_context.set(ctx);
    }

    /// The device's objects as a call reaches them: None once the media device, or the
    /// driver context the node lives in, is freed.
    fn reach(&self) -> Option<Arc<MediaDevice>> {
        if self
            .driver_context
            .get()
            .is_some_and(|c| c.upgrade().is_none())
        {
            return None;
        }
        self.dev.get()
    }

    pub fn new(
        path: String,
        dev: Arc<MediaDevice>,
        state: Arc<InstanceState>,
        breakpoints: Arc<Breakpoints>,
        handler: Handler,
        limits: Arc<Limits>,
    ) -> Arc<Self> {
        let dev = match state.lifetime {
            Lifetime::Refcount => DevRef::Pinned(dev),
            Lifetime::Devm | Lifetime::RegisteredBit => DevRef::Unpinned(Arc::downgrade(&dev)),
        };
        let node = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            path,
            dev,
            state,
            breakpoints,
            handler,
            next_fh: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
            parked: Mutex::new(Vec::new()),
            parked_dq: Mutex::new(Vec::new()),
            notifier: Mutex::new(None),
            limits,
            driver_context: std::sync::OnceLock::new(),
        });
        // A buffer queue changed: wake pollers and parked DQBUFs of that handle.
        if let Handler::Video(h) = &node.handler {
            let me = Arc::downgrade(&node);
            h.set_notify(Arc::new(move |fh| {
                if let Some(n) = me.upgrade() {
                    n.queue_changed(fh);
                }
            }));
        }
        // Control changes become V4L2_EVENT_CTRL on this node's subscribers.
        if let Handler::Subdev(h) = &node.handler {
            if let Some(c) = h.controls() {
                let me = Arc::downgrade(&node);
                c.set_notify(Some(Arc::new(move |change| {
                    if let Some(n) = me.upgrade() {
                        n.queue_ctrl_change(change);
                    }
                })));
            }
        }
        node
    }

    /// Unplug reached this node: in the strict profile every blocked call wakes with ENODEV;
    /// otherwise a blocked VIDIOC_DQEVENT keeps blocking, as on Linux today.
    /// Streaming stops and queues are released (`vb2_video_unregister_device`), which wakes a
    /// blocked VIDIOC_DQBUF with EINVAL.
    pub fn unplugged(&self) {
        if self.state.profile == crate::instance::ErrnoProfile::Strict {
            let parked: Vec<_> = self.parked.lock().drain(..).collect();
            for (_, r, _) in parked {
                r.error(Errno::ENODEV);
            }
            let parked: Vec<_> = self.parked_dq.lock().drain(..).collect();
            for (_, _, r, _) in parked {
                r.error(Errno::ENODEV);
            }
        }
        if let Handler::Video(h) = &self.handler {
            h.unplugged();
        }
    }

    /// `ctl inject` on a video node's pipeline: lost frames, a stall.
    pub fn stream_fault(&self, drop_frames: u32, stall: std::time::Duration) -> Result<(), String> {
        match &self.handler {
            Handler::Video(h) => {
                h.stream_fault(drop_frames, stall);
                Ok(())
            }
            _ => Err(format!(
                "{} is not a video node: frame faults go to a pipeline's video node",
                self.path
            )),
        }
    }

    /// The driver completed a buffer or cancelled the queue of `fh`: parked DQBUFs try again
    /// (the first one that gets a result is answered), pollers are woken.
    fn queue_changed(&self, fh: u64) {
        if let Handler::Video(h) = &self.handler {
            let mut parked = self.parked_dq.lock();
            if let Some(pos) = parked.iter().position(|(f, _, _, _)| *f == fh) {
                let b = parked[pos].1;
                let r = h.dqbuf(fh, b, false);
                if !r.would_block {
                    let (_, _, reply, _) = parked.remove(pos);
                    drop(parked);
                    match r.result {
                        Ok(b) => reply.done(0, b.as_bytes()),
                        Err(e) => reply.error(e),
                    }
                }
            }
        }
        if let Some(n) = self.notifier.lock().as_ref() {
            n.wake(fh);
        }
    }

    /// `MCEMU_IOC_MMAP` from the preload shim: a grant for the MMAP buffer at the offset, to
    /// collect on the buffer socket (see `buffers.rs`). Like `vb2_mmap`: EINVAL for no such
    /// buffer or a mapping larger than it.
    fn mmap_ioctl(
        &self,
        h: &dyn VideoIoctls,
        round: &mut IoctlRound<'_>,
        reply: ReplyIoctl,
        pid: u32,
    ) {
        let req = *round.request();
        let mut m: ioctl_abi::mcemu::mcemu_mmap = match round.inout_struct(req.arg) {
            Ok(Some(v)) => v,
            Ok(None) => return reply.retry_round(round),
            Err(e) => return reply.error(e),
        };
        let buffer = match h.mmap_buffer(req.fh, m.offset, m.length, m.vm) {
            Ok(b) => b,
            Err(e) => return reply.error(e),
        };
        let Some((token, socket)) = crate::buffers::GRANTS.grant(buffer, pid) else {
            return reply.error(Errno::ENODEV);
        };
        m.token = token;
        m.socket = [0; 108];
        let path = socket.as_os_str().as_encoded_bytes();
        let n = path.len().min(107);
        m.socket[..n].copy_from_slice(&path[..n]);
        reply.done(0, m.as_bytes());
    }

    /// VIDIOC_DQBUF: answered at once, or parked until a buffer is done, the queue is
    /// cancelled, a signal, or (strict profile) unplug. A second blocking DQBUF on the same
    /// handle gets EBUSY, as vb2's `waiting_in_dqbuf` gives.
    fn dqbuf_ioctl(&self, h: &dyn VideoIoctls, round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
        let req = *round.request();
        let b: v4l2_buffer = match round.inout_struct(req.arg) {
            Ok(Some(v)) => v,
            Ok(None) => return reply.retry_round(round),
            Err(e) => return reply.error(e),
        };
        let (nonblock, tgid) = self.nonblock_and_opener(req.fh);
        let mut parked = self.parked_dq.lock();
        let r = h.dqbuf(req.fh, b, nonblock);
        if !r.would_block {
            drop(parked);
            return match r.result {
                Ok(b) => reply.done(0, b.as_bytes()),
                Err(e) => reply.error(e),
            };
        }
        if parked.iter().any(|(f, _, _, _)| *f == req.fh) {
            return reply.error(Errno::EBUSY);
        }
        let slot = match self.limits.park(tgid, "VIDIOC_DQBUF") {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        let unique = reply.unique();
        let handle = reply.interrupt_handle();
        parked.push((req.fh, b, reply, slot));
        drop(parked);
        let me = self.me.clone();
        handle.on_interrupt(move || {
            let Some(node) = me.upgrade() else { return };
            let mut parked = node.parked_dq.lock();
            if let Some(pos) = parked.iter().position(|(_, _, r, _)| r.unique() == unique) {
                let (_, _, r, _) = parked.remove(pos);
                drop(parked);
                r.error(Errno::EINTR);
            }
        });
    }

    /// `v4l2_event_queue_fh` for every handle subscribed to (`type_`, `id`): appends the event
    /// (dropping the oldest beyond the queue depth), completes a blocked DQEVENT, wakes pollers.
    pub fn queue_event(&self, type_: u32, id: u32, payload: &[u8]) {
        self.queue_event_to(type_, id, payload, |_, _| true);
    }

    /// `send_event` of the control core: a `V4L2_EVENT_CTRL` to each handle subscribed to the
    /// control, except the one that made the change unless it asked for feedback.
    pub fn queue_ctrl_change(&self, change: Change) {
        let Handler::Subdev(h) = &self.handler else {
            return;
        };
        let Some((ev, _)) = h
            .controls()
            .and_then(|c| c.event(change.id, change.changes))
        else {
            return;
        };
        self.queue_event_to(V4L2_EVENT_CTRL, change.id, ev.as_bytes(), |fh, flags| {
            change.origin != Some(fh) || flags & V4L2_EVENT_SUB_FL_ALLOW_FEEDBACK != 0
        });
    }

    fn queue_event_to(&self, type_: u32, id: u32, payload: &[u8], to: impl Fn(u64, u32) -> bool) {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok();
        let mut woken = Vec::new();
        {
            let mut open = self.open.lock();
            for (fh, st) in open.iter_mut() {
                let Some(&(flags, depth)) = st.subs.get(&(type_, id)) else {
                    continue;
                };
                if !to(*fh, flags) {
                    continue;
                }
                let mut ev = v4l2_event::zeroed();
                ev.type_ = type_;
                ev.id = id;
                let n = payload.len().min(ev.u.len());
                ev.u[..n].copy_from_slice(&payload[..n]);
                ev.sequence = st.sequence;
                st.sequence = st.sequence.wrapping_add(1);
                if let Some(t) = now {
                    ev.timestamp.tv_sec = t.tv_sec();
                    ev.timestamp.tv_nsec = t.tv_nsec();
                }
                // Each subscription has its own ring of `depth` events; a control event that
                // overflows it merges the older one's changes (`ctrl_merge`).
                let same = |e: &v4l2_event| e.type_ == type_ && e.id == id;
                if st.events.iter().filter(|e| same(e)).count() >= depth.max(1) {
                    if let Some(pos) = st.events.iter().position(same) {
                        if let Some(old) = st.events.remove(pos) {
                            if type_ == V4L2_EVENT_CTRL {
                                let merged =
                                    u32::from_ne_bytes(old.u[..4].try_into().unwrap_or_default())
                                        | u32::from_ne_bytes(
                                            ev.u[..4].try_into().unwrap_or_default(),
                                        );
                                ev.u[..4].copy_from_slice(&merged.to_ne_bytes());
                            }
                        }
                    }
                }
                st.events.push_back(ev);
                woken.push(*fh);
            }
        }
        for fh in woken {
            self.complete_parked(fh);
            if let Some(n) = self.notifier.lock().as_ref() {
                n.wake(fh);
            }
        }
    }

    /// What a blocking call on `fh` needs: O_NONBLOCK from open(), and the process a parked
    /// call counts against.
    fn nonblock_and_opener(&self, fh: u64) -> (bool, i32) {
        self.open
            .lock()
            .get(&fh)
            .map_or((false, 0), |s| (s.nonblock, s.tgid))
    }

    /// Hands the oldest queued event of `fh` to a blocked DQEVENT, if both exist.
    fn complete_parked(&self, fh: u64) {
        let mut parked = self.parked.lock();
        let Some(pos) = parked.iter().position(|(f, _, _)| *f == fh) else {
            return;
        };
        let Some(ev) = self.dequeue(fh) else {
            return;
        };
        let (_, reply, _) = parked.remove(pos);
        drop(parked);
        reply.done(0, ev.as_bytes());
    }

    fn dequeue(&self, fh: u64) -> Option<v4l2_event> {
        let mut open = self.open.lock();
        let st = open.get_mut(&fh)?;
        let mut ev = st.events.pop_front()?;
        ev.pending = st.events.len() as u32;
        Some(ev)
    }

    /// VIDIOC_SUBSCRIBE_EVENT, VIDIOC_UNSUBSCRIBE_EVENT and VIDIOC_DQEVENT: the V4L2 event core.
    fn event_ioctl(&self, h: &dyn SubdevIoctls, round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
        if !h.has_events() {
            return reply.error(Errno::ENOTTY);
        }
        let req = *round.request();
        if req.cmd == VIDIOC_DQEVENT {
            round.output(req.arg, core::mem::size_of::<v4l2_event>());
            if !round.is_complete() {
                return reply.retry_round(round);
            }
            if let Some(ev) = self.dequeue(req.fh) {
                return reply.done(0, ev.as_bytes());
            }
            let (nonblock, tgid) = self.nonblock_and_opener(req.fh);
            if nonblock {
                return reply.error(Errno::ENOENT);
            }
            let slot = match self.limits.park(tgid, "VIDIOC_DQEVENT") {
                Ok(s) => s,
                Err(e) => return reply.error(e),
            };
            // Park until an event comes, a signal, or (strict profile) unplug.
            let unique = reply.unique();
            let handle = reply.interrupt_handle();
            self.parked.lock().push((req.fh, reply, slot));
            let me = self.me.clone();
            handle.on_interrupt(move || {
                let Some(node) = me.upgrade() else { return };
                let mut parked = node.parked.lock();
                if let Some(pos) = parked.iter().position(|(_, r, _)| r.unique() == unique) {
                    let (_, r, _) = parked.remove(pos);
                    drop(parked);
                    r.error(Errno::EINTR);
                }
            });
            // An event may have come between the check and parking.
            self.complete_parked(req.fh);
            return;
        }
        let sub: v4l2_event_subscription = match round.input_struct(req.arg) {
            Ok(Some(v)) => v,
            Ok(None) => return reply.retry_round(round),
            Err(e) => return reply.error(e),
        };
        let mut open = self.open.lock();
        let Some(st) = open.get_mut(&req.fh) else {
            return reply.error(Errno::EBADF);
        };
        if req.cmd == VIDIOC_SUBSCRIBE_EVENT {
            // Control events are the control core's (`v4l2_ctrl_subdev_subscribe_event`).
            let controls = h.controls().filter(|_| sub.type_ == V4L2_EVENT_CTRL);
            let (key, depth) = match &controls {
                Some(c) => match c.resolve(sub.id) {
                    Some(id) => ((V4L2_EVENT_CTRL, id), 1),
                    None => return reply.error(Errno::EINVAL),
                },
                None => match h.subscribe_event(&sub) {
                    Ok(depth) => ((sub.type_, sub.id), depth),
                    Err(e) => return reply.error(e),
                },
            };
            let fresh = !st.subs.contains_key(&key);
            st.subs.insert(key, (sub.flags, depth));
            drop(open);
            // v4l2_ctrl_add_event: the current state, once, unless it is a class entry.
            if let Some(c) =
                controls.filter(|_| fresh && sub.flags & V4L2_EVENT_SUB_FL_SEND_INITIAL != 0)
            {
                if let Some((mut ev, false)) = c.event(key.1, CH_FLAGS) {
                    if ev.flags & V4L2_CTRL_FLAG_WRITE_ONLY == 0 {
                        ev.changes |= CH_VALUE;
                    }
                    let fh = req.fh;
                    self.queue_event_to(V4L2_EVENT_CTRL, key.1, ev.as_bytes(), |f, _| f == fh);
                }
            }
            reply.done(0, &[])
        } else {
            if sub.type_ == V4L2_EVENT_ALL {
                st.subs.clear();
            } else {
                let id = match (sub.type_, h.controls()) {
                    (V4L2_EVENT_CTRL, Some(c)) => c.resolve(sub.id).unwrap_or(sub.id),
                    _ => sub.id,
                };
                st.subs.remove(&(sub.type_, id));
            }
            let subs = st.subs.clone();
            st.events.retain(|e| subs.contains_key(&(e.type_, e.id)));
            reply.done(0, &[])
        }
    }

    /// The object a syscall touches first: under devm the device node lives inside the freed
    /// driver context, so even the registered check reads freed memory.
    fn node_object(&self) -> &'static str {
        match self.handler.kind() {
            NodeKind::Media => "media_devnode",
            NodeKind::Video | NodeKind::Subdev => "video_device",
        }
    }

    fn uaf(&self, syscall: String, stage: &str, object: &str, pid: u32) {
        self.state.record_uaf(UafEvent {
            node: self.path.clone(),
            syscall,
            stage: stage.into(),
            object: object.into(),
            pid,
            thread: std::thread::current().name().unwrap_or("?").into(),
        });
    }

    /// Under devm, entering a syscall after unplug touches the freed device node.
    fn entry_access(&self, syscall: impl FnOnce() -> String, pid: u32) -> bool {
        if self.state.lifetime == Lifetime::Devm && self.reach().is_none() {
            self.uaf(syscall(), "entry", self.node_object(), pid);
            return false;
        }
        true
    }

    fn run(
        &self,
        req: IoctlRequest<'_>,
        memory: Option<Arc<dyn ClientMemory>>,
        reply: ReplyIoctl,
        pid: u32,
        _call: CallGuard,
    ) {
        self.breakpoints.at(&self.path, req.cmd, Stage::Entry, pid);
        if let Some(e) = self.breakpoints.fault(&self.path, req.cmd) {
            return reply.error(e);
        }
        let mut round = IoctlRound::new(req, memory);
        if req.cmd == ioctl_abi::mcemu::MCEMU_IOC_SETFL {
            // The preload shim passes on an fcntl(F_SETFL): O_NONBLOCK now counts.
            return match round.input_struct::<u32>(req.arg) {
                Ok(Some(flags)) => {
                    if let Some(st) = self.open.lock().get_mut(&req.fh) {
                        st.nonblock = flags & libc::O_NONBLOCK as u32 != 0;
                    }
                    reply.done(0, &[])
                }
                Ok(None) => reply.retry_round(&round),
                Err(e) => reply.error(e),
            };
        }
        if let Handler::Video(h) = &self.handler {
            if req.cmd == ioctl_abi::mcemu::MCEMU_IOC_MMAP {
                return self.mmap_ioctl(&**h, &mut round, reply, pid);
            }
            if req.cmd == VIDIOC_DQBUF {
                // Like any call, DQBUF reaches the driver's objects at stage "mid".
                let st = CallStages {
                    node: self,
                    cmd: req.cmd,
                    pid,
                };
                if let Err(e) = st.device() {
                    return reply.error(e);
                }
                return self.dqbuf_ioctl(&**h, &mut round, reply);
            }
        }
        if let Handler::Subdev(h) = &self.handler {
            if matches!(
                req.cmd,
                VIDIOC_SUBSCRIBE_EVENT | VIDIOC_UNSUBSCRIBE_EVENT | VIDIOC_DQEVENT
            ) {
                return self.event_ioctl(&**h, &mut round, reply);
            }
        }
        let st = CallStages {
            node: self,
            cmd: req.cmd,
            pid,
        };
        match &self.handler {
            Handler::Media => dispatch::media(&st, &mut round, reply),
            Handler::Video(_) => dispatch::video(&st, &mut round, reply),
            Handler::Subdev(_) => dispatch::subdev(&st, &mut round, reply),
        }
    }
}

fn ioctl_name(cmd: u32) -> String {
    ioctl_abi::all_ioctls()
        .find(|(_, c)| *c == cmd)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("{cmd:#x}"))
}

/// One call's stages: breakpoints, and the access to the device's objects.
struct CallStages<'a> {
    node: &'a Node,
    cmd: u32,
    pid: u32,
}

impl CallStages<'_> {
    fn device(&self) -> Result<Arc<MediaDevice>, Errno> {
        let n = self.node;
        n.breakpoints.at(&n.path, self.cmd, Stage::Mid, self.pid);
        n.reach().ok_or_else(|| {
            n.uaf(
                format!("ioctl {}", ioctl_name(self.cmd)),
                "mid",
                "media_device",
                self.pid,
            );
            n.state.profile.ioctl(n.handler.kind())
        })
    }
}

/// The handler a node type's dispatcher works with, picked at stage "mid".
trait Pick: Sized {
    fn pick(handler: &Handler, dev: Arc<MediaDevice>) -> Option<Self>;
}

impl Pick for Arc<dyn MediaIoctls> {
    fn pick(_: &Handler, dev: Arc<MediaDevice>) -> Option<Self> {
        Some(dev)
    }
}

impl Pick for Arc<dyn VideoIoctls> {
    fn pick(handler: &Handler, _: Arc<MediaDevice>) -> Option<Self> {
        match handler {
            Handler::Video(h) => Some(h.clone()),
            _ => None,
        }
    }
}

impl Pick for Arc<dyn SubdevIoctls> {
    fn pick(handler: &Handler, _: Arc<MediaDevice>) -> Option<Self> {
        match handler {
            Handler::Subdev(h) => Some(h.clone()),
            _ => None,
        }
    }
}

impl<H: Pick> Stages<H> for CallStages<'_> {
    fn mid(&self) -> Result<H, Errno> {
        // Video and sub-device state lives in the driver context too: reach it first.
        let dev = self.device()?;
        H::pick(&self.node.handler, dev).ok_or(Errno::ENOTTY)
    }
    fn reply(&self) {
        let n = self.node;
        n.breakpoints.at(&n.path, self.cmd, Stage::Reply, self.pid);
    }
}

impl Device for Node {
    fn open(&self, ctx: &Context<'_>, flags: u32) -> Result<u64, Errno> {
        if self.state.is_unplugged() {
            return Err(self.open_refused());
        }
        let dev = self.reach().ok_or_else(|| self.open_refused())?;
        let tgid = i32::try_from(ctx.pid).unwrap_or(0);
        let tgid = cuse::memory::tgid_of(tgid).unwrap_or(tgid);
        self.limits.open_handle(tgid, &self.path)?;
        let media = match self.state.lifetime {
            Lifetime::Refcount => MediaFh::new(dev),
            Lifetime::Devm | Lifetime::RegisteredBit => MediaFh::unpinned(&dev),
        };
        self.notifier.lock().get_or_insert_with(|| ctx.notifier());
        let n = self.next_fh.fetch_add(1, Ordering::Relaxed);
        match &self.handler {
            Handler::Subdev(h) => h.open(n),
            Handler::Video(h) => {
                h.open(n);
                h.set_budget(n, self.limits.budget(tgid));
            }
            Handler::Media => {}
        }
        self.open.lock().insert(
            n,
            FhState {
                _media: media,
                // Ioctls do not see later fcntl() changes over CUSE: O_NONBLOCK is open()'s.
                nonblock: flags & libc::O_NONBLOCK as u32 != 0,
                tgid,
                subs: HashMap::new(),
                events: VecDeque::new(),
                sequence: 0,
            },
        );
        Ok(n)
    }

    fn release(&self, fh: u64) {
        self.parked.lock().retain(|(f, _, _)| *f != fh);
        self.parked_dq.lock().retain(|(f, _, _, _)| *f != fh);
        match &self.handler {
            Handler::Subdev(h) => h.release(fh),
            Handler::Video(h) => h.release(fh),
            Handler::Media => {}
        }
        let fh = self.open.lock().remove(&fh);
        if let Some(f) = &fh {
            self.limits.close_handle(f.tgid);
        }
        // Under devm the release path (v4l2_release, cdev_put) touches the freed device node.
        if fh.is_some() {
            self.entry_access(|| "close".into(), 0);
        }
        drop(fh);
    }

    fn open_refused(&self) -> Errno {
        self.state.profile.open(self.handler.kind())
    }

    fn poll(&self, ctx: &Context<'_>, fh: u64, _events: u32) -> Result<u32, Errno> {
        if !self.entry_access(|| "poll".into(), ctx.pid) || self.state.is_unplugged() {
            return Ok(self.state.profile.poll(self.handler.kind()));
        }
        match &self.handler {
            // v4l2_subdev_poll: events only.
            Handler::Subdev(h) if !h.has_events() => Ok(libc::POLLERR as u32),
            Handler::Subdev(_) => {
                let pending = self
                    .open
                    .lock()
                    .get(&fh)
                    .is_some_and(|s| !s.events.is_empty());
                Ok(if pending { libc::POLLPRI as u32 } else { 0 })
            }
            // vb2_poll: the handle's queue.
            Handler::Video(h) => Ok(h.poll(fh)),
            // DEFAULT_POLLMASK, as media_poll() answers without a poll op.
            Handler::Media => {
                Ok((libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32)
            }
        }
    }

    fn ioctl(&self, ctx: &Context<'_>, req: IoctlRequest<'_>, reply: ReplyIoctl) {
        if !self.open.lock().contains_key(&req.fh) {
            return reply.error(Errno::EBADF);
        }
        let errno = self.state.profile.ioctl(self.handler.kind());
        if !self.entry_access(|| format!("ioctl {}", ioctl_name(req.cmd)), ctx.pid) {
            return reply.error(errno);
        }
        // The registered check at entry; a call that passed it runs to completion.
        let Some(call) = self.state.enter() else {
            return reply.error(errno);
        };
        let memory = ctx.memory();
        if !self.breakpoints.armed_for(&self.path, req.cmd) {
            return self.run(req, memory, reply, ctx.pid, call);
        }
        // A call that may park runs on its own thread, never on a reader thread.
        let Some(me) = self.me.upgrade() else {
            return reply.error(errno);
        };
        let (data, pid) = (req.in_data.to_vec(), ctx.pid);
        let (fh, cmd, arg, flags, out_size) = (req.fh, req.cmd, req.arg, req.flags, req.out_size);
        let spawned = std::thread::Builder::new()
            .name("breakpoint-call".into())
            .spawn(move || {
                let req = IoctlRequest {
                    fh,
                    cmd,
                    arg,
                    flags,
                    in_data: &data,
                    out_size,
                };
                me.run(req, memory, reply, pid, call);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a thread for a breakpoint call");
        }
    }

    // read/write: EINVAL before and after unplug: none of these nodes has a read/write op, and
    // that check comes first in the kernel (the trait default).
}

#[cfg(test)]
mod tests {
    use cuse::inproc::{InProcFile, InProcKernel};
    use cuse::{DeviceInfo, Session};
    use ioctl_abi::cstr;
    use ioctl_abi::media::*;
    use media_graph::{Audit, Kind};
    use omap3isp::topology::{build, NodeRegistrar, SubdevInfo, VideoNodeInfo};
    use omap3isp::Board;
    use zerocopy::{FromBytes, IntoBytes};

    use super::*;
    use crate::breakpoints::Stage;

    struct Numbers(u32);
    impl NodeRegistrar for Numbers {
        type Error = Errno;
        fn register_video(&mut self, _: &VideoNodeInfo) -> Result<(u32, u32), Errno> {
            self.0 += 1;
            Ok((60, self.0))
        }
        fn register_subdev(&mut self, _: &SubdevInfo) -> Result<(u32, u32), Errno> {
            self.0 += 1;
            Ok((60, self.0))
        }
    }

    struct Rig {
        k: InProcKernel,
        audit: Arc<Audit>,
        handle: cuse::SessionHandle,
        /// The driver's reference, dropped at unplug.
        dev: Option<Arc<MediaDevice>>,
        state: Arc<InstanceState>,
        bps: Arc<Breakpoints>,
    }

    impl Rig {
        fn unplug(&mut self) {
            self.state.unplug();
            self.dev.take().unwrap().unregister();
            self.handle.unregister();
        }
    }

    fn start(board: Board) -> (InProcKernel, Arc<Audit>, cuse::SessionHandle) {
        let r = rig(board, Lifetime::Refcount);
        (r.k, r.audit, r.handle)
    }

    fn rig(board: Board, lifetime: Lifetime) -> Rig {
        let state = Arc::new(InstanceState::new(
            0,
            crate::instance::ErrnoProfile::Mainline,
            lifetime,
        ));
        let audit = Audit::new();
        let dev = MediaDevice::new(board.media_device_info(0x060100), audit.clone());
        build(board, &dev, &mut Numbers(0)).unwrap();
        dev.register();
        let k = InProcKernel::new();
        let bps: Arc<Breakpoints> = Arc::default();
        let node = Node::new(
            "/dev/media0".into(),
            dev.clone(),
            state.clone(),
            bps.clone(),
            Handler::Media,
            crate::limits::Limits::new(Default::default()),
        );
        let s = Session::start(k.transport(), &DeviceInfo::new("media0"), node).unwrap();
        let handle = s.handle();
        std::thread::spawn(move || s.run(1));
        Rig {
            k,
            audit,
            handle,
            dev: Some(dev),
            state,
            bps,
        }
    }

    fn ioctl_struct<T: IntoBytes + FromBytes + zerocopy::Immutable>(
        k: &InProcKernel,
        f: &InProcFile,
        cmd: u32,
        v: &T,
    ) -> (Result<i32, Errno>, T) {
        k.memory().map(0x1000, v.as_bytes().to_vec());
        let r = f.ioctl(cmd, 0x1000);
        let out = T::read_from_bytes(&k.memory().region(0x1000).unwrap()).unwrap();
        (r, out)
    }

    #[test]
    fn device_info_over_the_wire() {
        let (k, _, _) = start(Board::N900);
        let f = k.open(libc::O_RDWR).unwrap();
        let (r, i) = ioctl_struct(&k, &f, MEDIA_IOC_DEVICE_INFO, &media_device_info::zeroed());
        assert_eq!(r, Ok(0));
        assert_eq!(cstr(&i.driver), "omap3isp");
        assert_eq!(cstr(&i.model), "TI OMAP3 ISP");
        assert_eq!(cstr(&i.bus_info), "platform:480bc000.isp");
        assert_eq!(i.hw_revision, 0x20);
    }

    #[test]
    fn unknown_ioctls_bad_pointers_read_and_poll() {
        let (k, _, _) = start(Board::BeagleboardXm);
        let f = k.open(libc::O_RDWR).unwrap();
        assert_eq!(f.ioctl(0xc0487c10, 0x1000), Err(Errno::ENOTTY));
        assert_eq!(
            f.ioctl(ioctl_abi::videodev2::VIDIOC_QUERYCAP, 0x1000),
            Err(Errno::ENOTTY)
        );
        assert_eq!(f.ioctl(MEDIA_IOC_REQUEST_ALLOC, 0x1000), Err(Errno::ENOTTY));
        assert_eq!(
            f.ioctl(MEDIA_IOC_DEVICE_INFO, 0x9999_0000),
            Err(Errno::EFAULT)
        );
        assert_eq!(f.read(10), Err(Errno::EINVAL));
        let mask = (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32;
        assert_eq!(f.poll(libc::POLLIN as u32), mask);
    }

    #[test]
    fn enum_links_fills_both_arrays_in_three_rounds() {
        let (k, _, _) = start(Board::BeagleboardXm);
        let f = k.open(libc::O_RDWR).unwrap();
        k.memory().map(0x10_000, vec![0xff; 3 * 20]);
        k.memory().map(0x20_000, vec![0xff; 6 * 52]);
        let mut req = media_links_enum::zeroed();
        req.entity = 15;
        req.pads = 0x10_000;
        req.links = 0x20_000;
        req.reserved = [7; 4];
        let (r, out) = ioctl_struct(&k, &f, MEDIA_IOC_ENUM_LINKS, &req);
        assert_eq!(r, Ok(0));
        assert_eq!(out.reserved, [0; 4], "reserved is cleared");
        let pads = k.memory().region(0x10_000).unwrap();
        let p2 = media_pad_desc::read_from_bytes(&pads[40..60]).unwrap();
        assert_eq!(
            (p2.entity, p2.index, p2.flags),
            (15, 2, MEDIA_PAD_FL_SOURCE)
        );
        let links = k.memory().region(0x20_000).unwrap();
        let l5 = media_link_desc::read_from_bytes(&links[5 * 52..]).unwrap();
        assert_eq!((l5.source.entity, l5.sink.entity, l5.flags), (15, 49, 3));
        // NULL arrays are skipped; an unknown entity is EINVAL.
        req.pads = 0;
        req.links = 0;
        assert_eq!(ioctl_struct(&k, &f, MEDIA_IOC_ENUM_LINKS, &req).0, Ok(0));
        req.entity = 16;
        assert_eq!(
            ioctl_struct(&k, &f, MEDIA_IOC_ENUM_LINKS, &req).0,
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn g_topology_two_pass_short_arrays_and_null_pointers() {
        let (k, _, _) = start(Board::BeagleboardXm);
        let f = k.open(libc::O_RDWR).unwrap();
        // Pass 1: counts only.
        let (r, t) = ioctl_struct(&k, &f, MEDIA_IOC_G_TOPOLOGY, &media_v2_topology::zeroed());
        assert_eq!(r, Ok(0));
        let counts = ({ t.num_entities }, { t.num_interfaces }, { t.num_pads }, {
            t.num_links
        });
        assert_eq!(counts, (16, 16, 22, 32));
        assert_eq!({ t.topology_version }, 102);
        // Pass 2: all arrays.
        let mut q = t;
        for (i, (n, size)) in [(16usize, 96usize), (16, 112), (22, 32), (32, 40)]
            .iter()
            .enumerate()
        {
            k.memory()
                .map(0x100_000 * (i as u64 + 1), vec![0; n * size]);
        }
        q.ptr_entities = 0x100_000;
        q.ptr_interfaces = 0x200_000;
        q.ptr_pads = 0x300_000;
        q.ptr_links = 0x400_000;
        let (r, _) = ioctl_struct(&k, &f, MEDIA_IOC_G_TOPOLOGY, &q);
        assert_eq!(r, Ok(0));
        let ents = k.memory().region(0x100_000).unwrap();
        let last = media_v2_entity::read_from_bytes(&ents[15 * 96..]).unwrap();
        assert_eq!(({ last.id }, cstr(&last.name)), (81, "mt9p031 1-0048"));
        // Entities array too short: ENOSPC, the first elements are written, later arrays not.
        k.memory().map(0x500_000, vec![0; 2 * 96]);
        k.memory().map(0x600_000, vec![0xee; 16 * 112]);
        let mut short = media_v2_topology::zeroed();
        short.num_entities = 2;
        short.ptr_entities = 0x500_000;
        short.num_interfaces = 16;
        short.ptr_interfaces = 0x600_000;
        let (r, back) = ioctl_struct(&k, &f, MEDIA_IOC_G_TOPOLOGY, &short);
        assert_eq!(r, Err(Errno::ENOSPC));
        assert_eq!(
            { back.num_entities },
            2,
            "the struct is not copied back on error"
        );
        let two = k.memory().region(0x500_000).unwrap();
        assert_eq!(
            { media_v2_entity::read_from_bytes(&two[96..]).unwrap().id },
            4
        );
        assert_eq!(
            k.memory().region(0x600_000).unwrap()[0],
            0xee,
            "interfaces untouched"
        );
        // A bad array pointer faults.
        let mut bad = t;
        bad.ptr_links = 0x7777_0000;
        assert_eq!(
            ioctl_struct(&k, &f, MEDIA_IOC_G_TOPOLOGY, &bad).0,
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn setup_link_and_enum_entities_over_the_wire() {
        let (k, _, _) = start(Board::BeagleboardXm);
        let f = k.open(libc::O_RDWR).unwrap();
        let mut d = media_link_desc::zeroed();
        d.source.entity = 81;
        d.sink.entity = 15;
        d.flags = MEDIA_LNK_FL_ENABLED;
        d.reserved = [1, 2];
        let (r, out) = ioctl_struct(&k, &f, MEDIA_IOC_SETUP_LINK, &d);
        assert_eq!(r, Ok(0));
        assert_eq!(out.reserved, [0, 0]);
        d.source.entity = 1;
        d.source.index = 1;
        assert_eq!(
            ioctl_struct(&k, &f, MEDIA_IOC_SETUP_LINK, &d).0,
            Err(Errno::EBUSY)
        );
        let mut e = media_entity_desc::zeroed();
        e.id = 41;
        let (r, out) = ioctl_struct(&k, &f, MEDIA_IOC_ENUM_ENTITIES, &e);
        assert_eq!(r, Ok(0));
        assert_eq!(
            (cstr(&out.name), out.flags),
            ("OMAP3 ISP resizer output", MEDIA_ENT_FL_DEFAULT)
        );
    }

    #[test]
    fn media_device_lives_while_a_handle_is_open_after_unregistration() {
        let mut r = rig(Board::N900, Lifetime::Refcount);
        let (k, audit) = (r.k.clone(), r.audit.clone());
        let f = k.open(libc::O_RDWR).unwrap();
        let (res, _) = ioctl_struct(&k, &f, MEDIA_IOC_DEVICE_INFO, &media_device_info::zeroed());
        assert_eq!(res, Ok(0));
        r.unplug();
        assert_eq!(audit.live(Kind::MediaDevice), 1);
        let (res, _) = ioctl_struct(&k, &f, MEDIA_IOC_DEVICE_INFO, &media_device_info::zeroed());
        assert_eq!(
            res,
            Err(Errno::EIO),
            "mainline: media ioctls after unregister give EIO"
        );
        assert_eq!(f.read(4), Err(Errno::EINVAL));
        assert_eq!(
            f.poll(libc::POLLIN as u32),
            (libc::POLLERR | libc::POLLHUP) as u32
        );
        f.close().unwrap();
        // Session closed at the last release; the node and its pin go with the session thread.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while audit.live(Kind::MediaDevice) != 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(audit.live(Kind::MediaDevice), 0);
        assert_eq!(audit.live(Kind::Entity), 0);
        assert_eq!(audit.live(Kind::FileHandle), 0);
        assert!(
            r.state.uaf_events().is_empty(),
            "the reference model never touches freed memory"
        );
    }

    /// Parks MEDIA_IOC_DEVICE_INFO at `stage`, unplugs, lets it go on; returns its result.
    fn in_flight_across_unplug(r: &mut Rig, stage: Stage) -> Result<i32, Errno> {
        r.k.memory()
            .map(0x1000, media_device_info::zeroed().as_bytes().to_vec());
        r.bps
            .arm("/dev/media0", "MEDIA_IOC_DEVICE_INFO", stage)
            .unwrap();
        let f = r.k.open(libc::O_RDWR).unwrap();
        let call = f.start_ioctl(MEDIA_IOC_DEVICE_INFO, 0x1000);
        let hit = r
            .bps
            .wait_hit(std::time::Duration::from_secs(10))
            .expect("the call parks");
        assert_eq!(hit.stage, stage);
        r.unplug();
        r.bps.cont(None).unwrap();
        call.join()
    }

    /// Not a test: `cargo test -p mcemu --release -- --ignored hot_path --nocapture` times the
    /// daemon's ioctl path over the in-process transport (for profiling with perf).
    #[test]
    #[ignore]
    fn hot_path() {
        let (r, _node) = subdev_rig("OMAP3 ISP CCDC", crate::instance::ErrnoProfile::Mainline);
        let f = r.k.open(libc::O_RDWR).unwrap();
        r.k.memory().map(
            0x1000,
            ioctl_abi::subdev::v4l2_subdev_capability::zeroed()
                .as_bytes()
                .to_vec(),
        );
        let n = 200_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            assert_eq!(
                f.ioctl(ioctl_abi::subdev::VIDIOC_SUBDEV_QUERYCAP, 0x1000),
                Ok(0)
            );
        }
        println!(
            "SUBDEV_QUERYCAP: {:.2} us per call",
            t.elapsed().as_secs_f64() / n as f64 * 1e6
        );
    }

    fn subdev_rig(name: &str, profile: crate::instance::ErrnoProfile) -> (Rig, Arc<Node>) {
        subdev_rig_with(name, profile, 1, None, None)
    }

    fn subdev_rig_with(
        name: &str,
        profile: crate::instance::ErrnoProfile,
        num_pads: usize,
        pads: Option<Arc<omap3isp::pads::SubdevPads>>,
        controls: Option<Arc<media_graph::controls::Controls>>,
    ) -> (Rig, Arc<Node>) {
        let state = Arc::new(InstanceState::new(0, profile, Lifetime::Refcount));
        let audit = Audit::new();
        let dev = MediaDevice::new(
            Board::BeagleboardXm.media_device_info(0x060100),
            audit.clone(),
        );
        let k = InProcKernel::new();
        let bps: Arc<Breakpoints> = Arc::default();
        let h = omap3isp::nodes::IspSubdev {
            name: name.into(),
            kernel_version: 0x060100,
            num_pads,
            pads,
            controls,
            stat: None,
            streaming: None,
            ccdc_cfg: Default::default(),
            prev_cfg: Default::default(),
        };
        let node = Node::new(
            "/dev/v4l-subdev2".into(),
            dev.clone(),
            state.clone(),
            bps.clone(),
            Handler::Subdev(Arc::new(h)),
            crate::limits::Limits::new(Default::default()),
        );
        let s =
            Session::start(k.transport(), &DeviceInfo::new("v4l-subdev2"), node.clone()).unwrap();
        let handle = s.handle();
        std::thread::spawn(move || s.run(2));
        (
            Rig {
                k,
                audit,
                handle,
                dev: Some(dev),
                state,
                bps,
            },
            node,
        )
    }

    fn subscribe(
        k: &InProcKernel,
        f: &InProcFile,
        cmd: u32,
        ty: u32,
        id: u32,
    ) -> Result<i32, Errno> {
        use ioctl_abi::videodev2::v4l2_event_subscription;
        let mut sub = v4l2_event_subscription::zeroed();
        sub.type_ = ty;
        sub.id = id;
        k.memory().map(0x2000, sub.as_bytes().to_vec());
        f.ioctl(cmd, 0x2000)
    }

    #[test]
    fn ccdc_events_subscribe_dequeue_block_and_poll() {
        use ioctl_abi::videodev2::*;
        let (r, node) = subdev_rig("OMAP3 ISP CCDC", crate::instance::ErrnoProfile::Mainline);
        let k = &r.k;
        let nb = k.open(libc::O_RDWR | libc::O_NONBLOCK).unwrap();
        assert_eq!(
            subscribe(k, &nb, VIDIOC_SUBSCRIBE_EVENT, V4L2_EVENT_FRAME_SYNC, 1),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            subscribe(k, &nb, VIDIOC_SUBSCRIBE_EVENT, V4L2_EVENT_CTRL, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            subscribe(k, &nb, VIDIOC_SUBSCRIBE_EVENT, V4L2_EVENT_FRAME_SYNC, 0),
            Ok(0)
        );
        k.memory().map(0x3000, vec![0; 136]);
        assert_eq!(
            nb.ioctl(VIDIOC_DQEVENT, 0x3000),
            Err(Errno::ENOENT),
            "non-blocking, nothing pending"
        );
        assert_eq!(nb.poll(libc::POLLPRI as u32), 0);
        // Two events queued: poll says PRI, DQEVENT returns them in order with `pending`.
        node.queue_event(V4L2_EVENT_FRAME_SYNC, 0, &7u32.to_ne_bytes());
        node.queue_event(V4L2_EVENT_FRAME_SYNC, 0, &8u32.to_ne_bytes());
        assert_eq!(nb.poll(libc::POLLPRI as u32), libc::POLLPRI as u32);
        assert_eq!(nb.ioctl(VIDIOC_DQEVENT, 0x3000), Ok(0));
        let ev = v4l2_event::read_from_bytes(&k.memory().region(0x3000).unwrap()).unwrap();
        assert_eq!(
            (ev.type_, ev.sequence, ev.pending),
            (V4L2_EVENT_FRAME_SYNC, 0, 1)
        );
        assert_eq!(ev.event_frame_sync().frame_sequence, 7);
        assert!(ev.timestamp.tv_sec > 0 || ev.timestamp.tv_nsec > 0);
        // A blocking DQEVENT parks until the next event.
        let b = k.open(libc::O_RDWR).unwrap();
        assert_eq!(
            subscribe(k, &b, VIDIOC_SUBSCRIBE_EVENT, V4L2_EVENT_FRAME_SYNC, 0),
            Ok(0)
        );
        let call = b.start_ioctl(VIDIOC_DQEVENT, 0x3000);
        call.wait_sent();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!call.is_finished(), "DQEVENT blocks without events");
        node.queue_event(V4L2_EVENT_FRAME_SYNC, 0, &9u32.to_ne_bytes());
        assert_eq!(call.join(), Ok(0));
        // A signal interrupts it.
        let call = b.start_ioctl(VIDIOC_DQEVENT, 0x3000);
        call.wait_sent();
        std::thread::sleep(std::time::Duration::from_millis(20));
        call.interrupt();
        assert_eq!(call.join(), Err(Errno::EINTR));
        // Unsubscribing everything drops pending events.
        assert_eq!(
            subscribe(k, &nb, VIDIOC_UNSUBSCRIBE_EVENT, V4L2_EVENT_ALL, 0),
            Ok(0)
        );
        assert_eq!(nb.ioctl(VIDIOC_DQEVENT, 0x3000), Err(Errno::ENOENT));
    }

    #[test]
    fn blocked_dqevent_across_unplug_per_profile() {
        use crate::instance::ErrnoProfile;
        use ioctl_abi::videodev2::*;
        for (profile, wakes) in [
            (ErrnoProfile::Mainline, false),
            (ErrnoProfile::Strict, true),
        ] {
            let (mut r, node) = subdev_rig("OMAP3 ISP AEWB", profile);
            let f = r.k.open(libc::O_RDWR).unwrap();
            let aewb = ioctl_abi::omap3isp::V4L2_EVENT_OMAP3ISP_AEWB;
            assert_eq!(subscribe(&r.k, &f, VIDIOC_SUBSCRIBE_EVENT, aewb, 0), Ok(0));
            r.k.memory().map(0x3000, vec![0; 136]);
            let call = f.start_ioctl(VIDIOC_DQEVENT, 0x3000);
            call.wait_sent();
            std::thread::sleep(std::time::Duration::from_millis(50));
            r.unplug();
            node.unplugged();
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(call.is_finished(), wakes, "{profile:?}");
            if wakes {
                assert_eq!(call.join(), Err(Errno::ENODEV));
            } else {
                // Linux today: it sleeps on until a signal.
                call.interrupt();
                assert_eq!(call.join(), Err(Errno::EINTR));
            }
            assert_eq!(
                f.poll(libc::POLLPRI as u32),
                (libc::POLLERR | libc::POLLHUP | libc::POLLPRI) as u32
            );
        }
    }

    #[test]
    fn subdev_formats_try_per_handle_active_shared() {
        use ioctl_abi::subdev::*;
        let pads = omap3isp::pads::SubdevPads::new(Box::new(omap3isp::pads::CcdcPads));
        let (r, _node) = subdev_rig_with(
            "OMAP3 ISP CCDC",
            crate::instance::ErrnoProfile::Mainline,
            3,
            Some(pads),
            None,
        );
        let k = &r.k;
        let (a, b) = (k.open(libc::O_RDWR).unwrap(), k.open(libc::O_RDWR).unwrap());
        let fmt = |f: &InProcFile, cmd, which, pad, code, w, h| {
            let mut v = v4l2_subdev_format::zeroed();
            v.which = which;
            v.pad = pad;
            v.format.code = code;
            v.format.width = w;
            v.format.height = h;
            ioctl_struct(k, f, cmd, &v)
        };
        let try_ = V4L2_SUBDEV_FORMAT_TRY;
        let (res, out) = fmt(
            &a,
            VIDIOC_SUBDEV_S_FMT,
            try_,
            0,
            MEDIA_BUS_FMT_SGRBG12_1X12,
            1298,
            970,
        );
        assert_eq!(res, Ok(0));
        assert_eq!((out.format.width, out.format.height), (1298, 970));
        // Handle a's TRY state propagated to its own source pads only.
        let (_, of) = fmt(&a, VIDIOC_SUBDEV_G_FMT, try_, 1, 0, 0, 0);
        assert_eq!(of.format.width, 1296);
        let (_, other) = fmt(&b, VIDIOC_SUBDEV_G_FMT, try_, 1, 0, 0, 0);
        assert_eq!(other.format.width, 4096, "TRY state is per file handle");
        let (_, active) = fmt(
            &b,
            VIDIOC_SUBDEV_G_FMT,
            V4L2_SUBDEV_FORMAT_ACTIVE,
            1,
            0,
            0,
            0,
        );
        assert_eq!(active.format.width, 4096);
        // The core's checks: bad `which`, pad out of range.
        assert_eq!(
            fmt(&a, VIDIOC_SUBDEV_G_FMT, 2, 0, 0, 0, 0).0,
            Err(Errno::EINVAL)
        );
        assert_eq!(
            fmt(&a, VIDIOC_SUBDEV_G_FMT, try_, 3, 0, 0, 0).0,
            Err(Errno::EINVAL)
        );
        // enum_frame_size: the try function at 1x1 and at the maximum.
        let mut fse = v4l2_subdev_frame_size_enum::zeroed();
        fse.code = MEDIA_BUS_FMT_SGRBG10_1X10;
        fse.which = try_;
        let (res, fse) = ioctl_struct(k, &a, VIDIOC_SUBDEV_ENUM_FRAME_SIZE, &fse);
        assert_eq!(res, Ok(0));
        assert_eq!(
            (fse.min_width, fse.max_width, fse.min_height, fse.max_height),
            (32, 4096, 32, 4096)
        );
        let mut bad = fse;
        bad.code = MEDIA_BUS_FMT_UYVY8_1X16;
        assert_eq!(
            ioctl_struct(k, &a, VIDIOC_SUBDEV_ENUM_FRAME_SIZE, &bad).0,
            Err(Errno::EINVAL)
        );
        // Legacy G_CROP maps onto the crop selection of pad 1.
        let mut c = v4l2_subdev_crop::zeroed();
        c.which = try_;
        c.pad = 1;
        let (res, c) = ioctl_struct(k, &a, VIDIOC_SUBDEV_G_CROP, &c);
        assert_eq!(res, Ok(0));
        assert_eq!((c.rect.width, c.rect.height), (1296, 970));
    }

    #[test]
    fn control_events_on_the_preview() {
        use ioctl_abi::videodev2::*;
        let controls = omap3isp::controls::preview();
        let (r, _node) = subdev_rig_with(
            "OMAP3 ISP preview",
            crate::instance::ErrnoProfile::Mainline,
            2,
            None,
            Some(controls),
        );
        let a = r.k.open(libc::O_RDWR | libc::O_NONBLOCK).unwrap();
        let b = r.k.open(libc::O_RDWR | libc::O_NONBLOCK).unwrap();
        let sub = |f: &InProcFile, id, flags| {
            let mut sub = v4l2_event_subscription::zeroed();
            sub.type_ = V4L2_EVENT_CTRL;
            sub.id = id;
            sub.flags = flags;
            r.k.memory().map(0x2000, sub.as_bytes().to_vec());
            f.ioctl(VIDIOC_SUBSCRIBE_EVENT, 0x2000)
        };
        let dq = |f: &InProcFile| {
            r.k.memory().map(0x3000, vec![0; size_of::<v4l2_event>()]);
            f.ioctl(VIDIOC_DQEVENT, 0x3000)?;
            let ev = v4l2_event::read_from_bytes(&r.k.memory().region(0x3000).unwrap()).unwrap();
            let ctrl =
                v4l2_event_ctrl::read_from_bytes(&ev.u[..size_of::<v4l2_event_ctrl>()]).unwrap();
            Ok::<_, Errno>((ev.id, ctrl.changes, { ctrl.value64 }))
        };
        let set = |f: &InProcFile, id, value| {
            r.k.memory()
                .map(0x4000, v4l2_control { id, value }.as_bytes().to_vec());
            f.ioctl(VIDIOC_S_CTRL, 0x4000)
        };
        // No such control; the class entry subscribes but sends nothing initially.
        assert_eq!(sub(&a, 0x0098_0999, 0), Err(Errno::EINVAL));
        assert_eq!(
            sub(&a, V4L2_CID_USER_CLASS, V4L2_EVENT_SUB_FL_SEND_INITIAL),
            Ok(0)
        );
        assert_eq!(dq(&a), Err(Errno::ENOENT));
        // SEND_INITIAL: the current state at once.
        assert_eq!(
            sub(&a, V4L2_CID_CONTRAST, V4L2_EVENT_SUB_FL_SEND_INITIAL),
            Ok(0)
        );
        assert_eq!(a.poll(libc::POLLPRI as u32), libc::POLLPRI as u32);
        assert_eq!(dq(&a), Ok((V4L2_CID_CONTRAST, CH_VALUE | CH_FLAGS, 16)));
        // A change by another handle reaches the subscriber; the changer hears nothing.
        assert_eq!(sub(&b, V4L2_CID_CONTRAST, 0), Ok(0));
        assert_eq!(set(&b, V4L2_CID_CONTRAST, 40), Ok(0));
        assert_eq!(dq(&a), Ok((V4L2_CID_CONTRAST, CH_VALUE, 40)));
        assert_eq!(dq(&b), Err(Errno::ENOENT));
        // Two changes before a DQEVENT merge into one event with the latest value.
        assert_eq!(set(&b, V4L2_CID_CONTRAST, 41), Ok(0));
        assert_eq!(set(&b, V4L2_CID_CONTRAST, 42), Ok(0));
        assert_eq!(dq(&a), Ok((V4L2_CID_CONTRAST, CH_VALUE, 42)));
        assert_eq!(dq(&a), Err(Errno::ENOENT));
        // Other event types are not the preview's.
        assert_eq!(
            subscribe(&r.k, &a, VIDIOC_SUBSCRIBE_EVENT, V4L2_EVENT_FRAME_SYNC, 0),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn subdevs_without_events() {
        use ioctl_abi::videodev2::*;
        let (r, _node) = subdev_rig("OMAP3 ISP preview", crate::instance::ErrnoProfile::Mainline);
        let f = r.k.open(libc::O_RDWR).unwrap();
        assert_eq!(
            subscribe(&r.k, &f, VIDIOC_SUBSCRIBE_EVENT, V4L2_EVENT_FRAME_SYNC, 0),
            Err(Errno::ENOTTY)
        );
        r.k.memory().map(0x3000, vec![0; 136]);
        assert_eq!(f.ioctl(VIDIOC_DQEVENT, 0x3000), Err(Errno::ENOTTY));
        assert_eq!(f.poll(libc::POLLIN as u32), libc::POLLERR as u32);
    }

    #[test]
    fn call_in_flight_across_unplug_is_safe_in_the_reference_model() {
        let mut r = rig(Board::BeagleboardXm, Lifetime::Refcount);
        assert_eq!(
            in_flight_across_unplug(&mut r, Stage::Mid),
            Ok(0),
            "it completes normally"
        );
        assert!(r.state.uaf_events().is_empty());
    }

    #[test]
    fn call_in_flight_across_unplug_is_a_use_after_free_with_only_a_registered_bit() {
        // 6f0dd24a084a: the call passed the REGISTERED check, then the driver freed the device.
        let mut r = rig(Board::BeagleboardXm, Lifetime::RegisteredBit);
        assert_eq!(in_flight_across_unplug(&mut r, Stage::Mid), Err(Errno::EIO));
        let ev = r.state.uaf_events();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].stage.as_str(), ev[0].object.as_str()),
            ("mid", "media_device")
        );
        assert_eq!(ev[0].syscall, "ioctl MEDIA_IOC_DEVICE_INFO");
        assert_eq!(r.audit.live(Kind::MediaDevice), 0, "freed at unbind");
    }

    #[test]
    fn stale_handles_touch_freed_memory_under_devm_but_not_with_a_registered_bit() {
        for (lifetime, want) in [(Lifetime::Devm, 2), (Lifetime::RegisteredBit, 0)] {
            let mut r = rig(Board::N900, lifetime);
            let f = r.k.open(libc::O_RDWR).unwrap();
            r.unplug();
            // a087ce704b80 / 5b28dde51d0c: an ioctl on, then the close of, a handle kept open.
            assert_eq!(
                ioctl_struct(
                    &r.k,
                    &f,
                    MEDIA_IOC_DEVICE_INFO,
                    &media_device_info::zeroed()
                )
                .0,
                Err(Errno::EIO)
            );
            f.close().unwrap();
            // RELEASE is answered first and cleaned up after, as a CUSE server should.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while r.state.uaf_events().len() < want && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let ev = r.state.uaf_events();
            assert_eq!(ev.len(), want, "{lifetime:?}: {ev:?}");
            if want > 0 {
                assert_eq!(
                    (ev[0].stage.as_str(), ev[0].object.as_str()),
                    ("entry", "media_devnode")
                );
                assert_eq!(ev[1].syscall, "close");
            }
        }
    }
}
