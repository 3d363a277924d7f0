//! Queue event streams served beside hyper, so that an open stream costs
//! little memory.
//!
//! hyper's HTTP/1 connection keeps an 8 KiB read and an 8 KiB write buffer
//! for as long as it lives: ten thousand open event streams held 260 MiB,
//! most of it those buffers. So [`answer`] first peeks at each new
//! connection. When its first request line is an HTTP/1.1 `GET` of the
//! event-stream route (the route table decides), it reads the head into a
//! short-lived buffer ([`head`]) and answers through the very handler of the
//! hyper route; a [`StreamWriter`] then writes the response: the head with
//! `connection: close`, each event as a chunk (hyper's framing), the last
//! chunk, then it closes. While it streams, the connection holds its socket,
//! the response body and little else.
//!
//! Everything else is hyper's, as before, with any bytes already read given
//! back ([`Rewind`]): other paths, a request line the peek did not get
//! whole, HTTP/1.0, other methods, a request with a body or `Expect`, bytes
//! past the head, a head hyper would reject. A connection whose first
//! request went to hyper stays there: its event streams are hyper's too.

mod head;
mod write;

use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Response, StatusCode};
use hyper::body::Body as _;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use write::StreamWriter;

use self::head::Head;
use super::rewind::Rewind;
use super::router::{self, Match, Route};
use super::{body, handlers, ApiError, AppState, Body};

/// Bytes peeked at to route a new connection; the request line of an event
/// stream takes about 70.
const PEEK_BYTES: usize = 256;

/// How a request line for an event stream begins; any other is hyper's
/// without asking the route table.
const EVENTS_PREFIX: &[u8] = b"GET /v1/queue/tokens/";

/// An event stream asked for by a request line.
#[derive(Debug, PartialEq, Eq)]
struct EventsRequest {
    /// The route's pattern: the metrics label.
    pattern: &'static str,
    /// The token, as the path gives it.
    param: String,
}

/// Who serves a new connection, and what is left to do.
pub enum Routed {
    /// An event stream, answered: its response is to be written.
    Stream(StreamWriter),
    /// hyper, with the bytes read so far given back.
    Hyper(Rewind),
    /// Nobody, or nothing more: the client left or sent nothing in time,
    /// shutdown began before it did (hyper closes an idle connection then
    /// too), or a whole answer (a problem document) was written.
    Closed,
}

/// Reads a new connection's first request as far as needed to see who
/// serves it, within `deadline`; answers an event stream through the
/// handler of the hyper route.
pub async fn answer(stream: TcpStream, state: &AppState, deadline: Instant) -> Routed {
    match sniff(&stream, deadline, &state.shutdown).await {
        Sniffed::Events(request) => answer_events(stream, state, request, deadline).await,
        Sniffed::Hyper => Routed::Hyper(Rewind::new(stream)),
        Sniffed::Silent => Routed::Closed,
    }
}

/// Who a connection's first bytes say serves it.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    Events(EventsRequest),
    /// Anything else, and whatever the peek could not tell.
    Hyper,
    /// Nothing came before the deadline or shutdown.
    Silent,
}

/// Peeks at the first bytes of a new connection.
async fn sniff(stream: &TcpStream, deadline: Instant, shutdown: &CancellationToken) -> Sniffed {
    let mut peeked = [0u8; PEEK_BYTES];
    let peek = tokio::select! {
        peek = tokio::time::timeout_at(deadline, stream.peek(&mut peeked)) => peek,
        () = shutdown.cancelled() => return Sniffed::Silent,
    };
    match peek {
        Ok(Ok(n)) => events_request(&peeked[..n]).map_or(Sniffed::Hyper, Sniffed::Events),
        Ok(Err(_)) => Sniffed::Hyper,
        Err(_elapsed) => Sniffed::Silent,
    }
}

