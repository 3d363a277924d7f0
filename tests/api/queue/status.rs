//! Reading a token: who may read it, how long an expired one is kept, the
//! 404 of unknown ones, and what Postgres holds once the write-behind has
//! drained (API.md "Waiting queue").

use std::collections::HashMap;
use std::time::Duration;

use fred::interfaces::KeysInterface;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{config, leave, leave_ok, line_up, open_events, waiting_room};
use crate::helpers::{assert_problem, TestConfig};

#[tokio::test]
async fn expired_tokens_read_as_expired_for_an_hour_then_are_404() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let user = &fans[0];
    let token = app.active_token(user, concert.id).await;
    let key = format!("{}t:{token}", app.redis.keys().concert(concert.id));
    let live_ttl: i64 = app.redis.client().ttl(&key).await.unwrap();
    assert_eq!(live_ttl, -1, "a live token never times out on its own");
    leave_ok(&app, user, &token).await;

    // Act
    let kept_for: i64 = app.redis.client().ttl(&key).await.unwrap();
    let read = app.get(&format!("/v1/queue/tokens/{token}"), None).await;

    // Assert
    assert!((3_590..=3_600).contains(&kept_for), "kept for an hour: {kept_for} s");
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.json::<Value>().await.unwrap()["status"], "EXPIRED");
    // The hour passes.
    let _: bool = app.redis.client().pexpire(&key, 1, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_problem(
        app.get(&format!("/v1/queue/tokens/{token}"), None).await,
        404,
        "TOKEN_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn a_waiting_token_written_another_way_is_not_found() {
    // Arrange: a waiter whose token the instance has read, so knows.
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    let [_active, waiting] = line_up::<2>(&app, &fans, concert.id).await;
    let read = app.get(&format!("/v1/queue/tokens/{waiting}"), None).await;
    assert_eq!(read.json::<Value>().await.unwrap()["status"], "WAITING");
    let (concert_part, secret) = waiting.split_once('.').unwrap();

    for other in [format!("0{concert_part}.{secret}"), format!("+{concert_part}.{secret}")] {
        // Act
        let read = app.get(&format!("/v1/queue/tokens/{other}"), None).await;

        // Assert: the same concert and secret, but not the token issued.
        assert_problem(read, 404, "TOKEN_NOT_FOUND").await;
    }
}

#[tokio::test]
async fn unknown_or_malformed_tokens_are_404_token_not_found() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let user = &fans[0];
    let real = app.active_token(user, concert.id).await;
    let unknown = format!("{}.{}", concert.id, "A".repeat(22));
    let other_concert = format!("{}.{}", concert.id + 7, &real[real.len() - 22..]);

    for token in [
        unknown.as_str(),
        other_concert.as_str(),
        "nonsense",
        "1.short",
        &"x".repeat(70),
    ] {
        // Act
        let read = app.get(&format!("/v1/queue/tokens/{token}"), None).await;
        let read_as_user = app.get(&format!("/v1/queue/tokens/{token}"), Some(user)).await;
        let stream = open_events(&app, token, None).await;
        let left = leave(&app, user, token).await;

        // Assert
        assert_problem(read, 404, "TOKEN_NOT_FOUND").await;
        assert_problem(read_as_user, 404, "TOKEN_NOT_FOUND").await;
        assert_problem(stream, 404, "TOKEN_NOT_FOUND").await;
        assert_problem(left, 404, "TOKEN_NOT_FOUND").await;
    }
    assert_eq!(app.token_status(&real).await["status"], "ACTIVE");
}

#[tokio::test]
async fn a_token_reads_with_no_key_or_its_owners_key_but_not_another_users() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 2).await;
    let (owner, stranger) = (&fans[0], &fans[1]);
    let token = app.active_token(owner, concert.id).await;

    // Act
    let anonymous = app.get(&format!("/v1/queue/tokens/{token}"), None).await;
    let as_owner = app.get(&format!("/v1/queue/tokens/{token}"), Some(owner)).await;
    let as_stranger = app.get(&format!("/v1/queue/tokens/{token}"), Some(stranger)).await;
    let bad_key = app
        .request(Method::GET, &format!("/v1/queue/tokens/{token}"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(as_owner.status(), StatusCode::OK);
    let body: Value = as_owner.json().await.unwrap();
    assert_eq!(body["token"], token.as_str());
    assert_eq!(body["user_id"], owner.id);
    assert_eq!(body["status"], "ACTIVE");
    assert_problem(as_stranger, 403, "FORBIDDEN").await;
    assert_problem(bad_key, 401, "UNAUTHENTICATED").await;

    // An ended token is still its owner's alone.
    leave_ok(&app, owner, &token).await;
    let ended = app.get(&format!("/v1/queue/tokens/{token}"), Some(owner)).await;
    assert_eq!(ended.status(), StatusCode::OK);
    assert_eq!(ended.json::<Value>().await.unwrap()["status"], "EXPIRED");
    let as_stranger = app.get(&format!("/v1/queue/tokens/{token}"), Some(stranger)).await;
    assert_problem(as_stranger, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn after_the_write_behind_drains_postgres_holds_every_token_with_its_final_status() {
    // Arrange: one left, one active, one waiting, one in another concert.
    let (app, concert, fans) = waiting_room(config(1), 3).await;
    let other = app.create_simple_concert(10, 1_000, 4).await;
    let [left, active, waiting] = line_up(&app, &fans, concert.id).await;
    let elsewhere = app.active_token(&fans[0], other.id).await;
    leave_ok(&app, &fans[0], &left).await;

    // Act
    app.drain_writebehind().await;

    // Assert
    let rows = app
        .pg_rows(
            "select token, concert_id, user_id, status, activated_at is not null as activated,
                    active_until is not null as has_until, expired_at is not null as has_expired
               from queue_token",
        )
        .await;
    assert_eq!(rows.len(), 4);
    let by_token: HashMap<String, &tokio_postgres::Row> = rows.iter().map(|r| (r.get("token"), r)).collect();
    for (token, user, concert_id, status) in [
        (&left, &fans[0], concert.id, "EXPIRED"),
        (&active, &fans[1], concert.id, "ACTIVE"),
        (&waiting, &fans[2], concert.id, "WAITING"),
        (&elsewhere, &fans[0], other.id, "ACTIVE"),
    ] {
        let api = app.token_status(token).await;
        assert_eq!(api["status"], status);
        let row = by_token
            .get(token.as_str())
            .unwrap_or_else(|| panic!("{token} is in Postgres"));
        assert_eq!(row.get::<_, &str>("status"), status, "{token}");
        assert_eq!(row.get::<_, i64>("user_id"), user.id);
        assert_eq!(row.get::<_, i64>("concert_id"), concert_id);
        assert_eq!(row.get::<_, bool>("activated"), status != "WAITING", "{token}");
        assert_eq!(row.get::<_, bool>("has_until"), status != "WAITING");
        assert_eq!(row.get::<_, bool>("has_expired"), status == "EXPIRED");
    }
}
