//! Fuzz harness for every node's ioctl handling (fuzz/fuzz_targets/node_ioctls.rs): a whole
//! instance served in-process ([`InProcInstance`]) gets a sequence of ioctls, polls, closes
//! and an unplug decoded from the input, with client memory, sizes and pointers from the
//! input. Every call must end with a result or an errno (a panic or a hang is the fuzzer's
//! find), and once every file is closed and the instance unplugged, no object may be left.
//!
//! Input, byte by byte (missing bytes read as zero): the board or topology, lifetime model and
//! errno profile, then operations. An ioctl is:
//! node, file slot, command selector (an index into the known numbers, the same number with
//! its size one byte off, or a raw number), where the argument points, and up to two client
//! memory regions (at [`REGION_A`] and [`REGION_B`]) with their length and bytes; pointers
//! inside the argument reach them when the bytes say so.

use cuse::inproc::InProcFile;
use cuse::Errno;
use omap3isp::Board;

use crate::inproc::InProcInstance;
use crate::instance::{ErrnoProfile, Lifetime};
use crate::model::Model;

/// Client memory the input fills; nothing else is mapped.
pub const REGION_A: u64 = 0x10000;
pub const REGION_B: u64 = 0x40000;

/// Reads the input; past its end every read is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b.to_vec()
    }
}

/// Every ioctl number the nodes know.
pub fn commands() -> Vec<u32> {
    let mut v: Vec<u32> = ioctl_abi::all_ioctls().map(|c| c.1).collect();
    v.extend([
        ioctl_abi::mcemu::MCEMU_IOC_MMAP,
        ioctl_abi::mcemu::MCEMU_IOC_SETFL,
    ]);
    v
}

const MAX_OPS: usize = 48;

/// Runs one input. Panics on a call that neither succeeds nor fails with an errno, and on
/// objects left alive after the last close.
pub fn run(data: &[u8]) {
    execute(data);
}

/// [`run`], returning each ioctl's node, command and result.
pub fn execute(data: &[u8]) -> Vec<(String, u32, Result<i32, Errno>)> {
    let mut trace = Vec::new();
    let mut input = Input(data);
    // Bit 0: the board; bits 1-2: the lifetime model; bits 3-4: the errno profile; bits 5-6:
    // 1 and 2 serve the uvc-like and vimc-like topologies instead of the board.
    let setup = input.u8();
    let model = match setup >> 5 & 3 {
        1 => Model::topology("uvc-like").expect("the preset"),
        2 => Model::topology("vimc-like").expect("the preset"),
        _ => Model::Board(Board::ALL[usize::from(setup & 1)]),
    };
    let lifetime = [Lifetime::Refcount, Lifetime::Devm, Lifetime::RegisteredBit]
        [usize::from(setup >> 1 & 3) % 3];
    let profile = [
        ErrnoProfile::Mainline,
        ErrnoProfile::Enodev,
        ErrnoProfile::Strict,
    ][usize::from(setup >> 3 & 3) % 3];
    let Ok(mut inst) = InProcInstance::start_model(&model, lifetime, profile) else {
        panic!("the instance did not start");
    };
    let cmds = commands();
    let n = inst.nodes.len();
    // Up to four files per node.
    let mut files: Vec<[Option<InProcFile>; 4]> = (0..n).map(|_| Default::default()).collect();
    for _ in 0..MAX_OPS {
        if input.0.is_empty() {
            break;
        }
        let op = input.u8();
        let node = input.u8() as usize % n;
        let slot = input.u8() as usize % 4;
        let k = &inst.nodes[node].kernel;
        if files[node][slot].is_none() {
            // Non-blocking, so that no call waits for an event or a frame that never comes.
            match k.open(libc::O_RDWR | libc::O_NONBLOCK) {
                Ok(f) => files[node][slot] = Some(f),
                Err(e) => {
                    check(Err(e));
                    continue;
                }
            }
        }
        let Some(f) = files[node][slot].as_ref() else {
            continue;
        };
        match op % 16 {
            0..=11 => {
                let sel = input.u8();
                let mut cmd = match sel {
                    0..=223 => cmds[input.u8() as usize % cmds.len()],
                    224..=239 => {
                        let c = cmds[input.u8() as usize % cmds.len()];
                        let size =
                            ioctl_abi::ioc_size(c) as i64 + if sel & 1 == 0 { 1 } else { -1 };
                        ioctl_abi::ioc(
                            ioctl_abi::ioc_dir(c),
                            ioctl_abi::ioc_type(c),
                            ioctl_abi::ioc_nr(c),
                            size.clamp(0, 0x3fff) as usize,
                        )
                    }
                    _ => input.u32(),
                };
                let arg = match input.u8() % 8 {
                    0 => 0,
                    1 => 0x1000,
                    2 => REGION_A + u64::from(input.u16() % 4096),
                    3 => REGION_B,
                    4 => 0xffff_8880_0000_0000,
                    5 => 0x8000_0000_0000_0000,
                    _ => REGION_A,
                };
                let len = input_len(&mut input, 8192);
                let mut a = input.bytes(len);
                let len = input_len(&mut input, 4096);
                let b = input.bytes(len);
                if cmd == ioctl_abi::mcemu::MCEMU_IOC_SETFL {
                    // The handle stays non-blocking (see above).
                    a.resize(a.len().max(4), 0);
                    let fl = u32::from_le_bytes([a[0], a[1], a[2], a[3]]) | libc::O_NONBLOCK as u32;
                    a[..4].copy_from_slice(&fl.to_le_bytes());
                    cmd = ioctl_abi::mcemu::MCEMU_IOC_SETFL;
                }
                k.memory().map(REGION_A, a);
                k.memory().map(REGION_B, b);
                let r = f.ioctl(cmd, arg);
                check(r);
                trace.push((inst.nodes[node].name.clone(), cmd, r));
            }
            12 => {
                f.poll(u32::from(input.u16()));
            }
            13 => {
                let len = input_len(&mut input, 1 << 20);
                let _ = f.read(len);
            }
            14 => files[node][slot] = None,
            _ => inst.unplug(),
        }
    }
    drop(files);
    inst.unplug();
    let audit = inst.audit.clone();
    drop(inst);
    // Pipeline threads let go of their last references a moment after the close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let live: i64 = audit.snapshot().iter().map(|(_, n)| n).sum();
        if live == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "objects left after the last close and unplug: {:?}",
            audit.snapshot()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    trace
}

