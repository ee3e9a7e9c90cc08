//! HTTP destinations beyond a plain signed POST: method, custom headers and auth kept
//! secret, and signing secrets that rotate without a gap.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_tests::{Receiver, Reply, TestApp, sign};

const SECRET: &str = "gh-secret";

async fn wire(app: &TestApp, receiver: &Receiver, extra: Value) -> (Value, Value) {
    let source = app.create_source("github", Some(SECRET)).await;
    let mut body = json!({"name": "app", "kind": "http", "url": receiver.url("/hook")});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let destination = app.created("/api/v1/destinations", body).await;
    app.create_route(&source, &destination, &["*"]).await;
    (source, destination)
}

async fn send(app: &TestApp, source: &Value, guid: &str) -> String {
    app.send_issue(source, SECRET, guid, br#"{"action":"opened"}"#)
        .await
}

#[tokio::test]
async fn method_headers_and_auth_are_sent_but_never_shown() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (source, destination) = wire(
        &app,
        &receiver,
        json!({"method": "PUT", "headers": {"X-Tenant": "t-123", "X-Api-Secret": "hunter2"},
               "auth": {"type": "bearer", "token": "bearer-value-1"}}),
    )
    .await;
    assert_eq!(destination["method"], "PUT");
    assert_eq!(
        destination["header_names"],
        json!(["x-api-secret", "x-tenant"])
    );
    assert_eq!(destination["auth"], "bearer");
    assert!(!destination.to_string().contains("hunter2"));

    let id = send(&app, &source, "g-1").await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].method, "PUT");
    assert_eq!(got[0].headers["x-tenant"], "t-123");
    assert_eq!(got[0].headers["x-api-secret"], "hunter2");
    assert_eq!(got[0].headers["authorization"], "Bearer bearer-value-1");
    let done = app
        .wait_delivery(&id, Duration::from_secs(10), |d| d["status"] == "succeeded")
        .await;
    let stored = &done["attempts"][0]["request_headers"];
    assert_eq!(stored["x-tenant"], "[redacted]", "{stored}");
    assert_eq!(stored["authorization"], "[redacted]");
    assert!(
        stored["webhook-signature"]
            .as_str()
            .unwrap()
            .starts_with("v1,")
    );

    // Basic auth replaces the bearer; {} removes the headers; POST is the default again.
    let path = format!(
        "/api/v1/destinations/{}",
        destination["id"].as_str().unwrap()
    );
    let (status, changed) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"method": "post", "headers": {},
                        "auth": {"type": "basic", "username": "u", "password": "p w"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["method"], "POST", "{changed}");
    assert_eq!(changed["header_names"], json!([]));
    assert_eq!(changed["auth"], "basic");
    send(&app, &source, "g-2").await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].method, "POST");
    assert!(!got[1].headers.contains_key("x-tenant"));
    assert_eq!(got[1].headers["authorization"], "Basic dTpwIHc=");
}

#[tokio::test]
async fn a_rotated_signing_secret_signs_beside_the_old_one_until_the_overlap_ends() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (source, destination) = wire(&app, &receiver, json!({})).await;
    let old = destination["signing_secret"].as_str().unwrap().to_owned();
    let rotate = format!(
        "/api/v1/destinations/{}/rotate-signing-secret",
        destination["id"].as_str().unwrap()
    );
    let (status, rotated) = app.post(&rotate, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["signing_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'destination.secret.rotate'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1, "a rotation is in the audit log");

    send(&app, &source, "g-1").await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    let expect = |secret: &str, request: &switchyard_tests::receiver::Received| {
        sign::standard_webhooks(
            secret,
            &request.headers["webhook-id"],
            request.headers["webhook-timestamp"].parse().unwrap(),
            &request.body,
        )
    };
    assert_eq!(
        got[0].headers["webhook-signature"],
        format!("{} {}", expect(&new, &got[0]), expect(&old, &got[0])),
        "the new signature first, then the old"
    );

    // Rotating again with no overlap: only the newest secret signs.
    let (_, newest) = app.post(&rotate, json!({"overlap_seconds": 0})).await;
    let newest = newest["signing_secret"].as_str().unwrap().to_owned();
    send(&app, &source, "g-2").await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        got[1].headers["webhook-signature"],
        expect(&newest, &got[1])
    );
}

#[tokio::test]
async fn http_settings_are_validated() {
    let app = TestApp::spawn().await;
    let url = "https://example.com/hook";
    for (body, field) in [
        (
            json!({"name": "a", "kind": "http", "url": url, "method": "GET"}),
            "method",
        ),
        (
            json!({"name": "a", "kind": "http", "url": url, "headers": {"Content-Type": "x"}}),
            "headers",
        ),
        (
            json!({"name": "a", "kind": "http", "url": url, "headers": {"webhook-id": "x"}}),
            "headers",
        ),
        (
            json!({"name": "a", "kind": "http", "url": url, "headers": {"x-a": "1\r\nx-b: 2"}}),
            "headers",
        ),
        (
            json!({"name": "a", "kind": "http", "url": url, "auth": {"type": "basic", "username": "a:b", "password": "p"}}),
            "auth",
        ),
        (
            json!({"name": "a", "kind": "slack", "url": "http://127.0.0.1:9/services/x", "method": "PUT"}),
            "method",
        ),
    ] {
        app.refused("/api/v1/destinations", body, field).await;
    }
    let (status, _) = app
        .post(
            "/api/v1/destinations",
            json!({"name": "a", "kind": "http", "url": url, "auth": {"type": "digest"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let slack = app
        .created(
            "/api/v1/destinations",
            json!({"name": "s", "kind": "slack", "url": "http://127.0.0.1:9/services/x"}),
        )
        .await;
    let (status, _) = app
        .post(
            &format!(
                "/api/v1/destinations/{}/rotate-signing-secret",
                slack["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "only http destinations sign"
    );
    let http = app.create_destination(url).await;
    let (status, _) = app
        .post(
            &format!(
                "/api/v1/destinations/{}/rotate-signing-secret",
                http["id"].as_str().unwrap()
            ),
            json!({"overlap_seconds": 700_000}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn header_values_with_control_characters_are_refused() {
    let app = TestApp::spawn().await;
    app.refused(
        "/api/v1/destinations",
        json!({"name": "a", "kind": "http", "url": "https://example.com/h", "headers": {"x-a": "bell\u{7}"}}),
        "headers",
    )
    .await;
}
