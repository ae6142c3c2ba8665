use super::*;

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const DEV: &str = "[device]\ndriver = \"d\"\nmodel = \"m\"\nbus_info = \"platform:x\"\n";

fn with(rest: &str) -> String {
    format!("{DEV}{rest}")
}

#[test]
fn presets_parse_and_match_their_drivers() {
    let v = load("vimc-like").unwrap();
    assert_eq!(v.device.model, "VIMC MDEV");
    assert_eq!(v.entities.len(), 9);
    assert_eq!(v.links.len(), 8);
    assert!(v.entities.iter().all(|e| e.node));
    let scaler = v.entities.iter().position(|e| e.name == "Scaler").unwrap();
    let into_scaler: Vec<_> = v.links.iter().filter(|l| l.sink.0 == scaler).collect();
    assert_eq!(into_scaler.len(), 3);
    assert_eq!(into_scaler.iter().filter(|l| l.enabled).count(), 1);

    let u = load("uvc-like").unwrap();
    assert_eq!(u.device.driver, "uvcvideo");
    let nodes: Vec<_> = u.entities.iter().filter(|e| e.node).collect();
    assert_eq!(nodes.len(), 1, "one video node, no sub-device nodes");
    assert_eq!(nodes[0].block, Block::Capture);
    assert_eq!(
        u.entities[2].function,
        ioctl_abi::media::MEDIA_ENT_F_PROC_VIDEO_PIXEL_FORMATTER
    );
    assert_eq!(
        u.entities[0].sizes,
        Sizes::Discrete(vec![(640, 480), (1280, 720)])
    );
}

#[test]
fn defaults_per_block() {
    let t = parse(&with(
        "[[entity]]\nname = \"s\"\nblock = \"sensor\"\nformats = [\"sbggr8-1x8\"]\n\
         [[entity]]\nname = \"d\"\nblock = \"debayer\"\n",
    ))
    .unwrap();
    assert_eq!(t.entities[0].pads, vec![PadDir::Source]);
    assert_eq!(
        t.entities[0].formats,
        vec![ioctl_abi::subdev::MEDIA_BUS_FMT_SBGGR8_1X8]
    );
    assert_eq!(t.entities[0].frame_rate, 30);
    assert_eq!(
        t.entities[0].sizes,
        Sizes::Range {
            min: MIN_SIZE,
            max: MAX_SIZE
        }
    );
    assert_eq!(t.entities[1].pads, vec![PadDir::Sink, PadDir::Source]);
    assert_eq!(t.entities[1].formats.len(), 4);
}

#[test]
fn errors_name_what_is_wrong() {
    assert!(err("[device\n").contains("line 1"), "{}", err("[device\n"));
    assert!(err(&with("[[entity]]\nname = \"a\"\nblock = \"scalar\"\n")).contains("scalar"));
    assert!(err(&with(
        "[[entity]]\nname = \"a\"\nblock = \"sensor\"\nformat = [\"X\"]\n"
    ))
    .contains("unknown field `format`"));
    assert_eq!(err(DEV), "the topology: has no [[entity]]");
    let sensor = "[[entity]]\nname = \"s\"\nblock = \"sensor\"\nformats = [\"SBGGR8_1X8\"]\n";
    let cap = "[[entity]]\nname = \"c\"\nblock = \"capture\"\nformats = [\"BA81\"]\n";
    assert_eq!(
        err(&with("[[entity]]\nname = \"s\"\nblock = \"sensor\"\n")),
        "entity \"s\": a sensor needs `formats` (at least one)"
    );
    assert!(err(&with(&format!("{sensor}{sensor}"))).contains("the name is used twice"));
    assert!(err(&with(
        "[[entity]]\nname = \"s\"\nblock = \"sensor\"\nformats = [\"NOPE\"]\n"
    ))
    .contains("unknown media bus code \"NOPE\""));
    assert!(err(&with(
        "[[entity]]\nname = \"c\"\nblock = \"capture\"\nformats = [\"XXXX\"]\n"
    ))
    .contains("unknown pixel format \"XXXX\""));
    assert!(err(&with(&format!("{cap}node = false\n"))).contains("node = false makes no sense"));
    assert!(err(&with("[[entity]]\nname = \"c\"\nblock = \"capture\"\npads = [\"source\"]\nformats = [\"BA81\"]\n"))
        .contains("exactly one sink pad"));
    assert!(err(&with(&format!("{sensor}sizes = [\"8x8\"]\n"))).contains("size \"8x8\""));
    assert!(
        err(&with(&format!("{sensor}sizes = [\"640x480-320x240\"]\n"))).contains("runs backwards")
    );
    assert!(err(&with(&format!("{sensor}frame_rate = 0\n"))).contains("frame_rate 0"));
    assert!(err(&with(&format!(
        "[[entity]]\nname = \"{}\"\nblock = \"sensor\"\nformats = [\"SBGGR8_1X8\"]\n",
        "x".repeat(32)
    )))
    .contains("at most 31 bytes"));
    let link = |src: &str, sink: &str, flags: &str| {
        err(&with(&format!(
            "{sensor}{cap}[[link]]\nsource = \"{src}\"\nsink = \"{sink}\"\nflags = [{flags}]\n"
        )))
    };
    assert!(link("s:0", "nope:0", "").contains("no entity named \"nope\""));
    assert!(link("s:1", "c:0", "").contains("\"s\" has 1 pads; there is no pad 1"));
    assert!(link("c:0", "s:0", "").contains("a link's source must be a source pad"));
    assert!(link("s", "c:0", "").contains("not \"ENTITY:PAD\""));
    assert!(link("s:0", "c:0", "\"immutable\"").contains("must also be enabled"));
    assert!(link("s:0", "c:0", "\"sideways\"").contains("sideways"));
    let twice = with(&format!(
        "{sensor}[[entity]]\nname = \"t\"\nblock = \"sensor\"\nformats = [\"SBGGR8_1X8\"]\n{cap}\
         [[link]]\nsource = \"s:0\"\nsink = \"c:0\"\nflags = [\"enabled\"]\n\
         [[link]]\nsource = \"t:0\"\nsink = \"c:0\"\nflags = [\"enabled\"]\n"
    ));
    assert!(err(&twice).contains("sink pad 0 has more than one enabled link"));
}

#[test]
fn names_with_colons_and_files_and_presets() {
    let t = parse(&with(
        "[[entity]]\nname = \"a:b\"\nblock = \"sensor\"\nformats = [\"SBGGR8_1X8\"]\n\
         [[entity]]\nname = \"c\"\nblock = \"capture\"\nformats = [\"BA81\"]\n\
         [[link]]\nsource = \"a:b:0\"\nsink = \"c:0\"\nflags = [\"enabled\"]\n",
    ))
    .unwrap();
    assert_eq!(t.links[0].source, (0, 0));
    assert!(matches!(load("no-such-preset"), Err(Error::NotFound(_))));
    assert!(load("no-such-preset")
        .unwrap_err()
        .to_string()
        .contains("presets: uvc-like, vimc-like"));
    let path = std::env::temp_dir().join(format!("mcemu-topology-{}.toml", std::process::id()));
    std::fs::write(&path, "[device]\n").unwrap();
    let e = load(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(e.starts_with(path.to_str().unwrap()), "{e}");
    std::fs::remove_file(path).unwrap();
}
