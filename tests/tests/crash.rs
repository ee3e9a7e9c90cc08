//! Crashes under load. An ingress process is SIGKILLed mid-request and started again;
//! PostgreSQL itself restarts; the network to it is cut for two seconds. Senders retry
//! what was not acknowledged, as GitHub does; every acknowledged event is stored once
//! and delivered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use switchyard_tests::app::{Options, run_ingress_process, spawn_ingress_process};
use switchyard_tests::cluster::Cluster;
use switchyard_tests::{Receiver, Reply, TestApp, sender};

const SECRET: &str = "gh-secret";

/// The senders' side of a disruption: how many events were acknowledged so far (the
/// disruption waits for its moment on it), and whether the disruption is over.
#[derive(Default)]
struct Load {
    acknowledged: AtomicUsize,
    recovered: AtomicBool,
}

impl Load {
    /// A guard that marks the disruption over when dropped, so senders stop asking for
    /// more events even if the disruption panicked.
    fn recovered_on_drop(self: &Arc<Self>) -> RecoveredOnDrop {
        RecoveredOnDrop(self.clone())
    }

    /// Waits until `n` events were acknowledged.
    async fn reached(&self, n: usize) {
        while self.acknowledged.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct RecoveredOnDrop(Arc<Load>);

impl Drop for RecoveredOnDrop {
    fn drop(&mut self) {
        self.0.recovered.store(true, Ordering::Relaxed);
    }
}

/// Sends events (`{prefix}-{n}`), 16 at a time, each until acknowledged: at least
/// `at_least`, and on until the disruption is over, so it always meets load. Returns the
/// distinct event ids, how many events were sent, and how many tries were refused or cut.
async fn send_through(
    client: &reqwest::Client,
    url: &str,
    prefix: &str,
    at_least: usize,
    load: &Load,
) -> (Vec<String>, usize, usize) {
    let sending = futures::stream::iter(0..)
        .take_while(|n| {
            futures::future::ready(*n < at_least || !load.recovered.load(Ordering::Relaxed))
        })
        .map(|n| async move {
            let sent = sender::acknowledged(client, url, SECRET, &format!("{prefix}-{n}")).await;
            load.acknowledged.fetch_add(1, Ordering::Relaxed);
            sent
        })
        .buffer_unordered(16)
        .collect::<Vec<(String, usize)>>();
    // A disruption that left the system down (its own task panicked, say) would have
    // the senders retry for ever: fail instead.
    let results = tokio::time::timeout(Duration::from_secs(120), sending)
        .await
        .expect("every event acknowledged within two minutes");
    let sent = results.len();
    let refused = results.iter().map(|(_, r)| r).sum();
    let mut ids: Vec<String> = results.into_iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    (ids, sent, refused)
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

/// Every event sent is acknowledged once, stored once and delivered.
async fn nothing_acknowledged_lost(
    app: &TestApp,
    receiver: &Receiver,
    (ids, sent, refused): (Vec<String>, usize, usize),
    what: &str,
) {
    assert!(refused > 0, "{what} refused or cut no request");
    assert_eq!(
        ids.len(),
        sent,
        "one event per delivery id, retries included"
    );
    println!("{refused} requests refused or cut while {what}");
    all_stored_once_and_delivered(app, receiver, sent).await;
}

/// A GitHub source routed to `receiver`; returns its ingest URL.
async fn routed_source(app: &TestApp, receiver: &Receiver) -> String {
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["*"]).await;
    source["ingest_url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_ingress_killed_mid_request_loses_nothing_it_acknowledged() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let path = routed_source(&app, &receiver)
        .await
        .trim_start_matches(&app.base)
        .to_owned();
    let (mut ingress, base) = spawn_ingress_process(&app.database, None).await;
    let url = format!("{base}{path}");

    // After 500 events, with requests in flight, the ingress is SIGKILLed; half a
    // second later it starts again on the same address. Meanwhile senders retry.
    let load = Arc::new(Load::default());
    let killer = {
        let load = load.clone();
        let database = app.database.clone();
        let addr = base.trim_start_matches("http://").to_owned();
        tokio::spawn(async move {
            let _recovered = load.recovered_on_drop();
            load.reached(500).await;
            ingress.kill().await.unwrap();
            ingress.wait().await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            spawn_ingress_process(&database, Some(&addr)).await.0
        })
    };
    let sent = send_through(&app.client, &url, "crash", 1500, &load).await;
    let _restarted = killer.await.unwrap();
    nothing_acknowledged_lost(&app, &receiver, sent, "the ingress was down").await;
}

/// The child process of the ingress test (see `spawn_ingress_process`).
#[tokio::test]
#[ignore = "runs only as a child process of the crash test"]
async fn ingress_process() {
    run_ingress_process().await;
}

#[tokio::test]
async fn a_database_outage_under_load_loses_nothing_acknowledged() {
    let app = TestApp::spawn_with(Options {
        db_proxy: true,
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let url = routed_source(&app, &receiver).await;
    let proxy = app.proxy.clone().unwrap();

    // After 200 events the network to the database is cut for two seconds. Ingress
    // answers 503 with Retry-After meanwhile (the sender checks), and workers reconnect
    // by themselves.
    let load = Arc::new(Load::default());
    let outage = {
        let load = load.clone();
        tokio::spawn(async move {
            let _recovered = load.recovered_on_drop();
            load.reached(200).await;
            proxy.cut();
            tokio::time::sleep(Duration::from_secs(2)).await;
            proxy.restore().await;
        })
    };
    let sent = send_through(&app.client, &url, "outage", 600, &load).await;
    outage.await.unwrap();
    nothing_acknowledged_lost(&app, &receiver, sent, "the database was cut off").await;
}

#[tokio::test]
async fn a_postgres_restart_under_load_loses_nothing_acknowledged() {
    // Declared first, dropped last: the app goes before its server.
    let cluster = Arc::new(Cluster::start());
    let app = TestApp::spawn_with(Options {
        server: Some(cluster.admin_url()),
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let url = routed_source(&app, &receiver).await;

    // After 300 events PostgreSQL stops (a fast shutdown: every connection is
    // terminated) and starts again two seconds later, longer than ingress waits for a
    // connection before it answers 503.
    let load = Arc::new(Load::default());
    let restart = {
        let (load, cluster) = (load.clone(), cluster.clone());
        tokio::spawn(async move {
            let _recovered = load.recovered_on_drop();
            load.reached(300).await;
            tokio::task::spawn_blocking(move || cluster.restart(Duration::from_secs(2)))
                .await
                .unwrap();
        })
    };
    let sent = send_through(&app.client, &url, "restart", 1000, &load).await;
    restart.await.unwrap();
    nothing_acknowledged_lost(&app, &receiver, sent, "PostgreSQL restarted").await;
}
