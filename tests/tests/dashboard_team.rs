//! A team's people and keys in the dashboard: invitations, roles, API keys, deleting the
//! team, and forms too large or unreadable, through real HTTP with a cookie jar.

use reqwest::StatusCode;
use switchyard_tests::app::Options;
use switchyard_tests::visitor::PASSWORD;
use switchyard_tests::{SmtpServer, TestApp, Visitor};

#[tokio::test]
async fn an_invited_person_chooses_a_password_and_joins_with_the_invited_role() {
    let smtp = SmtpServer::start(vec![250]);
    let app = TestApp::spawn_with(Options::mail(&smtp)).await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    ada.get(&format!("{team}/settings")).await;
    let page = ada
        .post(
            &format!("{team}/invitations"),
            &[
                ("invite_email", "bob@example.com"),
                ("invite_role", "viewer"),
            ],
        )
        .await;
    page.assert_redirect(&format!("{team}/settings#invitations"));
    ada.get(&format!("{team}/settings"))
        .await
        .assert_contains("bob@example.com");

    let mail = smtp.mail_to(2, "bob@example.com").await;
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Join Acme Two on Switchyard")
    );
    let invitation = mail.link(&app.base, "/invitations/");
    let mut bob = Visitor::new(&app);
    bob.get(&invitation)
        .await
        .assert_contains("as <strong>viewer</strong>");
    bob.post(&invitation, &[("password", PASSWORD)])
        .await
        .assert_redirect(&team);
    let page = bob.get(&team).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains("Please verify"),
        "the link proved the address"
    );
    // Used up.
    assert_eq!(
        Visitor::new(&app).get(&invitation).await.status,
        StatusCode::GONE
    );

    // A viewer reads but changes nothing.
    let settings = bob.get(&format!("{team}/settings")).await;
    assert_eq!(settings.status, StatusCode::OK);
    assert!(!settings.body.contains("Create key"));
    let page = bob
        .post(
            &format!("{team}/invitations"),
            &[
                ("invite_email", "eve@example.com"),
                ("invite_role", "admin"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = bob
        .post(&format!("{team}/api-keys"), &[("key_name", "mine")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    ada.get(&format!("{team}/settings"))
        .await
        .assert_contains("invitation.accept");
}

#[tokio::test]
async fn roles_follow_the_permission_table_and_a_team_keeps_an_owner() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    let mut bob = Visitor::new(&app);
    bob.sign_up("bob@example.com", "Bob's Team").await;
    let bob_id: String = sqlx::query_scalar("SELECT id FROM users WHERE email = 'bob@example.com'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let ada_id: String = sqlx::query_scalar("SELECT id FROM users WHERE email = 'ada@example.com'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let team_id: String = sqlx::query_scalar("SELECT id FROM teams WHERE slug = 'acme-two'")
        .fetch_one(&app.pool)
        .await
        .unwrap();

    // Not a member: the team does not exist as far as Bob can tell.
    assert_eq!(bob.get(&team).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        bob.get("/t/no-such-team").await.status,
        StatusCode::NOT_FOUND
    );
    bob.get("/account").await;
    let page = bob
        .post(&format!("{team}/api-keys"), &[("key_name", "x")])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    sqlx::query("INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, 'admin')")
        .bind(&team_id)
        .bind(&bob_id)
        .execute(&app.pool)
        .await
        .unwrap();
    bob.get(&format!("{team}/settings")).await;
    // An admin cannot make an owner, nor touch the owner.
    let members = format!("{team}/members/{bob_id}");
    let page = bob.post(&members, &[("role", "owner")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = bob
        .post(&format!("{team}/members/{ada_id}"), &[("role", "viewer")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    // The only owner cannot step down or leave.
    ada.get(&format!("{team}/settings")).await;
    let page = ada
        .post(&format!("{team}/members/{ada_id}"), &[("role", "admin")])
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    page.assert_contains("A team needs an owner");
    // Once Bob is an owner too, Ada may.
    ada.post(&members, &[("role", "owner")])
        .await
        .assert_redirect(&format!("{team}/settings#members"));
    ada.post(&format!("{team}/members/{ada_id}"), &[("role", "remove")])
        .await
        .assert_redirect("/account");
    assert_eq!(ada.get(&team).await.status, StatusCode::NOT_FOUND);
    bob.get(&format!("{team}/settings"))
        .await
        .assert_contains("member.remove");

    // Unknown or malformed ids are 404s.
    let page = bob
        .post(&format!("{team}/members/usr_nobody"), &[("role", "viewer")])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_api_key_is_shown_once_works_on_the_api_and_stops_when_revoked() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    ada.get(&format!("{team}/settings")).await;
    let page = ada
        .post(&format!("{team}/api-keys"), &[("key_name", "")])
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("The key&#39;s name must not be empty.");

    let page = ada
        .post(&format!("{team}/api-keys"), &[("key_name", "ci")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let shown = page.location.clone().unwrap();
    assert!(shown.ends_with("#api-keys"), "{shown}");
    // Another member cannot read the flash, and does not use it up.
    let mut cy = Visitor::new(&app);
    cy.sign_up("cy@example.com", "Cy's").await;
    assert!(!cy.get(&shown).await.body.contains("Copy this key now"));
    let page = ada.get(&shown).await;
    page.assert_contains("It is shown once");
    let at = page.body.find("value=\"sy_live_").expect("the key") + "value=\"".len();
    let key = &page.body[at..at + page.body[at..].find('"').unwrap()];
    assert!(ada.get(&shown).await.body.find(key).is_none(), "read once");
    // A flash is sealed at rest, and gone after ten minutes.
    let page = ada
        .post(&format!("{team}/api-keys"), &[("key_name", "late")])
        .await;
    let late = page.location.clone().unwrap();
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM flashes")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(
        sealed
            .iter()
            .all(|s| !String::from_utf8_lossy(s).contains("sy_live_"))
    );
    sqlx::query("UPDATE flashes SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(
        !ada.get(&late).await.body.contains("Copy this key now"),
        "expired"
    );
    let api = |key: &str| {
        app.client
            .get(app.url("/api/v1/sources"))
            .bearer_auth(key.to_owned())
            .send()
    };
    assert_eq!(api(key).await.unwrap().status(), StatusCode::OK);
    let page = ada.get(&format!("{team}/settings")).await;
    assert!(!page.body.contains(key), "the key is never shown again");

    let key_id: String = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'ci'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    ada.post(&format!("{team}/api-keys/{key_id}/revoke"), &[])
        .await
        .assert_redirect(&format!("{team}/settings#api-keys"));
    assert_eq!(api(key).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let page = ada.get(&format!("{team}/settings")).await;
    page.assert_contains("api_key.revoke");
    page.assert_contains("revoked");

    // Another team's key id is not this team's to revoke.
    let other: String = sqlx::query_scalar(
        "SELECT k.id FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE t.slug = 'acme'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let page = ada
        .post(&format!("{team}/api-keys/{other}/revoke"), &[])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn oversized_and_unreadable_forms_are_refused() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    ada.get(&format!("{team}/settings")).await;
    let big = "x".repeat(300 * 1024);
    let page = ada
        .post(&format!("{team}/api-keys"), &[("key_name", &big)])
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    let page = ada
        .post(&format!("{team}/members/x"), &[("role", "emperor")])
        .await;
    assert!(page.status == StatusCode::NOT_FOUND, "{}", page.status);
}

#[tokio::test]
async fn an_owner_deletes_a_team_after_typing_its_slug() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    ada.get(&format!("{team}/settings")).await;
    let page = ada
        .post(&format!("{team}/delete"), &[("confirm", "acme")])
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("Type acme-two to confirm.");
    ada.post(&format!("{team}/delete"), &[("confirm", "acme-two")])
        .await
        .assert_redirect("/account");
    assert_eq!(ada.get(&team).await.status, StatusCode::NOT_FOUND);
    // Someone can start over with a new team from the account page.
    ada.get("/account").await;
    ada.post("/teams", &[("team_name", "Second Try")])
        .await
        .assert_redirect("/t/second-try");
}
