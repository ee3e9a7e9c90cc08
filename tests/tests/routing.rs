//! Routes end to end: filters evaluated at ingest, templates rendered per destination
//! kind, validation with line and column, fan-out.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_tests::{FakeSlack, Receiver, Reply, SlackAnswer, TestApp};

const SECRET: &str = "gh-secret";

async fn route(app: &TestApp, source: &Value, destination: &Value, extra: Value) -> Value {
    let mut body =
        json!({"name": "r", "source_id": source["id"], "destination_id": destination["id"]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.created("/api/v1/routes", body).await
}

async fn deliveries_of(app: &TestApp, answer: &Value) -> Vec<Value> {
    let (_, event) = app
        .get(&format!(
            "/api/v1/events/{}",
            answer["event_id"].as_str().unwrap()
        ))
        .await;
    event["deliveries"].as_array().unwrap().clone()
}

fn issue(action: &str, labels: &[&str]) -> Vec<u8> {
    let labels: Vec<Value> = labels.iter().map(|l| json!({"name": l})).collect();
    json!({"action": action, "issue": {"number": 42, "title": "Crash on save", "labels": labels},
           "repository": {"full_name": "acme/app"}})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_filter_decides_at_ingest_and_an_erroring_one_leaves_a_failed_delivery() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/hook")).await;
    route(
        &app,
        &source,
        &destination,
        json!({"filter": r#"payload.action == "opened" and "bug" in payload.issue.labels | map(attribute="name")"#}),
    )
    .await;
    let (_, bug) = app
        .send_github(&source, SECRET, "issues", "g-1", &issue("opened", &["bug"]))
        .await;
    let (_, chore) = app
        .send_github(
            &source,
            SECRET,
            "issues",
            "g-2",
            &issue("opened", &["chore"]),
        )
        .await;
    let (_, closed) = app
        .send_github(&source, SECRET, "issues", "g-3", &issue("closed", &["bug"]))
        .await;
    assert_eq!(deliveries_of(&app, &bug).await.len(), 1);
    assert!(deliveries_of(&app, &chore).await.is_empty());
    assert!(deliveries_of(&app, &closed).await.is_empty());
    receiver.wait_for(1, Duration::from_secs(10)).await;

    // A filter that errors on an event still makes its delivery, failed, saying why.
    let other = app.create_destination(&receiver.url("/other")).await;
    route(
        &app,
        &source,
        &other,
        json!({"filter": "payload.issue.number + \"x\""}),
    )
    .await;
    let (_, broken) = app
        .send_github(&source, SECRET, "issues", "g-4", &issue("labeled", &[]))
        .await;
    let deliveries = deliveries_of(&app, &broken).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["status"], "failed");
    assert!(
        deliveries[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("the route's filter failed"),
        "{deliveries:?}"
    );
}

#[tokio::test]
async fn templates_shape_what_each_kind_sends() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let slack = FakeSlack::start(vec![SlackAnswer::Ok]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let http = app.create_destination(&receiver.url("/hook")).await;
    route(
        &app,
        &source,
        &http,
        json!({"template": r#"{"repo": {{ payload.repository.full_name | tojson }}, "n": {{ payload.issue.number }}, "event": {{ event.id | tojson }}}"#}),
    )
    .await;
    let slack_destination = app
        .created(
            "/api/v1/destinations",
            json!({"name": "ops", "kind": "slack", "url": slack.webhook_url()}),
        )
        .await;
    route(
        &app,
        &source,
        &slack_destination,
        json!({"template": r#"{"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*{{ payload.issue.title }}* ({{ source.name }})"}}]}"#}),
    )
    .await;
    let (_, answer) = app
        .send_github(&source, SECRET, "issues", "g-1", &issue("opened", &[]))
        .await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!({"repo": "acme/app", "n": 42, "event": answer["event_id"]})
    );
    let posted = slack.wait_for(1, Duration::from_secs(10)).await;
    let payload: Value = serde_json::from_slice(&posted[0].body).unwrap();
    assert_eq!(
        payload["blocks"][0]["text"]["text"],
        "*Crash on save* (github)"
    );
}

#[tokio::test]
async fn a_template_that_fails_to_render_fails_its_delivery_with_the_reason() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/hook")).await;
    route(
        &app,
        &source,
        &destination,
        json!({"template": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"}),
    )
    .await;
    let id = app
        .send_issue(&source, SECRET, "g-1", &issue("opened", &[]))
        .await;
    let failed = app
        .wait_delivery(&id, Duration::from_secs(15), |d| d["status"] == "failed")
        .await;
    assert!(
        failed["last_error"].as_str().unwrap().contains("fuel"),
        "{failed:#}"
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn filters_and_templates_are_checked_when_saved_and_can_be_cleared() {
    let app = TestApp::spawn().await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination("http://127.0.0.1:9/hook").await;
    let base = json!({"name": "r", "source_id": source["id"], "destination_id": destination["id"]});
    for (field, value) in [
        ("filter", "payload.action =="),
        ("template", "line one\n{{ payload.x | }}"),
        ("subject", "{% if %}"),
    ] {
        let mut body = base.clone();
        body[field] = json!(value);
        let (status, problem) = app.post("/api/v1/routes", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field);
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("(line "),
            "{problem}"
        );
    }
    let created = route(
        &app,
        &source,
        &destination,
        json!({"filter": "true", "template": "{{ payload }}"}),
    )
    .await;
    let path = format!("/api/v1/routes/{}", created["id"].as_str().unwrap());
    let (status, changed) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"filter": null, "name": "renamed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed["filter"].is_null());
    assert_eq!(
        changed["template"], "{{ payload }}",
        "a PATCH keeps what it does not name"
    );
}

#[tokio::test]
async fn one_event_fans_out_to_every_matching_route_and_its_duplicate_to_none() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    for (path, types) in [
        ("/a", json!(["issues.*"])),
        ("/b", json!(["*"])),
        ("/c", json!(["issues.opened"])),
        ("/d", json!(["push"])),
    ] {
        let destination = app.create_destination(&receiver.url(path)).await;
        route(&app, &source, &destination, json!({"event_types": types})).await;
    }
    let paused_to = app.create_destination(&receiver.url("/paused")).await;
    route(&app, &source, &paused_to, json!({"paused": true})).await;
    let body = issue("opened", &[]);
    let (_, first) = app
        .send_github(&source, SECRET, "issues", "same", &body)
        .await;
    assert_eq!(
        deliveries_of(&app, &first).await.len(),
        3,
        "a, b and c; not push, not paused"
    );
    let (_, again) = app
        .send_github(&source, SECRET, "issues", "same", &body)
        .await;
    assert_eq!(again["status"], "duplicate");
    let mut paths: Vec<String> = receiver
        .wait_for(3, Duration::from_secs(10))
        .await
        .into_iter()
        .map(|r| r.path)
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "the duplicate made no deliveries"
    );
    paths.sort();
    assert_eq!(paths, ["/a", "/b", "/c"]);
}

#[tokio::test]
async fn a_recipe_wires_a_source_to_a_routine_with_its_template() {
    use switchyard_tests::{Answer, FakeRoutines};
    let app = TestApp::spawn().await;
    let (_, listed) = app.get("/api/v1/recipes").await;
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"github-issue-to-routine"), "{listed}");
    let vault = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "vault-refresh-failed-to-email")
        .unwrap();
    assert_eq!(vault["inputs"], json!(["to"]));

    let token = "sk-ant-oat01-recipe-token-0000000";
    let fake = FakeRoutines::start(token, vec![Answer::Fire]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let (status, applied) = app
        .post(
            "/api/v1/recipes/github-issue-to-routine",
            json!({"source_id": source["id"], "fire_url": fake.fire_url("trig_01RECIPE"), "token": token}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{applied}");
    assert_eq!(applied["destination"]["kind"], "routine");
    assert_eq!(applied["route"]["event_types"], json!(["issues.opened"]));

    let mut body: Value = serde_json::from_slice(&issue("opened", &["bug"])).unwrap();
    body["issue"]["user"] = json!({"login": "octocat"});
    body["issue"]["html_url"] = json!("https://github.com/acme/app/issues/42");
    app.send_issue(&source, SECRET, "g-1", body.to_string().as_bytes())
        .await;
    let got = fake.wait_for(1, Duration::from_secs(10)).await;
    let text = serde_json::from_slice::<Value>(&got[0].body).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("A new GitHub issue was opened in acme/app."),
        "{text}"
    );
    assert!(
        text.contains("#42: Crash on save\nAuthor: octocat\nLabels: bug"),
        "{text}"
    );
    assert!(
        text.ends_with("Triage this issue: label it, and propose a fix."),
        "{text}"
    );

    // A recipe for another sender's events, or none at all, is refused.
    let (status, problem) = app
        .post("/api/v1/recipes/stripe-dispute-to-routine", json!({"source_id": source["id"], "fire_url": fake.fire_url("trig_01X"), "token": token}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, _) = app
        .post(
            "/api/v1/recipes/no-such-recipe",
            json!({"source_id": source["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Bad destination input names its field, and nothing is half-created.
    let (status, problem) = app
        .post(
            "/api/v1/recipes/github-issue-to-routine",
            json!({"source_id": source["id"], "token": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (_, destinations) = app.get("/api/v1/destinations").await;
    assert_eq!(destinations["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_preview_shows_whether_a_route_matches_and_what_it_would_send() {
    let app = TestApp::spawn().await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination("http://127.0.0.1:9/hook").await;
    let saved = route(
        &app,
        &source,
        &destination,
        json!({"event_types": ["issues.*"], "filter": r#"payload.action == "opened""#,
               "template": "#{{ payload.issue.number }} {{ payload.issue.title }} ({{ source.name }})"}),
    )
    .await;
    let path = format!("/api/v1/routes/{}/preview", saved["id"].as_str().unwrap());
    // Against a stored event.
    let (_, answer) = app
        .send_github(&source, SECRET, "issues", "g-1", &issue("opened", &[]))
        .await;
    let (status, preview) = app
        .post(&path, json!({"event_id": answer["event_id"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview,
        json!({"matched": true, "reason": null, "output": "#42 Crash on save (github)",
               "subject": null, "error": null})
    );
    // Against pasted samples: a type the route does not take, a filter that says no.
    let sample = serde_json::from_slice::<Value>(&issue("closed", &[])).unwrap();
    let (_, preview) = app
        .post(&path, json!({"payload": sample, "event_type": "push"}))
        .await;
    assert_eq!(preview["matched"], false);
    assert_eq!(
        preview["reason"],
        "the event type push matches none of issues.*"
    );
    let (_, preview) = app
        .post(
            &path,
            json!({"payload": sample, "event_type": "issues.closed"}),
        )
        .await;
    assert_eq!(preview["reason"], "the filter is false for this event");
    let (status, _) = app.post(&path, json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a sample is needed"
    );

    // An unsaved route to an email destination: its subject, and a template error.
    let email = app
        .created(
            "/api/v1/destinations",
            json!({"name": "e", "kind": "email", "to": ["a@b.test"]}),
        )
        .await;
    let (status, preview) = app
        .post(
            "/api/v1/routes/preview",
            json!({"source_id": source["id"], "destination_id": email["id"],
                   "subject": "Issue {{ payload.issue.number }}", "payload": sample,
                   "event_type": "issues.closed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["subject"], "Issue 42");
    assert!(
        preview["output"]
            .as_str()
            .unwrap()
            .starts_with("issues.closed from github (")
    );
    let (_, preview) = app
        .post(
            "/api/v1/routes/preview",
            json!({"source_id": source["id"], "destination_id": email["id"],
                   "template": "{{ payload.issue.number + 'x' }}", "payload": sample}),
        )
        .await;
    assert_eq!(preview["matched"], true);
    assert!(
        preview["error"]
            .as_str()
            .unwrap()
            .starts_with("the route's template failed"),
        "{preview}"
    );
}

#[tokio::test]
async fn a_stored_route_that_no_longer_compiles_shows_as_broken_and_fails_its_events_loudly() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/hook")).await;
    let created = route(
        &app,
        &source,
        &destination,
        json!({"event_types": ["issues.*"]}),
    )
    .await;
    assert_eq!(created["broken"], Value::Null, "{created}");
    let path = format!("/api/v1/routes/{}", created["id"].as_str().unwrap());
    // What a release with stricter patterns finds stored: it cannot be matched as written.
    sqlx::query("UPDATE routes SET event_types = '{\"issues .*\"}' WHERE id = $1")
        .bind(created["id"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();

    let (status, shown) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    let why = shown["broken"]
        .as_str()
        .expect("the route says it is broken");
    assert!(
        why.starts_with("the route's event types no longer compile"),
        "{why}"
    );
    let (_, listed) = app.get("/api/v1/routes").await;
    assert_eq!(listed["data"][0]["broken"], why, "{listed}");

    // Its events are not dropped: each gets a failed delivery saying why (the ingest
    // cache hears of the change and reloads the route).
    let sends = std::sync::atomic::AtomicU32::new(0);
    let (_, answer) = app
        .eventually(|| async {
            let n = sends.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let guid = format!("g-{n}");
            let sent = app
                .send_github(&source, SECRET, "issues", &guid, &issue("opened", &[]))
                .await;
            let deliveries = deliveries_of(&app, &sent.1).await;
            (deliveries.first()?["last_error"].as_str() == Some(why)).then_some(sent)
        })
        .await;
    let failed = deliveries_of(&app, &answer).await;
    assert_eq!(failed[0]["status"], "failed", "{failed:?}");
    let event = answer["event_id"].as_str().unwrap();
    let (_, preview) = app
        .post(&format!("{path}/preview"), json!({"event_id": event}))
        .await;
    assert_eq!(preview["error"], why, "{preview}");

    // Mended, the event runs again and is delivered.
    let (status, mended) = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"event_types": ["issues.*"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mended}");
    assert_eq!(mended["broken"], Value::Null);
    let (status, rerun) = app
        .post(&format!("/api/v1/events/{event}/rerun"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{rerun}");
    assert_eq!(rerun["deliveries"][0]["last_error"], Value::Null, "{rerun}");
    receiver.wait_for(1, Duration::from_secs(10)).await;
}
