//! `aivault run --isolate`: the child gets its own network namespace whose only way out is the
//! proxy.
//!
//! Inside, only `lo` exists (brought up here with one netlink request); PID 1 of the namespace
//! listens on `127.0.0.1:<proxy port>` and relays each connection over a Unix socket (a file, so
//! it crosses network namespaces) to `run`, which relays it to the proxy. A process that ignores
//! `HTTPS_PROXY` (Node 20's `fetch`, a raw socket) finds no route and no DNS: it gets an error
//! instead of a way around the vault. The Unix socket leads only to the proxy, which still wants
//! the session token.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;

use nix::sys::socket::{AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket};
use serde::{Deserialize, Serialize};

/// What the namespace's PID 1 sets up: the port agents reach the proxy on and the bridge socket.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetPlan {
    pub port: u16,
    pub socket: PathBuf,
}

/// Brings up `lo` (always interface 1 in a new network namespace): RTM_NEWLINK with IFF_UP.
pub fn loopback_up() -> std::io::Result<()> {
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const NLMSG_ERROR: u16 = 2;
    const IFF_UP: u32 = 1;
    let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute)?;
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    msg.extend_from_slice(&[0, 0]); // ifi_family AF_UNSPEC, pad
    msg.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    msg.extend_from_slice(&1i32.to_ne_bytes()); // ifi_index: lo
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    sendto(fd.as_raw_fd(), &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
    let mut ack = [0u8; 256];
    let n = recv(fd.as_raw_fd(), &mut ack, MsgFlags::empty())?;
    // nlmsghdr (16 bytes) then, for NLMSG_ERROR, the error number (0 = done).
    let kind = (n >= 20).then(|| u16::from_ne_bytes([ack[4], ack[5]]));
    let error = (n >= 20).then(|| i32::from_ne_bytes([ack[16], ack[17], ack[18], ack[19]]));
    match (kind, error) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(e)) => Err(std::io::Error::from_raw_os_error(-e)),
        _ => Err(std::io::Error::other("no answer from the kernel to bring up lo")),
    }
}

/// Inside the namespace: relays `127.0.0.1:port` to the bridge socket, on background threads.
pub fn relay_inside(plan: &NetPlan) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", plan.port))?;
    let socket = plan.socket.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(tcp) = conn else { continue };
            match UnixStream::connect(&socket) {
                Ok(unix) => splice(tcp, unix),
                Err(e) => eprintln!("aivault: cannot reach the proxy bridge: {e}"),
            }
        }
    });
    Ok(())
}

/// Outside: the bridge `run` serves for the child's lifetime (Unix socket → the proxy's TCP).
pub struct Bridge {
    dir: PathBuf,
    socket: PathBuf,
}

impl Bridge {
    /// Listens on a fresh socket in a private (0700) directory and relays to `proxy`.
    pub fn start(proxy: SocketAddr) -> std::io::Result<Bridge> {
        use std::os::unix::fs::DirBuilderExt as _;
        let mut dir = None;
        for _ in 0..16 {
            let mut raw = [0u8; 8];
            crate::crypto::random_bytes(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
            let name: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            let candidate = std::env::temp_dir().join(format!("aivault-isolate-{name}"));
            if std::fs::DirBuilder::new().mode(0o700).create(&candidate).is_ok() {
                dir = Some(candidate);
                break;
            }
        }
        let dir = dir.ok_or_else(|| std::io::Error::other("cannot create a private directory for the bridge"))?;
        let socket = dir.join("proxy.sock");
        let listener = UnixListener::bind(&socket)?;
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(unix) = conn else { continue };
                match TcpStream::connect(proxy) {
                    Ok(tcp) => splice(tcp, unix),
                    Err(e) => eprintln!("aivault: the isolated command cannot reach the proxy: {e}"),
                }
            }
        });
        Ok(Bridge { dir, socket })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies both ways until either side closes (two threads per connection).
fn splice(tcp: TcpStream, unix: UnixStream) {
    let (Ok(tcp2), Ok(unix2)) = (tcp.try_clone(), unix.try_clone()) else { return };
    thread::spawn(move || copy(tcp, unix));
    thread::spawn(move || copy(unix2, tcp2));
}

fn copy(mut from: impl Read + Shutdown, mut to: impl Write + Shutdown) {
    let _ = std::io::copy(&mut from, &mut to);
    to.shutdown_write();
    from.shutdown_read();
}

trait Shutdown {
    fn shutdown_write(&self);
    fn shutdown_read(&self);
}

impl Shutdown for TcpStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
    fn shutdown_read(&self) {
        let _ = self.shutdown(std::net::Shutdown::Read);
    }
}

impl Shutdown for UnixStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
    fn shutdown_read(&self) {
        let _ = self.shutdown(std::net::Shutdown::Read);
    }
}
