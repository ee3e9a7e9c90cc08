//! The dashboard's routes and recipes, through real HTTP with a cookie jar: a route's
//! live preview against the latest event, template errors by line, and recipes that make
//! their destination and route or prefill one.

use std::time::Duration;

use reqwest::StatusCode;
use switchyard_tests::{Receiver, Reply, TestApp, Visitor, sign};

const SECRET: &str = "gh-webhook-secret";

#[tokio::test]
async fn a_route_previews_the_latest_event_and_reports_template_errors_by_line() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    v.get(&format!("{team}/routes"))
        .await
        .assert_contains("No routes yet");
    let (source_path, ingest) = v.github_source(&team, SECRET).await;
    let source_id = source_path.rsplit('/').next().unwrap().to_owned();
    v.get(&format!("{team}/destinations/new?kind=http")).await;
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "http"),
                ("name", "app"),
                ("url", &receiver.url("/hook")),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let destination_id: String = sqlx::query_scalar("SELECT id FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let body = br#"{"action":"opened","issue":{"number":42,"title":"Crash on save"}}"#;
    assert_eq!(
        app.send_github_to(&ingest, SECRET, "issues", "g-1", body)
            .await
            .0,
        StatusCode::OK
    );

    let new = v
        .get(&format!(
            "{team}/routes/new?source_id={source_id}&destination_id={destination_id}"
        ))
        .await;
    new.assert_contains("With the latest matching event");
    let route = [
        ("name", "issues"),
        ("source_id", source_id.as_str()),
        ("destination_id", destination_id.as_str()),
        ("event_types", "issues.*"),
        ("filter", "payload.issue.number == 42"),
        (
            "template",
            "Issue #{{ payload.issue.number }}: {{ payload.issue.title }}",
        ),
    ];
    // The panel htmx swaps in as the form changes.
    let panel = v.post(&format!("{team}/routes/preview"), &route).await;
    assert_eq!(panel.status, StatusCode::OK);
    panel.assert_contains("Issue #42: Crash on save");
    let mut broken = route.to_vec();
    broken[5] = ("template", "line one\n{{ payload.issue.number");
    let page = v.post(&format!("{team}/routes"), &broken).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"template-error\"");
    page.assert_contains("line 2");

    let page = v.post(&format!("{team}/routes"), &route).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location.unwrap();
    let shown = v.get(&location).await;
    shown.assert_contains("Route created.");
    shown.assert_contains("Issue #42: Crash on save");
    let path = switchyard_tests::visitor::without_flash(&location);

    // The ingress learns of the new route moments after it commits: send until a
    // delivery is made.
    app.eventually(|| async {
        let guid = format!(
            "r-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        assert_eq!(
            app.send_github_to(&ingest, SECRET, "issues", &guid, body)
                .await
                .0,
            StatusCode::OK
        );
        let made: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (made > 0).then_some(())
    })
    .await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, b"Issue #42: Crash on save");

    // Edit, pause, delete.
    let mut edited = route.to_vec();
    edited[0] = ("name", "bugs");
    v.post(&path, &edited).await.assert_redirect(&path);
    v.post(&format!("{path}/paused"), &[("paused", "true")])
        .await
        .assert_redirect(&path);
    let list = v.get(&format!("{team}/routes")).await;
    list.assert_contains("bugs");
    list.assert_contains("paused");
    v.post(&format!("{path}/delete"), &[])
        .await
        .assert_redirect(&format!("{team}/routes"));
}

