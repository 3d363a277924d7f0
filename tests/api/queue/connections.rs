//! The event stream on the wire (API.md "Waiting queue"): one asked for on a
//! new connection is written beside hyper, with `connection: close` and
//! hyper's chunked framing; one asked for on a kept-alive connection, or
//! that hyper must read itself, is hyper's. Both answer the same.

use std::time::Duration;

use serde_json::Value;
use ticketrush::queue::QueueToken;

use super::wire::{events_path, get_request, Head, Wire};
use super::{config, leave_ok, line_up, waiting_room};
use crate::helpers::{eventually, TestApp, TestConfig};

/// Asserts the head of an event stream; `close` tells whether the server
/// ends the connection with it (the path beside hyper) or keeps it (hyper).
fn assert_stream_head(head: &Head, close: bool) {
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.get("content-type"), Some("text/event-stream"), "{head:?}");
    assert_eq!(head.get("cache-control"), Some("no-cache"), "{head:?}");
    assert_eq!(head.get("transfer-encoding"), Some("chunked"), "{head:?}");
    assert_eq!(head.get("content-length"), None, "{head:?}");
    assert_eq!(head.get("connection"), close.then_some("close"), "{head:?}");
    assert!(head.get("date").is_some(), "{head:?}");
}

/// Reads a problem document after its head; asserts its status, code and
/// envelope, and that the server then closes the connection.
async fn assert_problem_on(wire: &mut Wire, head: &Head, status: u16, code: &str) -> Value {
    assert_eq!(head.status, status, "{head:?}");
    assert_eq!(head.get("content-type"), Some("application/problem+json"), "{head:?}");
    assert_eq!(head.get("connection"), Some("close"), "{head:?}");
    let body = wire.json_body(head).await;
    assert_eq!(
        (&body["status"], &body["code"]),
        (&status.into(), &code.into()),
        "{body}"
    );
    assert_eq!(body["type"], "about:blank");
    assert!(wire.closed().await, "the server closes after a problem");
    body
}

/// The `queue_event_streams` gauge of the server's `/metrics`.
async fn open_streams_gauge(app: &TestApp) -> f64 {
    let text = app.get("/metrics", None).await.text().await.expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix("queue_event_streams "))
        .map_or(0.0, |v| v.trim().parse().expect("a gauge value"))
}

#[tokio::test]
async fn an_event_stream_on_a_new_connection_is_chunked_and_closes_after_activation() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    let [holder, waiter] = line_up(&app, &fans, concert.id).await;
    let mut wire = Wire::connect(&app).await;

    // Act
    let head = wire.get(&events_path(&waiter), None).await;

    // Assert
    assert_stream_head(&head, true);
    let first = wire.event().await.expect("a first event");
    assert_eq!((&first["status"], &first["position"]), (&"WAITING".into(), &1.into()));
    assert_eq!(first["token"], waiter.as_str());
    leave_ok(&app, &fans[0], &holder).await;
    let last = loop {
        let event = wire.event().await.expect("an activation event");
        if event["status"] != "WAITING" {
            break event;
        }
    };
    assert_eq!(last["status"], "ACTIVE", "{last}");
    assert!(wire.event().await.is_none(), "the last chunk follows ACTIVE");
    assert!(wire.closed().await, "the server closes after the last chunk");
}

#[tokio::test]
async fn an_event_stream_of_an_active_or_expired_token_on_a_new_connection_sends_one_event_and_closes() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 2).await;
    let active = app.active_token(&fans[0], concert.id).await;
    let expired = app.active_token(&fans[1], concert.id).await;
    leave_ok(&app, &fans[1], &expired).await;

    for (token, status) in [(&active, "ACTIVE"), (&expired, "EXPIRED")] {
        // Act
        let mut wire = Wire::connect(&app).await;
        let head = wire.get(&events_path(token), None).await;

        // Assert
        assert_stream_head(&head, true);
        assert_eq!(wire.event().await.expect("one event")["status"], status);
        assert!(wire.event().await.is_none(), "then the last chunk");
        assert!(wire.closed().await, "then the server closes");
    }
}

#[tokio::test]
async fn event_stream_errors_on_a_new_connection_are_problem_documents_and_counted() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 2).await;
    let token = app.active_token(&fans[0], concert.id).await;
    let unknown = QueueToken::generate(concert.id);

    // Act and Assert
    for path in [events_path(unknown.as_str()), events_path("nope")] {
        let mut wire = Wire::connect(&app).await;
        let head = wire.get(&path, None).await;
        assert_problem_on(&mut wire, &head, 404, "TOKEN_NOT_FOUND").await;
    }
    let mut wire = Wire::connect(&app).await;
    let head = wire.get(&events_path(&token), Some(&fans[1])).await;
    assert_problem_on(&mut wire, &head, 403, "FORBIDDEN").await;
    let metrics = app.get("/metrics", None).await.text().await.expect("metrics text");
    for status in ["403", "404"] {
        let series = format!(r#"route="/v1/queue/tokens/{{token}}/events",method="GET",status="{status}""#);
        assert!(metrics.contains(&series), "{series} in {metrics}");
    }
}

