//! Declarative topologies: a media device described in a TOML file — its entities (each a
//! processing block kind with pads, formats and sizes), their links, and which of them get a
//! device node — parsed and checked with errors that name the entity or link at fault.
//!
//! ```toml
//! [device]
//! driver = "vimc"
//! model = "VIMC MDEV"
//! bus_info = "platform:vimc"
//!
//! [[entity]]
//! name = "Sensor A"
//! block = "sensor"
//! formats = ["SBGGR8_1X8"]
//!
//! [[entity]]
//! name = "Raw Capture 0"
//! block = "capture"
//! formats = ["BA81"]
//!
//! [[link]]
//! source = "Sensor A:0"
//! sink = "Raw Capture 0:0"
//! flags = ["enabled", "immutable"]
//! ```
//!
//! Block kinds and their defaults:
//!
//! | block     | pads           | function                  | node            | formats                      |
//! |-----------|----------------|---------------------------|-----------------|------------------------------|
//! | `sensor`  | source         | `CAM_SENSOR`              | sub-device      | media bus codes (required)   |
//! | `bridge`  | sink, source   | `VID_IF_BRIDGE`           | sub-device      | bus codes passed (any)       |
//! | `debayer` | sink, source   | `PROC_VIDEO_PIXEL_ENC_CONV` | sub-device    | Bayer bus codes in, RGB out  |
//! | `scaler`  | sink, source   | `PROC_VIDEO_SCALER`       | sub-device      | bus codes passed             |
//! | `capture` | sink           | `IO_V4L`                  | video (always)  | pixel formats (required)     |
//! | `output`  | source         | `IO_V4L`                  | video (always)  | pixel formats (required)     |
//! | `audio`   | sink           | `AUDIO_CAPTURE`           | none            | none                         |
//!
//! `node = false` leaves a sub-device without a device node (as uvcvideo's units are).
//!
//! `driver = "NAME"` on an entity gives it to another driver than the device's: the media
//! device is then shared, as the Media Device Allocator shares one between au0828 and
//! snd-usb-audio. Each driver binds and unbinds on its own (`mcemu ctl unbind --driver`); the
//! media device stays while any is bound.

use std::collections::HashSet;

use serde::Deserialize;

pub mod blocks;
pub mod capture;
pub mod device;
pub mod formats;
pub mod pattern;

/// What an entity does: decides its default pads, function and node, and (when the graph is
/// served) how frames pass through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Block {
    Sensor,
    Bridge,
    Debayer,
    Scaler,
    Capture,
    Output,
    /// An audio function's entity (snd-usb-audio's PCM capture): no V4L2 node. (Its ALSA
    /// interface is left out: CUSE cannot create ALSA nodes, and an interface whose device
    /// node does not exist fails v4l2-compliance.)
    Audio,
}

