//! Handing MMAP buffers to the process that maps them. CUSE has no `mmap`, so the preload
//! shim asks the node (`MCEMU_IOC_MMAP` on the same file handle, so the daemon knows whose
//! queue) and gets a one-time grant; it presents the grant on the buffer socket, where the
//! daemon checks that the connecting process is the one that asked (peer credentials) and
//! sends the buffer's memfd with `SCM_RIGHTS`. Any user may connect (clients need not be
//! root); a grant is good once, for its process, for 10 seconds.

use std::collections::HashMap;
use std::io::{IoSlice, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use media_graph::vb2::MemfdBuffer;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use parking_lot::Mutex;

const GRANT_LIFETIME: Duration = Duration::from_secs(10);

struct Grant {
    buffer: Arc<MemfdBuffer>,
    tgid: i32,
    expires: Instant,
}

#[derive(Default)]
pub struct Grants {
    next: Mutex<u64>,
    grants: Mutex<HashMap<u64, Grant>>,
    socket: Mutex<Option<PathBuf>>,
}

/// The daemon's grants (one buffer socket per daemon).
pub static GRANTS: LazyLock<Grants> = LazyLock::new(Grants::default);

/// Reply bytes: the fd follows with 0; errors carry the errno.
const OK: u8 = 0;

impl Grants {
    /// Grants `buffer` to the thread group of `tid`. Returns the token and the socket path.
    pub fn grant(&self, buffer: Arc<MemfdBuffer>, tid: u32) -> Option<(u64, PathBuf)> {
        let socket = self.socket.lock().clone()?;
        let tid = i32::try_from(tid).ok().filter(|t| *t > 0)?;
        let tgid = cuse::memory::tgid_of(tid).unwrap_or(tid);
        let token = {
            let mut n = self.next.lock();
            *n += 1;
            // Not a secret: the peer check is the authentication.
            *n ^ (std::process::id() as u64) << 32
        };
        let now = Instant::now();
        let mut g = self.grants.lock();
        g.retain(|_, v| v.expires > now);
        g.insert(
            token,
            Grant {
                buffer,
                tgid,
                expires: now + GRANT_LIFETIME,
            },
        );
        Some((token, socket))
    }

    fn take(&self, token: u64, pid: i32) -> Result<Arc<MemfdBuffer>, nix::errno::Errno> {
        let mut g = self.grants.lock();
        match g.get(&token) {
            Some(v) if v.expires > Instant::now() && v.tgid == pid => {
                Ok(g.remove(&token).map(|v| v.buffer).expect("present"))
            }
            Some(v) if v.expires > Instant::now() => Err(nix::errno::Errno::EACCES),
            _ => Err(nix::errno::Errno::ENOENT),
        }
    }

    /// Listens on `path` (mode 0666) on its own thread.
    pub fn serve(&'static self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        *self.socket.lock() = Some(path.to_owned());
        std::thread::Builder::new()
            .name("buffers".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    if let Err(e) = self.serve_conn(conn) {
                        tracing::debug!(error = %e, "buffer request refused");
                    }
                }
            })?;
        Ok(())
    }

    fn serve_conn(&self, mut conn: UnixStream) -> Result<(), String> {
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let cred = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)
            .map_err(|e| e.to_string())?;
        let mut token = [0u8; 8];
        conn.read_exact(&mut token).map_err(|e| e.to_string())?;
        match self.take(u64::from_ne_bytes(token), cred.pid()) {
            Ok(buf) => {
                let fds = [buf.fd().as_raw_fd()];
                sendmsg::<()>(
                    conn.as_raw_fd(),
                    &[IoSlice::new(&[OK])],
                    &[ControlMessage::ScmRights(&fds)],
                    MsgFlags::empty(),
                    None,
                )
                .map_err(|e| e.to_string())?;
                Ok(())
            }
            Err(e) => {
                let _ = std::io::Write::write_all(&mut conn, &[e as i32 as u8]);
                Err(format!("pid {}: {e}", cred.pid()))
            }
        }
    }
}
