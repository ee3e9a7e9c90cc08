//! Reconciliation: an Anthropic source's passes list its sessions through a fake of the
//! Managed Agents API and synthesize the status webhooks Anthropic dropped, each
//! delivered once; a late real copy of one delivers nothing, a later real transition
//! does.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_tests::app::Options;
use switchyard_tests::receiver::Received;
use switchyard_tests::{FakeAnthropic, Receiver, Reply, TestApp, Visitor};

const KEY: &str = "sk-ant-api03-teamkey0123456789abcdefWXYZ";
const WITHIN: Duration = Duration::from_secs(20);

/// A time `minutes` before now, as Anthropic writes it.
fn minutes_ago(minutes: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An app calling `fake` with the team's key stored, an Anthropic source that has been
/// receiving for days (the sessions' changes were sent to it) and a route of its session
/// events to `receiver`.
async fn connected(fake: &FakeAnthropic, receiver: &Receiver, options: Options) -> Connected {
    let rig = routed(fake, receiver, options).await;
    sqlx::query("UPDATE sources SET created_at = now() - interval '2 days' WHERE id = $1")
        .bind(rig.source["id"].as_str().unwrap())
        .execute(&rig.app.pool)
        .await
        .unwrap();
    rig
}

/// The same with a source made just now.
async fn routed(fake: &FakeAnthropic, receiver: &Receiver, options: Options) -> Connected {
    let (app, source, secret) = fake.connected_app(KEY, options).await;
    let endpoint = app.create_destination(&receiver.url("/hook")).await;
    app.created(
        "/api/v1/routes",
        json!({"name": "sessions", "source_id": source["id"], "destination_id": endpoint["id"],
               "event_types": ["session.*"]}),
    )
    .await;
    Connected {
        app,
        source,
        secret,
    }
}

/// A fake API, a receiver, and an app whose passes make at most `calls` API calls.
async fn with_calls(calls: u32) -> (FakeAnthropic, Receiver, Connected) {
    let fake = FakeAnthropic::start(KEY).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let options = Options {
        reconcile_calls: Some(calls),
        ..Options::default()
    };
    let rig = connected(&fake, &receiver, options).await;
    (fake, receiver, rig)
}

/// The query of every session list request the fake answered, in order.
fn list_queries(fake: &FakeAnthropic) -> Vec<String> {
    fake.received()
        .iter()
        .filter(|r| r.path == "/v1/sessions")
        .map(|r| r.query.clone())
        .collect()
}

struct Connected {
    app: TestApp,
    source: Value,
    secret: String,
}

impl Connected {
    async fn send(&self, event: &Value) -> Value {
        let url = self.source["ingest_url"].as_str().unwrap();
        let (status, answer) = self.app.send_anthropic(url, &self.secret, event).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    async fn turn_on(&self, fields: Value) {
        let path = format!("/api/v1/sources/{}", self.source["id"].as_str().unwrap());
        let (status, body) = self.app.call(Method::PATCH, &path, Some(fields)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["reconcile"], true, "{body}");
    }

    /// Makes the next pass due now rather than an interval on.
    async fn pass_now(&self) {
        sqlx::query("UPDATE reconcile_passes SET next_at = now()")
            .execute(&self.app.pool)
            .await
            .unwrap();
    }

    /// The source's last pass, once one finished after `after` passes had.
    async fn pass_after(&self, finished_before: Option<chrono::DateTime<Utc>>) -> PassRow {
        self.app
            .eventually(|| async {
                let row = sqlx::query_as::<_, PassRow>(
                    "SELECT finished_at, sessions_checked, events_synthesized, api_calls,
                            cut_short, error FROM reconcile_passes",
                )
                .fetch_optional(&self.app.pool)
                .await
                .unwrap()?;
                let finished = row.finished_at?;
                finished_before
                    .is_none_or(|before| finished > before)
                    .then_some(row)
            })
            .await
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct PassRow {
    finished_at: Option<chrono::DateTime<Utc>>,
    sessions_checked: i32,
    events_synthesized: i32,
    api_calls: i32,
    cut_short: Option<String>,
    error: Option<String>,
}

fn status_event(id: &str, session: &str, kind: &str, at: &str) -> Value {
    json!({"type": "event", "id": id, "created_at": at,
           "data": {"type": kind, "id": session, "organization_id": "org_01",
                    "workspace_id": "wrkspc_01"}})
}

fn body_of(received: &Received) -> Value {
    serde_json::from_slice(&received.body).unwrap()
}

/// A session created `created` minutes ago, idle since `idle` minutes ago.
fn idle_session(fake: &FakeAnthropic, id: &str, created: i64, idle: i64) -> String {
    let mut session = switchyard_tests::fake_anthropic::session(id, "running", id);
    session["created_at"] = json!(minutes_ago(created));
    fake.put(&format!("/v1/sessions/{id}"), session);
    fake.set_status(id, "running", &minutes_ago(created));
    let at = minutes_ago(idle);
    fake.set_status(id, "idle", &at);
    at
}

#[tokio::test]
async fn three_dropped_webhooks_of_ten_are_synthesized_and_delivered_once() {
    let fake = FakeAnthropic::start(KEY).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let rig = connected(&fake, &receiver, Options::default()).await;
    // Ten sessions went idle; Anthropic's webhooks for three of them were dropped.
    let mut idled_at = Vec::new();
    for n in 1..=10 {
        idled_at.push(idle_session(&fake, &format!("sesn_{n:02}"), 60, 30 - n));
    }
    for n in 1..=7 {
        let event = status_event(
            &format!("whe_{n:02}"),
            &format!("sesn_{n:02}"),
            "session.status_idled",
            &idled_at[n - 1],
        );
        rig.send(&event).await;
    }
    receiver.wait_for(7, WITHIN).await;

    // Turned on after the seven arrived: the first pass reads them before comparing.
    rig.turn_on(json!({"reconcile": true, "reconcile_interval_s": 3600}))
        .await;
    let pass = rig.pass_after(None).await;
    assert_eq!(pass.error, None);
    assert_eq!(pass.cut_short, None);
    assert_eq!(pass.sessions_checked, 10);
    assert_eq!(pass.events_synthesized, 3);
    let received = receiver.wait_for(10, WITHIN).await;
    let synthesized: Vec<&Received> = received[7..].iter().collect();
    let mut sessions: Vec<String> = synthesized
        .iter()
        .map(|r| body_of(r)["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    sessions.sort();
    assert_eq!(sessions, ["sesn_08", "sesn_09", "sesn_10"]);
    for r in &synthesized {
        assert_eq!(
            r.headers.get("switchyard-synthesized").map(String::as_str),
            Some("true")
        );
        let body = body_of(r);
        let n: usize = body["data"]["id"].as_str().unwrap()[5..].parse().unwrap();
        // The envelope the webhook would have been, timed by the session's status event.
        assert_eq!(body["type"], "event");
        assert_eq!(body["data"]["type"], "session.status_idled");
        assert_eq!(body["data"]["workspace_id"], "wrkspc_01");
        assert_eq!(body["created_at"], idled_at[n - 1].as_str());
    }
    for r in &received[..7] {
        assert!(!r.headers.contains_key("switchyard-synthesized"));
    }
    let (_, listed) = rig
        .app
        .get("/api/v1/events?event_type=session.status_idled")
        .await;
    let marked: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["synthesized"] == true)
        .collect();
    assert_eq!(marked.len(), 3, "{listed}");

    // Anthropic's own copy of one of them turns up late: kept, and delivers nothing.
    let late = rig
        .send(&status_event(
            "whe_08",
            "sesn_08",
            "session.status_idled",
            &idled_at[7],
        ))
        .await;
    assert_eq!(late["status"], "accepted");
    let late_id = late["event_id"].as_str().unwrap();
    let (_, event) = rig.app.get(&format!("/api/v1/events/{late_id}")).await;
    let synthesized_id = synthesized
        .iter()
        .map(|r| r.headers["switchyard-event-id"].clone())
        .find(|id| {
            received.iter().any(|r| {
                &r.headers["switchyard-event-id"] == id && body_of(r)["data"]["id"] == "sesn_08"
            })
        })
        .unwrap();
    assert_eq!(event["reconciled_by"], synthesized_id.as_str(), "{event}");
    assert_eq!(event["synthesized"], false);
    let (_, deliveries) = rig
        .app
        .get(&format!("/api/v1/deliveries?event_id={late_id}"))
        .await;
    assert_eq!(
        deliveries["data"].as_array().unwrap().len(),
        0,
        "{deliveries}"
    );

    // Later real transitions of the same session, even of the same type, deliver: here
    // both came (late, too) before the pass, yet after the synthesized change.
    let (running_again, idle_again) = (minutes_ago(21), minutes_ago(20));
    fake.set_status("sesn_08", "running", &running_again);
    fake.set_status("sesn_08", "idle", &idle_again);
    rig.send(&status_event(
        "whe_08b",
        "sesn_08",
        "session.status_run_started",
        &running_again,
    ))
    .await;
    rig.send(&status_event(
        "whe_08c",
        "sesn_08",
        "session.status_idled",
        &idle_again,
    ))
    .await;
    let received = receiver.wait_for(12, WITHIN).await;
    let last: Vec<Value> = received[10..]
        .iter()
        .map(|r| body_of(r)["id"].clone())
        .collect();
    assert_eq!(last, ["whe_08b", "whe_08c"]);

    // The next pass finds nothing missing.
    let first = pass.finished_at;
    rig.pass_now().await;
    let second = rig.pass_after(first).await;
    assert_eq!(second.sessions_checked, 10);
    assert_eq!(second.events_synthesized, 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 12);

    // The source's page tells how the last pass went.
    let mut visitor = Visitor::member_of(&rig.app, "ops@example.com", "acme", "admin").await;
    let page = visitor
        .get(&format!(
            "/t/acme/sources/{}",
            rig.source["id"].as_str().unwrap()
        ))
        .await;
    page.assert_contains("checked 10 sessions, synthesized 0 events");
    let page = visitor.get(&format!("/t/acme/events/{late_id}")).await;
    page.assert_contains("already reconciled");
    page.assert_contains(&synthesized_id);
}

/// `count` sessions running for an hour and a half whose webhooks never came.
fn unannounced_sessions(fake: &FakeAnthropic, count: usize) {
    for n in 0..count {
        let id = format!("sesn_{n:03}");
        let mut session = switchyard_tests::fake_anthropic::session(&id, "running", &id);
        session["created_at"] = json!(minutes_ago(90));
        fake.put(&format!("/v1/sessions/{id}"), session);
        fake.set_status(&id, "running", &minutes_ago(80));
    }
}

#[tokio::test]
async fn a_pass_follows_every_page_of_sessions() {
    let fake = FakeAnthropic::start(KEY).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let rig = connected(&fake, &receiver, Options::default()).await;
    // Three pages of fifty; a pass asks for the status event of each missing one.
    unannounced_sessions(&fake, 130);
    rig.turn_on(json!({"reconcile": true})).await;
    let pass = rig.pass_after(None).await;
    assert_eq!((pass.cut_short, pass.error), (None, None));
    assert_eq!(pass.sessions_checked, 130);
    assert_eq!(pass.events_synthesized, 130);
    assert_eq!(pass.api_calls, 3 + 130);
    let lists = list_queries(&fake);
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert!(lists[0].contains("include_archived=true"), "{lists:?}");
    assert!(lists[0].contains("created_at%5Bgte%5D="), "{lists:?}");
    assert!(!lists[0].contains("page="), "{lists:?}");
    assert!(lists[1].contains("page=page_50"), "{lists:?}");
    assert!(lists[2].contains("page=page_100"), "{lists:?}");
    let received = receiver.wait_for(130, WITHIN).await;
    let mut sessions: Vec<String> = received
        .iter()
        .map(|r| body_of(r)["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    sessions.sort();
    sessions.dedup();
    assert_eq!(sessions.len(), 130);
}

#[tokio::test]
async fn a_pass_out_of_calls_says_it_was_cut_short_and_the_next_goes_on() {
    let (fake, receiver, rig) = with_calls(3).await;
    unannounced_sessions(&fake, 5);
    rig.turn_on(json!({"reconcile": true})).await;
    // One list and two status lookups.
    let first = rig.pass_after(None).await;
    assert_eq!(first.api_calls, 3);
    assert_eq!(first.events_synthesized, 2);
    let cut = first.cut_short.clone().expect("cut short");
    assert!(cut.contains("3 API calls"), "{cut}");
    // The next pass skips what the last one synthesized.
    rig.pass_now().await;
    let second = rig.pass_after(first.finished_at).await;
    assert_eq!(second.events_synthesized, 2);
    rig.pass_now().await;
    let third = rig.pass_after(second.finished_at).await;
    assert_eq!(third.events_synthesized, 1);
    assert_eq!(third.cut_short, None);
    assert_eq!(receiver.wait_for(5, WITHIN).await.len(), 5);
}

#[tokio::test]
async fn sessions_older_than_the_lookback_stay_watched_until_gone_or_terminated() {
    let fake = FakeAnthropic::start(KEY).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let rig = connected(&fake, &receiver, Options::default()).await;
    rig.turn_on(json!({"reconcile": true, "reconcile_lookback_s": 3600}))
        .await;
    let first = rig.pass_after(None).await;
    assert_eq!(first.sessions_checked, 0);
    // Three sessions from three hours ago, running as their webhooks said.
    for id in ["sesn_old", "sesn_gone", "sesn_done"] {
        let mut session = switchyard_tests::fake_anthropic::session(id, "running", id);
        session["created_at"] = json!(minutes_ago(180));
        fake.put(&format!("/v1/sessions/{id}"), session);
        fake.set_status(id, "running", &minutes_ago(170));
        rig.send(&status_event(
            &format!("whe_{id}"),
            id,
            "session.status_run_started",
            &minutes_ago(170),
        ))
        .await;
    }
    receiver.wait_for(3, WITHIN).await;
    // One went idle unannounced, one was deleted, one terminated (and said so).
    let idled = minutes_ago(5);
    fake.set_status("sesn_old", "idle", &idled);
    fake.remove("/v1/sessions/sesn_gone");
    fake.set_status("sesn_done", "terminated", &minutes_ago(4));
    rig.send(&status_event(
        "whe_done_t",
        "sesn_done",
        "session.status_terminated",
        &minutes_ago(4),
    ))
    .await;
    receiver.wait_for(4, WITHIN).await;

    rig.pass_now().await;
    let second = rig.pass_after(first.finished_at).await;
    assert_eq!(second.error, None);
    // Listed: none (all older than the hour). Watched: the idle one and the gone one.
    assert_eq!(second.sessions_checked, 1);
    assert_eq!(second.events_synthesized, 1);
    assert_eq!(
        fake.requests_for("/v1/sessions/sesn_done"),
        0,
        "a terminated session is no longer asked about"
    );
    let received = receiver.wait_for(5, WITHIN).await;
    let synthesized = body_of(&received[4]);
    assert_eq!(synthesized["data"]["id"], "sesn_old");
    assert_eq!(synthesized["data"]["type"], "session.status_idled");
    assert_eq!(synthesized["created_at"], idled.as_str());

    // The gone session is no longer asked about either.
    let asked = fake.requests_for("/v1/sessions/sesn_gone");
    rig.pass_now().await;
    let third = rig.pass_after(second.finished_at).await;
    assert_eq!(third.events_synthesized, 0);
    assert_eq!(fake.requests_for("/v1/sessions/sesn_gone"), asked);
    let mut visitor = Visitor::member_of(&rig.app, "ops@example.com", "acme", "admin").await;
    visitor
        .get(&format!(
            "/t/acme/sources/{}",
            rig.source["id"].as_str().unwrap()
        ))
        .await
        .assert_contains("watching 1");
}

#[tokio::test]
async fn a_pass_out_of_calls_mid_list_resumes_at_that_page() {
    let (fake, receiver, rig) = with_calls(2).await;
    // Sixty sessions running; the first fifty (the first page) said so.
    let at = minutes_ago(80);
    for n in 0..60 {
        let id = format!("sesn_{n:03}");
        let mut session = switchyard_tests::fake_anthropic::session(&id, "running", &id);
        session["created_at"] = json!(minutes_ago(90));
        fake.put(&format!("/v1/sessions/{id}"), session);
        fake.set_status(&id, "running", &at);
        if n < 50 {
            rig.send(&status_event(
                &format!("whe_{n:03}"),
                &id,
                "session.status_run_started",
                &at,
            ))
            .await;
        }
    }
    receiver.wait_for(50, WITHIN).await;
    rig.turn_on(json!({"reconcile": true})).await;
    // Two calls: both pages, and nothing left to look the second page's sessions up.
    let first = rig.pass_after(None).await;
    assert_eq!((first.api_calls, first.events_synthesized), (2, 0));
    assert!(first.cut_short.is_some());
    // The next starts at the second page, and gets one of them synthesized.
    rig.pass_now().await;
    let second = rig.pass_after(first.finished_at).await;
    assert_eq!(second.events_synthesized, 1);
    let lists = list_queries(&fake);
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert!(!lists[0].contains("page="), "{lists:?}");
    assert!(lists[1].contains("page=page_50"), "{lists:?}");
    assert!(lists[2].contains("page=page_50"), "{lists:?}");
}

#[tokio::test]
async fn a_new_source_synthesizes_nothing_from_before_it_existed() {
    let fake = FakeAnthropic::start(KEY).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let rig = routed(&fake, &receiver, Options::default()).await;
    // Went idle half an hour before the source was made: never sent to it.
    idle_session(&fake, "sesn_before", 60, 30);
    rig.turn_on(json!({"reconcile": true})).await;
    let pass = rig.pass_after(None).await;
    assert_eq!((pass.sessions_checked, pass.events_synthesized), (1, 0));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn only_an_anthropic_source_reconciles_and_within_bounds() {
    let fake = FakeAnthropic::start(KEY).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let rig = connected(&fake, &receiver, Options::default()).await;
    rig.app
        .refused(
            "/api/v1/sources",
            json!({"name": "gh", "provider": "github", "secret": "s3cret", "reconcile": true}),
            "reconcile",
        )
        .await;
    rig.app
        .refused(
            "/api/v1/sources",
            json!({"name": "fast", "provider": "anthropic", "reconcile": true,
                   "reconcile_interval_s": 10}),
            "reconcile_interval_s",
        )
        .await;
    let path = format!("/api/v1/sources/{}", rig.source["id"].as_str().unwrap());
    let (status, body) = rig
        .app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"reconcile_lookback_s": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Another team cannot turn it on for this source.
    let other = rig.app.other_team_key("other").await;
    let answer = rig
        .app
        .client
        .patch(rig.app.url(&path))
        .bearer_auth(other)
        .json(&json!({"reconcile": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let (_, source) = rig.app.get(&path).await;
    assert_eq!(source["reconcile"], false);
}

#[tokio::test]
async fn a_member_cannot_turn_reconciliation_on_in_the_dashboard_but_an_admin_can() {
    let fake = FakeAnthropic::start(KEY).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let rig = connected(&fake, &receiver, Options::default()).await;
    let id = rig.source["id"].as_str().unwrap();
    let edit = format!("/t/acme/sources/{id}");
    let fields = [
        ("name", "anthropic"),
        ("provider", "anthropic"),
        ("reconcile", "on"),
        ("reconcile_interval_s", "600"),
    ];
    let mut member = Visitor::member_of(&rig.app, "dev@example.com", "acme", "member").await;
    member.get(&format!("{edit}/edit")).await;
    let refused = member.post(&edit, &fields).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.assert_contains("Only owners and admins can turn on reconciliation.");
    let (_, source) = rig.app.get(&format!("/api/v1/sources/{id}")).await;
    assert_eq!(source["reconcile"], false);

    let mut admin = Visitor::member_of(&rig.app, "ops@example.com", "acme", "admin").await;
    admin.get(&format!("{edit}/edit")).await;
    let saved = admin.submit(&edit, &fields).await;
    saved.assert_contains("every 600 s");
    let (_, source) = rig.app.get(&format!("/api/v1/sources/{id}")).await;
    assert_eq!(source["reconcile"], true);
    assert_eq!(source["reconcile_interval_s"], 600);
}
