//! Getting a source going from the dashboard: a sender that shows its signing secret
//! only after the URL is saved, and a test event sent through the source's routes.

use std::time::Duration;

use reqwest::StatusCode;
use switchyard_tests::fakes::Answer;
use switchyard_tests::{FakeRoutines, Receiver, Reply, TestApp, Visitor};

const SECRET: &str = "gh-webhook-secret";

/// A Standard Webhooks (Anthropic) request signed with `secret`.
async fn post_anthropic(app: &TestApp, url: &str, secret: &str, id: &str) -> reqwest::Response {
    let body = format!(
        r#"{{"type":"event","id":"{id}","created_at":"2026-11-27T10:00:00Z","data":{{"type":"session.status_idled","id":"sesn_1"}}}}"#
    );
    let ts = chrono::Utc::now().timestamp();
    app.client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            switchyard_tests::sign::standard_webhooks(secret, id, ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_anthropic_source_gives_its_url_first_and_waits_for_the_secret() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    let form = v
        .get(&format!("{team}/sources/new?provider=anthropic"))
        .await;
    form.assert_contains("Leave it empty if the sender has not shown it yet");
    let page = v
        .submit(
            &format!("{team}/sources"),
            &[("provider", "anthropic"), ("name", "agents")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.assert_contains("Waiting for the signing secret");
    let ingest = page.input_value("ingest-url");
    assert!(ingest.starts_with(&app.url("/hooks/")), "{ingest}");
    v.get(&format!("{team}/sources"))
        .await
        .assert_contains("waiting for its signing secret");

    // Until the secret is pasted, every request is refused and logged with why.
    let secret = switchyard_tests::sign::new_whsec();
    let res = post_anthropic(&app, &ingest, &secret, "whe_early").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let problem: serde_json::Value = res.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("source-awaiting-secret"),
        "{problem}"
    );
    let path = format!(
        "{team}/sources/{}",
        sqlx::query_scalar::<_, String>("SELECT id FROM sources WHERE name = 'agents'")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    );
    v.get_until(&path, "waiting for its signing secret; paste it")
        .await;
    let (events,): (i64,) = sqlx::query_as("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events, 0);

    // A wrong secret is refused as any, kept nowhere; the right one is taken.
    let page = v
        .post(&format!("{path}/secrets"), &[("secret", "not-a-whsec")])
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("Waiting for the signing secret");
    let page = v
        .submit(&format!("{path}/secrets"), &[("secret", &secret)])
        .await;
    page.assert_contains("Signing secret saved");
    assert!(
        !page.body.contains("Waiting for the signing secret"),
        "{}",
        page.body
    );
    app.eventually(|| async {
        let id = format!(
            "whe_{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        (post_anthropic(&app, &ingest, &secret, &id).await.status() == StatusCode::OK).then_some(())
    })
    .await;

    // The API takes such a source without a secret too; a GitHub one still needs it.
    let (status, created) = app
        .post(
            "/api/v1/sources",
            serde_json::json!({"name": "later", "provider": "stripe"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, refused) = app
        .post(
            "/api/v1/sources",
            serde_json::json!({"name": "now", "provider": "github"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
}

#[tokio::test]
async fn a_test_event_goes_through_the_routes_marked_as_a_test_and_asks_before_a_routine() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    let source_id = source["id"].as_str().unwrap();
    let path = format!("{team}/sources/{source_id}");
    v.get(&path).await.assert_contains("Send a test event");
    let page = v.post(&format!("{path}/test"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let event_page = v.get(page.location.as_deref().unwrap()).await;
    event_page.assert_contains("Test event sent: 1 delivery made.");
    event_page.assert_contains("<code>issues.opened</code> <span class=\"badge\">test</span>");
    event_page.assert_contains("switchyard-test");
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        String::from_utf8_lossy(&got[0].body).contains("Crash when saving a draft"),
        "the provider's sample went out"
    );
    v.get(&format!("{team}/events"))
        .await
        .assert_contains("<span class=\"badge\">test</span>");
    v.get(&format!("{team}/deliveries"))
        .await
        .assert_contains("<span class=\"badge\">test</span>");

    // A route to a routine: nothing is stored or sent until the person says so.
    const TOKEN: &str = "sk-ant-oat01-test-token-0123456789";
    let routines = FakeRoutines::start(TOKEN, vec![Answer::Fire]).await;
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "routine"),
                ("name", "agent"),
                ("fire_url", &routines.fire_url("trig_01TEST")),
                ("token", TOKEN),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let dst: String = sqlx::query_scalar("SELECT id FROM destinations WHERE name = 'agent'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let page = v
        .post(
            &format!("{team}/routes"),
            &[
                ("name", "to the agent"),
                ("source_id", source_id),
                ("destination_id", &dst),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let before = count().await;
    v.get(&path)
        .await
        .assert_contains("I understand this starts a new Claude Code session");
    let page = v.post(&format!("{path}/test"), &[]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("each fire starts a new Claude Code session: confirm first");
    assert_eq!(count().await, before, "nothing stored");
    let page = v
        .submit(&format!("{path}/test"), &[("confirm", "yes")])
        .await;
    page.assert_contains("Test event sent: 2 deliveries made.");
    routines.wait_for(1, Duration::from_secs(10)).await;

    // Another team's source, a made-up id, a stranger.
    let theirs = app.create_source("github", Some(SECRET)).await;
    let theirs = theirs["id"].as_str().unwrap();
    let page = v.post(&format!("{team}/sources/{theirs}/test"), &[]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let page = v.post(&format!("{team}/sources/src_nope/test"), &[]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let mut stranger = Visitor::new(&app);
    let page = stranger.post_raw(&format!("{path}/test"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(count().await, before + 1);
}
