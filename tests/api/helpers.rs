//! `spawn_app()` and typed helpers, written once for every test file.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use ticketrush::config::Settings;
use ticketrush::store::postgres;
use ticketrush::store::redis::RedisStore;
use ticketrush::writebehind::{FlushOutcome, Worker};
use ticketrush::Background;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The admin token every test server is configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        ticketrush::telemetry::init_logging();
    }
});

/// How a test server is set up.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub hold_ttl_seconds: u64,
    pub active_max: u32,
    pub active_ttl_seconds: u64,
    pub idle_timeout_seconds: u64,
    pub background: Background,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            hold_ttl_seconds: 300,
            active_max: 1000,
            active_ttl_seconds: 600,
            idle_timeout_seconds: 60,
            // The worker is off by default: tests drain the write-behind
            // themselves (`drain_writebehind`) so they know when it is done.
            background: Background {
                writebehind: false,
                sweeper: true,
            },
        }
    }
}

/// A running server with its own key prefix and database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub redis: RedisStore,
    pub pg: Pool,
    pub db_name: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// Shared by every instance of the deployment; the last one gone
    /// removes the data.
    _data: Arc<TestData>,
}

/// A test's database and Redis keys, removed when the test is done with
/// them, unless it failed (then they stay, to look at; `scripts/test.sh`
/// removes what is left at its next run).
struct TestData {
    settings: Settings,
    db_name: String,
}

impl Drop for TestData {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let (settings, db_name) = (self.settings.clone(), std::mem::take(&mut self.db_name));
        // The test's runtime may be shutting down: a runtime of its own.
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime builds");
            runtime.block_on(remove_data(&settings, &db_name));
        })
        .join();
        if removed.is_err() {
            eprintln!("could not remove the test's database and keys");
        }
    }
}

async fn remove_data(settings: &Settings, db_name: &str) {
    let admin = admin_client(&settings.postgres.url).await;
    let dropped = admin
        .simple_query(&format!("drop database if exists \"{db_name}\" with (force)"))
        .await;
    let redis = RedisStore::connect(&settings.redis).await.expect("redis is reachable");
    let deleted = ticketrush::reconcile::delete_all(&redis).await;
    redis.quit().await;
    if let Err(e) = dropped {
        eprintln!("could not drop {db_name}: {e}");
    }
    if let Err(e) = deleted {
        eprintln!("could not delete the keys of {db_name}: {e}");
    }
}

/// A registered user and its key.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub key: String,
}

/// A concert with one schedule, as most tests need.
#[derive(Debug, Clone, Copy)]
pub struct TestConcert {
    pub id: i64,
    pub schedule_id: i64,
}

/// A server with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestConfig::default()).await
}

/// A server configured by `config`.
pub async fn spawn_app_with(config: TestConfig) -> TestApp {
    LazyLock::force(&TRACING);
    let mut settings = Settings::defaults();
    settings.http.bind_addr = "127.0.0.1:0".parse().expect("a valid address");
    settings.http.admin_token = Some(SecretString::from(ADMIN_TOKEN.to_owned()));
    settings.redis.key_prefix = format!("test_{}", &Uuid::new_v4().simple().to_string()[..12]);
    settings.booking.hold_ttl_seconds = config.hold_ttl_seconds;
    settings.queue.active_max = config.active_max;
    settings.queue.active_ttl_seconds = config.active_ttl_seconds;
    settings.queue.idle_timeout_seconds = config.idle_timeout_seconds;
    let db_name = format!("test_{}", Uuid::new_v4().simple());
    settings.postgres.url = create_database(&settings.postgres.url, &db_name).await;
    let data = Arc::new(TestData {
        settings: settings.clone(),
        db_name: db_name.clone(),
    });
    start(settings, db_name, config.background, data).await
}

