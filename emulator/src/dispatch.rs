//! Ioctl dispatch per node type: decodes the command, moves the argument through the RETRY
//! rounds, calls the node's handler trait and encodes the result. The only place where a
//! handler's `Result` becomes an ioctl return value.

use std::sync::Arc;

use cuse::{Errno, IoctlRound, ReplyIoctl};
use ioctl_abi::media::*;
use ioctl_abi::omap3isp::BASE_VIDIOC_PRIVATE;
use ioctl_abi::subdev::*;
use ioctl_abi::videodev2::*;
use ioctl_abi::{ioc_dir, ioc_nr, ioc_size, ioc_type, IOC_READ, IOC_WRITE};
use media_graph::controls::{Controls, ExtOp};
use media_graph::{MediaIoctls, SubdevIoctls, VideoIoctls};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The points of an ioctl where a race breakpoint can park it, and where the call reaches the
/// device's objects. `mid` hands out the handler only now, so that a call parked before it finds
/// out whether the objects still exist (in the legacy lifetime models they may not).
pub trait Stages<H> {
    /// Breakpoint "mid", then the handler: an errno if the objects are gone.
    fn mid(&self) -> Result<H, Errno>;
    /// Breakpoint "reply": the result is computed, about to be written back.
    fn reply(&self);
}

/// A fixed-size ioctl whose argument is one `T` at `arg`: copied in if the command has
/// `_IOC_WRITE`, out if it has `_IOC_READ`, as `video_usercopy`/`media_device_ioctl` do.
/// Round 1 asks for the struct; round 2 runs `f` and returns the struct.
pub fn fixed<T, H, F>(round: &mut IoctlRound<'_>, reply: ReplyIoctl, st: &dyn Stages<H>, f: F)
where
    T: FromBytes + IntoBytes + Immutable + KnownLayout,
    F: FnOnce(&H, T) -> Result<(i32, T), Errno>,
{
    let req = *round.request();
    debug_assert_eq!(ioc_size(req.cmd), core::mem::size_of::<T>());
    let dir = ioc_dir(req.cmd);
    let input = if dir & IOC_WRITE != 0 {
        match round.input_struct::<T>(req.arg) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        }
    } else {
        Some(T::new_zeroed())
    };
    if dir & IOC_READ != 0 {
        round.output(req.arg, core::mem::size_of::<T>());
    }
    let Some(value) = input.filter(|_| round.is_complete()) else {
        return reply.retry_round(round);
    };
    let result = match st.mid() {
        Ok(h) => f(&h, value),
        Err(e) => Err(e),
    };
    st.reply();
    match result {
        Ok((ret, out)) if dir & IOC_READ != 0 => reply.finish(round, Ok(ret), &[out.as_bytes()]),
        Ok((ret, _)) => reply.finish(round, Ok(ret), &[]),
        // Like video_usercopy, nothing is copied back on failure.
        Err(e) => reply.error(e),
    }
}

type Media = Arc<dyn MediaIoctls>;

/// `/dev/mediaN`.
pub fn media(st: &dyn Stages<Media>, round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
    match round.request().cmd {
        MEDIA_IOC_DEVICE_INFO => fixed(round, reply, st, |dev: &Media, _: media_device_info| {
            dev.device_info().map(|i| (0, i))
        }),
        MEDIA_IOC_ENUM_ENTITIES => fixed(round, reply, st, |dev: &Media, d: media_entity_desc| {
            dev.enum_entities(d).map(|e| (0, e))
        }),
        MEDIA_IOC_SETUP_LINK => fixed(round, reply, st, |dev: &Media, d: media_link_desc| {
            dev.setup_link(d).map(|d| (0, d))
        }),
        MEDIA_IOC_ENUM_LINKS => enum_links(st, round, reply),
        MEDIA_IOC_G_TOPOLOGY => g_topology(st, round, reply),
        _ => reply.error(Errno::ENOTTY),
    }
}

