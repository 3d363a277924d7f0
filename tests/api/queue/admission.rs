//! Admission: fans are let in strictly in arrival order, across
//! instances, and the active slots are never exceeded while fans churn
//! (API.md "Waiting queue").

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{active_slots, config, issue, issue_new, leave_ok, status_as, token_of, waiting_room};
use crate::helpers::TestUser;

#[tokio::test]
async fn concurrent_arrivals_on_two_instances_are_admitted_in_strict_arrival_order() {
    // Arrange: one slot, thirty fans arriving at once through two instances.
    let (app, concert, fans) = waiting_room(config(1), 30).await;
    let second = app.second_instance().await;
    let servers = [&app, &second];
    let issued = join_all(
        fans.iter()
            .enumerate()
            .map(|(i, fan)| async move { (fan.clone(), issue_new(servers[i % 2], fan, concert.id).await) }),
    )
    .await;
    let (active, mut waiting): (Vec<_>, Vec<_>) = issued.into_iter().partition(|(_, b)| b["status"] == "ACTIVE");
    assert_eq!(active.len(), 1, "exactly one fan got the only slot");
    waiting.sort_by_key(|(_, b)| b["position"].as_i64().unwrap());
    let positions: Vec<i64> = waiting.iter().map(|(_, b)| b["position"].as_i64().unwrap()).collect();
    assert_eq!(
        positions,
        (1..=29).collect::<Vec<i64>>(),
        "arrival positions are a permutation"
    );
    let mut holder = (active[0].0.clone(), token_of(&active[0].1));

    for (round, (fan, body)) in waiting.iter().enumerate() {
        // Act: the slot holder leaves.
        leave_ok(servers[round % 2], &holder.0, &holder.1).await;

        // Assert: the next in arrival order holds the slot, everyone behind
        // moved up by exactly one.
        let next = status_as(servers[(round + 1) % 2], fan, &token_of(body)).await;
        assert_eq!(next["status"], "ACTIVE", "round {round}: {next}");
        let behind = join_all(waiting[round + 1..].iter().map(|(f, b)| async move {
            (
                b["position"].as_i64().unwrap(),
                status_as(servers[0], f, &token_of(b)).await,
            )
        }))
        .await;
        for (original, now) in behind {
            assert_eq!(now["status"], "WAITING");
            assert_eq!(
                now["position"].as_i64().unwrap(),
                original - round as i64 - 1,
                "round {round}"
            );
        }
        assert_eq!(active_slots(&app, concert.id).await, 1);
        holder = (fan.clone(), token_of(body));
    }
}

#[tokio::test]
async fn the_active_slots_are_never_exceeded_while_fans_churn_on_two_instances() {
    // Arrange
    const MAX: i64 = 5;
    let (app, concert, fans) = waiting_room(config(MAX as u32), 150).await;
    let app = Arc::new(app);
    let second = Arc::new(app.second_instance().await);
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicI64::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (app, done, most, samples) = (app.clone(), done.clone(), most.clone(), samples.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let active = active_slots(&app, concert.id).await;
                assert!(active <= MAX, "{active} tokens active at once");
                most.fetch_max(active, Ordering::Relaxed);
                samples.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };

    // Act: every fan issues, polls and leaves at random, three times over;
    // a fan keeps the token of its last round (if it did not leave).
    let churn = fans.iter().enumerate().map(|(i, fan)| {
        let (app, second, fan) = (app.clone(), second.clone(), fan.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let mut kept = None;
            for _ in 0..3 {
                let server = if rng.random_bool(0.5) { &app } else { &second };
                let (_, body) = issue(server, &fan, concert.id).await;
                let token = token_of(&body);
                let mut status = body["status"].as_str().unwrap().to_owned();
                for _ in 0..rng.random_range(0..4) {
                    tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
                    let server = if rng.random_bool(0.5) { &app } else { &second };
                    status = status_as(server, &fan, &token).await["status"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                }
                let leave_chance = if status == "ACTIVE" { 0.7 } else { 0.3 };
                if rng.random_bool(leave_chance) {
                    let server = if rng.random_bool(0.5) { &app } else { &second };
                    leave_ok(server, &fan, &token).await;
                    kept = None;
                } else {
                    kept = Some(token);
                }
            }
            (fan, kept)
        })
    });
    let results: Vec<(TestUser, Option<String>)> = join_all(churn).await.into_iter().map(|r| r.unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    sampler.await.expect("the sampler never saw more than the maximum");

    // Assert: capacity was reached (so the check meant something) and never
    // exceeded; then everyone still in line gets a slot as slots free.
    assert_eq!(most.load(Ordering::Relaxed), MAX);
    assert!(samples.load(Ordering::Relaxed) > 10);
    let mut remaining: HashMap<String, TestUser> = results
        .into_iter()
        .filter_map(|(fan, kept)| kept.map(|t| (t, fan)))
        .collect();
    assert!(
        remaining.len() > MAX as usize,
        "some fans are still waiting: {}",
        remaining.len()
    );
    let mut admitted = 0;
    for _ in 0..200 {
        if remaining.is_empty() {
            break;
        }
        let statuses = join_all(remaining.iter().map(|(t, f)| {
            let app = app.clone();
            async move {
                (
                    t.clone(),
                    status_as(&app, f, t).await["status"].as_str().unwrap().to_owned(),
                )
            }
        }))
        .await;
        let active: Vec<&String> = statuses.iter().filter(|(_, s)| s == "ACTIVE").map(|(t, _)| t).collect();
        assert!(
            statuses.iter().all(|(_, s)| s != "EXPIRED"),
            "nobody in line was dropped"
        );
        assert_eq!(
            active.len(),
            remaining.len().min(MAX as usize),
            "every free slot is filled"
        );
        assert!(active_slots(&app, concert.id).await <= MAX);
        for token in active {
            let fan = remaining.remove(token).unwrap();
            leave_ok(&second, &fan, token).await;
            admitted += 1;
        }
    }
    assert!(remaining.is_empty(), "{} fans were never admitted", remaining.len());
    assert!(admitted > MAX);
    assert_eq!(active_slots(&app, concert.id).await, 0);
}
