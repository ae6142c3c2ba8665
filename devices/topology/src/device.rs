//! A topology served: the media graph built from a [`Topology`], a sub-device node per block
//! that has one (pad formats through the subdev core shared with omap3isp, a sensor's test
//! pattern control), a video node per capture or output entity ([`crate::capture`]), and the
//! run-time state they share: which entities stream, and the pipeline checks of STREAMON.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use ioctl_abi::media::*;
use ioctl_abi::subdev::*;
use ioctl_abi::videodev2::*;
use media_graph::controls::{Controls, CtrlDef};
use media_graph::pads::SubdevPads;
use media_graph::{
    EntityKind, EntitySpec, MediaDevice, MediaDeviceInfo, PadRef, SubdevIoctls, VideoIoctls,
};
use nix::errno::Errno;
use parking_lot::Mutex;

use crate::blocks::Pads;
use crate::capture::VideoNode;
use crate::{Block, PadDir, Topology};

/// Registers device nodes as the graph is built; returns the node's (major, minor).
pub trait NodeRegistrar {
    type Error: From<Errno>;
    fn register_video(
        &mut self,
        name: &str,
        handler: Arc<dyn VideoIoctls>,
    ) -> Result<(u32, u32), Self::Error>;
    fn register_subdev(
        &mut self,
        name: &str,
        handler: Arc<dyn SubdevIoctls>,
    ) -> Result<(u32, u32), Self::Error>;
}

/// The sensor test patterns (`V4L2_CID_TEST_PATTERN`).
pub const TEST_PATTERNS: [&str; 3] = ["Moving Color Bars", "Gradient", "Black"];

/// The instance's run-time state, shared by its nodes.
pub struct Runtime {
    pub topo: Topology,
    pub kernel_version: u32,
    /// Media entity id of each topology entity.
    pub ids: Vec<u32>,
    /// Pad state of each sub-device entity (None for video entities).
    pub pads: Vec<Option<Arc<SubdevPads>>>,
    /// A sensor's controls (sensors with a node).
    pub controls: Vec<Option<Arc<Controls>>>,
    /// Entities in a started pipeline, with how many streams use each.
    busy: Mutex<HashMap<usize, usize>>,
    pub dev: Weak<MediaDevice>,
    /// The key of this driver's busy check on the media device.
    busy_key: std::sync::atomic::AtomicU64,
    /// The one-enabled-link-per-sink record, shared by every driver of the media device.
    links: Arc<OneLinkPerSink>,
}

/// One step of a pipeline, from the sensor down: an entity and the pad its frames leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub entity: usize,
    pub pad: u16,
}

impl Runtime {
    pub fn index_of(&self, id: u32) -> Option<usize> {
        self.ids.iter().position(|&i| i == id)
    }

    pub fn is_busy(&self, entity: usize) -> bool {
        self.busy.lock().get(&entity).is_some_and(|n| *n > 0)
    }

