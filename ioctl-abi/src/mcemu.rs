//! mcemu's own ioctl between the preload shim and the daemon (not a kernel uapi, so not in the
//! layout test): the shim asks a video node for the MMAP buffer at an offset and is told where
//! to collect its memory.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::iowr;

/// `MCEMU_IOC_MMAP`'s argument.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct mcemu_mmap {
    /// In: the `mmap` offset (QUERYBUF's `m.offset`) and length.
    pub offset: u64,
    pub length: u64,
    /// Out: the grant to present on the buffer socket, and that socket's path.
    pub token: u64,
    pub socket: [u8; 108],
    /// In: the mapping's `MCEMU_VM_*` flags.
    pub vm: u32,
}

/// `mcemu_mmap.vm`: the mapping is MAP_SHARED, readable, writable.
pub const MCEMU_VM_SHARED: u32 = 1;
pub const MCEMU_VM_READ: u32 = 2;
pub const MCEMU_VM_WRITE: u32 = 4;

impl mcemu_mmap {
    pub fn zeroed() -> Self {
        <Self as FromZeros>::new_zeroed()
    }
}

/// An ioctl type byte no kernel driver of these nodes uses.
pub const MCEMU_IOC_TYPE: u8 = 0xec;
pub const MCEMU_IOC_MMAP: u32 = iowr(MCEMU_IOC_TYPE, 1, core::mem::size_of::<mcemu_mmap>());

/// `MCEMU_IOC_SETFL`: the shim tells the node about an `fcntl(F_SETFL)` on the descriptor (CUSE
/// passes the flags of `open()` only). The argument is the new file status flags.
pub const MCEMU_IOC_SETFL: u32 = crate::iow(MCEMU_IOC_TYPE, 2, core::mem::size_of::<u32>());
