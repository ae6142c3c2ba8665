//! Handler traits of the V4L2 device nodes, one method per ioctl, each defaulting to ENOTTY.
//! The ioctl dispatcher decodes arguments and calls these; device models implement them.

use ioctl_abi::subdev::v4l2_subdev_capability;
use ioctl_abi::videodev2::{v4l2_capability, v4l2_event_subscription};
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
    /// `V4L2_SUBDEV_FL_HAS_EVENTS`: the node takes event subscriptions and polls for them.
    fn has_events(&self) -> bool {
        false
    }
    /// `core.subscribe_event`: validates a subscription and returns the per-handle queue depth.
    /// The event queues themselves are the core's (the dispatcher's).
    fn subscribe_event(&self, _sub: &v4l2_event_subscription) -> Result<usize, Errno> {
        Err(Errno::ENOTTY)
    }
}
