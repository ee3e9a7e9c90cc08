//! Route options `ordering` and `coalesce` on an Anthropic source: a session's events go
//! one at a time in `created_at` order, a failing session holds back only itself, and a
//! burst of one session's status changes becomes its newest.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_tests::{Receiver, Reply, TestApp, Visitor};

const WITHIN: Duration = Duration::from_secs(20);

async fn anthropic_route(app: &TestApp, receiver: &Receiver, options: Value) -> (Value, String) {
    let secret = switchyard_tests::sign::new_whsec();
    let source = app.create_source("anthropic", Some(&secret)).await;
    let endpoint = app.create_destination(&receiver.url("/hook")).await;
    let mut route = json!({"name": "sessions", "source_id": source["id"],
                           "destination_id": endpoint["id"], "event_types": ["session.*"]});
    route
        .as_object_mut()
        .unwrap()
        .extend(options.as_object().unwrap().clone());
    app.created("/api/v1/routes", route).await;
    (source, secret)
}

fn status_event(id: &str, session: &str, kind: &str, second: u32) -> Value {
    json!({"type": "event", "id": id, "created_at": format!("2026-12-05T09:30:{second:02}Z"),
           "data": {"type": kind, "id": session, "organization_id": "org_01",
                    "workspace_id": "wrkspc_01"}})
}

async fn send(app: &TestApp, source: &Value, secret: &str, event: &Value) -> String {
    let url = source["ingest_url"].as_str().unwrap();
    let (status, answer) = app.send_anthropic(url, secret, event).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["event_id"].as_str().unwrap().to_owned()
}

