//! The event stream of a token: the current state first, then every
//! change, ending once the token is ACTIVE or EXPIRED; an open stream counts
//! as a sighting (API.md "Waiting queue").

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;

use super::{config, leave_ok, line_up, open_events, quick_idle_config, stored_token, waiting_room};
use crate::helpers::{assert_problem, TestConfig};

/// Reads Server-Sent Events from a response body.
struct EventStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: Vec<u8>,
}

/// One event: its name and its JSON data.
#[derive(Debug)]
struct Event {
    name: String,
    data: Value,
}

impl EventStream {
    fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
        }
    }

    /// The next event (comments skipped); `None` once the stream has ended.
    /// Panics when nothing arrives within `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Event> {
        tokio::time::timeout(limit, self.read())
            .await
            .unwrap_or_else(|_| panic!("no event or end of stream within {limit:?}"))
    }

    async fn read(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("events are UTF-8");
                let mut name = String::from("message");
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if !data.is_empty() {
                    let data = serde_json::from_str(&data).expect("event data is JSON");
                    return Some(Event { name, data });
                }
            }
            match self.body.next().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk.expect("the stream reads")),
                None => {
                    assert!(self.buffer.iter().all(|b| b.is_ascii_whitespace()), "a cut-off event");
                    return None;
                }
            }
        }
    }
}

#[tokio::test]
async fn the_event_stream_sends_the_current_state_then_activation_and_ends() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    let [holder, waiter] = line_up(&app, &fans, concert.id).await;

    // Act
    let response = open_events(&app, &waiter, None).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut events = EventStream::new(response);
    let first = events.next(Duration::from_secs(2)).await.expect("a first event");
    assert_eq!(first.name, "status");
    assert_eq!(first.data["token"], waiter.as_str());
    assert_eq!(first.data["user_id"], fans[1].id);
    assert_eq!(first.data["concert_id"], concert.id);
    assert_eq!(first.data["status"], "WAITING");
    assert_eq!(first.data["position"], 1);
    assert!(first.data["issued_at"].is_string());

    leave_ok(&app, &fans[0], &holder).await;
    let activation = loop {
        let event = events.next(Duration::from_secs(2)).await.expect("an activation event");
        assert_eq!(event.name, "status");
        if event.data["status"] != "WAITING" {
            break event;
        }
    };
    assert_eq!(activation.data["status"], "ACTIVE", "{:?}", activation.data);
    assert_eq!(activation.data["position"], 0);
    assert_eq!(activation.data["token"], waiter.as_str());
    assert!(activation.data["active_until"].is_string());
    assert!(
        events.next(Duration::from_secs(2)).await.is_none(),
        "the stream ends after ACTIVE"
    );
}

#[tokio::test]
async fn the_event_stream_of_an_active_or_expired_token_sends_one_event_and_ends() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 2).await;
    let active = app.active_token(&fans[0], concert.id).await;
    let expired = app.active_token(&fans[1], concert.id).await;
    leave_ok(&app, &fans[1], &expired).await;

    for (token, status) in [(&active, "ACTIVE"), (&expired, "EXPIRED")] {
        // Act
        let response = open_events(&app, token, None).await;

        // Assert
        assert_eq!(response.status(), StatusCode::OK);
        let mut events = EventStream::new(response);
        let only = events.next(Duration::from_secs(2)).await.expect("one event");
        assert_eq!(only.name, "status");
        assert_eq!(only.data["status"], status);
        assert!(events.next(Duration::from_secs(2)).await.is_none());
    }
}

#[tokio::test]
async fn the_event_stream_of_a_waiter_who_leaves_sends_expired_and_ends() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    let [_, waiter] = line_up(&app, &fans, concert.id).await;
    let mut events = EventStream::new(open_events(&app, &waiter, None).await);
    assert_eq!(
        events.next(Duration::from_secs(2)).await.unwrap().data["status"],
        "WAITING"
    );

    // Act
    leave_ok(&app, &fans[1], &waiter).await;

    // Assert
    let last = events.next(Duration::from_secs(3)).await.expect("an EXPIRED event");
    assert_eq!(last.data["status"], "EXPIRED");
    assert_eq!(last.data["position"], 0);
    assert!(
        events.next(Duration::from_secs(2)).await.is_none(),
        "the stream ends after EXPIRED"
    );
}

#[tokio::test]
async fn the_event_stream_reports_position_changes() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 3).await;
    let [_, ahead, behind] = line_up(&app, &fans, concert.id).await;
    let mut events = EventStream::new(open_events(&app, &behind, None).await);
    assert_eq!(events.next(Duration::from_secs(2)).await.unwrap().data["position"], 2);

    // Act
    leave_ok(&app, &fans[1], &ahead).await;

    // Assert
    let moved = events.next(Duration::from_secs(3)).await.expect("a position event");
    assert_eq!(moved.data["status"], "WAITING");
    assert_eq!(moved.data["position"], 1);
}

#[tokio::test]
async fn an_open_event_stream_keeps_a_waiter_from_idling_out() {
    // Arrange: one slot, a one-second idle timeout; B streams, C does not.
    let (app, concert, fans) = waiting_room(quick_idle_config(), 3).await;
    let [holder, streamer, silent] = line_up(&app, &fans, concert.id).await;
    let mut events = EventStream::new(open_events(&app, &streamer, Some(&fans[1])).await);
    assert_eq!(
        events.next(Duration::from_secs(2)).await.unwrap().data["status"],
        "WAITING"
    );

    // Act: three seconds with the stream open and no polls.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Assert: read from Redis first, so no sighting can help.
    assert_eq!(stored_token(&app, &streamer).await["status"], "WAITING");
    assert_eq!(
        stored_token(&app, &silent).await["status"],
        "EXPIRED",
        "the control waiter idled out"
    );
    assert_eq!(app.token_status(&streamer).await["position"], 1);
    leave_ok(&app, &fans[0], &holder).await;
    let activation = events.next(Duration::from_secs(2)).await.expect("an activation event");
    assert_eq!(activation.data["status"], "ACTIVE");
}

#[tokio::test]
async fn the_event_stream_with_another_users_key_is_403() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 2).await;
    let token = app.active_token(&fans[0], concert.id).await;

    // Act
    let as_stranger = open_events(&app, &token, Some(&fans[1])).await;
    let as_owner = open_events(&app, &token, Some(&fans[0])).await;

    // Assert
    assert_problem(as_stranger, 403, "FORBIDDEN").await;
    assert_eq!(as_owner.status(), StatusCode::OK);
}
