//! Serves the loopback test device (`cuse::testdev`) through /dev/cuse.
//!
//!   cuse-testdev [NAME]      (default NAME: cusetest)
//!
//! SIGUSR1 unregisters the node: /dev/NAME goes away, open handles stay served, and the process
//! exits after the last one closes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cuse::channel::{ensure_cuse_loaded, DevCuse};
use cuse::testdev::LoopbackDevice;
use cuse::{DeviceInfo, Session};

static UNREGISTER: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    UNREGISTER.store(true, Ordering::SeqCst);
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let name = std::env::args().nth(1).unwrap_or_else(|| "cusetest".into());
    if !ensure_cuse_loaded() {
        eprintln!("cuse-testdev: /dev/cuse is missing");
        std::process::exit(1);
    }
    let transport = DevCuse::open().unwrap_or_else(|e| {
        eprintln!("cuse-testdev: {e}");
        std::process::exit(1);
    });
    let session = Session::start(
        transport.clone(),
        &DeviceInfo::new(&name),
        LoopbackDevice::new(),
    )
    .unwrap_or_else(|e| {
        eprintln!("cuse-testdev: {e}");
        std::process::exit(1);
    });
    let handler = nix::sys::signal::SigHandler::Handler(on_usr1);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGUSR1, handler) }
        .expect("installing the SIGUSR1 handler");
    let handle = session.handle();
    let watcher = Arc::new(handle.clone());
    std::thread::spawn(move || loop {
        if UNREGISTER.swap(false, Ordering::SeqCst) {
            eprintln!(
                "cuse-testdev: unregistering /dev/{name} ({} open)",
                watcher.open_handles()
            );
            watcher.unregister();
        }
        std::thread::sleep(Duration::from_millis(10));
    });
    eprintln!("cuse-testdev: serving {:?}", transport.devt());
    session.run(2);
    eprintln!("cuse-testdev: channel closed, exiting");
}