    pub fn mark_busy(&self, entities: &[usize], on: bool) {
        let mut b = self.busy.lock();
        for &e in entities {
            let n = b.entry(e).or_insert(0);
            if on {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// The ACTIVE format of a sub-device pad.
    pub fn active(&self, entity: usize, pad: u16) -> Option<v4l2_mbus_framefmt> {
        self.pads.get(entity)?.as_ref()?.active_format(pad as usize)
    }

    /// The pipeline feeding the sink pad of video entity `video`, sensor first, following
    /// enabled links (through each block's first linked sink pad). ENOLINK where a sink pad
    /// has no enabled link.
    pub fn upstream(&self, video: usize) -> Result<Vec<Hop>, Errno> {
        let dev = self.dev.upgrade().ok_or(Errno::ENODEV)?;
        let graph = dev.graph();
        let mut hops = Vec::new();
        let mut cur = video;
        loop {
            let e = &self.topo.entities[cur];
            let sinks: Vec<u16> = (0..e.pads.len() as u16)
                .filter(|&p| e.pads[p as usize] == PadDir::Sink)
                .collect();
            if sinks.is_empty() {
                break;
            }
            let remote = sinks
                .iter()
                .find_map(|&p| graph.remote_of(self.ids[cur], p))
                .ok_or(Errno::ENOLINK)?;
            let from = self.index_of(remote.entity).ok_or(Errno::EINVAL)?;
            if hops.iter().any(|h: &Hop| h.entity == from) || hops.len() > self.ids.len() {
                return Err(Errno::EPIPE);
            }
            hops.push(Hop {
                entity: from,
                pad: remote.index,
            });
            cur = from;
        }
        hops.reverse();
        Ok(hops)
    }

    /// `link_validate` along a pipeline: every enabled link carries the same code and size on
    /// both ends (EPIPE otherwise).
    pub fn validate(&self, hops: &[Hop]) -> Result<(), Errno> {
        for pair in hops.windows(2) {
            let src = self
                .active(pair[0].entity, pair[0].pad)
                .ok_or(Errno::EPIPE)?;
            let sink_pad = self.sink_fed_by(pair[1].entity, pair[0])?;
            let sink = self.active(pair[1].entity, sink_pad).ok_or(Errno::EPIPE)?;
            if (src.code, src.width, src.height) != (sink.code, sink.width, sink.height) {
                return Err(Errno::EPIPE);
            }
        }
        Ok(())
    }

    /// Which sink pad of `entity` the enabled link from `from` enters.
    fn sink_fed_by(&self, entity: usize, from: Hop) -> Result<u16, Errno> {
        let dev = self.dev.upgrade().ok_or(Errno::ENODEV)?;
        let graph = dev.graph();
        let e = &self.topo.entities[entity];
        (0..e.pads.len() as u16)
            .find(|&p| {
                e.pads[p as usize] == PadDir::Sink
                    && graph.remote_of(self.ids[entity], p)
                        == Some(PadRef {
                            entity: self.ids[from.entity],
                            index: from.pad,
                        })
            })
            .ok_or(Errno::EPIPE)
    }

    /// A video-centric node's S_FMT configures the pipeline behind it, as uvcvideo and other
    /// drivers without sub-device nodes do: the sensor gets the size and the first code of the
    /// pixel format it supports, each block downstream gets what its upstream gives.
    pub fn configure(&self, hops: &[Hop], codes: &[u32], width: u32, height: u32) {
        for (i, hop) in hops.iter().enumerate() {
            let Some(pads) = self.pads[hop.entity].clone() else {
                continue;
            };
            let want = if i == 0 {
                let e = &self.topo.entities[hop.entity];
                let code = codes
                    .iter()
                    .copied()
                    .find(|c| e.formats.contains(c))
                    .unwrap_or(codes[0]);
                media_graph::pads::mbus(code, width, height)
            } else {
                let prev = hops[i - 1];
                let Some(m) = self.active(prev.entity, prev.pad) else {
                    continue;
                };
                m
            };
            let pad = if i == 0 {
                hop.pad
            } else {
                self.sink_fed_by(hop.entity, hops[i - 1]).unwrap_or(0)
            };
            let mut m = want;
            let _ = pads.with_set(0, V4L2_SUBDEV_FORMAT_ACTIVE, |b, st| {
                b.set_fmt(st, pad as usize, &mut m)
            });
        }
    }

    /// The test pattern of the sensor at the head of a pipeline (0 without a control).
    pub fn pattern(&self, sensor: usize) -> i64 {
        self.controls[sensor]
            .as_ref()
            .map(|c| c.with(|s| s.get(V4L2_CID_TEST_PATTERN).map(|c| c.cur).unwrap_or(0)))
            .unwrap_or(0)
    }
}

/// A sub-device node of a topology block.
pub struct Subdev {
    rt: Weak<Runtime>,
    entity: usize,
    kernel_version: u32,
    pads: Arc<SubdevPads>,
    controls: Option<Arc<Controls>>,
}

impl Subdev {
    fn busy(&self) -> bool {
        self.rt.upgrade().is_some_and(|r| r.is_busy(self.entity))
    }
}

impl SubdevIoctls for Subdev {
    fn querycap(&self) -> Result<v4l2_subdev_capability, Errno> {
        let mut cap = v4l2_subdev_capability::zeroed();
        cap.version = self.kernel_version;
        Ok(cap)
    }
    /// Sub-devices with controls send control events (`V4L2_SUBDEV_FL_HAS_EVENTS`).
    fn has_events(&self) -> bool {
        self.controls.is_some()
    }
    /// Control events only: the event core handles `V4L2_EVENT_CTRL` itself.
    fn subscribe_event(&self, _sub: &v4l2_event_subscription) -> Result<usize, Errno> {
        Err(if self.has_events() {
            Errno::EINVAL
        } else {
            Errno::ENOTTY
        })
    }
    fn controls(&self) -> Option<Arc<Controls>> {
        self.controls.clone()
    }
    fn open(&self, fh: u64) {
        self.pads.open(fh);
    }
    fn release(&self, fh: u64) {
        self.pads.release(fh);
    }
    fn enum_mbus_code(
        &self,
        fh: u64,
        c: v4l2_subdev_mbus_code_enum,
    ) -> Result<v4l2_subdev_mbus_code_enum, Errno> {
        self.pads.enum_mbus_code(fh, c)
    }
    fn enum_frame_size(
        &self,
        fh: u64,
        f: v4l2_subdev_frame_size_enum,
    ) -> Result<v4l2_subdev_frame_size_enum, Errno> {
        self.pads.enum_frame_size(fh, f)
    }
    fn get_fmt(&self, fh: u64, f: v4l2_subdev_format) -> Result<v4l2_subdev_format, Errno> {
        self.pads.get_fmt(fh, f)
    }
    /// An ACTIVE format cannot change while the block streams (EBUSY, as vimc's blocks).
    fn set_fmt(&self, fh: u64, f: v4l2_subdev_format) -> Result<v4l2_subdev_format, Errno> {
        self.pads.check(f.which, f.pad)?;
        if f.which == V4L2_SUBDEV_FORMAT_ACTIVE && self.busy() {
            return Err(Errno::EBUSY);
        }
        self.pads.set_fmt(fh, f)
    }
}

/// Link setup: a sink pad takes one enabled link at a time (EBUSY for a second). Keeps its
/// own record of each sink pad's enabled link: `link_setup` runs under the graph's lock.
#[derive(Default)]
struct OneLinkPerSink {
    sinks: Mutex<std::collections::HashSet<PadRef>>,
    /// Sink pad -> the source pad of its enabled link.
    into: Mutex<HashMap<PadRef, PadRef>>,
}

impl media_graph::EntityOps for OneLinkPerSink {
    fn link_setup(
        &self,
        local: PadRef,
        remote: media_graph::Remote,
        flags: u32,
    ) -> Result<(), Errno> {
        if !self.sinks.lock().contains(&local) {
            return Ok(());
        }
        let mut into = self.into.lock();
        if flags & MEDIA_LNK_FL_ENABLED != 0 {
            match into.get(&local) {
                Some(other) if *other != remote.pad => return Err(Errno::EBUSY),
                _ => {
                    into.insert(local, remote.pad);
                }
            }
        } else if into.get(&local) == Some(&remote.pad) {
            into.remove(&local);
        }
        Ok(())
    }
}

fn sensor_controls() -> Arc<Controls> {
    Controls::new(
        vec![CtrlDef::menu(
            V4L2_CID_TEST_PATTERN,
            "Test Pattern",
            &TEST_PATTERNS,
            0,
        )],
        None,
    )
}

/// What `MEDIA_IOC_DEVICE_INFO` reports for a topology.
pub fn device_info(topo: &Topology, kernel_version: u32) -> MediaDeviceInfo {
    MediaDeviceInfo {
        driver: topo.device.driver.clone(),
        model: topo.device.model.clone(),
        serial: topo.device.serial.clone(),
        bus_info: topo.device.bus_info.clone(),
        hw_revision: topo.device.hw_revision,
        media_version: kernel_version,
        driver_version: kernel_version,
    }
}

/// Builds `topo` into `dev` as a driver's probe would: the entities in file order (a video
/// entity's node registered with it), then the links, then the sub-device nodes. The caller
/// registers the media node last.
pub fn build<R: NodeRegistrar>(
    topo: &Topology,
    kernel_version: u32,
    dev: &Arc<MediaDevice>,
    reg: &mut R,
) -> Result<Arc<Runtime>, R::Error> {
    build_function(topo, None, None, kernel_version, dev, reg)
}

/// One driver's probe on a shared media device (all entities with `driver` None): its
/// entities, their nodes, and every link of the topology whose other end is already in the
/// graph (another driver's entity found by name, as au0828 links to the audio entities it
/// finds). `peer`: a driver bound to the same media device already, whose link record this
/// one shares.
pub fn build_function<R: NodeRegistrar>(
    topo: &Topology,
    driver: Option<&str>,
    peer: Option<&Runtime>,
    kernel_version: u32,
    dev: &Arc<MediaDevice>,
    reg: &mut R,
) -> Result<Arc<Runtime>, R::Error> {
    let mine: Vec<bool> = topo
        .entities
        .iter()
        .map(|e| driver.is_none_or(|d| e.driver == d))
        .collect();
    let links = peer.map(|p| p.links.clone()).unwrap_or_default();
    let ops: Arc<dyn media_graph::EntityOps> = links.clone();
    let mut ids = Vec::new();
    for (i, e) in topo.entities.iter().enumerate() {
        if !mine[i] {
            // Not this driver's: id 0, which no entity has.
            ids.push(0);
            continue;
        }
        let pads = e
            .pads
            .iter()
            .map(|d| match d {
                PadDir::Sink => MEDIA_PAD_FL_SINK,
                PadDir::Source => MEDIA_PAD_FL_SOURCE,
            })
            .collect();
        ids.push(dev.graph_mut().add_entity(EntitySpec {
            name: e.name.clone(),
            function: e.function,
            flags: 0,
            kind: if e.block.is_video() {
                EntityKind::VideoNode
            } else {
                EntityKind::Subdev
            },
            pads,
            ops: Some(ops.clone()),
        }));
    }
    for (e, &id) in topo.entities.iter().zip(&ids).filter(|(_, id)| **id != 0) {
        for (p, d) in e.pads.iter().enumerate() {
            if *d == PadDir::Sink {
                links.sinks.lock().insert(PadRef {
                    entity: id,
                    index: p as u16,
                });
            }
        }
    }
    let rt = Arc::new(Runtime {
        topo: topo.clone(),
        kernel_version,
        pads: topo
            .entities
            .iter()
            .zip(&mine)
            .map(|(e, m)| {
                (*m && !e.block.is_video() && e.block != Block::Audio)
                    .then(|| SubdevPads::new(Box::new(Pads::new(e))))
            })
            .collect(),
        controls: topo
            .entities
            .iter()
            .zip(&mine)
            .map(|(e, m)| (*m && e.block == Block::Sensor && e.node).then(sensor_controls))
            .collect(),
        ids,
        busy: Mutex::new(HashMap::new()),
        dev: Arc::downgrade(dev),
        busy_key: Default::default(),
        links: links.clone(),
    });
    let key = {
        let weak = Arc::downgrade(&rt);
        dev.add_busy_check(Arc::new(move |id| {
            weak.upgrade()
                .and_then(|r| r.index_of(id).map(|i| r.is_busy(i)))
                .unwrap_or(false)
        }))
    };
    rt.busy_key.store(key, std::sync::atomic::Ordering::SeqCst);
    for (i, e) in topo.entities.iter().enumerate() {
        if !mine[i] {
            continue;
        }
        if e.block.is_video() {
            let node = VideoNode::new(rt.clone(), i);
            let (major, minor) = reg.register_video(&e.name, node)?;
            dev.graph_mut().add_devnode_interface(
                rt.ids[i],
                MEDIA_INTF_T_V4L_VIDEO,
                major,
                minor,
            )?;
        }
    }
    // A link end: this driver's entity, or another's already in the graph.
    let end = |(e, pad): (usize, u16)| -> Option<PadRef> {
        let entity = if mine[e] {
            rt.ids[e]
        } else {
            dev.graph().entity_by_name(&topo.entities[e].name)?.id
        };
        Some(PadRef { entity, index: pad })
    };
    for l in &topo.links {
        if !mine[l.source.0] && !mine[l.sink.0] {
            continue;
        }
        let (Some(source), Some(sink)) = (end(l.source), end(l.sink)) else {
            continue;
        };
        let mut flags = 0;
        if l.enabled {
            flags |= MEDIA_LNK_FL_ENABLED;
        }
        if l.immutable {
            flags |= MEDIA_LNK_FL_IMMUTABLE;
        }
        dev.graph_mut().add_link(source, sink, flags)?;
        if l.enabled {
            links.into.lock().insert(sink, source);
        }
    }
    for (i, e) in topo.entities.iter().enumerate() {
        if !mine[i] || e.block.is_video() || !e.node {
            continue;
        }
        let Some(pads) = rt.pads[i].clone() else {
            continue;
        };
        let sd = Arc::new(Subdev {
            rt: Arc::downgrade(&rt),
            entity: i,
            kernel_version,
            pads,
            controls: rt.controls[i].clone(),
        });
        let (major, minor) = reg.register_subdev(&e.name, sd)?;
        dev.graph_mut()
            .add_devnode_interface(rt.ids[i], MEDIA_INTF_T_V4L_SUBDEV, major, minor)?;
    }
    // Video-centric nodes start with their pipeline configured for their default format.
    for (i, e) in topo.entities.iter().enumerate() {
        if mine[i] && e.block == Block::Capture {
            crate::capture::configure_default(&rt, i);
        }
    }
    Ok(rt)
}

/// A driver's remove on a shared media device: its entities (with their pads, links and
/// interfaces) leave the graph, and its busy check goes. Its nodes are the caller's to
/// unregister.
pub fn unbuild(rt: &Runtime, dev: &MediaDevice) {
    dev.remove_busy_check(rt.busy_key.load(std::sync::atomic::Ordering::SeqCst));
    let mine = |p: &PadRef| rt.ids.contains(&p.entity);
    rt.links.sinks.lock().retain(|p| !mine(p));
    rt.links
        .into
        .lock()
        .retain(|sink, source| !mine(sink) && !mine(source));
    let mut g = dev.graph_mut();
    for &id in rt.ids.iter().filter(|id| **id != 0) {
        g.remove_entity(id);
    }
}
