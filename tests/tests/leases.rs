//! Leases, with a worker process frozen (SIGSTOP) past its lease and thawed (SIGCONT):
//! what it was sending is taken over by another worker, and what it reports afterwards
//! changes nothing; a routine it had claimed but not fired is never fired on that claim.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::app::{Options, spawn_worker_process, spawn_worker_process_serving};
use switchyard_tests::{Answer, FakeRoutines, Receiver, Reply, TestApp};

const SECRET: &str = "gh-secret";
const TOKEN: &str = "sk-ant-oat01-test-token-0123456789";
const ROUTINE: &str = "trig_01ABCDEF";

fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

async fn routine(app: &TestApp, fake: &FakeRoutines, extra: Value) -> Value {
    let mut body = json!({"name": "triage", "kind": "routine",
                          "fire_url": fake.fire_url(ROUTINE), "token": TOKEN});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.created("/api/v1/destinations", body).await
}

/// The deliveries of the event, by destination id.
async fn delivery_to(app: &TestApp, event: &str, destination: &Value) -> String {
    sqlx::query_scalar("SELECT id FROM deliveries WHERE event_id = $1 AND destination_id = $2")
        .bind(event)
        .bind(destination["id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// `switchyard_late_outcomes_total` as a worker process reports it.
async fn late_outcomes(app: &TestApp, base: &str) -> u64 {
    app.metrics_at(base)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_late_outcomes_total "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_worker_frozen_past_its_lease_is_taken_over_and_its_late_outcomes_change_nothing() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let fake = FakeRoutines::start(TOKEN, vec![Answer::Hang]).await;
    let receiver = Receiver::start(vec![
        Reply::status(200).delay(Duration::from_secs(3)),
        Reply::status(200),
    ])
    .await;
    let source = app.create_source("github", Some(SECRET)).await;
    let fire = routine(&app, &fake, json!({})).await;
    let http = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &fire, &["*"]).await;
    app.create_route(&source, &http, &["*"]).await;

    let (frozen, frozen_base) = spawn_worker_process_serving(&app.database).await;
    let (_, answer) = app
        .send_github(&source, SECRET, "issues", "freeze-1", b"{}")
        .await;
    let event = answer["event_id"].as_str().unwrap();
    let (to_fire, to_http) = (
        delivery_to(&app, event, &fire).await,
        delivery_to(&app, event, &http).await,
    );
    // Both requests are out when the worker freezes: the fire hangs, the other answer
    // comes after three seconds.
    fake.wait_for(1, Duration::from_secs(10)).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    signal(&frozen, "-STOP");

    // Once the lease (eight seconds here) has run out, another worker takes both over:
    // the HTTP delivery is sent again, the fire is not.
    let _other = spawn_worker_process(&app.database).await;
    let sent_again = app
        .wait_delivery(&to_http, Duration::from_secs(30), |d| {
            d["status"] == "succeeded"
        })
        .await;
    let unknown = app
        .wait_delivery(&to_fire, Duration::from_secs(30), |d| {
            d["status"] == "unknown_outcome"
        })
        .await;
    assert!(
        unknown["last_error"]
            .as_str()
            .unwrap()
            .contains("may have started a session"),
        "{unknown:#}"
    );

    // Thawed, the frozen worker finishes both sends and reports them: too late.
    signal(&frozen, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    while late_outcomes(&app, &frozen_base).await < 2 {
        assert!(
            Instant::now() < deadline,
            "the frozen worker never reported"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, http_after) = app.get(&format!("/api/v1/deliveries/{to_http}")).await;
    let attempts: Vec<&str> = http_after["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(attempts, ["lost", "succeeded"], "{http_after:#}");
    assert_eq!(http_after["attempts"], sent_again["attempts"], "unchanged");
    let (_, fire_after) = app.get(&format!("/api/v1/deliveries/{to_fire}")).await;
    assert_eq!(fire_after["status"], "unknown_outcome");
    assert_eq!(fire_after["attempts"], unknown["attempts"], "unchanged");
    assert_eq!(fire_after["attempts"][0]["status"], "lost");
    assert_eq!(fake.received().len(), 1, "fired once, by the frozen worker");
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn a_routine_claimed_by_a_worker_frozen_before_it_fired_is_not_fired_on_that_claim() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let fake = FakeRoutines::start(TOKEN, vec![Answer::Fire]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    // A budget makes the claim lock the destination's runtime row, which this test
    // holds, so the worker's claim stops there, between locking the delivery and
    // starting it: the worker is frozen at that point.
    let fire = routine(&app, &fake, json!({"budget_per_day": 1000})).await;
    app.create_route(&source, &fire, &["*"]).await;
    let worker = spawn_worker_process(&app.database).await;
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM destination_runtime WHERE id = $1 FOR UPDATE")
        .bind(fire["id"].as_str().unwrap())
        .execute(&mut *blocker)
        .await
        .unwrap();
    let id = app.send_issue(&source, SECRET, "frozen-claim", b"{}").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'switchyard-worker'
               AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the claim never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&worker, "-STOP");
    blocker.commit().await.unwrap();
    // Longer than the lease.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(fake.received().is_empty());
    signal(&worker, "-CONT");

    // The claim commits on thawing, but its lease could no longer cover a send: the
    // delivery is given back unsent, and a fresh claim fires it, once.
    let done = app
        .wait_delivery(&id, Duration::from_secs(20), |d| d["status"] == "succeeded")
        .await;
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{done:#}");
    assert_eq!(attempts[0]["status"], "lost");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("not sent"),
        "{done:#}"
    );
    assert_eq!(attempts[1]["status"], "succeeded");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.received().len(), 1, "fired once, on the fresh claim");
}

/// The child process of the tests above (see `spawn_worker_process`).
#[tokio::test]
#[ignore = "runs only as a child process of the lease tests"]
async fn worker_process() {
    switchyard_tests::app::run_worker_process().await;
}