/// MEDIA_IOC_ENUM_LINKS: the struct (round 2), then the pad and link arrays it points to
/// (round 3), each skipped when its pointer is NULL.
fn enum_links(st: &dyn Stages<Media>, round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
    let arg = round.request().arg;
    let mut req: media_links_enum = match round.inout_struct(arg) {
        Ok(Some(v)) => v,
        Ok(None) => return reply.retry_round(round),
        Err(e) => return reply.error(e),
    };
    let (pads, links) = match st.mid().and_then(|dev| dev.enum_links(&req)) {
        Ok(v) => v,
        Err(e) => return reply.error(e),
    };
    let pad_bytes = pads.as_bytes();
    let link_bytes = links.as_bytes();
    let mut outputs: Vec<&[u8]> = Vec::with_capacity(3);
    req.reserved = [0; 4];
    outputs.push(req.as_bytes());
    if req.pads != 0 {
        round.output(req.pads, pad_bytes.len());
        outputs.push(pad_bytes);
    }
    if req.links != 0 {
        round.output(req.links, link_bytes.len());
        outputs.push(link_bytes);
    }
    if !round.is_complete() {
        return reply.retry_round(round);
    }
    st.reply();
    reply.finish(round, Ok(0), &outputs);
}

/// MEDIA_IOC_G_TOPOLOGY as `media_device_get_topology()`: each array gets at most `num_*`
/// elements; a short array ends with ENOSPC, leaves the later arrays alone and the struct
/// uncopied. NULL pointers only count.
fn g_topology(st: &dyn Stages<Media>, round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
    let arg = round.request().arg;
    let mut t: media_v2_topology = match round.input_struct(arg) {
        Ok(Some(v)) => v,
        Ok(None) => {
            round.output(arg, core::mem::size_of::<media_v2_topology>());
            return reply.retry_round(round);
        }
        Err(e) => return reply.error(e),
    };
    let topo = match st.mid().and_then(|dev| dev.topology()) {
        Ok(t) => t,
        Err(e) => return reply.error(e),
    };
    let arrays = [
        Array::new(t.ptr_entities, t.num_entities, &topo.entities),
        Array::new(t.ptr_interfaces, t.num_interfaces, &topo.interfaces),
        Array::new(t.ptr_pads, t.num_pads, &topo.pads),
        Array::new(t.ptr_links, t.num_links, &topo.links),
    ];
    let mut result = Ok(0);
    let mut outputs: Vec<&[u8]> = Vec::new();
    for a in arrays {
        if result.is_err() || a.ptr == 0 {
            continue;
        }
        let n = a.count.min(a.room as usize);
        round.output(a.ptr, n * a.elem);
        outputs.push(&a.bytes[..n * a.elem]);
        if a.count > a.room as usize {
            result = Err(Errno::ENOSPC);
        }
    }
    t.topology_version = topo.version;
    t.num_entities = topo.entities.len() as u32;
    t.num_interfaces = topo.interfaces.len() as u32;
    t.num_pads = topo.pads.len() as u32;
    t.num_links = topo.links.len() as u32;
    t.reserved1 = 0;
    t.reserved2 = 0;
    t.reserved3 = 0;
    t.reserved4 = 0;
    if result.is_ok() {
        round.output(arg, core::mem::size_of::<media_v2_topology>());
        outputs.push(t.as_bytes());
    }
    if !round.is_complete() {
        return reply.retry_round(round);
    }
    st.reply();
    reply.finish(round, result, &outputs);
}

/// One array of `media_v2_topology`: where the client wants it, how many elements fit there, and
/// the graph's elements.
struct Array<'a> {
    ptr: u64,
    room: u32,
    bytes: &'a [u8],
    count: usize,
    elem: usize,
}

impl<'a> Array<'a> {
    fn new<T: IntoBytes + Immutable>(ptr: u64, room: u32, items: &'a [T]) -> Self {
        Self {
            ptr,
            room,
            bytes: items.as_bytes(),
            count: items.len(),
            elem: core::mem::size_of::<T>(),
        }
    }
}

type Video = Arc<dyn VideoIoctls>;
type Subdev = Arc<dyn SubdevIoctls>;

