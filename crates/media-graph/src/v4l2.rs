//! Handler traits of the V4L2 device nodes, one method per ioctl, each defaulting to ENOTTY.
//! The ioctl dispatcher decodes arguments and calls these; device models implement them.

use ioctl_abi::subdev::{
    v4l2_subdev_capability, v4l2_subdev_format, v4l2_subdev_frame_interval,
    v4l2_subdev_frame_interval_enum, v4l2_subdev_frame_size_enum, v4l2_subdev_mbus_code_enum,
    v4l2_subdev_selection,
};
use std::sync::Arc;

use ioctl_abi::videodev2::{
    v4l2_buffer, v4l2_capability, v4l2_create_buffers, v4l2_event_subscription, v4l2_fmtdesc,
    v4l2_format, v4l2_input, v4l2_output, v4l2_requestbuffers, v4l2_streamparm,
};
use nix::errno::Errno;

use crate::vb2::{DqResult, UserMemory};

/// Called with a file handle whose buffer queue changed (a buffer is done, the queue was
/// cancelled): the node wakes pollers and parked DQBUFs of that handle.
pub type QueueNotify = Arc<dyn Fn(u64) + Send + Sync>;

/// `/dev/videoN`. Per-handle state is keyed by the file handle number `fh`.
pub trait VideoIoctls: Send + Sync {
    fn querycap(&self) -> Result<v4l2_capability, Errno> {
        Err(Errno::ENOTTY)
    }
    fn open(&self, _fh: u64) {}
    fn release(&self, _fh: u64) {}
    fn enum_fmt(&self, _fh: u64, _f: v4l2_fmtdesc) -> Result<v4l2_fmtdesc, Errno> {
        Err(Errno::ENOTTY)
    }
    fn g_fmt(&self, _fh: u64, _f: v4l2_format) -> Result<v4l2_format, Errno> {
        Err(Errno::ENOTTY)
    }
    fn s_fmt(&self, _fh: u64, _f: v4l2_format) -> Result<v4l2_format, Errno> {
        Err(Errno::ENOTTY)
    }
    fn try_fmt(&self, _fh: u64, _f: v4l2_format) -> Result<v4l2_format, Errno> {
        Err(Errno::ENOTTY)
    }
    fn g_priority(&self, _fh: u64) -> Result<u32, Errno> {
        Err(Errno::ENOTTY)
    }
    fn s_priority(&self, _fh: u64, _prio: u32) -> Result<(), Errno> {
        Err(Errno::ENOTTY)
    }
    fn enum_input(&self, _fh: u64, _i: v4l2_input) -> Result<v4l2_input, Errno> {
        Err(Errno::ENOTTY)
    }
    fn g_input(&self, _fh: u64) -> Result<u32, Errno> {
        Err(Errno::ENOTTY)
    }
    fn s_input(&self, _fh: u64, _index: u32) -> Result<u32, Errno> {
        Err(Errno::ENOTTY)
    }
    fn enum_output(&self, _fh: u64, _o: v4l2_output) -> Result<v4l2_output, Errno> {
        Err(Errno::ENOTTY)
    }
    fn g_output(&self, _fh: u64) -> Result<u32, Errno> {
        Err(Errno::ENOTTY)
    }
    fn s_output(&self, _fh: u64, _index: u32) -> Result<u32, Errno> {
        Err(Errno::ENOTTY)
    }
    fn enum_framesizes(
        &self,
        _fh: u64,
        _f: ioctl_abi::videodev2::v4l2_frmsizeenum,
    ) -> Result<ioctl_abi::videodev2::v4l2_frmsizeenum, Errno> {
        Err(Errno::ENOTTY)
    }
    fn enum_frameintervals(
        &self,
        _fh: u64,
        _f: ioctl_abi::videodev2::v4l2_frmivalenum,
    ) -> Result<ioctl_abi::videodev2::v4l2_frmivalenum, Errno> {
        Err(Errno::ENOTTY)
    }
    fn g_parm(&self, _fh: u64, _p: v4l2_streamparm) -> Result<v4l2_streamparm, Errno> {
        Err(Errno::ENOTTY)
    }
    fn s_parm(&self, _fh: u64, _p: v4l2_streamparm) -> Result<v4l2_streamparm, Errno> {
        Err(Errno::ENOTTY)
    }
    fn reqbufs(&self, _fh: u64, _r: v4l2_requestbuffers) -> Result<v4l2_requestbuffers, Errno> {
        Err(Errno::ENOTTY)
    }
    fn create_bufs(&self, _fh: u64, _c: v4l2_create_buffers) -> Result<v4l2_create_buffers, Errno> {
        Err(Errno::ENOTTY)
    }
    fn querybuf(&self, _fh: u64, _b: v4l2_buffer) -> Result<v4l2_buffer, Errno> {
        Err(Errno::ENOTTY)
    }
    /// `memory`: the caller's address space, for USERPTR buffers.
    fn prepare_buf(
        &self,
        _fh: u64,
        _b: v4l2_buffer,
        _memory: Option<Arc<dyn UserMemory>>,
    ) -> Result<v4l2_buffer, Errno> {
        Err(Errno::ENOTTY)
    }
    fn qbuf(
        &self,
        _fh: u64,
        _b: v4l2_buffer,
        _memory: Option<Arc<dyn UserMemory>>,
    ) -> Result<v4l2_buffer, Errno> {
        Err(Errno::ENOTTY)
    }
    /// Never waits: a blocking DQBUF with nothing done comes back with `would_block`.
    fn dqbuf(&self, _fh: u64, _b: v4l2_buffer, _nonblocking: bool) -> DqResult {
        DqResult {
            result: Err(Errno::ENOTTY),
            would_block: false,
        }
    }
    fn streamon(&self, _fh: u64, _type: u32) -> Result<(), Errno> {
        Err(Errno::ENOTTY)
    }
    fn streamoff(&self, _fh: u64, _type: u32) -> Result<(), Errno> {
        Err(Errno::ENOTTY)
    }
    /// The node's poll mask for `fh` (DEFAULT_POLLMASK without a queue).
    fn poll(&self, _fh: u64) -> u32 {
        (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32
    }
    fn set_notify(&self, _notify: QueueNotify) {}
    /// Accounts `fh`'s MMAP buffer memory to `budget` (see [`crate::vb2::Queue::set_budget`]).
    fn set_budget(&self, _fh: u64, _budget: Arc<dyn crate::vb2::Budget>) {}
    /// `vb2_mmap`: the MMAP buffer of `fh`'s queue at `offset`, for a mapping of `length`
    /// with the `MCEMU_VM_*` flags `vm`.
    fn mmap_buffer(
        &self,
        _fh: u64,
        _offset: u64,
        _length: u64,
        _vm: u32,
    ) -> Result<Arc<crate::vb2::MemfdBuffer>, Errno> {
        Err(Errno::ENODEV)
    }
    /// Fault injection into the node's pipeline: the next `drop_frames` frames are lost, and
    /// for `stall` no frame starts at all.
    fn stream_fault(&self, _drop_frames: u32, _stall: std::time::Duration) {}
    /// The device is being unregistered: streaming stops and every queue is released, as
    /// `vb2_video_unregister_device` does.
    fn unplugged(&self) {}
}

/// `/dev/v4l-subdevN`.
pub trait SubdevIoctls: Send + Sync {
    fn querycap(&self) -> Result<v4l2_subdev_capability, Errno> {
        Err(Errno::ENOTTY)
    }
    /// `V4L2_SUBDEV_FL_HAS_EVENTS`: the node takes event subscriptions and polls for them.
    fn has_events(&self) -> bool {
        false
    }
    /// `core.subscribe_event`: validates a subscription and returns the per-handle queue depth.
    /// The event queues themselves are the core's (the dispatcher's).
    fn subscribe_event(&self, _sub: &v4l2_event_subscription) -> Result<usize, Errno> {
        Err(Errno::ENOTTY)
    }
    /// The node's control handler (`sd->ctrl_handler`); None: the control ioctls are ENOTTY.
    fn controls(&self) -> Option<std::sync::Arc<crate::controls::Controls>> {
        None
    }
    /// A driver-private ioctl (`core.ioctl`): the argument bytes as `video_usercopy` copied
    /// them in (size and direction from the command), written back on success. `memory` is the
    /// caller's address space, for the pointers inside the argument (`copy_to_user`).
    fn private_ioctl(
        &self,
        _cmd: u32,
        _arg: &mut [u8],
        _memory: Option<&dyn UserMemory>,
    ) -> Result<i32, Errno> {
        Err(Errno::ENOTTY)
    }
    /// A file handle was opened (the subdev `open` internal op: new TRY state) or closed.
    fn open(&self, _fh: u64) {}
    fn release(&self, _fh: u64) {}
    fn enum_mbus_code(
        &self,
        _fh: u64,
        _c: v4l2_subdev_mbus_code_enum,
    ) -> Result<v4l2_subdev_mbus_code_enum, Errno> {
        Err(Errno::ENOTTY)
    }
    fn enum_frame_size(
        &self,
        _fh: u64,
        _f: v4l2_subdev_frame_size_enum,
    ) -> Result<v4l2_subdev_frame_size_enum, Errno> {
        Err(Errno::ENOTTY)
    }
    fn enum_frame_interval(
        &self,
        _fh: u64,
        _f: v4l2_subdev_frame_interval_enum,
    ) -> Result<v4l2_subdev_frame_interval_enum, Errno> {
        Err(Errno::ENOTTY)
    }
    fn get_frame_interval(
        &self,
        _fh: u64,
        _f: v4l2_subdev_frame_interval,
    ) -> Result<v4l2_subdev_frame_interval, Errno> {
        Err(Errno::ENOTTY)
    }
    fn set_frame_interval(
        &self,
        _fh: u64,
        _f: v4l2_subdev_frame_interval,
    ) -> Result<v4l2_subdev_frame_interval, Errno> {
        Err(Errno::ENOTTY)
    }
    fn get_fmt(&self, _fh: u64, _f: v4l2_subdev_format) -> Result<v4l2_subdev_format, Errno> {
        Err(Errno::ENOTTY)
    }
    fn set_fmt(&self, _fh: u64, _f: v4l2_subdev_format) -> Result<v4l2_subdev_format, Errno> {
        Err(Errno::ENOTTY)
    }
    fn get_selection(
        &self,
        _fh: u64,
        _s: v4l2_subdev_selection,
    ) -> Result<v4l2_subdev_selection, Errno> {
        Err(Errno::ENOTTY)
    }
    fn set_selection(
        &self,
        _fh: u64,
        _s: v4l2_subdev_selection,
    ) -> Result<v4l2_subdev_selection, Errno> {
        Err(Errno::ENOTTY)
    }
}

/// `v4l_fill_fmtdesc`'s description of a pixel format (the core fills it in; drivers do not),
/// for the formats mcemu's devices use; empty for others.
pub fn pixfmt_description(pixelformat: u32) -> &'static str {
    match &pixelformat.to_le_bytes() {
        b"GREY" => "8-bit Greyscale",
        b"Y10 " => "10-bit Greyscale",
        b"Y12 " => "12-bit Greyscale",
        b"BA81" => "8-bit Bayer BGBG/GRGR",
        b"GBRG" => "8-bit Bayer GBGB/RGRG",
        b"GRBG" => "8-bit Bayer GRGR/BGBG",
        b"RGGB" => "8-bit Bayer RGRG/GBGB",
        b"bBA8" => "8-bit Bayer BGBG/GRGR (DPCM)",
        b"bGA8" => "8-bit Bayer GBGB/RGRG (DPCM)",
        b"BD10" => "8-bit Bayer GRGR/BGBG (DPCM)",
        b"bRA8" => "8-bit Bayer RGRG/GBGB (DPCM)",
        b"BG10" => "10-bit Bayer BGBG/GRGR",
        b"GB10" => "10-bit Bayer GBGB/RGRG",
        b"BA10" => "10-bit Bayer GRGR/BGBG",
        b"RG10" => "10-bit Bayer RGRG/GBGB",
        b"BG12" => "12-bit Bayer BGBG/GRGR",
        b"GB12" => "12-bit Bayer GBGB/RGRG",
        b"BA12" => "12-bit Bayer GRGR/BGBG",
        b"RG12" => "12-bit Bayer RGRG/GBGB",
        b"UYVY" => "UYVY 4:2:2",
        b"RGB3" => "24-bit RGB 8-8-8",
        b"BGR3" => "24-bit BGR 8-8-8",
        b"YUYV" => "YUYV 4:2:2",
        _ => "",
    }
}