fn ids(received: &[switchyard_tests::receiver::Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_sessions_events_arriving_out_of_order_are_delivered_in_created_at_order() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (source, secret) =
        anthropic_route(&app, &receiver, json!({"ordering": {"window_ms": 1500}})).await;
    // Anthropic sent them in order; they arrive run, idle, evaluated, idle-again reversed.
    let events = [
        status_event("whe_02", "sesn_A", "session.status_idled", 2),
        status_event("whe_01", "sesn_A", "session.status_run_started", 1),
        status_event("whe_04", "sesn_A", "session.status_idled", 4),
        status_event("whe_03", "sesn_A", "session.outcome_evaluation_ended", 3),
    ];
    let started = std::time::Instant::now();
    for event in &events {
        send(&app, &source, &secret, event).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = receiver.wait_for(4, WITHIN).await;
    assert_eq!(ids(&received), ["whe_01", "whe_02", "whe_03", "whe_04"]);
    // Nothing went before the window after its arrival had passed.
    assert!(received[0].at.duration_since(started) >= Duration::from_millis(1500));
}

#[tokio::test]
async fn a_failing_session_holds_back_only_its_own_later_events() {
    let app = TestApp::spawn().await;
    // The first request fails; then everything succeeds.
    let receiver = Receiver::start(vec![Reply::status(503), Reply::status(200)]).await;
    let (source, secret) =
        anthropic_route(&app, &receiver, json!({"ordering": {"window_ms": 300}})).await;
    let first = send(
        &app,
        &source,
        &secret,
        &status_event("whe_10", "sesn_X", "session.status_run_started", 10),
    )
    .await;
    let first_delivery = app.delivery_of(&first).await;
    let first_id = first_delivery["id"].as_str().unwrap().to_owned();
    app.wait_delivery(&first_id, WITHIN, |d| {
        d["status"] == "pending" && d["attempt_count"] == 1
    })
    .await;

    let later = send(
        &app,
        &source,
        &secret,
        &status_event("whe_11", "sesn_X", "session.status_idled", 11),
    )
    .await;
    send(
        &app,
        &source,
        &secret,
        &status_event("whe_20", "sesn_Y", "session.status_idled", 20),
    )
    .await;
    // The other session flows while X's first waits for its retry.
    let received = receiver.wait_for(2, WITHIN).await;
    assert_eq!(ids(&received), ["whe_10", "whe_20"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_back = app.delivery_of(&later).await;
    assert_eq!(held_back["status"], "pending", "{held_back}");
    assert_eq!(held_back["attempt_count"], 0, "{held_back}");
    assert_eq!(receiver.received().len(), 2);
    // The log says what it waits for.
    let mut ada = Visitor::member_of(&app, "ada@example.com", "acme", "viewer").await;
    let waiting =
        format!("waiting for <a href=\"/t/acme/events/{first}\">{first}</a> (same session)");
    ada.get("/t/acme/deliveries")
        .await
        .assert_contains(&waiting);
    let held_back_id = held_back["id"].as_str().unwrap();
    ada.get(&format!("/t/acme/deliveries/{held_back_id}"))
        .await
        .assert_contains(&format!("{first}</a> (same session)"));

    // Once X's first goes through, its later event follows.
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/deliveries/{first_id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let received = receiver.wait_for(4, WITHIN).await;
    assert_eq!(ids(&received)[2..], ["whe_10", "whe_11"]);
}

#[tokio::test]
async fn a_burst_of_twenty_status_changes_becomes_one_delivery_of_the_newest() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (source, secret) = anthropic_route(
        &app,
        &receiver,
        json!({"coalesce": {"types": ["session.status_*"], "window_ms": 4000}}),
    )
    .await;
    let mut events = Vec::new();
    for n in 1..=20 {
        let kind = if n % 2 == 0 {
            "session.status_idled"
        } else {
            "session.status_run_started"
        };
        let id = format!("whe_{n:02}");
        events.push(
            send(
                &app,
                &source,
                &secret,
                &status_event(&id, "sesn_B", kind, n),
            )
            .await,
        );
    }
    let received = receiver.wait_for(1, WITHIN).await;
    assert_eq!(ids(&received), ["whe_20"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 1, "coalesced to one delivery");

    let newest = events.last().unwrap();
    let superseded = app.delivery_of(&events[0]).await;
    assert_eq!(superseded["status"], "cancelled", "{superseded}");
    assert_eq!(
        superseded["last_error"],
        format!("superseded by {newest} (coalesced)")
    );
    // A replay is never coalesced.
    let id = superseded["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/deliveries/{id}/replay"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let received = receiver.wait_for(2, WITHIN).await;
    assert_eq!(ids(&received), ["whe_20", "whe_01"]);
}

#[tokio::test]
async fn sequencing_options_are_checked_and_cleared_with_null() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (source, _) = anthropic_route(&app, &receiver, json!({})).await;
    let endpoint = app.create_destination(&receiver.url("/other")).await;
    for (body, field) in [
        (json!({"ordering": {"key": "data.id"}}), "ordering"),
        (json!({"ordering": {"window_ms": 600000}}), "ordering"),
        (json!({"coalesce": {"window_ms": 5}}), "coalesce"),
        (json!({"coalesce": {"types": []}}), "coalesce"),
    ] {
        let mut route = json!({"name": "r", "source_id": source["id"],
                               "destination_id": endpoint["id"]});
        route
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let (status, problem) = app.post("/api/v1/routes", route).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, problem) = app
        .post(
            "/api/v1/routes",
            json!({"name": "r", "source_id": source["id"], "destination_id": endpoint["id"],
                   "ordering": {"window": 5}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem.to_string().contains("unknown field `window`"),
        "{problem}"
    );

    let route = app
        .created(
            "/api/v1/routes",
            json!({"name": "r", "source_id": source["id"], "destination_id": endpoint["id"],
                   "ordering": {}, "coalesce": {"types": ["session.status_*"]}}),
        )
        .await;
    assert_eq!(
        route["ordering"],
        json!({"key": "/data/id", "window_ms": 2000})
    );
    assert_eq!(route["coalesce"]["window_ms"], 5000);
    let path = format!("/api/v1/routes/{}", route["id"].as_str().unwrap());
    let (status, route) = app
        .call(Method::PATCH, &path, Some(json!({"ordering": null})))
        .await;
    assert_eq!(status, StatusCode::OK, "{route}");
    assert_eq!(route["ordering"], Value::Null);
    assert_eq!(route["coalesce"]["window_ms"], 5000, "left as it was");
}
