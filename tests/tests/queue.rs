//! The deliveries table as the queue: delivering touches no configuration (so the
//! ingress caches are never cleared by it), and a large backlog over many destinations
//! drains fairly, within every limit, each destination in due order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::postgres::PgListener;
use switchyard_tests::app::{Options, spawn_worker_process};
use switchyard_tests::{Receiver, Reply, TestApp};

const SECRET: &str = "gh-secret";

async fn send(app: &TestApp, source: &Value, guid: &str) {
    let body = format!(r#"{{"action":"opened","guid":"{guid}"}}"#);
    let (status, answer) = app
        .send_github(source, SECRET, "issues", guid, body.as_bytes())
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hundred_deliveries_send_no_configuration_notification() {
    let app = TestApp::spawn().await;
    // Failures and successes both: the breaker's count moves, the configuration not.
    let receiver = Receiver::start(vec![
        Reply::status(500),
        Reply::status(500),
        Reply::status(200),
    ])
    .await;
    let source = app.github_to(SECRET, &receiver.url("/in"), &["*"]).await;
    let mut listener = PgListener::connect_with(&app.pool).await.unwrap();
    listener.listen("switchyard_config").await.unwrap();
    // Whatever the setup announced is read and set aside.
    while let Ok(Ok(Some(_))) =
        tokio::time::timeout(Duration::from_millis(300), listener.try_recv()).await
    {}

    for n in 0..100 {
        send(&app, &source, &format!("quiet-{n}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(
        &app,
        "SELECT count(*) FROM deliveries WHERE status = 'succeeded'",
    )
    .await
        < 100
    {
        assert!(
            Instant::now() < deadline,
            "the deliveries did not all succeed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retried = count(
        &app,
        "SELECT count(*) FROM attempts WHERE status = 'failed'",
    )
    .await;
    assert!(retried >= 2, "some attempts failed first ({retried})");
    let during = tokio::time::timeout(Duration::from_millis(500), listener.try_recv()).await;
    assert!(
        during.is_err(),
        "delivering notified a configuration change: {during:?}"
    );

    // The listener does hear a real change.
    app.create_source("none", None).await;
    let change = tokio::time::timeout(Duration::from_secs(5), listener.try_recv()).await;
    assert!(matches!(change, Ok(Ok(Some(_)))), "{change:?}");
}

/// Requests that arrived at `receiver` on `path`, in arrival order.
fn arrivals(receiver: &Receiver, prefix: &str) -> Vec<Instant> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.path.starts_with(prefix))
        .map(|r| r.at)
        .collect()
}

#[tokio::test]
async fn ten_thousand_due_deliveries_over_fifty_destinations_drain_fairly() {
    const EVENTS: usize = 200;
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let quick = Receiver::start(vec![Reply::status(200)]).await;
    let slow = Receiver::start(vec![Reply::status(200).delay(Duration::from_secs(2))]).await;
    let limited = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let wire = |url: String, extra: Value| {
        let app = &app;
        let source = &source;
        async move {
            let mut body = json!({"name": "d", "kind": "http", "url": url});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let destination = app.created("/api/v1/destinations", body).await;
            app.create_route(source, &destination, &["*"]).await;
            destination["id"].as_str().unwrap().to_owned()
        }
    };
    for n in 0..48 {
        wire(quick.url(&format!("/quick/{n}")), json!({})).await;
    }
    // Two seconds a request, at most four at once.
    let slow_id = wire(slow.url("/slow"), json!({"max_in_flight": 4})).await;
    // Five a second.
    wire(limited.url("/limited"), json!({"rate_per_minute": 300})).await;

    // 200 events, 50 routes each: 10,000 deliveries, all due before a worker starts.
    futures::stream::iter(0..EVENTS)
        .for_each_concurrent(8, |n| {
            let (app, source) = (&app, &source);
            async move { send(app, source, &format!("fair-{n}")).await }
        })
        .await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM deliveries WHERE status = 'pending'"
        )
        .await,
        10_000
    );

    let _worker = spawn_worker_process(&app.database).await;
    let started = Instant::now();
    let quick_total = 48 * EVENTS;
    let deadline = started + Duration::from_secs(120);
    loop {
        let done = quick.received().len();
        if done >= quick_total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {quick_total} quick deliveries in two minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = started.elapsed();
    let (slow_sent, limited_sent) = (slow.received().len(), limited.received().len());
    println!(
        "48 quick destinations drained in {drained:?}; meanwhile the slow one took {slow_sent} \
         and the limited one {limited_sent}"
    );
    // The slow destination needs 100 s for its share and the limited one 40 s: neither
    // held the others back.
    assert!(slow_sent < EVENTS, "the slow one was not waited for");
    assert!(limited_sent < EVENTS, "the limited one was not waited for");
    assert!(
        slow_sent >= 4 && limited_sent >= 5,
        "both were served meanwhile"
    );
    // Every quick destination had its whole share.
    let mut per_quick: HashMap<String, usize> = HashMap::new();
    for r in quick.received() {
        *per_quick.entry(r.path).or_default() += 1;
    }
    assert_eq!(per_quick.len(), 48);
    assert!(per_quick.values().all(|n| *n == EVENTS), "{per_quick:?}");

    // Every limit held: never more than four at once at the slow one (each request
    // lasts two seconds, so the fifth starts two seconds after the first of any four),
    // and the limited one's sends spread at five a second.
    let slow_at = arrivals(&slow, "/slow");
    for window in slow_at.windows(5) {
        let gap = window[4] - window[0];
        assert!(
            gap >= Duration::from_millis(1950),
            "five sends within {gap:?} at a destination that allows four at once"
        );
    }
    // Its slots are 200 ms apart; a send goes when a claim reaches its slot, which under
    // load can come a few hundred milliseconds late while the next is on time.
    let limited_at = arrivals(&limited, "/limited");
    for window in limited_at.windows(11) {
        let span = window[10] - window[0];
        assert!(
            span >= Duration::from_millis(1500),
            "eleven sends within {span:?} at five a second"
        );
    }
    if let (Some(first), Some(last)) = (limited_at.first(), limited_at.last()) {
        // Over the whole drain, five a second (give or take a late first send).
        let seconds = (*last - *first).as_secs_f64();
        assert!(
            limited_at.len() as f64 <= seconds * 5.0 + 3.0,
            "{} sends in {seconds:.1} s at five a second",
            limited_at.len()
        );
    }
    let in_flight_at_slow = count(
        &app,
        &format!(
            "SELECT count(*) FROM deliveries WHERE destination_id = '{slow_id}' AND status = 'in_flight'"
        ),
    )
    .await;
    assert!(in_flight_at_slow <= 4, "{in_flight_at_slow} in flight");

    // Each destination's deliveries started in the order they fell due.
    let out_of_order = count(
        &app,
        "SELECT count(*) FROM (
             SELECT a.started_at, lag(a.started_at) OVER (
                        PARTITION BY d.destination_id ORDER BY e.received_at, d.id) AS before
             FROM deliveries d
             JOIN events e ON e.id = d.event_id
             JOIN attempts a ON a.delivery_id = d.id AND a.number = 1
         ) AS started WHERE started_at < before",
    )
    .await;
    assert_eq!(out_of_order, 0, "deliveries started out of due order");
}

/// The child process the fairness test starts (see `spawn_worker_process`).
#[tokio::test]
#[ignore = "runs only as a child process of the fairness test"]
async fn worker_process() {
    switchyard_tests::app::run_worker_process().await;
}
