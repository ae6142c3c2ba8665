//! Compiles a C program against the system's uapi headers (Debian `linux-libc-dev`) that prints
//! the size of every struct, the offset of every field and the value of every ioctl number this
//! crate declares, and compares them with the Rust side. Any drift fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

fn c_field(name: &str) -> Option<&str> {
    if name.starts_with("_pad") {
        return None;
    }
    Some(name.strip_suffix('_').unwrap_or(name))
}

fn c_struct(name: &str) -> String {
    format!("struct {name}")
}

#[test]
fn rust_layouts_and_ioctl_numbers_match_the_c_headers() {
    let mut src = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <time.h>\n#include <sys/time.h>\n\
         #include <linux/media.h>\n#include <linux/videodev2.h>\n#include <linux/v4l2-subdev.h>\n\
         #include <linux/omap3isp.h>\n#include <linux/media-bus-format.h>\nint main(void) {\n",
    );
    let mut expected = BTreeMap::new();
    let mut fields = 0;
    for l in ioctl_abi::all_layouts() {
        let s = c_struct(l.name);
        writeln!(src, "printf(\"size {} %zu\\n\", sizeof({s}));", l.name).unwrap();
        expected.insert(format!("size {}", l.name), l.size as u64);
        for (f, off) in l.fields {
            let Some(cf) = c_field(f) else { continue };
            writeln!(
                src,
                "printf(\"offset {}.{cf} %zu\\n\", offsetof({s}, {cf}));",
                l.name
            )
            .unwrap();
            expected.insert(format!("offset {}.{cf}", l.name), *off as u64);
            fields += 1;
        }
    }
    let mut ioctls = 0;
    for (name, value) in ioctl_abi::all_ioctls() {
        writeln!(
            src,
            "printf(\"ioctl {name} %lu\\n\", (unsigned long){name});"
        )
        .unwrap();
        expected.insert(format!("ioctl {name}"), *value as u64);
        ioctls += 1;
    }
    let mut consts = 0;
    for (name, value) in ioctl_abi::all_consts() {
        writeln!(
            src,
            "printf(\"const {name} %lu\\n\", (unsigned long)(unsigned int)({name}));"
        )
        .unwrap();
        expected.insert(format!("const {name}"), *value as u64);
        consts += 1;
    }
    src.push_str("return 0;\n}\n");

    let dir = std::env::temp_dir().join(format!("ioctl-abi-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c, &src).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&c)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e} (install gcc and linux-libc-dev)"));
    assert!(
        out.status.success(),
        "compiling the layout probe failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    let stdout = String::from_utf8(run.stdout).unwrap();
    let mut got = BTreeMap::new();
    for line in stdout.lines() {
        let (k, v) = line.rsplit_once(' ').unwrap();
        got.insert(k.to_string(), v.parse::<u64>().unwrap());
    }
    let mut diffs = Vec::new();
    for (k, v) in &expected {
        match got.get(k) {
            Some(c) if c == v => {}
            Some(c) => diffs.push(format!("{k}: rust {v:#x} ({v}), C {c:#x} ({c})")),
            None => diffs.push(format!("{k}: missing from the C output")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(diffs.is_empty(), "ABI drift:\n{}", diffs.join("\n"));
    let structs = ioctl_abi::all_layouts().count();
    eprintln!(
        "checked {structs} structs, {fields} fields, {ioctls} ioctl numbers, {consts} constants"
    );
    assert!(structs > 60 && ioctls > 60);
}
