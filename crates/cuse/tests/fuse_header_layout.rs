//! Compares the wire structs of `cuse::abi` with the system's `linux/fuse.h`.

use std::fmt::Write as _;
use std::process::Command;

#[test]
fn wire_structs_match_linux_fuse_h() {
    let mut src = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <linux/fuse.h>\nint main(void) {\n",
    );
    let mut expected = Vec::new();
    for (name, size, fields) in cuse::abi::ALL_STRUCTS {
        writeln!(src, "printf(\"%zu\\n\", sizeof(struct {name}));").unwrap();
        expected.push((format!("sizeof {name}"), *size));
        for (f, off) in *fields {
            writeln!(src, "printf(\"%zu\\n\", offsetof(struct {name}, {f}));").unwrap();
            expected.push((format!("offsetof {name}.{f}"), *off));
        }
    }
    for (name, value) in [
        (
            "FUSE_KERNEL_VERSION",
            cuse::abi::FUSE_KERNEL_VERSION as usize,
        ),
        ("CUSE_INIT_INFO_MAX", cuse::abi::CUSE_INIT_INFO_MAX),
        (
            "CUSE_UNRESTRICTED_IOCTL",
            cuse::abi::CUSE_UNRESTRICTED_IOCTL as usize,
        ),
        ("FUSE_IOCTL_COMPAT", cuse::abi::FUSE_IOCTL_COMPAT as usize),
        (
            "FUSE_IOCTL_UNRESTRICTED",
            cuse::abi::FUSE_IOCTL_UNRESTRICTED as usize,
        ),
        ("FUSE_IOCTL_RETRY", cuse::abi::FUSE_IOCTL_RETRY as usize),
        ("FUSE_IOCTL_MAX_IOV", cuse::abi::FUSE_IOCTL_MAX_IOV),
        (
            "FUSE_POLL_SCHEDULE_NOTIFY",
            cuse::abi::FUSE_POLL_SCHEDULE_NOTIFY as usize,
        ),
        ("FUSE_NOTIFY_POLL", cuse::abi::FUSE_NOTIFY_POLL as usize),
        ("FUSE_OPEN", cuse::abi::Opcode::Open as usize),
        ("FUSE_READ", cuse::abi::Opcode::Read as usize),
        ("FUSE_WRITE", cuse::abi::Opcode::Write as usize),
        ("FUSE_RELEASE", cuse::abi::Opcode::Release as usize),
        ("FUSE_INTERRUPT", cuse::abi::Opcode::Interrupt as usize),
        ("FUSE_IOCTL", cuse::abi::Opcode::Ioctl as usize),
        ("FUSE_POLL", cuse::abi::Opcode::Poll as usize),
        ("CUSE_INIT", cuse::abi::Opcode::CuseInit as usize),
    ] {
        writeln!(src, "printf(\"%lu\\n\", (unsigned long)({name}));").unwrap();
        expected.push((name.to_string(), value));
    }
    src.push_str("return 0;\n}\n");
    let dir = std::env::temp_dir().join(format!("cuse-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("p.c"), &src).unwrap();
    let out = Command::new("cc")
        .args(["-Wall", "-Werror", "-o"])
        .arg(dir.join("p"))
        .arg(dir.join("p.c"))
        .output()
        .expect("running cc (install gcc and linux-libc-dev)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(dir.join("p")).output().unwrap();
    let got: Vec<usize> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got.len(), expected.len());
    let diffs: Vec<String> = expected
        .iter()
        .zip(&got)
        .filter(|((_, e), g)| e != *g)
        .map(|((k, e), g)| format!("{k}: rust {e}, C {g}"))
        .collect();
    assert!(diffs.is_empty(), "FUSE ABI drift:\n{}", diffs.join("\n"));
}
