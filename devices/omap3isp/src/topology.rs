//! The ISP's media graph, built in the driver's registration order so that entity, pad, link and
//! interface IDs, and /dev numbering, come out as on the real driver (omap3isp.md §1):
//! probe registers each block's sub-device then its video nodes and creates the 15 internal
//! links; the sensor binds and gets its link; notifier completion registers the sub-device nodes
//! and finally the media node.

use std::sync::Arc;

use ioctl_abi::media::*;
use media_graph::{EntityKind, EntitySpec, MediaDevice, PadRef};
use nix::errno::Errno;

use crate::links::{Ccdc, Ccp2, Csi2, Preview, Resizer};
use crate::pads::{Block, CcdcPads, Ccp2Pads, Csi2Pads, PreviewPads, ResizerPads, SubdevPads};
use crate::Board;

const S: u32 = MEDIA_PAD_FL_SINK;
const O: u32 = MEDIA_PAD_FL_SOURCE;
const MC: u32 = MEDIA_PAD_FL_MUST_CONNECT;

/// A video node of the ISP.
#[derive(Clone)]
pub struct VideoNodeInfo {
    pub entity: u32,
    pub name: String,
    /// CAPTURE ("... output") or OUTPUT ("... input") queue.
    pub capture: bool,
    /// Every block's pad model by entity id (complete once the build is done).
    pub pads: crate::video::PadsRegistry,
}

/// A sub-device with a device node.
#[derive(Clone)]
pub struct SubdevInfo {
    pub entity: u32,
    pub name: String,
    pub num_pads: usize,
    /// The block's pad formats, where emulated.
    pub pads: Option<Arc<SubdevPads>>,
    /// The block's controls, where the driver has some.
    pub controls: Option<Arc<media_graph::controls::Controls>>,
    /// A statistics engine's private-ioctl state.
    pub stat: Option<Arc<crate::stat::Stat>>,
    /// Pipelines and the rest of the ISP's run-time state.
    pub runtime: std::sync::Weak<crate::pipeline::Runtime>,
}

impl SubdevInfo {
    /// Whether this block belongs to a started pipeline now.
    pub fn streaming_check(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let (rt, entity) = (self.runtime.clone(), self.entity);
        Arc::new(move || rt.upgrade().is_some_and(|r| r.busy(entity)))
    }
}

/// Creates device nodes as the graph is built; returns the node's (major, minor).
pub trait NodeRegistrar {
    type Error: From<Errno>;
    fn register_video(&mut self, node: &VideoNodeInfo) -> Result<(u32, u32), Self::Error>;
    fn register_subdev(&mut self, node: &SubdevInfo) -> Result<(u32, u32), Self::Error>;
}

/// The link_setup state of every block, for the pipeline code.
#[derive(Debug, Clone)]
pub struct IspBlocks {
    pub ccp2: Arc<Ccp2>,
    pub csi2a: Arc<Csi2>,
    pub ccdc: Arc<Ccdc>,
    pub preview: Arc<Preview>,
    pub resizer: Arc<Resizer>,
}

/// What [`build`] made.
#[derive(Clone)]
pub struct Isp {
    pub blocks: IspBlocks,
    pub video_nodes: Vec<VideoNodeInfo>,
    pub subdevs: Vec<SubdevInfo>,
    pub sensor: u32,
    /// Pads, controls and pipelines at run time.
    pub runtime: Arc<crate::pipeline::Runtime>,
}

/// The ISP functions of Linux 7.0 ("omap3isp: v4l2-compliance fixes"); legacy ENUM_ENTITIES still
/// maps them to V4L2_SUBDEV_UNKNOWN.
pub mod function {
    use ioctl_abi::media::*;
    pub const CCP2: u32 = MEDIA_ENT_F_VID_IF_BRIDGE;
    pub const CSI2A: u32 = MEDIA_ENT_F_VID_IF_BRIDGE;
    pub const CCDC: u32 = MEDIA_ENT_F_PROC_VIDEO_PIXEL_ENC_CONV;
    pub const PREVIEW: u32 = MEDIA_ENT_F_PROC_VIDEO_PIXEL_FORMATTER;
    pub const RESIZER: u32 = MEDIA_ENT_F_PROC_VIDEO_SCALER;
    pub const STATISTICS: u32 = MEDIA_ENT_F_PROC_VIDEO_STATISTICS;
}