impl Block {
    pub fn name(self) -> &'static str {
        match self {
            Block::Sensor => "sensor",
            Block::Bridge => "bridge",
            Block::Debayer => "debayer",
            Block::Scaler => "scaler",
            Block::Capture => "capture",
            Block::Output => "output",
            Block::Audio => "audio",
        }
    }

    /// A video device node's entity (a DMA engine), not a sub-device.
    pub fn is_video(self) -> bool {
        matches!(self, Block::Capture | Block::Output)
    }

    fn default_pads(self) -> Vec<PadDir> {
        use PadDir::*;
        match self {
            Block::Sensor | Block::Output => vec![Source],
            Block::Capture | Block::Audio => vec![Sink],
            Block::Bridge | Block::Debayer | Block::Scaler => vec![Sink, Source],
        }
    }

    fn default_function(self) -> u32 {
        use ioctl_abi::media::*;
        match self {
            Block::Sensor => MEDIA_ENT_F_CAM_SENSOR,
            Block::Bridge => MEDIA_ENT_F_VID_IF_BRIDGE,
            Block::Debayer => MEDIA_ENT_F_PROC_VIDEO_PIXEL_ENC_CONV,
            Block::Scaler => MEDIA_ENT_F_PROC_VIDEO_SCALER,
            Block::Capture | Block::Output => MEDIA_ENT_F_IO_V4L,
            Block::Audio => MEDIA_ENT_F_AUDIO_CAPTURE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PadDir {
    Sink,
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum LinkFlag {
    Enabled,
    Immutable,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    device: RawDevice,
    #[serde(default)]
    entity: Vec<RawEntity>,
    #[serde(default)]
    link: Vec<RawLink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    driver: String,
    model: String,
    #[serde(default)]
    serial: String,
    bus_info: String,
    #[serde(default)]
    hw_revision: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    name: String,
    block: Block,
    function: Option<String>,
    pads: Option<Vec<PadDir>>,
    node: Option<bool>,
    #[serde(default)]
    formats: Vec<String>,
    #[serde(default)]
    sizes: Vec<String>,
    frame_rate: Option<u32>,
    driver: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    source: String,
    sink: String,
    #[serde(default)]
    flags: Vec<LinkFlag>,
}

/// The media device's identity (MEDIA_IOC_DEVICE_INFO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub driver: String,
    pub model: String,
    pub serial: String,
    pub bus_info: String,
    pub hw_revision: u32,
}

/// Frame sizes an entity accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sizes {
    Discrete(Vec<(u32, u32)>),
    /// Any size between the two, in steps of 1.
    Range {
        min: (u32, u32),
        max: (u32, u32),
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub name: String,
    pub block: Block,
    /// `MEDIA_ENT_F_*`.
    pub function: u32,
    pub pads: Vec<PadDir>,
    /// Has a device node: always for video entities; for sub-devices unless `node = false`.
    pub node: bool,
    /// Media bus codes for sub-devices (what their sink, or a sensor's source, accepts); pixel
    /// formats (fourcc) for video entities. Empty: any code (bridges).
    pub formats: Vec<u32>,
    pub sizes: Sizes,
    /// Frames per second (sensors).
    pub frame_rate: u32,
    /// The driver that registers it: the device's `driver` unless the entity names another
    /// (a media device shared by several drivers, as au0828 and snd-usb-audio share one).
    pub driver: String,
}

/// A link between two pads: (entity index in [`Topology::entities`], pad index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub source: (usize, u16),
    pub sink: (usize, u16),
    pub enabled: bool,
    pub immutable: bool,
}

/// A checked topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub device: Device,
    pub entities: Vec<Entity>,
    pub links: Vec<Link>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{0}")]
    Syntax(String),
    #[error("{what}: {msg}")]
    Invalid { what: String, msg: String },
    #[error("{path}: {msg}")]
    Read { path: String, msg: String },
    #[error("no preset or file {0:?} (presets: {presets})", presets = preset_names().join(", "))]
    NotFound(String),
}

fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.into(),
        msg: msg.into(),
    }
}

/// Limits that keep a hostile or mistaken file from building something absurd.
pub const MAX_ENTITIES: usize = 256;
pub const MAX_PADS: usize = 64;
pub const MAX_LINKS: usize = 1024;
/// Frame sizes, as vimc bounds them.
pub const MIN_SIZE: (u32, u32) = (16, 16);
pub const MAX_SIZE: (u32, u32) = (4096, 2160);

pub use formats::{PixelFormat, PIXEL_FORMATS};

const BAYER8: [&str; 4] = ["SBGGR8_1X8", "SGBRG8_1X8", "SGRBG8_1X8", "SRGGB8_1X8"];

/// A `u32` constant of the uapi headers by its name without `prefix` (case and `-`/`_`
/// insensitive): `("MEDIA_BUS_FMT_", "sbggr8-1x8")`.
fn abi_const(prefix: &str, name: &str) -> Option<u32> {
    let want = format!("{prefix}{}", name.to_ascii_uppercase().replace('-', "_"));
    ioctl_abi::all_consts()
        .find(|(n, _)| *n == want)
        .map(|(_, v)| *v)
}

fn bus_code(name: &str) -> Option<u32> {
    abi_const("MEDIA_BUS_FMT_", name)
}

fn fourcc(name: &str) -> Option<u32> {
    formats::by_name(name).map(|p| p.fourcc)
}

fn size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.trim().split_once('x')?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    let ok = |v: u32, lo: u32, hi: u32| (lo..=hi).contains(&v);
    (ok(w, MIN_SIZE.0, MAX_SIZE.0) && ok(h, MIN_SIZE.1, MAX_SIZE.1)).then_some((w, h))
}

