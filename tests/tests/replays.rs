//! Bulk replay through the API: a dry run counts and samples, the job replays every
//! match in batches and reports n of m, survives having no worker when it was asked for,
//! and stops when cancelled.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_tests::app::{Options, spawn_worker_process};
use switchyard_tests::{Receiver, Reply, TestApp, Visitor};

const SECRET: &str = "gh-secret";

/// `n` failed deliveries to a receiver that now answers 200.
async fn failed(app: &TestApp, receiver: &Receiver, n: usize) -> Value {
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/hook")).await;
    app.create_route(&source, &destination, &["*"]).await;
    for i in 0..n {
        let (status, _) = app
            .send_github(&source, SECRET, "issues", &format!("g-{i}"), b"{}")
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    destination
}

async fn count_failed(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'failed'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bulk_replay_counts_first_then_replays_every_failed_delivery() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(400)]).await;
    let destination = failed(&app, &receiver, 4).await;
    app.eventually(|| async { (count_failed(&app).await == 4).then_some(()) })
        .await;

    let (status, dry) = app
        .post(
            "/api/v1/deliveries/replay",
            json!({"filter": {"status": "failed", "destination_id": destination["id"]}, "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["count"], 4);
    assert_eq!(dry["sample"].as_array().unwrap().len(), 4);
    assert_eq!(count_failed(&app).await, 4, "a dry run replays nothing");

    receiver.script(vec![Reply::status(200)]);
    let (status, started) = app
        .post("/api/v1/deliveries/replay", json!({"filter": {}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["count"], 4);
    let id = started["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rpl_"));
    let done = app
        .eventually(|| async {
            let (_, replay) = app.get(&format!("/api/v1/replays/{id}")).await;
            (replay["status"] == "done").then_some(replay)
        })
        .await;
    assert_eq!(done["done"], 4);
    assert_eq!(done["total"], 4);
    receiver.wait_for(8, Duration::from_secs(10)).await;
    app.eventually(|| async {
        let succeeded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        (succeeded == 4).then_some(())
    })
    .await;
    let (status, _) = app
        .post(&format!("/api/v1/replays/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "it already ended");

    // Bad filters say which field; other teams see no replay.
    let (status, problem) = app
        .post(
            "/api/v1/deliveries/replay",
            json!({"filter": {"status": "pending"}, "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "filter.status");
    let other = app.other_team_key("rival").await;
    let res = app
        .client
        .get(app.url(&format!("/api/v1/replays/{id}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_replay_asked_for_while_no_worker_runs_is_done_by_the_next_worker_unless_cancelled() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(vec![Reply::status(400)]).await;
    let mut worker = spawn_worker_process(&app.database).await;
    failed(&app, &receiver, 3).await;
    app.eventually(|| async { (count_failed(&app).await == 3).then_some(()) })
        .await;
    worker.kill().await.unwrap();
    worker.wait().await.unwrap();

    receiver.script(vec![Reply::status(200)]);
    let (_, kept) = app
        .post("/api/v1/deliveries/replay", json!({"filter": {}}))
        .await;
    let (_, dropped) = app
        .post("/api/v1/deliveries/replay", json!({"filter": {}}))
        .await;
    let dropped_id = dropped["id"].as_str().unwrap();
    let (status, cancelled) = app
        .post(&format!("/api/v1/replays/{dropped_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");

    // A new worker finds the job in the queue and finishes it.
    let _worker = spawn_worker_process(&app.database).await;
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    let done = app
        .eventually(|| async {
            let (_, replay) = app.get(&format!("/api/v1/replays/{kept_id}")).await;
            (replay["status"] == "done").then_some(replay)
        })
        .await;
    assert_eq!(done["done"], 3);
    let (_, dropped) = app.get(&format!("/api/v1/replays/{dropped_id}")).await;
    assert_eq!(dropped["done"], 0);
    assert_eq!(dropped["status"], "cancelled");
    receiver.wait_for(6, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 6, "each delivery replayed once");
}

#[tokio::test]
async fn the_dashboard_replays_a_filter_after_showing_what_it_takes_and_then_the_progress() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(400)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    let dst: String = sqlx::query_scalar("SELECT id FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for i in 0..3 {
        app.send_github(&source, SECRET, "issues", &format!("g-{i}"), b"{}")
            .await;
    }
    app.eventually(|| async { (count_failed(&app).await == 3).then_some(()) })
        .await;

    let list = v.get(&format!("{team}/deliveries?status=failed")).await;
    list.assert_contains("Replay all matching");
    let route: String = sqlx::query_scalar("SELECT id FROM routes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let by_route = v
        .get(&format!("{team}/replays/new?status=failed&route={route}"))
        .await;
    by_route.assert_contains("Replay 3 failed deliveries");
    let none = v
        .get(&format!(
            "{team}/replays/new?status=failed&route=rte_01jdq5x3v8k2m9n4p6r7s8t0ab"
        ))
        .await;
    none.assert_contains("Nothing matches this filter now.");
    let new = v
        .get(&format!(
            "{team}/replays/new?status=failed&destination={dst}"
        ))
        .await;
    new.assert_contains("Replay 3 failed deliveries");
    receiver.script(vec![Reply::status(200)]);
    let page = v
        .post(
            &format!("{team}/replays"),
            &[
                ("status", "failed"),
                ("destination", &dst),
                ("since", ""),
                ("until", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let path = page.location.unwrap();
    let page = v.get_until(&path, "3/3").await;
    page.assert_contains("badge ok\">done</span>");
    v.get(&format!("{team}/replays"))
        .await
        .assert_contains("3/3");
    v.get(&format!("{team}/settings"))
        .await
        .assert_contains("replay.start");
}

/// The child process of the worker tests (see `spawn_worker_process`).
#[tokio::test]
#[ignore = "runs only as a child process of the replay tests"]
async fn worker_process() {
    switchyard_tests::app::run_worker_process().await;
}
