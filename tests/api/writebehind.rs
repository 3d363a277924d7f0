//! The write-behind, `verify` and `rebuild` (DESIGN.md "Postgres").

use std::collections::BTreeSet;
use std::time::Duration;

use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::{CustomCommand, Value as RedisValue};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use ticketrush::reconcile::{self, RebuildReport};
use ticketrush::store::redis::Keys;
use ticketrush::writebehind::{self, apply_batch, FlushOutcome, Worker};

use crate::helpers::{
    assert_json, assert_problem, eventually, spawn_app, spawn_app_with, TestApp, TestConfig, TestUser,
};
use crate::payment::pay_with_key;

/// Every projected table as text, in a stable order.
async fn snapshot(app: &TestApp) -> Vec<String> {
    let queries = [
        "select user_id, name, balance, version from app_user order by 1",
        "select user_id, version, entry_type, amount, balance_after, reference from wallet_ledger order by 1, 2",
        "select concert_id, title from concert order by 1",
        "select schedule_id, seat_count, price from schedule order by 1",
        "select schedule_id, seat_number, status, reservation_id from seat order by 1, 2",
        "select reservation_id, status, amount, payment_id from reservation order by 1",
        "select reservation_id, seat_number from reservation_seat order by 1, 2",
        "select payment_id, status, amount, balance_after from payment order by 1",
        "select token, status from queue_token order by 1",
    ];
    let client = app.pg.get().await.unwrap();
    let mut out = Vec::new();
    for q in queries {
        let sql = format!("select row_to_json(t)::text from ({q}) t");
        for row in client.query(sql.as_str(), &[]).await.unwrap() {
            out.push(row.get::<_, String>(0));
        }
    }
    out
}

/// A little of everything: users, charges, a concert, holds, a payment, a
/// cancellation and a refund.
async fn some_sales(app: &TestApp) -> (TestUser, TestUser, i64) {
    let alice = app.create_user_with("alice", 1_000_000).await;
    let bob = app.create_user_with("bob", 1_000_000).await;
    let concert = app.create_simple_concert(10, 50_000, 4).await;
    let a = app.active_token(&alice, concert.id).await;
    let b = app.active_token(&bob, concert.id).await;
    let held: Value = app
        .hold(&alice, &a, concert.schedule_id, &[1, 2])
        .await
        .json()
        .await
        .unwrap();
    let paid = app.pay(&alice, &a, held["id"].as_str().unwrap()).await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    let held_b: Value = app
        .hold(&bob, &b, concert.schedule_id, &[3])
        .await
        .json()
        .await
        .unwrap();
    let cancelled = app
        .request(
            Method::DELETE,
            &format!("/v1/reservations/{}", held_b["id"].as_str().unwrap()),
        )
        .bearer_auth(&bob.key)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let held_b: Value = app
        .hold(&bob, &b, concert.schedule_id, &[4, 5])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.pay(&bob, &b, held_b["id"].as_str().unwrap()).await.status(),
        StatusCode::CREATED
    );
    let refunded = app
        .request(
            Method::DELETE,
            &format!("/v1/reservations/{}", held_b["id"].as_str().unwrap()),
        )
        .bearer_auth(&bob.key)
        .send()
        .await
        .unwrap();
    assert_eq!(refunded.status(), StatusCode::OK);
    (alice, bob, concert.schedule_id)
}

#[tokio::test]
async fn a_drained_write_behind_agrees_with_redis() {
    // Arrange
    let app = spawn_app().await;
    let (alice, bob, schedule) = some_sales(&app).await;
    // Act
    let written = app.drain_writebehind().await;
    // Assert
    assert!(written > 10, "{written} events");
    assert_eq!(reconcile::verify(&app.redis, &app.pg).await.unwrap(), vec![]);
    let rows = app
        .pg_rows(&format!(
            "select balance from app_user where user_id in ({}, {}) order by user_id",
            alice.id, bob.id
        ))
        .await;
    assert_eq!(rows[0].get::<_, i64>(0), app.balance(&alice).await);
    assert_eq!(rows[1].get::<_, i64>(0), 1_000_000);
    let sold = app
        .pg_rows(&format!(
            "select seat_number from seat where schedule_id = {schedule} and status = 'SOLD' order by 1"
        ))
        .await;
    assert_eq!(sold.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(), vec![1, 2]);
}

