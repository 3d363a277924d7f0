//! The catalog: creating concerts (admin only, validated, with defaults),
//! listing and reading them (API.md "Concerts").

use chrono::Utc;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{concert_body, open_schedule, parse_time, seats_with, time_in, DAY, PRICE};
use crate::helpers::{assert_problem, spawn_app, TestApp, ADMIN_TOKEN};

async fn post_concert(app: &TestApp, body: &Value, bearer: Option<&str>) -> Response {
    let request = app.request(Method::POST, "/v1/admin/concerts").json(body);
    let request = match bearer {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("request sent")
}

async fn concert_list(app: &TestApp) -> Vec<Value> {
    let response = app.get("/v1/concerts", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["concerts"].as_array().expect("concerts").clone()
}

#[tokio::test]
async fn admins_create_concerts_with_schedule_ids_and_defaults() {
    // Arrange
    let app = spawn_app().await;
    let starts_at = "2030-12-24T19:00:00Z";
    let body = concert_body(json!([
        { "starts_at": starts_at, "price": 99_000 },
        { "starts_at": "2030-12-25T19:00:00Z", "booking_opens_at": "2030-12-01T10:00:00Z",
          "seat_count": 120, "price": 150_000, "purchase_limit": 2 }
    ]));
    let before = Utc::now();

    // Act
    let response = post_concert(&app, &body, Some(ADMIN_TOKEN)).await;

    // Assert
    assert_eq!(response.status(), StatusCode::CREATED);
    let concert: Value = response.json().await.unwrap();
    assert!(concert["id"].as_i64().unwrap() > 0);
    assert_eq!(concert["title"], "Rush Hour");
    assert_eq!(concert["artist"], "The Queue");
    assert_eq!(concert["venue"], "Olympic Hall");
    assert_eq!(concert["description"], "one night only");
    let schedules = concert["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 2);
    let (first, second) = (&schedules[0], &schedules[1]);
    assert!(first["id"].as_i64().unwrap() > 0);
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["total_seats"], 50, "seat_count defaults to 50");
    assert_eq!(first["purchase_limit"], 4, "purchase_limit defaults to 4");
    assert_eq!(first["price"], 99_000);
    assert_eq!(parse_time(&first["starts_at"]), parse_time(&json!(starts_at)));
    let opens = parse_time(&first["booking_opens_at"]);
    assert!(
        (before - chrono::Duration::seconds(5)..=Utc::now() + chrono::Duration::seconds(5)).contains(&opens),
        "booking_opens_at defaults to now, got {opens}"
    );
    assert_eq!(second["total_seats"], 120);
    assert_eq!(second["purchase_limit"], 2);
    assert_eq!(second["booking_opens_at"], "2030-12-01T10:00:00Z");
}

#[tokio::test]
async fn creating_a_concert_without_the_admin_token_is_401_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("mallory").await;
    let body = concert_body(json!([open_schedule(10, 4)]));

    // Act
    let missing = post_concert(&app, &body, None).await;
    let wrong = post_concert(&app, &body, Some("not-the-admin-token")).await;
    let user_key = post_concert(&app, &body, Some(&user.key)).await;

    // Assert
    assert_problem(missing, 401, "UNAUTHENTICATED").await;
    assert_problem(wrong, 401, "UNAUTHENTICATED").await;
    assert_problem(user_key, 401, "UNAUTHENTICATED").await;
    assert!(concert_list(&app).await.is_empty());
}

#[tokio::test]
async fn invalid_concerts_are_422_invalid_concert_and_create_nothing() {
    // Arrange
    let app = spawn_app().await;
    let later = time_in(30 * DAY);
    let schedule = |patch: Value| {
        let mut s = open_schedule(50, 4);
        for (k, v) in patch.as_object().unwrap() {
            s[k] = v.clone();
        }
        concert_body(json!([s]))
    };
    let mut blank_title = concert_body(json!([open_schedule(50, 4)]));
    blank_title["title"] = json!("   ");
    let mut empty_artist = concert_body(json!([open_schedule(50, 4)]));
    empty_artist["artist"] = json!("");
    let mut empty_venue = concert_body(json!([open_schedule(50, 4)]));
    empty_venue["venue"] = json!("");
    let cases = [
        ("seat_count 0", schedule(json!({ "seat_count": 0 }))),
        ("seat_count 20001", schedule(json!({ "seat_count": 20_001 }))),
        ("purchase_limit 0", schedule(json!({ "purchase_limit": 0 }))),
        ("purchase_limit 11", schedule(json!({ "purchase_limit": 11 }))),
        ("negative price", schedule(json!({ "price": -1 }))),
        ("starts_at not a time", schedule(json!({ "starts_at": "next friday" }))),
        (
            "booking_opens_at not a time",
            schedule(json!({ "booking_opens_at": "2030-13-40T00:00:00Z" })),
        ),
        (
            "booking opens when the show starts",
            schedule(json!({ "starts_at": later, "booking_opens_at": later })),
        ),
        (
            "booking opens after the show starts",
            schedule(json!({ "booking_opens_at": time_in(31 * DAY) })),
        ),
        (
            "starts in the past while booking opens now",
            schedule(json!({ "starts_at": time_in(-60) })),
        ),
        ("no schedules", concert_body(json!([]))),
        ("blank title", blank_title),
        ("empty artist", empty_artist),
        ("empty venue", empty_venue),
    ];

    for (case, body) in cases {
        // Act
        let response = post_concert(&app, &body, Some(ADMIN_TOKEN)).await;

        // Assert
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{case}");
        assert_problem(response, 422, "INVALID_CONCERT").await;
    }
    assert!(concert_list(&app).await.is_empty(), "a refused concert is not listed");
}

#[tokio::test]
async fn concerts_with_wrong_types_or_missing_fields_are_400() {
    // Arrange
    let app = spawn_app().await;
    let mut wrong_schedules = concert_body(json!([]));
    wrong_schedules["schedules"] = json!("tomorrow");
    let mut missing_title = concert_body(json!([open_schedule(50, 4)]));
    missing_title.as_object_mut().unwrap().remove("title");
    let cases = [
        concert_body(json!([{ "starts_at": time_in(DAY), "price": 1, "seat_count": "50" }])),
        concert_body(json!([{ "starts_at": time_in(DAY), "price": 1.5 }])),
        concert_body(json!([{ "starts_at": 1_700_000_000, "price": 1 }])),
        concert_body(json!([{ "starts_at": time_in(DAY) }])),
        wrong_schedules,
        missing_title,
    ];

    for body in cases {
        // Act
        let response = post_concert(&app, &body, Some(ADMIN_TOKEN)).await;

        // Assert
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
    assert!(concert_list(&app).await.is_empty());
}

#[tokio::test]
async fn concerts_are_listed_and_read_without_any_token() {
    // Arrange
    let app = spawn_app().await;
    let first = app.create_concert(&concert_body(json!([open_schedule(10, 4)]))).await;
    let mut other = concert_body(json!([open_schedule(5, 1), open_schedule(6, 2)]));
    other["title"] = json!("Encore");
    let second = app.create_concert(&other).await;

    // Act
    let listed = concert_list(&app).await;
    let detail = app.get(&format!("/v1/concerts/{}", second["id"]), None).await;

    // Assert
    let summary = |c: &Value| {
        json!({ "id": c["id"], "title": c["title"], "artist": c["artist"], "venue": c["venue"],
                "description": c["description"] })
    };
    assert_eq!(listed, vec![summary(&first), summary(&second)]);
    assert_eq!(detail.status(), StatusCode::OK);
    let detail: Value = detail.json().await.unwrap();
    assert_eq!(detail["title"], "Encore");
    assert_eq!(detail["schedules"], second["schedules"]);
    assert_eq!(detail["schedules"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_unknown_concert_is_404_concert_not_found() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(5, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;

    // Act
    let detail = app.get("/v1/concerts/987654", None).await;
    let dates = app.schedules(&user, &token, 987_654).await;
    let malformed = app.get("/v1/concerts/abc", None).await;

    // Assert
    assert_problem(detail, 404, "CONCERT_NOT_FOUND").await;
    assert_problem(dates, 404, "CONCERT_NOT_FOUND").await;
    assert_problem(malformed, 400, "MALFORMED_REQUEST").await;
}

#[tokio::test]
async fn a_20000_seat_schedule_is_created_and_its_seat_map_lists_every_seat() {
    // Arrange
    let app = spawn_app().await;
    let concert = app.create_simple_concert(20_000, PRICE, 4).await;
    let (user, token) = app.fan("alice", 0, concert.id).await;
    app.hold_ok(&user, &token, concert.schedule_id, &[20_000]).await;

    // Act
    let map = app.seat_map(&user, &token, concert.schedule_id).await;

    // Assert
    assert_eq!(map.len(), 20_000);
    assert_eq!(map[19_999], "HELD");
    assert_eq!(map.iter().filter(|s| *s == "AVAILABLE").count(), 19_999);
    let available = seats_with(&app, &user, &token, concert.schedule_id, "AVAILABLE").await;
    assert_eq!(available, (1..20_000).collect::<Vec<i64>>());
}
