//! Routine destinations against a fake of the routines API: every answer the spec
//! lists, and the rule that a fire whose outcome is unknown is never sent twice.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_tests::app::{Options, spawn_worker_process};
use switchyard_tests::{Answer, FakeRoutines, TestApp};

const SECRET: &str = "gh-secret";
const TOKEN: &str = "sk-ant-oat01-test-token-0123456789";
const ROUTINE: &str = "trig_01ABCDEF";

/// A GitHub source routed to a routine destination on `fake`.
async fn wire(app: &TestApp, fake: &FakeRoutines) -> (Value, Value) {
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app
        .created(
            "/api/v1/destinations",
            json!({"name": "triage", "kind": "routine", "fire_url": fake.fire_url(ROUTINE), "token": TOKEN}),
        )
        .await;
    app.create_route(&source, &destination, &["*"]).await;
    (source, destination)
}

/// Sends one GitHub event and returns its delivery's id.
async fn send(app: &TestApp, source: &Value, guid: &str) -> String {
    let body = format!(r#"{{"action":"opened","issue":{{"number":1,"title":"{guid}"}}}}"#);
    app.send_issue(source, SECRET, guid, body.as_bytes()).await
}

async fn settles_as(app: &TestApp, id: &str, status: &str, within: u64) -> Value {
    app.wait_delivery(id, Duration::from_secs(within), |d| d["status"] == status)
        .await
}

#[tokio::test]
async fn a_fire_sends_the_spec_headers_and_text_and_keeps_the_session() {
    let app = TestApp::spawn().await;
    let fake = FakeRoutines::start(TOKEN, vec![Answer::Fire]).await;
    let (source, destination) = wire(&app, &fake).await;
    assert!(destination.get("token").is_none(), "{destination}");
    assert_eq!(destination["kind"], "routine");
    assert_eq!(destination["token_hint"], "sk-ant-oat01-…6789");
    assert_eq!(destination["fire_url"], fake.fire_url(ROUTINE));

    let id = send(&app, &source, "g-1").await;
    let done = settles_as(&app, &id, "succeeded", 10).await;
    let got = fake.received();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(request.headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        request.headers["anthropic-beta"],
        "experimental-cc-routine-2026-04-01"
    );
    assert_eq!(request.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("issues.opened from github ("), "{text}");
    assert!(
        text.contains("\"title\": \"g-1\""),
        "the payload as pretty JSON: {text}"
    );

    let url = done["claude_code_session_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://claude.ai/code/session_01FAKE"),
        "{done:#}"
    );
    let attempt = &done["attempts"][0];
    assert_eq!(attempt["claude_code_session_url"], url);
    assert!(
        attempt["claude_code_session_id"]
            .as_str()
            .unwrap()
            .starts_with("session_")
    );
    assert_eq!(
        attempt["request_headers"]["authorization"], "[redacted]",
        "{attempt:#}"
    );
    assert_eq!(
        attempt["request_headers"]["anthropic-beta"],
        "experimental-cc-routine-2026-04-01"
    );
}

#[tokio::test]
async fn client_errors_fail_at_once_with_the_api_message() {
    for (answer, expected) in [
        (
            Answer::paused(),
            "HTTP 400 invalid_request_error: This routine is paused.",
        ),
        (
            Answer::status(401),
            "HTTP 401 authentication_error: scripted",
        ),
        (Answer::status(403), "HTTP 403 permission_error: scripted"),
        (Answer::status(404), "HTTP 404 not_found_error: scripted"),
    ] {
        let app = TestApp::spawn().await;
        let fake = FakeRoutines::start(TOKEN, vec![answer]).await;
        let (source, _) = wire(&app, &fake).await;
        let id = send(&app, &source, "g-1").await;
        let done = settles_as(&app, &id, "failed", 10).await;
        assert_eq!(done["last_error"], expected, "{done:#}");
        assert_eq!(done["attempts"][0]["error"], expected);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fake.received().len(), 1, "never retried: {expected}");
    }
}

#[tokio::test]
async fn a_wrong_token_is_refused_by_the_api_and_not_retried() {
    let app = TestApp::spawn().await;
    let fake = FakeRoutines::start("sk-ant-oat01-the-real-token-000000", vec![Answer::Fire]).await;
    let (source, _) = wire(&app, &fake).await;
    let id = send(&app, &source, "g-1").await;
    let done = settles_as(&app, &id, "failed", 10).await;
    assert_eq!(
        done["last_error"],
        "HTTP 401 authentication_error: Invalid bearer token."
    );
}