async fn start(settings: Settings, db_name: String, background: Background, data: Arc<TestData>) -> TestApp {
    let pg = postgres::connect(&settings.postgres).expect("a valid database url");
    postgres::migrate::run(&pg)
        .await
        .expect("migrations apply to a fresh database");
    let redis = RedisStore::connect(&settings.redis).await.expect("redis is reachable");
    let listener = TcpListener::bind(settings.http.bind_addr).await.expect("port 0 binds");
    let addr = listener.local_addr().expect("a bound listener has an address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ticketrush::run(
        settings.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
        background,
    ));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("a client builds"),
        settings,
        redis,
        pg,
        db_name,
        stop: Some(stop),
        task: Some(task),
        _data: data,
    }
}

/// Creates `name` on the server of `url` and returns the URL pointing to it.
async fn create_database(url: &SecretString, name: &str) -> SecretString {
    admin_client(url)
        .await
        .simple_query(&format!("create database \"{name}\""))
        .await
        .expect("a fresh database can be created");
    let base = url.expose_secret();
    let without_db = base.rsplit_once('/').map(|(head, _)| head).unwrap_or(base);
    SecretString::from(format!("{without_db}/{name}"))
}

/// A session on the maintenance database of the server of `url`.
async fn admin_client(url: &SecretString) -> tokio_postgres::Client {
    let mut admin = tokio_postgres::Config::from_str(url.expose_secret()).expect("a valid database url");
    admin.dbname("postgres");
    let (client, connection) = admin
        .connect(tokio_postgres::NoTls)
        .await
        .expect("postgres is reachable");
    tokio::spawn(connection);
    client
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestApp {
    /// Another server on the same Redis prefix and database: a second
    /// instance of one deployment.
    pub async fn second_instance(&self) -> TestApp {
        let background = Background {
            writebehind: false,
            sweeper: true,
        };
        start(
            self.settings.clone(),
            self.db_name.clone(),
            background,
            self._data.clone(),
        )
        .await
    }

    /// Stops the server and waits for it to finish shutting down; its data
    /// go with it.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop().await
    }

    /// Stops the server and waits for it to finish shutting down; its data
    /// stay while `self` lives.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("the server task does not panic"),
            None => Ok(()),
        }
    }

    /// Runs the write-behind until nothing is left; returns events written.
    pub async fn drain_writebehind(&self) -> usize {
        let mut worker = Worker::new(self.redis.clone(), self.pg.clone());
        let mut total = 0;
        loop {
            match worker.try_flush_once().await.expect("the write-behind flushes") {
                FlushOutcome::Flushed(n) => total += n,
                FlushOutcome::Empty => return total,
            }
        }
    }

    /// A request to `path` (relative to the server).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// `GET path` with an optional user key.
    pub async fn get(&self, path: &str, user: Option<&TestUser>) -> Response {
        with_user(self.request(Method::GET, path), user)
            .send()
            .await
            .expect("request sent")
    }

    /// `GET path` with an optional user key, as the first request of a new
    /// connection (a client of its own, so no pooled connection is reused).
    pub async fn get_on_new_connection(&self, path: &str, user: Option<&TestUser>) -> Response {
        let client = reqwest::Client::new();
        with_user(client.get(format!("{}{path}", self.base)), user)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST path` with a JSON body and an optional user key.
    pub async fn post(&self, path: &str, body: &Value, user: Option<&TestUser>) -> Response {
        with_user(self.request(Method::POST, path), user)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Registers a user.
    pub async fn create_user(&self, name: &str) -> TestUser {
        let response = self.post("/v1/users", &json!({ "name": name }), None).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        TestUser {
            id: body["id"].as_i64().expect("id"),
            key: body["api_key"].as_str().expect("api_key").to_owned(),
        }
    }

    /// Registers a user and charges its wallet.
    pub async fn create_user_with(&self, name: &str, balance: i64) -> TestUser {
        let user = self.create_user(name).await;
        let response = self.charge(&user, balance, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        user
    }

    /// `POST /v1/users/{id}/balance/charge`.
    pub async fn charge(&self, user: &TestUser, amount: i64, idempotency_key: Option<&str>) -> Response {
        let mut request = with_user(
            self.request(Method::POST, &format!("/v1/users/{}/balance/charge", user.id)),
            Some(user),
        );
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request
            .json(&json!({ "amount": amount }))
            .send()
            .await
            .expect("request sent")
    }

    /// The balance the API reports.
    pub async fn balance(&self, user: &TestUser) -> i64 {
        let body: Value = self
            .get(&format!("/v1/users/{}/balance", user.id), Some(user))
            .await
            .json()
            .await
            .expect("json");
        body["balance"].as_i64().expect("balance")
    }

    /// Creates a concert from a full request body; returns the response body.
    pub async fn create_concert(&self, body: &Value) -> Value {
        let response = self
            .request(Method::POST, "/v1/admin/concerts")
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json")
    }

    /// A concert with one open schedule (starting in 30 days).
    pub async fn create_simple_concert(&self, seat_count: i64, price: i64, purchase_limit: i64) -> TestConcert {
        let starts_at = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
        let body = self
            .create_concert(&json!({
                "title": "Test Concert", "artist": "Test Artist", "venue": "Test Hall",
                "schedules": [{ "starts_at": starts_at, "seat_count": seat_count, "price": price,
                                "purchase_limit": purchase_limit }]
            }))
            .await;
        TestConcert {
            id: body["id"].as_i64().expect("id"),
            schedule_id: body["schedules"][0]["id"].as_i64().expect("schedule id"),
        }
    }

    /// `POST /v1/queue/tokens`.
    pub async fn issue_token(&self, user: &TestUser, concert_id: i64) -> Response {
        self.post("/v1/queue/tokens", &json!({ "concert_id": concert_id }), Some(user))
            .await
    }

    /// Issues a token and returns it; asserts it is ACTIVE at once.
    pub async fn active_token(&self, user: &TestUser, concert_id: i64) -> String {
        let body: Value = self.issue_token(user, concert_id).await.json().await.expect("json");
        assert_eq!(body["status"], "ACTIVE", "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// `GET /v1/queue/tokens/{token}` without a user key.
    pub async fn token_status(&self, token: &str) -> Value {
        self.get(&format!("/v1/queue/tokens/{token}"), None)
            .await
            .json()
            .await
            .expect("json")
    }

    /// `GET /v1/concerts/{id}/schedules` (gated) with the user's token.
    pub async fn schedules(&self, user: &TestUser, token: &str, concert_id: i64) -> Response {
        self.gated(
            Method::GET,
            &format!("/v1/concerts/{concert_id}/schedules"),
            user,
            token,
        )
        .send()
        .await
        .expect("request sent")
    }

    /// A gated request: user key plus queue token.
    pub fn gated(&self, method: Method, path: &str, user: &TestUser, token: &str) -> RequestBuilder {
        with_user(self.request(method, path), Some(user)).header("Queue-Token", token)
    }

    /// `POST /v1/reservations`.
    pub async fn hold(&self, user: &TestUser, token: &str, schedule_id: i64, seats: &[i64]) -> Response {
        self.hold_with_key(user, token, schedule_id, seats, None).await
    }

    /// `POST /v1/reservations`, with an `Idempotency-Key` when one is given.
    pub async fn hold_with_key(
        &self,
        user: &TestUser,
        token: &str,
        schedule_id: i64,
        seats: &[i64],
        idempotency_key: Option<&str>,
    ) -> Response {
        let mut request = self
            .gated(Method::POST, "/v1/reservations", user, token)
            .json(&json!({ "schedule_id": schedule_id, "seat_numbers": seats }));
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("request sent")
    }

    /// `POST /v1/payments`.
    pub async fn pay(&self, user: &TestUser, token: &str, reservation_id: &str) -> Response {
        self.gated(Method::POST, "/v1/payments", user, token)
            .json(&json!({ "reservation_id": reservation_id }))
            .send()
            .await
            .expect("request sent")
    }

    /// `GET /v1/schedules/{id}/seats`: seat number → status.
    pub async fn seat_map(&self, user: &TestUser, token: &str, schedule_id: i64) -> Vec<String> {
        let response = self
            .gated(Method::GET, &format!("/v1/schedules/{schedule_id}/seats"), user, token)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        body["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .map(|s| s["status"].as_str().expect("status").to_owned())
            .collect()
    }

    /// One row of a query on this test's database.
    pub async fn pg_rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        let client = self.pg.get().await.expect("a postgres connection");
        client.query(sql, &[]).await.expect("the query runs")
    }
}

fn with_user(request: RequestBuilder, user: Option<&TestUser>) -> RequestBuilder {
    match user {
        Some(user) => request.bearer_auth(&user.key),
        None => request,
    }
}

/// Asserts a JSON answer with `status`; returns it.
pub async fn assert_json(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.expect("json")
}

/// Asserts a problem+json response with `status` and `code`; returns it.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status of a {code} problem");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("a problem body is json");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], "about:blank");
    assert!(body["title"].is_string());
    body
}

/// Waits until `check` holds, polling every 50 ms for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}

// Reservations, payments and the ledger, shared by booking.rs and payment.rs.
impl TestApp {
    /// `POST /v1/reservations`; asserts 201 and returns the reservation.
    pub async fn hold_ok(&self, user: &TestUser, token: &str, schedule_id: i64, seats: &[i64]) -> Value {
        let response = self.hold(user, token, schedule_id, seats).await;
        assert_eq!(response.status(), StatusCode::CREATED, "hold of {seats:?}");
        response.json().await.expect("json")
    }

    /// `POST /v1/payments`; asserts 201 and returns the payment.
    pub async fn pay_ok(&self, user: &TestUser, token: &str, reservation_id: &str) -> Value {
        let response = self.pay(user, token, reservation_id).await;
        assert_eq!(response.status(), StatusCode::CREATED, "payment of {reservation_id}");
        response.json().await.expect("json")
    }

    /// `GET /v1/reservations/{id}` as its owner; asserts 200.
    pub async fn reservation(&self, user: &TestUser, id: &str) -> Value {
        let response = self.get(&format!("/v1/reservations/{id}"), Some(user)).await;
        assert_eq!(response.status(), StatusCode::OK, "reservation {id}");
        response.json().await.expect("json")
    }

    /// `DELETE /v1/reservations/{id}`.
    pub async fn cancel_reservation(&self, user: &TestUser, id: &str) -> Response {
        with_user(
            self.request(Method::DELETE, &format!("/v1/reservations/{id}")),
            Some(user),
        )
        .send()
        .await
        .expect("request sent")
    }

    /// A user with `balance` in the wallet (none when 0) and an ACTIVE
    /// token for the concert.
    pub async fn fan(&self, name: &str, balance: i64, concert_id: i64) -> (TestUser, String) {
        let user = if balance > 0 {
            self.create_user_with(name, balance).await
        } else {
            self.create_user(name).await
        };
        let token = self.active_token(&user, concert_id).await;
        (user, token)
    }

    /// `GET /v1/users/{id}/reservations` as that user: the list, newest first.
    pub async fn user_reservations(&self, user: &TestUser) -> Vec<Value> {
        let response = self
            .get(&format!("/v1/users/{}/reservations", user.id), Some(user))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        body["reservations"].as_array().expect("reservations").clone()
    }

    /// `GET /v1/users/{id}/balance/history?limit=200`: the entries, newest first.
    pub async fn ledger(&self, user: &TestUser) -> Vec<Value> {
        let response = self
            .get(&format!("/v1/users/{}/balance/history?limit=200", user.id), Some(user))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        body["entries"].as_array().expect("entries").clone()
    }
}

/// The `id` of a reservation or payment body.
pub fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}
