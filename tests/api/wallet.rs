//! Users, their API keys and the prepaid wallet (API.md "Authentication"
//! user keys, "Users and wallet").

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fred::interfaces::{HashesInterface, KeysInterface};
use futures_util::future::join_all;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{assert_problem, spawn_app, TestApp, TestUser};

/// A well-formed key (`trk_<id>_<43 chars>`) that was never issued.
fn forged_key(user_id: i64) -> String {
    format!("trk_{user_id}_{}", "A".repeat(43))
}

fn balance_path(user: &TestUser) -> String {
    format!("/v1/users/{}/balance", user.id)
}

fn charge_path(user: &TestUser) -> String {
    format!("/v1/users/{}/balance/charge", user.id)
}

fn history_path(user: &TestUser) -> String {
    format!("/v1/users/{}/balance/history", user.id)
}

/// `POST …/charge` with a raw JSON body (for bodies that are not `{amount}`).
async fn charge_raw(app: &TestApp, user: &TestUser, body: &str) -> reqwest::Response {
    app.request(Method::POST, &charge_path(user))
        .bearer_auth(&user.key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request sent")
}

/// The history entries the API shows, newest first.
async fn history(app: &TestApp, user: &TestUser, limit: Option<usize>) -> Vec<Value> {
    let path = match limit {
        Some(n) => format!("{}?limit={n}", history_path(user)),
        None => history_path(user),
    };
    let response = app.get(&path, Some(user)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["entries"].as_array().expect("entries").clone()
}

/// How many users the server has handed an id to.
async fn users_created(app: &TestApp) -> i64 {
    app.redis
        .client()
        .get::<Option<i64>, _>(app.redis.keys().sequence("users"))
        .await
        .expect("redis answers")
        .unwrap_or(0)
}

fn is_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

// ---------------------------------------------------------------- users

#[tokio::test]
async fn creating_a_user_returns_201_with_id_name_key_zero_balance_and_time() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.post("/v1/users", &json!({ "name": "alice" }), None).await;

    // Assert
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_i64().expect("an integer id");
    assert!(id > 0);
    assert_eq!(body["name"], "alice");
    assert_eq!(body["balance"], 0);
    assert!(is_rfc3339(&body["created_at"]), "{body}");
    let key = body["api_key"].as_str().expect("an api key");
    let secret = key
        .strip_prefix(&format!("trk_{id}_"))
        .unwrap_or_else(|| panic!("key {key} has the shape trk_<id>_<secret>"));
    let random = URL_SAFE_NO_PAD.decode(secret).expect("the secret is base64url");
    assert!(
        random.len() * 8 >= 128,
        "at least 128 random bits, got {}",
        random.len() * 8
    );
    // The key works at once.
    let user = TestUser {
        id,
        key: key.to_owned(),
    };
    assert_eq!(app.balance(&user).await, 0);
}

#[tokio::test]
async fn only_the_hash_of_an_api_key_is_stored() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    let digest: String = Sha256::digest(user.key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    // Act
    app.drain_writebehind().await;

    // Assert
    let wallet: HashMap<String, String> = app
        .redis
        .client()
        .hgetall(app.redis.keys().wallet_hash(user.id))
        .await
        .expect("redis answers");
    assert!(!wallet.is_empty());
    assert!(wallet.values().all(|v| !v.contains(&user.key)), "{wallet:?}");
    assert_eq!(wallet.get("key_hash"), Some(&digest));
    let rows = app
        .pg_rows(&format!(
            "select row_to_json(u)::text from app_user u where user_id = {}",
            user.id
        ))
        .await;
    let row: String = rows[0].get(0);
    assert!(!row.contains(&user.key), "{row}");
    assert!(row.contains(&digest), "{row}");
}

#[tokio::test]
async fn every_user_gets_a_different_id_and_key() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let app = &app;
    let users = join_all((0..10).map(|i| async move { app.create_user(&format!("user{i}")).await })).await;

    // Assert
    let mut ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let mut keys: Vec<&str> = users.iter().map(|u| u.key.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(ids.len(), 10);
    assert_eq!(keys.len(), 10);
}

#[tokio::test]
async fn names_of_one_and_sixty_four_characters_are_accepted() {
    // Arrange
    let app = spawn_app().await;
    let longest = "가".repeat(64);

    // Act
    let short = app.post("/v1/users", &json!({ "name": "a" }), None).await;
    let long = app.post("/v1/users", &json!({ "name": longest }), None).await;

    // Assert
    assert_eq!(short.status(), StatusCode::CREATED);
    assert_eq!(long.status(), StatusCode::CREATED);
    let body: Value = long.json().await.unwrap();
    assert_eq!(body["name"], longest);
}

#[tokio::test]
async fn invalid_names_are_422_invalid_name_and_create_no_user() {
    // Arrange
    let app = spawn_app().await;
    let too_long = "a".repeat(65);

    for name in ["", too_long.as_str(), "   ", "\t\n"] {
        // Act
        let response = app.post("/v1/users", &json!({ "name": name }), None).await;

        // Assert
        assert_problem(response, 422, "INVALID_NAME").await;
    }
    assert_eq!(users_created(&app).await, 0, "no id was handed out");
    app.drain_writebehind().await;
    let rows = app.pg_rows("select count(*) from app_user").await;
    assert_eq!(rows[0].get::<_, i64>(0), 0);
}

#[tokio::test]
async fn user_bodies_with_wrong_types_or_missing_fields_are_400() {
    // Arrange
    let app = spawn_app().await;

    for body in [
        r#"{"name": 5}"#,
        r#"{"name": null}"#,
        r#"{"name": ["alice"]}"#,
        r#"{}"#,
        r#"{"nom": "alice"}"#,
        r#""alice""#,
        r#"["alice"]"#,
    ] {
        // Act
        let response = app
            .request(Method::POST, "/v1/users")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
    assert_eq!(users_created(&app).await, 0);
}

// ---------------------------------------------------------------- authentication

#[tokio::test]
async fn wallet_endpoints_without_a_valid_key_are_401_unauthenticated() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user_with("alice", 1_000).await;
    let other = app.create_user("bob").await;
    let wrong_secret = forged_key(user.id);
    let unknown_user = forged_key(9_999);
    let bare_secret = user.key[format!("trk_{}_", user.id).len()..].to_owned();
    let basic = format!("Basic {}", user.key);
    let bearer_of_other_prefix = format!("Bearer x{}", user.key);
    // (header value or None for no header)
    let credentials: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some("Bearer garbage".into()),
        Some(format!("Bearer {wrong_secret}")),
        Some(format!("Bearer {unknown_user}")),
        Some(format!("Bearer {bare_secret}")),
        Some(bearer_of_other_prefix),
        Some(basic),
        // Another user's key with its user id swapped for ours.
        Some(format!(
            "Bearer {}",
            other.key.replacen(&other.id.to_string(), &user.id.to_string(), 1)
        )),
    ];
    let calls: [(Method, String, Option<Value>); 3] = [
        (Method::GET, balance_path(&user), None),
        (Method::POST, charge_path(&user), Some(json!({ "amount": 500 }))),
        (Method::GET, history_path(&user), None),
    ];

    for credential in &credentials {
        for (method, path, body) in &calls {
            // Act
            let mut request = app.request(method.clone(), path);
            if let Some(value) = credential {
                request = request.header("authorization", value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();

            // Assert
            let problem = assert_problem(response, 401, "UNAUTHENTICATED").await;
            assert!(
                !problem["detail"].as_str().unwrap_or_default().contains(&user.key),
                "the detail never echoes a key"
            );
        }
    }
    assert_eq!(app.balance(&user).await, 1_000, "nothing was charged");
    assert_eq!(history(&app, &user, None).await.len(), 1);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;

    // Act
    let response = app
        .request(Method::GET, &balance_path(&user))
        .header("authorization", format!("bearer {}", user.key))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn another_users_wallet_is_403_forbidden_and_stays_unchanged() {
    // Arrange
    let app = spawn_app().await;
    let alice = app.create_user_with("alice", 5_000).await;
    let mallory = app.create_user_with("mallory", 100).await;
    let as_mallory = |request: RequestBuilder| request.bearer_auth(&mallory.key);

    // Act
    let read = as_mallory(app.request(Method::GET, &balance_path(&alice)))
        .send()
        .await
        .unwrap();
    let charge = as_mallory(app.request(Method::POST, &charge_path(&alice)))
        .json(&json!({ "amount": 1_000 }))
        .send()
        .await
        .unwrap();
    let history_read = as_mallory(app.request(Method::GET, &history_path(&alice)))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(read, 403, "FORBIDDEN").await;
    assert_problem(charge, 403, "FORBIDDEN").await;
    assert_problem(history_read, 403, "FORBIDDEN").await;
    assert_eq!(app.balance(&alice).await, 5_000);
    assert_eq!(history(&app, &alice, None).await.len(), 1);
    assert_eq!(
        app.balance(&mallory).await,
        100,
        "the intruder's wallet is untouched too"
    );
    assert_eq!(history(&app, &mallory, None).await.len(), 1);
}

#[tokio::test]
async fn bad_user_ids_in_wallet_paths_are_400() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;

    for id in ["abc", "0", "-1", "1.5"] {
        // Act
        let response = app.get(&format!("/v1/users/{id}/balance"), Some(&user)).await;

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
}

// ---------------------------------------------------------------- charge

#[tokio::test]
async fn a_charge_returns_200_with_the_new_balance_and_the_balance_follows() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;

    // Act
    let first = app.charge(&user, 50_000, None).await;
    let second = app.charge(&user, 50_000, None).await;

    // Assert
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.json::<Value>().await.unwrap(),
        json!({ "user_id": user.id, "amount": 50_000, "balance": 50_000 })
    );
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(
        second.json::<Value>().await.unwrap(),
        json!({ "user_id": user.id, "amount": 50_000, "balance": 100_000 })
    );
    let body: Value = app.get(&balance_path(&user), Some(&user)).await.json().await.unwrap();
    assert_eq!(body, json!({ "user_id": user.id, "balance": 100_000 }));
}

#[tokio::test]
async fn charges_of_one_and_ten_million_are_accepted() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;

    // Act
    let smallest = app.charge(&user, 1, None).await;
    let largest = app.charge(&user, 10_000_000, None).await;

    // Assert
    assert_eq!(smallest.status(), StatusCode::OK);
    assert_eq!(largest.status(), StatusCode::OK);
    assert_eq!(app.balance(&user).await, 10_000_001);
}

