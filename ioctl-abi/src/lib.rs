//! `#[repr(C)]` structs and ioctl numbers of the Linux media uapi headers: `linux/media.h`,
//! `linux/videodev2.h`, `linux/v4l2-subdev.h` (with `linux/v4l2-mediabus.h`) and
//! `linux/omap3isp.h`, for x86_64/aarch64 (LP64).
//!
//! Conventions:
//! * names are the C names, so code reads like the kernel's;
//! * every implicit C padding is an explicit `_padN` field, so the structs derive zerocopy's
//!   `IntoBytes`;
//! * pointers are `u64` client addresses, never Rust pointers;
//! * a C union is a byte array or integer of the union's size at its offset, named after one of
//!   its members (C anonymous unions keep a member name valid for `offsetof`), with typed
//!   accessors where the daemon needs them;
//! * `type` is spelled `type_`.
//!
//! `tests/layout.rs` compiles a C program against the system's uapi headers and compares the
//! size of every struct, the offset of every field and every ioctl number with this crate.

pub mod mcemu;
pub mod media;
pub mod omap3isp;
pub mod subdev;
pub mod videodev2;

/// A struct's layout as this crate declares it: name, size, and (field, offset) pairs.
#[derive(Debug, Clone, Copy)]
pub struct StructLayout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

/// `_IOC` direction bits (asm-generic: x86, arm, arm64, riscv).
pub const IOC_NONE: u32 = 0;
pub const IOC_WRITE: u32 = 1;
pub const IOC_READ: u32 = 2;

pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32 & 0x3fff) << 16) | ((ty as u32) << 8) | nr as u32
}
pub const fn io(ty: u8, nr: u8) -> u32 {
    ioc(IOC_NONE, ty, nr, 0)
}
pub const fn ior(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_READ, ty, nr, size)
}
pub const fn iow(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_WRITE, ty, nr, size)
}
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size)
}
/// `_IOC_NR`, `_IOC_TYPE`, `_IOC_SIZE`, `_IOC_DIR`.
pub const fn ioc_nr(cmd: u32) -> u8 {
    (cmd & 0xff) as u8
}
pub const fn ioc_type(cmd: u32) -> u8 {
    ((cmd >> 8) & 0xff) as u8
}
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> 16) & 0x3fff) as usize
}
pub const fn ioc_dir(cmd: u32) -> u32 {
    cmd >> 30
}

/// Copies `s` into a fixed-size, NUL-padded C string field (truncating to leave a NUL).
pub fn set_cstr<const N: usize>(dst: &mut [u8; N], s: &str) {
    *dst = [0; N];
    let n = s.len().min(N.saturating_sub(1));
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// Reads a NUL-terminated C string field.
pub fn cstr(src: &[u8]) -> &str {
    let end = src.iter().position(|b| *b == 0).unwrap_or(src.len());
    std::str::from_utf8(&src[..end]).unwrap_or("")
}

/// Declares uapi structs (each with its `#[repr(C)]` or `#[repr(C, packed)]`): adds the zerocopy
/// derives and `Default`, asserts the size, records the layout.
macro_rules! abi_structs {
    ($(
        $(#[$m:meta])*
        struct $name:ident ($size:expr) { $($field:ident : $ty:ty),* $(,)? }
    )*) => {
        $(
            $(#[$m])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, zerocopy::FromBytes, zerocopy::IntoBytes,
                     zerocopy::Immutable, zerocopy::KnownLayout)]
            #[allow(non_camel_case_types, non_snake_case)]
            pub struct $name { $(pub $field: $ty),* }
            const _: () = assert!(core::mem::size_of::<$name>() == $size);
            impl $name {
                /// A zero-filled value, as userspace starts with `memset(0)`.
                pub fn zeroed() -> Self {
                    zerocopy::FromZeros::new_zeroed()
                }
            }
            impl Default for $name {
                fn default() -> Self {
                    Self::zeroed()
                }
            }
        )*
        /// Layouts of the structs declared in this module.
        pub const LAYOUTS: &[$crate::StructLayout] = &[$(
            $crate::StructLayout {
                name: stringify!($name),
                size: core::mem::size_of::<$name>(),
                fields: &[$((stringify!($field), core::mem::offset_of!($name, $field))),*],
            }
        ),*];
    };
}

/// Declares ioctl numbers and records them for the layout test.
macro_rules! abi_ioctls {
    ($($(#[$m:meta])* $name:ident = $value:expr;)*) => {
        $($(#[$m])* pub const $name: u32 = $value;)*
        /// Every ioctl number declared in this module, by C name.
        pub const IOCTLS: &[(&str, u32)] = &[$((stringify!($name), $name)),*];
    };
}

/// Declares `u32` constants (flags, functions, codes) and records them for the layout test.
macro_rules! abi_consts {
    ($($(#[$m:meta])* $name:ident = $value:expr;)*) => {
        $($(#[$m])* pub const $name: u32 = $value;)*
        /// Every `u32` constant declared in this module, by C name.
        pub const CONSTS: &[(&str, u32)] = &[$((stringify!($name), $name)),*];
    };
}

pub(crate) use {abi_consts, abi_ioctls, abi_structs};

/// All struct layouts of the crate.
pub fn all_layouts() -> impl Iterator<Item = &'static StructLayout> {
    media::LAYOUTS
        .iter()
        .chain(videodev2::LAYOUTS)
        .chain(subdev::LAYOUTS)
        .chain(omap3isp::LAYOUTS)
}

/// All `u32` constants of the crate, by C name.
pub fn all_consts() -> impl Iterator<Item = &'static (&'static str, u32)> {
    media::CONSTS
        .iter()
        .chain(videodev2::CONSTS)
        .chain(subdev::CONSTS)
        .chain(omap3isp::CONSTS)
}

/// All ioctl numbers of the crate, by C name.
pub fn all_ioctls() -> impl Iterator<Item = &'static (&'static str, u32)> {
    media::IOCTLS
        .iter()
        .chain(videodev2::IOCTLS)
        .chain(subdev::IOCTLS)
        .chain(omap3isp::IOCTLS)
}
