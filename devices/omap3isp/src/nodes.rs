//! The ISP's sub-device nodes: QUERYCAP, pad operations through [`SubdevPads`], events.

use ioctl_abi::subdev::v4l2_subdev_capability;
use ioctl_abi::videodev2::*;
use std::sync::Arc;

use parking_lot::Mutex;

use ioctl_abi::subdev::*;
use media_graph::controls::Controls;
use media_graph::SubdevIoctls;

use crate::pads::SubdevPads;
use nix::errno::Errno;

/// A sub-device node.
#[derive(Clone)]
pub struct IspSubdev {
    pub name: String,
    pub kernel_version: u32,
    pub num_pads: usize,
    /// The block's pad operations; None where the driver has none (statistics).
    pub pads: Option<Arc<SubdevPads>>,
    /// The control handler, where the driver has controls (preview, sensors).
    pub controls: Option<Arc<Controls>>,
    /// The statistics engines' private ioctls (AEWB, AF, histogram).
    pub stat: Option<Arc<crate::stat::Stat>>,
    /// Whether the block is part of a streaming pipeline.
    pub streaming: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// CCDC_CFG / PRV_CFG parameters.
    pub ccdc_cfg: Arc<Mutex<crate::cfg::CcdcParams>>,
    pub prev_cfg: Arc<Mutex<crate::cfg::PrevParams>>,
}

/// `OMAP3ISP_CCDC_NEVENTS`, `STAT_NEVENTS`: per-handle event queue depths.
pub const CCDC_NEVENTS: usize = 16;
pub const STAT_NEVENTS: usize = 8;

impl IspSubdev {
    /// The event the block emits, if it has `V4L2_SUBDEV_FL_HAS_EVENTS`: the CCDC signals
    /// FRAME_SYNC at each frame start, the statistics engines their buffer-ready events.
    pub fn event(&self) -> Option<(u32, usize)> {
        use ioctl_abi::omap3isp::*;
        match self.name.as_str() {
            "OMAP3 ISP CCDC" => Some((V4L2_EVENT_FRAME_SYNC, CCDC_NEVENTS)),
            "OMAP3 ISP AEWB" => Some((V4L2_EVENT_OMAP3ISP_AEWB, STAT_NEVENTS)),
            "OMAP3 ISP AF" => Some((V4L2_EVENT_OMAP3ISP_AF, STAT_NEVENTS)),
            "OMAP3 ISP histogram" => Some((V4L2_EVENT_OMAP3ISP_HIST, STAT_NEVENTS)),
            _ => None,
        }
    }
}

impl IspSubdev {
    fn pads(&self) -> Result<&Arc<SubdevPads>, Errno> {
        self.pads.as_ref().ok_or(Errno::ENOTTY)
    }
}

impl SubdevIoctls for IspSubdev {
    fn querycap(&self) -> Result<v4l2_subdev_capability, Errno> {
        let mut cap = v4l2_subdev_capability::zeroed();
        cap.version = self.kernel_version;
        // Read-write node (not V4L2_SUBDEV_CAP_RO_SUBDEV); no streams.
        cap.capabilities = 0;
        Ok(cap)
    }

    /// The CCDC and statistics engines queue their own events; Linux 7.0 also gives the
    /// preview engine `HAS_EVENTS` so its controls send control events.
    fn has_events(&self) -> bool {
        self.event().is_some() || (self.name == "OMAP3 ISP preview" && self.controls.is_some())
    }

    fn controls(&self) -> Option<Arc<Controls>> {
        self.controls.clone()
    }

    /// `core.ioctl`: the CCDC's and the preview's configuration, the statistics engines'
    /// ioctls; ENOTTY elsewhere.
    fn private_ioctl(
        &self,
        cmd: u32,
        arg: &mut [u8],
        memory: Option<&dyn media_graph::vb2::UserMemory>,
    ) -> Result<i32, Errno> {
        use ioctl_abi::omap3isp::*;
        use zerocopy::FromBytes;
        match (self.name.as_str(), cmd) {
            ("OMAP3 ISP CCDC", VIDIOC_OMAP3ISP_CCDC_CFG) => {
                let c =
                    omap3isp_ccdc_update_config::read_from_bytes(arg).map_err(|_| Errno::EFAULT)?;
                let streaming = self.streaming.as_ref().is_some_and(|f| f());
                crate::cfg::ccdc_config(&self.ccdc_cfg, &c, memory, streaming).map(|_| 0)
            }
            ("OMAP3 ISP preview", VIDIOC_OMAP3ISP_PRV_CFG) => {
                let c =
                    omap3isp_prev_update_config::read_from_bytes(arg).map_err(|_| Errno::EFAULT)?;
                crate::cfg::preview_config(&self.prev_cfg, &c, memory).map(|_| 0)
            }
            _ => self
                .stat
                .as_ref()
                .ok_or(Errno::ENOTTY)?
                .ioctl(cmd, arg, memory),
        }
    }

    fn open(&self, fh: u64) {
        if let Some(p) = &self.pads {
            p.open(fh);
        }
    }

    fn release(&self, fh: u64) {
        if let Some(p) = &self.pads {
            p.release(fh);
        }
    }

