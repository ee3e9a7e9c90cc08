//! The events and deliveries logs in the dashboard: filters, pagination, an event's body
//! and headers, a delivery's attempts, and replay.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_tests::{FakeRoutines, Receiver, Reply, TestApp, Visitor};

const SECRET: &str = "gh-secret";

async fn post(app: &TestApp, source: &Value, event: &str, guid: &str, body: &[u8]) {
    let (status, answer) = app.send_github(source, SECRET, event, guid, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn events_filter_by_type_glob_dedup_key_and_delivery_status_and_page_back() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    post(
        &app,
        &source,
        "issues",
        "guid-issue",
        br#"{"action":"opened","issue":{"number":1}}"#,
    )
    .await;
    post(
        &app,
        &source,
        "push",
        "guid-push",
        br#"{"ref":"refs/heads/main"}"#,
    )
    .await;
    receiver.wait_for(2, Duration::from_secs(10)).await;

    let page = v.get(&format!("{team}/events")).await;
    page.assert_contains("issues.opened");
    page.assert_contains("guid-push");
    page.assert_contains("hx-trigger=\"every 5s\"");
    let page = v.get(&format!("{team}/events?event_type=issues.*")).await;
    page.assert_contains("guid-issue");
    assert!(!page.body.contains("guid-push"));
    let page = v.get(&format!("{team}/events?dedup_key=guid-push")).await;
    page.assert_contains("<code>push</code>");
    assert!(!page.body.contains("guid-issue"));
    // The receiver answered; the outcome is written just after.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = v
            .get(&format!("{team}/events?status=succeeded&event_type=push"))
            .await;
        if page.body.contains("guid-push") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The route filter language, run on each event as its routes see it.
    let page = v
        .get(&format!(
            "{team}/events?filter=payload.issue.number+%3D%3D+1"
        ))
        .await;
    page.assert_contains("guid-issue");
    assert!(!page.body.contains("guid-push"));
    let page = v
        .get(&format!(
            "{team}/events?filter=payload.ref+is+startingwith(%22refs/heads/%22)+and+headers%5B%22x-github-event%22%5D+%3D%3D+%22push%22"
        ))
        .await;
    page.assert_contains("guid-push");
    assert!(!page.body.contains("guid-issue"));
    let page = v
        .get(&format!(
            "{team}/events?filter=event_type+in+%5B%22push%22%5D"
        ))
        .await;
    page.assert_contains("guid-push");
    assert!(!page.body.contains("guid-issue"));
    // A mistake is shown with where it is, not answered "no events match".
    let page = v
        .get(&format!("{team}/events?filter=payload.issue.number+%3D+1"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_contains("The filter has a mistake");
    page.assert_contains("(line 1, column");
    page.assert_contains("Compare with ==");
    assert!(!page.body.contains("No events match"), "{}", page.body);
    let page = v
        .get(&format!("{team}/events?filter=payload.issue.number+%3D%3D"))
        .await;
    page.assert_contains("The filter has a mistake");
    assert!(!page.body.contains("Compare with =="), "{}", page.body);
    let page = v.get(&format!("{team}/events?status=failed")).await;
    page.assert_contains("No events match these filters");
    let page = v.get(&format!("{team}/events?since=yesterday")).await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_contains("is not a time such as");
    let page = v.get(&format!("{team}/events?status=lost")).await;
    page.assert_contains("is not a delivery status");

    // A retry of the issue event is answered duplicate and counted on the original.
    let (status, answer) = app
        .send_github(
            &source,
            SECRET,
            "issues",
            "guid-issue",
            br#"{"action":"opened","issue":{"number":1}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "duplicate");

    // The event page: pretty body, raw bytes, headers with credentials redacted.
    let id: String = sqlx::query_scalar("SELECT id FROM events WHERE dedup_key = 'guid-issue'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let page = v.get(&format!("{team}/events/{id}")).await;
    page.assert_contains("&#34;number&#34;: 1");
    page.assert_contains("x-github-delivery");
    page.assert_contains("badge ok\">succeeded</span>");
    page.assert_contains("<dt>Duplicates received</dt><dd>1, the last at");
    assert_eq!(
        v.get(&format!("{team}/events/evt_nope")).await.status,
        StatusCode::NOT_FOUND
    );

    // 55 more: the first page holds 50 and links to the rest.
    for n in 0..55 {
        post(&app, &source, "ping", &format!("p-{n}"), b"{}").await;
    }
    let page = v.get(&format!("{team}/events?event_type=ping")).await;
    let at = page
        .body
        .find("Older events")
        .expect("a link to older events");
    let href = &page.body[page.body[..at].rfind("href=\"").unwrap() + 6..];
    let href = &href[..href.find('"').unwrap()].replace("&#38;", "&");
    assert!(
        href.contains("event_type=ping") && href.contains("cursor=evt_"),
        "{href}"
    );
    let older = v.get(&format!("{team}/events{href}")).await;
    assert_eq!(older.body.matches("<code>p-").count(), 5, "{href}");
    assert!(
        !older.body.contains("hx-trigger"),
        "only the first page refreshes"
    );
}

#[tokio::test]
async fn a_failed_delivery_is_replayed_from_its_page_and_its_attempts_say_so() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(400).body("bad payload")]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    post(&app, &source, "issues", "g-1", br#"{"action":"opened"}"#).await;
    let id: String = app
        .eventually(|| async {
            sqlx::query_scalar("SELECT id FROM deliveries WHERE status = 'failed'")
                .fetch_optional(&app.pool)
                .await
                .unwrap()
        })
        .await;
    let list = v.get(&format!("{team}/deliveries?status=failed")).await;
    list.assert_contains("badge bad\">failed</span>");
    let path = format!("{team}/deliveries/{id}");
    let page = v.get(&path).await;
    page.assert_contains("bad payload");
    page.assert_contains(">Replay</button>");

    receiver.script(vec![Reply::status(200)]);
    v.post(&format!("{path}/replay"), &[])
        .await
        .assert_redirect(&path);
    let page = v.get_until(&path, "badge ok\">succeeded</span>").await;
    page.assert_contains("<span class=\"badge\">replay</span>");
    page.assert_contains("replayed 1 time(s)");
    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].headers["webhook-id"], format!("{id}_r1"));
    v.get(&format!("{team}/settings"))
        .await
        .assert_contains("delivery.replay");

    // A delivery still on its way (a retry due in an hour) cannot be replayed.
    sqlx::query(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = now() + interval '1 hour'
         WHERE id = $1",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    let page = v.post(&format!("{path}/replay"), &[]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn replaying_to_a_routine_asks_first() {
    let app = TestApp::spawn().await;
    let fake = FakeRoutines::start(
        "sk-ant-oat01-test-token-0123456789",
        vec![switchyard_tests::Answer::Fire],
    )
    .await;
    let fire_url = fake.fire_url("trig_01ABCDEF");
    let (mut v, team, source) = Visitor::wired_to(
        &app,
        SECRET,
        &[
            ("kind", "routine"),
            ("name", "triage"),
            ("fire_url", &fire_url),
            ("token", "sk-ant-oat01-test-token-0123456789"),
        ],
    )
    .await;
    post(&app, &source, "issues", "g-1", br#"{"action":"opened"}"#).await;
    let id: String = app
        .eventually(|| async {
            sqlx::query_scalar("SELECT id FROM deliveries WHERE status = 'succeeded'")
                .fetch_optional(&app.pool)
                .await
                .unwrap()
        })
        .await;
    let path = format!("{team}/deliveries/{id}");
    v.get(&path)
        .await
        .assert_contains("This starts a new Claude Code session");
    let page = v.post(&format!("{path}/replay"), &[]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fake.received().len(), 1, "nothing fired without the tick");
    v.post(&format!("{path}/replay"), &[("confirm", "yes")])
        .await
        .assert_redirect(&path);
    fake.wait_for(2, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn the_overview_counts_outcomes_draws_them_by_hour_and_lists_what_needs_attention() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200), Reply::status(400)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    post(&app, &source, "issues", "g-1", b"{}").await;
    post(&app, &source, "issues", "g-2", b"{}").await;
    let (status, _) = app
        .send_github(&source, "wrong", "issues", "g-3", b"{}")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.eventually(|| async {
        let settled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE status IN ('succeeded', 'failed')",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        (settled == 2).then_some(())
    })
    .await;

    let page = v.get_until(&team, "/sources/src_").await;
    page.assert_contains("<span class=\"muted\">Delivered</span><span class=\"stat\">1</span>");
    page.assert_contains("<span class=\"muted\">Failed</span><span class=\"stat\">1</span>");
    page.assert_contains("<rect class=\"ok\"");
    page.assert_contains("<rect class=\"bad\"");
    page.assert_contains("1 failed</title>");
    page.assert_contains("Failures in a row");
    // Nothing is waiting: the backlog is empty.
    page.assert_contains("<h2>Backlog now</h2>");
    page.assert_contains("<span class=\"muted\">Due now</span><span class=\"stat\">0</span>");
    let week = v.get(&format!("{team}?window=7d")).await;
    week.assert_contains("The last 7 days");
    week.assert_contains("Deliveries per 6 hours");
}

#[tokio::test]
async fn agent_sessions_read_in_the_order_things_happened_with_threads_nested() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    let whsec = switchyard_tests::sign::new_whsec();
    v.get(&format!("{team}/sources/new?provider=anthropic"))
        .await;
    v.post(
        &format!("{team}/sources"),
        &[
            ("provider", "anthropic"),
            ("name", "agents"),
            ("secret", &whsec),
        ],
    )
    .await;
    let token: String = sqlx::query_scalar("SELECT token FROM sources")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // Sent in the wrong order, as Anthropic may.
    let sent = [
        (
            "whe_3",
            "session.status_idled",
            None,
            "2026-11-27T10:00:03Z",
        ),
        (
            "whe_2",
            "session.thread_created",
            Some("sthr_01"),
            "2026-11-27T10:00:02Z",
        ),
        (
            "whe_1",
            "session.status_run_started",
            None,
            "2026-11-27T10:00:01Z",
        ),
    ];
    for (id, kind, thread, at) in sent {
        let mut data = json!({"type": kind, "id": "sesn_01STORY", "workspace_id": "wrkspc_01"});
        if let Some(thread) = thread {
            data["session_thread_id"] = thread.into();
        }
        let body = json!({"type": "event", "id": id, "created_at": at, "data": data}).to_string();
        let now = chrono::Utc::now().timestamp();
        let res = app
            .client
            .post(app.url(&format!("/hooks/{token}")))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header(
                "webhook-signature",
                switchyard_tests::sign::standard_webhooks(&whsec, id, now, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let page = v.get(&format!("{team}/sessions")).await;
    page.assert_contains("<code>sesn_01STORY</code>");
    page.assert_contains("badge warn\">idled</span>");
    let started = page.body.find("session.status_run_started").unwrap();
    let idled = page.body.find("session.status_idled").unwrap();
    let thread = page.body.find("Thread <code>sthr_01</code>").unwrap();
    assert!(started < idled, "by when it happened, not when it arrived");
    assert!(idled < thread, "threads follow the session's own events");
    assert!(page.body[thread..].contains("session.thread_created"));
}

#[tokio::test]
async fn an_event_re_runs_through_today_s_routes_as_new_deliveries() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/first")).await;
    post(&app, &source, "issues", "g-1", br#"{"action":"opened"}"#).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;

    // A second destination and route, added after the event arrived.
    v.post(
        &format!("{team}/destinations"),
        &[
            ("kind", "http"),
            ("name", "audit"),
            ("url", &receiver.url("/second")),
        ],
    )
    .await;
    let (src, dst): (String, String) =
        sqlx::query_as("SELECT s.id, d.id FROM sources s, destinations d WHERE d.name = 'audit'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    v.post(
        &format!("{team}/routes"),
        &[
            ("name", "audit trail"),
            ("source_id", &src),
            ("destination_id", &dst),
        ],
    )
    .await;
    let event: String = sqlx::query_scalar("SELECT id FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let path = format!("{team}/events/{event}");
    v.get(&path).await.assert_contains("Re-run through today");
    v.post(&format!("{path}/rerun"), &[])
        .await
        .assert_redirect(&path);
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/first", "/first", "/second"]);
    let page = v.get_until(&path, "audit").await;
    assert_eq!(
        page.body.matches("/deliveries/dlv_").count(),
        3,
        "history kept"
    );

    // Through the API too; another team's key finds no such event.
    let (status, _) = app
        .post(&format!("/api/v1/events/{event}/rerun"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let team_id: String = sqlx::query_scalar("SELECT id FROM teams WHERE slug = 'acme-two'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (_, key) =
        switchyard_domain::store::api_keys::create(&app.pool, &team_id.parse().unwrap(), "ci")
            .await
            .unwrap();
    let res = app
        .client
        .post(app.url(&format!("/api/v1/events/{event}/rerun")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["deliveries"].as_array().unwrap().len(), 2);
    receiver.wait_for(5, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_held_delivery_says_why_and_offers_to_resume_its_destination() {
    let app = TestApp::spawn().await;
    let mut furnished = switchyard_tests::furnished::furnish(&app).await;
    let team = furnished.team.clone();
    let dst = furnished.dst.clone();
    furnished
        .ada
        .post(
            &format!("{team}/destinations/{dst}/state"),
            &[("state", "paused")],
        )
        .await;
    let delivery = furnished.send_event(&app, "whe_held").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1")
            .bind(&delivery)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if status == "held" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = furnished
        .ada
        .get(&format!("{team}/deliveries/{delivery}"))
        .await;
    page.assert_contains("<strong>Held:</strong> inbox is paused.");
    page.assert_contains(&format!("action=\"{team}/destinations/{dst}/state\""));
    page.assert_contains("Resume inbox now");
}

#[tokio::test]
async fn a_filter_search_reads_a_bounded_number_of_events_per_page_and_reads_on() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    post(
        &app,
        &source,
        "issues",
        "guid-needle",
        br#"{"action":"opened","issue":{"number":7}}"#,
    )
    .await;
    // 3,000 newer events that do not match: more than one page reads.
    let source_id = source["id"].as_str().unwrap();
    let ids: Vec<String> = (0..3000)
        .map(|_| switchyard_domain::ids::EventId::generate().to_string())
        .collect();
    sqlx::query(
        "INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body, received_at)
         SELECT f.id, s.team_id, s.id, 'push', f.id, '{\"content-type\": \"application/json\"}',
                '{\"ref\": \"refs/heads/main\"}'::bytea, now()
         FROM unnest($1::text[]) AS f(id), sources s WHERE s.id = $2",
    )
    .bind(&ids)
    .bind(source_id)
    .execute(&app.pool)
    .await
    .unwrap();
    // The newest: a body too large to search, though it would match.
    let mut huge = br#"{"issue":{"number":7},"pad":""#.to_vec();
    huge.resize(300 * 1024, b'x');
    huge.extend_from_slice(br#""}"#);
    sqlx::query(
        "INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body, received_at)
         SELECT $1, s.team_id, s.id, 'issues', $1, '{\"content-type\": \"application/json\"}', $3, now()
         FROM sources s WHERE s.id = $2",
    )
    .bind(switchyard_domain::ids::EventId::generate().to_string())
    .bind(source_id)
    .bind(&huge)
    .execute(&app.pool)
    .await
    .unwrap();

    let page = v
        .get(&format!(
            "{team}/events?filter=payload.issue.number+%3D%3D+7"
        ))
        .await;
    page.assert_contains("Read 3000 events and none matched");
    page.assert_contains("a body larger than 256 KiB is not searched");
    assert!(!page.body.contains("guid-needle"), "{}", page.body);
    let next = page
        .body
        .split("href=\"?")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to older events")
        .replace("&#38;", "&");
    // The huge one and 2,999 of the 3,000 were read: the page goes on after the
    // second oldest.
    let mut sorted = ids.clone();
    sorted.sort();
    assert!(next.contains(&format!("cursor={}", sorted[1])), "{next}");
    let page = v.get(&format!("{team}/events?{next}")).await;
    page.assert_contains("guid-needle");
    assert!(!page.body.contains("Older events"), "{}", page.body);
}
