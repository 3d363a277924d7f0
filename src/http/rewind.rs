//! A connection whose first bytes were already read: hyper is given them
//! again before the rest of the socket.
//!
//! [`super::events`] reads a request head before it knows for sure that it
//! serves the request itself; when it does not (a body, `Expect`, a header
//! hyper would reject), hyper takes the connection over from the start.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A socket and the bytes already read from it, served first.
pub struct Rewind {
    /// Read before hyper took over; empty (no allocation) for most
    /// connections.
    prefix: Bytes,
    inner: TcpStream,
}

impl Rewind {
    /// A socket nothing was read from yet.
    pub fn new(inner: TcpStream) -> Self {
        Self::with_prefix(inner, Bytes::new())
    }

    /// A socket from which `prefix` was read.
    pub fn with_prefix(inner: TcpStream, prefix: impl Into<Bytes>) -> Self {
        Self {
            prefix: prefix.into(),
            inner,
        }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // hyper writes a head and a body chunk in one call when it can.
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
