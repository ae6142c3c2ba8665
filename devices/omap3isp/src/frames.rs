//! The simulated hardware's pixels: the sensor's moving scene as a Bayer mosaic, and the ISP
//! blocks along a pipeline (CCDC crop and lane shifter / 10-bit VP, preview demosaic with
//! brightness and contrast to YUV 4:2:2, resizer crop and scaling), down to the bytes a video
//! node writes into a buffer.

use ioctl_abi::subdev::*;
use ioctl_abi::videodev2::{v4l2_pix_format, v4l2_rect};

use crate::pads::format_info;

/// An image between two blocks.
#[derive(Clone, Debug)]
pub enum Image {
    /// A raw sensor image: `bits` per sample, colour filter order from the bus code.
    Raw {
        width: u32,
        height: u32,
        bits: u32,
        code: u32,
        data: Vec<u16>,
    },
    /// YUV 4:4:4 internally; written out as 4:2:2.
    Yuv {
        width: u32,
        height: u32,
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
    },
}

impl Image {
    pub fn size(&self) -> (u32, u32) {
        match self {
            Image::Raw { width, height, .. } | Image::Yuv { width, height, .. } => {
                (*width, *height)
            }
        }
    }
}

/// What the sensor is looking at.
#[derive(Debug, Clone, Copy)]
pub struct Scene {
    /// Frame number: the pattern moves with it.
    pub frame: u64,
    /// 0: the scene; otherwise the sensor's test pattern (control value).
    pub test_pattern: i32,
    /// Analogue gain relative to unity, in 1/16 steps (16 = unity).
    pub gain16: u32,
}

/// Colour filter position of (x, y) for a Bayer code: 0 = R, 1 = G, 2 = B.
pub(crate) fn cfa(code: u32, x: u32, y: u32) -> usize {
    let order: [usize; 4] = match code {
        MEDIA_BUS_FMT_SBGGR8_1X8
        | MEDIA_BUS_FMT_SBGGR10_1X10
        | MEDIA_BUS_FMT_SBGGR12_1X12
        | MEDIA_BUS_FMT_SBGGR10_DPCM8_1X8 => [2, 1, 1, 0],
        MEDIA_BUS_FMT_SGBRG8_1X8
        | MEDIA_BUS_FMT_SGBRG10_1X10
        | MEDIA_BUS_FMT_SGBRG12_1X12
        | MEDIA_BUS_FMT_SGBRG10_DPCM8_1X8 => [1, 2, 0, 1],
        MEDIA_BUS_FMT_SRGGB8_1X8
        | MEDIA_BUS_FMT_SRGGB10_1X10
        | MEDIA_BUS_FMT_SRGGB12_1X12
        | MEDIA_BUS_FMT_SRGGB10_DPCM8_1X8 => [0, 1, 1, 2],
        // GRBG, and monochrome (every site reads as green).
        _ => [1, 0, 2, 1],
    };
    if is_mono(code) {
        return 1;
    }
    order[((y & 1) * 2 + (x & 1)) as usize]
}

fn is_mono(code: u32) -> bool {
    matches!(
        code,
        MEDIA_BUS_FMT_Y8_1X8 | MEDIA_BUS_FMT_Y10_1X10 | MEDIA_BUS_FMT_Y12_1X12
    )
}

fn is_yuv(code: u32) -> bool {
    matches!(
        code,
        MEDIA_BUS_FMT_UYVY8_1X16
            | MEDIA_BUS_FMT_YUYV8_1X16
            | MEDIA_BUS_FMT_UYVY8_2X8
            | MEDIA_BUS_FMT_YUYV8_2X8
    )
}

/// Bits per sample of a raw code (DPCM codes carry 10-bit data).
fn bits_of(code: u32) -> u32 {
    match format_info(code) {
        Some(i) if i.uncompressed != i.code => 10,
        Some(i) => i.width,
        None => 10,
    }
}

