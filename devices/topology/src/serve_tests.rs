//! A topology served without a kernel: the handlers of its nodes called as the dispatcher
//! calls them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ioctl_abi::media::*;
use ioctl_abi::subdev::*;
use ioctl_abi::videodev2::*;
use media_graph::vb2::UserMemory;
use media_graph::{Audit, MediaDevice, MediaIoctls, SubdevIoctls, VideoIoctls};
use nix::errno::Errno;
use parking_lot::Mutex;

use crate::device::{build, device_info, NodeRegistrar, Runtime};

#[derive(Default)]
struct Reg {
    videos: HashMap<String, Arc<dyn VideoIoctls>>,
    subdevs: HashMap<String, Arc<dyn SubdevIoctls>>,
    order: Vec<String>,
}

impl NodeRegistrar for Reg {
    type Error = Errno;
    fn register_video(&mut self, name: &str, h: Arc<dyn VideoIoctls>) -> Result<(u32, u32), Errno> {
        self.order.push(format!("video {name}"));
        self.videos.insert(name.into(), h);
        Ok((81, self.order.len() as u32))
    }
    fn register_subdev(
        &mut self,
        name: &str,
        h: Arc<dyn SubdevIoctls>,
    ) -> Result<(u32, u32), Errno> {
        self.order.push(format!("subdev {name}"));
        self.subdevs.insert(name.into(), h);
        Ok((81, self.order.len() as u32))
    }
}

struct Served {
    dev: Arc<MediaDevice>,
    rt: Arc<Runtime>,
    reg: Reg,
}

fn serve(preset: &str) -> Served {
    let topo = crate::load(preset).unwrap();
    let dev = MediaDevice::new(device_info(&topo, 0x060100), Audit::new());
    let mut reg = Reg::default();
    let rt = build(&topo, 0x060100, &dev, &mut reg).unwrap();
    dev.register();
    Served { dev, rt, reg }
}

/// A client's memory: one region at `BASE`.
struct Mem(Mutex<Vec<u8>>);
const BASE: u64 = 0x10_0000;

impl UserMemory for Mem {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let m = self.0.lock();
        let off = addr.checked_sub(BASE).ok_or(Errno::EFAULT)? as usize;
        m.get(off..off + len)
            .map(<[u8]>::to_vec)
            .ok_or(Errno::EFAULT)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let mut m = self.0.lock();
        let off = addr.checked_sub(BASE).ok_or(Errno::EFAULT)? as usize;
        m.get_mut(off..off + data.len())
            .ok_or(Errno::EFAULT)?
            .copy_from_slice(data);
        Ok(())
    }
}

fn fmt_of(v: &dyn VideoIoctls, fh: u64) -> v4l2_pix_format {
    let mut f = v4l2_format::zeroed();
    f.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    v.g_fmt(fh, f).unwrap().pix()
}

fn reqbufs(v: &dyn VideoIoctls, fh: u64, count: u32) -> Result<v4l2_requestbuffers, Errno> {
    let mut r = v4l2_requestbuffers::zeroed();
    r.count = count;
    r.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    r.memory = V4L2_MEMORY_USERPTR;
    v.reqbufs(fh, r)
}

/// Queues `count` USERPTR buffers of the node's size and starts streaming.
fn start(v: &dyn VideoIoctls, fh: u64, mem: &Arc<Mem>, count: u32) -> Result<(), Errno> {
    let size = fmt_of(v, fh).sizeimage;
    *mem.0.lock() = vec![0; (size * count) as usize];
    reqbufs(v, fh, count)?;
    for i in 0..count {
        let mut b = v4l2_buffer::zeroed();
        b.index = i;
        b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_USERPTR;
        b.m = BASE + u64::from(i * size);
        b.length = size;
        v.qbuf(fh, b, Some(mem.clone() as Arc<dyn UserMemory>))?;
    }
    v.streamon(fh, V4L2_BUF_TYPE_VIDEO_CAPTURE)
}

/// Dequeues one buffer, waiting up to 5 s.
fn dqbuf(v: &dyn VideoIoctls, fh: u64) -> v4l2_buffer {
    let mut b = v4l2_buffer::zeroed();
    b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b.memory = V4L2_MEMORY_USERPTR;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match v.dqbuf(fh, b, true).result {
            Ok(b) => return b,
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("DQBUF: {e}"),
        }
    }
}