#[tokio::test]
async fn out_of_range_amounts_are_422_invalid_amount_and_change_nothing() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user_with("alice", 700).await;

    for amount in [0, -1, -50_000, 10_000_001, i64::MAX] {
        // Act
        let response = app.charge(&user, amount, None).await;

        // Assert
        assert_problem(response, 422, "INVALID_AMOUNT").await;
    }
    assert_eq!(app.balance(&user).await, 700);
    assert_eq!(history(&app, &user, None).await.len(), 1);
}

#[tokio::test]
async fn amounts_that_are_not_integers_are_400_and_change_nothing() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user_with("alice", 700).await;

    for body in [
        r#"{"amount": 1.5}"#,
        r#"{"amount": 100.0}"#,
        r#"{"amount": "100"}"#,
        r#"{"amount": null}"#,
        r#"{"amount": true}"#,
        r#"{}"#,
        r#"{"amount": 1e3}"#,
        r#"{"amount": 100000000000000000000}"#,
        "[100]",
        "",
        "{",
    ] {
        // Act
        let response = charge_raw(&app, &user, body).await;

        // Assert
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem = assert_problem(response, 400, "MALFORMED_REQUEST").await;
        assert!(problem["detail"].is_string(), "{body}");
    }
    assert_eq!(app.balance(&user).await, 700);
    assert_eq!(history(&app, &user, None).await.len(), 1);
}

