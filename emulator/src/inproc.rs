//! A whole instance (the ISP graph, every video and sub-device node, the media node) served
//! through the in-process CUSE transport: every node answers the same request decoding,
//! dispatch and handlers as under the daemon, without a kernel. For the fuzz targets and for
//! tests that need every node.

use std::sync::Arc;

use cuse::inproc::InProcKernel;
use cuse::{DeviceInfo, Errno, Session, SessionHandle};
use media_graph::{Audit, MediaDevice};
use omap3isp::topology::{NodeRegistrar, SubdevInfo, VideoNodeInfo};
use omap3isp::Board;

use crate::breakpoints::Breakpoints;
use crate::instance::{ErrnoProfile, InstanceState, Lifetime, NodeKind};
use crate::limits::{Caps, Limits};
use crate::model::Model;
use crate::nodes::{Handler, Node};

/// One node of an in-process instance.
pub struct InProcNode {
    /// The device name (video0, v4l-subdev3, media0).
    pub name: String,
    /// The entity's name ("OMAP3 ISP CCDC"); the media node has the model's.
    pub entity: String,
    pub kind: NodeKind,
    /// The node's "kernel": open files on it, map client memory, send requests.
    pub kernel: InProcKernel,
    handle: SessionHandle,
}

pub struct InProcInstance {
    pub nodes: Vec<InProcNode>,
    pub audit: Arc<Audit>,
    state: Arc<InstanceState>,
    media: Option<Arc<MediaDevice>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const KERNEL_VERSION: u32 = 0x060100;

struct Registrar<'a> {
    inst: &'a mut InProcInstance,
    dev: Arc<MediaDevice>,
    limits: Arc<Limits>,
    breakpoints: Arc<Breakpoints>,
    runtime: Option<Arc<omap3isp::pipeline::Runtime>>,
    nodes: Vec<Arc<Node>>,
}

impl Registrar<'_> {
    fn node(
        &mut self,
        name: String,
        entity: String,
        kind: NodeKind,
        h: Handler,
    ) -> Result<(u32, u32), Errno> {
        let node = Node::new(
            format!("/dev/{name}"),
            self.dev.clone(),
            self.inst.state.clone(),
            self.breakpoints.clone(),
            h,
            self.limits.clone(),
        );
        let kernel = InProcKernel::new();
        let s = Session::start(kernel.transport(), &DeviceInfo::new(&name), node.clone())
            .map_err(|_| Errno::EIO)?;
        let handle = s.handle();
        self.inst.threads.push(std::thread::spawn(move || s.run(1)));
        self.nodes.push(node);
        let devt = kernel.devt();
        self.inst.nodes.push(InProcNode {
            name,
            entity,
            kind,
            kernel,
            handle,
        });
        Ok(devt)
    }

    fn count(&self, kind: NodeKind) -> usize {
        self.inst.nodes.iter().filter(|n| n.kind == kind).count()
    }
}

impl topology::device::NodeRegistrar for Registrar<'_> {
    type Error = Errno;

    fn register_video(
        &mut self,
        entity: &str,
        h: Arc<dyn media_graph::VideoIoctls>,
    ) -> Result<(u32, u32), Errno> {
        let name = format!("video{}", self.count(NodeKind::Video));
        self.node(name, entity.into(), NodeKind::Video, Handler::Video(h))
    }

    fn register_subdev(
        &mut self,
        entity: &str,
        h: Arc<dyn media_graph::SubdevIoctls>,
    ) -> Result<(u32, u32), Errno> {
        let name = format!("v4l-subdev{}", self.count(NodeKind::Subdev));
        self.node(name, entity.into(), NodeKind::Subdev, Handler::Subdev(h))
    }
}

impl NodeRegistrar for Registrar<'_> {
    type Error = Errno;

    fn register_video(&mut self, node: &VideoNodeInfo) -> Result<(u32, u32), Errno> {
        self.runtime = Some(node.pads.clone());
        let name = format!("video{}", self.count(NodeKind::Video));
        let h = Handler::isp_video(node, KERNEL_VERSION, &self.dev);
        self.node(name, node.name.clone(), NodeKind::Video, h)
    }

    fn register_subdev(&mut self, node: &SubdevInfo) -> Result<(u32, u32), Errno> {
        let name = format!("v4l-subdev{}", self.count(NodeKind::Subdev));
        let h = Handler::isp_subdev(node, KERNEL_VERSION);
        let devt = self.node(name, node.name.clone(), NodeKind::Subdev, h)?;
        if let (Some(rt), Some(me)) = (&self.runtime, self.nodes.last()) {
            crate::nodes::route_events(rt, node.entity, Arc::downgrade(me));
        }
        Ok(devt)
    }
}

