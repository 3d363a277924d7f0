//! Leaving the line: a leave (or a payment) expires the token and admits
//! the next waiter at once; only the owner may leave (API.md "Waiting
//! queue").

use reqwest::{Method, StatusCode};

use super::{active_slots, config, issue, issue_new, leave, leave_ok, line_up, stored_token, token_of, waiting_room};
use crate::helpers::{assert_problem, id_of, spawn_app_with, TestConfig};

#[tokio::test]
async fn leaving_is_204_expires_the_token_and_admits_the_next_waiter_at_once() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 3).await;
    let [holder, next, last] = line_up(&app, &fans, concert.id).await;

    // Act
    let response = leave(&app, &fans[0], &holder).await;

    // Assert
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());
    let left = stored_token(&app, &holder).await;
    assert_eq!(left["status"], "EXPIRED");
    let promoted = stored_token(&app, &next).await;
    assert_eq!(
        promoted["status"], "ACTIVE",
        "admitted by the leave itself, before any read"
    );
    assert_eq!(app.token_status(&holder).await["status"], "EXPIRED");
    let next_now = app.token_status(&next).await;
    assert_eq!(
        (next_now["status"].as_str(), next_now["position"].as_i64()),
        (Some("ACTIVE"), Some(0))
    );
    assert!(next_now["active_until"].is_string());
    assert_eq!(app.token_status(&last).await["position"], 1);
    assert_eq!(active_slots(&app, concert.id).await, 1);
}

#[tokio::test]
async fn a_waiter_who_leaves_frees_its_place_in_line() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 3).await;
    let [holder, quitter, last] = line_up(&app, &fans, concert.id).await;

    // Act
    leave_ok(&app, &fans[1], &quitter).await;

    // Assert
    assert_eq!(app.token_status(&quitter).await["status"], "EXPIRED");
    assert_eq!(app.token_status(&last).await["position"], 1);
    assert_eq!(app.token_status(&holder).await["status"], "ACTIVE");
    leave_ok(&app, &fans[0], &holder).await;
    assert_eq!(app.token_status(&last).await["status"], "ACTIVE");
    assert_eq!(app.token_status(&quitter).await["status"], "EXPIRED");
}

#[tokio::test]
async fn reissuing_after_leaving_gives_a_new_token_at_the_back_of_the_line() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 3).await;
    let [_, old, _] = line_up(&app, &fans, concert.id).await;
    leave_ok(&app, &fans[1], &old).await;

    // Act
    let (status, again) = issue(&app, &fans[1], concert.id).await;

    // Assert
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(token_of(&again), old);
    assert_eq!(again["status"], "WAITING");
    assert_eq!(again["position"], 2);
    assert_eq!(app.token_status(&old).await["status"], "EXPIRED");
}

#[tokio::test]
async fn leaving_with_another_users_key_is_403_and_keeps_the_token() {
    // Arrange
    let (app, concert, fans) = waiting_room(config(1), 2).await;
    let [holder, waiter] = line_up(&app, &fans, concert.id).await;

    // Act
    let response = leave(&app, &fans[1], &holder).await;

    // Assert
    assert_problem(response, 403, "FORBIDDEN").await;
    assert_eq!(app.token_status(&holder).await["status"], "ACTIVE");
    assert_eq!(app.token_status(&waiter).await["position"], 1);
}

#[tokio::test]
async fn leaving_without_a_user_key_is_401() {
    // Arrange
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let token = app.active_token(&fans[0], concert.id).await;

    // Act
    let response = app
        .request(Method::DELETE, &format!("/v1/queue/tokens/{token}"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 401, "UNAUTHENTICATED").await;
    assert_eq!(app.token_status(&token).await["status"], "ACTIVE");
}

#[tokio::test]
async fn paying_expires_the_payers_token_and_admits_the_next_waiter() {
    // Arrange
    let app = spawn_app_with(config(1)).await;
    let concert = app.create_simple_concert(10, 1_000, 4).await;
    let buyer = app.create_user_with("buyer", 10_000).await;
    let waiter = app.create_user("waiter").await;
    let token = app.active_token(&buyer, concert.id).await;
    let next = token_of(&issue_new(&app, &waiter, concert.id).await);
    let hold = app.hold_ok(&buyer, &token, concert.schedule_id, &[1]).await;

    // Act
    let paid = app.pay(&buyer, &token, &id_of(&hold)).await;

    // Assert
    assert_eq!(paid.status(), StatusCode::CREATED);
    assert_eq!(stored_token(&app, &token).await["status"], "EXPIRED");
    assert_eq!(
        stored_token(&app, &next).await["status"],
        "ACTIVE",
        "admitted by the payment itself"
    );
    assert_eq!(app.token_status(&token).await["status"], "EXPIRED");
    let (status, fresh) = issue(&app, &buyer, concert.id).await;
    assert_eq!(status, StatusCode::CREATED, "the payer can queue again");
    assert_eq!(fresh["status"], "WAITING");
}