/// The scene's eight colour bars, at limited-range RGB levels.
const BARS: [[u32; 3]; 8] = [
    [235, 235, 235],
    [235, 235, 16],
    [16, 235, 235],
    [16, 235, 16],
    [235, 16, 235],
    [235, 16, 16],
    [16, 16, 235],
    [16, 16, 16],
];

/// The scene's colour at (x, y) of a `w`x`h` frame, 0..=255 per channel: eight colour bars that
/// scroll sideways with the frame number, and a white square moving diagonally.
#[cfg(test)]
fn scene_rgb(s: &Scene, x: u32, y: u32, w: u32, h: u32) -> [u32; 3] {
    let (w, h) = (w.max(1) as u64, h.max(1) as u64);
    if s.test_pattern != 0 {
        // Test patterns: fixed vertical bars, no motion (what the sensors' generators show).
        return BARS[((x as u64 * 8) / w) as usize % 8];
    }
    let side = (w.min(h) / 6).max(2);
    let period_x = w.saturating_sub(side).max(1);
    let period_y = h.saturating_sub(side).max(1);
    let bx = (s.frame * 7) % period_x;
    let by = (s.frame * 5) % period_y;
    let (xu, yu) = (x as u64, y as u64);
    if xu >= bx && xu < bx + side && yu >= by && yu < by + side {
        return [255, 255, 255];
    }
    let shifted = (xu + s.frame * 4) % w;
    let bar = BARS[((shifted * 8) / w) as usize % 8];
    // A vertical ramp so that rows differ too.
    let ramp = 64 + (yu * 192 / h) as u32;
    [
        bar[0] * ramp / 255,
        bar[1] * ramp / 255,
        bar[2] * ramp / 255,
    ]
}

/// The sensor's output: the scene sampled through its colour filter at `code`'s bit depth.
/// Equal to sampling [`scene_rgb`] per pixel; computed per bar and per row instead.
pub fn sensor(fmt: &v4l2_mbus_framefmt, s: &Scene) -> Image {
    let (w, h) = (fmt.width, fmt.height);
    let bits = bits_of(fmt.code);
    let max = (1u32 << bits) - 1;
    let mono = is_mono(fmt.code);
    // 8-bit scene value -> sample (gain, then the bit depth).
    let lut: Vec<u16> = (0..=255u32)
        .map(|v| (((v * s.gain16 / 16).min(255) * max) / 255) as u16)
        .collect();
    let (wu, hu) = (u64::from(w.max(1)), u64::from(h.max(1)));
    let bar_of_x: Vec<u8> = (0..u64::from(w))
        .map(|x| {
            let x = if s.test_pattern != 0 {
                x
            } else {
                (x + s.frame * 4) % wu
            };
            ((x * 8) / wu) as u8 % 8
        })
        .collect();
    let side = (wu.min(hu) / 6).max(2);
    let (bx, by) = (
        (s.frame * 7) % wu.saturating_sub(side).max(1),
        (s.frame * 5) % hu.saturating_sub(side).max(1),
    );
    let cfa_t: [usize; 4] = [
        cfa(fmt.code, 0, 0),
        cfa(fmt.code, 1, 0),
        cfa(fmt.code, 0, 1),
        cfa(fmt.code, 1, 1),
    ];
    let sample = |rgb: [u32; 3], c: usize| -> u16 {
        let v = if mono {
            (rgb[0] * 77 + rgb[1] * 150 + rgb[2] * 29) >> 8
        } else {
            rgb[c]
        };
        lut[v.min(255) as usize]
    };
    let white: [u16; 3] = [0, 1, 2].map(|c| sample([255, 255, 255], c));
    let mut data = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        // This row's sample of each bar and colour (the scene's vertical ramp).
        let ramp = if s.test_pattern != 0 {
            255
        } else {
            64 + (u64::from(y) * 192 / hu) as u32
        };
        let row: Vec<[u16; 3]> = BARS
            .iter()
            .map(|b| {
                let rgb = [b[0] * ramp / 255, b[1] * ramp / 255, b[2] * ramp / 255];
                [0, 1, 2].map(|c| sample(rgb, c))
            })
            .collect();
        let in_square_row = s.test_pattern == 0 && (by..by + side).contains(&u64::from(y));
        let phase = ((y & 1) * 2) as usize;
        for x in 0..w {
            let c = cfa_t[phase + (x & 1) as usize];
            let v = if in_square_row && (bx..bx + side).contains(&u64::from(x)) {
                white[c]
            } else {
                row[bar_of_x[x as usize] as usize][c]
            };
            data.push(v);
        }
    }
    Image::Raw {
        width: w,
        height: h,
        bits,
        code: fmt.code,
        data,
    }
}