fn input_len(input: &mut Input<'_>, max: usize) -> usize {
    input.u16() as usize % (max + 1)
}

fn check(r: Result<i32, Errno>) {
    if let Err(e) = r {
        let n = e as i32;
        assert!(n > 0 && n < 4096, "not an errno: {n}");
    }
}

/// Seed inputs: the calls a well-behaved client makes on each kind of node (a pipeline
/// linked and formatted, a capture queue set up and started, controls and events on
/// sub-devices, the topology read back), so the fuzzer starts from arguments the handlers
/// accept.
pub fn seeds() -> Vec<Vec<u8>> {
    use ioctl_abi::media::*;
    use ioctl_abi::subdev::*;
    use ioctl_abi::videodev2::*;
    use zerocopy::IntoBytes;
    let cmds = commands();
    let idx = |c: u32| cmds.iter().position(|x| *x == c).unwrap() as u8;
    // Node indices and entity ids by entity name, as `run` numbers them.
    let inst = InProcInstance::start(Board::BeagleboardXm).expect("an instance");
    let node = |entity: &str| {
        inst.nodes
            .iter()
            .position(|n| n.entity == entity)
            .unwrap_or_else(|| panic!("no node for {entity}")) as u8
    };
    let media = inst
        .nodes
        .iter()
        .position(|n| n.kind == crate::instance::NodeKind::Media)
        .unwrap() as u8;
    // One ioctl on node `n` with region A holding `a` and region B holding `b`.
    let ioctl = |n: u8, cmd: u32, a: &[u8], b: &[u8]| {
        assert!(a.len() <= 8192 && b.len() <= 4096);
        let mut v = vec![0, n, 0, 0, idx(cmd), 6];
        v.extend_from_slice(&(a.len() as u16).to_le_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(&(b.len() as u16).to_le_bytes());
        v.extend_from_slice(b);
        v
    };
    let zero = |n: usize| vec![0u8; n];
    let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let b_ptr = REGION_B.to_le_bytes();

    let mut topo = media_v2_topology::zeroed();
    topo.num_entities = 16;
    topo.ptr_entities = REGION_B;
    let mut topo_pads = media_v2_topology::zeroed();
    topo_pads.num_pads = 64;
    topo_pads.ptr_pads = REGION_B;
    let mut links = media_links_enum::zeroed();
    links.entity = 1;
    links.pads = REGION_B;
    let mut entities = media_entity_desc::zeroed();
    entities.id = MEDIA_ENT_ID_FLAG_NEXT;
    // sensor:0 -> CCDC:0, CCDC:1 -> CCDC output:0, by entity id (registration order).
    let id = |entity: &str| {
        let mut d = media_entity_desc::zeroed();
        let mut found = 0;
        let k = &inst.nodes[media as usize].kernel;
        let f = k.open(libc::O_RDWR).unwrap();
        d.id = MEDIA_ENT_ID_FLAG_NEXT;
        loop {
            k.memory().map(REGION_A, d.as_bytes().to_vec());
            if f.ioctl(MEDIA_IOC_ENUM_ENTITIES, REGION_A).is_err() {
                break;
            }
            let r = k.memory().region(REGION_A).unwrap();
            d = <media_entity_desc as zerocopy::FromBytes>::read_from_bytes(&r).unwrap();
            if ioctl_abi::cstr(&d.name) == entity {
                found = d.id;
            }
            d.id |= MEDIA_ENT_ID_FLAG_NEXT;
        }
        found
    };
    let link = |src: &str, sp: u16, sink: &str, dp: u16| {
        let mut l = media_link_desc::zeroed();
        l.source.entity = id(src);
        l.source.index = sp;
        l.sink.entity = id(sink);
        l.sink.index = dp;
        l.flags = MEDIA_LNK_FL_ENABLED;
        l.as_bytes().to_vec()
    };
    let sensor = "mt9p031 1-0048";
    let subfmt = |pad: u32, code: u32, w: u32, h: u32| {
        let mut f = v4l2_subdev_format::zeroed();
        f.which = V4L2_SUBDEV_FORMAT_ACTIVE;
        f.pad = pad;
        f.format.code = code;
        (f.format.width, f.format.height) = (w, h);
        f.as_bytes().to_vec()
    };
    // The sensor's size for 640x480 (it bins to what it can), which the CCDC takes as is.
    let (sw, sh) = {
        let k = &inst.nodes[node(sensor) as usize].kernel;
        let f = k.open(libc::O_RDWR).unwrap();
        k.memory()
            .map(REGION_A, subfmt(0, MEDIA_BUS_FMT_SGRBG12_1X12, 640, 480));
        f.ioctl(VIDIOC_SUBDEV_S_FMT, REGION_A)
            .expect("sensor S_FMT");
        let r = k.memory().region(REGION_A).unwrap();
        let got = <v4l2_subdev_format as zerocopy::FromBytes>::read_from_bytes(&r).unwrap();
        (got.format.width, got.format.height)
    };
    let fmt = {
        let mut f = v4l2_format::zeroed();
        f.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        let mut p = v4l2_pix_format::zeroed();
        (p.width, p.height) = (sw, sh);
        p.pixelformat = u32::from_le_bytes(*b"BA12");
        f.set_pix(&p);
        f.as_bytes().to_vec()
    };
    let buf = {
        let mut b = v4l2_buffer::zeroed();
        b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_MMAP;
        b.as_bytes().to_vec()
    };
    let reqbufs = |memory: u32| u32s(&[4, V4L2_BUF_TYPE_VIDEO_CAPTURE, memory, 0, 0]);
    let ctrl = {
        let mut c = v4l2_ext_controls::zeroed();
        c.count = 1;
        c.controls = REGION_B;
        c.as_bytes().to_vec()
    };
    let gain = u32s(&[V4L2_CID_GAIN, 0, 0, 20, 0]);
    let sub = |ty: u32| u32s(&[ty, 0, 0, 0, 0, 0, 0, 0]);
    let ccdc_out = node("OMAP3 ISP CCDC output");
    let ccdc = node("OMAP3 ISP CCDC");
    let sen = node(sensor);
    let mut out = vec![
        [
            vec![0],
            ioctl(media, MEDIA_IOC_DEVICE_INFO, &zero(256), &[]),
        ]
        .concat(),
        [
            vec![0],
            ioctl(media, MEDIA_IOC_G_TOPOLOGY, topo.as_bytes(), &zero(4096)),
        ]
        .concat(),
        [
            vec![1],
            ioctl(
                media,
                MEDIA_IOC_G_TOPOLOGY,
                topo_pads.as_bytes(),
                &zero(4096),
            ),
        ]
        .concat(),
        [
            vec![0],
            ioctl(media, MEDIA_IOC_ENUM_LINKS, links.as_bytes(), &zero(4096)),
        ]
        .concat(),
        [
            vec![0],
            ioctl(media, MEDIA_IOC_ENUM_ENTITIES, entities.as_bytes(), &[]),
        ]
        .concat(),
        // A capture from the CCDC output: link, format, buffers, stream, dequeue, unplug.
        [
            vec![0],
            ioctl(
                media,
                MEDIA_IOC_SETUP_LINK,
                &link(sensor, 0, "OMAP3 ISP CCDC", 0),
                &[],
            ),
            ioctl(
                media,
                MEDIA_IOC_SETUP_LINK,
                &link("OMAP3 ISP CCDC", 1, "OMAP3 ISP CCDC output", 0),
                &[],
            ),
            ioctl(
                sen,
                VIDIOC_SUBDEV_S_FMT,
                &subfmt(0, MEDIA_BUS_FMT_SGRBG12_1X12, sw, sh),
                &[],
            ),
            ioctl(
                ccdc,
                VIDIOC_SUBDEV_S_FMT,
                &subfmt(0, MEDIA_BUS_FMT_SGRBG12_1X12, sw, sh),
                &[],
            ),
            ioctl(ccdc_out, VIDIOC_S_FMT, &fmt, &[]),
            ioctl(ccdc_out, VIDIOC_REQBUFS, &reqbufs(V4L2_MEMORY_MMAP), &[]),
            ioctl(ccdc_out, VIDIOC_QUERYBUF, &buf, &[]),
            ioctl(
                ccdc_out,
                VIDIOC_STREAMON,
                &V4L2_BUF_TYPE_VIDEO_CAPTURE.to_le_bytes(),
                &[],
            ),
            ioctl(ccdc_out, VIDIOC_DQBUF, &buf, &[]),
            vec![15, media, 0],
            ioctl(ccdc_out, VIDIOC_DQBUF, &buf, &[]),
        ]
        .concat(),
        // Controls and events on sub-devices.
        [
            vec![0],
            ioctl(sen, VIDIOC_S_EXT_CTRLS, &ctrl, &gain),
            ioctl(sen, VIDIOC_G_EXT_CTRLS, &ctrl, &gain),
            ioctl(
                ccdc,
                VIDIOC_SUBSCRIBE_EVENT,
                &sub(V4L2_EVENT_FRAME_SYNC),
                &[],
            ),
            ioctl(ccdc, VIDIOC_DQEVENT, &zero(136), &[]),
            vec![12, ccdc, 0, 1, 0],
        ]
        .concat(),
    ];
    let _ = b_ptr;
    // The capture seed with the unplug in the middle under the legacy lifetime models (devm,
    // registered-bit), where calls after the unplug reach freed objects (counted, not crashed).
    for setup in [2u8, 4 | 8] {
        let mut s = out[5].clone();
        s[0] = setup;
        out.push(s);
    }
    for (i, n) in inst.nodes.iter().enumerate() {
        let cmd = n.kind.identifying_ioctl();
        out.push([vec![0], ioctl(i as u8, cmd, &zero(256), &[])].concat());
    }
    // The topology presets (setup bits 5-6): nodes in registration order, the media node last.
    let pattern = u32s(&[V4L2_CID_TEST_PATTERN, 0, 0, 1, 0]);
    let stream = |n: u8| {
        [
            ioctl(n, VIDIOC_REQBUFS, &reqbufs(V4L2_MEMORY_MMAP), &[]),
            ioctl(n, VIDIOC_QUERYBUF, &buf, &[]),
            ioctl(
                n,
                VIDIOC_STREAMON,
                &V4L2_BUF_TYPE_VIDEO_CAPTURE.to_le_bytes(),
                &[],
            ),
            ioctl(n, VIDIOC_DQBUF, &buf, &[]),
        ]
        .concat()
    };
    out.push(
        [
            vec![1 << 5],
            ioctl(1, MEDIA_IOC_G_TOPOLOGY, topo.as_bytes(), &zero(4096)),
            stream(0),
            vec![15, 1, 0],
            ioctl(0, VIDIOC_DQBUF, &buf, &[]),
        ]
        .concat(),
    );
    out.push(
        [
            vec![2 << 5],
            ioctl(9, MEDIA_IOC_G_TOPOLOGY, topo.as_bytes(), &zero(4096)),
            ioctl(3, VIDIOC_S_EXT_CTRLS, &ctrl, &pattern),
            stream(0),
            vec![15, 9, 0],
            ioctl(0, VIDIOC_DQBUF, &buf, &[]),
        ]
        .concat(),
    );
    out
}

/// Fuzz harness for what the daemon parses besides ioctls (fuzz/fuzz_targets/control.rs):
/// control-socket request lines (JSON, their commands and arguments, the breakpoint and
/// fault specifications with ioctl, stage and errno names, checked by the real breakpoint
/// table) and the node owner/group/mode settings. First byte even: the rest is a request
/// line; odd: three NUL-separated strings for `--node-owner`, `--node-group`, `--node-mode`.
/// Every answer must be a response that serializes; nothing may panic.
pub fn control(data: &[u8]) {
    use crate::breakpoints::{Breakpoints, Stage};
    use crate::control::{handle_line, Control, FaultSpec, Status};

    struct Table(Breakpoints);
    impl Control for Table {
        fn status(&self) -> Status {
            Status {
                board: "beagleboard-xm".into(),
                lifetime: "refcount".into(),
                errno_profile: "mainline".into(),
                ready: true,
                instances: vec![],
                breakpoints: self.0.describe(),
                clients: serde_json::Value::Null,
            }
        }
        fn unplug(&self, instance: Option<u32>) -> Result<serde_json::Value, String> {
            Ok(serde_json::json!({ "instance": instance }))
        }
        fn replug(&self, instance: Option<u32>) -> Result<serde_json::Value, String> {
            Ok(serde_json::json!({ "replaced": instance, "instance": 1 }))
        }
        fn audit(&self) -> serde_json::Value {
            serde_json::json!({})
        }
        fn arm(&self, node: &str, ioctl: &str, stage: &str) -> Result<serde_json::Value, String> {
            let stage = Stage::from_name(stage).ok_or("unknown stage")?;
            Ok(serde_json::json!({ "breakpoint": self.0.arm(node, ioctl, stage)? }))
        }
        fn wait_hit(&self, _timeout: f64) -> Result<serde_json::Value, String> {
            // Nothing is parked here: the wait would only sleep.
            Err("no breakpoint hit".into())
        }
        fn cont(&self, id: Option<u32>) -> Result<serde_json::Value, String> {
            Ok(serde_json::json!({ "continued": self.0.cont(id)? }))
        }
        fn inject(&self, spec: &FaultSpec) -> Result<serde_json::Value, String> {
            if spec.is_stream_fault() {
                return Ok(serde_json::json!({ "stream_fault": spec.node }));
            }
            Ok(serde_json::json!({ "fault": self.0.inject(spec)? }))
        }
    }

    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if first % 2 == 0 {
        let table = Table(Breakpoints::default());
        for line in text.lines().take(16) {
            let r = handle_line(&table, line);
            serde_json::to_string(&r).expect("a response serializes");
        }
    } else {
        let mut parts = text.splitn(3, '\0');
        let (owner, group, mode) = (
            parts.next().unwrap_or(""),
            parts.next(),
            parts.next().unwrap_or(""),
        );
        let _ = crate::serve::NodeAccess::resolve(owner, group, mode);
    }
}

/// Seed inputs for [`control`]: each command as `mcemu ctl` sends it, and node settings.
pub fn control_seeds() -> Vec<Vec<u8>> {
    let lines = [
        r#"{"cmd":"status"}"#,
        r#"{"cmd":"unplug","instance":0}"#,
        r#"{"cmd":"replug"}"#,
        r#"{"cmd":"audit"}"#,
        r#"{"cmd":"break","node":"/dev/video2","ioctl":"VIDIOC_QBUF","stage":"entry"}"#,
        r#"{"cmd":"wait_hit","timeout":1.5}"#,
        r#"{"cmd":"continue","id":1}"#,
        r#"{"cmd":"inject","node":"/dev/video2","ioctl":"VIDIOC_DQBUF","errno":"EIO","count":2}"#,
        r#"{"cmd":"inject","node":"/dev/video2","drop_frames":3,"stall_ms":100}"#,
    ];
    let mut out: Vec<Vec<u8>> = lines
        .iter()
        .map(|l| [&[0u8][..], l.as_bytes()].concat())
        .collect();
    out.push([&[0u8][..], lines.join("\n").as_bytes()].concat());
    for (o, g, m) in [
        ("root", "video", "0660"),
        ("0", "44", "640"),
        ("nobody", "", "0600"),
    ] {
        out.push(format!("\u{1}{o}\0{g}\0{m}").into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_run_and_leave_nothing_behind() {
        let all: Vec<_> = seeds().iter().flat_map(|s| execute(s)).collect();
        // The seeds are calls the handlers accept; what fails is what must: DQBUF with no
        // frame done yet (EAGAIN) or after the unplug (ENODEV), DQEVENT with none pending.
        let failed: Vec<_> = all.iter().filter(|t| t.2.is_err()).collect();
        assert!(
            failed
                .iter()
                .all(|t| matches!(t.2, Err(Errno::EAGAIN | Errno::ENODEV | Errno::ENOENT))),
            "{failed:?}"
        );
        assert!(failed.len() <= 11, "{failed:?}");
        assert!(all.len() > 35, "{}", all.len());
    }

    /// The seed corpora checked in under fuzz/corpus/TARGET/, with the harness of each target.
    /// A target's name, its seeds and its harness.
    type Corpus = (&'static str, Vec<Vec<u8>>, fn(&[u8]));

    fn corpora() -> Vec<Corpus> {
        vec![
            ("cuse_requests", cuse::fuzzing::seeds(), cuse::fuzzing::run),
            ("node_ioctls", seeds(), run),
            ("control", control_seeds(), control),
            (
                "topology",
                topology::PRESETS
                    .iter()
                    .map(|p| p.1.as_bytes().to_vec())
                    .collect(),
                topology::fuzz,
            ),
        ]
    }

    fn corpus_dir(target: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target)
    }

    /// Writes the seed corpora: `cargo test -p mcemu --lib write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        for (target, seeds, _) in corpora() {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, s) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
            }
        }
    }

    /// The checked-in seeds are the current ones, and every file of the corpora (the seeds
    /// and any input added from a fuzzing run) runs through its harness.
    #[test]
    fn checked_in_corpora_are_current_and_run() {
        for (target, seeds, harness) in corpora() {
            let dir = corpus_dir(target);
            for (i, s) in seeds.iter().enumerate() {
                let path = dir.join(format!("seed-{i:02}"));
                let have = std::fs::read(&path).unwrap_or_default();
                assert!(
                    have == *s,
                    "{} is missing or stale: cargo test -p mcemu --lib write_fuzz_seeds -- --ignored",
                    path.display()
                );
            }
            let mut n = 0;
            for e in std::fs::read_dir(&dir).unwrap() {
                harness(&std::fs::read(e.unwrap().path()).unwrap());
                n += 1;
            }
            assert!(n >= seeds.len());
        }
    }

    #[test]
    fn control_seeds_are_understood() {
        for s in control_seeds() {
            control(&s);
        }
        // The request seeds parse (a malformed one would make a poor start for the fuzzer).
        use crate::control::Request;
        for s in control_seeds().iter().filter(|s| s[0] == 0) {
            for line in String::from_utf8_lossy(&s[1..]).lines() {
                serde_json::from_str::<Request>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            }
        }
    }

    #[test]
    fn pseudo_random_inputs_run() {
        // A fixed xorshift sequence: a few hundred inputs the fuzzer would start from.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..40 {
            let data: Vec<u8> = (0..512)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            run(&data);
        }
    }
}
