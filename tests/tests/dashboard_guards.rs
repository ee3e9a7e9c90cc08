//! Every dashboard handler, checked the same four ways: signed out it asks for a log in,
//! a member of another team gets 404 (the team and its objects do not exist for them),
//! a form without the session's CSRF token gets 403, and the team's own owner gets in.

use reqwest::StatusCode;
use switchyard_tests::furnished::{Furnished, furnish};
use switchyard_tests::{TestApp, Visitor};

#[tokio::test]
async fn every_team_page_and_form_is_guarded() {
    let app = TestApp::spawn().await;
    let Furnished {
        mut ada,
        team,
        pages,
        forms,
        src,
        dst,
        evt,
        ..
    } = furnish(&app).await;
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
