//! The dashboard's source pages, through real HTTP with a cookie jar: a source made in
//! the form takes webhooks and shows its events and rejections, the hmac scheme comes from
//! the form, and sources and destinations are edited in place keeping their secrets.

use std::time::Duration;

use reqwest::StatusCode;
use switchyard_tests::{Receiver, Reply, TestApp, Visitor};

const SECRET: &str = "gh-webhook-secret";

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
    app.send_github_to(url, secret, "issues", guid, body)
        .await
        .0
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

    let (path, ingest) = v.github_source(&team, SECRET).await;
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
async fn sources_and_destinations_are_edited_in_place_keeping_their_secrets() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    let (path, ingest) = v.github_source(&team, SECRET).await;

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
    let page = v.submit(&format!("{dst}/test"), &[]).await;
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

#[tokio::test]
async fn a_source_rule_fails_the_same_way_through_the_api_and_the_form() {
    // One rule, one place: the API's 422 and the form's message come from the same check.
    let app = TestApp::spawn().await;
    let (status, problem) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/sources",
            Some(serde_json::json!({
                "name": "tiny", "provider": "github", "secret": SECRET, "body_limit": 10
            })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "body_limit", "{problem}");
    let message = problem["errors"][0]["message"]
        .as_str()
        .expect("a message")
        .to_owned();
    assert!(message.starts_with("must be between 1024 and"), "{message}");

    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    let page = v
        .post(
            &format!("{team}/sources"),
            &[
                ("provider", "github"),
                ("name", "tiny"),
                ("secret", SECRET),
                ("body_limit", "10"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"body_limit-error\"");
    page.assert_contains(&format!("M{}.", &message[1..]));
    // Neither surface stored anything.
    let (_, sources) = app.get("/api/v1/sources").await;
    assert_eq!(
        sources["data"].as_array().map(Vec::len),
        Some(0),
        "{sources}"
    );
    v.get(&format!("{team}/sources"))
        .await
        .assert_contains("Add your first source");
}

#[tokio::test]
async fn a_destination_rule_fails_the_same_way_through_the_api_and_the_form() {
    // A URL that is not a routine's fire URL: refused by one check, whichever surface it
    // came through.
    let app = TestApp::spawn().await;
    let fire_url = "https://api.anthropic.com/v1/claude_code/routines/trig_01ABCDEF";
    let token = "sk-ant-oat01-abcdefghijklmnop";
    let (status, problem) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/destinations",
            Some(serde_json::json!({
                "name": "triage", "kind": "routine", "fire_url": fire_url, "token": token
            })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "fire_url", "{problem}");
    let message = problem["errors"][0]["message"]
        .as_str()
        .expect("a message")
        .to_owned();

    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "routine"),
                ("name", "triage"),
                ("fire_url", fire_url),
                ("token", token),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"fire_url-error\"");
    let mut sentence = message[..1].to_uppercase() + &message[1..];
    if !sentence.ends_with('.') {
        sentence.push('.');
    }
    page.assert_contains(&askama_escape(&sentence));
    let (_, destinations) = app.get("/api/v1/destinations").await;
    assert_eq!(
        destinations["data"].as_array().map(Vec::len),
        Some(0),
        "{destinations}"
    );
}

/// Text as an HTML page shows it.
fn askama_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}
