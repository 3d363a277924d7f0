//! A raw HTTP/1.1 client for the tests that look at the wire itself: the
//! framing of event streams, which connection serves them, when the server
//! closes. Every read is bounded in time.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, TestUser};

/// How long one read may wait for the server.
const READ_LIMIT: Duration = Duration::from_secs(5);

/// One connection to a test server.
pub struct Wire {
    socket: TcpStream,
    /// Bytes read and not consumed yet.
    read: Vec<u8>,
}

/// A response head: status and headers (names in lower case).
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The value of a header, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A request head: `GET path` with a host and an optional user key.
pub fn get_request(path: &str, user: Option<&TestUser>) -> String {
    let auth = user.map(|u| format!("authorization: Bearer {}\r\n", u.key));
    format!("GET {path} HTTP/1.1\r\nhost: test\r\n{}\r\n", auth.unwrap_or_default())
}

/// The path of a token's event stream.
pub fn events_path(token: &str) -> String {
    format!("/v1/queue/tokens/{token}/events")
}

impl Wire {
    /// A new connection to `app`.
    pub async fn connect(app: &TestApp) -> Self {
        let socket = TcpStream::connect(app.addr).await.expect("the server accepts");
        Self {
            socket,
            read: Vec::new(),
        }
    }

    /// Sends bytes as they are.
    pub async fn send(&mut self, text: &str) {
        self.socket
            .write_all(text.as_bytes())
            .await
            .expect("the request is sent");
    }

    /// Sends `GET path` (with a user key when given) and reads the head.
    pub async fn get(&mut self, path: &str, user: Option<&TestUser>) -> Head {
        self.send(&get_request(path, user)).await;
        self.head().await
    }

    /// Reads more from the socket; false at its end.
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(READ_LIMIT, self.socket.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("nothing from the server within {READ_LIMIT:?}"))
            .expect("the socket reads");
        self.read.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// Takes the bytes up to and including `end`, reading as needed.
    async fn take_through(&mut self, end: &[u8]) -> Vec<u8> {
        loop {
            if let Some(at) = self.read.windows(end.len()).position(|w| w == end) {
                return self.read.drain(..at + end.len()).collect();
            }
            assert!(self.fill().await, "the connection closed in the middle of a message");
        }
    }

    /// Reads a response head.
    pub async fn head(&mut self) -> Head {
        let raw = String::from_utf8(self.take_through(b"\r\n\r\n").await).expect("a UTF-8 head");
        let mut lines = raw.trim_end().split("\r\n");
        let status_line = lines.next().expect("a status line");
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {status_line:?}"));
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("a header line");
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        Head { status, headers }
    }

    /// Reads a body of `len` bytes.
    pub async fn body(&mut self, len: usize) -> Vec<u8> {
        while self.read.len() < len {
            assert!(self.fill().await, "the connection closed in the middle of a body");
        }
        self.read.drain(..len).collect()
    }

    /// Reads a body of the length its head announces, as JSON.
    pub async fn json_body(&mut self, head: &Head) -> Value {
        let len = head
            .get("content-length")
            .expect("a content-length")
            .parse()
            .expect("a length");
        serde_json::from_slice(&self.body(len).await).expect("a JSON body")
    }

    /// The data of the next chunk of a chunked body; `None` for the last
    /// chunk (`0\r\n\r\n`).
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        let line = String::from_utf8(self.take_through(b"\r\n").await).expect("a UTF-8 size line");
        let size = usize::from_str_radix(line.trim_end(), 16).unwrap_or_else(|_| panic!("bad chunk size {line:?}"));
        let data = self.body(size + 2).await;
        assert_eq!(&data[size..], b"\r\n", "a chunk ends with CRLF");
        (size > 0).then(|| data[..size].to_vec())
    }

    /// The data of the next `status` event of a chunked event stream
    /// (keep-alive comments skipped); `None` once the body has ended.
    pub async fn event(&mut self) -> Option<Value> {
        loop {
            let chunk = String::from_utf8(self.chunk().await?).expect("UTF-8 events");
            if chunk.starts_with(':') {
                continue;
            }
            let data = chunk
                .strip_prefix("event: status\ndata: ")
                .and_then(|rest| rest.strip_suffix("\n\n"))
                .unwrap_or_else(|| panic!("one status event a chunk, got {chunk:?}"));
            return Some(serde_json::from_str(data).expect("event data is JSON"));
        }
    }

    /// Whether the server closes the connection with nothing more to read.
    pub async fn closed(&mut self) -> bool {
        self.read.is_empty() && !self.fill().await
    }
}