struct Builder<'a, R: NodeRegistrar> {
    dev: &'a MediaDevice,
    reg: &'a mut R,
    registry: crate::video::PadsRegistry,
    video_nodes: Vec<VideoNodeInfo>,
    subdevs: Vec<SubdevInfo>,
}

impl<R: NodeRegistrar> Builder<'_, R> {
    fn subdev(
        &mut self,
        name: &str,
        function: u32,
        pads: &[u32],
        ops: Option<Arc<dyn media_graph::EntityOps>>,
        model: Option<Box<dyn Block>>,
    ) -> u32 {
        let entity = self.dev.graph_mut().add_entity(EntitySpec {
            name: name.into(),
            function,
            flags: 0,
            kind: EntityKind::Subdev,
            pads: pads.to_vec(),
            ops,
        });
        let model = model.map(SubdevPads::new);
        let stat = crate::stat::Engine::of(name).map(|e| Arc::new(crate::stat::Stat::new(e)));
        if let Some(st) = &stat {
            self.registry.stats.lock().insert(entity, st.clone());
        }
        if let Some(m) = &model {
            self.registry.pads.lock().insert(entity, m.clone());
        }
        self.subdevs.push(SubdevInfo {
            entity,
            name: name.into(),
            num_pads: pads.len(),
            pads: model,
            controls: None,
            stat,
            runtime: Arc::downgrade(&self.registry),
        });
        entity
    }

    /// Gives a sub-device its control handler.
    fn controls(&mut self, entity: u32, controls: Arc<media_graph::controls::Controls>) {
        self.registry
            .controls
            .lock()
            .insert(entity, controls.clone());
        if let Some(sd) = self.subdevs.iter_mut().find(|sd| sd.entity == entity) {
            sd.controls = Some(controls);
        }
    }

    /// `omap3isp_video_register`: entity, pad, device node, interface, interface link.
    fn video(&mut self, module: &str, capture: bool, flags: u32) -> Result<u32, R::Error> {
        let name = format!(
            "OMAP3 ISP {module} {}",
            if capture { "output" } else { "input" }
        );
        let pad = if capture { S | MC } else { O | MC };
        let entity = self.dev.graph_mut().add_entity(EntitySpec {
            name: name.clone(),
            function: MEDIA_ENT_F_IO_V4L,
            flags,
            kind: EntityKind::VideoNode,
            pads: vec![pad],
            ops: None,
        });
        let info = VideoNodeInfo {
            entity,
            name,
            capture,
            pads: self.registry.clone(),
        };
        let (major, minor) = self.reg.register_video(&info)?;
        self.dev
            .graph_mut()
            .add_devnode_interface(entity, MEDIA_INTF_T_V4L_VIDEO, major, minor)?;
        self.video_nodes.push(info);
        Ok(entity)
    }

    fn link(&self, source: (u32, u16), sink: (u32, u16), flags: u32) -> Result<u32, Errno> {
        self.dev.graph_mut().add_link(
            PadRef {
                entity: source.0,
                index: source.1,
            },
            PadRef {
                entity: sink.0,
                index: sink.1,
            },
            flags,
        )
    }
}