/// `V4L2_PRIORITY_*`.
pub const PRIO_BACKGROUND: u32 = 1;
pub const PRIO_INTERACTIVE: u32 = 2;
pub const PRIO_RECORD: u32 = 3;

/// `struct v4l2_prio_state` and each file handle's priority, as the core keeps them for
/// drivers using `v4l2_fh` (`v4l2_prio_open/close/change/check/max`).
#[derive(Debug, Default)]
pub struct Priorities(std::collections::HashMap<u64, u32>);

impl Priorities {
    /// A new handle starts at the default (interactive).
    pub fn open(&mut self, fh: u64) {
        self.0.insert(fh, PRIO_INTERACTIVE);
    }

    pub fn close(&mut self, fh: u64) {
        self.0.remove(&fh);
    }

    /// VIDIOC_G_PRIORITY: the highest priority of any open handle.
    pub fn max(&self) -> u32 {
        self.0.values().copied().max().unwrap_or(0)
    }

    /// `v4l2_prio_check`: a handle below the highest priority may not change the state.
    pub fn check(&self, fh: u64) -> Result<(), Errno> {
        if self.0.get(&fh).copied().unwrap_or(0) < self.max() {
            Err(Errno::EBUSY)
        } else {
            Ok(())
        }
    }

    /// VIDIOC_S_PRIORITY: EINVAL for an unknown priority; itself priority-checked;
    /// `V4L2_PRIORITY_UNSET` (0) means the default.
    pub fn set(&mut self, fh: u64, prio: u32) -> Result<(), Errno> {
        if !(PRIO_BACKGROUND..=PRIO_RECORD).contains(&prio) && prio != 0 {
            return Err(Errno::EINVAL);
        }
        self.check(fh)?;
        self.0
            .insert(fh, if prio == 0 { PRIO_INTERACTIVE } else { prio });
        Ok(())
    }
}