/// The window `r` of a raw image, clipped to it.
fn crop_raw(img: &Image, r: &v4l2_rect) -> Image {
    let Image::Raw {
        width,
        height,
        bits,
        code,
        data,
    } = img
    else {
        return img.clone();
    };
    let left = (r.left.max(0) as u32).min(width.saturating_sub(1));
    let top = (r.top.max(0) as u32).min(height.saturating_sub(1));
    let w = r.width.min(width - left);
    let h = r.height.min(height - top);
    let mut out = Vec::with_capacity((w * h) as usize);
    for y in top..top + h {
        let row = (y * width) as usize;
        out.extend_from_slice(&data[row + left as usize..row + (left + w) as usize]);
    }
    // Cropping at an odd offset changes the colour filter phase; the pad codes already say so.
    Image::Raw {
        width: w,
        height: h,
        bits: *bits,
        code: *code,
        data: out,
    }
}

/// Resamples any image to `w`x`h` (nearest neighbour; raw images keep their filter phase).
fn scale(img: &Image, w: u32, h: u32) -> Image {
    let (iw, ih) = img.size();
    if (iw, ih) == (w, h) || iw == 0 || ih == 0 {
        return img.clone();
    }
    let map = |o: u32, out: u32, inp: u32| ((o as u64 * inp as u64) / out.max(1) as u64) as u32;
    match img {
        Image::Raw {
            bits, code, data, ..
        } => {
            let mut d = Vec::with_capacity((w * h) as usize);
            for y in 0..h {
                // Keep the source row/column parity so the colour filter stays consistent.
                let sy = (map(y, h, ih) & !1 | (y & 1)).min(ih - 1);
                for x in 0..w {
                    let sx = (map(x, w, iw) & !1 | (x & 1)).min(iw - 1);
                    d.push(data[(sy * iw + sx) as usize]);
                }
            }
            Image::Raw {
                width: w,
                height: h,
                bits: *bits,
                code: *code,
                data: d,
            }
        }
        Image::Yuv { y, u, v, .. } => {
            let n = (w * h) as usize;
            let (mut oy, mut ou, mut ov) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for yy in 0..h {
                let sy = map(yy, h, ih);
                for xx in 0..w {
                    let i = (sy * iw + map(xx, w, iw)) as usize;
                    oy.push(y[i]);
                    ou.push(u[i]);
                    ov.push(v[i]);
                }
            }
            Image::Yuv {
                width: w,
                height: h,
                y: oy,
                u: ou,
                v: ov,
            }
        }
    }
}

/// Changes a raw image's bit depth (the CCDC lane shifter / VP truncation) and code.
fn shift_raw(img: Image, code: u32) -> Image {
    let Image::Raw {
        width,
        height,
        bits,
        data,
        ..
    } = img
    else {
        return img;
    };
    let to = bits_of(code);
    let data = if to < bits {
        data.into_iter().map(|v| v >> (bits - to)).collect()
    } else {
        data.into_iter().map(|v| v << (to - bits)).collect()
    };
    Image::Raw {
        width,
        height,
        bits: to,
        code,
        data,
    }
}

