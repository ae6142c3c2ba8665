//! The simulated TI OMAP3 ISP: board profiles, what the media device reports about itself
//! (`MEDIA_IOC_DEVICE_INFO`, omap3isp.md §5), the media graph ([`topology`]) and the blocks'
//! link rules ([`links`]).

pub mod cfg;
pub mod controls;
pub mod et8ek8;
pub mod frames;
pub mod links;
pub mod nodes;
pub mod pads;
pub mod pipeline;
pub mod stat;
pub mod topology;
pub mod video;

use media_graph::{kernel_version_code, MediaDeviceInfo};

/// The driver name (`dev->driver->name`; the driver leaves `media_dev.driver_name` unset).
pub const DRIVER: &str = "omap3isp";
/// `media_dev.model`.
pub const MODEL: &str = "TI OMAP3 ISP";
/// `bus_info` the core fills in from the platform device since v5.18 (`isp@480bc000`).
pub const BUS_INFO: &str = "platform:480bc000.isp";

/// A board: which ISP revision and which sensor on which bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// OMAP36xx (DM3730): ISP revision 0xF0, MT9P031 on the parallel bus.
    BeagleboardXm,
    /// OMAP34xx: ISP revision 0x20, ET8EK8 on CCP2.
    N900,
}

impl Board {
    pub const ALL: [Board; 2] = [Board::BeagleboardXm, Board::N900];

    pub fn name(self) -> &'static str {
        match self {
            Board::BeagleboardXm => "beagleboard-xm",
            Board::N900 => "n900",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    pub fn hw_revision(self) -> u32 {
        match self {
            Board::BeagleboardXm => 0xf0,
            Board::N900 => 0x20,
        }
    }

    /// The preview engine's widest input (`preview_max_in_width`): 3300 on ISP revision 2.0,
    /// 4096 on 15.0.
    pub fn preview_max_in_width(self) -> u32 {
        match self {
            Board::BeagleboardXm => 4096,
            Board::N900 => 3300,
        }
    }

    /// The L3 interconnect clock (`ISP_CLK_L3_ICK`) the pixel rate limit derives from: 166 MHz
    /// on OMAP34xx, 200 MHz on DM37xx (TRM operating points; not read from a running board).
    pub fn l3_ick(self) -> i64 {
        match self {
            Board::BeagleboardXm => 200_000_000,
            Board::N900 => 166_000_000,
        }
    }

    /// The resizer's widest output in 4-tap and 7-tap mode (TRM use constraints).
    pub fn resizer_max_out_width(self) -> (u32, u32) {
        match self {
            Board::BeagleboardXm => (4096, 2048),
            Board::N900 => (3312, 1650),
        }
    }

    /// The sensor subdev's entity name.
    pub fn sensor(self) -> &'static str {
        match self {
            Board::BeagleboardXm => "mt9p031 1-0048",
            Board::N900 => "et8ek8 3-003e",
        }
    }

    /// What `MEDIA_IOC_DEVICE_INFO` reports when running as part of kernel `kernel_version`.
    pub fn media_device_info(self, kernel_version: u32) -> MediaDeviceInfo {
        // bus_info was empty before the core started filling it in (v5.18).
        let bus_info = if kernel_version >= kernel_version_code(5, 18, 0) {
            BUS_INFO
        } else {
            ""
        };
        MediaDeviceInfo {
            driver: DRIVER.into(),
            model: MODEL.into(),
            serial: String::new(),
            bus_info: bus_info.into(),
            hw_revision: self.hw_revision(),
            media_version: kernel_version,
            driver_version: kernel_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_report_their_isp_revision() {
        let v = kernel_version_code(6, 1, 0);
        assert_eq!(Board::BeagleboardXm.media_device_info(v).hw_revision, 0xf0);
        assert_eq!(Board::N900.media_device_info(v).hw_revision, 0x20);
        assert_eq!(Board::from_name("n900"), Some(Board::N900));
        assert_eq!(Board::from_name("pandaboard"), None);
    }

    #[test]
    fn bus_info_follows_the_kernel_version() {
        let old = Board::N900.media_device_info(kernel_version_code(4, 11, 0));
        assert_eq!(old.bus_info, "");
        let new = Board::N900.media_device_info(kernel_version_code(6, 17, 0));
        assert_eq!(new.bus_info, BUS_INFO);
        assert_eq!(new.driver, "omap3isp");
        assert_eq!(new.model, "TI OMAP3 ISP");
    }
}
