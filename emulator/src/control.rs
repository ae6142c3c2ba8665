//! The control plane: newline-delimited JSON over a Unix socket (default
//! /run/mcemu/control.sock). One request per line, one response per line:
//!
//! ```text
//! → {"cmd":"status"}
//! ← {"ok":true,"status":{"board":"beagleboard-xm","ready":true,"instances":[...]}}
//! → {"cmd":"unplug"}                  (or {"cmd":"unplug","instance":0})
//! ← {"ok":true,"result":{"instance":0}}
//! → {"cmd":"replug"}                  (a fresh instance replaces an unplugged one)
//! ← {"ok":true,"result":{"replaced":0,"instance":1}}
//! → {"cmd":"unbind","driver":"au0828"}  (one driver of a shared media device; also "bind")
//! ← {"ok":true,"result":{"instance":0,"driver":"au0828","media_device":"kept"}}
//! → {"cmd":"audit"}
//! ← {"ok":true,"result":{"summary":"instances=2 registered=1 ...","instances":[...]}}
//! ← {"ok":false,"error":"unknown command \"foo\""}
//! ```
//!
//! Only root (or the daemon's own user) may connect: the peer's credentials are checked.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::breakpoints::FaultSpec;

pub const DEFAULT_SOCKET: &str = "/run/mcemu/control.sock";
/// Longest request line accepted.
const MAX_LINE: u64 = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    pub path: String,
    pub kind: String,
    pub registered: bool,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub open_handles: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceStatus {
    pub id: u32,
    /// The board or topology it is.
    #[serde(default)]
    pub model: String,
    /// "registered", "unplugged" (unplugged, memory not yet released) or "released".
    pub state: String,
    /// A shared media device's drivers that are bound now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drivers: Vec<String>,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub board: String,
    pub lifetime: String,
    pub errno_profile: String,
    /// The newest instance is registered with every node.
    pub ready: bool,
    pub instances: Vec<InstanceStatus>,
    /// Armed race breakpoints and calls parked at them.
    #[serde(default)]
    pub breakpoints: serde_json::Value,
    /// What each client process holds, against the caps (`--max-*`).
    #[serde(default)]
    pub clients: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Unplug {
        #[serde(default)]
        instance: Option<u32>,
    },
    Replug {
        #[serde(default)]
        instance: Option<u32>,
    },
    Unbind {
        driver: String,
        #[serde(default)]
        instance: Option<u32>,
    },
    Bind {
        driver: String,
        #[serde(default)]
        instance: Option<u32>,
    },
    Audit,
    Break {
        node: String,
        ioctl: String,
        #[serde(default = "default_stage")]
        stage: String,
    },
    WaitHit {
        #[serde(default = "default_timeout")]
        timeout: f64,
    },
    Continue {
        #[serde(default)]
        id: Option<u32>,
    },
    Inject(FaultSpec),
}

fn default_stage() -> String {
    "entry".into()
}

fn default_timeout() -> f64 {
    30.0
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    fn error(msg: impl Into<String>) -> Self {
        Self {
            ok: false,
            status: None,
            result: None,
            error: Some(msg.into()),
        }
    }

    fn result(r: Result<serde_json::Value, String>) -> Self {
        match r {
            Ok(v) => Self {
                ok: true,
                status: None,
                result: Some(v),
                error: None,
            },
            Err(e) => Self::error(e),
        }
    }
}

