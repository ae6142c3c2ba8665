//! The pixel formats a capture or output entity may list, and how they meet media bus codes:
//! which codes a link from a sub-device's source pad may carry into a video node of that format
//! (the drivers' `link_validate`), and how many bytes a pixel takes.

use ioctl_abi::subdev::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    /// The fourcc as written in topology files ("YUYV").
    pub name: &'static str,
    pub fourcc: u32,
    pub bytes_per_pixel: u32,
    /// Bus codes that carry it, the preferred one first.
    pub codes: &'static [u32],
    /// How the test pattern is written in it.
    pub layout: Layout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Yuyv,
    Uyvy,
    Rgb,
    Bgr,
    Grey,
    /// 8-bit Bayer; the colour at (even row, even column), then its right neighbour, then the
    /// next row's first two.
    Bayer([u8; 4]),
}

const fn fcc(s: &str) -> u32 {
    let b = s.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

const R: u8 = 0;
const G: u8 = 1;
const B: u8 = 2;

pub const PIXEL_FORMATS: &[PixelFormat] = &[
    PixelFormat {
        name: "YUYV",
        fourcc: fcc("YUYV"),
        bytes_per_pixel: 2,
        codes: &[MEDIA_BUS_FMT_YUYV8_2X8, MEDIA_BUS_FMT_YUYV8_1X16],
        layout: Layout::Yuyv,
    },
    PixelFormat {
        name: "UYVY",
        fourcc: fcc("UYVY"),
        bytes_per_pixel: 2,
        codes: &[MEDIA_BUS_FMT_UYVY8_2X8, MEDIA_BUS_FMT_UYVY8_1X16],
        layout: Layout::Uyvy,
    },
    PixelFormat {
        name: "RGB3",
        fourcc: fcc("RGB3"),
        bytes_per_pixel: 3,
        codes: &[MEDIA_BUS_FMT_RGB888_1X24],
        layout: Layout::Rgb,
    },
    PixelFormat {
        name: "BGR3",
        fourcc: fcc("BGR3"),
        bytes_per_pixel: 3,
        codes: &[MEDIA_BUS_FMT_BGR888_1X24],
        layout: Layout::Bgr,
    },
    PixelFormat {
        name: "GREY",
        fourcc: fcc("GREY"),
        bytes_per_pixel: 1,
        codes: &[MEDIA_BUS_FMT_Y8_1X8],
        layout: Layout::Grey,
    },
    PixelFormat {
        name: "BA81",
        fourcc: fcc("BA81"),
        bytes_per_pixel: 1,
        codes: &[MEDIA_BUS_FMT_SBGGR8_1X8],
        layout: Layout::Bayer([B, G, G, R]),
    },
    PixelFormat {
        name: "GBRG",
        fourcc: fcc("GBRG"),
        bytes_per_pixel: 1,
        codes: &[MEDIA_BUS_FMT_SGBRG8_1X8],
        layout: Layout::Bayer([G, B, R, G]),
    },
    PixelFormat {
        name: "GRBG",
        fourcc: fcc("GRBG"),
        bytes_per_pixel: 1,
        codes: &[MEDIA_BUS_FMT_SGRBG8_1X8],
        layout: Layout::Bayer([G, R, B, G]),
    },
    PixelFormat {
        name: "RGGB",
        fourcc: fcc("RGGB"),
        bytes_per_pixel: 1,
        codes: &[MEDIA_BUS_FMT_SRGGB8_1X8],
        layout: Layout::Bayer([R, G, G, B]),
    },
];

pub fn by_name(name: &str) -> Option<&'static PixelFormat> {
    PIXEL_FORMATS.iter().find(|p| p.name == name)
}

pub fn by_fourcc(fourcc: u32) -> Option<&'static PixelFormat> {
    PIXEL_FORMATS.iter().find(|p| p.fourcc == fourcc)
}

/// The pixel format a bus code arrives as, if any.
pub fn by_code(code: u32) -> Option<&'static PixelFormat> {
    PIXEL_FORMATS.iter().find(|p| p.codes.contains(&code))
}

/// Bus codes a bridge with no `formats` passes: every code some pixel format is carried by.
pub fn all_codes() -> Vec<u32> {
    PIXEL_FORMATS
        .iter()
        .flat_map(|p| p.codes.iter().copied())
        .collect()
}

/// 8-bit Bayer bus codes (a debayer's sink).
pub const BAYER8: [u32; 4] = [
    MEDIA_BUS_FMT_SBGGR8_1X8,
    MEDIA_BUS_FMT_SGBRG8_1X8,
    MEDIA_BUS_FMT_SGRBG8_1X8,
    MEDIA_BUS_FMT_SRGGB8_1X8,
];

/// What a debayer's source pad gives.
pub const DEBAYER_OUT: [u32; 2] = [MEDIA_BUS_FMT_RGB888_1X24, MEDIA_BUS_FMT_BGR888_1X24];
