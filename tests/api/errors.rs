//! The error envelope, the body limit, health, readiness, metrics and the
//! OpenAPI document (API.md "Conventions", "Operations").

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use std::time::Duration;

use futures_util::StreamExt;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, TestConfig};

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let app = spawn_app().await;
    assert_problem(app.get("/v1/nope", None).await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn wrong_methods_are_405_problems() {
    let app = spawn_app().await;
    let response = app.request(Method::PUT, "/v1/users").send().await.unwrap();
    assert_problem(response, 405, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_and_change_nothing() {
    let app = spawn_app().await;
    let name = "x".repeat(70 * 1024);
    let response = app.post("/v1/users", &json!({ "name": name }), None).await;
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE").await;
    let next: i64 =
        fred::interfaces::KeysInterface::get::<Option<i64>, _>(app.redis.client(), app.redis.keys().sequence("users"))
            .await
            .unwrap()
            .unwrap_or(0);
    assert_eq!(next, 0, "no user was created");
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_without_length_is_413() {
    let app = spawn_app().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let response = app
        .request(Method::POST, "/v1/users")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE").await;
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = spawn_app().await;
    for body in ["{", "[]", "{\"name\": 5}", ""] {
        let response = app.request(Method::POST, "/v1/users").body(body).send().await.unwrap();
        assert_problem(response, 400, "MALFORMED_REQUEST").await;
    }
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "status": "ok" }));
}

#[tokio::test]
async fn readyz_reports_both_stores_and_the_backlog() {
    let app = spawn_app().await;
    let response = app.get("/readyz", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["redis"], "up");
    assert_eq!(body["postgres"], "up");
    assert_eq!(body["writebehind_backlog"], 0);
    // A registration appends one event that is not persisted yet.
    app.create_user("alice").await;
    let body: Value = app.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(body["writebehind_backlog"], 1);
}

#[tokio::test]
async fn readyz_is_503_when_redis_is_down() {
    // A server whose Redis URL points at a closed loopback port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut settings = ticketrush::config::Settings::defaults();
    settings.redis.url = format!("redis://127.0.0.1:{port}");
    settings.redis.key_prefix = "test_down".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let background = ticketrush::Background {
        writebehind: false,
        sweeper: false,
    };
    let state = ticketrush::build_state(settings).await.unwrap();
    let server = tokio::spawn(ticketrush::run_with_state(
        state,
        listener,
        async move {
            let _ = stopped.await;
        },
        background,
    ));
    let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["redis"], "down");
    let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_status() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    app.get("/v1/nope", None).await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{route="/healthz",method="GET",status="200"}"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",method="GET",status="404""#));
    assert!(text.contains("http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let mut served: Vec<(String, String)> = ticketrush::http::ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), (*p).to_owned()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
}

#[tokio::test]
async fn shutdown_ends_open_event_streams_and_completes_before_the_deadline() {
    // Arrange: a waiter with an open event stream.
    let app = spawn_app_with(TestConfig {
        active_max: 1,
        ..TestConfig::default()
    })
    .await;
    let (first, second) = (app.create_user("first").await, app.create_user("second").await);
    let concert = app.create_simple_concert(5, 1_000, 2).await;
    app.active_token(&first, concert.id).await;
    let waiting: Value = app.issue_token(&second, concert.id).await.json().await.unwrap();
    let token = waiting["token"].as_str().unwrap().to_owned();
    let response = app.get(&format!("/v1/queue/tokens/{token}/events"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut events = response.bytes_stream();
    let opening = events.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&opening).contains("\"status\":\"WAITING\""));
    // Act
    let shutdown = tokio::spawn(app.shutdown());
    // Assert: the stream ends at once, not at the 10 s drain deadline.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = events.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream stayed open during shutdown");
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown completes")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_token_polled_in_a_tight_loop_is_rate_limited() {
    // Arrange
    let app = spawn_app().await;
    let user = app.create_user("eager").await;
    let concert = app.create_simple_concert(5, 1_000, 2).await;
    let token = app.active_token(&user, concert.id).await;
    // Act: far more polls at once than a person needs.
    let path = format!("/v1/queue/tokens/{token}");
    let polls = futures_util::future::join_all((0..150).map(|_| app.get(&path, None))).await;
    // Assert: the burst is served, the rest is told to slow down.
    let ok = polls.iter().filter(|r| r.status() == StatusCode::OK).count();
    let limited: Vec<_> = polls
        .into_iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(ok >= 60, "{ok} served");
    assert!(!limited.is_empty());
    let retry_after = limited[0]
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(retry_after >= 1);
    assert_problem(limited.into_iter().next().unwrap(), 429, "RATE_LIMITED").await;
    // Other tokens are not affected.
    let other = app.create_user("calm").await;
    let other_token: Value = app.issue_token(&other, concert.id).await.json().await.unwrap();
    let calm = app
        .get(
            &format!("/v1/queue/tokens/{}", other_token["token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(calm.status(), StatusCode::OK);
}
