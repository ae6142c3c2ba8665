//! A pure-Rust CUSE server: character devices whose every syscall is answered in userspace.
//!
//! * [`abi`]: the wire structs of `linux/fuse.h` that CUSE uses.
//! * [`request`]: decoding; [`reply`]: typed replies sent exactly once.
//! * [`ioctl`]: the unrestricted-ioctl RETRY rounds.
//! * [`session`]: the CUSE_INIT handshake, reader threads, dispatch to a [`Device`].
//! * [`channel`]: the `/dev/cuse` transport; [`inproc`]: an in-process kernel for tests.
//!
//! This crate knows nothing about V4L2.

pub mod abi;
pub mod channel;
pub mod fuzzing;
pub mod inproc;
pub mod ioctl;
pub mod memory;
pub mod reply;
pub mod request;
pub mod session;
pub mod shm;
pub mod testdev;

pub use ioctl::{IoctlRequest, IoctlRound};
pub use memory::{ClientMemory, ProcessMemory, SimMemory};
pub use nix::errno::Errno;
pub use reply::{InterruptHandle, ReplyData, ReplyIoctl, ReplyWrite};
pub use session::{
    Context, Device, DeviceInfo, Notifier, Session, SessionError, SessionHandle, Transport, LINGER,
};
