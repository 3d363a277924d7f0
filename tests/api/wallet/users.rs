//! Registering users: the answer, the API key (only its hash is kept),
//! and the names and bodies that are refused (API.md "Users and wallet").

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fred::interfaces::{HashesInterface, KeysInterface};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{is_rfc3339, with_alice};
use crate::helpers::{assert_problem, spawn_app, TestApp, TestUser};

/// How many users the server has handed an id to.
async fn users_created(app: &TestApp) -> i64 {
    app.redis
        .client()
        .get::<Option<i64>, _>(app.redis.keys().sequence("users"))
        .await
        .expect("redis answers")
        .unwrap_or(0)
}

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
    let (app, user) = with_alice(0).await;
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