/// The CCDC: the OF output is the crop window at the output code's depth; the VP output is the
/// top-left `fmt` window, truncated to 10 bits.
pub fn ccdc(input: &Image, out: &v4l2_mbus_framefmt, crop: Option<&v4l2_rect>) -> Image {
    let window = match crop {
        Some(r) => *r,
        None => v4l2_rect {
            left: 0,
            top: 0,
            width: out.width,
            height: out.height,
        },
    };
    let img = crop_raw(input, &window);
    let img = shift_raw(img, out.code);
    scale(&img, out.width, out.height)
}

/// The preview engine: bilinear demosaic of the crop window (each site's own colour, the mean
/// of its nearest neighbours of the others), brightness and contrast on luma, RGB to YUV
/// (BT.601 limited range).
pub fn preview(input: &Image, crop: &v4l2_rect, out: &v4l2_mbus_framefmt, bc: (i32, i32)) -> Image {
    let Image::Raw {
        width: iw,
        height: ih,
        bits,
        code,
        data,
    } = input
    else {
        return scale(input, out.width, out.height);
    };
    let (iw, ih) = (*iw as usize, *ih as usize);
    if iw == 0 || ih == 0 {
        return scale(input, out.width, out.height);
    }
    let w = (crop.width as usize).min(iw);
    let h = (crop.height as usize).min(ih);
    let (left, top) = (crop.left.max(0) as usize, crop.top.max(0) as usize);
    let shift = bits.saturating_sub(8);
    // The input with a one-sample border (edges repeated), so neighbours need no checks.
    let pw = iw + 2;
    let mut pad = vec![0u16; pw * (ih + 2)];
    for y in 0..ih + 2 {
        let sy = y.saturating_sub(1).min(ih - 1);
        let src = &data[sy * iw..sy * iw + iw];
        let row = &mut pad[y * pw..y * pw + pw];
        row[1..=iw].copy_from_slice(src);
        row[0] = src[0];
        row[iw + 1] = src[iw - 1];
    }
    let mono = is_mono(*code);
    let cfa_t = [
        cfa(*code, 0, 0),
        cfa(*code, 1, 0),
        cfa(*code, 0, 1),
        cfa(*code, 1, 1),
    ];
    let (brightness, contrast) = bc;
    let n = w * h;
    let (mut oy, mut ou, mut ov) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for y in 0..h {
        let sy = y + top;
        if sy >= ih {
            break;
        }
        let (up, mid, down) = ((sy) * pw, (sy + 1) * pw, (sy + 2) * pw);
        for x in 0..w {
            let sx = x + left;
            if sx >= iw {
                break;
            }
            let i = sx + 1;
            let at = |base: usize, dx: isize| i32::from(pad[(base + i).wrapping_add_signed(dx)]);
            let centre = at(mid, 0);
            let (r, g, b) = if mono {
                (centre, centre, centre)
            } else {
                let orth = (at(up, 0) + at(down, 0) + at(mid, -1) + at(mid, 1)) / 4;
                let diag = (at(up, -1) + at(up, 1) + at(down, -1) + at(down, 1)) / 4;
                let horiz = (at(mid, -1) + at(mid, 1)) / 2;
                let vert = (at(up, 0) + at(down, 0)) / 2;
                match cfa_t[(sy & 1) * 2 + (sx & 1)] {
                    0 => (centre, orth, diag),
                    2 => (diag, orth, centre),
                    // Green: red on its row (Gr) or in its column (Gb).
                    _ if cfa_t[(sy & 1) * 2 + ((sx + 1) & 1)] == 0 => (horiz, centre, vert),
                    _ => (vert, centre, horiz),
                }
            };
            let (r, g, b) = (r >> shift, g >> shift, b >> shift);
            let yy = (66 * r + 129 * g + 25 * b + 128) >> 8;
            // Contrast in 4.4 fixed point (16 = unity), brightness as an offset.
            let yy = (yy * contrast / 16 + brightness + 16).clamp(16, 235);
            let uu = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
            let vv = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
            oy.push(yy as u8);
            ou.push(uu.clamp(16, 240) as u8);
            ov.push(vv.clamp(16, 240) as u8);
        }
    }
    let (w, h) = if oy.len() == n { (w, h) } else { (0, 0) };
    let img = Image::Yuv {
        width: w as u32,
        height: h as u32,
        y: oy,
        u: ou,
        v: ov,
    };
    scale(&img, out.width, out.height)
}

