//! The dashboard's destination pages, role enforcement across the configuration pages,
//! "send test", and forms showing every mistake at once, through real HTTP with a cookie
//! jar (sources are in `dashboard_sources` and `source_onboarding`, routes and recipes
//! in `dashboard_routes`). Each page is checked for its happy path, its validation
//! errors, role enforcement and other teams' ids.

use std::time::Duration;

use reqwest::StatusCode;
use switchyard_tests::{Receiver, Reply, TestApp, Visitor};

const SECRET: &str = "gh-webhook-secret";

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
    // Post/Redirect/Get: the secret is on the page the redirect leads to, once.
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let shown = page.location.clone().unwrap();
    assert!(shown.contains("?flash="), "{shown}");
    let page = v.get(&shown).await;
    page.assert_contains("Destination created.");
    page.assert_contains("Copy the signing secret now");
    let secret = page.input_value("signing-secret");
    let reloaded = v.get(&shown).await;
    assert_eq!(reloaded.status, StatusCode::OK);
    assert!(
        !reloaded.body.contains(&secret),
        "a reload shows it no more"
    );
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM destinations")
            .fetch_one(&app.pool)
            .await
            .unwrap(),
        1,
        "and creates nothing"
    );
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
async fn viewers_read_members_configure_and_other_teams_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    let (source_path, _) = ada.github_source(&team, SECRET).await;

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

    let sent = v.post(&format!("{path}/test"), &[]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let shown = sent.location.unwrap();
    let page = v.get(&shown).await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_contains("badge ok\">delivered</span>");
    page.assert_contains("HTTP 200");
    page.assert_contains("thanks");
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert!(got[0].headers.contains_key("webhook-signature"));
    assert!(String::from_utf8_lossy(&got[0].body).contains("switchyard.test"));
    // A reload of the result page sends nothing again.
    let reloaded = v.get(&shown).await;
    assert!(!reloaded.body.contains("Test result"), "{}", reloaded.body);
    assert_eq!(receiver.received().len(), 1);

    let page = v.submit(&format!("{path}/test"), &[]).await;
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
    let created = page.location.expect("created");
    let routine = created.split('?').next().unwrap();
    v.get(routine).await;
    let page = v.post(&format!("{routine}/test"), &[]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("a test fire starts a new Claude Code session");
    assert!(fake.received().is_empty());
    let page = v
        .submit(&format!("{routine}/test"), &[("confirm", "yes")])
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
    let created = page.location.expect("created");
    let email = created.split('?').next().unwrap();
    v.get(email).await;
    v.submit(&format!("{email}/test"), &[])
        .await
        .assert_contains("A test email is queued for ops@example.com.");
}

#[tokio::test]
async fn a_form_sent_back_with_errors_asks_for_the_typed_secret_again_and_never_shows_it() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    v.get(&format!("{team}/destinations/new?kind=routine"))
        .await;
    let token = "sk-ant-oat01-typed-token-0123456789";
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "routine"),
                ("name", "triage"),
                ("fire_url", "https://example.com/not-a-fire-url"),
                ("token", token),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("Enter it again: a secret you typed is never sent back to the page.");
    assert!(
        !page.body.contains(token),
        "the secret is not written into the page"
    );

    v.get(&format!("{team}/sources/new?provider=github")).await;
    let page = v
        .post(
            &format!("{team}/sources"),
            &[
                ("provider", "github"),
                ("name", " "),
                ("secret", "gh-typed-secret"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("Enter it again");
    assert!(!page.body.contains("gh-typed-secret"));
}

#[tokio::test]
async fn forms_show_every_mistake_at_once_and_change_nothing() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    let source_path = format!("{team}/sources/{}", source["id"].as_str().unwrap());

    // A field that does not parse and fields the rules refuse, in one answer.
    let page = v
        .post(
            &source_path,
            &[
                ("name", ""),
                ("body_limit", "lots"),
                ("dedup_pointer", "no-slash"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["name", "body_limit", "dedup_pointer"] {
        page.assert_contains(&format!("id=\"{field}-error\""));
    }
    let page = v
        .post(
            &format!("{team}/sources"),
            &[
                ("provider", "hmac"),
                ("name", ""),
                ("secret", "s3cret"),
                ("hmac_header", "X-Sig"),
                ("hmac_tolerance_seconds", "soon"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"name-error\"");
    page.assert_contains("The tolerance is a whole number of seconds.");

    let (dst,): (String,) = sqlx::query_as("SELECT id FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let dst_path = format!("{team}/destinations/{dst}");
    let page = v
        .post(
            &dst_path,
            &[
                ("name", ""),
                ("url", "not a url"),
                ("rate_per_minute", "fast"),
                ("headers", "no colon"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["name", "url", "rate_per_minute", "headers"] {
        page.assert_contains(&format!("id=\"{field}-error\""));
    }
    let page = v
        .post(
            &format!("{team}/destinations"),
            &[
                ("kind", "http"),
                ("name", ""),
                ("url", "ftp://example.com"),
                ("budget_per_day", "-1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["name", "url", "budget_per_day"] {
        page.assert_contains(&format!("id=\"{field}-error\""));
    }

    // A dry run writes nothing: not a row, not an audit line.
    let (sources, destinations, audited): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM destinations),
                (SELECT count(*) FROM audit_log WHERE action IN
                    ('source.create', 'source.update', 'destination.create', 'destination.update'))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((sources, destinations, audited), (1, 1, 2));
    v.get(&source_path).await.assert_contains(">api<");
}