#[tokio::test]
async fn replaying_a_batch_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    some_sales(&app).await;
    let entries = writebehind::read_all(&app.redis).await.unwrap();
    apply_batch(&app.pg, &entries).await.unwrap();
    let once = snapshot(&app).await;
    // Act
    apply_batch(&app.pg, &entries).await.unwrap();
    apply_batch(&app.pg, &entries[entries.len() / 2..]).await.unwrap();
    // Assert
    assert_eq!(snapshot(&app).await, once);
}

#[tokio::test]
async fn events_applied_out_of_order_converge_on_the_same_rows() {
    // Arrange: the rows in-order application gives.
    let app = spawn_app().await;
    some_sales(&app).await;
    let entries = writebehind::read_all(&app.redis).await.unwrap();
    apply_batch(&app.pg, &entries).await.unwrap();
    let in_order = snapshot(&app).await;
    let other = spawn_app().await;
    // Act: the same events, newest first, one at a time, as racing
    // workers could deliver them; a batch that needs a row not there yet
    // fails and is delivered again, as the real worker does.
    let mut pending: Vec<_> = entries.into_iter().rev().collect();
    for _round in 0..100 {
        if pending.is_empty() {
            break;
        }
        let mut failed = Vec::new();
        for entry in pending {
            if apply_batch(&other.pg, std::slice::from_ref(&entry)).await.is_err() {
                failed.push(entry);
            }
        }
        pending = failed;
    }
    // Assert
    assert!(pending.is_empty());
    assert_eq!(snapshot(&other).await, in_order);
}