/// `/dev/videoN`.
pub fn video(st: &dyn Stages<Video>, round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
    let fh = round.request().fh;
    match round.request().cmd {
        VIDIOC_QUERYCAP => fixed(round, reply, st, |h: &Video, _: v4l2_capability| {
            h.querycap().map(|c| (0, c))
        }),
        VIDIOC_ENUM_FMT => fixed(round, reply, st, |h: &Video, f| {
            h.enum_fmt(fh, f).map(|f| (0, f))
        }),
        VIDIOC_G_FMT => fixed(round, reply, st, |h: &Video, f| {
            h.g_fmt(fh, f).map(|f| (0, f))
        }),
        VIDIOC_S_FMT => fixed(round, reply, st, |h: &Video, f| {
            h.s_fmt(fh, f).map(|f| (0, f))
        }),
        VIDIOC_TRY_FMT => fixed(round, reply, st, |h: &Video, f| {
            h.try_fmt(fh, f).map(|f| (0, f))
        }),
        VIDIOC_G_PRIORITY => fixed(round, reply, st, |h: &Video, _: u32| {
            h.g_priority(fh).map(|p| (0, p))
        }),
        VIDIOC_S_PRIORITY => fixed(round, reply, st, |h: &Video, p: u32| {
            h.s_priority(fh, p).map(|_| (0, p))
        }),
        VIDIOC_ENUMINPUT => fixed(round, reply, st, |h: &Video, i| {
            h.enum_input(fh, i).map(|i| (0, i))
        }),
        VIDIOC_G_INPUT => fixed(round, reply, st, |h: &Video, _: u32| {
            h.g_input(fh).map(|i| (0, i))
        }),
        VIDIOC_S_INPUT => fixed(round, reply, st, |h: &Video, i: u32| {
            h.s_input(fh, i).map(|i| (0, i))
        }),
        VIDIOC_ENUMOUTPUT => fixed(round, reply, st, |h: &Video, o| {
            h.enum_output(fh, o).map(|o| (0, o))
        }),
        VIDIOC_G_OUTPUT => fixed(round, reply, st, |h: &Video, _: u32| {
            h.g_output(fh).map(|o| (0, o))
        }),
        VIDIOC_S_OUTPUT => fixed(round, reply, st, |h: &Video, o: u32| {
            h.s_output(fh, o).map(|o| (0, o))
        }),
        VIDIOC_ENUM_FRAMESIZES => fixed(round, reply, st, |h: &Video, f| {
            h.enum_framesizes(fh, f).map(|f| (0, f))
        }),
        VIDIOC_ENUM_FRAMEINTERVALS => fixed(round, reply, st, |h: &Video, f| {
            h.enum_frameintervals(fh, f).map(|f| (0, f))
        }),
        VIDIOC_G_PARM => fixed(round, reply, st, |h: &Video, p| {
            h.g_parm(fh, p).map(|p| (0, p))
        }),
        VIDIOC_S_PARM => fixed(round, reply, st, |h: &Video, p| {
            h.s_parm(fh, p).map(|p| (0, p))
        }),
        VIDIOC_REQBUFS => fixed(round, reply, st, |h: &Video, r| {
            h.reqbufs(fh, r).map(|r| (0, r))
        }),
        VIDIOC_CREATE_BUFS => fixed(round, reply, st, |h: &Video, c| {
            h.create_bufs(fh, c).map(|c| (0, c))
        }),
        VIDIOC_QUERYBUF => fixed(round, reply, st, |h: &Video, b| {
            h.querybuf(fh, b).map(|b| (0, b))
        }),
        VIDIOC_QBUF | VIDIOC_PREPARE_BUF => {
            let memory = round.memory().map(crate::nodes::user_memory);
            let cmd = round.request().cmd;
            fixed(round, reply, st, |h: &Video, b| {
                let r = if cmd == VIDIOC_QBUF {
                    h.qbuf(fh, b, memory)
                } else {
                    h.prepare_buf(fh, b, memory)
                };
                r.map(|b| (0, b))
            })
        }
        VIDIOC_STREAMON => fixed(round, reply, st, |h: &Video, t: u32| {
            h.streamon(fh, t).map(|_| (0, t))
        }),
        VIDIOC_STREAMOFF => fixed(round, reply, st, |h: &Video, t: u32| {
            h.streamoff(fh, t).map(|_| (0, t))
        }),
        // CUSE cannot hand a file descriptor to the client, so there is no DMABUF export.
        VIDIOC_EXPBUF => reply.error(Errno::ENOTTY),
        _ => reply.error(Errno::ENOTTY),
    }
}

