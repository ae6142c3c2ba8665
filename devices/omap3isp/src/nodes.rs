//! What the ISP's video and sub-device nodes answer at this stage: QUERYCAP.

use ioctl_abi::set_cstr;
use ioctl_abi::subdev::v4l2_subdev_capability;
use ioctl_abi::videodev2::*;
use media_graph::{SubdevIoctls, VideoIoctls};
use nix::errno::Errno;

/// `ISP_VIDEO_DRIVER_NAME`.
pub const VIDEO_DRIVER: &str = "ispvideo";

/// A video node ("OMAP3 ISP CCDC output", ...).
#[derive(Debug, Clone)]
pub struct IspVideo {
    pub name: String,
    pub capture: bool,
    /// LINUX_VERSION_CODE reported by the V4L2 core.
    pub kernel_version: u32,
}

impl IspVideo {
    /// `vdev->device_caps` (Linux 7.0: with V4L2_CAP_IO_MC).
    pub fn device_caps(&self) -> u32 {
        let dir = if self.capture {
            V4L2_CAP_VIDEO_CAPTURE
        } else {
            V4L2_CAP_VIDEO_OUTPUT
        };
        dir | V4L2_CAP_STREAMING | V4L2_CAP_IO_MC | V4L2_CAP_EXT_PIX_FORMAT
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
}

/// A sub-device node.
#[derive(Debug, Clone)]
pub struct IspSubdev {
    pub name: String,
    pub kernel_version: u32,
}

impl SubdevIoctls for IspSubdev {
    fn querycap(&self) -> Result<v4l2_subdev_capability, Errno> {
        let mut cap = v4l2_subdev_capability::zeroed();
        cap.version = self.kernel_version;
        // Read-write node (not V4L2_SUBDEV_CAP_RO_SUBDEV); no streams.
        cap.capabilities = 0;
        Ok(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn querycap_values() {
        let v = IspVideo {
            name: "OMAP3 ISP CCDC output".into(),
            capture: true,
            kernel_version: 0x060100,
        };
        let c = v.querycap().unwrap();
        assert_eq!(ioctl_abi::cstr(&c.driver), "ispvideo");
        assert_eq!(ioctl_abi::cstr(&c.card), "OMAP3 ISP CCDC output");
        assert_eq!(c.device_caps, 0x2420_0001);
        assert_eq!(c.capabilities, 0xa420_0003);
        let o = IspVideo {
            capture: false,
            ..v
        };
        assert_eq!(o.querycap().unwrap().device_caps, 0x2420_0002);
        let s = IspSubdev {
            name: "OMAP3 ISP CCDC".into(),
            kernel_version: 0x060100,
        };
        assert_eq!(s.querycap().unwrap().version, 0x060100);
    }
}
