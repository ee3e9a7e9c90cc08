//! Scale-out: two ingress processes and two worker processes on one database. Five
//! thousand signed events go in across both ingresses; halfway, one worker is SIGKILLed
//! and started again. Every acknowledged event reaches the receiver (at least once: HTTP
//! duplicates are allowed and reported).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use switchyard_tests::app::{
    Options, run_ingress_process, spawn_ingress_process, spawn_worker_process,
};
use switchyard_tests::{Receiver, Reply, TestApp, sender};

const SECRET: &str = "gh-secret";
const EVENTS: usize = 5000;

#[tokio::test]
async fn every_acknowledged_event_arrives_across_two_ingresses_and_a_killed_worker() {
    // The app serves only the API; ingress and workers are processes of their own (and
    // the connections stay well inside PostgreSQL's 100).
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        no_ingress: true,
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["*"]).await;
    let path = source["ingest_url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&app.base)
        .to_owned();
    let (_first, first_base) = spawn_ingress_process(&app.database, None).await;
    let (_second, second_base) = spawn_ingress_process(&app.database, None).await;
    let urls = Arc::new([
        format!("{first_base}{path}"),
        format!("{second_base}{path}"),
    ]);

    let mut doomed = spawn_worker_process(&app.database).await;
    let _steady = spawn_worker_process(&app.database).await;

    let send = |n: usize| {
        let client = app.client.clone();
        let urls = urls.clone();
        async move {
            let (id, _) =
                sender::acknowledged(&client, &urls[n % 2], SECRET, &format!("scale-{n}")).await;
            Some(id)
        }
    };
    let mut acknowledged: Vec<String> = futures::stream::iter(0..EVENTS / 2)
        .map(send)
        .buffer_unordered(16)
        .filter_map(|id| async move { id })
        .collect()
        .await;
    // Halfway: kill one worker mid-flight, send the rest, then start it again.
    doomed.kill().await.unwrap();
    doomed.wait().await.unwrap();
    acknowledged.extend(
        futures::stream::iter(EVENTS / 2..EVENTS)
            .map(send)
            .buffer_unordered(16)
            .filter_map(|id| async move { id })
            .collect::<Vec<_>>()
            .await,
    );
    let _restarted = spawn_worker_process(&app.database).await;
    acknowledged.sort();
    acknowledged.dedup();
    assert_eq!(acknowledged.len(), EVENTS, "one event per delivery id");

    // Every acknowledged event's delivery arrives, counted by switchyard-delivery-id.
    let expected: Vec<String> = sqlx::query_scalar("SELECT id FROM deliveries")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(expected.len(), EVENTS, "one delivery per event");
    let seen = receiver
        .wait_for_deliveries(&expected, Duration::from_secs(180))
        .await;
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!("{EVENTS} events acknowledged, all delivered; {duplicates} duplicate sends");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events as usize, EVENTS);
}

/// The child process of the worker test (see `spawn_worker_process`).
#[tokio::test]
#[ignore = "runs only as a child process of the scale-out test"]
async fn worker_process() {
    switchyard_tests::app::run_worker_process().await;
}

/// The child process of the ingress side (see `spawn_ingress_process`).
#[tokio::test]
#[ignore = "runs only as a child process of the scale-out test"]
async fn ingress_process() {
    run_ingress_process().await;
}
