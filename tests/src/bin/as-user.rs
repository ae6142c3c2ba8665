//! Runs a program as another user, for the VM suites (busybox has no `setpriv --reuid`):
//!
//!   as-user UID GID[,GID...] PROGRAM [ARGS...]
//!
//! The first GID is the primary group, the others supplementary; every capability goes with
//! the switch to a non-zero uid.

use std::ffi::CString;

use nix::unistd::{execvp, setgroups, setresgid, setresuid, Gid, Uid};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: as-user UID GID[,GID...] PROGRAM [ARGS...]");
        std::process::exit(2);
    }
    let uid: u32 = args[0]
        .parse()
        .unwrap_or_else(|_| fail(&format!("not a uid: {}", args[0])));
    let gids: Vec<Gid> = args[1]
        .split(',')
        .map(|g| {
            g.parse()
                .map(Gid::from_raw)
                .unwrap_or_else(|_| fail(&format!("not a gid: {g}")))
        })
        .collect();
    let uid = Uid::from_raw(uid);
    setgroups(&gids[1..]).unwrap_or_else(|e| fail(&format!("setgroups: {e}")));
    setresgid(gids[0], gids[0], gids[0]).unwrap_or_else(|e| fail(&format!("setresgid: {e}")));
    setresuid(uid, uid, uid).unwrap_or_else(|e| fail(&format!("setresuid: {e}")));
    let argv: Vec<CString> = args[2..]
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap_or_else(|_| fail("an argument holds a NUL")))
        .collect();
    let e = execvp(&argv[0], &argv).unwrap_err();
    fail(&format!("{}: {e}", args[2]));
}

fn fail(msg: &str) -> ! {
    eprintln!("as-user: {msg}");
    std::process::exit(127)
}
