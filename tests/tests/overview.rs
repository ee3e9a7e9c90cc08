//! What the overview measures: latency counts from when a delivery is due, so time held
//! behind a paused destination is not latency.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use switchyard_domain::store::stats;
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
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let totals = stats::totals(&app.pool, &team.parse().unwrap(), since)
        .await
        .unwrap();
    let p95 = totals.p95_ms.expect("a first attempt that succeeded");
    assert!((0.0..1000.0).contains(&p95), "p95 {p95} ms counts the hold");
}
