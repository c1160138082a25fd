//! The process's own TCP sockets, SLIM's included, found through /proc/self/fd (Linux only;
//! elsewhere these do nothing): TCP_NODELAY on every one, and whether one is connected to a
//! given server — the only sign of SLIM's link, which keeps its connection listed while it
//! reconnects and reports nothing.
//!
//! SLIM's client turns Nagle's algorithm on explicitly and its server leaves it on, and the
//! bindings offer no setting: a small message written while the previous one is still
//! unacknowledged then waits for the peer's delayed ACK (40 ms on Linux). SLIM opens its
//! sockets itself (connects, reconnects, accepts), so they are swept: every TCP socket of this
//! process that still has Nagle on gets TCP_NODELAY. Linux only (it reads /proc/self/fd);
//! elsewhere a sweep does nothing.

use std::time::Duration;

/// How often a SLIM server's sockets are swept (a new connection has Nagle on until then).
pub const SERVER_SWEEP: Duration = Duration::from_millis(100);

/// Calls `f` with every TCP socket of this process; false where that cannot be known.
#[cfg(target_os = "linux")]
fn each_tcp_socket(mut f: impl FnMut(socket2::SockRef<'_>)) -> bool {
    use std::os::fd::{BorrowedFd, RawFd};

    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: only socket options are read and set through this borrow, which ends
        // within the iteration. Another thread may close the descriptor meanwhile: the calls
        // then fail (EBADF), or reach a newer socket of this same process, which the type and
        // address checks below treat like any other.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let tcp = socket.r#type().is_ok_and(|t| t == socket2::Type::STREAM)
            && socket.local_addr().is_ok_and(|a| a.as_socket().is_some());
        if tcp {
            f(socket);
        }
    }
    true
}

#[cfg(not(target_os = "linux"))]
fn each_tcp_socket(_: impl FnMut(socket2::SockRef<'_>)) -> bool {
    false
}

/// Sets TCP_NODELAY on every TCP socket of this process that does not have it; returns
/// how many were changed.
pub fn sweep() -> usize {
    let mut changed = 0;
    each_tcp_socket(|socket| {
        if socket.tcp_nodelay().is_ok_and(|on| !on) && socket.set_tcp_nodelay(true).is_ok() {
            changed += 1;
        }
    });
    changed
}

/// Whether a TCP socket of this process is connected to one of `server`; `None` where that
/// cannot be known (not Linux, or no address to look for).
pub(crate) fn connected_to(server: &[std::net::SocketAddr]) -> Option<bool> {
    if server.is_empty() {
        return None;
    }
    let mut connected = false;
    let known = each_tcp_socket(|socket| {
        connected |= socket
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|peer| server.contains(&peer));
    });
    known.then_some(connected)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_connection_to_the_server_is_found_and_its_absence_too() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(connected_to(&[addr]), Some(false));
        let client = std::net::TcpStream::connect(addr).unwrap();
        assert_eq!(connected_to(&[addr]), Some(true));
        drop(client);
        drop(listener);
        assert_eq!(connected_to(&[addr]), Some(false));
        assert_eq!(connected_to(&[]), None);
    }

    #[test]
    fn a_socket_with_nagle_on_gets_tcp_nodelay() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_nodelay(false).unwrap();
        server.set_nodelay(false).unwrap();
        assert!(sweep() >= 2);
        assert!(client.nodelay().unwrap());
        assert!(server.nodelay().unwrap());
    }
}