#[tokio::test]
async fn a_recipe_makes_its_destination_and_route_or_prefills_a_route() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    let cards = v.get(&format!("{team}/recipes")).await;
    cards.assert_contains("Email when a vault credential cannot refresh");
    let recipe = v
        .get(&format!("{team}/recipes/vault-refresh-failed-to-email"))
        .await;
    recipe.assert_contains("has no anthropic source");
    // An Anthropic source, then the recipe.
    let page = v
        .post(
            &format!("{team}/sources"),
            &[
                ("provider", "anthropic"),
                ("name", "agents"),
                ("secret", &sign::new_whsec()),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let source: String = sqlx::query_scalar("SELECT id FROM sources")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    v.get(&format!("{team}/recipes/vault-refresh-failed-to-email"))
        .await;
    let page = v
        .post(
            &format!("{team}/recipes/vault-refresh-failed-to-email"),
            &[("source_id", &source), ("name", "vault alerts"), ("to", "")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let route = v.get(page.location.as_deref().unwrap()).await;
    route.assert_contains("vault_credential.refresh_failed");

    // A GitHub recipe towards an existing destination pre-fills the route form.
    v.github_source(&team, SECRET).await;
    let page = v
        .get(&format!("{team}/routes/new?recipe=github-issue-to-routine"))
        .await;
    page.assert_contains("issues.opened");
    assert_eq!(
        v.get(&format!("{team}/recipes/no-such-recipe"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_route_that_no_longer_compiles_is_marked_broken_on_its_pages() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (mut v, team, _) = Visitor::wired(&app, SECRET, &receiver.url("/hook")).await;
    let route: String = sqlx::query_scalar(
        "UPDATE routes SET filter = 'payload.action ==' WHERE name = 'all' RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let list = v.get(&format!("{team}/routes")).await;
    list.assert_contains(r#"<span class="badge bad">broken</span>"#);
    let page = v.get(&format!("{team}/routes/{route}")).await;
    page.assert_contains("This route is broken: the route&#39;s filter no longer compiles");
}

#[tokio::test]
async fn a_preview_runs_on_a_picked_event_or_a_pasted_sample_and_says_why_not() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    for (guid, number) in [("g-old", 7), ("g-new", 8)] {
        let body = format!(r#"{{"action":"opened","issue":{{"number":{number}}}}}"#);
        let (status, _) = app
            .send_github(&source, SECRET, "issues", guid, body.as_bytes())
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (source_id, destination_id): (String, String) =
        sqlx::query_as("SELECT s.id, d.id FROM sources s, destinations d")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let old: String = sqlx::query_scalar("SELECT id FROM events WHERE dedup_key = 'g-old'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let route = |extra: &[(&'static str, &str)]| {
        let mut fields = vec![
            ("name", "issues".to_owned()),
            ("source_id", source_id.clone()),
            ("destination_id", destination_id.clone()),
            ("event_types", "issues.*".to_owned()),
            ("filter", "payload.issue.number == 7".to_owned()),
            ("template", "Issue #{{ payload.issue.number }}".to_owned()),
        ];
        fields.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        fields
    };
    let preview = format!("{team}/routes/preview");
    // The latest event does not pass the filter: said in words, and every recent event
    // can be picked.
    let panel = try_preview(&mut v, &preview, route(&[])).await;
    panel.assert_contains("doesn't match");
    panel.assert_contains("because the filter is false for this event");
    panel.assert_contains(&format!("<option value=\"{old}\""));
    let panel = try_preview(&mut v, &preview, route(&[("preview_event", &old)])).await;
    panel.assert_contains(&format!("With the event {old}."));
    panel.assert_contains("Issue #7");
    panel.assert_contains(&format!("<option value=\"{old}\" selected"));

    // A pasted sample, its type read as the source would read it.
    let sample = route(&[
        ("sample_headers", "X-GitHub-Event: issues\nX-Other: 1"),
        ("sample_body", r#"{"action":"opened","issue":{"number":7}}"#),
    ]);
    let panel = try_preview(&mut v, &preview, sample).await;
    panel.assert_contains("With the pasted sample.");
    panel.assert_contains("Issue #7");
    let wrong_type = route(&[
        ("sample_headers", "X-GitHub-Event: push"),
        ("sample_body", r#"{"issue":{"number":7}}"#),
    ]);
    let panel = try_preview(&mut v, &preview, wrong_type).await;
    panel.assert_contains("because the event type push matches none of issues.*");
    let panel = try_preview(&mut v, &preview, route(&[("sample_body", "{not json")])).await;
    panel.assert_contains("The pasted body is not JSON");
    let panel = try_preview(
        &mut v,
        &preview,
        route(&[("sample_headers", "no colon here"), ("sample_body", "{}")]),
    )
    .await;
    panel.assert_contains("Line 1 of the pasted headers is not Name: value.");
    // Only the source's own recent events can be picked: another team's (or another
    // source's) is ignored, and the latest matching event is used.
    let theirs = app.create_source("github", Some(SECRET)).await;
    app.send_github(
        &theirs,
        SECRET,
        "issues",
        "g-theirs",
        br#"{"issue":{"number":7}}"#,
    )
    .await;
    let their_event: String =
        sqlx::query_scalar("SELECT id FROM events WHERE dedup_key = 'g-theirs'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let panel = try_preview(&mut v, &preview, route(&[("preview_event", &their_event)])).await;
    panel.assert_contains("With the latest matching event");
    assert!(!panel.body.contains(&their_event), "{}", panel.body);
}

/// Posts the route form to the preview, as htmx does when it changes.
async fn try_preview(
    v: &mut Visitor,
    path: &str,
    fields: Vec<(&'static str, String)>,
) -> switchyard_tests::visitor::Page {
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = v.post(path, &refs).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page
}

#[tokio::test]
async fn a_destination_made_from_the_route_form_comes_back_chosen_with_the_form_kept() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    let (source_path, _) = v.github_source(&team, SECRET).await;
    let source_id = source_path.rsplit('/').next().unwrap().to_owned();
    let form = v.get(&format!("{team}/routes/new")).await;
    form.assert_contains("New destination…");
    let page = v
        .post(
            &format!("{team}/routes/new-destination"),
            &[
                ("name", "triage"),
                ("source_id", &source_id),
                ("event_types", "issues.*"),
                ("filter", "payload.issue.number == 1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let to = page.location.unwrap();
    assert!(
        to.starts_with(&format!("{team}/destinations/new?for_route=")),
        "{to}"
    );
    let draft = to.split("for_route=").nth(1).unwrap().to_owned();
    let page = v.get(&to).await;
    page.assert_contains(&format!("name=\"for_route\" value=\"{draft}\""));
    page.assert_contains(&format!("?kind=http&#38;for_route={draft}"));

    // A mistake keeps the way back.
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[("kind", "http"), ("name", "app"), ("for_route", &draft)],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains(&format!("name=\"for_route\" value=\"{draft}\""));
    let page = v
        .submit(
            &format!("{team}/destinations"),
            &[
                ("kind", "http"),
                ("name", "app"),
                ("url", &receiver.url("/hook")),
                ("for_route", &draft),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let destination: String = sqlx::query_scalar("SELECT id FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    page.assert_contains("Destination created. Its signing secret, shown this once: whsec_");
    page.assert_contains("value=\"triage\"");
    page.assert_contains("payload.issue.number == 1");
    page.assert_contains(&format!("<option value=\"{destination}\" selected>"));
    page.assert_contains(&format!("<option value=\"{source_id}\" selected>"));
}
