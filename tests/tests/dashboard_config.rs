//! The dashboard's configuration pages: sources, destinations, routes and recipes, through
//! real HTTP with a cookie jar. Each page is checked for its happy path, its validation
//! errors, role enforcement and other teams' ids.

use std::time::Duration;

use reqwest::StatusCode;
use switchyard_tests::{Receiver, Reply, TestApp, Visitor, sign};

const SECRET: &str = "gh-webhook-secret";

/// The `value` of the input with this id.
fn input_value(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let v = rest.find("value=\"").expect("a value") + "value=\"".len();
    rest[v..v + rest[v..].find('"').unwrap()].to_owned()
}

/// Creates a GitHub source through the form; its page path and ingest URL.
async fn github_source(v: &mut Visitor, team: &str) -> (String, String) {
    v.get(&format!("{team}/sources/new?provider=github")).await;
    let page = v
        .post(
            &format!("{team}/sources"),
            &[
                ("provider", "github"),
                ("name", "acme/api"),
                ("secret", SECRET),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let path = page.location.unwrap();
    let page = v.get(&path).await;
    (path, input_value(&page.body, "ingest-url"))
}

/// Posts signed requests (each a new delivery) until one gets `expected`: the ingress
/// caches sources and learns of a change moments after it commits.
async fn until_answered(app: &TestApp, url: &str, secret: &str, body: &[u8], expected: StatusCode) {
    app.eventually(|| async {
        let guid = format!(
            "u-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        (post_github(app, url, secret, &guid, body).await == expected).then_some(())
    })
    .await;
}

async fn post_github(
    app: &TestApp,
    url: &str,
    secret: &str,
    guid: &str,
    body: &[u8],
) -> StatusCode {
    app.client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", guid)
        .header("x-hub-signature-256", sign::github(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_github_source_made_in_the_form_takes_webhooks_and_shows_events_and_rejections() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    v.get(&format!("{team}/sources"))
        .await
        .assert_contains("Add your first source");

    let form = v.get(&format!("{team}/sources/new?provider=github")).await;
    form.assert_contains("Webhook secret");
    form.assert_contains("legacy sha1");
    // Missing secret: said next to the field, the name kept.
    let page = v
        .post(
            &format!("{team}/sources"),
            &[("provider", "github"), ("name", "acme/api")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"secret-error\"");
    page.assert_contains("The github provider needs the sender&#39;s signing secret.");
    page.assert_contains("value=\"acme/api\"");
    let page = v
        .post(
            &format!("{team}/sources"),
            &[("provider", "nonsense"), ("name", "x"), ("secret", "s")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("Choose a provider from the list.");

    let (path, ingest) = github_source(&mut v, &team).await;
    assert!(ingest.starts_with(&app.url("/hooks/")), "{ingest}");
    let page = v.get(&path).await;
    page.assert_contains("Settings → Webhooks → Add webhook");
    page.assert_contains("No events yet");

    let body = br#"{"action":"opened","issue":{"number":7}}"#;
    assert_eq!(
        post_github(&app, &ingest, SECRET, "g-1", body).await,
        StatusCode::OK
    );
    assert_eq!(
        post_github(&app, &ingest, "wrong", "g-2", body).await,
        StatusCode::UNAUTHORIZED
    );
    // The rejection log is written off the request path.
    let page = v.get_until(&path, "no signature matched").await;
    page.assert_contains("<code>issues.opened</code>");
    page.assert_contains("<code>g-1</code>");
    let list = v.get(&format!("{team}/sources")).await;
    list.assert_contains("acme/api");
    list.assert_contains("<td class=\"num\">1</td>");

    // Rotation: a second secret verifies too; then the first is retired.
    let id = path.rsplit('/').next().unwrap().to_owned();
    v.post(&format!("{path}/secrets"), &[("secret", "the-new-secret")])
        .await
        .assert_redirect(&format!("{path}#secrets"));
    // The ingress's source cache is emptied by the change, moments later.
    until_answered(&app, &ingest, "the-new-secret", body, StatusCode::OK).await;
    let old: String = sqlx::query_scalar(
        "SELECT id FROM source_secrets WHERE source_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    v.post(&format!("{path}/secrets/{old}/retire"), &[])
        .await
        .assert_redirect(&format!("{path}#secrets"));
    until_answered(&app, &ingest, SECRET, body, StatusCode::UNAUTHORIZED).await;
    // The last secret cannot go.
    let last: String = sqlx::query_scalar("SELECT id FROM source_secrets WHERE source_id = $1")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let page = v.post(&format!("{path}/secrets/{last}/retire"), &[]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);

    v.get(&format!("{team}/settings"))
        .await
        .assert_contains("source.secret.retire");
    v.post(&format!("{path}/delete"), &[])
        .await
        .assert_redirect(&format!("{team}/sources"));
    assert_eq!(v.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_hmac_source_takes_its_scheme_from_the_form() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    v.get(&format!("{team}/sources/new?provider=hmac"))
        .await
        .assert_contains("How the sender signs");
    let mut fields = vec![
        ("provider", "hmac"),
        ("name", "billing"),
        ("secret", "s3cret"),
        ("hmac_header", "X-Signature"),
        ("hmac_algorithm", "sha256"),
        ("hmac_encoding", "hex"),
        ("hmac_prefix", "sha256="),
        ("hmac_tolerance_seconds", "soon"),
    ];
    let page = v.post(&format!("{team}/sources"), &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("The tolerance is a whole number of seconds.");
    fields.pop();
    let page = v.post(&format!("{team}/sources"), &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let settings: serde_json::Value =
        sqlx::query_scalar("SELECT settings FROM sources WHERE name = 'billing'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(settings["hmac"]["header"], "X-Signature");
    assert_eq!(settings["hmac"]["prefix"], "sha256=");
}

#[tokio::test]
async fn an_http_destination_shows_its_signing_secret_once_and_pauses_and_resumes() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    v.get(&format!("{team}/destinations"))
        .await
        .assert_contains("No destinations yet");
    v.get(&format!("{team}/destinations/new?kind=http")).await;
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "http"),
                ("name", "app"),
                ("url", "ftp://example.com"),
                ("headers", "no colon here"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("is not Name: value.");
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "http"),
                ("name", "app"),
                ("url", "ftp://example.com"),
                ("method", "POST"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"url-error\"");

    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "http"),
                ("name", "app"),
                ("url", "http://127.0.0.1:9/hook"),
                ("method", "PUT"),
                ("headers", "X-Env: prod"),
                ("auth_type", "bearer"),
                ("auth_token", "tok-123"),
                ("rate_per_minute", "120"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    page.assert_contains("Copy the signing secret now");
    let secret = input_value(&page.body, "signing-secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(
        !page.body.contains("tok-123"),
        "credentials are never shown"
    );
    let id: String = sqlx::query_scalar("SELECT id FROM destinations WHERE name = 'app'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let path = format!("{team}/destinations/{id}");
    let page = v.get(&path).await;
    assert!(!page.body.contains(&secret), "shown once");
    page.assert_contains("<dd>x-env</dd>");
    page.assert_contains("PUT");

    v.post(&format!("{path}/state"), &[("state", "paused")])
        .await
        .assert_redirect(&path);
    v.get(&path).await.assert_contains("badge \">paused</span>");
    v.post(&format!("{path}/state"), &[("state", "active")])
        .await
        .assert_redirect(&path);
    v.get(&path)
        .await
        .assert_contains("badge ok\">active</span>");
    let page = v.post(&format!("{path}/state"), &[("state", "gone")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    v.get(&format!("{team}/settings"))
        .await
        .assert_contains("destination.pause");
}

#[tokio::test]
async fn routine_slack_and_email_destinations_validate_their_own_fields() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    v.get(&format!("{team}/destinations/new?kind=routine"))
        .await;
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "routine"),
                ("name", "triage"),
                (
                    "fire_url",
                    "https://api.anthropic.com/v1/claude_code/routines/trig_01/fire",
                ),
                ("token", "not-a-token"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"token-error\"");
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "slack"),
                ("name", "ops"),
                (
                    "url",
                    "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                ),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = v.get(page.location.as_deref().unwrap()).await;
    assert!(
        !page.body.contains("XXXXSECRET"),
        "the Slack URL is a credential"
    );
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[("kind", "email"), ("name", "alerts"), ("to", "")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    v.get(page.location.as_deref().unwrap())
        .await
        .assert_contains("the team's owners and admins");
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "email"),
                ("name", "alerts"),
                ("to", "not an address"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_route_previews_the_latest_event_and_reports_template_errors_by_line() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    v.get(&format!("{team}/routes"))
        .await
        .assert_contains("No routes yet");
    let (source_path, ingest) = github_source(&mut v, &team).await;
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
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let destination_id: String = sqlx::query_scalar("SELECT id FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let body = br#"{"action":"opened","issue":{"number":42,"title":"Crash on save"}}"#;
    assert_eq!(
        post_github(&app, &ingest, SECRET, "g-1", body).await,
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
    let path = page.location.unwrap();
    v.get(&path)
        .await
        .assert_contains("Issue #42: Crash on save");

    // The ingress learns of the new route moments after it commits: send until a
    // delivery is made.
    app.eventually(|| async {
        let guid = format!(
            "r-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        assert_eq!(
            post_github(&app, &ingest, SECRET, &guid, body).await,
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
    github_source(&mut v, &team).await;
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
async fn viewers_read_members_configure_and_other_teams_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    let (source_path, _) = github_source(&mut ada, &team).await;

    // The API's team (acme) has its own source; its id under Ada's team is a 404.
    let other = app.create_source("github", Some("x")).await;
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(
        ada.get(&format!("{team}/sources/{other_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let page = ada
        .post(&format!("{team}/sources/{other_id}/delete"), &[])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&format!("/api/v1/sources/{other_id}")).await;
    assert_eq!(status, StatusCode::OK, "still there");
    let dst = app.create_destination("http://127.0.0.1:9/x").await;
    let dst_id = dst["id"].as_str().unwrap();
    let page = ada
        .post(
            &format!("{team}/destinations/{dst_id}/state"),
            &[("state", "paused")],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(
        ada.get(&format!("{team}/destinations/{dst_id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A viewer sees the pages but not the buttons, and posts are refused.
    let mut bob = Visitor::new(&app);
    bob.sign_up("bob@example.com", "Bob's").await;
    let (team_id, bob_id): (String, String) = sqlx::query_as(
        "SELECT t.id, u.id FROM teams t, users u WHERE t.slug = 'acme-two' AND u.email = 'bob@example.com'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, 'viewer')")
        .bind(&team_id)
        .bind(&bob_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let page = bob.get(&format!("{team}/sources")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("New source"));
    assert_eq!(bob.get(&source_path).await.status, StatusCode::OK);
    for path in [
        "sources/new",
        "destinations/new",
        "routes/new",
        "recipes/github-issue-to-routine",
    ] {
        assert_eq!(
            bob.get(&format!("{team}/{path}")).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let page = bob
        .post(
            &format!("{team}/sources"),
            &[("provider", "none"), ("name", "sneaky")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = bob.post(&format!("{source_path}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    // Signed out: every page asks for a log in; a forged form is refused first.
    let mut stranger = Visitor::new(&app);
    for path in ["sources", "destinations", "routes", "recipes"] {
        let page = stranger.get(&format!("{team}/{path}")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
    }
    let page = ada
        .post_raw(
            &format!("{team}/sources"),
            &[("provider", "none"), ("name", "forged")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn send_test_delivers_a_sample_and_shows_the_answer() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![
        Reply::status(200).body("thanks"),
        Reply::status(503).body("down for maintenance"),
    ])
    .await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    v.get(&format!("{team}/destinations/new?kind=http")).await;
    v.post(
        &format!("{team}/destinations"),
        &[
            ("kind", "http"),
            ("name", "app"),
            ("url", &receiver.url("/in")),
        ],
    )
    .await;
    let id: String = sqlx::query_scalar("SELECT id FROM destinations WHERE name = 'app'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let path = format!("{team}/destinations/{id}");
    v.get(&path).await.assert_contains("Send a test");

    let page = v.post(&format!("{path}/test"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_contains("badge ok\">delivered</span>");
    page.assert_contains("HTTP 200");
    page.assert_contains("thanks");
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert!(got[0].headers.contains_key("webhook-signature"));
    assert!(String::from_utf8_lossy(&got[0].body).contains("switchyard.test"));

    let page = v.post(&format!("{path}/test"), &[]).await;
    page.assert_contains("badge bad\">failed</span>");
    page.assert_contains("HTTP 503");
    page.assert_contains("down for maintenance");
    // A test is not a delivery.
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(deliveries, 0);

    // A routine test fires only once the person ticks the box.
    let fake = switchyard_tests::FakeRoutines::start(
        "sk-ant-oat01-test-token-0123456789",
        vec![switchyard_tests::Answer::Fire],
    )
    .await;
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "routine"),
                ("name", "triage"),
                ("fire_url", &fake.fire_url("trig_01ABCDEF")),
                ("token", "sk-ant-oat01-test-token-0123456789"),
            ],
        )
        .await;
    let routine = page.location.expect("created");
    v.get(&routine).await;
    let page = v.post(&format!("{routine}/test"), &[]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("a test fire starts a new Claude Code session");
    assert!(fake.received().is_empty());
    let page = v
        .post(&format!("{routine}/test"), &[("confirm", "yes")])
        .await;
    page.assert_contains("delivered");
    page.assert_contains("Claude session:");
    assert_eq!(fake.received().len(), 1);

    // An email test is queued like any account email (SMTP is not configured here).
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "email"),
                ("name", "inbox"),
                ("to", "ops@example.com"),
            ],
        )
        .await;
    let email = page.location.expect("created");
    v.get(&email).await;
    v.post(&format!("{email}/test"), &[])
        .await
        .assert_contains("A test email is queued for ops@example.com.");
}

#[tokio::test]
async fn sources_and_destinations_are_edited_in_place_keeping_their_secrets() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    let (path, ingest) = github_source(&mut v, &team).await;

    let edit = v.get(&format!("{path}/edit")).await;
    edit.assert_contains("value=\"acme/api\"");
    assert!(
        !edit.body.contains("id=\"secret\""),
        "secrets rotate, not edit"
    );
    let page = v
        .post(
            &path,
            &[
                ("name", "acme/web"),
                ("dedup_pointer", "no-slash"),
                ("body_limit", "2048"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"dedup_pointer-error\"");
    v.post(
        &path,
        &[
            ("name", "acme/web"),
            ("event_type_pointer", "/action"),
            ("body_limit", "2048"),
        ],
    )
    .await
    .assert_redirect(&path);
    let page = v.get(&path).await;
    page.assert_contains("acme/web");
    page.assert_contains("<code>/action</code>");
    page.assert_contains("2048 bytes");
    // The secret still verifies, and (once the ingress's cache has the change) the
    // override names the type.
    let body = br#"{"action":"opened"}"#;
    app.eventually(|| async {
        let guid = format!(
            "g-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        assert_eq!(
            post_github(&app, &ingest, SECRET, &guid, body).await,
            StatusCode::OK
        );
        let typed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'opened'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        (typed > 0).then_some(())
    })
    .await;
    v.get(&path).await.assert_contains("<code>opened</code>");
    // An emptied override is cleared.
    v.post(&path, &[("name", "acme/web"), ("body_limit", "2048")])
        .await
        .assert_redirect(&path);
    assert!(!v.get(&path).await.body.contains("<code>/action</code>"));

    v.get(&format!("{team}/destinations/new?kind=http")).await;
    v.post(
        &format!("{team}/destinations"),
        &[
            ("kind", "http"),
            ("name", "app"),
            ("url", "http://127.0.0.1:9/old"),
            ("headers", "X-Env: prod"),
            ("auth_type", "bearer"),
            ("auth_token", "tok-123"),
            ("rate_per_minute", "30"),
        ],
    )
    .await;
    let id: String = sqlx::query_scalar("SELECT id FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let dst = format!("{team}/destinations/{id}");
    let edit = v.get(&format!("{dst}/edit")).await;
    edit.assert_contains("Now sent: x-env.");
    edit.assert_contains("value=\"30\"");
    assert!(!edit.body.contains("tok-123"));
    // New URL and name; headers and auth kept; the rate limit emptied away.
    v.post(
        &dst,
        &[
            ("name", "app v2"),
            ("url", &receiver.url("/new")),
            ("method", "POST"),
            ("auth_type", "keep"),
        ],
    )
    .await
    .assert_redirect(&dst);
    let page = v.get(&dst).await;
    page.assert_contains("app v2");
    page.assert_contains("<dd>x-env</dd>");
    assert!(!page.body.contains("Per minute"));
    let page = v.post(&format!("{dst}/test"), &[]).await;
    page.assert_contains("delivered");
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].path, "/new");
    assert_eq!(got[0].headers["x-env"], "prod");
    assert_eq!(got[0].headers["authorization"], "Bearer tok-123");

    let page = v
        .post(
            &dst,
            &[
                ("name", "app v2"),
                ("url", "ftp://nope"),
                ("auth_type", "keep"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"url-error\"");
    page.assert_contains("value=\"ftp://nope\"");
}
