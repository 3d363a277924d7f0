//! Writing a response as hyper frames it, plus `connection: close`: a body
//! of known length (a problem document) after its `content-length`, a
//! stream (the events) in chunks.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};
use http::response::Parts;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::Body;

/// The last chunk of a chunked body (no trailers).
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes a response whose body has a known length, head and body in one
/// write, and closes.
///
/// # Errors
/// The write failed.
pub async fn write_whole(mut stream: TcpStream, parts: Parts, body: Body, length: u64) -> io::Result<()> {
    let head = encode_head(parts, Some(length)).freeze();
    let Ok(whole) = body.collect().await;
    stream.write_all_buf(&mut head.chain(whole.to_bytes())).await?;
    stream.shutdown().await
}

/// Writes a streaming response: the head, each data frame of the body as a
/// chunk, the last chunk, then closes. It stops early, dropping the body
/// (and with it the hub's subscription), when a write fails or the client
/// closes its side (read at end of file, as nginx and Go's server take it).
///
/// A future of its own rather than an `async fn`, to be spawned as a task of
/// its own: every open stream keeps one for its whole life, and the
/// compiler's state machine for the same steps took several times the room
/// (arguments kept twice, room for each nested future), as did the task
/// that read and answered the request.
pub struct StreamWriter {
    stream: TcpStream,
    body: Body,
    /// Bytes not written yet: the head, then one chunk at a time.
    out: Bytes,
    /// The body has ended; `out` holds the last chunk.
    ended: bool,
    /// Held until the stream ends, so that the server's drain waits for it
    /// (the body ends on shutdown).
    _drain: Option<Watcher>,
}

impl StreamWriter {
    /// A writer of `body` after the head of `parts`, on `stream`.
    pub fn new(stream: TcpStream, parts: Parts, body: Body) -> Self {
        Self {
            stream,
            body,
            out: encode_head(parts, None).freeze(),
            ended: false,
            _drain: None,
        }
    }

    /// The same writer, counted by the drain of `watcher` until it ends.
    pub fn watched_by(self, watcher: Watcher) -> Self {
        Self {
            _drain: Some(watcher),
            ..self
        }
    }

    /// Writes, then takes the next frame, until the body ended and all of it
    /// is written; then closes.
    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_flush_out(cx))?;
            if self.ended {
                return Pin::new(&mut self.stream).poll_shutdown(cx);
            }
            if client_left(&self.stream, cx) {
                return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                // Trailers are not sent, nor empty frames: an empty chunk
                // would end the body.
                Some(Ok(frame)) => {
                    if let Some(data) = frame.into_data().ok().filter(|d| !d.is_empty()) {
                        self.out = chunk(&data);
                    }
                }
                None => {
                    self.ended = true;
                    self.out = Bytes::from_static(LAST_CHUNK);
                }
            }
        }
    }

    /// Writes all of `out`, then lets its buffer go: an idle stream keeps
    /// none.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        self.out = Bytes::new();
        Poll::Ready(Ok(()))
    }
}

impl Future for StreamWriter {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ended = ready!(self.get_mut().poll_stream(cx));
        if let Err(e) = ended {
            tracing::debug!(error = %e, "event stream ended early");
        }
        Poll::Ready(())
    }
}

/// Whether the client closed its side or the socket failed; registers for
/// a wake-up otherwise. Bytes sent after the request are read and dropped:
/// the connection closes after this response anyway.
fn client_left(stream: &TcpStream, cx: &mut Context<'_>) -> bool {
    let mut scratch = [0u8; 64];
    loop {
        match stream.poll_read_ready(cx) {
            Poll::Pending => return false,
            Poll::Ready(Err(_)) => return true,
            Poll::Ready(Ok(())) => match stream.try_read(&mut scratch) {
                Ok(0) => return true,
                Ok(_) => {}
                // Readiness cleared: the next poll registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return true,
            },
        }
    }
}

/// The response head as hyper writes it, plus `connection: close`: the
/// headers, then `content-length` (known length) or chunked framing, then
/// `date`.
fn encode_head(parts: Parts, length: Option<u64>) -> BytesMut {
    let mut head = BytesMut::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("<none>").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        header_line(&mut head, name.as_str(), value.as_bytes());
    }
    match length {
        Some(n) => header_line(&mut head, "content-length", itoa::Buffer::new().format(n).as_bytes()),
        None => header_line(&mut head, "transfer-encoding", b"chunked"),
    }
    header_line(&mut head, "connection", b"close");
    header_line(&mut head, "date", httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    head.extend_from_slice(b"\r\n");
    head
}

fn header_line(head: &mut BytesMut, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// One chunk: its size as hyper writes it (upper-case hex), CRLF, the
/// data, CRLF.
fn chunk(data: &[u8]) -> Bytes {
    use std::fmt::Write;
    let mut out = BytesMut::with_capacity(data.len() + 20);
    write!(out, "{:X}\r\n", data.len()).expect("writing to memory cannot fail");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, StatusCode};

    use super::*;
    use crate::http::body;

    #[test]
    fn a_chunk_is_its_size_in_upper_case_hex_then_the_data() {
        let expected = [&b"FA\r\n"[..], &[b'x'; 250], b"\r\n"].concat();
        assert_eq!(&chunk(&[b'x'; 250])[..], &expected[..]);
    }

    #[test]
    fn a_head_has_the_response_headers_framing_and_close() {
        let mut response = body::empty(StatusCode::TOO_MANY_REQUESTS);
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("2"));
        let head = encode_head(response.into_parts().0, Some(12));
        let head = std::str::from_utf8(&head).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\ncontent-length: 12\r\nconnection: close\r\ndate: "),
            "{head}"
        );
        assert!(head.ends_with(" GMT\r\n\r\n"), "{head}");
        let streaming = encode_head(body::empty(StatusCode::OK).into_parts().0, None);
        let streaming = std::str::from_utf8(&streaming).unwrap();
        assert!(
            streaming.contains("\r\ntransfer-encoding: chunked\r\nconnection: close\r\n"),
            "{streaming}"
        );
    }
}
