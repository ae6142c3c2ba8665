//! The subset of `linux/fuse.h` that a CUSE server sees on the wire.
//!
//! Hand-written (the subset is small and append-only stable since 7.16); every size is asserted
//! and checked against the system header by `tests/fuse_header_layout.rs`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const FUSE_KERNEL_VERSION: u32 = 7;
/// The minor protocol version we speak. >= 16 keeps RETRY iovecs in the 16-byte
/// `fuse_ioctl_iovec` format.
pub const FUSE_KERNEL_MINOR_VERSION: u32 = 31;
pub const FUSE_MIN_READ_BUFFER: usize = 8192;
pub const CUSE_INIT_INFO_MAX: usize = 4096;
pub const CUSE_UNRESTRICTED_IOCTL: u32 = 1;

pub const FUSE_IOCTL_COMPAT: u32 = 1;
pub const FUSE_IOCTL_UNRESTRICTED: u32 = 2;
pub const FUSE_IOCTL_RETRY: u32 = 4;
pub const FUSE_IOCTL_32BIT: u32 = 8;
pub const FUSE_IOCTL_DIR: u32 = 16;
pub const FUSE_IOCTL_COMPAT_X32: u32 = 32;
pub const FUSE_IOCTL_MAX_IOV: usize = 256;

pub const FUSE_POLL_SCHEDULE_NOTIFY: u32 = 1;
pub const FUSE_NOTIFY_POLL: i32 = 1;
/// Bit set in the `unique` of an INTERRUPT request (kernel >= 5.0).
pub const FUSE_INT_REQ_BIT: u64 = 1;

/// The kernel limits each direction of one ioctl round (and each READ/WRITE chunk) to 32 pages.
pub const FUSE_DEFAULT_MAX_PAGES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Opcode {
    Open = 14,
    Read = 15,
    Write = 16,
    Release = 18,
    Fsync = 20,
    Flush = 25,
    Interrupt = 36,
    Ioctl = 39,
    Poll = 40,
    CuseInit = 4096,
}

impl Opcode {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            14 => Self::Open,
            15 => Self::Read,
            16 => Self::Write,
            18 => Self::Release,
            20 => Self::Fsync,
            25 => Self::Flush,
            36 => Self::Interrupt,
            39 => Self::Ioctl,
            40 => Self::Poll,
            4096 => Self::CuseInit,
            _ => return None,
        })
    }
}

macro_rules! wire_struct {
    ($(#[$m:meta])* $name:ident, $size:expr, { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
        #[repr(C)]
        #[allow(non_camel_case_types)]
        pub struct $name { $(pub $field: $ty),* }
        const _: () = assert!(core::mem::size_of::<$name>() == $size);
        impl $name {
            /// Field names and byte offsets, for the layout test against the C header.
            pub const FIELDS: &'static [(&'static str, usize)] =
                &[$((stringify!($field), core::mem::offset_of!($name, $field))),*];
        }
    };
}

wire_struct!(fuse_in_header, 40, {
    len: u32, opcode: u32, unique: u64, nodeid: u64, uid: u32, gid: u32, pid: u32,
    total_extlen: u16, padding: u16,
});
wire_struct!(fuse_out_header, 16, { len: u32, error: i32, unique: u64 });
wire_struct!(cuse_init_in, 16, { major: u32, minor: u32, unused: u32, flags: u32 });
wire_struct!(cuse_init_out, 72, {
    major: u32, minor: u32, unused: u32, flags: u32, max_read: u32, max_write: u32,
    dev_major: u32, dev_minor: u32, spare: [u32; 10],
});
wire_struct!(fuse_open_in, 8, { flags: u32, open_flags: u32 });
wire_struct!(fuse_open_out, 16, { fh: u64, open_flags: u32, padding: u32 });
wire_struct!(fuse_read_in, 40, {
    fh: u64, offset: u64, size: u32, read_flags: u32, lock_owner: u64, flags: u32, padding: u32,
});
wire_struct!(fuse_write_in, 40, {
    fh: u64, offset: u64, size: u32, write_flags: u32, lock_owner: u64, flags: u32, padding: u32,
});
wire_struct!(fuse_write_out, 8, { size: u32, padding: u32 });
wire_struct!(fuse_release_in, 24, { fh: u64, flags: u32, release_flags: u32, lock_owner: u64 });
wire_struct!(fuse_interrupt_in, 8, { unique: u64 });
wire_struct!(fuse_ioctl_in, 32, {
    fh: u64, flags: u32, cmd: u32, arg: u64, in_size: u32, out_size: u32,
});
wire_struct!(fuse_ioctl_out, 16, { result: i32, flags: u32, in_iovs: u32, out_iovs: u32 });
wire_struct!(fuse_ioctl_iovec, 16, { base: u64, len: u64 });
wire_struct!(fuse_poll_in, 24, { fh: u64, kh: u64, flags: u32, events: u32 });
wire_struct!(fuse_poll_out, 8, { revents: u32, padding: u32 });
wire_struct!(fuse_notify_poll_wakeup_out, 8, { kh: u64 });

/// (field name, byte offset) pairs of a struct.
pub type Fields = &'static [(&'static str, usize)];

/// Every wire struct with its size and fields, for the layout test.
pub const ALL_STRUCTS: &[(&str, usize, Fields)] = &[
    ("fuse_in_header", 40, fuse_in_header::FIELDS),
    ("fuse_out_header", 16, fuse_out_header::FIELDS),
    ("cuse_init_in", 16, cuse_init_in::FIELDS),
    ("cuse_init_out", 72, cuse_init_out::FIELDS),
    ("fuse_open_in", 8, fuse_open_in::FIELDS),
    ("fuse_open_out", 16, fuse_open_out::FIELDS),
    ("fuse_read_in", 40, fuse_read_in::FIELDS),
    ("fuse_write_in", 40, fuse_write_in::FIELDS),
    ("fuse_write_out", 8, fuse_write_out::FIELDS),
    ("fuse_release_in", 24, fuse_release_in::FIELDS),
    ("fuse_interrupt_in", 8, fuse_interrupt_in::FIELDS),
    ("fuse_ioctl_in", 32, fuse_ioctl_in::FIELDS),
    ("fuse_ioctl_out", 16, fuse_ioctl_out::FIELDS),
    ("fuse_ioctl_iovec", 16, fuse_ioctl_iovec::FIELDS),
    ("fuse_poll_in", 24, fuse_poll_in::FIELDS),
    ("fuse_poll_out", 8, fuse_poll_out::FIELDS),
    (
        "fuse_notify_poll_wakeup_out",
        8,
        fuse_notify_poll_wakeup_out::FIELDS,
    ),
];
