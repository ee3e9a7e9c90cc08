//! Scale-out: two ingress servers and two worker processes on one database. Five thousand
//! signed events go in across both ingresses; halfway, one worker is SIGKILLed and
//! started again. Every acknowledged event reaches the receiver (at least once: HTTP
//! duplicates are allowed and reported).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use switchyard_tests::app::{Options, spawn_worker_process};
use switchyard_tests::{Receiver, Reply, TestApp, sign};

const SECRET: &str = "gh-secret";
const EVENTS: usize = 5000;

#[tokio::test]
async fn every_acknowledged_event_arrives_across_two_ingresses_and_a_killed_worker() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let (second_base, _second) = app.extra_ingress().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["*"]).await;
    let first_url = source["ingest_url"].as_str().unwrap().to_owned();
    let path = first_url.trim_start_matches(&app.base).to_owned();
    let urls = Arc::new([first_url, format!("{second_base}{path}")]);

    let mut doomed = spawn_worker_process(&app.database).await;
    let _steady = spawn_worker_process(&app.database).await;

    let send = |n: usize| {
        let client = app.client.clone();
        let urls = urls.clone();
        async move {
            let body = format!(r#"{{"action":"opened","issue":{{"number":{n}}}}}"#);
            let res = client
                .post(&urls[n % 2])
                .header("content-type", "application/json")
                .header("x-github-event", "issues")
                .header("x-github-delivery", format!("scale-{n}"))
                .header("x-hub-signature-256", sign::github(SECRET, body.as_bytes()))
                .body(body)
                .send()
                .await;
            match res {
                Ok(r) if r.status() == StatusCode::OK => {
                    let answer: serde_json::Value = r.json().await.unwrap_or_default();
                    answer["event_id"].as_str().map(str::to_owned)
                }
                _ => None,
            }
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
    assert_eq!(acknowledged.len(), EVENTS, "every request was acknowledged");

    // Every acknowledged event's delivery arrives, counted by switchyard-delivery-id.
    let expected: HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT id, event_id FROM deliveries")
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(expected.len(), EVENTS, "one delivery per event");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut seen: HashMap<String, usize> = HashMap::new();
    loop {
        seen.clear();
        for r in receiver.received() {
            if let Some(id) = r.headers.get("switchyard-delivery-id") {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
        if expected.keys().all(|id| seen.contains_key(id)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {EVENTS} deliveries arrived",
            expected.keys().filter(|id| seen.contains_key(*id)).count()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
