//! The data plane over real HTTP: what is accepted, deduplicated, refused, and how.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_tests::{Receiver, Reply, TestApp, app::Options, sign};

const SECRET: &str = "It's a Secret to Everybody";

async fn anthropic_source(app: &TestApp) -> (Value, String) {
    let secret = sign::new_whsec();
    let source = app.create_source("anthropic", Some(&secret)).await;
    (source, secret)
}

async fn send_anthropic(
    app: &TestApp,
    source: &Value,
    secret: &str,
    id: &str,
    ts: i64,
    body: &str,
) -> (StatusCode, Value) {
    let res = app
        .client
        .post(source["ingest_url"].as_str().unwrap())
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            sign::standard_webhooks(secret, id, ts, body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn anthropic_body(id: &str, kind: &str) -> String {
    json!({"type": "event", "id": id, "created_at": "2026-11-27T10:00:00Z",
           "data": {"type": kind, "id": "sesn_1", "organization_id": "org_1", "workspace_id": "wrk_1"}})
    .to_string()
}

#[tokio::test]
async fn a_signed_anthropic_event_is_accepted_stored_and_typed_by_data_type() {
    let app = TestApp::spawn().await;
    let (source, secret) = anthropic_source(&app).await;
    let body = anthropic_body("whe_1", "session.status_idled");
    let now = chrono::Utc::now().timestamp();
    let (status, answer) = send_anthropic(&app, &source, &secret, "whe_1", now, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "accepted");
    let event_id = answer["event_id"].as_str().unwrap();
    assert!(event_id.starts_with("evt_"));

    let (status, event) = app.get(&format!("/api/v1/events/{event_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["event_type"], "session.status_idled");
    assert_eq!(event["dedup_key"], "whe_1");
    assert_eq!(event["source_id"], source["id"]);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT body FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, body.as_bytes(), "the raw bytes are kept");
}

#[tokio::test]
async fn a_repeated_github_delivery_is_a_duplicate_and_delivered_once() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app
        .github_to(SECRET, &receiver.url("/hook"), &["issues.*"])
        .await;
    let body = br#"{"action":"opened","issue":{"number":7}}"#;

    let (status, first) = app
        .send_github(&source, SECRET, "issues", "guid-1", body)
        .await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::OK, Some("accepted"))
    );
    let (status, second) = app
        .send_github(&source, SECRET, "issues", "guid-1", body)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["status"], "duplicate");
    assert_eq!(
        second["event_id"], first["event_id"],
        "a duplicate names the original event"
    );

    receiver.wait_for(1, Duration::from_secs(10)).await;
    let delivery = app.delivery_of(first["event_id"].as_str().unwrap()).await;
    app.wait_delivery(
        delivery["id"].as_str().unwrap(),
        Duration::from_secs(10),
        |d| d["status"] == "succeeded",
    )
    .await;
    let (_, events) = app.get("/api/v1/events").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        receiver.received().len(),
        1,
        "the duplicate caused no second delivery"
    );
}

#[tokio::test]
async fn concurrent_copies_of_one_delivery_make_one_event() {
    let app = TestApp::spawn().await;
    let source = app.create_source("github", Some(SECRET)).await;
    let body = br#"{"action":"opened"}"#;
    let sends = (0..16).map(|_| app.send_github(&source, SECRET, "issues", "same-guid", body));
    let answers = futures::future::join_all(sends).await;
    let accepted = answers
        .iter()
        .filter(|(s, a)| *s == StatusCode::OK && a["status"] == "accepted")
        .count();
    let duplicates = answers
        .iter()
        .filter(|(s, a)| *s == StatusCode::OK && a["status"] == "duplicate")
        .count();
    assert_eq!((accepted, duplicates), (1, 15), "{answers:?}");
}

