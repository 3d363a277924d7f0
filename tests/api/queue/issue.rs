//! Taking a token: its shape, the place it gives in line, reissues that
//! return the same token, and the requests that are refused (API.md
//! "Waiting queue").

use fred::interfaces::SortedSetsInterface;
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{active_slots, config, issue, issue_new, queue_key, rfc3339_ms, status_as, token_of, waiting_room};
use crate::helpers::{assert_problem, TestConfig, TestUser};

#[tokio::test]
async fn a_token_issued_into_an_empty_queue_is_201_and_active_at_once() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let user = &fans[0];

    // Act
    let (status, body) = issue(&app, user, concert.id).await;

    // Assert
    assert_eq!(status, StatusCode::CREATED);
    let token = token_of(&body);
    assert!(token.len() <= 64);
    let (concert_part, secret) = token.split_once('.').expect("<concert>.<secret>");
    assert_eq!(concert_part, concert.id.to_string());
    assert_eq!(secret.len(), 22, "22 base64url characters: 132 random bits");
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(body["user_id"], user.id);
    assert_eq!(body["concert_id"], concert.id);
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["position"], 0);
    assert_eq!(body["estimated_wait_seconds"], 0);
    let issued = rfc3339_ms(&body["issued_at"]);
    let until = rfc3339_ms(&body["active_until"]);
    let lifetime = until - issued;
    assert!(
        (599_000..=601_000).contains(&lifetime),
        "active for QUEUE_ACTIVE_TTL_SECONDS: {lifetime} ms"
    );
}

#[tokio::test]
async fn tokens_of_different_users_differ() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 20).await;

    // Act
    let bodies = join_all(fans.iter().map(|u| issue_new(&app, u, concert.id))).await;

    // Assert
    let mut tokens: Vec<String> = bodies.iter().map(token_of).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 20);
}

#[tokio::test]
async fn with_two_slots_the_third_and_fourth_users_wait_at_positions_one_and_two() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(2), 4).await;

    // Act
    let mut bodies = Vec::new();
    for fan in &fans {
        bodies.push(issue_new(&app, fan, concert.id).await);
    }

    // Assert
    for body in &bodies[..2] {
        assert_eq!(body["status"], "ACTIVE", "{body}");
        assert_eq!(body["position"], 0);
    }
    for (body, position) in bodies[2..].iter().zip([1, 2]) {
        assert_eq!(body["status"], "WAITING", "{body}");
        assert_eq!(body["position"], position);
        assert!(body["estimated_wait_seconds"].as_i64().expect("an integer") >= 0);
        assert!(body["active_until"].is_null());
        assert!(body["issued_at"].is_string());
    }
    // A status read agrees.
    let third = status_as(&app, &fans[2], &token_of(&bodies[2])).await;
    let fourth = app.token_status(&token_of(&bodies[3])).await;
    assert_eq!(
        (third["status"].as_str(), third["position"].as_i64()),
        (Some("WAITING"), Some(1))
    );
    assert_eq!(
        (fourth["status"].as_str(), fourth["position"].as_i64()),
        (Some("WAITING"), Some(2))
    );
    assert_eq!(active_slots(&app, concert.id).await, 2);
}

#[tokio::test]
async fn reissuing_returns_200_with_the_same_token_and_the_same_place() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 3).await;
    let second = app.second_instance().await;
    let mut first = Vec::new();
    for fan in &fans {
        first.push(issue_new(&app, fan, concert.id).await);
    }

    for (fan, before) in fans.iter().zip(&first).rev() {
        // Act
        let (status, again) = issue(&second, fan, concert.id).await;

        // Assert
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["token"], before["token"]);
        assert_eq!(again["status"], before["status"]);
        assert_eq!(again["position"], before["position"]);
        assert_eq!(again["issued_at"], before["issued_at"]);
        assert_eq!(again["active_until"], before["active_until"]);
    }
    let positions: Vec<i64> = first.iter().map(|b| b["position"].as_i64().unwrap()).collect();
    assert_eq!(positions, vec![0, 1, 2]);
}

#[tokio::test]
async fn concurrent_issues_by_one_user_on_two_instances_create_exactly_one_token() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    let second = app.second_instance().await;
    let servers = [&app, &second];
    app.active_token(&fans[0], concert.id).await;
    let fan = &fans[1];

    // Act
    let answers = join_all((0..10).map(|i| issue(servers[i % 2], fan, concert.id))).await;

    // Assert
    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let again = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, again), (1, 9));
    let token = token_of(&answers[0].1);
    for (_, body) in &answers {
        assert_eq!(token_of(body), token);
        assert_eq!(body["status"], "WAITING");
        assert_eq!(body["position"], 1);
    }
    let waiting_key = queue_key(&app, concert.id, "q:wait");
    let waiting: i64 = app.redis.client().zcard(waiting_key).await.unwrap();
    assert_eq!(waiting, 1, "one place in line, not ten");
}

#[tokio::test]
async fn a_token_for_an_unknown_concert_is_404_concert_not_found() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let user = &fans[0];

    for concert_id in [concert.id + 1, 999_999, 0, -1] {
        // Act
        let response = app.issue_token(user, concert_id).await;

        // Assert
        assert_problem(response, 404, "CONCERT_NOT_FOUND").await;
    }
    assert_eq!(
        issue(&app, user, concert.id).await.0,
        StatusCode::CREATED,
        "no token was left behind"
    );
}

#[tokio::test]
async fn issuing_a_token_without_a_valid_user_key_is_401() {
    // Arrange
    let (app, concert, _) = waiting_room(TestConfig::default(), 0).await;
    let forged = TestUser {
        id: 1,
        key: format!("trk_1_{}", "A".repeat(43)),
    };

    // Act
    let anonymous = app
        .post("/v1/queue/tokens", &json!({ "concert_id": concert.id }), None)
        .await;
    let unknown = app.issue_token(&forged, concert.id).await;

    // Assert
    assert_problem(anonymous, 401, "UNAUTHENTICATED").await;
    assert_problem(unknown, 401, "UNAUTHENTICATED").await;
    assert_eq!(active_slots(&app, concert.id).await, 0);
}

#[tokio::test]
async fn issuing_a_token_with_a_bad_body_is_400() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let user = &fans[0];
    let as_string = format!(r#"{{"concert_id": "{}"}}"#, concert.id);

    for body in [
        r#"{}"#,
        as_string.as_str(),
        r#"{"concert_id": 1.5}"#,
        r#"{"concert_id": null}"#,
        "[1]",
        "",
        "{",
    ] {
        // Act
        let response = app
            .request(Method::POST, "/v1/queue/tokens")
            .bearer_auth(&user.key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
    assert_eq!(active_slots(&app, concert.id).await, 0);
}
