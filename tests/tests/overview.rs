//! What the overview measures: latency counts from when a delivery is due, so time held
//! behind a paused destination is not latency; and it reads hourly counts that agree
//! with the deliveries as they settle and after a replay.

use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;
use switchyard_domain::ids::{DeliveryId, EventId, TeamId};
use switchyard_domain::store::{rollups, stats};
use switchyard_tests::app::Options;
use switchyard_tests::{Receiver, Reply, TestApp};

const SECRET: &str = "gh-secret";

#[tokio::test]
async fn latency_counts_from_when_a_delivery_is_due_not_the_time_it_was_held() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.github_to(SECRET, &receiver.url("/in"), &["*"]).await;
    let destination: String = sqlx::query_scalar("SELECT id FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let path = format!("/api/v1/destinations/{destination}");
    app.call(Method::PATCH, &path, Some(json!({"state": "paused"})))
        .await;
    let delivery = app.send_issue(&source, SECRET, "held-1", b"{}").await;
    app.wait_delivery(&delivery, Duration::from_secs(10), |d| {
        d["status"] == "held"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.call(Method::PATCH, &path, Some(json!({"state": "active"})))
        .await;
    app.wait_delivery(&delivery, Duration::from_secs(10), |d| {
        d["status"] == "succeeded"
    })
    .await;

    let (held_for,): (f64,) = sqlx::query_as(
        "SELECT (extract(epoch FROM updated_at - created_at) * 1000)::float8 FROM deliveries",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(held_for >= 1500.0, "{held_for}");
    let team: String = sqlx::query_scalar("SELECT id FROM teams WHERE slug = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let until = Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap()
        + chrono::Duration::hours(1);
    let since = until - chrono::Duration::hours(2);
    let (totals, _) = stats::overview(&app.pool, &team.parse().unwrap(), since, until, 3600)
        .await
        .unwrap();
    let p95 = totals.p95_ms.expect("a first attempt that succeeded");
    assert!((0.0..1000.0).contains(&p95), "p95 {p95} ms counts the hold");
}

/// What the overview shows for a window: events, succeeded, failed, unknown, pending,
/// retrying, held.
async fn shown(app: &TestApp, team: &TeamId, days: i64) -> [i64; 7] {
    let until = Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap()
        + chrono::Duration::hours(1);
    let since = until - chrono::Duration::days(days);
    let (t, buckets) = stats::overview(&app.pool, team, since, until, 3600)
        .await
        .unwrap();
    let charted: i64 = buckets
        .iter()
        .map(|b| b.succeeded + b.failed + b.pending + b.held)
        .sum();
    assert_eq!(
        charted,
        t.succeeded + t.failed + t.unknown + t.pending + t.held
    );
    [
        t.events,
        t.succeeded,
        t.failed,
        t.unknown,
        t.pending,
        t.retrying,
        t.held,
    ]
}

/// An event and its delivery made `at`, with a first attempt that answered in 120 ms
/// when it succeeded.
async fn made(app: &TestApp, at: DateTime<Utc>, status: &str, retries: i32) -> DeliveryId {
    let event = EventId::generate_at(at);
    let delivery = DeliveryId::generate_at(at);
    sqlx::query(
        "INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body,
                             received_at)
         SELECT $1, team_id, id, 'issues', $1, '{}', '{}', $2 FROM sources",
    )
    .bind(&event)
    .bind(at)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO deliveries (id, team_id, event_id, route_id, destination_id, status,
                                 attempt_count, series_attempts, next_attempt_at,
                                 created_at, updated_at)
         SELECT $1, team_id, $2, id, destination_id, $3, $4, $4, $5, $5, $5 FROM routes",
    )
    .bind(&delivery)
    .bind(&event)
    .bind(status)
    .bind(retries)
    .bind(at)
    .execute(&app.pool)
    .await
    .unwrap();
    if status == "succeeded" {
        sqlx::query(
            "INSERT INTO attempts (id, team_id, delivery_id, number, status, started_at,
                                   due_at, duration_ms, response_status)
             SELECT $1, team_id, id, 1, 'succeeded', $3 + interval '100 ms', $3, 20, 200
             FROM deliveries WHERE id = $2",
        )
        .bind(switchyard_domain::ids::AttemptId::generate_at(at))
        .bind(&delivery)
        .bind(at)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    delivery
}

/// Runs the hourly count until it has caught up (a new database starts a week back).
async fn count_hours(app: &TestApp) {
    for _ in 0..12 {
        rollups::refresh(&app.pool, Utc::now()).await.unwrap();
    }
}

#[tokio::test]
async fn the_overview_reads_hourly_counts_that_follow_deliveries_as_they_settle_and_replay() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    app.github_to(SECRET, &receiver.url("/in"), &["*"]).await;
    let team: TeamId = sqlx::query_scalar("SELECT team_id FROM routes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let states = [
        ("succeeded", 0),
        ("succeeded", 0),
        ("failed", 3),
        ("unknown_outcome", 1),
        ("pending", 0),
        ("pending", 2),
        ("held", 0),
    ];
    let mut failed = None;
    for hours_ago in [3, 30] {
        let at = Utc::now() - chrono::Duration::hours(hours_ago);
        for (status, retries) in states {
            let id = made(&app, at, status, retries).await;
            if status == "failed" && failed.is_none() {
                failed = Some(id);
            }
        }
    }
    let a_day = [7, 2, 1, 1, 2, 1, 1];
    let a_week = [14, 4, 2, 2, 4, 2, 2];
    assert_eq!(
        shown(&app, &team, 1).await,
        a_day,
        "counted from the deliveries"
    );
    assert_eq!(shown(&app, &team, 7).await, a_week);

    count_hours(&app).await;
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT pending, held FROM hourly_counts ORDER BY hour")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![(2, 1), (2, 1)], "one row for each hour");
    assert_eq!(shown(&app, &team, 1).await, a_day, "read from the counts");
    assert_eq!(shown(&app, &team, 7).await, a_week);
    let until = Utc::now();
    let since = until - chrono::Duration::days(2);
    let (totals, _) = stats::overview(&app.pool, &team, since, until, 3600)
        .await
        .unwrap();
    let latency = totals.p50_ms.expect("first attempts that succeeded");
    assert!((100.0..=150.0).contains(&latency), "p50 {latency} ms");

    // The recent hour's open deliveries settle: the counts follow on their next run.
    sqlx::query(
        "UPDATE deliveries SET status = 'succeeded'
         WHERE status IN ('pending', 'held') AND created_at > now() - interval '4 hours'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(shown(&app, &team, 1).await, a_day, "not yet counted again");
    count_hours(&app).await;
    assert_eq!(shown(&app, &team, 1).await, [7, 5, 1, 1, 0, 0, 0]);
    assert_eq!(shown(&app, &team, 7).await, [14, 7, 2, 2, 2, 1, 1]);

    // A replay re-opens a settled delivery of an hour with nothing left to settle.
    let failed = failed.unwrap();
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/deliveries/{failed}/replay"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let stale: bool = sqlx::query_scalar(
        "SELECT stale FROM hourly_counts WHERE hour > now() - interval '4 hours'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(stale, "the replay marks its hour");
    count_hours(&app).await;
    assert_eq!(shown(&app, &team, 1).await, [7, 5, 0, 1, 1, 0, 0]);
    let stale: i64 = sqlx::query_scalar("SELECT count(*) FROM hourly_counts WHERE stale")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stale, 0);
}