#[tokio::test]
async fn a_charge_may_reach_exactly_one_billion_and_no_more() {
    // Arrange: 990,000,000 + 5,000,000.
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    for _ in 0..99 {
        assert_eq!(app.charge(&user, 10_000_000, None).await.status(), StatusCode::OK);
    }
    assert_eq!(app.charge(&user, 5_000_000, None).await.status(), StatusCode::OK);

    // Act
    let over = app.charge(&user, 10_000_000, None).await;
    let exact = app.charge(&user, 5_000_000, None).await;
    let one_more = app.charge(&user, 1, None).await;

    // Assert
    assert_problem(over, 422, "BALANCE_LIMIT").await;
    assert_eq!(exact.status(), StatusCode::OK);
    assert_eq!(exact.json::<Value>().await.unwrap()["balance"], 1_000_000_000);
    assert_problem(one_more, 422, "BALANCE_LIMIT").await;
    assert_eq!(app.balance(&user).await, 1_000_000_000);
    let entries = history(&app, &user, Some(200)).await;
    assert_eq!(entries.len(), 101, "refused charges leave no entry");
    assert_eq!(entries[0]["amount"], 5_000_000);
    assert_eq!(entries[0]["balance_after"], 1_000_000_000);
}

// ---------------------------------------------------------------- idempotency