/// The resizer: its input crop window scaled to the output size.
pub fn resizer(input: &Image, crop: &v4l2_rect, out: &v4l2_mbus_framefmt) -> Image {
    let img = match input {
        Image::Yuv {
            width,
            height,
            y,
            u,
            v,
        } => {
            let left = (crop.left.max(0) as u32).min(width.saturating_sub(1));
            let top = (crop.top.max(0) as u32).min(height.saturating_sub(1));
            let w = crop.width.min(width - left).max(1);
            let h = crop.height.min(height - top).max(1);
            let n = (w * h) as usize;
            let (mut oy, mut ou, mut ov) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for yy in top..top + h {
                let row = (yy * width) as usize;
                let (a, b) = (row + left as usize, row + (left + w) as usize);
                oy.extend_from_slice(&y[a..b]);
                ou.extend_from_slice(&u[a..b]);
                ov.extend_from_slice(&v[a..b]);
            }
            Image::Yuv {
                width: w,
                height: h,
                y: oy,
                u: ou,
                v: ov,
            }
        }
        raw => crop_raw(raw, crop),
    };
    scale(&img, out.width, out.height)
}

/// Writes an image in a video node's pixel format: raw samples as 8-bit or 16-bit little-endian
/// containers, YUV as 4:2:2 UYVY or YUYV (chroma of each pixel pair averaged), `bytesperline`
/// apart, padding zeroed. The result is `sizeimage` bytes.
pub fn to_memory(img: &Image, pix: &v4l2_pix_format) -> Vec<u8> {
    let mut out = vec![0u8; pix.sizeimage as usize];
    write_into(img, pix, &mut out);
    out
}

/// [`to_memory`] into a buffer in place (an MMAP buffer's memory): its first `sizeimage` bytes
/// (fewer if it is shorter), padding zeroed.
pub fn write_into(img: &Image, pix: &v4l2_pix_format, buf: &mut [u8]) {
    let size = pix.sizeimage as usize;
    if buf.len() < size {
        let whole = to_memory(img, pix);
        let n = buf.len();
        buf.copy_from_slice(&whole[..n]);
        return;
    }
    let out = &mut buf[..size];
    out.fill(0);
    let bpl = pix.bytesperline as usize;
    let (iw, ih) = img.size();
    let (w, h) = (pix.width.min(iw) as usize, pix.height.min(ih) as usize);
    let four = pix.pixelformat.to_le_bytes();
    match img {
        Image::Raw { data, .. } => {
            let bpp = if bpl >= w * 2
                && matches!(
                    &four,
                    b"BA10"
                        | b"BG10"
                        | b"GB10"
                        | b"RG10"
                        | b"BA12"
                        | b"BG12"
                        | b"GB12"
                        | b"RG12"
                        | b"Y10 "
                        | b"Y12 "
                ) {
                2
            } else {
                1
            };
            for y in 0..h {
                let row = &mut out[y * bpl..];
                for x in 0..w {
                    let v = data[y * iw as usize + x];
                    if bpp == 2 {
                        row[x * 2..x * 2 + 2].copy_from_slice(&v.to_le_bytes());
                    } else {
                        let bits = match img {
                            Image::Raw { bits, .. } => *bits,
                            _ => 8,
                        };
                        row[x] = (u32::from(v) >> bits.saturating_sub(8)) as u8;
                    }
                }
            }
        }
        Image::Yuv {
            y: ys,
            u: us,
            v: vs,
            ..
        } => {
            let uyvy = &four == b"UYVY";
            for y in 0..h {
                let row = &mut out[y * bpl..];
                let base = y * iw as usize;
                for x in (0..w.saturating_sub(1)).step_by(2) {
                    let i = base + x;
                    let u = ((u32::from(us[i]) + u32::from(us[i + 1])) / 2) as u8;
                    let v = ((u32::from(vs[i]) + u32::from(vs[i + 1])) / 2) as u8;
                    let px = if uyvy {
                        [u, ys[i], v, ys[i + 1]]
                    } else {
                        [ys[i], u, ys[i + 1], v]
                    };
                    row[x * 2..x * 2 + 4].copy_from_slice(&px);
                }
            }
        }
    }
}

