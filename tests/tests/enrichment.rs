//! Enrichment: a route on an Anthropic source fetches the object a thin event names,
//! through a fake of the Managed Agents API, once per event, and renders with it.
//! Anthropic's trouble retries the delivery without touching the destination's breaker;
//! a missing or refused key fails it and tells the team once.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_tests::app::Options;
use switchyard_tests::{FakeAnthropic, FakeSlack, Receiver, Reply, SmtpServer, TestApp, Trouble};

const KEY: &str = "sk-ant-api03-teamkey0123456789abcdefWXYZ";
const WITHIN: Duration = Duration::from_secs(15);

/// An app calling `fake`, with the team's key stored and an Anthropic source.
async fn connected(fake: &FakeAnthropic, options: Options) -> (TestApp, Value, String) {
    fake.connected_app(KEY, options).await
}

fn idled(event: &str, session: &str) -> Value {
    json!({"type": "event", "id": event, "created_at": "2026-12-05T09:30:00Z",
           "data": {"type": "session.status_idled", "id": session,
                    "organization_id": "org_01", "workspace_id": "wrkspc_01DEFAULT"}})
}

async fn enriching_route(
    app: &TestApp,
    source: &Value,
    destination: &Value,
    template: Option<&str>,
) {
    app.created(
        "/api/v1/routes",
        json!({"name": "enriched", "source_id": source["id"], "destination_id": destination["id"],
               "event_types": ["session.*"], "enrich": true, "template": template}),
    )
    .await;
}

