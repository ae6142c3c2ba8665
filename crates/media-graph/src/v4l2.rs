//! Handler traits of the V4L2 device nodes, one method per ioctl, each defaulting to ENOTTY.
//! The ioctl dispatcher decodes arguments and calls these; device models implement them.

use ioctl_abi::subdev::v4l2_subdev_capability;
use ioctl_abi::videodev2::v4l2_capability;
use nix::errno::Errno;

/// `/dev/videoN`.
pub trait VideoIoctls: Send + Sync {
    fn querycap(&self) -> Result<v4l2_capability, Errno> {
        Err(Errno::ENOTTY)
    }
}

/// `/dev/v4l-subdevN`.
pub trait SubdevIoctls: Send + Sync {
    fn querycap(&self) -> Result<v4l2_subdev_capability, Errno> {
        Err(Errno::ENOTTY)
    }
}