#[tokio::test]
async fn a_bad_signature_is_refused_and_the_reason_is_logged_for_the_owner() {
    let app = TestApp::spawn().await;
    let source = app.create_source("github", Some(SECRET)).await;
    let (status, problem) = app
        .send_github(&source, "not the secret", "issues", "g", b"{}")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["status"], 401);
    assert_eq!(
        problem["type"],
        "https://switchyard.dev/problems/signature-mismatch"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no signature matched"),
        "{problem}"
    );

    let path = format!(
        "/api/v1/sources/{}/rejections",
        source["id"].as_str().unwrap()
    );
    let first = app
        .eventually(|| async {
            let (_, rejections) = app.get(&path).await;
            rejections["data"].get(0).cloned()
        })
        .await;
    assert_eq!(first["reason"], "no signature matched");
    assert_eq!(first["headers"]["x-github-event"], "issues", "{first}");
    let (_, events) = app.get("/api/v1/events").await;
    assert_eq!(events["data"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_missing_signature_is_refused() {
    let app = TestApp::spawn().await;
    let source = app.create_source("github", Some(SECRET)).await;
    let res = app
        .client
        .post(source["ingest_url"].as_str().unwrap())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() {
    let app = TestApp::spawn().await;
    let (source, secret) = anthropic_source(&app).await;
    let now = chrono::Utc::now().timestamp();
    for (id, ts) in [("whe_old", now - 360), ("whe_future", now + 360)] {
        let body = anthropic_body(id, "session.status_idled");
        let (status, problem) = send_anthropic(&app, &source, &secret, id, ts, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{id}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("outside the allowed window"),
            "{problem}"
        );
    }
    let body = anthropic_body("whe_edge", "session.status_idled");
    let (status, _) = send_anthropic(&app, &source, &secret, "whe_edge", now - 240, &body).await;
    assert_eq!(status, StatusCode::OK, "inside the window is fine");
}

#[tokio::test]
async fn an_unknown_token_is_not_found() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .post(app.url("/hooks/no-such-token"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_declared_or_streamed() {
    let app = TestApp::spawn().await;
    let source = app.create_source("none", None).await;
    let url = source["ingest_url"].as_str().unwrap();
    let big = vec![b'a'; 1024 * 1024 + 1];
    let res = app.client.post(url).body(big.clone()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()["connection"], "close");

    // Chunked, with no Content-Length: refused once the stream passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let res = app.client.post(url).body(stream).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let res = app
        .client
        .post(url)
        .body(vec![b'a'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "exactly the limit is fine");
}

#[tokio::test]
async fn a_source_may_raise_its_limit_up_to_ten_mebibytes() {
    let app = TestApp::spawn().await;
    let (status, source) = app
        .post(
            "/api/v1/sources",
            json!({"name": "big", "provider": "none", "body_limit": 4 * 1024 * 1024}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let res = app
        .client
        .post(source["ingest_url"].as_str().unwrap())
        .body(vec![b'x'; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = app
        .post(
            "/api/v1/sources",
            json!({"name": "huge", "provider": "none", "body_limit": 11 * 1024 * 1024}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_none_provider_dedups_on_content_for_an_hour_and_on_a_named_header() {
    let app = TestApp::spawn().await;
    let plain = app.create_source("none", None).await;
    let url = plain["ingest_url"].as_str().unwrap();
    let (_, first) = app.hook(url, &[], "same").await;
    let (_, again) = app.hook(url, &[], "same").await;
    assert_eq!(first["status"], "accepted");
    assert_eq!(again["status"], "duplicate");
    // Once the content window has passed, identical content flows again.
    sqlx::query("UPDATE event_dedup SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, later) = app.hook(url, &[], "same").await;
    assert_eq!(later["status"], "accepted");
    assert_ne!(later["event_id"], first["event_id"]);

    let (_, keyed) = app
        .post(
            "/api/v1/sources",
            json!({"name": "keyed", "provider": "none", "dedup_header": "X-Request-Id"}),
        )
        .await;
    let url = keyed["ingest_url"].as_str().unwrap();
    let (_, a) = app.hook(url, &[("x-request-id", "r1")], "one").await;
    let (_, b) = app.hook(url, &[("x-request-id", "r1")], "two").await;
    assert_eq!(
        (a["status"].as_str(), b["status"].as_str()),
        (Some("accepted"), Some("duplicate"))
    );
}

#[tokio::test]
async fn a_route_added_after_the_source_was_cached_takes_the_next_event() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(204)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let (status, _) = app.send_github(&source, SECRET, "push", "g-1", b"{}").await;
    assert_eq!(status, StatusCode::OK);
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["push"]).await;
    // The configuration NOTIFY empties the cache; give the listener a moment by retrying.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut n = 2;
    loop {
        app.send_github(&source, SECRET, "push", &format!("g-{n}"), b"{}")
            .await;
        if !receiver.received().is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("the new route never took an event");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        n += 1;
    }
}

#[tokio::test]
async fn with_the_database_gone_ingest_answers_503_quickly_and_writes_nothing() {
    let app = TestApp::spawn_with(Options {
        db_proxy: true,
        ..Options::default()
    })
    .await;
    let source = app.create_source("github", Some(SECRET)).await;
    // Warm the source cache so the request gets as far as the commit.
    let (status, _) = app
        .send_github(&source, SECRET, "push", "warm", b"{}")
        .await;
    assert_eq!(status, StatusCode::OK);

    let proxy = app.proxy.clone().unwrap();
    proxy.cut();
    let started = std::time::Instant::now();
    let res = app
        .client
        .post(source["ingest_url"].as_str().unwrap())
        .header("x-github-event", "push")
        .header("x-github-delivery", "during-outage")
        .header("x-hub-signature-256", sign::github(SECRET, b"{}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert!(took < Duration::from_secs(3), "took {took:?}");

    proxy.restore().await;
    let written: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE dedup_key = 'during-outage'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(written, 0);
    // The sender's retry goes through once the database is back.
    let (status, answer) = app
        .send_github(&source, SECRET, "push", "during-outage", b"{}")
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("accepted"))
    );
}

#[tokio::test]
async fn unusable_event_types_are_refused_and_oversized_dedup_keys_still_dedup() {
    let app = TestApp::spawn().await;
    let (_, keyed) = app
        .post(
            "/api/v1/sources",
            json!({"name": "k", "provider": "none", "dedup_header": "x-id"}),
        )
        .await;
    let url = keyed["ingest_url"].as_str().unwrap();
    let res = app
        .client
        .post(url)
        .body(json!({"type": "a\u{0}b"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let long_type = json!({"type": "t".repeat(201)}).to_string();
    let res = app.client.post(url).body(long_type).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let long_key = "k".repeat(5000);
    let (_, first) = app.hook(url, &[("x-id", &long_key)], "1").await;
    let (_, again) = app.hook(url, &[("x-id", &long_key)], "2").await;
    assert_eq!(
        (first["status"].as_str(), again["status"].as_str()),
        (Some("accepted"), Some("duplicate"))
    );
    let (_, event) = app
        .get(&format!(
            "/api/v1/events/{}",
            first["event_id"].as_str().unwrap()
        ))
        .await;
    assert!(
        event["dedup_key"].as_str().unwrap().starts_with("sha256:"),
        "{event}"
    );
}

#[tokio::test]
async fn a_token_of_the_wrong_shape_is_not_found_without_a_lookup() {
    let app = TestApp::spawn().await;
    for token in ["short", &"x".repeat(43).replace('x', "%"), &"a".repeat(44)] {
        let res = app
            .client
            .post(app.url(&format!("/hooks/{token}")))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{token}");
    }
}