#[tokio::test]
async fn retrying_a_charge_with_its_idempotency_key_returns_the_first_answer_and_charges_once() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    let first = app.charge(&user, 1_000, Some("charge-1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first = first.bytes().await.unwrap();
    // Another charge in between moves the balance on.
    assert_eq!(app.charge(&user, 500, None).await.status(), StatusCode::OK);

    // Act
    let retry = app.charge(&user, 1_000, Some("charge-1")).await;

    // Assert
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.bytes().await.unwrap(), first, "byte for byte the first body");
    let first: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(first, json!({ "user_id": user.id, "amount": 1_000, "balance": 1_000 }));
    assert_eq!(app.balance(&user).await, 1_500);
    assert_eq!(history(&app, &user, None).await.len(), 2);
}

#[tokio::test]
async fn idempotency_records_are_kept_for_a_day() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;

    // Act
    assert_eq!(app.charge(&user, 1_000, Some("daily")).await.status(), StatusCode::OK);

    // Assert
    let key = format!("{}idem:{}:charge:daily", app.redis.keys().wallet(user.id), user.id);
    let ttl: i64 = app.redis.client().ttl(key).await.expect("redis answers");
    assert!((86_390..=86_400).contains(&ttl), "kept for 24 h: {ttl} s");
}

#[tokio::test]
async fn a_retry_with_a_different_amount_still_returns_the_first_answer() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    let first: Value = app.charge(&user, 1_000, Some("k")).await.json().await.unwrap();

    // Act
    let retry = app.charge(&user, 9_999, Some("k")).await;

    // Assert
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(app.balance(&user).await, 1_000);
}

#[tokio::test]
async fn twenty_concurrent_charges_with_one_idempotency_key_charge_exactly_once() {
    // Arrange
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let user = app.create_user_with("alice", 100).await;

    // Act: half through each instance.
    let responses = join_all((0..20).map(|i| {
        let server = if i % 2 == 0 { &app } else { &second };
        let user = user.clone();
        async move {
            let response = server.charge(&user, 7_000, Some("same-key")).await;
            (response.status(), response.bytes().await.unwrap())
        }
    }))
    .await;

    // Assert
    for (status, _) in &responses {
        assert_eq!(*status, StatusCode::OK);
    }
    let first = &responses[0].1;
    assert!(
        responses.iter().all(|(_, body)| body == first),
        "every answer is the first"
    );
    let first: Value = serde_json::from_slice(first).unwrap();
    assert_eq!(first, json!({ "user_id": user.id, "amount": 7_000, "balance": 7_100 }));
    assert_eq!(app.balance(&user).await, 7_100);
    let entries = history(&app, &user, None).await;
    assert_eq!(entries.len(), 2, "one CHARGE for the key, one for the setup");
}

