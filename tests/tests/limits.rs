//! Per-destination limits hold across worker processes: the state is in PostgreSQL.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_tests::app::{Options, spawn_worker_process};
use switchyard_tests::{Answer, FakeRoutines, Receiver, Reply, TestApp};

const SECRET: &str = "gh-secret";

async fn send_many(app: &TestApp, source: &Value, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, answer) = app
            .send_github(
                source,
                SECRET,
                "issues",
                &format!("g-{i}"),
                br#"{"action":"opened"}"#,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let delivery = app.delivery_of(answer["event_id"].as_str().unwrap()).await;
        ids.push(delivery["id"].as_str().unwrap().to_owned());
    }
    ids
}

async fn limited_http(app: &TestApp, receiver: &Receiver, limits: Value) -> Value {
    let source = app.create_source("github", Some(SECRET)).await;
    let mut body = json!({"name": "app", "kind": "http", "url": receiver.url("/hook")});
    body.as_object_mut()
        .unwrap()
        .extend(limits.as_object().unwrap().clone());
    let destination = app.created("/api/v1/destinations", body).await;
    app.create_route(&source, &destination, &["*"]).await;
    source
}

fn two_workers() -> Options {
    Options {
        no_worker: true,
        ..Options::default()
    }
}

#[tokio::test]
async fn a_rate_limit_holds_across_two_worker_processes() {
    let app = TestApp::spawn_with(two_workers()).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = limited_http(&app, &receiver, json!({"rate_per_minute": 60})).await;
    let _a = spawn_worker_process(&app.database).await;
    let _b = spawn_worker_process(&app.database).await;
    send_many(&app, &source, 5).await;
    let got = receiver.wait_for(5, Duration::from_secs(20)).await;
    let first = got[0].at;
    for (i, request) in got.iter().enumerate() {
        let since = request.at.duration_since(first);
        assert!(
            since + Duration::from_millis(100) >= Duration::from_secs(i as u64),
            "request {i} came {since:?} after the first: faster than one a second"
        );
    }
}

#[tokio::test]
async fn a_concurrency_limit_holds_across_two_worker_processes() {
    let app = TestApp::spawn_with(two_workers()).await;
    let hold = Duration::from_millis(400);
    let receiver = Receiver::start(vec![Reply::status(200).delay(hold)]).await;
    let source = limited_http(&app, &receiver, json!({"max_in_flight": 1})).await;
    let _a = spawn_worker_process(&app.database).await;
    let _b = spawn_worker_process(&app.database).await;
    let ids = send_many(&app, &source, 4).await;
    let mut got = receiver.wait_for(4, Duration::from_secs(30)).await;
    got.sort_by_key(|r| r.at);
    for pair in got.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) + Duration::from_millis(50) >= hold,
            "two requests overlapped"
        );
    }
    for id in ids {
        app.wait_delivery(&id, Duration::from_secs(10), |d| d["status"] == "succeeded")
            .await;
    }
}

#[tokio::test]
async fn a_destination_at_its_concurrency_limit_sends_the_next_once_one_is_recorded() {
    // The claimer is told when an attempt's outcome is in, not only when its send ends:
    // the limit counts an attempt until then. Missing that, each next one would wait for
    // the once-a-second look, and thirty would take half a minute.
    let app = TestApp::spawn_with(two_workers()).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = limited_http(&app, &receiver, json!({"max_in_flight": 1})).await;
    send_many(&app, &source, 30).await;
    let _worker = spawn_worker_process(&app.database).await;
    receiver.wait_for(30, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_spent_budget_throttles_until_the_window_resets() {
    // Both sends must fall in one clock hour: start clear of its end.
    {
        use chrono::Timelike;
        let now = chrono::Utc::now();
        let left = 3600 - i64::from(now.minute() * 60 + now.second());
        if left < 15 {
            tokio::time::sleep(Duration::from_secs(left as u64 + 1)).await;
        }
    }
    let app = TestApp::spawn().await;
    let token = "sk-ant-oat01-budget-token-0000000";
    let fake = FakeRoutines::start(token, vec![Answer::Fire]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app
        .created(
            "/api/v1/destinations",
            json!({"name": "triage", "kind": "routine", "token": token,
                   "fire_url": fake.fire_url("trig_01BUDGET"), "budget_per_hour": 1}),
        )
        .await;
    assert_eq!(destination["limits"]["budget_per_hour"], 1);
    app.create_route(&source, &destination, &["*"]).await;
    let ids = send_many(&app, &source, 2).await;
    app.wait_delivery(&ids[0], Duration::from_secs(10), |d| {
        d["status"] == "succeeded"
    })
    .await;
    let throttled = app
        .wait_delivery(&ids[1], Duration::from_secs(10), |d| {
            d["status"] == "throttled"
        })
        .await;
    let until: chrono::DateTime<chrono::Utc> = throttled["next_attempt_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let next_hour = {
        use chrono::{Duration as D, Timelike};
        let now = chrono::Utc::now();
        now.with_minute(0)
            .unwrap()
            .with_second(0)
            .unwrap()
            .with_nanosecond(0)
            .unwrap()
            + D::hours(1)
    };
    assert_eq!(until, next_hour, "{throttled:#}");
    assert_eq!(throttled["attempt_count"], 0, "no fire was spent");
    assert_eq!(fake.received().len(), 1);

    // Raising the budget is seen by the next claim; clearing it with 0 too.
    let (status, changed) = app
        .call(
            reqwest::Method::PATCH,
            &format!(
                "/api/v1/destinations/{}",
                destination["id"].as_str().unwrap()
            ),
            Some(json!({"budget_per_hour": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(
        changed["limits"].get("budget_per_hour").is_none(),
        "{changed}"
    );
}

#[tokio::test]
async fn limits_are_validated() {
    let app = TestApp::spawn().await;
    for (field, value) in [("rate_per_minute", 60_001), ("max_in_flight", 1_001)] {
        let (status, problem) = app
            .post(
                "/api/v1/destinations",
                json!({"name": "a", "kind": "http", "url": "https://example.com/h", field: value}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, _) = app
        .post(
            "/api/v1/destinations",
            json!({"name": "a", "kind": "http", "url": "https://example.com/h", "rate_per_minute": -1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// The child process of the two-worker tests (see `spawn_worker_process`).
#[tokio::test]
#[ignore = "runs only as a child process of the two-worker tests"]
async fn worker_process() {
    switchyard_tests::app::run_worker_process().await;
}