#[tokio::test]
async fn event_streams_opened_in_a_tight_loop_on_new_connections_are_rate_limited() {
    // Arrange: an ACTIVE token, so each stream is one event and its end.
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let token = app.active_token(&fans[0], concert.id).await;

    // Act: open streams one after the other until one is refused.
    let mut served = 0;
    let mut refused = None;
    for _ in 0..300 {
        let mut wire = Wire::connect(&app).await;
        let head = wire.get(&events_path(&token), None).await;
        if head.status != 200 {
            refused = Some((wire, head));
            break;
        }
        assert_eq!(wire.event().await.expect("one event")["status"], "ACTIVE");
        served += 1;
    }

    // Assert
    let (mut wire, head) = refused.expect("a stream refused within 300 opens");
    assert!(served >= 60, "the burst is served first: {served}");
    let retry_after: u64 = head
        .get("retry-after")
        .expect("a retry-after")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    assert_problem_on(&mut wire, &head, 429, "RATE_LIMITED").await;
}

#[tokio::test]
async fn an_event_stream_asked_for_on_a_kept_alive_connection_is_served_by_hyper() {
    // Arrange: a connection whose first request is another one.
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    let [holder, waiter] = line_up(&app, &fans, concert.id).await;
    let mut wire = Wire::connect(&app).await;
    let health = wire.get("/healthz", None).await;
    assert_eq!((health.status, health.get("connection")), (200, None));
    wire.json_body(&health).await;

    // Act
    let head = wire.get(&events_path(&waiter), None).await;

    // Assert: the same stream, and the connection stays open after it.
    assert_stream_head(&head, false);
    assert_eq!(wire.event().await.expect("a first event")["status"], "WAITING");
    leave_ok(&app, &fans[0], &holder).await;
    while wire.event().await.expect("an activation event")["status"] == "WAITING" {}
    assert!(wire.event().await.is_none(), "the last chunk follows ACTIVE");
    assert_eq!(
        wire.get("/healthz", None).await.status,
        200,
        "the connection is still open"
    );
}

#[tokio::test]
async fn an_event_stream_request_with_a_body_is_handed_to_hyper_whole() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let token = app.active_token(&fans[0], concert.id).await;
    let mut wire = Wire::connect(&app).await;

    // Act: hyper must read the body, so it gets the head already read back.
    let request = format!(
        "GET {} HTTP/1.1\r\nhost: test\r\ncontent-length: 4\r\n\r\nbody",
        events_path(&token)
    );
    wire.send(&request).await;

    // Assert
    let head = wire.head().await;
    assert_stream_head(&head, false);
    assert_eq!(wire.event().await.expect("one event")["status"], "ACTIVE");
    assert!(wire.event().await.is_none());
}

#[tokio::test]
async fn an_event_stream_head_sent_in_parts_is_read_whole() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 2).await;
    let token = app.active_token(&fans[0], concert.id).await;
    let line = format!("GET {} HTTP/1.1\r\n", events_path(&token));
    // The whole request line first (served beside hyper), or cut within it
    // (hyper's); the user key always comes in the second part.
    let splits = [line.len(), 20];

    for (user, status) in [(&fans[0], 200), (&fans[1], 403)] {
        for split in splits {
            // Act
            let mut wire = Wire::connect(&app).await;
            let request = get_request(&events_path(&token), Some(user));
            wire.send(&request[..split]).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            wire.send(&request[split..]).await;

            // Assert
            let head = wire.head().await;
            assert_eq!(head.status, status, "split at {split}: {head:?}");
            let beside_hyper = split == line.len();
            assert_eq!(
                head.get("connection"),
                beside_hyper.then_some("close"),
                "split at {split}"
            );
            if status == 200 {
                assert_eq!(wire.event().await.expect("one event")["status"], "ACTIVE");
            }
        }
    }
}

#[tokio::test]
async fn closing_the_socket_of_an_event_stream_lowers_the_open_streams_gauge() {
    // Arrange: three waiters streaming on new connections.
    let (app, concert, fans) = waiting_room(config(1), 4).await;
    let [_, a, b, c] = line_up(&app, &fans, concert.id).await;
    let mut wires = Vec::new();
    for token in [&a, &b, &c] {
        let mut wire = Wire::connect(&app).await;
        assert_stream_head(&wire.get(&events_path(token), None).await, true);
        assert_eq!(wire.event().await.expect("a first event")["status"], "WAITING");
        wires.push(wire);
    }
    let open = open_streams_gauge(&app).await;
    assert!(open >= 3.0, "{open} open");

    // Act
    drop(wires);

    // Assert: well before the first keep-alive (15 s) would find out.
    let fell = eventually(Duration::from_secs(5), || async {
        open_streams_gauge(&app).await <= open - 3.0
    })
    .await;
    assert!(fell, "the gauge stayed at {}", open_streams_gauge(&app).await);
}

#[tokio::test]
async fn shutdown_ends_an_event_stream_of_a_new_connection_with_its_last_chunk() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    let [_, waiter] = line_up(&app, &fans, concert.id).await;
    let mut wire = Wire::connect(&app).await;
    assert_stream_head(&wire.get(&events_path(&waiter), None).await, true);
    assert_eq!(wire.event().await.expect("a first event")["status"], "WAITING");

    // Act
    let shutdown = tokio::spawn(app.shutdown());

    // Assert: the stream ends at once, and so does the drain (not at its
    // 10 s deadline).
    assert!(wire.event().await.is_none(), "the last chunk on shutdown");
    assert!(wire.closed().await);
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown completes before the drain deadline")
        .expect("the shutdown task does not panic")
        .expect("the server stops cleanly");
}