#[tokio::test]
async fn idempotency_keys_are_scoped_per_user() {
    // Arrange
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;

    // Act
    let for_alice = app.charge(&alice, 1_000, Some("shared-key")).await;
    let for_bob = app.charge(&bob, 2_000, Some("shared-key")).await;

    // Assert
    assert_eq!(
        for_alice.json::<Value>().await.unwrap(),
        json!({ "user_id": alice.id, "amount": 1_000, "balance": 1_000 })
    );
    assert_eq!(
        for_bob.json::<Value>().await.unwrap(),
        json!({ "user_id": bob.id, "amount": 2_000, "balance": 2_000 })
    );
    assert_eq!(app.balance(&alice).await, 1_000);
    assert_eq!(app.balance(&bob).await, 2_000);
}

#[tokio::test]
async fn different_idempotency_keys_charge_separately() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;

    // Act
    app.charge(&user, 1_000, Some("a")).await;
    app.charge(&user, 1_000, Some("b")).await;

    // Assert
    assert_eq!(app.balance(&user).await, 2_000);
}

#[tokio::test]
async fn invalid_idempotency_keys_are_400_and_charge_nothing() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    let too_long = "k".repeat(300);

    for key in [too_long.as_str(), "", "has space", "tab\there"] {
        // Act
        let response = app
            .request(Method::POST, &charge_path(&user))
            .bearer_auth(&user.key)
            .header("Idempotency-Key", key)
            .json(&json!({ "amount": 1_000 }))
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
    assert_eq!(app.balance(&user).await, 0);
    // The longest valid key (255 characters) works.
    let longest = "k".repeat(255);
    assert_eq!(app.charge(&user, 1_000, Some(&longest)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refused_charge_is_not_remembered_under_its_idempotency_key() {
    // Arrange: a wallet at the ceiling.
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    for _ in 0..100 {
        assert_eq!(app.charge(&user, 10_000_000, None).await.status(), StatusCode::OK);
    }
    let invalid = app.charge(&user, 0, Some("retry-me")).await;
    assert_problem(invalid, 422, "INVALID_AMOUNT").await;
    let refused = app.charge(&user, 1_000, Some("retry-me")).await;
    assert_problem(refused, 422, "BALANCE_LIMIT").await;
    // Spend some: buy a 1,000 KRW seat.
    let concert = app.create_simple_concert(1, 1_000, 1).await;
    let token = app.active_token(&user, concert.id).await;
    let hold: Value = app
        .hold(&user, &token, concert.schedule_id, &[1])
        .await
        .json()
        .await
        .unwrap();
    let paid = app.pay(&user, &token, hold["id"].as_str().unwrap()).await;
    assert_eq!(paid.status(), StatusCode::CREATED);

    // Act: the same key again, now that the charge fits.
    let retry = app.charge(&user, 1_000, Some("retry-me")).await;

    // Assert
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(
        retry.json::<Value>().await.unwrap(),
        json!({ "user_id": user.id, "amount": 1_000, "balance": 1_000_000_000 })
    );
    assert_eq!(app.balance(&user).await, 1_000_000_000);
}

// ---------------------------------------------------------------- concurrency

#[tokio::test]
async fn sixty_four_concurrent_charges_are_all_applied_exactly() {
    // Arrange
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let user = app.create_user("alice").await;
    let amounts: Vec<i64> = (1..=64).map(|i| i * 1_000 + i).collect();

    // Act
    let responses = join_all(amounts.iter().enumerate().map(|(i, amount)| {
        let server = if i % 2 == 0 { &app } else { &second };
        let user = user.clone();
        async move { server.charge(&user, *amount, None).await.status() }
    }))
    .await;

    // Assert
    assert!(responses.iter().all(|s| *s == StatusCode::OK), "{responses:?}");
    let total: i64 = amounts.iter().sum();
    assert_eq!(app.balance(&user).await, total);
    let entries = history(&app, &user, Some(200)).await;
    assert_eq!(entries.len(), 64);
    assert!(entries.iter().all(|e| e["type"] == "CHARGE"));
    let mut seen: Vec<i64> = entries.iter().map(|e| e["amount"].as_i64().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, amounts, "every charge once");
    // Newest first, and each entry continues from the one before it.
    assert_eq!(entries[0]["balance_after"], total);
    for pair in entries.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert_eq!(
            newer["balance_after"].as_i64().unwrap() - newer["amount"].as_i64().unwrap(),
            older["balance_after"].as_i64().unwrap(),
            "{newer} follows {older}"
        );
    }
    let oldest = entries.last().unwrap();
    assert_eq!(oldest["balance_after"], oldest["amount"]);
}

// ---------------------------------------------------------------- history

#[tokio::test]
async fn history_lists_entries_newest_first_with_type_amount_balance_and_reference() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    for amount in [100, 200, 300] {
        app.charge(&user, amount, None).await;
    }

    // Act
    let response = app.get(&history_path(&user), Some(&user)).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let entries = body["entries"].as_array().unwrap();
    let summary: Vec<(i64, i64)> = entries
        .iter()
        .map(|e| (e["amount"].as_i64().unwrap(), e["balance_after"].as_i64().unwrap()))
        .collect();
    assert_eq!(summary, vec![(300, 600), (200, 300), (100, 100)]);
    for entry in entries {
        assert_eq!(entry["type"], "CHARGE");
        assert!(entry["reference"].is_null(), "{entry}");
        assert!(entry.get("reference").is_some(), "reference is present, as null");
        assert!(is_rfc3339(&entry["at"]), "{entry}");
    }
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = entries
        .iter()
        .map(|e| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
}

#[tokio::test]
async fn a_new_user_has_an_empty_history() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;

    // Act
    let body: Value = app.get(&history_path(&user), Some(&user)).await.json().await.unwrap();

    // Assert
    assert_eq!(body, json!({ "entries": [] }));
}

#[tokio::test]
async fn history_shows_a_charge_as_soon_as_its_response_arrives() {
    // Arrange
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let user = app.create_user("alice").await;

    for i in 1..=5 {
        // Act: charge on one instance, read on the other at once.
        let server = if i % 2 == 0 { &app } else { &second };
        let reader = if i % 2 == 0 { &second } else { &app };
        assert_eq!(server.charge(&user, i, None).await.status(), StatusCode::OK);
        let entries = history(reader, &user, None).await;

        // Assert
        assert_eq!(entries.len() as i64, i);
        assert_eq!(entries[0]["amount"], i);
    }
}

#[tokio::test]
async fn history_honours_limit_and_defaults_to_fifty() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    join_all((1..=60).map(|i| app.charge(&user, i, None))).await;

    // Act
    let default = history(&app, &user, None).await;
    let one = history(&app, &user, Some(1)).await;
    let ten = history(&app, &user, Some(10)).await;
    let all = history(&app, &user, Some(200)).await;

    // Assert
    assert_eq!(default.len(), 50);
    assert_eq!(one.len(), 1);
    assert_eq!(ten.len(), 10);
    assert_eq!(all.len(), 60);
    assert_eq!(one[0], all[0]);
    assert_eq!(ten[..], all[..10]);
    assert_eq!(default[..], all[..50]);
}

