//! Slack destinations against a fake incoming webhook that answers as Slack does.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_domain::delivery::breaker::BreakerPolicy;
use switchyard_tests::app::Options;
use switchyard_tests::{FakeSlack, SlackAnswer, TestApp};

const SECRET: &str = "gh-secret";

async fn wire(app: &TestApp, slack: &FakeSlack) -> (Value, Value) {
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app
        .created(
            "/api/v1/destinations",
            json!({"name": "ops", "kind": "slack", "url": slack.webhook_url()}),
        )
        .await;
    app.create_route(&source, &destination, &["*"]).await;
    (source, destination)
}

async fn send(app: &TestApp, source: &Value, guid: &str) -> String {
    let body = format!(r#"{{"action":"opened","issue":{{"number":7,"title":"{guid}"}}}}"#);
    app.send_issue(source, SECRET, guid, body.as_bytes()).await
}

#[tokio::test]
async fn a_message_names_the_event_and_its_key_fields_and_the_url_stays_secret() {
    let app = TestApp::spawn().await;
    let slack = FakeSlack::start(vec![SlackAnswer::Ok]).await;
    let (source, destination) = wire(&app, &slack).await;
    assert!(destination["url"].is_null(), "{destination}");
    let hint = destination["url_hint"].as_str().unwrap();
    assert!(hint.ends_with("…uvwx") && !hint.contains("B0001"), "{hint}");

    let id = send(&app, &source, "first").await;
    app.wait_delivery(&id, Duration::from_secs(10), |d| d["status"] == "succeeded")
        .await;
    let got = slack.received();
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body["text"],
        "*issues.opened* from github\n• `action`: opened\n• `issue.number`: 7\n• `issue.title`: first"
    );
    let (_, listed) = app.get("/api/v1/destinations").await;
    assert!(!listed.to_string().contains("abcdefghijklmnopqrstuvwx"));
}

#[tokio::test]
async fn a_dead_webhook_disables_the_destination_holds_deliveries_and_resume_releases_them_in_order()
 {
    // No probe within the test: a person resumes here.
    let app = TestApp::spawn_with(Options {
        breaker: Some(BreakerPolicy {
            first_cooldown: chrono::Duration::minutes(5),
            ..BreakerPolicy::default()
        }),
        ..Options::default()
    })
    .await;
    let slack = FakeSlack::start(vec![SlackAnswer::Error(404, "no_service")]).await;
    let (source, destination) = wire(&app, &slack).await;
    let path = format!(
        "/api/v1/destinations/{}",
        destination["id"].as_str().unwrap()
    );
    let first = send(&app, &source, "one").await;
    // It waits as the breaker's probe, due when the cool-down ends.
    let probe = app
        .wait_delivery(&first, Duration::from_secs(10), |d| {
            d["status"] == "pending" && d["last_error"].is_string()
        })
        .await;
    assert_eq!(probe["last_error"], "HTTP 404 no_service", "{probe:#}");
    let due: chrono::DateTime<chrono::Utc> =
        probe["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert!(
        due > chrono::Utc::now() + chrono::Duration::minutes(4),
        "{probe:#}"
    );
    let (_, disabled) = app.get(&path).await;
    assert_eq!(disabled["state"], "auto_disabled");
    assert!(
        disabled["state_reason"]
            .as_str()
            .unwrap()
            .contains("no_service"),
        "{disabled}"
    );

    // Events arriving meanwhile are held without a request.
    let second = send(&app, &source, "two").await;
    let third = send(&app, &source, "three").await;
    for id in [&second, &third] {
        app.wait_delivery(id, Duration::from_secs(10), |d| d["status"] == "held")
            .await;
    }
    assert_eq!(slack.received().len(), 1);

    // The owner fixes the channel and resumes: everything goes, oldest first.
    slack.script(vec![SlackAnswer::Ok]);
    let (status, resumed) = app
        .call(Method::PATCH, &path, Some(json!({"state": "active"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["state"], "active");
    assert!(resumed["state_reason"].is_null());
    for id in [&first, &second, &third] {
        app.wait_delivery(id, Duration::from_secs(10), |d| d["status"] == "succeeded")
            .await;
    }
    // Slack destinations start at one message a second, and a release hands out those
    // slots in creation order, so the messages also arrive in it.
    let titles: Vec<String> = slack.received()[1..]
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["text"]
                .as_str()
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        titles,
        ["one", "two", "three"],
        "released in creation order"
    );
}

#[tokio::test]
async fn a_paused_destination_holds_until_resumed() {
    let app = TestApp::spawn().await;
    let slack = FakeSlack::start(vec![SlackAnswer::Ok]).await;
    let (source, destination) = wire(&app, &slack).await;
    let path = format!(
        "/api/v1/destinations/{}",
        destination["id"].as_str().unwrap()
    );
    let (status, paused) = app
        .call(Method::PATCH, &path, Some(json!({"state": "paused"})))
        .await;
    assert_eq!(
        (status, paused["state"].as_str()),
        (StatusCode::OK, Some("paused"))
    );
    let id = send(&app, &source, "one").await;
    app.wait_delivery(&id, Duration::from_secs(10), |d| d["status"] == "held")
        .await;
    assert!(slack.received().is_empty());
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"state": "auto_disabled"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "only active or paused"
    );
    app.call(Method::PATCH, &path, Some(json!({"state": "active"})))
        .await;
    app.wait_delivery(&id, Duration::from_secs(10), |d| d["status"] == "succeeded")
        .await;
}

#[tokio::test]
async fn a_rate_limited_webhook_backs_off_then_delivers() {
    let app = TestApp::spawn().await;
    let slack = FakeSlack::start(vec![SlackAnswer::RateLimited(2), SlackAnswer::Ok]).await;
    let (source, destination) = wire(&app, &slack).await;
    let id = send(&app, &source, "one").await;
    slack.wait_for(1, Duration::from_secs(10)).await;
    let path = format!(
        "/api/v1/destinations/{}",
        destination["id"].as_str().unwrap()
    );
    app.eventually(|| async {
        let (_, d) = app.get(&path).await;
        (d["state"] == "backing_off").then_some(())
    })
    .await;
    let done = app
        .wait_delivery(&id, Duration::from_secs(10), |d| d["status"] == "succeeded")
        .await;
    assert_eq!(done["attempts"][0]["response_status"], 429);
}

#[tokio::test]
async fn slack_urls_must_be_incoming_webhooks() {
    let app = TestApp::spawn().await;
    for url in ["http://127.0.0.1:9/hooks/x", "http://127.0.0.1:9/services/"] {
        let (status, problem) = app
            .post(
                "/api/v1/destinations",
                json!({"name": "s", "kind": "slack", "url": url}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {problem}");
    }
    let (status, _) = app
        .post(
            "/api/v1/destinations",
            json!({"name": "s", "kind": "slack"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