/// What the control server asks of the daemon. Errors are messages for the user.
pub trait Control: Send + Sync + 'static {
    fn status(&self) -> Status;
    fn unplug(&self, instance: Option<u32>) -> Result<serde_json::Value, String>;
    fn replug(&self, instance: Option<u32>) -> Result<serde_json::Value, String>;
    /// Unbinds one driver of a shared media device (the Media Device Allocator's
    /// `media_device_delete` at its remove).
    fn unbind(&self, driver: &str, _instance: Option<u32>) -> Result<serde_json::Value, String> {
        Err(format!("no shared media device has a driver {driver:?}"))
    }
    /// Binds it again (`media_device_usb_allocate` at its probe).
    fn bind(&self, driver: &str, _instance: Option<u32>) -> Result<serde_json::Value, String> {
        Err(format!("no shared media device has a driver {driver:?}"))
    }
    fn audit(&self) -> serde_json::Value;
    fn arm(&self, node: &str, ioctl: &str, stage: &str) -> Result<serde_json::Value, String>;
    fn wait_hit(&self, timeout: f64) -> Result<serde_json::Value, String>;
    fn cont(&self, id: Option<u32>) -> Result<serde_json::Value, String>;
    fn inject(&self, spec: &FaultSpec) -> Result<serde_json::Value, String>;
}

/// Answers one request line.
pub fn handle_line(ctl: &dyn Control, line: &str) -> Response {
    let v: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Response::error(format!("malformed request: {e}")),
    };
    match serde_json::from_value::<Request>(v.clone()) {
        Ok(Request::Status) => Response {
            ok: true,
            status: Some(ctl.status()),
            result: None,
            error: None,
        },
        Ok(Request::Unplug { instance }) => Response::result(ctl.unplug(instance)),
        Ok(Request::Replug { instance }) => Response::result(ctl.replug(instance)),
        Ok(Request::Unbind { driver, instance }) => Response::result(ctl.unbind(&driver, instance)),
        Ok(Request::Bind { driver, instance }) => Response::result(ctl.bind(&driver, instance)),
        Ok(Request::Audit) => Response::result(Ok(ctl.audit())),
        Ok(Request::Break { node, ioctl, stage }) => Response::result(ctl.arm(&node, &ioctl, &stage)),
        Ok(Request::WaitHit { timeout }) => Response::result(ctl.wait_hit(timeout)),
        Ok(Request::Continue { id }) => Response::result(ctl.cont(id)),
        Ok(Request::Inject(spec)) => Response::result(ctl.inject(&spec)),
        Err(e) => match v.get("cmd").and_then(|c| c.as_str()) {
            Some(
                c @ ("status" | "unplug" | "replug" | "unbind" | "bind" | "audit" | "break"
                | "wait_hit" | "continue" | "inject"),
            ) => Response::error(format!("bad arguments for {c:?}: {e}")),
            Some(c) => Response::error(format!(
                "unknown command {c:?} (known: status, unplug, replug, unbind, bind, audit, break, wait_hit, continue, inject)"
            )),
            None => Response::error("request has no \"cmd\" string"),
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("creating {0}")]
    Dir(PathBuf, #[source] std::io::Error),
    #[error("another mcemu daemon is already listening on {0}")]
    InUse(PathBuf),
    #[error("binding {0}")]
    Bind(PathBuf, #[source] std::io::Error),
}

/// Binds the socket (root-only: 0600) and serves requests on a background thread.
pub fn serve(path: &Path, ctl: Arc<dyn Control>) -> Result<(), ServerError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ServerError::Dir(dir.to_owned(), e))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse(path.to_owned()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|e| ServerError::Bind(path.to_owned(), e))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if let Err(e) = peer_allowed(&conn) {
                    tracing::warn!(error = %e, "control connection refused");
                    std::thread::spawn(move || refuse(conn, &e));
                    continue;
                }
                let ctl = ctl.clone();
                std::thread::spawn(move || serve_conn(conn, &*ctl));
            }
        })
        .expect("spawning the control thread");
    Ok(())
}

/// Answers a refused peer's request with the error. Its request is read (and dropped) before
/// the close: closing with unread data resets the connection, and the client would see
/// "connection reset" instead of the reason.
fn refuse(conn: UnixStream, error: &str) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut c = &conn;
    let _ =
        c.write_all(format!("{}\n", serde_json::json!({"ok": false, "error": error})).as_bytes());
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let _ = std::io::copy(&mut (&conn).take(MAX_LINE), &mut std::io::sink());
}

