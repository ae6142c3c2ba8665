//! Converts one raw UYVY or YUYV frame (as `v4l2-ctl --stream-to` writes it) to a PNG:
//!
//!   frame2png INPUT WIDTH HEIGHT UYVY|YUYV OUTPUT.png [BYTESPERLINE]
//!
//! BT.601 limited-range YUV to 8-bit RGB. Used by the demo to show a captured frame.

use std::io::BufWriter;

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

fn rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    [
        clamp((c + 409 * e + 128) >> 8),
        clamp((c - 100 * d - 208 * e + 128) >> 8),
        clamp((c + 516 * d + 128) >> 8),
    ]
}

fn run(args: &[String]) -> Result<(), String> {
    let [input, w, h, fourcc, output, rest @ ..] = args else {
        return Err(
            "usage: frame2png INPUT WIDTH HEIGHT UYVY|YUYV OUTPUT.png [BYTESPERLINE]".into(),
        );
    };
    let num = |s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("not a number: {s:?}"))
    };
    let (w, h) = (num(w)?, num(h)?);
    let bpl = match rest.first() {
        Some(b) => num(b)?,
        None => w * 2,
    };
    let uyvy = match fourcc.as_str() {
        "UYVY" => true,
        "YUYV" => false,
        f => return Err(format!("unsupported format {f:?} (UYVY or YUYV)")),
    };
    if w == 0 || h == 0 || w % 2 != 0 || bpl < w * 2 {
        return Err(format!("bad geometry {w}x{h}, bytesperline {bpl}"));
    }
    let raw = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
    if raw.len() < bpl * (h - 1) + w * 2 {
        return Err(format!(
            "{input}: {} bytes, too short for one {w}x{h} frame",
            raw.len()
        ));
    }
    let mut pixels = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        let line = &raw[row * bpl..row * bpl + w * 2];
        for pair in line.chunks_exact(4) {
            let (y0, u, y1, v) = if uyvy {
                (pair[1], pair[0], pair[3], pair[2])
            } else {
                (pair[0], pair[1], pair[2], pair[3])
            };
            pixels.extend_from_slice(&rgb(y0, u, v));
            pixels.extend_from_slice(&rgb(y1, u, v));
        }
    }
    let file = std::fs::File::create(output).map_err(|e| format!("{output}: {e}"))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("frame2png: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_extremes() {
        assert_eq!(rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(rgb(235, 128, 128), [255, 255, 255]);
        let red = rgb(81, 90, 240);
        assert!(red[0] > 240 && red[1] < 10 && red[2] < 10, "{red:?}");
    }
}
