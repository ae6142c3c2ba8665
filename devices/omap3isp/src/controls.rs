//! The controls of the ISP's sub-devices as their drivers declare them: the preview engine's
//! brightness and contrast (isppreview.c) and the sensors' (mt9p031.c, et8ek8_driver.c).

use std::sync::Arc;

use ioctl_abi::videodev2::*;
use media_graph::controls::Controls;
use media_graph::controls::{CtrlDef, CtrlSet, SetHook};

/// `preview_init_entities`: brightness 0..255 (default 0) and contrast 0..255 (default 16,
/// `ISPPRV_CONTRAST_DEF * ISPPRV_CONTRAST_UNITS`).
pub fn preview() -> Arc<Controls> {
    Controls::new(
        vec![
            CtrlDef::new(
                V4L2_CID_BRIGHTNESS,
                "Brightness",
                V4L2_CTRL_TYPE_INTEGER,
                0,
                255,
                1,
                0,
            )
            .flags(V4L2_CTRL_FLAG_SLIDER),
            CtrlDef::new(
                V4L2_CID_CONTRAST,
                "Contrast",
                V4L2_CTRL_TYPE_INTEGER,
                0,
                255,
                1,
                16,
            )
            .flags(V4L2_CTRL_FLAG_SLIDER),
        ],
        None,
    )
}

/// `V4L2_CID_PIXEL_RATE`: 64-bit and read-only (`v4l2_ctrl_fill`).
fn pixel_rate(min: i64, max: i64, def: i64) -> CtrlDef {
    CtrlDef::new(
        V4L2_CID_PIXEL_RATE,
        "Pixel Rate",
        V4L2_CTRL_TYPE_INTEGER64,
        min,
        max,
        1,
        def,
    )
    .flags(V4L2_CTRL_FLAG_READ_ONLY)
}

/// `V4L2_CID_TEST_PATTERN` with the driver's menu, default item 0.
fn test_pattern(items: &[&'static str]) -> CtrlDef {
    CtrlDef::menu(V4L2_CID_TEST_PATTERN, "Test Pattern", items, 0)
}

pub const MT9P031_BLC_AUTO: u32 = V4L2_CID_USER_BASE | 0x1002;
pub const MT9P031_BLC_TARGET_LEVEL: u32 = V4L2_CID_USER_BASE | 0x1003;
pub const MT9P031_BLC_ANALOG_OFFSET: u32 = V4L2_CID_USER_BASE | 0x1004;
pub const MT9P031_BLC_DIGITAL_OFFSET: u32 = V4L2_CID_USER_BASE | 0x1005;

/// The pixel clock the board gives the MT9P031 (`pixel-clock-frequency`; the BeagleBoard-xM
/// camera board files used 48 MHz), which is its fixed `V4L2_CID_PIXEL_RATE`.
pub const MT9P031_PIXEL_RATE: i64 = 48_000_000;

const MT9P031_TEST_PATTERNS: [&str; 10] = [
    "Disabled",
    "Color Field",
    "Horizontal Gradient",
    "Vertical Gradient",
    "Diagonal Gradient",
    "Classic Test Pattern",
    "Walking 1s",
    "Monochrome Horizontal Bars",
    "Monochrome Vertical Bars",
    "Vertical Color Bars",
];

/// `mt9p031_probe`'s controls. Its `s_ctrl` rounds gains above x2 to what the gain stages can
/// do, and a test pattern deactivates the black-level calibration controls.
pub fn mt9p031() -> Arc<Controls> {
    let hook: Arc<SetHook> = Arc::new(|set: &mut CtrlSet, id, v: &mut i64| {
        match id {
            V4L2_CID_GAIN if *v > 64 => *v &= !7,
            V4L2_CID_GAIN if *v > 32 => *v &= !1,
            V4L2_CID_TEST_PATTERN => {
                set.activate(MT9P031_BLC_AUTO, *v == 0);
                set.activate(MT9P031_BLC_DIGITAL_OFFSET, *v == 0);
            }
            _ => {}
        }
        Ok(())
    });
    Controls::new(
        vec![
            CtrlDef::new(
                V4L2_CID_EXPOSURE,
                "Exposure",
                V4L2_CTRL_TYPE_INTEGER,
                1,
                1_048_575,
                1,
                1943,
            ),
            CtrlDef::new(V4L2_CID_GAIN, "Gain", V4L2_CTRL_TYPE_INTEGER, 8, 1024, 1, 8),
            CtrlDef::new(
                V4L2_CID_HFLIP,
                "Horizontal Flip",
                V4L2_CTRL_TYPE_BOOLEAN,
                0,
                1,
                1,
                0,
            ),
            CtrlDef::new(
                V4L2_CID_VFLIP,
                "Vertical Flip",
                V4L2_CTRL_TYPE_BOOLEAN,
                0,
                1,
                1,
                0,
            ),
            pixel_rate(MT9P031_PIXEL_RATE, MT9P031_PIXEL_RATE, MT9P031_PIXEL_RATE),
            test_pattern(&MT9P031_TEST_PATTERNS),
            CtrlDef::new(
                MT9P031_BLC_AUTO,
                "BLC, Auto",
                V4L2_CTRL_TYPE_BOOLEAN,
                0,
                1,
                1,
                1,
            ),
            CtrlDef::new(
                MT9P031_BLC_TARGET_LEVEL,
                "BLC Target Level",
                V4L2_CTRL_TYPE_INTEGER,
                0,
                4095,
                1,
                168,
            ),
            CtrlDef::new(
                MT9P031_BLC_ANALOG_OFFSET,
                "BLC Analog Offset",
                V4L2_CTRL_TYPE_INTEGER,
                -255,
                255,
                1,
                32,
            ),
            CtrlDef::new(
                MT9P031_BLC_DIGITAL_OFFSET,
                "BLC Digital Offset",
                V4L2_CTRL_TYPE_INTEGER,
                -2048,
                2047,
                1,
                40,
            ),
        ],
        Some(hook),
    )
}

const ET8EK8_TEST_PATTERNS: [&str; 9] = [
    "Normal",
    "Vertical colorbar",
    "Horizontal colorbar",
    "Scale",
    "Ramp",
    "Small vertical colorbar",
    "Small horizontal colorbar",
    "Small scale",
    "Small ramp",
];

/// `et8ek8_init_controls`: gain in 0.1 EV steps over the 41-entry gain table, exposure in
/// lines up to the current mode's maximum, and a pixel rate of 1 until a format or frame
/// interval is set (the driver computes it only then).
pub fn et8ek8(max_exp: u32) -> Arc<Controls> {
    Controls::new(
        vec![
            CtrlDef::new(V4L2_CID_GAIN, "Gain", V4L2_CTRL_TYPE_INTEGER, 0, 40, 1, 0),
            CtrlDef::new(
                V4L2_CID_EXPOSURE,
                "Exposure",
                V4L2_CTRL_TYPE_INTEGER,
                1,
                max_exp as i64,
                1,
                max_exp as i64,
            ),
            pixel_rate(1, i32::MAX as i64, 1),
            test_pattern(&ET8EK8_TEST_PATTERNS),
        ],
        None,
    )
}
