//! Accounts in the store: signing up, finding people without regard to case, and
//! server-side sessions with idle expiry and log-out everywhere.

use chrono::{Duration, Utc};
use switchyard_domain::StoreError;
use switchyard_domain::accounts::{hash_password, verify_password};
use switchyard_domain::store::accounts::{self, IDLE_EXPIRY};
use switchyard_tests::TestApp;

#[tokio::test]
async fn sign_up_makes_an_owner_of_a_new_team_and_addresses_are_unique_without_case() {
    let app = TestApp::spawn().await;
    let mut conn = app.pool.acquire().await.unwrap();
    let hash = hash_password("a long enough password").unwrap();
    let (user, team) = accounts::sign_up(&mut conn, "Ada@Example.com", &hash, "Acme")
        .await
        .unwrap();
    // The harness's own team already has the slug "acme".
    assert_eq!(team.slug, "acme-2");
    let teams = accounts::teams_of(&mut *conn, &user.id).await.unwrap();
    assert_eq!(teams.len(), 1);
    assert_eq!(
        (teams[0].1.as_str(), teams[0].3.as_str()),
        ("acme-2", "owner")
    );

    let again = accounts::sign_up(&mut conn, "ada@example.COM", &hash, "Other").await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let found = accounts::find_by_email(&mut *conn, "ADA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, user.id);
    assert!(verify_password(
        "a long enough password",
        found.password_hash.as_deref().unwrap()
    ));
    assert!(found.email_verified_at.is_none());
}

#[tokio::test]
async fn sessions_sign_in_until_idle_too_long_or_ended() {
    let app = TestApp::spawn().await;
    let mut conn = app.pool.acquire().await.unwrap();
    let hash = hash_password("a long enough password").unwrap();
    let (user, _) = accounts::sign_up(&mut conn, "bo@example.com", &hash, "Bo's team")
        .await
        .unwrap();
    let now = Utc::now();
    let first = accounts::start_session(&mut *conn, &user.id, now)
        .await
        .unwrap();
    let second = accounts::start_session(&mut *conn, &user.id, now)
        .await
        .unwrap();

    // Only a hash is stored: the token itself signs in, nothing else does.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT id_hash FROM sessions LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_ne!(stored, first.token.as_bytes());
    let (who, csrf) = accounts::session_user(&mut conn, &first.token, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((who.id, csrf), (user.id.clone(), first.csrf_token.clone()));
    assert!(
        accounts::session_user(&mut conn, "not-a-token", now)
            .await
            .unwrap()
            .is_none()
    );

    // Use keeps a session alive; idleness past the expiry ends it.
    let later = now + IDLE_EXPIRY - Duration::hours(1);
    assert!(
        accounts::session_user(&mut conn, &first.token, later)
            .await
            .unwrap()
            .is_some()
    );
    let much_later = later + IDLE_EXPIRY - Duration::hours(1);
    assert!(
        accounts::session_user(&mut conn, &first.token, much_later)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        accounts::session_user(&mut conn, &second.token, much_later)
            .await
            .unwrap()
            .is_none(),
        "the unused session expired"
    );
    assert_eq!(
        accounts::prune_sessions(&mut *conn, much_later)
            .await
            .unwrap(),
        1
    );

    // Log out one, then everywhere.
    let third = accounts::start_session(&mut *conn, &user.id, now)
        .await
        .unwrap();
    accounts::end_session(&mut *conn, &third.token)
        .await
        .unwrap();
    assert!(
        accounts::session_user(&mut conn, &third.token, now)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        accounts::end_all_sessions(&mut *conn, &user.id)
            .await
            .unwrap(),
        1
    );
    assert!(
        accounts::session_user(&mut conn, &first.token, much_later)
            .await
            .unwrap()
            .is_none()
    );
}
