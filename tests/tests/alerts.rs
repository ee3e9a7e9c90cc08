//! Alert emails at a real SMTP server: a delivery that fails for good, a source refusing
//! requests, the team's settings (who, which), and grouping (one per destination an hour).

use std::time::Duration;

use reqwest::StatusCode;
use switchyard_domain::store::alerts::{self, AlertSettings};
use switchyard_domain::store::teams;
use switchyard_tests::app::Options;
use switchyard_tests::{Receiver, Reply, SmtpServer, TestApp, Visitor};

const SECRET: &str = "gh-secret";

async fn app_with(smtp: &SmtpServer) -> TestApp {
    TestApp::spawn_with(Options::mail(smtp)).await
}

/// Posts `n` requests with a wrong signature to the source.
async fn refused(app: &TestApp, source: &serde_json::Value, n: usize) {
    for i in 0..n {
        let res = app
            .client
            .post(source["ingest_url"].as_str().unwrap())
            .header("x-github-event", "issues")
            .header("x-github-delivery", format!("bad-{i}"))
            .header("x-hub-signature-256", "sha256=00")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}

async fn settle(app: &TestApp, settings: AlertSettings) {
    let team = teams::find_by_slug(&app.pool, "acme").await.unwrap();
    alerts::save(&app.pool, &team.id, &settings).await.unwrap();
}

fn oncall() -> AlertSettings {
    AlertSettings {
        notify_admins: false,
        extra_recipients: vec!["oncall@example.com".to_owned()],
        rejection_threshold: 3,
        ..AlertSettings::default()
    }
}

#[tokio::test]
async fn a_delivery_that_fails_for_good_is_emailed_once_an_hour_per_destination() {
    let smtp = SmtpServer::start(vec![250]);
    let app = app_with(&smtp).await;
    settle(&app, oncall()).await;
    let receiver = Receiver::start(vec![Reply::status(400).body("unknown repository")]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["*"]).await;
    for guid in ["g-1", "g-2", "g-3"] {
        let (status, _) = app
            .send_github(&source, SECRET, "issues", guid, b"{}")
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    receiver.wait_for(3, Duration::from_secs(10)).await;

    let mail = smtp.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(mail.to, ["oncall@example.com"]);
    assert!(
        mail.header("Subject")
            .unwrap()
            .starts_with("[Switchyard] A delivery to"),
        "{:?}",
        mail.header("Subject")
    );
    let text = mail.part("text/plain").unwrap();
    assert!(text.contains("failed for good"), "{text}");
    assert!(text.contains("/t/acme/deliveries/dlv_"), "{text}");
    // System mail is real HTML beside the text: every URL a link.
    let html = mail.part("text/html").unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/t/acme/deliveries/dlv_"))
        .unwrap();
    assert!(html.contains(&format!("<a href=\"{link}\">")), "{html}");
    assert!(mail.header("Message-ID").is_some() && mail.header("Date").is_some());

    // The other two failures are grouped into that one email; a source alert still goes.
    refused(&app, &source, 3).await;
    let mails = smtp.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        smtp.accepted().len(),
        2,
        "one failure email, one source email"
    );
    let second = &mails[1];
    assert_eq!(
        second.header("Subject").as_deref(),
        Some("[Switchyard] Source \"github\" refused 3 requests")
    );
    assert!(
        second
            .part("text/plain")
            .unwrap()
            .contains("/t/acme/sources/src_")
    );
}

#[tokio::test]
async fn alerts_a_team_switched_off_are_not_sent() {
    let smtp = SmtpServer::start(vec![250]);
    let app = app_with(&smtp).await;
    settle(
        &app,
        AlertSettings {
            delivery_failed: false,
            ..oncall()
        },
    )
    .await;
    let receiver = Receiver::start(vec![Reply::status(400)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["*"]).await;
    let (status, _) = app
        .send_github(&source, SECRET, "issues", "g-1", b"{}")
        .await;
    assert_eq!(status, StatusCode::OK);
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // A source alert afterwards proves the mail path works; it is the only email.
    refused(&app, &source, 3).await;
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.accepted().len(), 1);
    assert!(mails[0].header("Subject").unwrap().contains("refused"));
}

#[tokio::test]
async fn alert_settings_are_changed_by_admins_in_the_dashboard() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    let page = ada.get(&format!("{team}/settings")).await;
    page.assert_contains("a delivery fails after all its attempts");
    let page = ada
        .post(
            &format!("{team}/alerts"),
            &[
                ("destination_disabled", "on"),
                ("alert_threshold", "0"),
                ("alert_recipients", "oncall@example.com\nnot an address"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("Enter a number from 1 to 100.");
    page.assert_contains("is not an email address.");
    page.assert_contains("not an address</textarea>");
    ada.post(
        &format!("{team}/alerts"),
        &[
            ("destination_disabled", "on"),
            ("source_rejecting", "on"),
            ("alert_threshold", "50"),
            ("alert_recipients", "oncall@example.com, pager@example.com"),
        ],
    )
    .await
    .assert_redirect(&format!("{team}/settings#alerts"));
    let team_id: String = sqlx::query_scalar("SELECT id FROM teams WHERE slug = 'acme-two'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let saved = alerts::settings(&app.pool, &team_id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        saved,
        AlertSettings {
            destination_disabled: true,
            delivery_failed: false,
            unknown_outcome: false,
            source_rejecting: true,
            anthropic_key: false,
            source_quiet: false,
            rejection_threshold: 50,
            notify_admins: false,
            extra_recipients: vec![
                "oncall@example.com".to_owned(),
                "pager@example.com".to_owned()
            ],
        }
    );
    ada.get(&format!("{team}/settings"))
        .await
        .assert_contains("alerts.update");
}

#[tokio::test]
async fn a_routine_fire_without_an_answer_is_emailed_as_an_unknown_outcome() {
    let smtp = SmtpServer::start(vec![250]);
    let app = app_with(&smtp).await;
    settle(&app, oncall()).await;
    let token = "sk-ant-oat01-test-token-0123456789";
    let fake =
        switchyard_tests::FakeRoutines::start(token, vec![switchyard_tests::Answer::Hang]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app
        .created(
            "/api/v1/destinations",
            serde_json::json!({"name": "triage", "kind": "routine",
                "fire_url": fake.fire_url("trig_01ABCDEF"), "token": token}),
        )
        .await;
    app.create_route(&source, &destination, &["*"]).await;
    let (status, _) = app
        .send_github(&source, SECRET, "issues", "g-1", b"{}")
        .await;
    assert_eq!(status, StatusCode::OK);

    let mail = smtp.wait_for(1, Duration::from_secs(20)).await.remove(0);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[Switchyard] A fire of \"triage\" may or may not have started")
    );
    let text = mail.part("text/plain").unwrap();
    assert!(text.contains("is not fired again on its own"), "{text}");
    assert_eq!(fake.received().len(), 1, "one fire, no second");
}
