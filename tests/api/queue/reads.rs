//! Token status reads merged per concert (`queue::StatusReader`): every
//! read gets its own answer, concurrent reads share script calls, and a
//! lane that idles stops and comes back.

use std::time::Duration;

use fred::interfaces::{KeysInterface, SortedSetsInterface};
use futures_util::future::join_all;
use ticketrush::queue::{QueueError, QueueToken, StatusReader};

use super::{config, issue_new, leave_ok, queue_key, token_of, waiting_room};
use crate::helpers::{eventually, TestApp, TestConfig, TestUser};

/// The first fan takes the one slot, the next `n` wait at positions 1..=n;
/// returns the admitted token and the waiters with theirs.
async fn queue_of(app: &TestApp, fans: &[TestUser], concert_id: i64, n: usize) -> (String, Vec<(TestUser, String)>) {
    let active = app.active_token(&fans[0], concert_id).await;
    let mut waiters = Vec::with_capacity(n);
    for (i, fan) in fans[1..=n].iter().enumerate() {
        let body = issue_new(app, fan, concert_id).await;
        assert_eq!(
            (&body["status"], &body["position"]),
            (&"WAITING".into(), &(i + 1).into())
        );
        waiters.push((fan.clone(), token_of(&body)));
    }
    (active, waiters)
}

/// A status reader of the app's Redis, with the app's queue settings.
fn new_reader(app: &TestApp) -> StatusReader {
    StatusReader::new(app.redis.clone(), app.settings.queue.clone())
}

fn parse(token: &str) -> QueueToken {
    QueueToken::parse(token).expect("a well-formed token")
}

#[tokio::test]
async fn concurrent_reads_share_script_calls_and_each_gets_its_own_answer() {
    let (app, concert, fans) = waiting_room(config(1), 42).await;
    let (active, waiters) = queue_of(&app, &fans, concert.id, 40).await;
    let reader = new_reader(&app);
    let stranger = &fans[41];
    let unknown = QueueToken::generate(concert.id);

    // Waiters read in reverse order, each as its owner; one with another
    // user's key; an unknown token; the admitted token without a key.
    let mut reads: Vec<_> = waiters
        .iter()
        .rev()
        .map(|(user, token)| reader.get(parse(token), Some(user.id)))
        .collect();
    reads.push(reader.get(parse(&waiters[3].1), Some(stranger.id)));
    reads.push(reader.get(unknown, None));
    reads.push(reader.get(parse(&active), None));
    let mut answers = join_all(reads).await;

    let admitted = answers.pop().expect("answer").expect("the admitted token reads");
    assert_eq!((admitted.status, admitted.position), ("ACTIVE", 0));
    assert!(matches!(answers.pop(), Some(Err(QueueError::TokenNotFound))));
    assert!(matches!(answers.pop(), Some(Err(QueueError::Forbidden))));
    for (answer, (user, token)) in answers.into_iter().zip(waiters.iter().rev()) {
        let view = answer.expect("a waiter reads its own token");
        assert_eq!(&view.token, token);
        assert_eq!(view.user_id, user.id);
        assert_eq!(view.status, "WAITING");
        let http = app.token_status(token).await;
        assert_eq!(http["position"], view.position, "{http}");
    }
    let positions: Vec<i64> = join_all(waiters.iter().map(|(_, t)| reader.get(parse(t), None)))
        .await
        .into_iter()
        .map(|v| v.expect("reads").position)
        .collect();
    assert_eq!(positions, (1..=40).collect::<Vec<i64>>());
    // 83 reads sent together: the first may go out alone, the rest ride
    // along; one call each would be 83.
    assert!(reader.calls() <= 8, "{} calls for 83 reads", reader.calls());
}

#[tokio::test]
async fn a_waiter_read_again_by_its_place_alone_answers_as_a_whole_read_does() {
    // Arrange: one slot taken, two waiters; the reader reads the second
    // waiter whole once, and so learns it.
    let (app, concert, fans) = waiting_room(config(1), 4).await;
    let (active, waiters) = queue_of(&app, &fans, concert.id, 2).await;
    let reader = new_reader(&app);
    let ((ahead, ahead_token), (owner, token)) = (&waiters[0], &waiters[1]);
    let stranger = &fans[3];
    let whole = reader.get(parse(token), Some(owner.id)).await.expect("reads");

    // Act
    let again = reader.get(parse(token), None).await.expect("reads");
    let again_as_owner = reader.get(parse(token), Some(owner.id)).await.expect("reads");
    let known = reader.known();
    let as_stranger = reader.get(parse(token), Some(stranger.id)).await;
    leave_ok(&app, ahead, ahead_token).await;
    let moved_up = reader.get(parse(token), None).await.expect("reads");
    leave_ok(&app, &fans[0], &active).await;
    let admitted = reader.get(parse(token), Some(owner.id)).await.expect("reads");

    // Assert
    assert_eq!(known, 1, "a waiting token read whole is known");
    assert_eq!((whole.status, whole.position), ("WAITING", 2));
    assert_eq!(again, whole);
    assert_eq!(again_as_owner, whole);
    assert!(matches!(as_stranger, Err(QueueError::Forbidden)), "{as_stranger:?}");
    assert_eq!((moved_up.status, moved_up.position), ("WAITING", 1));
    assert_eq!((moved_up.user_id, moved_up.issued_at), (owner.id, whole.issued_at));
    assert_eq!((admitted.status, admitted.position), ("ACTIVE", 0));
    assert!(admitted.active_until.is_some());
    assert_eq!(reader.known(), 0, "a token no longer waiting is read whole");
}