async fn accepted(app: &TestApp, source: &Value, secret: &str, envelope: &Value) -> String {
    let url = source["ingest_url"].as_str().unwrap();
    let (status, answer) = app.send_anthropic(url, secret, envelope).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["event_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_idle_session_reaches_slack_with_its_title_status_and_usage_fetched_once() {
    let fake = FakeAnthropic::start(KEY).await;
    fake.put_session("sesn_01IDLE", "idle", "Fix the flaky login test");
    let (app, source, secret) = connected(&fake, Options::default()).await;
    let slack = FakeSlack::start(vec![]).await;
    let channel = app
        .created(
            "/api/v1/destinations",
            json!({"name": "ops", "kind": "slack", "url": slack.webhook_url()}),
        )
        .await;
    enriching_route(
        &app,
        &source,
        &channel,
        Some(
            "{{ object.title }} ({{ object.agent.name }}) is {{ object.status }}: \
             {{ object.usage.output_tokens }} tokens out",
        ),
    )
    .await;
    // A second enriching route of the same event, an HTTP endpoint without a template.
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let endpoint = app.create_destination(&receiver.url("/hook")).await;
    enriching_route(&app, &source, &endpoint, None).await;

    let event = accepted(&app, &source, &secret, &idled("whe_01", "sesn_01IDLE")).await;
    let slacked = slack.wait_for(1, WITHIN).await;
    let message: Value = serde_json::from_slice(&slacked[0].body).unwrap();
    assert_eq!(
        message["text"],
        "Fix the flaky login test (Triage bot) is idle: 2210 tokens out"
    );
    let posted = receiver.wait_for(1, WITHIN).await;
    let body: Value = serde_json::from_slice(&posted[0].body).unwrap();
    assert_eq!(body["id"], "whe_01", "the original envelope: {body}");
    assert_eq!(body["data"]["type"], "session.status_idled");
    assert_eq!(body["object"]["title"], "Fix the flaky login test");

    // One fetch served both routes, with the headers the API requires.
    assert_eq!(fake.requests_for("/v1/sessions/sesn_01IDLE"), 1);
    let call = &fake.received()[0];
    let header = |name: &str| {
        call.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-api-key"), Some(KEY));
    assert_eq!(header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(header("anthropic-beta"), Some("managed-agents-2026-04-01"));

    // Kept with the event: a replay sends what was first sent, without fetching again.
    fake.put_session("sesn_01IDLE", "running", "Renamed meanwhile");
    let (_, stored) = app.get(&format!("/api/v1/events/{event}")).await;
    let to_slack = stored["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination_id"] == channel["id"])
        .unwrap();
    let replay = format!(
        "/api/v1/deliveries/{}/replay",
        to_slack["id"].as_str().unwrap()
    );
    let (status, answer) = app.call(Method::POST, &replay, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let both = slack.wait_for(2, WITHIN).await;
    assert_eq!(both[1].body, slacked[0].body);
    assert_eq!(fake.requests_for("/v1/sessions/sesn_01IDLE"), 1);

    // The key records its use.
    let (_, status) = app.get("/api/v1/integrations/anthropic").await;
    assert!(status["last_used_at"].is_string(), "{status}");
    assert!(status["last_error"].is_null(), "{status}");
}

#[tokio::test]
async fn anthropic_trouble_retries_the_delivery_without_counting_against_the_destination() {
    let fake = FakeAnthropic::start(KEY).await;
    fake.put_session("sesn_01BUSY", "idle", "Busy");
    fake.trouble(vec![Trouble::RateLimited(1), Trouble::Status(500)]);
    let (app, source, secret) = connected(&fake, Options::default()).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let endpoint = app.create_destination(&receiver.url("/hook")).await;
    enriching_route(&app, &source, &endpoint, None).await;

    let event = accepted(&app, &source, &secret, &idled("whe_02", "sesn_01BUSY")).await;
    let delivery = app.delivery_of(&event).await;
    let id = delivery["id"].as_str().unwrap();
    // The 429's Retry-After is 1 s, the 500's back-off the policy's first step.
    let done = app
        .wait_delivery(id, Duration::from_secs(40), |d| d["status"] == "succeeded")
        .await;
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{done:#}");
    let errors: Vec<&str> = attempts[..2]
        .iter()
        .map(|a| a["error"].as_str().unwrap_or_default())
        .collect();
    assert!(
        errors[0].starts_with("enrichment: Anthropic answered HTTP 429 rate_limit_error"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("enrichment: Anthropic answered HTTP 500 api_error"),
        "{errors:?}"
    );
    assert_eq!(
        receiver.received().len(),
        1,
        "nothing was sent before the object came"
    );
    let failures: i32 =
        sqlx::query_scalar("SELECT max(consecutive_failures) FROM destination_runtime")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(failures, 0, "the destination did nothing wrong");
    let (_, key) = app.get("/api/v1/integrations/anthropic").await;
    assert!(
        key["last_error"].is_null(),
        "the last call went through: {key}"
    );
}

#[tokio::test]
async fn a_gone_session_delivers_a_null_object_with_a_note_and_a_deleted_one_is_not_fetched() {
    let fake = FakeAnthropic::start(KEY).await;
    let (app, source, secret) = connected(&fake, Options::default()).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let endpoint = app.create_destination(&receiver.url("/hook")).await;
    enriching_route(&app, &source, &endpoint, None).await;

    let gone = accepted(&app, &source, &secret, &idled("whe_03", "sesn_01GONE")).await;
    let posted = receiver.wait_for(1, WITHIN).await;
    let body: Value = serde_json::from_slice(&posted[0].body).unwrap();
    assert_eq!(body["object"], Value::Null, "{body}");
    assert!(body.as_object().unwrap().contains_key("object"));
    let delivery = app.delivery_of(&gone).await;
    // The receiver answers before the worker records the answer.
    let detail = app
        .wait_delivery(delivery["id"].as_str().unwrap(), WITHIN, |d| {
            d["status"] != "in_flight" && d["status"] != "pending"
        })
        .await;
    assert_eq!(detail["status"], "succeeded");
    let note = detail["attempts"][0]["note"].as_str().unwrap_or_default();
    assert!(note.contains("404"), "{detail:#}");

    let deleted = json!({"type": "event", "id": "whe_04", "created_at": "2026-12-05T09:31:00Z",
                         "data": {"type": "session.deleted", "id": "sesn_01DEL"}});
    accepted(&app, &source, &secret, &deleted).await;
    receiver.wait_for(2, WITHIN).await;
    assert_eq!(fake.requests_for("/v1/sessions/sesn_01DEL"), 0);
}

#[tokio::test]
async fn a_refused_key_fails_enriching_deliveries_and_alerts_the_team_once() {
    let fake = FakeAnthropic::start(KEY).await;
    fake.put_session("sesn_01A", "idle", "A");
    fake.put_session("sesn_01B", "idle", "B");
    let smtp = SmtpServer::start(vec![]);
    let (app, source, secret) = connected(&fake, Options::mail(&smtp)).await;
    app.alert_to("ops@example.com").await;
    fake.rotate_key("sk-ant-api03-someoneelse0123456789abcdABCD");
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let endpoint = app.create_destination(&receiver.url("/hook")).await;
    enriching_route(&app, &source, &endpoint, None).await;

    for (event, session) in [("whe_05", "sesn_01A"), ("whe_06", "sesn_01B")] {
        let event = accepted(&app, &source, &secret, &idled(event, session)).await;
        let delivery = app.delivery_of(&event).await;
        let failed = app
            .wait_delivery(delivery["id"].as_str().unwrap(), WITHIN, |d| {
                d["status"] == "failed"
            })
            .await;
        let error = failed["last_error"].as_str().unwrap();
        assert!(
            error.contains("the Anthropic API key was refused")
                && error.contains("401 authentication_error"),
            "{error}"
        );
    }
    assert!(receiver.received().is_empty());
    // The destination's failed deliveries are reported as ever; the key once, apart.
    let key_alerts = || {
        smtp.accepted()
            .iter()
            .filter_map(|m| m.header("subject"))
            .filter(|s| s.contains("Anthropic"))
            .collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + WITHIN;
    while key_alerts().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        key_alerts(),
        ["[Switchyard] The team's Anthropic API key does not work"]
    );
    let (_, key) = app.get("/api/v1/integrations/anthropic").await;
    assert!(
        key["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{key}"
    );
    // Once: the second failure raised nothing more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(key_alerts().len(), 1);
}

#[tokio::test]
async fn without_a_key_enriching_deliveries_fail_saying_so() {
    let fake = FakeAnthropic::start(KEY).await;
    let app = TestApp::spawn_with(Options {
        anthropic_api_url: Some(fake.base.clone()),
        ..Options::default()
    })
    .await;
    let secret = switchyard_tests::sign::new_whsec();
    let source = app.create_source("anthropic", Some(&secret)).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let endpoint = app.create_destination(&receiver.url("/hook")).await;
    enriching_route(&app, &source, &endpoint, None).await;
    let event = accepted(&app, &source, &secret, &idled("whe_07", "sesn_01C")).await;
    let delivery = app.delivery_of(&event).await;
    let failed = app
        .wait_delivery(delivery["id"].as_str().unwrap(), WITHIN, |d| {
            d["status"] == "failed"
        })
        .await;
    assert_eq!(
        failed["last_error"],
        "enrichment: the team has no Anthropic API key; add one in Settings"
    );
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn only_routes_on_anthropic_sources_enrich() {
    let fake = FakeAnthropic::start(KEY).await;
    let (app, anthropic, _) = connected(&fake, Options::default()).await;
    let github = app.create_source("github", Some("s3cret")).await;
    let endpoint = app.create_destination("https://example.com/hook").await;
    let (status, problem) = app
        .post(
            "/api/v1/routes",
            json!({"name": "no", "source_id": github["id"], "destination_id": endpoint["id"],
                   "enrich": true}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "enrich");
    let plain = app.create_route(&github, &endpoint, &["*"]).await;
    let (status, problem) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/routes/{}", plain["id"].as_str().unwrap()),
            Some(json!({"enrich": true})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (_, route) = app
        .get(&format!("/api/v1/routes/{}", plain["id"].as_str().unwrap()))
        .await;
    assert_eq!(route["enrich"], false, "nothing changed");
    let fine = app.create_route(&anthropic, &endpoint, &["*"]).await;
    let (status, route) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/routes/{}", fine["id"].as_str().unwrap()),
            Some(json!({"enrich": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{route}");
    assert_eq!(route["enrich"], true);
}

#[tokio::test]
async fn checking_a_key_makes_one_call_and_says_how_it_went() {
    let fake = FakeAnthropic::start(KEY).await;
    let (app, _, _) = connected(&fake, Options::default()).await;
    let check = "/api/v1/integrations/anthropic/check";
    let (status, answer) = app.call(Method::POST, check, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ok"], true);
    assert_eq!(fake.requests_for("/v1/sessions"), 1);

    fake.rotate_key("sk-ant-api03-someoneelse0123456789abcdABCD");
    let (_, answer) = app.call(Method::POST, check, None).await;
    assert_eq!(answer["ok"], false);
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("401 authentication_error"), "{message}");
    let (_, key) = app.get("/api/v1/integrations/anthropic").await;
    assert!(key["last_error"].as_str().unwrap().contains("401"), "{key}");

    let (status, _) = app
        .call(
            Method::POST,
            &format!("{check}?workspace_id=wrkspc_01NONE"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn enriching_recipes_enrich_once_the_team_has_a_key() {
    let fake = FakeAnthropic::start(KEY).await;
    let (app, source, _) = connected(&fake, Options::default()).await;
    let slack = FakeSlack::start(vec![]).await;
    let applied = app
        .created(
            "/api/v1/recipes/session-status-to-slack",
            json!({"source_id": source["id"], "url": slack.webhook_url()}),
        )
        .await;
    assert_eq!(applied["route"]["enrich"], true, "{applied}");

    let (status, _) = app
        .call(Method::DELETE, "/api/v1/integrations/anthropic", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let applied = app
        .created(
            "/api/v1/recipes/session-status-to-slack",
            json!({"source_id": source["id"], "url": slack.webhook_url()}),
        )
        .await;
    assert_eq!(applied["route"]["enrich"], false, "{applied}");
}
