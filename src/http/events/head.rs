//! The request head of an event stream: read into a bounded, short-lived
//! buffer and parsed with `httparse`, as hyper parses its own.

use http::header::{CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// First capacity of the head buffer, enough for a browser's head.
const HEAD_BYTES: usize = 1024;

/// Longest request head read here; a longer one is answered `431`, as hyper
/// answers a head over its own limit.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Most header lines in a head (hyper's limit too).
const MAX_HEADERS: usize = 100;

/// How reading a request head ended.
pub enum Head {
    /// A whole `GET` without a body: served by the event-stream path.
    Request(HeaderMap),
    /// A head for hyper, as far as it was read.
    Hyper(Vec<u8>),
    /// Over [`MAX_HEAD_BYTES`].
    TooLarge,
    /// The client left before sending it whole.
    Gone,
}

/// Reads a request head into a buffer that grows to [`MAX_HEAD_BYTES`] at
/// most; the buffer is gone once this returns (but for hyper's heads).
pub async fn read_head(stream: &mut TcpStream) -> Head {
    let mut read = Vec::with_capacity(HEAD_BYTES);
    loop {
        if read.len() == read.capacity() {
            if read.len() >= MAX_HEAD_BYTES {
                return Head::TooLarge;
            }
            read.reserve_exact(read.len().min(MAX_HEAD_BYTES - read.len()));
        }
        match stream.read_buf(&mut read).await {
            Ok(0) | Err(_) => return Head::Gone,
            Ok(_) => {}
        }
        match parse_head(&read) {
            Parsed::Partial => {}
            Parsed::Request(headers) => return Head::Request(headers),
            Parsed::Hyper => return Head::Hyper(read),
        }
    }
}

/// What the bytes of a head read so far say.
#[derive(Debug)]
enum Parsed {
    Partial,
    Request(HeaderMap),
    /// For hyper to answer, as it always has: not a bodiless HTTP/1.1 `GET`,
    /// bytes past the head (a pipelined request), or invalid.
    Hyper,
}

fn parse_head(read: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(read) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(len))
            if len == read.len() && request.method == Some("GET") && request.version == Some(1) =>
        {
            header_map(request.headers).map_or(Parsed::Hyper, Parsed::Request)
        }
        _ => Parsed::Hyper,
    }
}

/// The headers as a map; `None` when one announces a body or an `Expect`,
/// or is not a valid header.
fn header_map(headers: &[httparse::Header<'_>]) -> Option<HeaderMap> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for header in headers {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let body = (name == CONTENT_LENGTH && header.value != b"0") || name == TRANSFER_ENCODING;
        if body || name == EXPECT {
            return None;
        }
        map.append(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(extra: &str) -> String {
        format!("GET /e HTTP/1.1\r\nhost: x\r\n{extra}\r\n")
    }

    #[test]
    fn a_bodiless_get_head_is_a_request_with_its_headers() {
        match parse_head(head("authorization: Bearer k\r\ncontent-length: 0\r\n").as_bytes()) {
            Parsed::Request(map) => {
                assert_eq!(map["authorization"], "Bearer k");
                assert_eq!(map["host"], "x");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_head(b"GET /e HTTP/1.1\r\nhost: x\r\n"), Parsed::Partial));
    }

    #[test]
    fn bodies_expectations_pipelined_requests_and_bad_headers_are_hyper_s() {
        for extra in [
            "content-length: 5\r\n",
            "transfer-encoding: chunked\r\n",
            "expect: 100-continue\r\n",
        ] {
            assert!(matches!(parse_head(head(extra).as_bytes()), Parsed::Hyper), "{extra}");
        }
        let pipelined = format!("{}GET /healthz HTTP/1.1\r\n\r\n", head(""));
        assert!(matches!(parse_head(pipelined.as_bytes()), Parsed::Hyper));
        assert!(matches!(
            parse_head(b"GET /e HTTP/1.1\r\nbad header\r\n\r\n"),
            Parsed::Hyper
        ));
        assert!(matches!(parse_head(b"GET /e HTTP/1.0\r\n\r\n"), Parsed::Hyper));
    }
}
