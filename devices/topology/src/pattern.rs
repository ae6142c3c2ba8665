//! The test pattern a topology's sensor produces, written straight into a buffer in the
//! capture node's pixel format: vertical colour bars scrolling one step per frame (or a
//! gradient, or black), with a white line moving down, so consecutive frames differ.

use crate::formats::Layout;

/// 75% colour bars: white, yellow, cyan, green, magenta, red, blue, black.
const BARS: [[u8; 3]; 8] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
    [0, 0, 0],
];

/// BT.601 limited range.
fn yuv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    [y as u8, u as u8, v as u8]
}

fn colour(pattern: i64, x: u32, width: u32, frame: u64) -> [u8; 3] {
    let shifted = (u64::from(x) + frame * 4) % u64::from(width.max(1));
    match pattern {
        1 => {
            let v = (shifted * 255 / u64::from(width.max(1))) as u8;
            [v, v, v]
        }
        2 => [0, 0, 0],
        _ => BARS[(shifted * 8 / u64::from(width.max(1))) as usize % 8],
    }
}

/// One row (two for Bayer: even and odd) of the frame.
fn rows(layout: Layout, width: u32, pattern: i64, frame: u64, white: bool) -> [Vec<u8>; 2] {
    let px = |x: u32| {
        if white {
            [235, 235, 235]
        } else {
            colour(pattern, x, width, frame)
        }
    };
    let mut even = Vec::new();
    let mut odd = Vec::new();
    match layout {
        Layout::Yuyv | Layout::Uyvy => {
            for x in (0..width).step_by(2) {
                let [y0, u, v] = yuv(px(x));
                let [y1, _, _] = yuv(px(x + 1));
                if layout == Layout::Yuyv {
                    even.extend_from_slice(&[y0, u, y1, v]);
                } else {
                    even.extend_from_slice(&[u, y0, v, y1]);
                }
            }
            even.truncate(width as usize * 2);
        }
        Layout::Rgb => (0..width).for_each(|x| even.extend_from_slice(&px(x))),
        Layout::Bgr => (0..width).for_each(|x| {
            let [r, g, b] = px(x);
            even.extend_from_slice(&[b, g, r]);
        }),
        Layout::Grey => (0..width).for_each(|x| even.push(yuv(px(x))[0])),
        Layout::Bayer(order) => {
            for x in 0..width {
                let c = px(x);
                even.push(c[order[(x % 2) as usize] as usize]);
                odd.push(c[order[2 + (x % 2) as usize] as usize]);
            }
        }
    }
    if odd.is_empty() {
        odd = even.clone();
    }
    [even, odd]
}

/// Writes frame `frame` (`width`x`height`, `bytesperline` apart) into `out`, as far as it
/// reaches.
pub fn render(
    layout: Layout,
    width: u32,
    height: u32,
    bytesperline: u32,
    pattern: i64,
    frame: u64,
    out: &mut [u8],
) {
    let plain = rows(layout, width, pattern, frame, false);
    let line = rows(layout, width, pattern, frame, true);
    let marker = (frame * 2 % u64::from(height.max(1))) as u32;
    for y in 0..height {
        let start = (y as usize).saturating_mul(bytesperline as usize);
        if start >= out.len() {
            break;
        }
        let src = if y / 2 == marker / 2 { &line } else { &plain };
        let row = &src[(y % 2) as usize];
        let n = row.len().min(out.len() - start);
        out[start..start + n].copy_from_slice(&row[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_differ_and_fill_the_buffer() {
        let (w, h) = (64, 32);
        let mut a = vec![0u8; (w * h * 2) as usize];
        let mut b = a.clone();
        render(Layout::Yuyv, w, h, w * 2, 0, 0, &mut a);
        render(Layout::Yuyv, w, h, w * 2, 0, 1, &mut b);
        assert_ne!(a, b);
        // White bar first: Y of 75% white is 180.
        assert_eq!(a[2 * 2 * w as usize], 180);
        let mut black = vec![7u8; (w * h * 3) as usize];
        render(Layout::Rgb, w, h, w * 3, 2, 5, &mut black);
        assert!(black[..(w * 3) as usize].iter().all(|&v| v == 0));
        // A short buffer is filled as far as it goes, without a panic.
        let mut short = vec![0u8; 100];
        render(Layout::Bayer([0, 1, 1, 2]), w, h, w, 0, 3, &mut short);
    }
}