/// The control ioctls need the node's control handler (`ENOTTY` without one).
fn controls(h: &Subdev) -> Result<Arc<Controls>, Errno> {
    h.controls().ok_or(Errno::ENOTTY)
}

/// VIDIOC_G/TRY/S_EXT_CTRLS: the struct, then the `count` controls it points to; both go back to
/// the client even when the call fails (`error_idx`, rounded values), as `video_usercopy` does
/// for these ioctls. More than `V4L2_CID_MAX_CTRLS` is EINVAL before anything is read.
fn ext_ctrls(st: &dyn Stages<Subdev>, round: &mut IoctlRound<'_>, reply: ReplyIoctl, op: ExtOp) {
    const ITEM: usize = core::mem::size_of::<v4l2_ext_control>();
    let (arg, fh) = (round.request().arg, round.request().fh);
    let mut cs: v4l2_ext_controls = match round.inout_struct(arg) {
        Ok(Some(v)) => v,
        Ok(None) => return reply.retry_round(round),
        Err(e) => return reply.error(e),
    };
    if cs.count > V4L2_CID_MAX_CTRLS {
        return reply.error(Errno::EINVAL);
    }
    let len = cs.count as usize * ITEM;
    let mut items: Vec<v4l2_ext_control> = Vec::new();
    if len > 0 {
        let bytes = match round.input(cs.controls, len) {
            Ok(b) => b.map(|b| b.into_owned()),
            Err(e) => return reply.error(e),
        };
        round.output(cs.controls, len);
        let Some(bytes) = bytes else {
            return reply.retry_round(round);
        };
        items = bytes
            .chunks_exact(ITEM)
            .filter_map(|c| v4l2_ext_control::read_from_bytes(c).ok())
            .collect();
    }
    if !round.is_complete() {
        return reply.retry_round(round);
    }
    // Errors before the control core runs (node gone, no handler) copy nothing back.
    let handler = st.mid().and_then(|h| controls(&h));
    let result = handler
        .as_ref()
        .map(|c| c.ext_ctrls(fh, op, &mut cs, &mut items));
    st.reply();
    let result = match result {
        Ok(r) => r,
        Err(e) => return reply.error(*e),
    };
    let out: Vec<u8> = items.iter().flat_map(|c| c.as_bytes().to_vec()).collect();
    let outputs: &[&[u8]] = if len > 0 {
        &[cs.as_bytes(), &out]
    } else {
        &[cs.as_bytes()]
    };
    reply.finish(round, result.map(|_| 0), outputs);
}

/// A driver-private ioctl: `video_usercopy` moves `_IOC_SIZE` bytes in and (on success) out as
/// the command's direction says; the driver's `core.ioctl` sees them.
fn private(st: &dyn Stages<Subdev>, round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
    let req = *round.request();
    let (size, dir) = (ioc_size(req.cmd), ioc_dir(req.cmd));
    let mut arg = vec![0u8; size];
    if dir & IOC_WRITE != 0 {
        match round.input(req.arg, size) {
            Ok(Some(b)) => arg.copy_from_slice(&b),
            Ok(None) => {}
            Err(e) => return reply.error(e),
        }
    }
    if dir & IOC_READ != 0 {
        round.output(req.arg, size);
    }
    if !round.is_complete() {
        return reply.retry_round(round);
    }
    let memory = round.memory().map(crate::nodes::user_memory);
    let result = st
        .mid()
        .and_then(|h| h.private_ioctl(req.cmd, &mut arg, memory.as_deref()));
    st.reply();
    match result {
        Ok(r) if dir & IOC_READ != 0 => reply.finish(round, Ok(r), &[&arg]),
        Ok(r) => reply.finish(round, Ok(r), &[]),
        Err(e) => reply.error(e),
    }
}