fn set_active(sd: &dyn SubdevIoctls, pad: u32, code: u32, w: u32, h: u32) -> v4l2_mbus_framefmt {
    let mut f = v4l2_subdev_format::zeroed();
    f.which = V4L2_SUBDEV_FORMAT_ACTIVE;
    f.pad = pad;
    f.format = media_graph::pads::mbus(code, w, h);
    sd.set_fmt(0, f).unwrap().format
}

#[test]
fn vimc_like_registers_in_probe_order_and_reports_the_graph() {
    let s = serve("vimc-like");
    assert_eq!(
        s.reg.order,
        [
            "video Raw Capture 0",
            "video Raw Capture 1",
            "video RGB/YUV Capture",
            "subdev Sensor A",
            "subdev Sensor B",
            "subdev Debayer A",
            "subdev Debayer B",
            "subdev RGB/YUV Input",
            "subdev Scaler",
        ]
    );
    let t = s.dev.topology().unwrap();
    assert_eq!(
        (t.entities.len(), t.interfaces.len(), t.pads.len()),
        (9, 9, 12)
    );
    // 8 data links and 9 interface links.
    assert_eq!(t.links.len(), 17);
    let info = s.dev.device_info().unwrap();
    assert_eq!(ioctl_abi::cstr(&info.driver), "vimc");
    let cap = s.reg.videos["RGB/YUV Capture"].querycap().unwrap();
    assert_ne!(cap.device_caps & V4L2_CAP_IO_MC, 0);
    assert_eq!(ioctl_abi::cstr(&cap.bus_info), "platform:vimc");
}

