//! Who may use a wallet: a valid user key in a Bearer header, for the
//! key's own user only (API.md "Authentication" user keys).

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use super::{balance_path, charge_path, history, history_path, with_alice};
use crate::helpers::assert_problem;

/// A well-formed key (`trk_<id>_<43 chars>`) that was never issued.
fn forged_key(user_id: i64) -> String {
    format!("trk_{user_id}_{}", "A".repeat(43))
}

#[tokio::test]
async fn wallet_endpoints_without_a_valid_key_are_401_unauthenticated() {
    // Arrange
    let (app, user) = with_alice(1_000).await;
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
    let (app, user) = with_alice(0).await;

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
    let (app, alice) = with_alice(5_000).await;
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
    let (app, user) = with_alice(0).await;

    for id in ["abc", "0", "-1", "1.5"] {
        // Act
        let response = app.get(&format!("/v1/users/{id}/balance"), Some(&user)).await;

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
}