/// Root, or the user the daemon runs as.
fn peer_allowed(conn: &UnixStream) -> Result<(), String> {
    let cred = nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("cannot read peer credentials: {e}"))?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.uid() == 0 || cred.uid() == me {
        Ok(())
    } else {
        Err(format!(
            "uid {} may not control mcemu (root only)",
            cred.uid()
        ))
    }
}

fn serve_conn(conn: UnixStream, ctl: &dyn Control) {
    // Idle connections go away; requests themselves may take long (wait_hit).
    let _ = conn.set_read_timeout(Some(Duration::from_secs(3600)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        match (&mut reader).take(MAX_LINE).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let resp = if !line.ends_with('\n') && line.len() as u64 >= MAX_LINE {
            Response::error(format!("request longer than {MAX_LINE} bytes"))
        } else {
            handle_line(ctl, line.trim())
        };
        let mut s = serde_json::to_string(&resp).unwrap_or_else(|_| "{\"ok\":false}".into());
        s.push('\n');
        if out.write_all(s.as_bytes()).is_err()
            || resp
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("request longer"))
        {
            return;
        }
    }
}

/// Sends one request and reads the response.
pub fn request(path: &Path, req: &Request) -> Result<Response, String> {
    let mut conn = UnixStream::connect(path)
        .map_err(|e| format!("cannot reach the daemon at {}: {e}", path.display()))?;
    let wait = match req {
        Request::WaitHit { timeout } => timeout.clamp(0.0, 3600.0) + 10.0,
        _ => 10.0,
    };
    conn.set_read_timeout(Some(Duration::from_secs_f64(wait)))
        .ok();
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    conn.write_all(line.as_bytes())
        .map_err(|e| format!("sending to the daemon: {e}"))?;
    let mut resp = String::new();
    BufReader::new(conn)
        .take(16 << 20)
        .read_line(&mut resp)
        .map_err(|e| format!("reading the daemon's answer: {e}"))?;
    serde_json::from_str(&resp).map_err(|e| format!("malformed answer from the daemon: {e}"))
}