/// Builds the ISP and the board's sensor into `dev`, registering device nodes through `reg`.
pub fn build<R: NodeRegistrar>(
    board: Board,
    dev: &MediaDevice,
    reg: &mut R,
) -> Result<Isp, R::Error> {
    let mut b = Builder {
        dev,
        reg,
        registry: crate::pipeline::Runtime::new(board),
        video_nodes: Vec::new(),
        subdevs: Vec::new(),
    };
    let ccp2_ops = Arc::new(Ccp2::default());
    let csi2_ops = Arc::new(Csi2::default());
    let preview_ops = Arc::new(Preview::default());
    let resizer_ops = Arc::new(Resizer::default());

    // Probe: isp_register_entities(), each block's subdev then its video nodes.
    let ccp2 = b.subdev(
        "OMAP3 ISP CCP2",
        function::CCP2,
        &[S | MC, O],
        Some(ccp2_ops.clone()),
        Some(Box::new(Ccp2Pads {
            links: ccp2_ops.clone(),
        })),
    );
    let ccp2_in = b.video("CCP2", false, 0)?;
    let csi2a = b.subdev(
        "OMAP3 ISP CSI2a",
        function::CSI2A,
        &[S | MC, O],
        Some(csi2_ops.clone()),
        Some(Box::new(Csi2Pads)),
    );
    let csi2a_out = b.video("CSI2a", true, 0)?;
    // The CCDC's link_setup needs the ids of its possible inputs, known only now.
    let ccdc_ops = Arc::new(Ccdc {
        ccp2,
        csi2a,
        ..Default::default()
    });
    let ccdc = b.subdev(
        "OMAP3 ISP CCDC",
        function::CCDC,
        &[S | MC, O, O],
        Some(ccdc_ops.clone()),
        Some(Box::new(CcdcPads)),
    );
    let ccdc_out = b.video("CCDC", true, 0)?;
    let preview = b.subdev(
        "OMAP3 ISP preview",
        function::PREVIEW,
        &[S | MC, O],
        Some(preview_ops.clone()),
        Some(Box::new(PreviewPads {
            links: preview_ops.clone(),
            max_in_width: board.preview_max_in_width(),
        })),
    );
    b.controls(preview, crate::controls::preview());
    let preview_in = b.video("preview", false, 0)?;
    let preview_out = b.video("preview", true, 0)?;
    let resizer = b.subdev(
        "OMAP3 ISP resizer",
        function::RESIZER,
        &[S | MC, O],
        Some(resizer_ops.clone()),
        Some(Box::new(ResizerPads {
            links: resizer_ops.clone(),
            max_out_width: board.resizer_max_out_width(),
        })),
    );
    let resizer_in = b.video("resizer", false, 0)?;
    let resizer_out = b.video("resizer", true, MEDIA_ENT_FL_DEFAULT)?;
    let aewb = b.subdev(
        "OMAP3 ISP AEWB",
        function::STATISTICS,
        &[S | MC],
        None,
        None,
    );
    let af = b.subdev("OMAP3 ISP AF", function::STATISTICS, &[S | MC], None, None);
    let hist = b.subdev(
        "OMAP3 ISP histogram",
        function::STATISTICS,
        &[S | MC],
        None,
        None,
    );

    // isp_create_links().
    let fixed = MEDIA_LNK_FL_ENABLED | MEDIA_LNK_FL_IMMUTABLE;
    b.link((csi2a, 1), (csi2a_out, 0), 0)?;
    b.link((ccp2_in, 0), (ccp2, 0), 0)?;
    b.link((ccdc, 1), (ccdc_out, 0), 0)?;
    b.link((preview_in, 0), (preview, 0), 0)?;
    b.link((preview, 1), (preview_out, 0), 0)?;
    b.link((resizer_in, 0), (resizer, 0), 0)?;
    b.link((resizer, 1), (resizer_out, 0), 0)?;
    b.link((csi2a, 1), (ccdc, 0), 0)?;
    b.link((ccp2, 1), (ccdc, 0), 0)?;
    b.link((ccdc, 2), (preview, 0), 0)?;
    b.link((ccdc, 1), (resizer, 0), 0)?;
    b.link((preview, 1), (resizer, 0), 0)?;
    b.link((ccdc, 2), (aewb, 0), fixed)?;
    b.link((ccdc, 2), (af, 0), fixed)?;
    b.link((ccdc, 2), (hist, 0), fixed)?;

    // The async notifier binds the sensor; isp_link_entity() links its first source pad.
    let (sensor_pads, sensor_controls): (Box<dyn Block>, _) = match board {
        Board::BeagleboardXm => (
            Box::new(crate::pads::Mt9p031Pads),
            crate::controls::mt9p031(),
        ),
        Board::N900 => {
            let et = crate::et8ek8::Et8ek8Pads::new();
            let controls = et.controls();
            (Box::new(et), controls)
        }
    };
    let sensor = b.subdev(
        board.sensor(),
        MEDIA_ENT_F_CAM_SENSOR,
        &[O],
        None,
        Some(sensor_pads),
    );
    b.controls(sensor, sensor_controls);
    match board {
        Board::BeagleboardXm => b.link((sensor, 0), (ccdc, 0), 0)?,
        Board::N900 => b.link((sensor, 0), (ccp2, 0), 0)?,
    };

    // Notifier completion: v4l2_device_register_subdev_nodes(), in subdev list order.
    for sd in b.subdevs.clone() {
        let (major, minor) = b.reg.register_subdev(&sd)?;
        dev.graph_mut()
            .add_devnode_interface(sd.entity, MEDIA_INTF_T_V4L_SUBDEV, major, minor)?;
    }

    // Links touching a started pipeline are EBUSY.
    let rt = Arc::downgrade(&b.registry);
    dev.add_busy_check(Arc::new(move |e| rt.upgrade().is_some_and(|r| r.busy(e))));

    Ok(Isp {
        blocks: IspBlocks {
            ccp2: ccp2_ops,
            csi2a: csi2_ops,
            ccdc: ccdc_ops,
            preview: preview_ops,
            resizer: resizer_ops,
        },
        runtime: b.registry.clone(),
        video_nodes: b.video_nodes,
        subdevs: b.subdevs,
        sensor,
    })
}

