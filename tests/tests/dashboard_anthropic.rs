//! The dashboard's Anthropic connection: owners and admins store, check and remove the
//! team's key in Settings and turn enrichment on in the route form; members see the key
//! by its last four characters and cannot change either.

use reqwest::StatusCode;
use switchyard_tests::app::Options;
use switchyard_tests::{FakeAnthropic, TestApp, Visitor};

const KEY: &str = "sk-ant-api03-teamkey0123456789abcdefWXYZ";

#[tokio::test]
async fn an_owner_stores_checks_and_removes_the_key_and_a_member_cannot() {
    let fake = FakeAnthropic::start(KEY).await;
    let app = TestApp::spawn_with(Options {
        anthropic_api_url: Some(fake.base.clone()),
        ..Options::default()
    })
    .await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    let settings = format!("{team}/settings");
    ada.get(&settings).await.assert_contains("No key stored");

    let page = ada
        .post(&format!("{team}/anthropic"), &[("api_key", "sk-live-nope")])
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"api_key-error\"");
    page.assert_contains("starts with sk-ant-api");
    assert!(
        !page.body.contains("sk-live-nope"),
        "a key is never sent back"
    );

    let page = ada
        .submit(&format!("{team}/anthropic"), &[("api_key", KEY)])
        .await;
    page.assert_contains("Anthropic API key stored.");
    page.assert_contains("…WXYZ");
    assert!(!page.body.contains(KEY));

    let page = ada
        .submit(&format!("{team}/anthropic/check"), &[("workspace_id", "")])
        .await;
    page.assert_contains("Checked the team&#39;s key: The Anthropic API accepted the key.");
    assert_eq!(fake.requests_for("/v1/sessions"), 1);
    fake.rotate_key("sk-ant-api03-someoneelse0123456789abcdABCD");
    let page = ada
        .submit(&format!("{team}/anthropic/check"), &[("workspace_id", "")])
        .await;
    page.assert_contains("401 authentication_error: invalid x-api-key");

    // A member sees the key but changes nothing.
    let mut bob = Visitor::member_of(&app, "bob@example.com", "acme-two", "member").await;
    let page = bob.get(&settings).await;
    page.assert_contains("…WXYZ");
    assert!(!page.body.contains("action=\"/t/acme-two/anthropic\""));
    for action in ["anthropic", "anthropic/check", "anthropic/remove"] {
        let page = bob
            .post(&format!("{team}/{action}"), &[("api_key", KEY)])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{action}");
    }

    let page = ada
        .submit(&format!("{team}/anthropic/remove"), &[("workspace_id", "")])
        .await;
    page.assert_contains("Anthropic API key removed.");
    page.assert_contains("No key stored");
}

#[tokio::test]
async fn only_owners_and_admins_turn_enrichment_on_in_the_route_form() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    let secret = switchyard_tests::sign::new_whsec();
    ada.get(&format!("{team}/sources/new")).await;
    ada.post(
        &format!("{team}/sources"),
        &[
            ("provider", "anthropic"),
            ("name", "agents"),
            ("secret", &secret),
        ],
    )
    .await;
    ada.post(
        &format!("{team}/destinations"),
        &[
            ("kind", "http"),
            ("name", "app"),
            ("url", "https://example.com/hook"),
            ("method", "POST"),
        ],
    )
    .await;
    let (source, destination): (String, String) =
        sqlx::query_as("SELECT s.id, d.id FROM sources s, destinations d")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    ada.get(&format!("{team}/routes/new")).await;
    let page = ada
        .post(
            &format!("{team}/routes"),
            &[
                ("name", "enriched"),
                ("source_id", &source),
                ("destination_id", &destination),
                ("enrich", "on"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (route, enrich): (String, bool) = sqlx::query_as("SELECT id, enrich FROM routes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(enrich);

    let mut bob = Visitor::member_of(&app, "bob@example.com", "acme-two", "member").await;
    // A member saves the route's other fields; enrichment stays as it was.
    let page = bob.get(&format!("{team}/routes/{route}")).await;
    page.assert_contains("Only owners and admins change enrichment.");
    let form = [
        ("name", "renamed"),
        ("source_id", source.as_str()),
        ("destination_id", destination.as_str()),
        ("event_types", "*"),
    ];
    let page = bob.post(&format!("{team}/routes/{route}"), &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let enrich: bool = sqlx::query_scalar("SELECT enrich FROM routes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(enrich, "a member's save leaves enrichment alone");

    // Turned off by the owner, it cannot be turned on by the member.
    ada.get(&format!("{team}/routes/{route}")).await;
    ada.post(&format!("{team}/routes/{route}"), &form).await;
    let enrich: bool = sqlx::query_scalar("SELECT enrich FROM routes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!enrich);
    bob.get(&format!("{team}/routes/{route}")).await;
    let mut asking = form.to_vec();
    asking.push(("enrich", "on"));
    let page = bob.post(&format!("{team}/routes/{route}"), &asking).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("Only owners and admins can turn on enrichment.");
}
