//! Crashes under load. An ingress process is SIGKILLed mid-request and started again; the
//! database goes away for two seconds. Senders retry what was not acknowledged, as
//! GitHub does; every acknowledged event is stored once and delivered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use switchyard_tests::app::{Options, run_ingress_process, spawn_ingress_process};
use switchyard_tests::{Receiver, Reply, TestApp, sender};

const SECRET: &str = "gh-secret";

/// Sends `count` events (`{prefix}-{n}`), 16 at a time, each until acknowledged.
/// Returns their event ids and how many tries were refused or cut.
async fn send_all(
    client: &reqwest::Client,
    url: &str,
    prefix: &str,
    count: usize,
    acknowledged: &AtomicUsize,
) -> (Vec<String>, usize) {
    let results: Vec<(String, usize)> = futures::stream::iter(0..count)
        .map(|n| async move {
            let sent = sender::acknowledged(client, url, SECRET, &format!("{prefix}-{n}")).await;
            acknowledged.fetch_add(1, Ordering::Relaxed);
            sent
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let refused = results.iter().map(|(_, r)| r).sum();
    let mut ids: Vec<String> = results.into_iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    (ids, refused)
}

/// Each acknowledged event is stored once and its delivery reaches the receiver.
async fn all_stored_once_and_delivered(app: &TestApp, receiver: &Receiver, count: usize) {
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored as usize, count, "each event stored once");
    let expected: Vec<String> = sqlx::query_scalar("SELECT id FROM deliveries")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(expected.len(), count, "one delivery per event");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let succeeded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if succeeded as usize == count {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            // What the queue holds says where the rest are stuck.
            let jobs: Vec<(String, Option<String>, i64)> = sqlx::query_as(
                "SELECT status, lock_by, count(*) FROM apalis.jobs
                 WHERE job_type = 'switchyard::deliveries' GROUP BY 1, 2",
            )
            .fetch_all(&app.pool)
            .await
            .unwrap();
            let deliveries: Vec<(String, i64)> =
                sqlx::query_as("SELECT status, count(*) FROM deliveries GROUP BY 1")
                    .fetch_all(&app.pool)
                    .await
                    .unwrap();
            panic!("{succeeded} of {count} delivered; deliveries {deliveries:?}; jobs {jobs:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seen = receiver
        .wait_for_deliveries(&expected, Duration::from_secs(10))
        .await;
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!("{count} events acknowledged, all delivered; {duplicates} duplicate sends");
}

#[tokio::test]
async fn an_ingress_killed_mid_request_loses_nothing_it_acknowledged() {
    const EVENTS: usize = 1500;
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["*"]).await;
    let path = source["ingest_url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&app.base)
        .to_owned();

    let (mut ingress, base) = spawn_ingress_process(&app.database, None).await;
    let url = format!("{base}{path}");
    let acknowledged = Arc::new(AtomicUsize::new(0));

    // A third of the way in, with requests in flight, the ingress is SIGKILLed; half a
    // second later it starts again on the same address. Meanwhile senders retry.
    let killer = {
        let acknowledged = acknowledged.clone();
        let database = app.database.clone();
        let addr = base.trim_start_matches("http://").to_owned();
        tokio::spawn(async move {
            while acknowledged.load(Ordering::Relaxed) < EVENTS / 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            ingress.kill().await.unwrap();
            ingress.wait().await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            spawn_ingress_process(&database, Some(&addr)).await.0
        })
    };
    let (ids, refused) = send_all(&app.client, &url, "crash", EVENTS, &acknowledged).await;
    let _restarted = killer.await.unwrap();
    assert!(refused > 0, "the kill cut some requests");
    assert_eq!(
        ids.len(),
        EVENTS,
        "one event per delivery id, retries included"
    );
    println!("{refused} requests cut or refused while the ingress was down");
    all_stored_once_and_delivered(&app, &receiver, EVENTS).await;
}

/// The child process of the ingress test (see `spawn_ingress_process`).
#[tokio::test]
#[ignore = "runs only as a child process of the crash test"]
async fn ingress_process() {
    run_ingress_process().await;
}

#[tokio::test]
async fn a_database_outage_under_load_loses_nothing_acknowledged() {
    const EVENTS: usize = 600;
    let app = TestApp::spawn_with(Options {
        db_proxy: true,
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["*"]).await;
    let url = source["ingest_url"].as_str().unwrap().to_owned();
    let proxy = app.proxy.clone().unwrap();

    // The database goes away for two seconds in the middle. Ingress answers 503 with
    // Retry-After meanwhile (the sender checks), and workers reconnect by themselves.
    let outage = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.restore().await;
    });
    let acknowledged = AtomicUsize::new(0);
    let (ids, refused) = send_all(&app.client, &url, "outage", EVENTS, &acknowledged).await;
    outage.await.unwrap();
    assert!(refused > 0, "the outage refused some requests");
    assert_eq!(
        ids.len(),
        EVENTS,
        "one event per delivery id, retries included"
    );
    println!("{refused} requests refused with 503 during the outage, all later acknowledged");
    all_stored_once_and_delivered(&app, &receiver, EVENTS).await;
}
