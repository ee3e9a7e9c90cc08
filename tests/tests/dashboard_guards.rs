//! Every dashboard handler, checked the same four ways: signed out it asks for a log in,
//! a member of another team gets 404 (the team and its objects do not exist for them),
//! a form without the session's CSRF token gets 403, and the team's own owner gets in.

use reqwest::StatusCode;
use switchyard_tests::{TestApp, Visitor, sign};

async fn one(pool: &sqlx::PgPool, sql: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_team_page_and_form_is_guarded() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    ada.get(&format!("{team}/sources/new")).await;
    let whsec = sign::new_whsec();
    let page = ada
        .post(
            &format!("{team}/sources"),
            &[
                ("provider", "anthropic"),
                ("name", "agents"),
                ("secret", &whsec),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    ada.post(
        &format!("{team}/destinations"),
        &[
            ("kind", "email"),
            ("name", "inbox"),
            ("to", "ops@example.com"),
        ],
    )
    .await;
    let src = one(
        &app.pool,
        "SELECT s.id FROM sources s JOIN teams t ON t.id = s.team_id WHERE t.slug = 'acme-two'",
    )
    .await;
    let dst = one(&app.pool, "SELECT d.id FROM destinations d JOIN teams t ON t.id = d.team_id WHERE t.slug = 'acme-two'").await;
    ada.post(
        &format!("{team}/routes"),
        &[
            ("name", "all"),
            ("source_id", &src),
            ("destination_id", &dst),
        ],
    )
    .await;
    ada.get(&format!("{team}/settings")).await;
    ada.post(&format!("{team}/api-keys"), &[("key_name", "ci")])
        .await;
    ada.post(
        &format!("{team}/invitations"),
        &[
            ("invite_email", "carol@example.com"),
            ("invite_role", "member"),
        ],
    )
    .await;
    // One event, hence one delivery, and one (empty) bulk replay.
    let token = one(&app.pool, "SELECT token FROM sources").await;
    let body =
        br#"{"type":"event","id":"whe_1","data":{"type":"session.status_idled","id":"sesn_1"}}"#;
    let now = chrono::Utc::now().timestamp();
    let res = app
        .client
        .post(app.url(&format!("/hooks/{token}")))
        .header("content-type", "application/json")
        .header("webhook-id", "whe_1")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            sign::standard_webhooks(&whsec, "whe_1", now, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    ada.get(&format!("{team}/deliveries")).await;
    ada.post(
        &format!("{team}/replays"),
        &[
            ("status", "failed"),
            ("destination", ""),
            ("since", ""),
            ("until", ""),
        ],
    )
    .await;
    let rte = one(&app.pool, "SELECT id FROM routes").await;
    let evt = one(&app.pool, "SELECT id FROM events").await;
    let dlv = one(&app.pool, "SELECT id FROM deliveries").await;
    let rpl = one(&app.pool, "SELECT id FROM replays").await;
    let sec = one(
        &app.pool,
        &format!("SELECT id FROM source_secrets WHERE source_id = '{src}'"),
    )
    .await;
    let usr = one(
        &app.pool,
        "SELECT id FROM users WHERE email = 'ada@example.com'",
    )
    .await;
    let inv = one(&app.pool, "SELECT id FROM invitations").await;
    let key = one(
        &app.pool,
        "SELECT k.id FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE t.slug = 'acme-two'",
    )
    .await;

    let pages = [
        String::new(),
        "/sources".into(),
        "/sources/new".into(),
        format!("/sources/{src}"),
        format!("/sources/{src}/edit"),
        "/destinations".into(),
        "/destinations/new".into(),
        format!("/destinations/{dst}"),
        format!("/destinations/{dst}/edit"),
        "/routes".into(),
        "/routes/new".into(),
        format!("/routes/{rte}"),
        "/recipes".into(),
        "/recipes/vault-refresh-failed-to-email".into(),
        "/events".into(),
        format!("/events/{evt}"),
        "/deliveries".into(),
        format!("/deliveries/{dlv}"),
        "/sessions".into(),
        "/replays".into(),
        "/replays/new?status=failed".into(),
        format!("/replays/{rpl}"),
        "/settings".into(),
    ];
    let forms = [
        "/sources".to_owned(),
        format!("/sources/{src}"),
        format!("/sources/{src}/secrets"),
        format!("/sources/{src}/secrets/{sec}/retire"),
        format!("/sources/{src}/delete"),
        "/destinations".into(),
        format!("/destinations/{dst}"),
        format!("/destinations/{dst}/state"),
        format!("/destinations/{dst}/test"),
        format!("/destinations/{dst}/delete"),
        "/routes".into(),
        "/routes/preview".into(),
        format!("/routes/{rte}"),
        format!("/routes/{rte}/paused"),
        format!("/routes/{rte}/delete"),
        "/recipes/vault-refresh-failed-to-email".into(),
        format!("/members/{usr}"),
        "/invitations".into(),
        format!("/invitations/{inv}/revoke"),
        "/api-keys".into(),
        format!("/api-keys/{key}/revoke"),
        format!("/deliveries/{dlv}/replay"),
        format!("/events/{evt}/rerun"),
        "/replays".into(),
        format!("/replays/{rpl}/cancel"),
        "/delete".into(),
    ];

    for page in &pages {
        let path = format!("{team}{page}");
        assert_eq!(
            ada.get(&path).await.status,
            StatusCode::OK,
            "owner GET {path}"
        );
    }

    // An id that is malformed or of another kind is the not-found page, before any query.
    for page in [
        format!("/sources/{dst}"),
        format!("/routes/{src}/delete"),
        "/events/not-an-id".to_owned(),
        format!("/deliveries/{evt}"),
        // Well formed, but no event of this team.
        format!(
            "/events/{}/rerun",
            switchyard_domain::ids::EventId::generate()
        ),
    ] {
        let path = format!("{team}{page}");
        let got = if page.ends_with("/delete") || page.ends_with("/rerun") {
            ada.post(&path, &[]).await
        } else {
            ada.get(&path).await
        };
        assert_eq!(got.status, StatusCode::NOT_FOUND, "owner {path}");
        assert!(got.body.contains("<html"), "owner {path}: {}", got.body);
    }

    // Text PostgreSQL cannot store is refused by name, in a form and in a query.
    let got = ada
        .post(
            &format!("{team}/routes"),
            &[("name", "nul"), ("template", "a\u{0}b")],
        )
        .await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.body);
    assert!(got.body.contains("the template field"), "{}", got.body);
    let got = ada.get(&format!("{team}/events?event_type=a%00b")).await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.body);

    let mut stranger = Visitor::new(&app);
    for page in &pages {
        let path = format!("{team}{page}");
        let got = stranger.get(&path).await;
        assert_eq!(got.status, StatusCode::SEE_OTHER, "signed out GET {path}");
        assert!(got.location.unwrap().starts_with("/login?next="), "{path}");
    }
    for form in &forms {
        let path = format!("{team}{form}");
        let got = stranger.post_raw(&path, &[("csrf_token", "x")]).await;
        assert!(
            got.status == StatusCode::SEE_OTHER || got.status == StatusCode::FORBIDDEN,
            "signed out POST {path}: {}",
            got.status
        );
        assert_ne!(got.status, StatusCode::OK);
    }

    let mut bob = Visitor::new(&app);
    bob.sign_up("bob@example.com", "Bob's").await;
    for page in &pages {
        let path = format!("{team}{page}");
        assert_eq!(
            bob.get(&path).await.status,
            StatusCode::NOT_FOUND,
            "outsider GET {path}"
        );
    }
    bob.get("/account").await;
    for form in &forms {
        let path = format!("{team}{form}");
        assert_eq!(
            bob.post(&path, &[]).await.status,
            StatusCode::NOT_FOUND,
            "outsider POST {path}"
        );
    }

    for form in &forms {
        let path = format!("{team}{form}");
        assert_eq!(
            ada.post_raw(&path, &[("csrf_token", "forged")])
                .await
                .status,
            StatusCode::FORBIDDEN,
            "forged POST {path}"
        );
    }
    for path in [
        "/logout",
        "/account/logout-everywhere",
        "/account/verify-email",
        "/teams",
    ] {
        assert_eq!(
            ada.post_raw(path, &[]).await.status,
            StatusCode::FORBIDDEN,
            "no token POST {path}"
        );
    }
    // Nothing above changed anything: everything is still there.
    for page in &pages {
        let path = format!("{team}{page}");
        assert_eq!(
            ada.get(&path).await.status,
            StatusCode::OK,
            "after: GET {path}"
        );
    }
}

#[tokio::test]
async fn with_the_database_gone_the_dashboard_and_the_api_both_answer_503_with_retry_after() {
    let app = TestApp::spawn_with(switchyard_tests::app::Options {
        db_proxy: true,
        ..switchyard_tests::app::Options::default()
    })
    .await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    ada.get(&format!("{team}/sources")).await;

    let proxy = app.proxy.clone().expect("a proxy");
    proxy.cut();
    let page = ada.get(&format!("{team}/sources")).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    page.assert_contains("try again in a moment");
    assert!(page.headers.contains_key("retry-after"));
    let api = app
        .api(reqwest::Method::GET, "/api/v1/sources")
        .send()
        .await
        .expect("request");
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(api.headers().contains_key("retry-after"));

    let page = ada.post(&format!("{team}/sources"), &[("name", "x")]).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    proxy.restore().await;
    ada.get(&format!("{team}/sources"))
        .await
        .assert_contains("Add your first source");
}