fn sizes(what: &str, list: &[String]) -> Result<Sizes, Error> {
    let bad = |s: &str| {
        invalid(
            what,
            format!(
                "size {s:?} is not WIDTHxHEIGHT (or MINxMIN-MAXxMAX) within {}x{}..{}x{}",
                MIN_SIZE.0, MIN_SIZE.1, MAX_SIZE.0, MAX_SIZE.1
            ),
        )
    };
    match list {
        [] => Ok(Sizes::Range {
            min: MIN_SIZE,
            max: MAX_SIZE,
        }),
        [one] if one.contains('-') => {
            let (a, b) = one.split_once('-').ok_or_else(|| bad(one))?;
            let (min, max) = (
                size(a).ok_or_else(|| bad(one))?,
                size(b).ok_or_else(|| bad(one))?,
            );
            if min.0 > max.0 || min.1 > max.1 {
                return Err(invalid(what, format!("size range {one:?} runs backwards")));
            }
            Ok(Sizes::Range { min, max })
        }
        _ => list
            .iter()
            .map(|s| size(s).ok_or_else(|| bad(s)))
            .collect::<Result<Vec<_>, _>>()
            .map(Sizes::Discrete),
    }
}

fn entity(raw: RawEntity) -> Result<Entity, Error> {
    let what = format!("entity {:?}", raw.name);
    if raw.name.trim().is_empty() {
        return Err(invalid("an entity", "has an empty name"));
    }
    if raw.name.len() > 31 || raw.name.chars().any(char::is_control) {
        return Err(invalid(
            &what,
            "names are at most 31 bytes of printable text (media_entity_desc.name)",
        ));
    }
    let block = raw.block;
    let pads = raw.pads.unwrap_or_else(|| block.default_pads());
    let count = |d: PadDir| pads.iter().filter(|p| **p == d).count();
    let (sinks, sources) = (count(PadDir::Sink), count(PadDir::Source));
    let shape_ok = match block {
        Block::Sensor => sinks == 0 && sources >= 1,
        Block::Capture => sinks == 1 && sources == 0,
        Block::Output => sinks == 0 && sources == 1,
        Block::Bridge | Block::Debayer | Block::Scaler => sinks >= 1 && sources >= 1,
        Block::Audio => !pads.is_empty(),
    };
    if !shape_ok || pads.len() > MAX_PADS {
        let want = match block {
            Block::Sensor => "source pads only",
            Block::Capture => "exactly one sink pad",
            Block::Output => "exactly one source pad",
            Block::Audio => "at least one pad",
            _ => "at least one sink and one source pad",
        };
        return Err(invalid(
            &what,
            format!(
                "a {} has {want} (at most {MAX_PADS}); this one has {sinks} sink and {sources} source",
                block.name()
            ),
        ));
    }
    let function = match &raw.function {
        None => block.default_function(),
        Some(f) => abi_const("MEDIA_ENT_F_", f).ok_or_else(|| {
            invalid(
                &what,
                format!("unknown function {f:?} (MEDIA_ENT_F_* without the prefix, e.g. \"CAM_SENSOR\")"),
            )
        })?,
    };
    let node = match (block.is_video(), raw.node) {
        (true, Some(false)) => {
            return Err(invalid(
                &what,
                "a capture or output entity is a video node: node = false makes no sense",
            ))
        }
        (true, _) => true,
        (false, _) if block == Block::Audio => {
            if raw.node == Some(true) {
                return Err(invalid(
                    &what,
                    "an audio entity has no V4L2 node: node = true makes no sense",
                ));
            }
            false
        }
        (false, n) => n.unwrap_or(true),
    };
    let mut formats = Vec::new();
    for f in &raw.formats {
        let code = if block.is_video() {
            fourcc(f).ok_or_else(|| {
                invalid(
                    &what,
                    format!(
                        "unknown pixel format {f:?} (known: {})",
                        PIXEL_FORMATS
                            .iter()
                            .map(|p| p.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?
        } else {
            bus_code(f).ok_or_else(|| {
                invalid(
                    &what,
                    format!("unknown media bus code {f:?} (MEDIA_BUS_FMT_* without the prefix, e.g. \"SBGGR8_1X8\")"),
                )
            })?
        };
        if formats.contains(&code) {
            return Err(invalid(&what, format!("format {f:?} is listed twice")));
        }
        formats.push(code);
    }
    if formats.is_empty() {
        match block {
            Block::Sensor | Block::Capture | Block::Output => {
                return Err(invalid(
                    &what,
                    format!("a {} needs `formats` (at least one)", block.name()),
                ))
            }
            Block::Debayer => formats = BAYER8.iter().filter_map(|c| bus_code(c)).collect(),
            Block::Scaler => formats = bus_code("RGB888_1X24").into_iter().collect(),
            Block::Bridge | Block::Audio => {}
        }
    }
    if block == Block::Debayer {
        if let Some(f) = raw
            .formats
            .iter()
            .find(|f| !BAYER8.contains(&f.to_ascii_uppercase().replace('-', "_").as_str()))
        {
            return Err(invalid(
                &what,
                format!("a debayer takes 8-bit Bayer codes; {f:?} is not one"),
            ));
        }
    }
    if block == Block::Audio && !raw.formats.is_empty() {
        return Err(invalid(&what, "an audio entity takes no `formats`"));
    }
    let driver = raw.driver.clone().unwrap_or_default();
    if driver.len() > 15 || driver.chars().any(char::is_control) {
        return Err(invalid(
            &what,
            "driver: at most 15 bytes of printable text (media_device_info.driver)",
        ));
    }
    let frame_rate = raw.frame_rate.unwrap_or(30);
    if !(1..=240).contains(&frame_rate) {
        return Err(invalid(
            &what,
            format!("frame_rate {frame_rate} is not within 1..=240"),
        ));
    }
    Ok(Entity {
        sizes: sizes(&what, &raw.sizes)?,
        name: raw.name,
        block,
        function,
        pads,
        node,
        formats,
        frame_rate,
        driver,
    })
}

/// "Entity name:pad" (the pad after the last colon, so names may hold colons).
fn endpoint(entities: &[Entity], what: &str, s: &str, dir: PadDir) -> Result<(usize, u16), Error> {
    let (name, pad) = s
        .rsplit_once(':')
        .ok_or_else(|| invalid(what, format!("{s:?} is not \"ENTITY:PAD\"")))?;
    let e = entities
        .iter()
        .position(|e| e.name == name)
        .ok_or_else(|| invalid(what, format!("no entity named {name:?}")))?;
    let pad: u16 = pad
        .trim()
        .parse()
        .map_err(|_| invalid(what, format!("pad {pad:?} of {name:?} is not a number")))?;
    match entities[e].pads.get(usize::from(pad)) {
        None => Err(invalid(
            what,
            format!(
                "{name:?} has {} pads; there is no pad {pad}",
                entities[e].pads.len()
            ),
        )),
        Some(d) if *d != dir => Err(invalid(
            what,
            format!(
                "pad {pad} of {name:?} is a {} pad; a link's {} must be a {} pad",
                if *d == PadDir::Sink { "sink" } else { "source" },
                if dir == PadDir::Sink {
                    "sink"
                } else {
                    "source"
                },
                if dir == PadDir::Sink {
                    "sink"
                } else {
                    "source"
                },
            ),
        )),
        Some(_) => Ok((e, pad)),
    }
}

/// Parses and checks a topology.
pub fn parse(text: &str) -> Result<Topology, Error> {
    let raw: RawFile = toml::from_str(text).map_err(|e| Error::Syntax(e.to_string()))?;
    let d = raw.device;
    for (field, v, max) in [
        ("driver", &d.driver, 15),
        ("model", &d.model, 31),
        ("serial", &d.serial, 39),
        ("bus_info", &d.bus_info, 31),
    ] {
        if v.len() > max || v.chars().any(char::is_control) {
            return Err(invalid(
                format!("device.{field}"),
                format!("at most {max} bytes of printable text (media_device_info)"),
            ));
        }
    }
    if d.driver.is_empty() || d.model.is_empty() {
        return Err(invalid("device", "driver and model must not be empty"));
    }
    if raw.entity.is_empty() {
        return Err(invalid("the topology", "has no [[entity]]"));
    }
    if raw.entity.len() > MAX_ENTITIES || raw.link.len() > MAX_LINKS {
        return Err(invalid(
            "the topology",
            format!("at most {MAX_ENTITIES} entities and {MAX_LINKS} links"),
        ));
    }
    let mut entities = Vec::new();
    let mut names = HashSet::new();
    for raw in raw.entity {
        let mut e = entity(raw)?;
        if e.driver.is_empty() {
            e.driver = d.driver.clone();
        }
        if !names.insert(e.name.clone()) {
            return Err(invalid(
                format!("entity {:?}", e.name),
                "the name is used twice",
            ));
        }
        entities.push(e);
    }
    let mut links: Vec<Link> = Vec::new();
    for (i, l) in raw.link.iter().enumerate() {
        let what = format!("link {} ({} -> {})", i + 1, l.source, l.sink);
        let source = endpoint(&entities, &what, &l.source, PadDir::Source)?;
        let sink = endpoint(&entities, &what, &l.sink, PadDir::Sink)?;
        if source.0 == sink.0 {
            return Err(invalid(&what, "links an entity to itself"));
        }
        let (enabled, immutable) = (
            l.flags.contains(&LinkFlag::Enabled),
            l.flags.contains(&LinkFlag::Immutable),
        );
        if immutable && !enabled {
            return Err(invalid(&what, "an immutable link must also be enabled"));
        }
        if links.iter().any(|o| o.source == source && o.sink == sink) {
            return Err(invalid(&what, "the same pads are linked twice"));
        }
        links.push(Link {
            source,
            sink,
            enabled,
            immutable,
        });
    }
    // A sink pad takes one enabled link at a time (the kernel's link_setup refuses a second).
    for (e, ent) in entities.iter().enumerate() {
        for (p, d) in ent.pads.iter().enumerate() {
            let into = |l: &&Link| l.sink == (e, p as u16) && l.enabled;
            if *d == PadDir::Sink && links.iter().filter(into).count() > 1 {
                return Err(invalid(
                    format!("entity {:?}", ent.name),
                    format!("sink pad {p} has more than one enabled link"),
                ));
            }
        }
    }
    Ok(Topology {
        device: Device {
            driver: d.driver,
            model: d.model,
            serial: d.serial,
            bus_info: d.bus_info,
            hw_revision: d.hw_revision,
        },
        entities,
        links,
    })
}

impl Topology {
    /// The drivers that register its entities, in the order they first appear (the device's
    /// own first). More than one: a shared media device, one function per driver.
    pub fn drivers(&self) -> Vec<String> {
        let mut out = vec![self.device.driver.clone()];
        for e in &self.entities {
            if !out.contains(&e.driver) {
                out.push(e.driver.clone());
            }
        }
        if !self.entities.iter().any(|e| e.driver == self.device.driver) {
            out.remove(0);
        }
        out
    }
}

/// The presets shipped with mcemu: (name, TOML text).
pub const PRESETS: &[(&str, &str)] = &[
    ("uvc-like", include_str!("../presets/uvc-like.toml")),
    ("vimc-like", include_str!("../presets/vimc-like.toml")),
    ("usb-av-like", include_str!("../presets/usb-av-like.toml")),
];

pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.0).collect()
}

/// A preset by name, or else a file by path; errors name the file.
pub fn load(name_or_path: &str) -> Result<Topology, Error> {
    if let Some((_, text)) = PRESETS.iter().find(|p| p.0 == name_or_path) {
        return parse(text).map_err(|e| Error::Read {
            path: format!("preset {name_or_path}"),
            msg: e.to_string(),
        });
    }
    let text = match std::fs::read_to_string(name_or_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound(name_or_path.to_string()))
        }
        Err(e) => {
            return Err(Error::Read {
                path: name_or_path.to_string(),
                msg: e.to_string(),
            })
        }
    };
    parse(&text).map_err(|e| Error::Read {
        path: name_or_path.to_string(),
        msg: e.to_string(),
    })
}

/// Fuzz harness (fuzz/fuzz_targets/topology.rs): any bytes as a topology file. Parsing must
/// not panic, and what it accepts must hold together: every link between existing pads, from
/// a source pad to a sink pad, immutable links enabled, names unique.
pub fn fuzz(data: &[u8]) {
    let Ok(t) = parse(&String::from_utf8_lossy(data)) else {
        return;
    };
    assert!(!t.entities.is_empty() && t.entities.len() <= MAX_ENTITIES);
    let names: HashSet<&str> = t.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.len(), t.entities.len());
    for l in &t.links {
        let dir = |(e, p): (usize, u16)| t.entities[e].pads[usize::from(p)];
        assert_eq!(dir(l.source), PadDir::Source);
        assert_eq!(dir(l.sink), PadDir::Sink);
        assert!(l.enabled || !l.immutable);
    }
}

#[cfg(test)]
mod serve_tests;
#[cfg(test)]
mod tests;