#[cfg(test)]
mod tests {
    use media_graph::graph::gen_id;
    use media_graph::{Audit, MediaIoctls};

    use super::*;

    /// Hands out 81:N for video nodes and 81:128+N for subdevs, like a system with no other V4L2
    /// devices.
    #[derive(Default)]
    struct Numbers {
        video: u32,
        subdev: u32,
    }
    impl NodeRegistrar for Numbers {
        type Error = Errno;
        fn register_video(&mut self, _: &VideoNodeInfo) -> Result<(u32, u32), Errno> {
            self.video += 1;
            Ok((81, self.video - 1))
        }
        fn register_subdev(&mut self, _: &SubdevInfo) -> Result<(u32, u32), Errno> {
            self.subdev += 1;
            Ok((81, 128 + self.subdev - 1))
        }
    }

    fn isp(board: Board) -> (Arc<MediaDevice>, Isp) {
        let dev = MediaDevice::new(board.media_device_info(0x060100), Audit::new());
        let isp = build(board, &dev, &mut Numbers::default()).unwrap();
        (dev, isp)
    }

    fn link(source: (u32, u16), sink: (u32, u16), flags: u32) -> media_link_desc {
        let mut d = media_link_desc::zeroed();
        d.source.entity = source.0;
        d.source.index = source.1;
        d.sink.entity = sink.0;
        d.sink.index = sink.1;
        d.flags = flags;
        d
    }