#[test]
fn raw_capture_streams_the_sensor_default_and_fills_buffers() {
    let s = serve("vimc-like");
    let v = s.reg.videos["Raw Capture 0"].clone();
    v.open(1);
    let f = fmt_of(&*v, 1);
    assert_eq!((f.width, f.height, f.bytesperline), (640, 480, 640 * 3));
    let mem = Arc::new(Mem(Mutex::new(Vec::new())));
    // And a stall: no frame for 300 ms.
    v.stream_fault(2, Duration::from_millis(300));
    let t0 = Instant::now();
    start(&*v, 1, &mem, 2).unwrap();
    let b0 = dqbuf(&*v, 1);
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(b0.bytesused, f.sizeimage);
    assert_eq!(b0.flags & V4L2_BUF_FLAG_ERROR, 0);
    let frame = mem.0.lock()[..f.sizeimage as usize].to_vec();
    assert!(frame.iter().any(|&b| b != 0), "the frame is written");
    v.qbuf(1, b0, Some(mem.clone() as Arc<dyn UserMemory>))
        .unwrap();
    let b1 = dqbuf(&*v, 1);
    assert!(b1.sequence > b0.sequence);
    v.streamoff(1, V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap();
    v.release(1);
}

#[test]
fn the_scaler_pipeline_needs_matching_formats_and_is_busy_while_streaming() {
    let s = serve("vimc-like");
    let v = s.reg.videos["RGB/YUV Capture"].clone();
    v.open(1);
    let mem = Arc::new(Mem(Mutex::new(Vec::new())));
    // Defaults: Sensor A gives RGB888, Debayer A wants Bayer.
    assert_eq!(start(&*v, 1, &mem, 2), Err(Errno::EPIPE));
    reqbufs(&*v, 1, 0).unwrap();
    set_active(
        &*s.reg.subdevs["Sensor A"],
        0,
        MEDIA_BUS_FMT_SGRBG8_1X8,
        640,
        480,
    );
    set_active(
        &*s.reg.subdevs["Debayer A"],
        0,
        MEDIA_BUS_FMT_SGRBG8_1X8,
        640,
        480,
    );
    let out = set_active(
        &*s.reg.subdevs["Scaler"],
        0,
        MEDIA_BUS_FMT_RGB888_1X24,
        640,
        480,
    );
    assert_eq!(out.code, MEDIA_BUS_FMT_RGB888_1X24);
    start(&*v, 1, &mem, 2).unwrap();
    dqbuf(&*v, 1);
    // Streaming: links and ACTIVE formats of the pipeline cannot change.
    let scaler = s.rt.ids[7];
    let debayer_a = s.rt.ids[2];
    let mut l = media_link_desc::zeroed();
    l.source.entity = debayer_a;
    l.source.index = 1;
    l.sink.entity = scaler;
    l.sink.index = 0;
    l.flags = 0;
    assert_eq!(s.dev.setup_link(l), Err(Errno::EBUSY));
    let mut f = v4l2_subdev_format::zeroed();
    f.which = V4L2_SUBDEV_FORMAT_ACTIVE;
    f.format = media_graph::pads::mbus(MEDIA_BUS_FMT_RGB888_1X24, 320, 240);
    assert_eq!(
        s.reg.subdevs["Scaler"].set_fmt(0, f).map(|_| ()),
        Err(Errno::EBUSY)
    );
    // Another handle cannot touch the queue; its S_FMT is EBUSY while buffers exist.
    v.open(2);
    assert_eq!(reqbufs(&*v, 2, 1).map(|_| ()), Err(Errno::EBUSY));
    let mut sf = v4l2_format::zeroed();
    sf.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    assert_eq!(v.s_fmt(2, sf).map(|_| ()), Err(Errno::EBUSY));
    // The owner's close stops the stream and frees the queue: the link may change again, and
    // a second enabled link into the scaler's sink is refused.
    v.release(1);
    assert_eq!(s.dev.setup_link(l).map(|_| ()), Ok(()));
    l.flags = MEDIA_LNK_FL_ENABLED;
    l.source.entity = s.rt.ids[3];
    s.dev.setup_link(l).unwrap();
    l.source.entity = s.rt.ids[6];
    l.source.index = 0;
    assert_eq!(s.dev.setup_link(l).map(|_| ()), Err(Errno::EBUSY));
    assert_eq!(reqbufs(&*v, 2, 1).map(|r| r.count), Ok(1));
}

#[test]
fn uvc_like_is_video_centric_and_s_fmt_configures_the_sensor() {
    let s = serve("uvc-like");
    assert!(s.reg.subdevs.is_empty());
    let v = s.reg.videos["mcemu USB Camera"].clone();
    let cap = v.querycap().unwrap();
    assert_eq!(cap.device_caps & V4L2_CAP_IO_MC, 0);
    assert_eq!(ioctl_abi::cstr(&cap.driver), "uvcvideo");
    v.open(1);
    let mut f = v4l2_format::zeroed();
    f.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    let mut pix = v4l2_pix_format::zeroed();
    pix.pixelformat = u32::from_le_bytes(*b"YUYV");
    pix.width = 1300;
    pix.height = 700;
    f.set_pix(&pix);
    let got = v.s_fmt(1, f).unwrap().pix();
    assert_eq!((got.width, got.height, got.bytesperline), (1280, 720, 2560));
    let sensor =
        s.rt.topo
            .entities
            .iter()
            .position(|e| e.name == "Camera 1")
            .unwrap();
    let m = s.rt.active(sensor, 0).unwrap();
    assert_eq!(
        (m.code, m.width, m.height),
        (MEDIA_BUS_FMT_YUYV8_2X8, 1280, 720)
    );
    let mut i = v4l2_input::zeroed();
    i = v.enum_input(1, i).unwrap();
    assert_eq!(ioctl_abi::cstr(&i.name), "Camera 1");
    let mem = Arc::new(Mem(Mutex::new(Vec::new())));
    start(&*v, 1, &mem, 2).unwrap();
    let b = dqbuf(&*v, 1);
    assert_eq!(b.bytesused, 2560 * 720);
    // Unplug: streaming stops, the queue is released.
    v.unplugged();
    let mut d = v4l2_buffer::zeroed();
    d.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    assert_eq!(v.dqbuf(1, d, true).result.map(|_| ()), Err(Errno::EINVAL));
    v.release(1);
}

#[test]
fn a_shared_device_takes_and_loses_each_drivers_entities() {
    let topo = crate::load("usb-av-like").unwrap();
    assert_eq!(topo.drivers(), ["au0828", "snd-usb-audio"]);
    let audit = Audit::new();
    let dev = MediaDevice::new(device_info(&topo, 0x060100), audit.clone());
    let counts = |d: &MediaDevice| {
        let t = d.topology().unwrap();
        (t.entities.len(), t.interfaces.len(), t.links.len())
    };
    // The audio driver binds first: its entity, no link to video yet.
    let mut reg = Reg::default();
    let audio =
        crate::device::build_function(&topo, Some("snd-usb-audio"), None, 0x060100, &dev, &mut reg)
            .unwrap();
    assert!(reg.order.is_empty(), "no V4L2 node for audio");
    assert_eq!(counts(&dev), (1, 0, 0));
    // The video driver: its 3 entities, its node, its 2 links and the one to the audio entity.
    let video = crate::device::build_function(
        &topo,
        Some("au0828"),
        Some(&audio),
        0x060100,
        &dev,
        &mut reg,
    )
    .unwrap();
    assert_eq!(reg.order, ["video au0828a video"]);
    assert_eq!(counts(&dev), (4, 1, 4));
    // Video unbinds: back to the audio entity alone; the objects are gone from the audit too.
    crate::device::unbuild(&video, &dev);
    assert_eq!(counts(&dev), (1, 0, 0));
    use media_graph::Kind;
    assert_eq!(
        (
            audit.live(Kind::Entity),
            audit.live(Kind::Pad),
            audit.live(Kind::Link),
            audit.live(Kind::Interface)
        ),
        (1, 1, 0, 0)
    );
    // Rebinding creates the cross link again; the audio sink then refuses a second enabled
    // link (the record is the media device's, whichever driver made the link).
    let video = crate::device::build_function(
        &topo,
        Some("au0828"),
        Some(&audio),
        0x060100,
        &dev,
        &mut reg,
    )
    .unwrap();
    assert_eq!(counts(&dev), (4, 1, 4));
    crate::device::unbuild(&audio, &dev);
    assert_eq!(counts(&dev), (3, 1, 3));
    // The video pipeline still streams: the decoder's audio pad just has no link now.
    let v = reg.videos["au0828a video"].clone();
    v.open(1);
    let mem = Arc::new(Mem(Mutex::new(Vec::new())));
    start(&*v, 1, &mem, 2).unwrap();
    assert_eq!(dqbuf(&*v, 1).bytesused, 720 * 480 * 2);
    v.release(1);
    drop(video);
}

#[test]
fn an_output_node_checks_its_link_and_consumes_buffers() {
    let topo = crate::parse(
        r#"
[device]
driver = "m2m"
model = "feeder"
bus_info = "platform:feeder"

[[entity]]
name = "feeder"
block = "output"
formats = ["UYVY"]

[[entity]]
name = "bridge"
block = "bridge"

[[entity]]
name = "sink"
block = "capture"
formats = ["UYVY"]

[[link]]
source = "feeder:0"
sink = "bridge:0"
flags = ["enabled"]

[[link]]
source = "bridge:1"
sink = "sink:0"
flags = ["enabled", "immutable"]
"#,
    )
    .unwrap();
    let dev = MediaDevice::new(device_info(&topo, 0x060100), Audit::new());
    let mut reg = Reg::default();
    let _rt = build(&topo, 0x060100, &dev, &mut reg).unwrap();
    let out = reg.videos["feeder"].clone();
    assert_eq!(
        out.querycap().unwrap().device_caps & V4L2_CAP_VIDEO_OUTPUT,
        V4L2_CAP_VIDEO_OUTPUT
    );
    assert_eq!(out.g_input(1), Err(Errno::ENOTTY));
    assert_eq!(out.g_output(1), Ok(0));
    out.open(1);
    let mut f = v4l2_format::zeroed();
    f.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
    let size = out.g_fmt(1, f).unwrap().pix().sizeimage;
    let mem = Arc::new(Mem(Mutex::new(vec![7; size as usize * 2])));
    let mut r = v4l2_requestbuffers::zeroed();
    r.count = 2;
    r.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
    r.memory = V4L2_MEMORY_USERPTR;
    out.reqbufs(1, r).unwrap();
    for i in 0..2u32 {
        let mut b = v4l2_buffer::zeroed();
        b.index = i;
        b.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        b.memory = V4L2_MEMORY_USERPTR;
        b.m = BASE + u64::from(i * size);
        b.length = size;
        b.bytesused = size;
        out.qbuf(1, b, Some(mem.clone() as Arc<dyn UserMemory>))
            .unwrap();
    }
    // The bridge's sink starts with another code: the link does not validate.
    assert_eq!(
        out.streamon(1, V4L2_BUF_TYPE_VIDEO_OUTPUT),
        Err(Errno::EPIPE)
    );
    set_active(
        &*reg.subdevs["bridge"],
        0,
        MEDIA_BUS_FMT_UYVY8_2X8,
        640,
        480,
    );
    out.streamon(1, V4L2_BUF_TYPE_VIDEO_OUTPUT).unwrap();
    let mut b = v4l2_buffer::zeroed();
    b.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
    b.memory = V4L2_MEMORY_USERPTR;
    let deadline = Instant::now() + Duration::from_secs(5);
    let done = loop {
        match out.dqbuf(1, b, true).result {
            Ok(b) => break b,
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("DQBUF: {e}"),
        }
    };
    assert_eq!((done.index, done.bytesused), (0, size));
    out.release(1);
}

#[test]
fn frame_sizes_intervals_and_parm_as_uvcvideo_and_vimc_give_them() {
    let yuyv = u32::from_le_bytes(*b"YUYV");
    let s = serve("uvc-like");
    let v = s.reg.videos["mcemu USB Camera"].clone();
    let mut f = v4l2_frmsizeenum::zeroed();
    f.pixel_format = yuyv;
    let sizes: Vec<(u32, u32)> = (0..3)
        .map_while(|i| {
            f.index = i;
            v.enum_framesizes(1, f).ok()
        })
        .map(|r| {
            assert_eq!(r.type_, V4L2_FRMSIZE_TYPE_DISCRETE);
            let d = r.frmsize_discrete();
            (d.width, d.height)
        })
        .collect();
    assert_eq!(sizes, [(640, 480), (1280, 720)]);
    f.index = 0;
    f.pixel_format = u32::from_le_bytes(*b"RGB3");
    assert_eq!(v.enum_framesizes(1, f).map(|_| ()), Err(Errno::EINVAL));
    let mut i = v4l2_frmivalenum::zeroed();
    (i.pixel_format, i.width, i.height) = (yuyv, 1280, 720);
    let r = v.enum_frameintervals(1, i).unwrap();
    let d = r.frmival_discrete();
    assert_eq!(
        (r.type_, d.numerator, d.denominator),
        (V4L2_FRMIVAL_TYPE_DISCRETE, 1, 30)
    );
    i.width = 1200;
    assert_eq!(v.enum_frameintervals(1, i).map(|_| ()), Err(Errno::EINVAL));
    let mut p = v4l2_streamparm::zeroed();
    p.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    let c = v.g_parm(1, p).unwrap().capture();
    assert_eq!(
        (
            c.capability,
            c.timeperframe.numerator,
            c.timeperframe.denominator
        ),
        (V4L2_CAP_TIMEPERFRAME, 1, 30)
    );
    // vimc: a continuous range of sizes, no intervals, no parm.
    let s = serve("vimc-like");
    let v = s.reg.videos["Raw Capture 0"].clone();
    let mut f = v4l2_frmsizeenum::zeroed();
    f.pixel_format = u32::from_le_bytes(*b"RGB3");
    let r = v.enum_framesizes(1, f).unwrap();
    let w = r.frmsize_stepwise();
    assert_eq!(
        (
            r.type_,
            w.min_width,
            w.max_width,
            w.step_width,
            w.max_height
        ),
        (V4L2_FRMSIZE_TYPE_CONTINUOUS, 16, 4096, 1, 2160)
    );
    f.index = 1;
    assert_eq!(v.enum_framesizes(1, f).map(|_| ()), Err(Errno::EINVAL));
    assert_eq!(v.enum_frameintervals(1, i).map(|_| ()), Err(Errno::ENOTTY));
    assert_eq!(v.g_parm(1, p).map(|_| ()), Err(Errno::ENOTTY));
}

#[test]
fn a_sink_of_one_driver_refuses_a_second_link_made_by_another() {
    let text = format!(
        "{}\n{}",
        crate::PRESETS
            .iter()
            .find(|p| p.0 == "usb-av-like")
            .unwrap()
            .1,
        r#"
[[entity]]
name = "line in"
block = "sensor"
node = false
formats = ["UYVY8_2X8"]

[[link]]
source = "line in:0"
sink = "USB Audio:0"
"#
    );
    let topo = crate::parse(&text).unwrap();
    let dev = MediaDevice::new(device_info(&topo, 0x060100), Audit::new());
    let mut reg = Reg::default();
    let audio =
        crate::device::build_function(&topo, Some("snd-usb-audio"), None, 0x060100, &dev, &mut reg)
            .unwrap();
    // au0828 binds second and makes both links into the audio driver's sink.
    let _video = crate::device::build_function(
        &topo,
        Some("au0828"),
        Some(&audio),
        0x060100,
        &dev,
        &mut reg,
    )
    .unwrap();
    let id = |name: &str| dev.graph().entity_by_name(name).unwrap().id;
    let mut l = media_link_desc::zeroed();
    (l.source.entity, l.sink.entity) = (id("line in"), id("USB Audio"));
    l.flags = MEDIA_LNK_FL_ENABLED;
    assert_eq!(dev.setup_link(l).map(|_| ()), Err(Errno::EBUSY));
    // Once the decoder's link is off, the line input may take the sink.
    let mut d = media_link_desc::zeroed();
    (d.source.entity, d.source.index, d.sink.entity) = (id("au8522 decoder"), 2, id("USB Audio"));
    dev.setup_link(d).unwrap();
    assert!(dev.setup_link(l).is_ok());
}
