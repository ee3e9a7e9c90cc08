//! Providers beyond the spine's, end to end: signed the way each sender signs, through
//! the real ingest path.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use switchyard_tests::TestApp;

fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn a_stripe_event_is_verified_typed_and_deduplicated_on_its_id() {
    let app = TestApp::spawn().await;
    let secret = "whsec_test_secret";
    let source = app.create_source("stripe", Some(secret)).await;
    let url = source["ingest_url"].as_str().unwrap();
    let body =
        json!({"id": "evt_1", "type": "charge.dispute.created", "object": "event"}).to_string();
    let t = chrono::Utc::now().timestamp().to_string();
    let header = format!(
        "t={t},v1={}",
        hmac_hex(secret, &[t.as_bytes(), b".", body.as_bytes()])
    );
    let (status, first) = app
        .hook(url, &[("stripe-signature", &header)], body.clone())
        .await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{first}"
    );
    let (_, again) = app
        .hook(url, &[("stripe-signature", &header)], body.clone())
        .await;
    assert_eq!(again["status"], "duplicate");
    let (_, event) = app
        .get(&format!(
            "/api/v1/events/{}",
            first["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(event["event_type"], "charge.dispute.created");
    assert_eq!(event["dedup_key"], "evt_1");

    let forged = format!(
        "t={t},v1={}",
        hmac_hex("whsec_other", &[t.as_bytes(), b".", body.as_bytes()])
    );
    let (status, _) = app.hook(url, &[("stripe-signature", &forged)], body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn slack_url_verification_is_answered_with_its_challenge_and_not_stored() {
    let app = TestApp::spawn().await;
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let source = app.create_source("slack", Some(secret)).await;
    let url = source["ingest_url"].as_str().unwrap();
    let body = json!({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "token": "x"}).to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = format!(
        "v0={}",
        hmac_hex(secret, &[b"v0:", ts.as_bytes(), b":", body.as_bytes()])
    );
    let headers = [
        ("x-slack-signature", sig.as_str()),
        ("x-slack-request-timestamp", ts.as_str()),
    ];
    let (status, answer) = app.hook(url, &headers, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    let (_, events) = app.get("/api/v1/events").await;
    assert_eq!(events["data"], Value::Array(vec![]));

    // An unsigned challenge is refused like any other request.
    let (status, _) = app
        .hook(
            url,
            &[],
            json!({"type": "url_verification", "challenge": "c"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_catalog_provider_can_be_registered() {
    let app = TestApp::spawn().await;
    for provider in [
        "anthropic",
        "standard_webhooks",
        "github",
        "stripe",
        "slack",
        "shopify",
        "linear",
        "sentry",
        "zendesk",
        "intercom",
        "pagerduty",
        "jira",
        "gitlab",
        "twilio",
    ] {
        let secret = if matches!(provider, "anthropic" | "standard_webhooks") {
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        } else {
            "a-shared-secret"
        };
        let (status, body) = app
            .post(
                "/api/v1/sources",
                json!({"name": provider, "provider": provider, "secret": secret}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{provider}: {body}");
        assert_eq!(body["provider"], provider);
    }
}

async fn send_github(app: &TestApp, url: &str, secret: &str, delivery: &str) -> StatusCode {
    let body = br#"{"action":"opened"}"#;
    let signature = format!("sha256={}", hmac_hex(secret, &[body]));
    let headers = [
        ("x-github-event", "issues"),
        ("x-github-delivery", delivery),
        ("x-hub-signature-256", signature.as_str()),
    ];
    app.hook(url, &headers, body.to_vec()).await.0
}

#[tokio::test]
async fn a_source_secret_rotates_without_downtime() {
    let app = TestApp::spawn().await;
    let source = app.create_source("github", Some("old-secret")).await;
    let id = source["id"].as_str().unwrap();
    let url = source["ingest_url"].as_str().unwrap();
    let secrets_path = format!("/api/v1/sources/{id}/secrets");

    let (status, added) = app
        .post(&secrets_path, json!({"secret": "new-secret"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert!(added.get("secret").is_none(), "values are never shown");
    // Both verify during the overlap (the cache is emptied by the change).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while send_github(&app, url, "new-secret", "probe").await != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new secret never verified"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        send_github(&app, url, "old-secret", "d-old").await,
        StatusCode::OK
    );
    assert_eq!(
        send_github(&app, url, "new-secret", "d-new").await,
        StatusCode::OK
    );

    let (status, problem) = app.post(&secrets_path, json!({"secret": "third"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "two at most: {problem}");

    let (_, listed) = app.get(&secrets_path).await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let old_id = ids[1];
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("{secrets_path}/{old_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while send_github(&app, url, "old-secret", "d-after").await != StatusCode::UNAUTHORIZED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retired secret still verifies"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        send_github(&app, url, "new-secret", "d-new-2").await,
        StatusCode::OK
    );

    let (status, problem) = app
        .call(
            reqwest::Method::DELETE,
            &format!("{secrets_path}/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the last secret stays: {problem}"
    );
    let (status, _) = app.post(&secrets_path, json!({"secret": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_source_can_take_its_event_type_and_dedup_key_from_the_body() {
    let app = TestApp::spawn().await;
    let (status, source) = app
        .post(
            "/api/v1/sources",
            json!({"name": "shop", "provider": "none", "event_type_pointer": "/kind", "dedup_pointer": "/msg/id"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    assert_eq!(source["settings"]["event_type_pointer"], "/kind");
    let url = source["ingest_url"].as_str().unwrap();
    let (_, first) = app
        .hook(
            url,
            &[],
            json!({"kind": "order.paid", "msg": {"id": "m1"}}).to_string(),
        )
        .await;
    let (_, again) = app
        .hook(
            url,
            &[],
            json!({"kind": "order.paid", "msg": {"id": "m1"}, "retry": 1}).to_string(),
        )
        .await;
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
    assert_eq!(
        (event["event_type"].as_str(), event["dedup_key"].as_str()),
        (Some("order.paid"), Some("m1"))
    );

    let id = source["id"].as_str().unwrap();
    let (status, cleared) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/sources/{id}"),
            Some(json!({"event_type_pointer": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        cleared["settings"].get("event_type_pointer").is_none(),
        "{cleared}"
    );
    let (status, problem) = app
        .post(
            "/api/v1/sources",
            json!({"name": "bad", "provider": "none", "dedup_pointer": "msg.id"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "dedup_pointer");
}

#[tokio::test]
async fn basic_auth_and_api_key_sources_take_only_their_credential() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let basic = app.create_source("basic_auth", Some("hooks:pa55")).await;
    let url = basic["ingest_url"].as_str().unwrap();
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("hooks:pa55")
    );
    let bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("hooks:guess")
    );
    let (status, accepted) = app.hook(url, &[("authorization", &good)], "{}").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .hook(url, &[("authorization", &bad)], r#"{"refused":true}"#)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Neither the event nor the rejection log keeps the credential.
    let stored: Value = sqlx::query_scalar("SELECT headers FROM events WHERE id = $1")
        .bind(accepted["event_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored["authorization"], "[redacted]", "{stored}");
    let rejections = format!(
        "/api/v1/sources/{}/rejections",
        basic["id"].as_str().unwrap()
    );
    let rejection = app
        .eventually(|| async {
            let (_, log) = app.get(&rejections).await;
            log["data"].get(0).cloned()
        })
        .await;
    assert_eq!(rejection["reason"], "no signature matched");
    assert_eq!(
        rejection["headers"]["authorization"], "[redacted]",
        "{rejection}"
    );
    assert_eq!(rejection["body_excerpt"], r#"{"refused":true}"#);
    assert_eq!(app.hook(url, &[], "{}").await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post(
            "/api/v1/sources",
            json!({"name": "b", "provider": "basic_auth", "secret": "no-colon"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, keyed) = app
        .post("/api/v1/sources", json!({"name": "k", "provider": "api_key", "secret": "k-123", "api_key_header": "Authorization"}))
        .await;
    let url = keyed["ingest_url"].as_str().unwrap();
    assert_eq!(
        app.hook(url, &[("authorization", "Bearer k-123")], "{}")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.hook(url, &[("x-api-key", "k-123")], "{}").await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Twilio's scheme written from its documentation: the URL, then each form parameter as
/// name and value, sorted by name, HMAC-SHA1 with the Auth Token, base64.
fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine;
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn form_body(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(n, v)| format!("{n}={}", v.replace('+', "%2B").replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn a_twilio_status_callback_verifies_against_the_public_url_and_dedups_on_its_token() {
    let app = TestApp::spawn().await;
    let token = "twilio-auth-token";
    let source = app.create_source("twilio", Some(token)).await;
    // Twilio signs the URL exactly as configured, query string included.
    let url = format!("{}?tenant=acme", source["ingest_url"].as_str().unwrap());
    let params = [
        ("MessageSid", "SM123"),
        ("MessageStatus", "delivered"),
        ("To", "+14155550100"),
        ("Body", "on my way"),
    ];
    let body = form_body(&params);
    let signature = twilio_signature(token, &url, &params);
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-twilio-signature", signature.as_str()),
        ("i-twilio-idempotency-token", "idem-1"),
    ];
    let (status, first) = app.hook(&url, &headers, body.clone()).await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{first}"
    );
    let (_, again) = app.hook(&url, &headers, body.clone()).await;
    assert_eq!(again["status"], "duplicate");
    let (_, event) = app
        .get(&format!(
            "/api/v1/events/{}",
            first["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(event["event_type"], "message.delivered");
    assert_eq!(event["dedup_key"], "idem-1");

    // The same signature presented at another URL of the source is not Twilio's.
    let elsewhere = format!("{}?tenant=other", source["ingest_url"].as_str().unwrap());
    let (status, problem) = app.hook(&elsewhere, &headers, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        problem["type"],
        "https://switchyard.dev/problems/signature-mismatch"
    );
}

#[tokio::test]
async fn an_hmac_source_verifies_its_configured_scheme_and_reads_form_bodies() {
    let app = TestApp::spawn().await;
    let secret = "generic-shared-secret";
    let (status, refused) = app
        .post(
            "/api/v1/sources",
            json!({"name": "n", "provider": "hmac", "secret": secret}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["errors"][0]["field"], "hmac", "{refused}");
    let (status, refused) = app
        .post(
            "/api/v1/sources",
            json!({"name": "n", "provider": "github", "secret": secret, "hmac": {"header": "x-sig"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    let source = app
        .created(
            "/api/v1/sources",
            json!({
                "name": "vendor", "provider": "hmac", "secret": secret,
                "hmac": {"header": "X-Vendor-Signature", "prefix": "sha256=",
                         "timestamp_header": "X-Vendor-Timestamp",
                         "signed_payload": "{timestamp}:{body}"},
                "event_type_pointer": "/action",
                "dedup_pointer": "/delivery",
            }),
        )
        .await;
    assert_eq!(
        source["settings"]["hmac"]["algorithm"], "sha256",
        "{source}"
    );
    let url = source["ingest_url"].as_str().unwrap();
    let body = "action=ticket.closed&delivery=d-77&note=all+done";
    let send = |ts: i64| {
        let ts = ts.to_string();
        let sig = format!(
            "sha256={}",
            hmac_hex(secret, &[ts.as_bytes(), b":", body.as_bytes()])
        );
        let app = &app;
        async move {
            let headers = [
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-vendor-signature", sig.as_str()),
                ("x-vendor-timestamp", ts.as_str()),
            ];
            app.hook(url, &headers, body).await
        }
    };
    let now = chrono::Utc::now().timestamp();
    let (status, accepted) = send(now).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let (_, event) = app
        .get(&format!(
            "/api/v1/events/{}",
            accepted["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(event["event_type"], "ticket.closed");
    assert_eq!(event["dedup_key"], "d-77");

    let (status, problem) = send(now - 3600).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        problem["type"],
        "https://switchyard.dev/problems/timestamp-too-old"
    );
    let (status, problem) = send(now + 3600).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        problem["type"],
        "https://switchyard.dev/problems/timestamp-in-future"
    );
}

#[tokio::test]
async fn an_anthropic_retry_resigned_later_is_a_duplicate_and_an_unknown_type_is_kept() {
    let app = TestApp::spawn().await;
    let secret = switchyard_tests::sign::new_whsec();
    let source = app.create_source("anthropic", Some(&secret)).await;
    let url = source["ingest_url"].as_str().unwrap();
    // A type Anthropic may add tomorrow: stored and acknowledged, not refused.
    let body = json!({"type": "event", "id": "whe_9", "created_at": "2026-11-27T10:00:00Z",
                      "data": {"type": "session.something_new", "id": "sesn_1"}})
    .to_string();
    let send = |ts: i64| {
        let signature =
            switchyard_tests::sign::standard_webhooks(&secret, "whe_9", ts, body.as_bytes());
        let body = body.clone();
        let app = &app;
        async move {
            let ts = ts.to_string();
            let headers = [
                ("webhook-id", "whe_9"),
                ("webhook-timestamp", ts.as_str()),
                ("webhook-signature", signature.as_str()),
            ];
            app.hook(url, &headers, body).await
        }
    };
    let now = chrono::Utc::now().timestamp();
    let (status, first) = send(now - 60).await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{first}"
    );
    let (status, retry) = send(now).await;
    assert_eq!(
        (status, retry["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(retry["event_id"], first["event_id"]);
    let (_, event) = app
        .get(&format!(
            "/api/v1/events/{}",
            first["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(event["event_type"], "session.something_new");
}

#[tokio::test]
async fn a_standard_webhooks_source_takes_the_svix_header_family() {
    let app = TestApp::spawn().await;
    let secret = switchyard_tests::sign::new_whsec();
    let source = app.create_source("standard_webhooks", Some(&secret)).await;
    let url = source["ingest_url"].as_str().unwrap();
    let body = json!({"type": "invoice.paid", "data": {"id": "in_1"}}).to_string();
    let ts = chrono::Utc::now().timestamp();
    let signature =
        switchyard_tests::sign::standard_webhooks(&secret, "msg_1", ts, body.as_bytes());
    let ts = ts.to_string();
    let headers = [
        ("svix-id", "msg_1"),
        ("svix-timestamp", ts.as_str()),
        ("svix-signature", signature.as_str()),
    ];
    let (status, first) = app.hook(url, &headers, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, again) = app.hook(url, &headers, body.clone()).await;
    assert_eq!(again["status"], "duplicate");
    let (_, event) = app
        .get(&format!(
            "/api/v1/events/{}",
            first["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (event["event_type"].as_str(), event["dedup_key"].as_str()),
        (Some("invoice.paid"), Some("msg_1"))
    );

    let forged = switchyard_tests::sign::standard_webhooks(
        &switchyard_tests::sign::new_whsec(),
        "msg_2",
        0,
        body.as_bytes(),
    );
    let headers = [
        ("svix-id", "msg_2"),
        ("svix-timestamp", ts.as_str()),
        ("svix-signature", forged.as_str()),
    ];
    let (status, problem) = app.hook(url, &headers, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        problem["type"],
        "https://switchyard.dev/problems/signature-mismatch"
    );
}
