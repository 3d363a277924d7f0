//! The wallet's history: entries newest first, the limit, payments in it,
//! and the same wallets and ledger in Postgres once the write-behind has
//! drained (API.md "Users and wallet").

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{buy_seat, history, history_path, is_rfc3339, with_alice};
use crate::helpers::{assert_problem, id_of};

#[tokio::test]
async fn history_lists_entries_newest_first_with_type_amount_balance_and_reference() {
    // Arrange
    let (app, user) = with_alice(0).await;
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
    let (app, user) = with_alice(0).await;

    // Act
    let body: Value = app.get(&history_path(&user), Some(&user)).await.json().await.unwrap();

    // Assert
    assert_eq!(body, json!({ "entries": [] }));
}

#[tokio::test]
async fn history_shows_a_charge_as_soon_as_its_response_arrives() {
    // Arrange
    let (app, user) = with_alice(0).await;
    let second = app.second_instance().await;

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
    let (app, user) = with_alice(0).await;
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
    let (app, user) = with_alice(0).await;
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
    let (app, user) = with_alice(5).await;

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
    let (app, user) = with_alice(50_000).await;
    let concert = app.create_simple_concert(10, 30_000, 4).await;
    let token = app.active_token(&user, concert.id).await;
    let hold = app.hold_ok(&user, &token, concert.schedule_id, &[3]).await;

    // Act
    let payment = app.pay_ok(&user, &token, &id_of(&hold)).await;
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

#[tokio::test]
async fn after_the_write_behind_drains_postgres_holds_the_same_wallets_as_the_api() {
    // Arrange
    let (app, alice) = with_alice(0).await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    join_all((1..=20).map(|i| app.charge(&alice, i * 100, None))).await;
    app.charge(&bob, 42, Some("once")).await;
    app.charge(&bob, 42, Some("once")).await;
    let payment = buy_seat(&app, &alice, 1_500).await;

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
