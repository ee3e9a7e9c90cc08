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

/// Posts one signed GitHub event as a sender would: a 503 (with Retry-After) or a broken
/// connection is retried until the event is acknowledged. Returns its event id and how
/// many tries were refused.
async fn acknowledged_send(client: &reqwest::Client, url: &str, guid: &str) -> (String, usize) {
    let body = format!(r#"{{"guid":"{guid}"}}"#);
    let mut refused = 0;
    loop {
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", guid)
            .header("x-hub-signature-256", sign::github(SECRET, body.as_bytes()))
            .body(body.clone())
            .send()
            .await;
        match res {
            Ok(r) if r.status() == StatusCode::OK => {
                let answer: serde_json::Value = r.json().await.unwrap_or_default();
                let id = answer["event_id"].as_str().unwrap_or_default().to_owned();
                return (id, refused);
            }
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert!(r.headers().contains_key("retry-after"));
            }
            Err(_) => {}
        }
        refused += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

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
            let (id, _) = acknowledged_send(&client, &urls[n % 2], &format!("scale-{n}")).await;
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

#[tokio::test]
async fn a_database_outage_under_load_loses_nothing_acknowledged() {
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

    // Senders post 600 events, 8 at a time; the database goes away for two seconds in
    // the middle. A refusal is retried, as a sender would, until it is acknowledged.
    let outage = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.restore().await;
    });
    let client = app.client.clone();
    let results: Vec<(String, usize)> = futures::stream::iter(0..600usize)
        .map(|n| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let body = format!(r#"{{"n":{n}}}"#);
                let mut refused = 0;
                loop {
                    let res = client
                        .post(&url)
                        .header("x-github-event", "push")
                        .header("x-github-delivery", format!("outage-{n}"))
                        .header("x-hub-signature-256", sign::github(SECRET, body.as_bytes()))
                        .body(body.clone())
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == StatusCode::OK => {
                            let answer: serde_json::Value = r.json().await.unwrap_or_default();
                            return (
                                answer["event_id"].as_str().unwrap_or_default().to_owned(),
                                refused,
                            );
                        }
                        Ok(r) => {
                            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
                            assert!(r.headers().contains_key("retry-after"));
                        }
                        Err(_) => {}
                    }
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    outage.await.unwrap();
    let refusals: usize = results.iter().map(|(_, r)| r).sum();
    assert!(refusals > 0, "the outage refused some requests");
    let mut events: Vec<&String> = results.iter().map(|(id, _)| id).collect();
    events.sort();
    events.dedup();
    assert_eq!(
        events.len(),
        600,
        "one event per delivery id, retries included"
    );

    // Each acknowledged event is stored once and delivered, workers having reconnected.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 600);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let succeeded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if succeeded == 600 {
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
            panic!("{succeeded} of 600 delivered; deliveries {deliveries:?}; jobs {jobs:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("{refusals} requests refused with 503 during the outage, all later acknowledged");
}