    #[test]
    fn entity_ids_and_names_match_the_driver() {
        let (dev, _) = isp(Board::BeagleboardXm);
        let g = dev.graph();
        let got: Vec<(u32, &str)> = g
            .entities()
            .iter()
            .map(|e| (e.id, e.name.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "OMAP3 ISP CCP2"),
                (4, "OMAP3 ISP CCP2 input"),
                (8, "OMAP3 ISP CSI2a"),
                (11, "OMAP3 ISP CSI2a output"),
                (15, "OMAP3 ISP CCDC"),
                (19, "OMAP3 ISP CCDC output"),
                (23, "OMAP3 ISP preview"),
                (26, "OMAP3 ISP preview input"),
                (30, "OMAP3 ISP preview output"),
                (34, "OMAP3 ISP resizer"),
                (37, "OMAP3 ISP resizer input"),
                (41, "OMAP3 ISP resizer output"),
                (45, "OMAP3 ISP AEWB"),
                (47, "OMAP3 ISP AF"),
                (49, "OMAP3 ISP histogram"),
                (81, "mt9p031 1-0048"),
            ]
        );
        // One counter for every object: 102 objects were created.
        assert_eq!(g.topology_version(), 102);
    }

    #[test]
    fn topology_ids_pads_links_and_interfaces() {
        let (dev, _) = isp(Board::N900);
        let t = dev.topology().unwrap();
        assert_eq!(t.entities.len(), 16);
        assert_eq!(
            t.pads.len(),
            2 + 1 + 2 + 1 + 3 + 1 + 2 + 1 + 1 + 2 + 1 + 1 + 1 + 1 + 1 + 1
        );
        let ccdc_pads: Vec<u32> = t
            .pads
            .iter()
            .filter(|p| p.entity_id == 15)
            .map(|p| p.id)
            .collect();
        assert_eq!(ccdc_pads, vec![gen_id(1, 16), gen_id(1, 17), gen_id(1, 18)]);
        // 7 video interfaces then 9 subdev interfaces.
        let intf: Vec<u32> = t.interfaces.iter().map(|i| i.id & 0xffffff).collect();
        assert_eq!(
            intf,
            vec![6, 13, 21, 28, 32, 39, 43, 85, 87, 89, 91, 93, 95, 97, 99, 101]
        );
        assert!(t.interfaces.iter().all(|i| i.id >> 24 == 3));
        assert_eq!({ t.interfaces[0].devnode().minor }, 0);
        assert_eq!({ t.interfaces[15].devnode().minor }, 136);
        // Links: 7 video interface links, 15 data links, the sensor link, 9 subdev interface links.
        let ids: Vec<u32> = t.links.iter().map(|l| l.id & 0xffffff).collect();
        let mut want = vec![7, 14, 22, 29, 33, 40, 44];
        want.extend((1..=15).map(|n| 49 + 2 * n));
        want.push(83);
        want.extend((0..9).map(|n| 86 + 2 * n));
        assert_eq!(ids, want);
        // First data link: CSI2a:1 -> CSI2a output:0, by pad ids.
        let l = t.links[7];
        assert_eq!(
            (l.source_id, l.sink_id, l.flags),
            (gen_id(1, 10), gen_id(1, 12), 0)
        );
        // Interface link: interface -> entity, ENABLED | IMMUTABLE | INTERFACE_LINK.
        let il = t.links[0];
        assert_eq!(
            (il.source_id, il.sink_id, il.flags),
            (gen_id(3, 6), 4, 0x1000_0003)
        );
        // The N900 sensor feeds CCP2:0, disabled.
        let sl = t.links[22];
        assert_eq!(
            (sl.source_id, sl.sink_id, sl.flags),
            (gen_id(1, 82), gen_id(1, 2), 0)
        );
        let e = t.entities.iter().find(|e| e.id == 81).unwrap();
        assert_eq!(ioctl_abi::cstr(&e.name), "et8ek8 3-003e");
        assert_eq!({ e.function }, MEDIA_ENT_F_CAM_SENSOR);
        let ccdc = t.entities.iter().find(|e| e.id == 15).unwrap();
        assert_eq!({ ccdc.function }, MEDIA_ENT_F_PROC_VIDEO_PIXEL_ENC_CONV);
        let ro = t.entities.iter().find(|e| e.id == 41).unwrap();
        assert_eq!({ ro.flags }, MEDIA_ENT_FL_DEFAULT);
    }

    #[test]
    fn legacy_enumeration() {
        let (dev, _) = isp(Board::BeagleboardXm);
        let mut d = media_entity_desc::zeroed();
        d.id = MEDIA_ENT_ID_FLAG_NEXT;
        let mut seen = Vec::new();
        while let Ok(e) = dev.enum_entities(d) {
            seen.push((e.id, e.type_, e.pads, e.links, e.dev()));
            d.id = e.id | MEDIA_ENT_ID_FLAG_NEXT;
        }
        assert_eq!(seen.len(), 16);
        // New functions are reported as the legacy "V4L2 subdev unknown"; nodes as V4L devnodes.
        assert_eq!(
            seen[0],
            (1, MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN, 2, 1, (81, 128))
        );
        assert_eq!(seen[1], (4, MEDIA_ENT_F_IO_V4L, 1, 1, (81, 0)));
        assert_eq!(
            seen[4],
            (15, MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN, 3, 6, (81, 130))
        );
        assert_eq!(seen[15], (81, MEDIA_ENT_F_CAM_SENSOR, 1, 1, (81, 136)));
        d.id = 2;
        assert_eq!(
            dev.enum_entities(d),
            Err(Errno::EINVAL),
            "2 is a pad, not an entity"
        );
        d.id = 81 | MEDIA_ENT_ID_FLAG_NEXT;
        assert_eq!(
            dev.enum_entities(d),
            Err(Errno::EINVAL),
            "no entity after the last"
        );
        let mut req = media_links_enum::zeroed();
        req.entity = 15;
        let (pads, links) = dev.enum_links(&req).unwrap();
        assert_eq!(
            pads.iter().map(|p| p.flags).collect::<Vec<_>>(),
            vec![5, 2, 2]
        );
        let sinks: Vec<(u32, u16)> = links
            .iter()
            .map(|l| (l.sink.entity, l.sink.index))
            .collect();
        assert_eq!(
            sinks,
            vec![(19, 0), (23, 0), (34, 0), (45, 0), (47, 0), (49, 0)]
        );
        assert_eq!(
            links[3].flags,
            MEDIA_LNK_FL_ENABLED | MEDIA_LNK_FL_IMMUTABLE
        );
        req.entity = 3;
        assert_eq!(dev.enum_links(&req).err(), Some(Errno::EINVAL));
    }

    #[test]
    fn setup_link_core_errnos() {
        let (dev, _) = isp(Board::BeagleboardXm);
        let on = MEDIA_LNK_FL_ENABLED;
        // Unknown entity, pad out of range, no such link.
        assert_eq!(
            dev.setup_link(link((99, 0), (15, 0), on)).err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(
            dev.setup_link(link((15, 3), (19, 0), on)).err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(
            dev.setup_link(link((15, 1), (30, 0), on)).err(),
            Some(Errno::EINVAL)
        );
        // Flags other than ENABLED cannot change.
        assert_eq!(
            dev.setup_link(link((15, 1), (19, 0), on | MEDIA_LNK_FL_DYNAMIC))
                .err(),
            Some(Errno::EINVAL)
        );
        // Immutable: the same flags succeed, anything else fails.
        let fixed = MEDIA_LNK_FL_ENABLED | MEDIA_LNK_FL_IMMUTABLE;
        assert!(dev.setup_link(link((15, 2), (45, 0), fixed)).is_ok());
        assert_eq!(
            dev.setup_link(link((15, 2), (45, 0), MEDIA_LNK_FL_IMMUTABLE))
                .err(),
            Some(Errno::EINVAL)
        );
        // A no-op succeeds.
        assert!(dev.setup_link(link((15, 1), (19, 0), 0)).is_ok());
    }

    #[test]
    fn setup_link_isp_rules_and_rollback() {
        let (dev, isp) = isp(Board::BeagleboardXm);
        let on = MEDIA_LNK_FL_ENABLED;
        // The CCDC drives one output at a time.
        dev.setup_link(link((15, 1), (19, 0), on)).unwrap();
        assert_eq!(
            dev.setup_link(link((15, 2), (23, 0), on)).err(),
            Some(Errno::EBUSY)
        );
        assert_eq!(
            dev.setup_link(link((15, 1), (34, 0), on)).err(),
            Some(Errno::EBUSY)
        );
        dev.setup_link(link((15, 1), (19, 0), 0)).unwrap();
        // One input at a time: sensor, then CCP2 is refused.
        dev.setup_link(link((81, 0), (15, 0), on)).unwrap();
        assert_eq!(
            *isp.blocks.ccdc.state.lock(),
            (crate::links::CcdcInput::Parallel, 0)
        );
        assert_eq!(
            dev.setup_link(link((1, 1), (15, 0), on)).err(),
            Some(Errno::EBUSY)
        );
        // The resizer reads memory; CCDC -> resizer is refused by the sink, and the CCDC's
        // output state is rolled back.
        dev.setup_link(link((37, 0), (34, 0), on)).unwrap();
        assert_eq!(
            dev.setup_link(link((15, 1), (34, 0), on)).err(),
            Some(Errno::EBUSY)
        );
        assert_eq!(isp.blocks.ccdc.state.lock().1, 0, "rolled back");
        dev.setup_link(link((15, 1), (19, 0), on)).unwrap();
        let t = dev.topology().unwrap();
        let enabled = t.links.iter().filter(|l| l.flags == on).count();
        assert_eq!(
            enabled, 3,
            "sensor->CCDC, resizer input->resizer, CCDC->CCDC output"
        );
    }
}