impl InProcInstance {
    /// Builds `board`'s graph and serves every node (refcount lifetime model, mainline errnos,
    /// the daemon's default limits).
    pub fn start(board: Board) -> Result<Self, Errno> {
        Self::start_with(board, Lifetime::Refcount, ErrnoProfile::Mainline)
    }

    /// [`start`](Self::start) under a given lifetime model and errno profile.
    pub fn start_with(
        board: Board,
        lifetime: Lifetime,
        profile: ErrnoProfile,
    ) -> Result<Self, Errno> {
        Self::start_model(&Model::Board(board), lifetime, profile)
    }

    /// A board's or a topology's instance.
    pub fn start_model(
        model: &Model,
        lifetime: Lifetime,
        profile: ErrnoProfile,
    ) -> Result<Self, Errno> {
        let audit = Audit::new();
        let media = MediaDevice::new(model.media_device_info(KERNEL_VERSION), audit.clone());
        let mut inst = InProcInstance {
            nodes: Vec::new(),
            audit,
            state: Arc::new(InstanceState::new(0, profile, lifetime)),
            media: Some(media.clone()),
            threads: Vec::new(),
        };
        let mut reg = Registrar {
            inst: &mut inst,
            dev: media.clone(),
            limits: Limits::new(Caps::default()),
            breakpoints: Arc::default(),
            runtime: None,
            nodes: Vec::new(),
        };
        model.build(KERNEL_VERSION, &media, &mut reg)?;
        media.register();
        let model = media.info().model.clone();
        reg.node("media0".into(), model, NodeKind::Media, Handler::Media)?;
        for n in &inst.nodes {
            n.kernel.wait_registered(std::time::Duration::from_secs(10));
        }
        Ok(inst)
    }

    /// Unbind, as the daemon's unplug: new calls get the unplugged errnos, the nodes go away
    /// when their last file is closed.
    pub fn unplug(&mut self) {
        let Some(m) = self.media.take() else {
            return;
        };
        self.state.unplug();
        m.unregister();
        for n in &self.nodes {
            n.handle.unregister();
        }
    }

    pub fn is_unplugged(&self) -> bool {
        self.media.is_none()
    }
}

impl Drop for InProcInstance {
    /// Unplugs, disconnects every node's channel (as the kernel does when the daemon's
    /// descriptors close) and waits for the nodes' threads.
    fn drop(&mut self) {
        self.unplug();
        for n in &self.nodes {
            cuse::Transport::close(&*n.kernel.transport());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_answers_and_everything_is_released_after_unplug() {
        let mut inst = InProcInstance::start(Board::BeagleboardXm).unwrap();
        assert_eq!(inst.nodes.len(), 17);
        for n in &inst.nodes {
            let f = n.kernel.open(libc::O_RDWR).unwrap();
            let cmd = n.kind.identifying_ioctl();
            n.kernel.memory().map(0x1000, vec![0; 512]);
            assert_eq!(f.ioctl(cmd, 0x1000), Ok(0), "{}", n.name);
        }
        inst.unplug();
        let audit = inst.audit.clone();
        drop(inst);
        let live: i64 = audit.snapshot().iter().map(|(_, n)| n).sum();
        assert_eq!(live, 0, "{:?}", audit.snapshot());
    }

    #[test]
    fn topology_presets_answer_on_every_node_and_release_everything() {
        for (preset, nodes) in [("uvc-like", 2), ("vimc-like", 10)] {
            let model = Model::topology(preset).unwrap();
            for lifetime in [Lifetime::Refcount, Lifetime::Devm, Lifetime::RegisteredBit] {
                let mut inst =
                    InProcInstance::start_model(&model, lifetime, ErrnoProfile::Mainline).unwrap();
                assert_eq!(inst.nodes.len(), nodes, "{preset}");
                let mut files = Vec::new();
                for n in &inst.nodes {
                    let f = n.kernel.open(libc::O_RDWR).unwrap();
                    let cmd = n.kind.identifying_ioctl();
                    n.kernel.memory().map(0x1000, vec![0; 512]);
                    assert_eq!(f.ioctl(cmd, 0x1000), Ok(0), "{preset} {}", n.name);
                    files.push(f);
                }
                inst.unplug();
                // Handles kept across the unplug get the unplugged errnos, then close.
                for f in files {
                    assert!(f
                        .ioctl(ioctl_abi::videodev2::VIDIOC_QUERYCAP, 0x1000)
                        .is_err());
                    let _ = f.close();
                }
                let audit = inst.audit.clone();
                drop(inst);
                let live: i64 = audit.snapshot().iter().map(|(_, n)| n).sum();
                assert_eq!(live, 0, "{preset}: {:?}", audit.snapshot());
            }
        }
    }
}