/// Prints a line of output; a reader that went away (`mcemu ctl status | head`) is not an
/// error worth a panic, as `println!` would make it.
fn print_out(s: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

/// `mcemu ctl status [--wait S]`: returns the exit code.
pub fn status_command(path: &Path, wait: Option<f64>) -> i32 {
    let deadline = wait.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    loop {
        let (done, code, msg) = match request(path, &Request::Status) {
            Ok(Response {
                ok: true,
                status: Some(st),
                ..
            }) => {
                let ready = st.ready;
                let json = serde_json::to_string_pretty(&st).unwrap_or_default();
                (
                    ready || wait.is_none(),
                    if ready || wait.is_none() { 0 } else { 1 },
                    json,
                )
            }
            Ok(r) => (
                true,
                1,
                r.error
                    .unwrap_or_else(|| "the daemon refused the request".into()),
            ),
            Err(e) => (false, 2, e),
        };
        let timed_out = deadline.is_none_or(|d| Instant::now() >= d);
        if done || timed_out {
            if code == 0 {
                print_out(&msg);
            } else if timed_out && wait.is_some() {
                eprintln!("mcemu ctl: not ready after {}s: {msg}", wait.unwrap_or(0.0));
            } else {
                eprintln!("mcemu ctl: {msg}");
            }
            return code;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `mcemu ctl unplug|replug|audit`: sends `req`, prints the answer; returns the exit code.
pub fn simple_command(path: &Path, req: &Request, summary_only: bool) -> i32 {
    match request(path, req) {
        Ok(Response {
            ok: true,
            result: Some(v),
            ..
        }) => {
            if summary_only {
                print_out(v.get("summary").and_then(|s| s.as_str()).unwrap_or(""));
            } else {
                print_out(&serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            0
        }
        Ok(r) => {
            eprintln!(
                "mcemu ctl: {}",
                r.error
                    .unwrap_or_else(|| "the daemon refused the request".into())
            );
            1
        }
        Err(e) => {
            eprintln!("mcemu ctl: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(bool);
    impl Control for Fixed {
        fn status(&self) -> Status {
            Status {
                board: "n900".into(),
                lifetime: "refcount".into(),
                errno_profile: "mainline".into(),
                ready: self.0,
                instances: vec![],
                breakpoints: serde_json::Value::Null,
                clients: serde_json::Value::Null,
            }
        }
        fn unplug(&self, instance: Option<u32>) -> Result<serde_json::Value, String> {
            match instance {
                Some(7) => Err("instance 7 is not registered".into()),
                _ => Ok(serde_json::json!({"instance": 0})),
            }
        }
        fn replug(&self, _: Option<u32>) -> Result<serde_json::Value, String> {
            Ok(serde_json::json!({"instance": 1}))
        }
        fn audit(&self) -> serde_json::Value {
            serde_json::json!({"summary": "instances=1"})
        }
        fn arm(&self, _: &str, _: &str, _: &str) -> Result<serde_json::Value, String> {
            Ok(serde_json::json!({"breakpoint": 1}))
        }
        fn wait_hit(&self, _: f64) -> Result<serde_json::Value, String> {
            Err("no breakpoint hit within 0s".into())
        }
        fn cont(&self, _: Option<u32>) -> Result<serde_json::Value, String> {
            Err("no call is parked".into())
        }
        fn inject(&self, _: &FaultSpec) -> Result<serde_json::Value, String> {
            Ok(serde_json::json!({"fault": 1}))
        }
    }

    #[test]
    fn bad_requests_get_messages_not_panics() {
        let c = Fixed(true);
        assert!(handle_line(&c, "{\"cmd\":\"status\"}").ok);
        let r = handle_line(&c, "{\"cmd\":\"frobnicate\"}");
        assert!(!r.ok && r.error.unwrap().contains("unknown command \"frobnicate\""));
        assert!(handle_line(&c, "not json")
            .error
            .unwrap()
            .starts_with("malformed request"));
        assert!(handle_line(&c, "{}").error.unwrap().contains("no \"cmd\""));
        assert!(handle_line(&c, "[1,2]").error.is_some());
        assert!(handle_line(&c, "{\"cmd\":\"unplug\"}").ok);
        let r = handle_line(&c, "{\"cmd\":\"unplug\",\"instance\":7}");
        assert_eq!(r.error.as_deref(), Some("instance 7 is not registered"));
        let r = handle_line(&c, "{\"cmd\":\"unplug\",\"instance\":\"x\"}");
        assert!(r.error.unwrap().starts_with("bad arguments for \"unplug\""));
        assert_eq!(
            handle_line(&c, "{\"cmd\":\"audit\"}").result.unwrap()["summary"],
            "instances=1"
        );
    }

    #[test]
    fn socket_round_trip_and_wait() {
        let dir = std::env::temp_dir().join(format!("mcemu-ctl-{}", std::process::id()));
        let path = dir.join("control.sock");
        serve(&path, Arc::new(Fixed(true))).unwrap();
        let r = request(&path, &Request::Status).unwrap();
        assert_eq!(r.status.unwrap().board, "n900");
        assert_eq!(status_command(&path, Some(1.0)), 0);
        // A second daemon on the same socket is refused.
        assert!(matches!(
            serve(&path, Arc::new(Fixed(true))),
            Err(ServerError::InUse(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wait_times_out_when_not_ready_or_absent() {
        let dir = std::env::temp_dir().join(format!("mcemu-ctl-nr-{}", std::process::id()));
        let path = dir.join("control.sock");
        assert_eq!(status_command(&path, Some(0.3)), 2, "no daemon");
        serve(&path, Arc::new(Fixed(false))).unwrap();
        assert_eq!(status_command(&path, Some(0.3)), 1, "never ready");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
