//! Email destinations against a real SMTP server on loopback.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_domain::store::teams;
use switchyard_tests::app::Options;
use switchyard_tests::{SmtpServer, TestApp};

const SECRET: &str = "gh-secret";

async fn app_with(smtp: &SmtpServer) -> TestApp {
    TestApp::spawn_with(Options::mail(smtp)).await
}

async fn wire(app: &TestApp, to: Value) -> Value {
    let source = app.create_source("github", Some(SECRET)).await;
    let mut body = json!({"name": "alerts", "kind": "email"});
    if !to.is_null() {
        body["to"] = to;
    }
    let destination = app.created("/api/v1/destinations", body).await;
    app.create_route(&source, &destination, &["*"]).await;
    source
}

async fn send(app: &TestApp, source: &Value) -> String {
    let body = br#"{"action":"opened","note":"<b>bold</b>"}"#;
    app.send_issue(source, SECRET, "g-1", body).await
}

#[tokio::test]
async fn an_event_arrives_as_a_text_and_html_email_to_the_named_recipients() {
    let smtp = SmtpServer::start(vec![250]);
    let app = app_with(&smtp).await;
    let source = wire(&app, json!(["ops@example.com", "oncall@example.com"])).await;
    let id = send(&app, &source).await;
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(mail.to, ["ops@example.com", "oncall@example.com"]);
    assert_eq!(mail.from, "alerts@switchyard.test");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[Switchyard] issues.opened from github")
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Switchyard <alerts@switchyard.test>")
    );
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    let text = mail.part("text/plain").expect("a text part");
    assert!(text.starts_with("issues.opened from github ("), "{text}");
    assert!(text.contains("\"note\": \"<b>bold</b>\""), "{text}");
    let message_id = mail.header("Message-ID").expect("a Message-ID");
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@switchyard.test>"),
        "{message_id}"
    );
    assert!(mail.header("Date").is_some(), "a Date");
    let html = mail.part("text/html").expect("an html part");
    assert!(!html.contains("<pre"), "{html}");
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"), "{html}");

    let done = app
        .wait_delivery(&id, Duration::from_secs(10), |d| d["status"] == "succeeded")
        .await;
    let attempt = &done["attempts"][0];
    assert_eq!(attempt["response_status"], 250);
    assert_eq!(
        attempt["request_headers"]["to"],
        "ops@example.com, oncall@example.com"
    );
}

#[tokio::test]
async fn without_recipients_the_team_s_owners_and_admins_get_it() {
    let smtp = SmtpServer::start(vec![250]);
    let app = app_with(&smtp).await;
    let team: String = sqlx::query_scalar("SELECT id FROM teams WHERE slug = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let team = team.parse().unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    for (email, role) in [
        ("owner@acme.test", "owner"),
        ("admin@acme.test", "admin"),
        ("member@acme.test", "member"),
    ] {
        teams::add_member(&mut conn, &team, email, role)
            .await
            .unwrap();
    }
    let source = wire(&app, Value::Null).await;
    send(&app, &source).await;
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(mail.to, ["admin@acme.test", "owner@acme.test"]);
}

#[tokio::test]
async fn a_transient_smtp_reply_is_retried_and_a_permanent_one_fails() {
    let smtp = SmtpServer::start(vec![451, 250]);
    let app = app_with(&smtp).await;
    let source = wire(&app, json!(["ops@example.com"])).await;
    let id = send(&app, &source).await;
    let done = app
        .wait_delivery(&id, Duration::from_secs(15), |d| d["status"] == "succeeded")
        .await;
    let codes: Vec<_> = done["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response_status"].clone())
        .collect();
    assert_eq!(codes, [json!(451), json!(250)]);

    smtp.script(vec![550]);
    let (_, answer) = app
        .send_github(&source, SECRET, "issues", "g-2", b"{}")
        .await;
    let second = app.delivery_of(answer["event_id"].as_str().unwrap()).await;
    let failed = app
        .wait_delivery(
            second["id"].as_str().unwrap(),
            Duration::from_secs(10),
            |d| d["status"] == "failed",
        )
        .await;
    assert!(
        failed["last_error"].as_str().unwrap().contains("550"),
        "{failed:#}"
    );
    assert_eq!(failed["attempt_count"], 1, "never retried");
}

#[tokio::test]
async fn without_smtp_an_email_fails_saying_so() {
    let app = TestApp::spawn().await;
    let source = wire(&app, json!(["ops@example.com"])).await;
    let id = send(&app, &source).await;
    let failed = app
        .wait_delivery(&id, Duration::from_secs(10), |d| d["status"] == "failed")
        .await;
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("SMTP not configured"),
        "{failed:#}"
    );
}

#[tokio::test]
async fn email_destinations_are_validated() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"name": "e", "kind": "email", "to": ["not an address"]}),
        json!({"name": "e", "kind": "email", "to": ["a@b.test\r\nBcc: x@y.test"]}),
        json!({"name": "e", "kind": "email", "url": "https://example.com"}),
        json!({"name": "e", "kind": "http", "url": "https://example.com", "to": ["a@b.test"]}),
        json!({"name": "e", "kind": "email", "to": vec!["a@b.test"; 21]}),
    ] {
        let (status, problem) = app.post("/api/v1/destinations", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {problem}"
        );
    }
    let created = app
        .created(
            "/api/v1/destinations",
            json!({"name": "e", "kind": "email", "to": [" ops@example.com "]}),
        )
        .await;
    assert_eq!(created["to"], json!(["ops@example.com"]));
}

#[tokio::test]
async fn a_vault_credential_that_cannot_refresh_reaches_an_inbox_with_what_to_do() {
    let smtp = SmtpServer::start(vec![250]);
    let app = app_with(&smtp).await;
    let secret = switchyard_tests::sign::new_whsec();
    let source = app
        .created(
            "/api/v1/sources",
            json!({"name": "agents", "provider": "anthropic", "secret": secret}),
        )
        .await;
    let (status, applied) = app
        .post(
            "/api/v1/recipes/vault-refresh-failed-to-email",
            json!({"source_id": source["id"], "to": ["oncall@example.com"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{applied}");

    // Anthropic's thin event, signed the Standard Webhooks way.
    let body = json!({
        "type": "event",
        "id": "whe_01VAULT",
        "created_at": "2026-11-27T09:15:00Z",
        "data": {
            "type": "vault_credential.refresh_failed",
            "id": "vcrd_01ABC",
            "vault_id": "vlt_01XYZ",
            "workspace_id": "wrkspc_01QRS",
            "organization_id": "org_01TUV"
        }
    })
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let res = app
        .client
        .post(source["ingest_url"].as_str().unwrap())
        .header("content-type", "application/json")
        .header("webhook-id", "whe_01VAULT")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            switchyard_tests::sign::standard_webhooks(&secret, "whe_01VAULT", now, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let answer: Value = res.json().await.unwrap();

    let mail = smtp.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(mail.to, ["oncall@example.com"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[Switchyard] Vault credential vcrd_01ABC needs reconnecting")
    );
    let text = mail.part("text/plain").expect("a text part");
    for expected in [
        "Credential: vcrd_01ABC",
        "Vault: vlt_01XYZ",
        "Workspace: wrkspc_01QRS",
        "When: 2026-11-27T09:15:00Z",
        "reconnect the credential",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    let link = format!(
        "{}/t/acme/events/{}",
        app.base,
        answer["event_id"].as_str().unwrap()
    );
    assert!(text.contains(&link), "{link} in {text}");
    assert!(mail.part("text/html").is_some());
}