/// Reads a buffer a client queued on a memory input node: raw samples (8-bit, or 16-bit
/// little-endian containers) or YUV 4:2:2, `bytesperline` apart. Missing bytes read as zero.
pub fn from_memory(bytes: &[u8], pix: &v4l2_pix_format) -> Image {
    let (w, h, bpl) = (
        pix.width as usize,
        pix.height as usize,
        pix.bytesperline as usize,
    );
    let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let info = crate::pads::FORMATS
        .iter()
        .find(|f| f.pixelformat == pix.pixelformat);
    let code = info.map(|i| i.code).unwrap_or(MEDIA_BUS_FMT_SGRBG10_1X10);
    if is_yuv(code) {
        let uyvy = &pix.pixelformat.to_le_bytes() == b"UYVY";
        let n = w * h;
        let (mut y, mut u, mut v) = (vec![0u8; n], vec![0u8; n], vec![0u8; n]);
        for row in 0..h {
            for x in 0..w {
                let pair = row * bpl + (x & !1) * 2;
                let (yy, uu, vv) = if uyvy {
                    (byte(pair + 1 + (x & 1) * 2), byte(pair), byte(pair + 2))
                } else {
                    (byte(pair + (x & 1) * 2), byte(pair + 1), byte(pair + 3))
                };
                let i = row * w + x;
                (y[i], u[i], v[i]) = (yy, uu, vv);
            }
        }
        return Image::Yuv {
            width: w as u32,
            height: h as u32,
            y,
            u,
            v,
        };
    }
    let wide = info.is_some_and(|i| i.bpp == 2);
    let bits = if wide {
        info.map(|i| i.width).unwrap_or(10)
    } else {
        8
    };
    let mut data = Vec::with_capacity(w * h);
    for row in 0..h {
        for x in 0..w {
            let v = if wide {
                let i = row * bpl + x * 2;
                u16::from_le_bytes([byte(i), byte(i + 1)])
            } else {
                u16::from(byte(row * bpl + x))
            };
            data.push(v & ((1u16 << bits) - 1));
        }
    }
    Image::Raw {
        width: w as u32,
        height: h as u32,
        bits,
        code,
        data,
    }
}

