//! When a request reached the machine: the kernel stamps each packet it receives
//! (`SO_TIMESTAMPNS`), and [`Stamped`] reads a connection with `recvmsg` to keep the stamp of
//! the first bytes of each request. A request's duration then counts from there: the time it
//! waited in the socket buffer and for the server to wake up is part of what its client waits,
//! and under load most of it. HTTP/1 only: a request begins with the first bytes read after
//! the previous answer was written (HTTP/2 interleaves its requests, so it has no such point).

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The kernel's receive time of the current request's first bytes, shared by a connection
/// and its requests.
#[derive(Debug, Clone, Default)]
pub struct Arrival(Arc<AtomicI64>);

/// Longest wait read from a stamp: beyond it the stamp is taken for wrong (a clock step).
const PLAUSIBLE: Duration = Duration::from_secs(300);

impl Arrival {
    /// How long ago the current request's first bytes arrived; `None` without a stamp.
    pub fn elapsed(&self) -> Option<Duration> {
        let at = self.0.load(Ordering::Relaxed);
        if at <= 0 {
            return None;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        let then = Duration::from_nanos(u64::try_from(at).ok()?);
        now.checked_sub(then).filter(|d| *d < PLAUSIBLE)
    }

    fn set(&self, nanos: i64) {
        self.0.store(nanos, Ordering::Relaxed);
    }
}

/// A TCP connection whose reads keep the kernel's receive time of each request's first bytes.
pub struct Stamped {
    stream: TcpStream,
    arrival: Arrival,
    /// Nothing was read since the last write: the next bytes begin a request.
    awaiting_request: bool,
}

impl Stamped {
    /// Wraps `stream`, asking the kernel to stamp what it receives; without stamps (an old
    /// kernel) it reads as usual and requests have none.
    pub fn new(stream: TcpStream) -> (Stamped, Arrival) {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, an int option of the right size.
        let _ = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                std::ptr::addr_of!(on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let arrival = Arrival::default();
        (
            Stamped {
                stream,
                arrival: arrival.clone(),
                awaiting_request: true,
            },
            arrival,
        )
    }
}

impl Stamped {
    /// Waits for bytes and copies the first into `buf` without taking them.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.peek(buf).await
    }
}

/// Reads into `buf` with `recvmsg`; returns the bytes read and the kernel's stamp (ns since
/// the epoch) when it gave one. `buf` may be uninitialised: the kernel only writes to it (and
/// zeroing hyper's whole read buffer on every read cost 1 % of a busy receiver).
fn receive(fd: i32, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<(usize, Option<i64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one timespec control message, aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    // SAFETY: zeroed msghdr is valid; every pointer below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: fd is the stream's socket; msg points at live buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walking the control messages recvmsg wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

impl AsyncRead for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.stream.poll_read_ready(cx))?;
            let fd = this.stream.as_raw_fd();
            // SAFETY: recvmsg only writes to the region, and `assume_init` below covers only
            // the `n` bytes it wrote.
            let unfilled = unsafe { buf.unfilled_mut() };
            match this
                .stream
                .try_io(Interest::READABLE, || receive(fd, unfilled))
            {
                Ok((n, stamp)) => {
                    if n > 0 && this.awaiting_request {
                        this.awaiting_request = false;
                        this.arrival.set(stamp.unwrap_or(0));
                    }
                    // SAFETY: the kernel wrote these `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
        this.awaiting_request = true;
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, bufs))?;
        this.awaiting_request = true;
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_first_bytes_after_an_answer_carry_the_kernels_receive_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (mut server, arrival) = Stamped::new(server);
        assert_eq!(arrival.elapsed(), None, "nothing read yet");
        // Linux turns receive stamps on for the whole stack a moment after the first socket
        // asks (deferred work): one exchange first, so that the next bytes are stamped.
        let mut buf = [0u8; 16];
        client.write_all(b"warm-up").await.unwrap();
        let _ = server.read(&mut buf).await.unwrap();
        server.write_all(b"ok").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;

        client.write_all(b"first").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"first");
        let waited = arrival.elapsed().expect("a stamp");
        assert!(waited >= Duration::from_millis(45), "{waited:?}");

        // The answer; the next bytes begin the next request, with their own stamp.
        server.write_all(b"answer").await.unwrap();
        client.write_all(b"second").await.unwrap();
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"second");
        let again = arrival.elapsed().expect("a stamp");
        assert!(again < waited, "{again:?} is the second request's");
    }
}