/// `/dev/v4l-subdevN`, as `subdev_do_ioctl` routes the pad operations.
pub fn subdev(st: &dyn Stages<Subdev>, round: &mut IoctlRound<'_>, reply: ReplyIoctl) {
    let fh = round.request().fh;
    match round.request().cmd {
        VIDIOC_SUBDEV_QUERYCAP => {
            fixed(round, reply, st, |h: &Subdev, _: v4l2_subdev_capability| {
                h.querycap().map(|c| (0, c))
            })
        }
        VIDIOC_SUBDEV_ENUM_MBUS_CODE => fixed(round, reply, st, |h: &Subdev, c| {
            h.enum_mbus_code(fh, c).map(|c| (0, c))
        }),
        VIDIOC_SUBDEV_ENUM_FRAME_SIZE => fixed(round, reply, st, |h: &Subdev, f| {
            h.enum_frame_size(fh, f).map(|f| (0, f))
        }),
        VIDIOC_SUBDEV_G_FMT => fixed(round, reply, st, |h: &Subdev, f| {
            h.get_fmt(fh, f).map(|f| (0, f))
        }),
        VIDIOC_SUBDEV_S_FMT => fixed(round, reply, st, |h: &Subdev, f| {
            h.set_fmt(fh, f).map(|f| (0, f))
        }),
        VIDIOC_SUBDEV_G_SELECTION => fixed(round, reply, st, |h: &Subdev, s| {
            h.get_selection(fh, s).map(|s| (0, s))
        }),
        VIDIOC_SUBDEV_S_SELECTION => fixed(round, reply, st, |h: &Subdev, s| {
            h.set_selection(fh, s).map(|s| (0, s))
        }),
        VIDIOC_SUBDEV_ENUM_FRAME_INTERVAL => fixed(round, reply, st, |h: &Subdev, f| {
            h.enum_frame_interval(fh, f).map(|f| (0, f))
        }),
        VIDIOC_SUBDEV_G_FRAME_INTERVAL => fixed(round, reply, st, |h: &Subdev, f| {
            h.get_frame_interval(fh, f).map(|f| (0, f))
        }),
        VIDIOC_SUBDEV_S_FRAME_INTERVAL => fixed(round, reply, st, |h: &Subdev, f| {
            h.set_frame_interval(fh, f).map(|f| (0, f))
        }),
        VIDIOC_QUERYCTRL => fixed(round, reply, st, |h: &Subdev, q| {
            controls(h)?.queryctrl(q).map(|q| (0, q))
        }),
        VIDIOC_QUERY_EXT_CTRL => fixed(round, reply, st, |h: &Subdev, q: v4l2_query_ext_ctrl| {
            controls(h)?.query_ext(q.id).map(|q| (0, q))
        }),
        VIDIOC_QUERYMENU => fixed(round, reply, st, |h: &Subdev, q| {
            controls(h)?.querymenu(q).map(|q| (0, q))
        }),
        VIDIOC_G_CTRL => fixed(round, reply, st, |h: &Subdev, c| {
            controls(h)?.g_ctrl(c).map(|c| (0, c))
        }),
        VIDIOC_S_CTRL => fixed(round, reply, st, |h: &Subdev, c| {
            controls(h)?.s_ctrl(fh, c).map(|c| (0, c))
        }),
        VIDIOC_G_EXT_CTRLS => ext_ctrls(st, round, reply, ExtOp::Get),
        VIDIOC_TRY_EXT_CTRLS => ext_ctrls(st, round, reply, ExtOp::Try),
        VIDIOC_S_EXT_CTRLS => ext_ctrls(st, round, reply, ExtOp::Set),
        // The legacy crop ioctls are selections of the CROP target.
        VIDIOC_SUBDEV_G_CROP | VIDIOC_SUBDEV_S_CROP => {
            let set = round.request().cmd == VIDIOC_SUBDEV_S_CROP;
            fixed(round, reply, st, |h: &Subdev, mut c: v4l2_subdev_crop| {
                let mut sel = v4l2_subdev_selection::zeroed();
                sel.which = c.which;
                sel.pad = c.pad;
                sel.target = ioctl_abi::videodev2::V4L2_SEL_TGT_CROP;
                sel.r = c.rect;
                let sel = if set {
                    h.set_selection(fh, sel)?
                } else {
                    h.get_selection(fh, sel)?
                };
                c.reserved = [0; 8];
                c.rect = sel.r;
                Ok((0, c))
            })
        }
        cmd if ioc_type(cmd) == b'V' && ioc_nr(cmd) >= BASE_VIDIOC_PRIVATE => {
            private(st, round, reply)
        }
        _ => reply.error(Errno::ENOTTY),
    }
}