#[tokio::test]
async fn events_in_the_earlier_entry_shape_are_persisted_alike() {
    // Arrange: the events of some sales, each stream written again with
    // the same ids in the shape of earlier versions, `k` <kind> `d` <JSON>.
    let app = spawn_app().await;
    some_sales(&app).await;
    let entries = writebehind::read_all(&app.redis).await.unwrap();
    let client = app.redis.client();
    let streams: BTreeSet<String> = entries.iter().map(|e| e.stream.to_string()).collect();
    let _: i64 = client.del(streams.iter().cloned().collect::<Vec<_>>()).await.unwrap();
    for e in &entries {
        let args: Vec<RedisValue> = vec![
            e.stream.to_string().into(),
            e.id().into(),
            "k".into(),
            e.kind.as_str().into(),
            "d".into(),
            RedisValue::Bytes(e.data.clone()),
        ];
        let _: RedisValue = client
            .custom(CustomCommand::new_static("XADD", None, false), args)
            .await
            .unwrap();
    }
    let first: RedisValue = client
        .custom(
            CustomCommand::new_static("XRANGE", None, false),
            vec![
                entries[0].stream.to_string(),
                "-".into(),
                "+".into(),
                "COUNT".into(),
                "1".into(),
            ],
        )
        .await
        .unwrap();
    let fields = first.into_array().remove(0).into_array().remove(1).into_array();
    assert_eq!(fields.len(), 4, "the entries are of the earlier shape");
    // Act
    let written = app.drain_writebehind().await;
    // Assert
    assert_eq!(written, entries.len());
    assert_eq!(writebehind::backlog(&app.redis).await.unwrap(), 0);
    assert_eq!(reconcile::verify(&app.redis, &app.pg).await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_nothing() {
    // Arrange: a worker reads a batch and dies before writing it.
    let app = spawn_app().await;
    some_sales(&app).await;
    let read = Worker::new(app.redis.clone(), app.pg.clone())
        .read_and_die()
        .await
        .unwrap();
    assert!(read > 0);
    assert_eq!(writebehind::backlog(&app.redis).await.unwrap() as usize, read);
    // Act: a new worker claims what the dead one left pending.
    let mut worker = Worker::new(app.redis.clone(), app.pg.clone()).claim_idle(Duration::ZERO);
    worker.drain(Duration::from_secs(10)).await;
    // Assert
    assert_eq!(writebehind::backlog(&app.redis).await.unwrap(), 0);
    assert_eq!(reconcile::verify(&app.redis, &app.pg).await.unwrap(), vec![]);
}

#[tokio::test]
async fn sales_go_on_while_postgres_is_unreachable_and_the_backlog_drains_after() {
    // Arrange: a server whose Postgres URL points at a closed port, with
    // its own write-behind running; sales share the test's Redis prefix.
    let app = spawn_app().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut settings = app.settings.clone();
    settings.postgres.url = secrecy::SecretString::from(format!("postgres://postgres@127.0.0.1:{port}/nowhere"));
    let state = ticketrush::build_state(settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let background = ticketrush::Background {
        writebehind: true,
        sweeper: true,
    };
    let server = tokio::spawn(ticketrush::run_with_state(
        state,
        listener,
        async move {
            let _ = stopped.await;
        },
        background,
    ));
    // Act: sell through the server without Postgres.
    let mut outage = spawn_app().await;
    outage.base = format!("http://{addr}");
    let (alice, _, _) = some_sales(&outage).await;
    let ready: Value = outage.get("/readyz", None).await.json().await.unwrap();
    // Assert: ready (Redis answers), Postgres down, the backlog reported.
    assert_eq!(ready["redis"], "up");
    assert_eq!(ready["postgres"], "down");
    assert!(ready["writebehind_backlog"].as_u64().unwrap() > 10, "{ready}");
    assert_eq!(outage.balance(&alice).await, 1_000_000 - 100_000);
    // Postgres "returns": a worker with a working URL drains it all,
    // claiming the batch the outage server read but could not write.
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let mut worker = Worker::new(app.redis.clone(), app.pg.clone()).claim_idle(Duration::ZERO);
    worker.drain(Duration::from_secs(10)).await;
    assert_eq!(writebehind::backlog(&app.redis).await.unwrap(), 0);
    assert_eq!(reconcile::verify(&app.redis, &app.pg).await.unwrap(), vec![]);
}

#[tokio::test]
async fn the_worker_inside_serve_persists_within_seconds_and_flushes_on_shutdown() {
    // Arrange
    let mut config = TestConfig::default();
    config.background.writebehind = true;
    let mut app = spawn_app_with(config).await;
    // Act
    let user = app.create_user_with("carol", 5_000).await;
    // Assert: persisted by the server's own worker.
    let persisted = eventually(Duration::from_secs(3), || async {
        let rows = app
            .pg_rows(&format!("select balance from app_user where user_id = {}", user.id))
            .await;
        rows.first().map(|r| r.get::<_, i64>(0)) == Some(5_000)
    })
    .await;
    assert!(persisted);
    // A charge right before shutdown is flushed by the final drain.
    assert_eq!(app.charge(&user, 1_000, None).await.status(), StatusCode::OK);
    let (redis, pg) = (app.redis.clone(), app.pg.clone());
    app.stop().await.unwrap();
    let rows = pg
        .get()
        .await
        .unwrap()
        .query(
            &format!("select balance from app_user where user_id = {}", user.id),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 6_000);
    assert_eq!(writebehind::backlog(&redis).await.unwrap(), 0);
}

#[tokio::test]
async fn verify_lists_every_difference() {
    // Arrange
    let app = spawn_app().await;
    let (alice, _, _) = some_sales(&app).await;
    app.drain_writebehind().await;
    // Act: the two stores disagree on a balance and a seat.
    let wallet = app.redis.keys().wallet_hash(alice.id);
    let _: () = fred::interfaces::HashesInterface::hset(app.redis.client(), wallet, ("balance", 1))
        .await
        .unwrap();
    let client = app.pg.get().await.unwrap();
    client
        .execute("update seat set status = 'SOLD' where seat_number = 9", &[])
        .await
        .unwrap();
    let differences = reconcile::verify(&app.redis, &app.pg).await.unwrap();
    // Assert
    let subjects: Vec<_> = differences.iter().map(|d| d.subject.clone()).collect();
    assert_eq!(subjects.len(), 2, "{differences:?}");
    assert!(subjects.contains(&format!("wallet {}", alice.id)));
    assert!(subjects.iter().any(|s| s.ends_with("/9")));
}

#[tokio::test]
async fn rebuild_restores_what_the_api_showed_after_redis_is_lost() {
    // Arrange: the API's answers before the loss.
    let app = spawn_app().await;
    let (alice, bob, schedule) = some_sales(&app).await;
    let views = |user: &TestUser| {
        let user = user.clone();
        let app = &app;
        async move {
            let balance = app
                .get(&format!("/v1/users/{}/balance", user.id), Some(&user))
                .await
                .text()
                .await
                .unwrap();
            let history: Value = app
                .get(&format!("/v1/users/{}/balance/history", user.id), Some(&user))
                .await
                .json()
                .await
                .unwrap();
            let reservations: Value = app
                .get(&format!("/v1/users/{}/reservations", user.id), Some(&user))
                .await
                .json()
                .await
                .unwrap();
            (balance, history, reservations)
        }
    };
    let before = (views(&alice).await, views(&bob).await);
    app.drain_writebehind().await;
    // Act: Redis loses everything of this deployment, then is rebuilt.
    assert!(reconcile::delete_all(&app.redis).await.unwrap() > 0);
    assert_eq!(app.balance(&alice).await, 0, "the wallet is gone with redis");
    let report = reconcile::rebuild(&app.redis, &app.pg).await.unwrap();
    // Assert: the same answers, and business goes on.
    assert_eq!(report.users, 2);
    assert_eq!((views(&alice).await, views(&bob).await), before);
    assert_eq!(reconcile::verify(&app.redis, &app.pg).await.unwrap(), vec![]);
    let carol = app.create_user_with("carol", 500_000).await;
    assert!(carol.id > bob.id, "ids continue after the rebuild");
    let concert_id = app.pg_rows("select concert_id from concert").await[0].get::<_, i64>(0);
    let token = app.active_token(&carol, concert_id).await;
    let seats = app.seat_map(&carol, &token, schedule).await;
    assert_eq!(&seats[..5], ["SOLD", "SOLD", "AVAILABLE", "AVAILABLE", "AVAILABLE"]);
    assert_problem(app.hold(&carol, &token, schedule, &[1]).await, 409, "SEAT_UNAVAILABLE").await;
    let held: Value = app.hold(&carol, &token, schedule, &[4]).await.json().await.unwrap();
    assert_eq!(
        app.pay(&carol, &token, held["id"].as_str().unwrap()).await.status(),
        StatusCode::CREATED
    );
    drain_and_verify(&app).await;
}

/// Drains the write-behind, loses every Redis key of the deployment and
/// rebuilds Redis from Postgres.
async fn lose_redis_and_rebuild(app: &TestApp) -> RebuildReport {
    app.drain_writebehind().await;
    assert!(reconcile::delete_all(&app.redis).await.unwrap() > 0);
    reconcile::rebuild(&app.redis, &app.pg).await.unwrap()
}

/// Drains the write-behind; then Postgres must agree with Redis.
async fn drain_and_verify(app: &TestApp) {
    app.drain_writebehind().await;
    assert_eq!(reconcile::verify(&app.redis, &app.pg).await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_charge_retried_with_its_key_after_a_rebuild_answers_as_before_and_books_nothing() {
    // Arrange: a charge with an Idempotency-Key reaches Postgres, then
    // Redis loses everything and is rebuilt.
    let app = spawn_app().await;
    let user = app.create_user_with("dora", 2_000).await;
    let first = assert_json(app.charge(&user, 1_000, Some("top-up-1")).await, StatusCode::OK).await;
    let report = lose_redis_and_rebuild(&app).await;
    assert_eq!(report.charge_keys, 1, "the first charge had no key");
    // Act
    let retry = app.charge(&user, 9_999, Some("top-up-1")).await;
    // Assert: the first answer, nothing booked, the record keeps its day.
    assert_eq!(assert_json(retry, StatusCode::OK).await, first);
    assert_eq!(app.balance(&user).await, 3_000);
    let key = Keys::idempotency(&app.redis.keys().wallet(user.id), user.id, "charge", "top-up-1");
    let ttl: i64 = app.redis.client().ttl(key).await.unwrap();
    assert!((86_000..=86_400).contains(&ttl), "what is left of its day: {ttl} s");
    let other = app.charge(&user, 500, Some("top-up-2")).await;
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(app.balance(&user).await, 3_500);
    drain_and_verify(&app).await;
}

#[tokio::test]
async fn a_payment_retried_with_its_key_after_a_rebuild_answers_as_before_and_pays_nothing() {
    // Arrange: a payment with an Idempotency-Key reaches Postgres, then
    // Redis loses everything and is rebuilt.
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, 50_000, 4).await;
    let (user, token) = app.fan("erin", 1_000_000, concert.id).await;
    let held = app.hold_ok(&user, &token, concert.schedule_id, &[1]).await;
    let held = held["id"].as_str().unwrap();
    let first = assert_json(
        pay_with_key(&app, &user, &token, held, "pay-1").await,
        StatusCode::CREATED,
    )
    .await;
    let balance = app.balance(&user).await;
    let report = lose_redis_and_rebuild(&app).await;
    assert_eq!(report.payment_keys, 1);
    // Act: the retry carries the old queue token, as a client's would.
    let retry = pay_with_key(&app, &user, &token, held, "pay-1").await;
    // Assert
    assert_eq!(assert_json(retry, StatusCode::CREATED).await, first);
    assert_eq!(app.balance(&user).await, balance, "paid once");
    drain_and_verify(&app).await;
}

#[tokio::test]
async fn a_hold_retried_with_its_key_after_a_rebuild_answers_as_before_and_holds_nothing_more() {
    // Arrange: a hold with an Idempotency-Key reaches Postgres, then Redis
    // loses everything and is rebuilt.
    let app = spawn_app().await;
    let concert = app.create_simple_concert(10, 50_000, 4).await;
    let (user, token) = app.fan("fern", 1_000_000, concert.id).await;
    let hold = || app.hold_with_key(&user, &token, concert.schedule_id, &[2, 3], Some("hold-1"));
    let first = assert_json(hold().await, StatusCode::CREATED).await;
    let report = lose_redis_and_rebuild(&app).await;
    assert_eq!(report.hold_keys, 1);
    // Act: the retry carries the old queue token, as a client's would.
    let retry = hold().await;
    // Assert: the first answer, and still the one reservation.
    assert_eq!(assert_json(retry, StatusCode::CREATED).await, first);
    let mine = app.user_reservations(&user).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    drain_and_verify(&app).await;
}

#[tokio::test]
async fn the_lag_is_the_age_of_the_oldest_event_not_yet_persisted() {
    // Arrange: events a second old, then some of them read by a worker
    // that dies (pending) and the rest not delivered at all.
    let app = spawn_app().await;
    some_sales(&app).await;
    assert!(writebehind::lag_seconds(&app.redis).await.unwrap() < 1.0);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let waiting = writebehind::backlog(&app.redis).await.unwrap();
    // Act
    let undelivered = writebehind::lag_seconds(&app.redis).await.unwrap();
    Worker::new(app.redis.clone(), app.pg.clone())
        .read_and_die()
        .await
        .unwrap();
    let pending = writebehind::lag_seconds(&app.redis).await.unwrap();
    let per_stream = writebehind::backlogs(&app.redis).await.unwrap();
    let mut claimer = Worker::new(app.redis.clone(), app.pg.clone()).claim_idle(Duration::ZERO);
    claimer.drain(Duration::from_secs(10)).await;
    // Assert
    assert!(waiting > 0);
    assert!((1.0..30.0).contains(&undelivered), "{undelivered} s");
    assert!((1.0..30.0).contains(&pending), "{pending} s");
    assert_eq!(per_stream.iter().map(|b| b.events).sum::<u64>(), waiting);
    assert!(
        per_stream.iter().all(|b| (b.events > 0) == b.oldest_ms.is_some()),
        "{per_stream:?}"
    );
    assert_eq!(writebehind::lag_seconds(&app.redis).await.unwrap(), 0.0);
    assert_eq!(writebehind::backlog(&app.redis).await.unwrap(), 0);
}

/// Records, in the test's database, the transaction of every write of a
/// stream's cursor: one per batch of that stream the worker commits.
async fn record_batches(app: &TestApp) {
    app.pg
        .get()
        .await
        .unwrap()
        .batch_execute(
            "create table cursor_write (stream text not null, tx xid8 not null default pg_current_xact_id());
             create function record_cursor_write() returns trigger language plpgsql as $$
               begin insert into cursor_write (stream) values (new.stream); return new; end $$;
             create trigger cursor_write after insert or update on writebehind_cursor
               for each row execute function record_cursor_write();",
        )
        .await
        .unwrap();
}

/// The user's ledger rows in Postgres.
async fn ledger_rows(app: &TestApp, user: &TestUser) -> i64 {
    let sql = format!("select count(*) from wallet_ledger where user_id = {}", user.id);
    app.pg_rows(&sql).await[0].get(0)
}

async fn batches_written(app: &TestApp) -> i64 {
    app.pg_rows("select count(distinct tx) from cursor_write").await[0].get(0)
}

#[tokio::test]
async fn a_trickle_of_events_is_written_in_a_few_batches_not_one_each() {
    // Arrange: the server's own worker, caught up.
    let mut config = TestConfig::default();
    config.background.writebehind = true;
    let app = spawn_app_with(config).await;
    let user = app.create_user_with("dave", 1_000).await;
    let registered = eventually(Duration::from_secs(5), || async {
        !app.pg_rows(&format!("select 1 from app_user where user_id = {}", user.id))
            .await
            .is_empty()
    })
    .await;
    assert!(registered);
    record_batches(&app).await;
    // Act: a charge started every 5 ms, whatever the answers take, each one
    // event of the same stream.
    let charges = 150;
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let (mut left, mut answered) = (charges, 0);
    while left > 0 || !in_flight.is_empty() {
        tokio::select! {
            _ = tick.tick(), if left > 0 => {
                left -= 1;
                in_flight.push(app.charge(&user, 1_000, None));
            }
            Some(response) = futures_util::StreamExt::next(&mut in_flight) => {
                assert_eq!(response.status(), StatusCode::OK);
                answered += 1;
            }
        }
    }
    assert_eq!(answered, charges);
    let persisted = eventually(Duration::from_secs(5), || async {
        let rows = app
            .pg_rows(&format!("select balance from app_user where user_id = {}", user.id))
            .await;
        rows.first().map(|r| r.get::<_, i64>(0)) == Some((charges + 1) * 1_000)
    })
    .await;
    let took = started.elapsed();
    // Assert: every event is there, in about a batch a linger, and at
    // least three events a batch on average (about ten arrive a linger).
    assert!(persisted);
    let batches = batches_written(&app).await;
    let lingers = took.as_millis() / writebehind::LINGER.as_millis().max(1);
    let most = (i64::try_from(lingers).unwrap() + 2).min(charges / 3);
    assert!(
        (1..=most).contains(&batches),
        "{charges} events in {took:?} were written in {batches} batches (at most {most} expected)"
    );
}

#[tokio::test]
async fn a_backlog_of_several_batches_in_one_stream_is_drained_whole_by_the_running_worker() {
    // Arrange: more events in one stream than a batch holds, nothing persisted yet.
    let app = spawn_app().await;
    let user = app.create_user_with("erin", 10).await;
    let charges = writebehind::BATCH as i64 * 2 + 100;
    let sent = futures_util::future::join_all((0..16).map(|lane| {
        let (app, user) = (&app, &user);
        async move {
            let mut ok = 0;
            for _ in (lane..charges).step_by(16) {
                ok += i64::from(app.charge(user, 10, None).await.status() == StatusCode::OK);
            }
            ok
        }
    }))
    .await;
    assert_eq!(sent.iter().sum::<i64>(), charges);
    record_batches(&app).await;
    // Act
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(Worker::new(app.redis.clone(), app.pg.clone()).run_until_stopped(stop.clone()));
    let drained = eventually(Duration::from_secs(30), || async {
        writebehind::backlog(&app.redis).await.unwrap() == 0
    })
    .await;
    stop.cancel();
    worker.await.unwrap().unwrap();
    // Assert: all of it, in full batches while behind.
    assert!(drained);
    assert_eq!(ledger_rows(&app, &user).await, charges + 1);
    assert!(batches_written(&app).await >= 3);
    assert_eq!(reconcile::verify(&app.redis, &app.pg).await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_batch_postgres_refused_is_read_again_whole_and_written_once_it_accepts() {
    // Arrange: more events in one stream than one read command takes, and
    // a Postgres that refuses new ledger rows.
    let app = spawn_app().await;
    let user = app.create_user_with("frank", 10).await;
    let charges = writebehind::READ_CHUNK as i64 * 2 + 50;
    for _ in 0..charges {
        assert_eq!(app.charge(&user, 10, None).await.status(), StatusCode::OK);
    }
    let events = writebehind::backlog(&app.redis).await.unwrap();
    let refuse = "alter table wallet_ledger add constraint refuse check (amount < 0) not valid";
    app.pg.get().await.unwrap().batch_execute(refuse).await.unwrap();
    let mut worker = Worker::new(app.redis.clone(), app.pg.clone());
    assert!(worker.try_flush_once().await.is_err());
    // Act: Postgres accepts again; the worker reads what it had delivered to itself.
    let accept = "alter table wallet_ledger drop constraint refuse";
    app.pg.get().await.unwrap().batch_execute(accept).await.unwrap();
    let retried = worker.try_flush_once().await.unwrap();
    // Assert: all of it, each event once, in one batch.
    assert_eq!(retried, FlushOutcome::Flushed(events as usize));
    assert_eq!(worker.try_flush_once().await.unwrap(), FlushOutcome::Empty);
    assert_eq!(ledger_rows(&app, &user).await, charges + 1);
    assert_eq!(writebehind::backlog(&app.redis).await.unwrap(), 0);
    assert_eq!(reconcile::verify(&app.redis, &app.pg).await.unwrap(), vec![]);
}