#[tokio::test]
async fn history_keeps_the_newest_two_hundred_entries() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("alice").await;
    for chunk in (1..=205).collect::<Vec<i64>>().chunks(41) {
        join_all(chunk.iter().map(|i| app.charge(&user, *i, None))).await;
    }

    // Act
    let entries = history(&app, &user, Some(200)).await;

    // Assert
    assert_eq!(entries.len(), 200);
    assert_eq!(entries[0]["balance_after"], (1..=205).sum::<i64>());
}

#[tokio::test]
async fn history_limits_outside_one_to_two_hundred_are_400() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user_with("alice", 5).await;

    for limit in ["0", "201", "abc", "-1", "1.5", ""] {
        // Act
        let response = app
            .get(&format!("{}?limit={limit}", history_path(&user)), Some(&user))
            .await;

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
}

#[tokio::test]
async fn a_payment_shows_in_history_with_a_negative_amount_and_its_payment_id() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user_with("alice", 50_000).await;
    let concert = app.create_simple_concert(10, 30_000, 4).await;
    let token = app.active_token(&user, concert.id).await;
    let hold: Value = app
        .hold(&user, &token, concert.schedule_id, &[3])
        .await
        .json()
        .await
        .unwrap();

    // Act
    let payment: Value = app
        .pay(&user, &token, hold["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let entries = history(&app, &user, None).await;

    // Assert
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["type"], "PAYMENT");
    assert_eq!(entries[0]["amount"], -30_000);
    assert_eq!(entries[0]["balance_after"], 20_000);
    assert_eq!(entries[0]["reference"], payment["id"]);
    assert_eq!(entries[1]["type"], "CHARGE");
    assert_eq!(app.balance(&user).await, 20_000);
}

