//! The media device model behind `/dev/mediaN`.
//!
//! At this stage a [`MediaDevice`] carries the device information and answers the Media
//! Controller ioctls through [`MediaIoctls`], one method per ioctl, defaulting to ENOTTY.
//! Entities, pads, links, interfaces and the lifetime rules come with the graph.

use ioctl_abi::media::media_device_info;
use ioctl_abi::set_cstr;
use nix::errno::Errno;

/// What `MEDIA_IOC_DEVICE_INFO` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDeviceInfo {
    pub driver: String,
    pub model: String,
    pub serial: String,
    pub bus_info: String,
    pub hw_revision: u32,
    /// `LINUX_VERSION_CODE` of the kernel the driver claims to be part of.
    pub media_version: u32,
    pub driver_version: u32,
}

impl MediaDeviceInfo {
    /// The uapi struct, as `media_device_get_info()` fills it (zeroed, then the fields).
    pub fn to_uapi(&self) -> media_device_info {
        let mut info = media_device_info::zeroed();
        set_cstr(&mut info.driver, &self.driver);
        set_cstr(&mut info.model, &self.model);
        set_cstr(&mut info.serial, &self.serial);
        set_cstr(&mut info.bus_info, &self.bus_info);
        info.hw_revision = self.hw_revision;
        info.media_version = self.media_version;
        info.driver_version = self.driver_version;
        info
    }
}

/// `KERNEL_VERSION(a, b, c)`, with each part clamped as the kernel's macro does for sublevels.
pub fn kernel_version_code(major: u32, minor: u32, sub: u32) -> u32 {
    (major << 16) | ((minor & 0xff) << 8) | sub.min(255)
}

/// Parses a `uname -r` release ("6.1.0-56-amd64", "6.18.44-fc") into a version code.
pub fn parse_kernel_release(release: &str) -> Option<u32> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().ok());
    let a = parts.next()??;
    let b = parts.next()??;
    let c = if release.split('.').count() > 2 {
        parts.next().flatten().unwrap_or(0)
    } else {
        0
    };
    Some(kernel_version_code(a, b, c))
}

/// The running kernel's version code, from uname(2).
pub fn running_kernel_version() -> u32 {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| u.release().to_str().and_then(parse_kernel_release))
        .unwrap_or_else(|| kernel_version_code(6, 1, 0))
}

/// The Media Controller ioctls of a media device node, one method per ioctl. Each unimplemented
/// one answers ENOTTY, as the kernel does for an unknown command.
pub trait MediaIoctls: Send + Sync {
    fn device_info(&self) -> Result<media_device_info, Errno> {
        Err(Errno::ENOTTY)
    }
}

/// A media device.
#[derive(Debug)]
pub struct MediaDevice {
    info: MediaDeviceInfo,
}

impl MediaDevice {
    pub fn new(info: MediaDeviceInfo) -> Self {
        Self { info }
    }
    pub fn info(&self) -> &MediaDeviceInfo {
        &self.info
    }
}

impl MediaIoctls for MediaDevice {
    fn device_info(&self) -> Result<media_device_info, Errno> {
        Ok(self.info.to_uapi())
    }
}

#[cfg(test)]
mod tests {
    use ioctl_abi::cstr;

    use super::*;

    #[test]
    fn version_codes() {
        assert_eq!(parse_kernel_release("6.1.0-56-amd64"), Some(0x060100));
        assert_eq!(parse_kernel_release("6.18.44-fc-v669"), Some(0x06122c));
        assert_eq!(parse_kernel_release("5.4.300"), Some(0x0504ff));
        assert_eq!(parse_kernel_release("7.0"), Some(0x070000));
        assert_eq!(parse_kernel_release("garbage"), None);
    }

    #[test]
    fn device_info_fills_every_field_and_terminates_strings() {
        let dev = MediaDevice::new(MediaDeviceInfo {
            driver: "omap3isp".into(),
            model: "TI OMAP3 ISP".into(),
            serial: String::new(),
            bus_info: "platform:480bc000.isp".into(),
            hw_revision: 0xf0,
            media_version: 0x060100,
            driver_version: 0x060100,
        });
        let i = dev.device_info().unwrap();
        assert_eq!(cstr(&i.driver), "omap3isp");
        assert_eq!(cstr(&i.model), "TI OMAP3 ISP");
        assert_eq!(cstr(&i.serial), "");
        assert_eq!(i.hw_revision, 0xf0);
        assert_eq!(i.media_version, 0x060100);
        assert_eq!(i.reserved, [0; 31]);
    }

    #[test]
    fn overlong_strings_are_truncated_with_a_nul() {
        let mut info = media_device_info::zeroed();
        set_cstr(&mut info.driver, "a-driver-name-longer-than-16");
        assert_eq!(info.driver[15], 0);
        assert_eq!(cstr(&info.driver).len(), 15);
    }
}