/// The event stream that a connection's first bytes ask for, when they hold
/// a whole HTTP/1.1 `GET` request line of that route.
fn events_request(peeked: &[u8]) -> Option<EventsRequest> {
    if !peeked.starts_with(EVENTS_PREFIX) {
        return None;
    }
    let end = peeked.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&peeked[..end]).ok()?;
    let target = line.strip_prefix("GET ")?.strip_suffix(" HTTP/1.1")?;
    let target = PathAndQuery::try_from(target).ok()?;
    match router::find(&Method::GET, target.path()) {
        Match::Found(Route::StreamQueueEvents, pattern, param) => Some(EventsRequest { pattern, param }),
        _ => None,
    }
}

/// Reads the head of an event-stream request (by `deadline`) and answers
/// it; gives the connection to hyper, with what was read of it, when the
/// head turns out to be one for hyper.
async fn answer_events(mut stream: TcpStream, state: &AppState, request: EventsRequest, deadline: Instant) -> Routed {
    let head = tokio::select! {
        head = tokio::time::timeout_at(deadline, head::read_head(&mut stream)) => head.unwrap_or(Head::Gone),
        () = state.shutdown.cancelled() => Head::Gone,
    };
    let response = match head {
        Head::Request(headers) => respond(state, &request, headers).await,
        Head::Hyper(read) => return Routed::Hyper(Rewind::with_prefix(stream, read)),
        Head::TooLarge => body::empty(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Head::Gone => return Routed::Closed,
    };
    let (parts, body) = response.into_parts();
    let Some(length) = body.size_hint().exact() else {
        return Routed::Stream(StreamWriter::new(stream, parts, body));
    };
    if let Err(e) = write::write_whole(stream, parts, body, length).await {
        tracing::debug!(error = %e, "writing an answer failed");
    }
    Routed::Closed
}

/// The handler's response, counted as hyper's requests are.
async fn respond(state: &AppState, request: &EventsRequest, headers: HeaderMap) -> Response<Body> {
    let started = std::time::Instant::now();
    let answer = handlers::stream_queue_events(state, &headers, &request.param).await;
    let response = answer.unwrap_or_else(ApiError::into_response);
    super::record(request.pattern, &Method::GET, response.status(), started);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "7.aaaaaaaaaaaaaaaaaaaaaa";

    fn line(text: &str) -> Option<EventsRequest> {
        events_request(text.as_bytes())
    }

    #[test]
    fn a_whole_http11_get_line_of_the_events_route_is_served_here() {
        let expected = EventsRequest {
            pattern: "/v1/queue/tokens/{token}/events",
            param: TOKEN.into(),
        };
        assert_eq!(
            line(&format!("GET /v1/queue/tokens/{TOKEN}/events HTTP/1.1\r\nho")),
            Some(expected)
        );
        let with_query = line(&format!("GET /v1/queue/tokens/{TOKEN}/events?x=1 HTTP/1.1\r\n"));
        assert_eq!(with_query.map(|r| r.param), Some(TOKEN.to_owned()));
    }

    #[test]
    fn other_lines_cut_lines_and_other_versions_are_hyper_s() {
        for text in [
            format!("GET /v1/queue/tokens/{TOKEN} HTTP/1.1\r\n"),
            format!("GET /v1/queue/tokens/{TOKEN}/events HTTP/1.0\r\n"),
            format!("HEAD /v1/queue/tokens/{TOKEN}/events HTTP/1.1\r\n"),
            format!("GET /v1/queue/tokens/{TOKEN}/events HTTP/1.1"),
            format!("GET /v1/queue/tokens/{TOKEN}/events/ HTTP/1.1\r\n"),
            format!("GET /v1/queue/tokens/{TOKEN}/events  HTTP/1.1\r\n"),
            "GET /v1/queue/tok".to_owned(),
            "GET /healthz HTTP/1.1\r\n".to_owned(),
        ] {
            assert_eq!(line(&text), None, "{text:?}");
        }
    }
}
