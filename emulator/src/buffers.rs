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
/// Connections one user may have open at once; the shim sends its token right after
/// connecting and needs one per mmap() in flight.
const MAX_CONNECTIONS_PER_USER: usize = 8;

/// One of a user's connections to the buffer socket, given back when dropped.
struct UserSlot {
    active: Arc<Mutex<HashMap<u32, usize>>>,
    uid: u32,
}

impl UserSlot {
    fn take(active: &Arc<Mutex<HashMap<u32, usize>>>, uid: u32) -> Option<Self> {
        let mut a = active.lock();
        let n = a.entry(uid).or_default();
        if *n >= MAX_CONNECTIONS_PER_USER {
            return None;
        }
        *n += 1;
        Some(Self {
            active: active.clone(),
            uid,
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut a = self.active.lock();
        if let Some(n) = a.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                a.remove(&self.uid);
            }
        }
    }
}

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
                // One thread per connection, so a client that connects and stays silent holds
                // up nobody else; at most MAX_CONNECTIONS_PER_USER at a time per user.
                let active: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
                for conn in listener.incoming().flatten() {
                    let Ok(cred) = nix::sys::socket::getsockopt(
                        &conn,
                        nix::sys::socket::sockopt::PeerCredentials,
                    ) else {
                        continue;
                    };
                    let Some(slot) = UserSlot::take(&active, cred.uid()) else {
                        tracing::warn!(
                            uid = cred.uid(),
                            "buffer socket: {MAX_CONNECTIONS_PER_USER} connections of this user open, refusing another"
                        );
                        continue;
                    };
                    let _ = std::thread::Builder::new()
                        .name("buffers-conn".into())
                        .spawn(move || {
                            if let Err(e) = self.serve_conn(conn) {
                                tracing::debug!(error = %e, "buffer request refused");
                            }
                            drop(slot);
                        });
                }
            })?;
        Ok(())
    }

    fn serve_conn(&self, mut conn: UnixStream) -> Result<(), String> {
        conn.set_read_timeout(Some(Duration::from_secs(2)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_its_own_connection_slots() {
        let active: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
        let mine: Vec<_> = (0..MAX_CONNECTIONS_PER_USER)
            .map(|_| UserSlot::take(&active, 1000).expect("a free slot"))
            .collect();
        assert!(UserSlot::take(&active, 1000).is_none(), "one too many");
        let other = UserSlot::take(&active, 0).expect("another user is not held up");
        drop(mine.into_iter().next());
        assert!(
            UserSlot::take(&active, 1000).is_some(),
            "a closed one frees a slot"
        );
        drop(other);
        assert!(
            !active.lock().contains_key(&0),
            "no record of users without connections"
        );
    }
}