const INPUT_TYPE_CAMERA: u32 = 2;
const OUTPUT_TYPE_ANALOG: u32 = 2;

/// VIDIOC_ENUMINPUT of a node with one camera input called `name` (the core's answer for
/// `V4L2_CAP_IO_MC` nodes); ENOTTY for a node without inputs (`has` false).
pub fn enum_single_input(has: bool, index: u32, name: &str) -> Result<v4l2_input, Errno> {
    if !has {
        return Err(Errno::ENOTTY);
    }
    if index != 0 {
        return Err(Errno::EINVAL);
    }
    let mut i = v4l2_input::zeroed();
    i.type_ = INPUT_TYPE_CAMERA;
    ioctl_abi::set_cstr(&mut i.name, name);
    Ok(i)
}

/// VIDIOC_ENUMOUTPUT of a node with one output called `name`.
pub fn enum_single_output(has: bool, index: u32, name: &str) -> Result<v4l2_output, Errno> {
    if !has {
        return Err(Errno::ENOTTY);
    }
    if index != 0 {
        return Err(Errno::EINVAL);
    }
    let mut o = v4l2_output::zeroed();
    o.type_ = OUTPUT_TYPE_ANALOG;
    ioctl_abi::set_cstr(&mut o.name, name);
    Ok(o)
}

/// VIDIOC_G_INPUT / G_OUTPUT of a node with the single one (ENOTTY without).
pub fn g_single_io(has: bool) -> Result<u32, Errno> {
    if has {
        Ok(0)
    } else {
        Err(Errno::ENOTTY)
    }
}

/// VIDIOC_S_INPUT / S_OUTPUT: ENOTTY without one, then the priority check's result, then
/// EINVAL for any index but 0.
pub fn s_single_io(has: bool, prio: Result<(), Errno>, index: u32) -> Result<u32, Errno> {
    if !has {
        return Err(Errno::ENOTTY);
    }
    prio?;
    if index == 0 {
        Ok(0)
    } else {
        Err(Errno::EINVAL)
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: vb2's buffer timestamps.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}