#[tokio::test]
async fn a_known_waiter_gets_the_wait_of_a_whole_read_once_admissions_set_the_rate() {
    // Arrange: one slot taken, three waiters, and the admission that took
    // the slot over a minute old (no rate yet: a wave of slots an active
    // lifetime); the reader learns the last waiter.
    let (app, concert, fans) = waiting_room(config(1), 4).await;
    let (active, waiters) = queue_of(&app, &fans, concert.id, 3).await;
    let admissions = queue_key(&app, concert.id, "q:adm");
    let _: i64 = app.redis.client().del(admissions).await.expect("redis answers");
    let reader = new_reader(&app);
    let (owner, token) = &waiters[2];
    let before = reader.get(parse(token), Some(owner.id)).await.expect("reads");
    let known_before = reader.get(parse(token), None).await.expect("reads");

    // Act: the slot frees, the first waiter is admitted (a measured rate).
    leave_ok(&app, &fans[0], &active).await;
    let known = reader.get(parse(token), None).await.expect("reads");
    let whole = new_reader(&app).get(parse(token), Some(owner.id)).await.expect("reads");

    // Assert: read by its place or whole, the same answer, wait included.
    assert_eq!(reader.known(), 1, "{known:?}");
    let lifetime = app.settings.queue.active_ttl_ms().div_ceil(1000) as i64;
    assert_eq!(before.estimated_wait_seconds, 3 * lifetime, "{before:?}");
    assert_eq!(known_before, before);
    assert_eq!((known.status, known.position), ("WAITING", 2));
    assert_eq!(known, whole);
    assert_eq!(
        known.estimated_wait_seconds, 20,
        "one admission in a 10 s window, two ahead"
    );
}

#[tokio::test]
async fn a_known_waiter_is_looked_up_again_when_the_line_lost_its_version() {
    // Arrange: one slot taken, two waiters; the reader learns the second at
    // place 2. Then Redis loses the line's version and the first waiter
    // with it, as a Redis restored from an older state or rebuilt would.
    let (app, concert, fans) = waiting_room(config(1), 3).await;
    let (_, waiters) = queue_of(&app, &fans, concert.id, 2).await;
    let reader = new_reader(&app);
    let (owner, token) = &waiters[1];
    let before = reader.get(parse(token), Some(owner.id)).await.expect("reads");
    let redis = app.redis.client();
    let _: i64 = redis
        .del(queue_key(&app, concert.id, "q:ver"))
        .await
        .expect("redis answers");
    let waiting = queue_key(&app, concert.id, "q:wait");
    let _: i64 = redis.zrem(waiting, waiters[0].1.as_str()).await.expect("redis answers");

    // Act
    let after = reader.get(parse(token), None).await.expect("reads");

    // Assert: a new version, so the place is read, not remembered.
    assert_eq!((before.status, before.position), ("WAITING", 2));
    assert_eq!((after.status, after.position), ("WAITING", 1));
}

#[tokio::test]
async fn a_read_counts_as_a_sighting_for_every_token_of_a_shared_call() {
    let idle = TestConfig {
        idle_timeout_seconds: 2,
        ..config(1)
    };
    let (app, concert, fans) = waiting_room(idle, 7).await;
    let (_, waiters) = queue_of(&app, &fans, concert.id, 6).await;
    let reader = new_reader(&app);
    // The first three are read every 300 ms for 3 s; the others never are,
    // so they idle out and the read ones keep their places.
    let kept = &waiters[..3];
    for _ in 0..10 {
        let views = join_all(kept.iter().map(|(u, t)| reader.get(parse(t), Some(u.id)))).await;
        assert!(views.iter().all(|v| v.as_ref().is_ok_and(|v| v.status == "WAITING")));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (_, token) in &waiters[3..] {
        assert_eq!(app.token_status(token).await["status"], "EXPIRED");
    }
    let views = join_all(kept.iter().map(|(u, t)| reader.get(parse(t), Some(u.id)))).await;
    let positions: Vec<i64> = views.into_iter().map(|v| v.expect("reads").position).collect();
    assert_eq!(positions, vec![1, 2, 3]);
}

#[tokio::test]
async fn an_idle_lane_stops_and_the_next_read_starts_a_new_one() {
    let (app, concert, fans) = waiting_room(TestConfig::default(), 1).await;
    let user = &fans[0];
    let token = app.active_token(user, concert.id).await;
    let reader = StatusReader::with_idle(app.redis.clone(), app.settings.queue.clone(), Duration::from_millis(50));

    let view = reader.get(parse(&token), Some(user.id)).await.expect("reads");
    assert_eq!(view.status, "ACTIVE");
    assert_eq!(reader.lanes(), 1);
    assert!(eventually(Duration::from_secs(5), || async { reader.lanes() == 0 }).await);
    // Reads racing the stop of a lane are all answered.
    for _ in 0..20 {
        let view = reader.get(parse(&token), Some(user.id)).await.expect("reads");
        assert_eq!(view.status, "ACTIVE");
        tokio::time::sleep(Duration::from_millis(45)).await;
    }
    assert_eq!(reader.calls(), 21);
}
