//! The ISP blocks' `link_setup` rules (omap3isp.md §2.8): which inputs and outputs each block
//! has enabled, and which link changes it refuses with EBUSY or EINVAL.
//!
//! Each block sees its local pad index and whether the remote end is a sub-device or a video
//! node, as the driver does (it tags the pad index with `2 << 16` for a sub-device remote).

use nix::errno::Errno;
use parking_lot::Mutex;

use ioctl_abi::media::MEDIA_LNK_FL_ENABLED;
use media_graph::{EntityKind, EntityOps, PadRef, Remote};

fn enabled(flags: u32) -> bool {
    flags & MEDIA_LNK_FL_ENABLED != 0
}

fn from_subdev(remote: Remote) -> bool {
    remote.kind == EntityKind::Subdev
}

/// Sets or clears `bit` in `set`, refusing to enable it while any other bit is set (the ISP
/// blocks drive one output at a time).
fn exclusive(set: &mut u32, bit: u32, enable: bool) -> Result<(), Errno> {
    if enable {
        if *set & !bit != 0 {
            return Err(Errno::EBUSY);
        }
        *set |= bit;
    } else {
        *set &= !bit;
    }
    Ok(())
}

/// A sink fed either from memory (a video node) or on the fly (a sub-device), never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Input {
    #[default]
    None,
    Memory,
    /// CCP2: the sensor; preview: the CCDC; resizer: the video port (CCDC or preview).
    OnTheFly,
}

fn switch_input(input: &mut Input, wanted: Input, enable: bool) -> Result<(), Errno> {
    if enable {
        if *input != Input::None && *input != wanted {
            return Err(Errno::EBUSY);
        }
        *input = wanted;
    } else if *input == wanted {
        *input = Input::None;
    }
    Ok(())
}

pub const CCP2_OUTPUT_CCDC: u32 = 1;

#[derive(Debug, Default)]
pub struct Ccp2 {
    pub state: Mutex<(Input, u32)>,
}

impl EntityOps for Ccp2 {
    fn link_setup(&self, local: PadRef, remote: Remote, flags: u32) -> Result<(), Errno> {
        let mut st = self.state.lock();
        match (local.index, from_subdev(remote)) {
            (0, false) => switch_input(&mut st.0, Input::Memory, enabled(flags)),
            (0, true) => switch_input(&mut st.0, Input::OnTheFly, enabled(flags)),
            (1, true) => {
                st.1 = if enabled(flags) { CCP2_OUTPUT_CCDC } else { 0 };
                Ok(())
            }
            _ => Err(Errno::EINVAL),
        }
    }
}

pub const CSI2_OUTPUT_MEMORY: u32 = 1;
pub const CSI2_OUTPUT_CCDC: u32 = 2;

#[derive(Debug, Default)]
pub struct Csi2 {
    pub output: Mutex<u32>,
}

impl EntityOps for Csi2 {
    fn link_setup(&self, local: PadRef, remote: Remote, flags: u32) -> Result<(), Errno> {
        let mut out = self.output.lock();
        match (local.index, from_subdev(remote)) {
            (1, false) => exclusive(&mut out, CSI2_OUTPUT_MEMORY, enabled(flags)),
            (1, true) => exclusive(&mut out, CSI2_OUTPUT_CCDC, enabled(flags)),
            // The sensor link to the CSI2 receiver is fixed.
            _ => Err(Errno::EINVAL),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CcdcInput {
    #[default]
    None,
    Parallel,
    Ccp2b,
    Csi2a,
}

pub const CCDC_OUTPUT_MEMORY: u32 = 1;
pub const CCDC_OUTPUT_PREVIEW: u32 = 2;
pub const CCDC_OUTPUT_RESIZER: u32 = 4;

#[derive(Debug, Default)]
pub struct Ccdc {
    pub ccp2: u32,
    pub csi2a: u32,
    pub state: Mutex<(CcdcInput, u32)>,
}

impl EntityOps for Ccdc {
    fn link_setup(&self, local: PadRef, remote: Remote, flags: u32) -> Result<(), Errno> {
        let mut st = self.state.lock();
        let on = enabled(flags);
        match (local.index, from_subdev(remote)) {
            (0, true) => {
                if !on {
                    st.0 = CcdcInput::None;
                    return Ok(());
                }
                if st.0 != CcdcInput::None {
                    return Err(Errno::EBUSY);
                }
                st.0 = if remote.pad.entity == self.ccp2 {
                    CcdcInput::Ccp2b
                } else if remote.pad.entity == self.csi2a {
                    CcdcInput::Csi2a
                } else {
                    CcdcInput::Parallel
                };
                Ok(())
            }
            (2, true) => exclusive(&mut st.1, CCDC_OUTPUT_PREVIEW, on),
            (1, false) => exclusive(&mut st.1, CCDC_OUTPUT_MEMORY, on),
            (1, true) => exclusive(&mut st.1, CCDC_OUTPUT_RESIZER, on),
            _ => Err(Errno::EINVAL),
        }
    }
}

pub const PREVIEW_OUTPUT_MEMORY: u32 = 1;
pub const PREVIEW_OUTPUT_RESIZER: u32 = 2;

#[derive(Debug, Default)]
pub struct Preview {
    pub state: Mutex<(Input, u32)>,
}

impl EntityOps for Preview {
    fn link_setup(&self, local: PadRef, remote: Remote, flags: u32) -> Result<(), Errno> {
        let mut st = self.state.lock();
        let on = enabled(flags);
        match (local.index, from_subdev(remote)) {
            (0, false) => switch_input(&mut st.0, Input::Memory, on),
            (0, true) => switch_input(&mut st.0, Input::OnTheFly, on),
            (1, false) => exclusive(&mut st.1, PREVIEW_OUTPUT_MEMORY, on),
            (1, true) => exclusive(&mut st.1, PREVIEW_OUTPUT_RESIZER, on),
            _ => Err(Errno::EINVAL),
        }
    }
}

#[derive(Debug, Default)]
pub struct Resizer {
    pub input: Mutex<Input>,
}

impl EntityOps for Resizer {
    fn link_setup(&self, local: PadRef, remote: Remote, flags: u32) -> Result<(), Errno> {
        let mut input = self.input.lock();
        match (local.index, from_subdev(remote)) {
            (0, false) => switch_input(&mut input, Input::Memory, enabled(flags)),
            // Both the CCDC and the preview engine feed the same video-port input; the driver
            // does not stop both links from being enabled at once (omap3isp.md §2.8, [UNSURE]).
            (0, true) => switch_input(&mut input, Input::OnTheFly, enabled(flags)),
            // The resizer always writes to memory.
            (1, false) => Ok(()),
            _ => Err(Errno::EINVAL),
        }
    }
}