#[tokio::test]
async fn server_errors_and_overload_are_retried_until_the_fire_succeeds() {
    let app = TestApp::spawn().await;
    let overloaded = Answer::Error {
        status: 503,
        kind: "overloaded_error",
        message: "Overloaded",
        retry_after: Some(1),
    };
    let fake =
        FakeRoutines::start(TOKEN, vec![Answer::status(500), overloaded, Answer::Fire]).await;
    let (source, _) = wire(&app, &fake).await;
    let id = send(&app, &source, "g-1").await;
    // 500, retried after the first back-off step (5 s ± 20 %); then 503 with
    // Retry-After: 1, which wins over the 30 s second step; then 200.
    let done = settles_as(&app, &id, "succeeded", 20).await;
    let statuses: Vec<_> = done["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response_status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 503, 200]);
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn a_429_backs_the_destination_off_and_queued_fires_wait_without_spending_attempts() {
    let app = TestApp::spawn().await;
    let fake = FakeRoutines::start(TOKEN, vec![Answer::rate_limited(3), Answer::Fire]).await;
    let (source, destination) = wire(&app, &fake).await;
    let first = send(&app, &source, "g-1").await;
    fake.wait_for(1, Duration::from_secs(10)).await;
    let dest_path = format!(
        "/api/v1/destinations/{}",
        destination["id"].as_str().unwrap()
    );
    let backing_off = app
        .eventually(|| async {
            let (_, d) = app.get(&dest_path).await;
            (d["state"] == "backing_off").then_some(d)
        })
        .await;
    let paused_until: chrono::DateTime<chrono::Utc> = backing_off["paused_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Sent while the destination backs off: it waits, and no attempt is spent on it.
    let second = send(&app, &source, "g-2").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, waiting) = app.get(&format!("/api/v1/deliveries/{second}")).await;
    assert_eq!(waiting["status"], "pending", "{waiting:#}");
    assert_eq!(waiting["attempt_count"], 0);
    assert_eq!(fake.received().len(), 1);

    settles_as(&app, &first, "succeeded", 15).await;
    settles_as(&app, &second, "succeeded", 15).await;
    let got = fake.received();
    assert_eq!(got.len(), 3, "one 429, then each delivery once");
    let waited_until =
        chrono::Utc::now() - chrono::Duration::from_std(got[1].at.elapsed()).unwrap();
    assert!(
        waited_until >= paused_until - chrono::Duration::milliseconds(50),
        "nothing was fired before the back-off ended"
    );
    let (_, after) = app.get(&dest_path).await;
    assert_eq!(
        after["state"], "active",
        "a success after the back-off ends it"
    );
}

#[tokio::test]
async fn a_fire_that_hangs_becomes_unknown_outcome_and_is_never_sent_again() {
    let app = TestApp::spawn().await;
    let fake = FakeRoutines::start(TOKEN, vec![Answer::Hang]).await;
    let (source, _) = wire(&app, &fake).await;
    let id = send(&app, &source, "g-1").await;
    let done = settles_as(&app, &id, "unknown_outcome", 20).await;
    assert!(
        done["last_error"]
            .as_str()
            .unwrap()
            .contains("may have started"),
        "{done:#}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.received().len(), 1, "exactly one fire");
}

#[tokio::test]
async fn a_worker_killed_mid_fire_leaves_unknown_outcome_and_no_second_fire() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let fake = FakeRoutines::start(TOKEN, vec![Answer::Hang]).await;
    let (source, _) = wire(&app, &fake).await;
    let mut worker = spawn_worker_process(&app.database).await;
    let id = send(&app, &source, "g-1").await;
    fake.wait_for(1, Duration::from_secs(10)).await;
    worker.start_kill().expect("SIGKILL");
    worker.wait().await.expect("reaped");

    fake.script(vec![Answer::Fire]);
    let _replacement = spawn_worker_process(&app.database).await;
    let done = settles_as(&app, &id, "unknown_outcome", 60).await;
    assert_eq!(done["attempts"][0]["status"], "lost", "{done:#}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        fake.received().len(),
        1,
        "the replacement did not fire again"
    );
}

/// The child process of the SIGKILL test (see `spawn_worker_process`).
#[tokio::test]
#[ignore = "runs only as the child process of a_worker_killed_mid_fire_leaves_unknown_outcome_and_no_second_fire"]
async fn worker_process() {
    switchyard_tests::app::run_worker_process().await;
}

#[tokio::test]
async fn routine_destinations_are_validated_and_never_show_their_token() {
    let app = TestApp::spawn().await;
    let fire_url = "http://127.0.0.1:9/v1/claude_code/routines/trig_01ABC/fire";
    for (body, field) in [
        (
            json!({"name": "r", "kind": "routine", "fire_url": "http://127.0.0.1:9/v1/fire", "token": TOKEN}),
            "fire_url",
        ),
        (
            json!({"name": "r", "kind": "routine", "fire_url": fire_url, "token": "sk-ant-api03-wrong"}),
            "token",
        ),
        (
            json!({"name": "r", "kind": "routine", "fire_url": fire_url}),
            "token",
        ),
        (
            json!({"name": "r", "kind": "routine", "token": TOKEN}),
            "fire_url",
        ),
        (
            json!({"name": "r", "kind": "routine", "fire_url": fire_url, "token": TOKEN, "url": "https://example.com"}),
            "url",
        ),
        (
            json!({"name": "r", "kind": "http", "url": "https://example.com", "token": TOKEN}),
            "token",
        ),
    ] {
        app.refused("/api/v1/destinations", body, field).await;
    }
    let created = app
        .created(
            "/api/v1/destinations",
            json!({"name": "r", "kind": "routine", "fire_url": fire_url, "token": TOKEN}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let new_token = "sk-ant-oat01-rotated-token-abcdefgh";
    let (status, changed) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/destinations/{id}"),
            Some(json!({"token": new_token})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["token_hint"], "sk-ant-oat01-…efgh");
    assert_eq!(
        changed["fire_url"], fire_url,
        "a PATCH keeps what it does not name"
    );
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT sealed_credentials FROM destinations WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains("rotated-token"),
        "the token is encrypted at rest"
    );
    let (_, listed) = app.get("/api/v1/destinations").await;
    assert!(!listed.to_string().contains(new_token));
}