// ---------------------------------------------------------------- Redis and Postgres agree

#[tokio::test]
async fn after_the_write_behind_drains_postgres_holds_the_same_wallets_as_the_api() {
    // Arrange
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    join_all((1..=20).map(|i| app.charge(&alice, i * 100, None))).await;
    app.charge(&bob, 42, Some("once")).await;
    app.charge(&bob, 42, Some("once")).await;
    let concert = app.create_simple_concert(10, 1_500, 4).await;
    let token = app.active_token(&alice, concert.id).await;
    let hold: Value = app
        .hold(&alice, &token, concert.schedule_id, &[1])
        .await
        .json()
        .await
        .unwrap();
    let payment: Value = app
        .pay(&alice, &token, hold["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();

    // Act
    let written = app.drain_writebehind().await;

    // Assert
    assert!(written > 0);
    for user in [&alice, &bob, &carol] {
        let balance = app.balance(user).await;
        let entries = history(&app, user, Some(200)).await;
        let row = app
            .pg_rows(&format!(
                "select balance, version from app_user where user_id = {}",
                user.id
            ))
            .await;
        assert_eq!(row.len(), 1, "user {} is in Postgres", user.id);
        assert_eq!(row[0].get::<_, i64>("balance"), balance, "balance of user {}", user.id);
        assert_eq!(row[0].get::<_, i64>("version"), entries.len() as i64);
        let ledger = app
            .pg_rows(&format!(
                "select version, entry_type, amount, balance_before, balance_after, reference::text as reference
                   from wallet_ledger where user_id = {} order by version desc",
                user.id
            ))
            .await;
        assert_eq!(ledger.len(), entries.len(), "ledger rows of user {}", user.id);
        for (row, entry) in ledger.iter().zip(&entries) {
            assert_eq!(row.get::<_, &str>("entry_type"), entry["type"].as_str().unwrap());
            assert_eq!(row.get::<_, i64>("amount"), entry["amount"].as_i64().unwrap());
            assert_eq!(
                row.get::<_, i64>("balance_after"),
                entry["balance_after"].as_i64().unwrap()
            );
            assert_eq!(
                row.get::<_, Option<&str>>("reference"),
                entry["reference"].as_str(),
                "reference of {entry}"
            );
        }
    }
    let alice_newest = app
        .pg_rows(&format!(
            "select reference::text from wallet_ledger where user_id = {} and entry_type = 'PAYMENT'",
            alice.id
        ))
        .await;
    assert_eq!(alice_newest.len(), 1);
    assert_eq!(alice_newest[0].get::<_, Option<&str>>(0), payment["id"].as_str());
    // Draining again writes nothing new and changes nothing.
    assert_eq!(app.drain_writebehind().await, 0);
}