    fn enum_mbus_code(
        &self,
        fh: u64,
        c: v4l2_subdev_mbus_code_enum,
    ) -> Result<v4l2_subdev_mbus_code_enum, Errno> {
        self.pads()?.enum_mbus_code(fh, c)
    }

    fn enum_frame_size(
        &self,
        fh: u64,
        f: v4l2_subdev_frame_size_enum,
    ) -> Result<v4l2_subdev_frame_size_enum, Errno> {
        self.pads()?.enum_frame_size(fh, f)
    }

    fn enum_frame_interval(
        &self,
        fh: u64,
        f: v4l2_subdev_frame_interval_enum,
    ) -> Result<v4l2_subdev_frame_interval_enum, Errno> {
        self.pads()?.enum_frame_interval(fh, f)
    }

    fn get_frame_interval(
        &self,
        fh: u64,
        f: v4l2_subdev_frame_interval,
    ) -> Result<v4l2_subdev_frame_interval, Errno> {
        self.pads()?.get_frame_interval(fh, f)
    }

    fn set_frame_interval(
        &self,
        fh: u64,
        f: v4l2_subdev_frame_interval,
    ) -> Result<v4l2_subdev_frame_interval, Errno> {
        self.pads()?.set_frame_interval(fh, f)
    }

    fn get_fmt(&self, fh: u64, f: v4l2_subdev_format) -> Result<v4l2_subdev_format, Errno> {
        self.pads()?.get_fmt(fh, f)
    }

    fn set_fmt(&self, fh: u64, f: v4l2_subdev_format) -> Result<v4l2_subdev_format, Errno> {
        self.pads()?.set_fmt(fh, f)
    }

    fn get_selection(
        &self,
        fh: u64,
        s: v4l2_subdev_selection,
    ) -> Result<v4l2_subdev_selection, Errno> {
        self.pads()?.get_selection(fh, s)
    }

    fn set_selection(
        &self,
        fh: u64,
        s: v4l2_subdev_selection,
    ) -> Result<v4l2_subdev_selection, Errno> {
        let pads = self.pads()?;
        if !pads.block().has_selection() {
            return Err(Errno::ENOTTY);
        }
        pads.check(s.which, s.pad)?;
        // The CCDC's and the preview's crop cannot change while they stream (TRY included:
        // the drivers check their state first); the resizer's can.
        let crop_pad = match self.name.as_str() {
            "OMAP3 ISP CCDC" => Some(1),
            "OMAP3 ISP preview" => Some(0),
            _ => None,
        };
        if s.target == ioctl_abi::videodev2::V4L2_SEL_TGT_CROP
            && crop_pad == Some(s.pad)
            && self.streaming.as_ref().is_some_and(|f| f())
        {
            return Err(Errno::EBUSY);
        }
        pads.set_selection(fh, s)
    }

    /// `ccdc_subscribe_event` (FRAME_SYNC, id 0) and `omap3isp_stat_subscribe_event`.
    fn subscribe_event(&self, sub: &v4l2_event_subscription) -> Result<usize, Errno> {
        let Some((ty, depth)) = self.event() else {
            // Control events only (the event core handles V4L2_EVENT_CTRL itself).
            return Err(if self.has_events() {
                Errno::EINVAL
            } else {
                Errno::ENOTTY
            });
        };
        if sub.type_ != ty || (ty == V4L2_EVENT_FRAME_SYNC && sub.id != 0) {
            return Err(Errno::EINVAL);
        }
        Ok(depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdev_querycap_and_events() {
        let s = IspSubdev {
            name: "OMAP3 ISP CCDC".into(),
            kernel_version: 0x060100,
            num_pads: 3,
            pads: None,
            controls: None,
            stat: None,
            streaming: None,
            ccdc_cfg: Default::default(),
            prev_cfg: Default::default(),
        };
        assert_eq!(s.querycap().unwrap().version, 0x060100);
        let mut sub = v4l2_event_subscription::zeroed();
        sub.type_ = V4L2_EVENT_FRAME_SYNC;
        assert_eq!(s.subscribe_event(&sub), Ok(CCDC_NEVENTS));
        sub.id = 1;
        assert_eq!(s.subscribe_event(&sub), Err(Errno::EINVAL));
        sub.type_ = V4L2_EVENT_CTRL;
        sub.id = 0;
        assert_eq!(s.subscribe_event(&sub), Err(Errno::EINVAL));
        let p = IspSubdev {
            name: "OMAP3 ISP preview".into(),
            kernel_version: 0x060100,
            num_pads: 2,
            pads: None,
            controls: None,
            stat: None,
            streaming: None,
            ccdc_cfg: Default::default(),
            prev_cfg: Default::default(),
        };
        assert!(!p.has_events(), "no events without the control handler");
        assert_eq!(p.subscribe_event(&sub), Err(Errno::ENOTTY));
        let p = IspSubdev {
            controls: Some(crate::controls::preview()),
            ..p
        };
        assert!(p.has_events(), "Linux 7.0: control events on the preview");
        sub.type_ = V4L2_EVENT_FRAME_SYNC;
        assert_eq!(p.subscribe_event(&sub), Err(Errno::EINVAL));
    }
}