/// Whether a bus code carries YUV (the preview's and resizer's outputs).
pub fn yuv_code(code: u32) -> bool {
    is_yuv(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ioctl_abi::videodev2::fourcc;

    fn fmt(code: u32, w: u32, h: u32) -> v4l2_mbus_framefmt {
        let mut f = v4l2_mbus_framefmt::zeroed();
        f.code = code;
        f.width = w;
        f.height = h;
        f
    }

    fn rect(l: i32, t: i32, w: u32, h: u32) -> v4l2_rect {
        v4l2_rect {
            left: l,
            top: t,
            width: w,
            height: h,
        }
    }

    #[test]
    fn the_scene_moves_and_the_chain_produces_uyvy() {
        let s0 = Scene {
            frame: 0,
            test_pattern: 0,
            gain16: 16,
        };
        let s1 = Scene { frame: 1, ..s0 };
        let sf = fmt(MEDIA_BUS_FMT_SGRBG12_1X12, 64, 48);
        let a = sensor(&sf, &s0);
        assert_ne!(
            format!("{:?}", a),
            format!("{:?}", sensor(&sf, &s1)),
            "frames change"
        );
        let Image::Raw { bits, ref data, .. } = a else {
            panic!()
        };
        assert_eq!(bits, 12);
        assert!(data.iter().any(|&v| v > 1023), "12-bit samples");
        let vp = ccdc(&a, &fmt(MEDIA_BUS_FMT_SGRBG10_1X10, 64, 47), None);
        let Image::Raw { bits, ref data, .. } = vp else {
            panic!()
        };
        assert_eq!(bits, 10);
        assert!(data.iter().all(|&v| v <= 1023));
        let pv = preview(
            &vp,
            &rect(0, 0, 48, 38),
            &fmt(MEDIA_BUS_FMT_UYVY8_1X16, 48, 38),
            (0, 16),
        );
        assert_eq!(pv.size(), (48, 38));
        let rz = resizer(
            &pv,
            &rect(0, 0, 48, 38),
            &fmt(MEDIA_BUS_FMT_UYVY8_1X16, 96, 76),
        );
        let mut pix = v4l2_pix_format::zeroed();
        pix.width = 96;
        pix.height = 76;
        pix.pixelformat = fourcc(b'U', b'Y', b'V', b'Y');
        pix.bytesperline = 224;
        pix.sizeimage = 224 * 76;
        let mem = to_memory(&rz, &pix);
        assert_eq!(mem.len(), 224 * 76);
        assert!(mem[192..224].iter().all(|&b| b == 0), "padding");
        // Luma is in range, and the white square shows up as bright luma.
        let lumas: Vec<u8> = (0..76)
            .flat_map(|y| (0..48).map(move |x| (y, x)))
            .map(|(y, x)| mem[y * 224 + x * 4 + 1])
            .collect();
        assert!(lumas.iter().all(|&l| (16..=235).contains(&l)));
        assert!(lumas.iter().any(|&l| l > 200));
    }

    #[test]
    fn raw_memory_layouts() {
        let s = Scene {
            frame: 3,
            test_pattern: 1,
            gain16: 16,
        };
        let img = sensor(&fmt(MEDIA_BUS_FMT_SGRBG10_1X10, 16, 4), &s);
        let mut pix = v4l2_pix_format::zeroed();
        pix.width = 16;
        pix.height = 4;
        pix.pixelformat = fourcc(b'B', b'A', b'1', b'0');
        pix.bytesperline = 32;
        pix.sizeimage = 128;
        let m = to_memory(&img, &pix);
        let first = u16::from_le_bytes([m[0], m[1]]);
        // Test pattern bar 0 is 235/255 of full scale on every filter colour.
        assert_eq!(first, (235 * 1023 / 255) as u16);
    }

    #[test]
    fn sensor_equals_sampling_the_scene() {
        for (code, frame, tp, gain) in [
            (MEDIA_BUS_FMT_SGRBG12_1X12, 0, 0, 16),
            (MEDIA_BUS_FMT_SBGGR10_1X10, 37, 0, 24),
            (MEDIA_BUS_FMT_Y10_1X10, 5, 0, 16),
            (MEDIA_BUS_FMT_SRGGB8_1X8, 3, 2, 16),
        ] {
            let f = fmt(code, 100, 60);
            let s = Scene {
                frame,
                test_pattern: tp,
                gain16: gain,
            };
            let Image::Raw { data, bits, .. } = sensor(&f, &s) else {
                panic!()
            };
            let max = (1u32 << bits) - 1;
            for y in 0..60 {
                for x in 0..100 {
                    let rgb = scene_rgb(&s, x, y, 100, 60);
                    let v = if is_mono(code) {
                        (rgb[0] * 77 + rgb[1] * 150 + rgb[2] * 29) >> 8
                    } else {
                        rgb[cfa(code, x, y)]
                    };
                    let want = ((v * s.gain16 / 16).min(255) * max / 255) as u16;
                    assert_eq!(data[(y * 100 + x) as usize], want, "{code:#x} ({x},{y})");
                }
            }
        }
    }
}
