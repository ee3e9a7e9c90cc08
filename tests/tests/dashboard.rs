//! The dashboard's accounts: signing up, logging in and out, resets, verification, CSRF
//! and rate limits, through real HTTP with a cookie jar.

use reqwest::StatusCode;
use switchyard_tests::app::Options;
use switchyard_tests::visitor::PASSWORD;
use switchyard_tests::{SmtpServer, TestApp, Visitor};

#[tokio::test]
async fn signing_up_lands_on_the_new_team_and_the_emailed_link_verifies_the_address() {
    let smtp = SmtpServer::start(vec![250]);
    let app = TestApp::spawn_with(Options::mail(&smtp)).await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Analytical Engines").await;
    assert_eq!(team, "/t/analytical-engines");
    let page = ada.get(&team).await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_contains("Analytical Engines");
    page.assert_contains("Please verify ada@example.com");
    let cookie = page.headers.get_all("set-cookie").iter().count();
    assert_eq!(cookie, 0, "pages do not reissue the session cookie");

    let mail = smtp.mail_to(1, "ada@example.com").await;
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Confirm your email for Switchyard")
    );
    let verify = mail.link(&app.base, "/verify-email/");
    let page = ada.get(&verify).await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_contains("Address verified");
    assert!(!ada.get(&team).await.body.contains("Please verify"));
    // Single use.
    assert_eq!(ada.get(&verify).await.status, StatusCode::GONE);

    let audit = ada.get(&format!("{team}/settings")).await;
    audit.assert_contains("team.create");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_lax_and_the_pages_forbid_framing() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    v.get("/signup").await;
    let page = v
        .post(
            "/signup",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("team_name", "Acme Two"),
            ],
        )
        .await;
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("sy_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http in tests: {cookie}");
    let page = v.get("/t/acme-two").await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(page.headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn sign_up_without_smtp_still_works_and_says_the_email_waits() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    let team = v.sign_up("ada@example.com", "Acme Two").await;
    let page = v.get(&team).await;
    page.assert_contains("the message is waiting to be sent");
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'switchyard::mail'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(waiting, 1);
    let args: String = sqlx::query_scalar(
        "SELECT convert_from(job, 'UTF8') FROM apalis.jobs WHERE job_type = 'switchyard::mail'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!args.contains("verify-email"), "the link is sealed: {args}");
}

#[tokio::test]
async fn bad_sign_ups_say_what_is_wrong_next_to_each_field_and_keep_the_values() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    v.get("/signup").await;
    let page = v
        .post(
            "/signup",
            &[
                ("email", "not-an-address"),
                ("password", "short"),
                ("team_name", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("id=\"email-error\"");
    page.assert_contains("Enter an email address");
    page.assert_contains("The password must be at least 10 characters.");
    page.assert_contains("The team name must not be empty.");
    page.assert_contains("value=\"not-an-address\"");
    assert!(
        !page.body.contains("value=\"short\""),
        "passwords are never echoed"
    );

    v.sign_up("ada@example.com", "Acme Two").await;
    let mut other = Visitor::new(&app);
    other.get("/signup").await;
    let page = other
        .post(
            "/signup",
            &[
                ("email", "ADA@example.com"),
                ("password", PASSWORD),
                ("team_name", "Acme Three"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("already has an account");
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    v.get("/signup").await;
    let page = v
        .post_raw(
            "/signup",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("team_name", "Acme Two"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    page.assert_contains("Form expired");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 0);

    let team = v.sign_up("ada@example.com", "Acme Two").await;
    for token in ["", "forged-token"] {
        let page = v
            .post_raw(
                &format!("{team}/api-keys"),
                &[("csrf_token", token), ("key_name", "ci")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "token {token:?}");
        let page = v.post_raw("/logout", &[("csrf_token", token)]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
    }
    // Signed in, the pre-sign-in token no longer counts: only the session's does.
    let mut w = Visitor::new(&app);
    w.get("/signup").await;
    let anonymous = w.csrf.clone().expect("a token on the sign-up form");
    w.sign_up("eve@example.com", "Eve's").await;
    let page = w
        .post_raw(
            "/t/eve-s/api-keys",
            &[("csrf_token", &anonymous), ("key_name", "ci")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    // Still signed in, and no key was made.
    assert_eq!(v.get(&team).await.status, StatusCode::OK);
    let keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE t.slug = 'acme-two'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(keys, 0);
}

#[tokio::test]
async fn pages_ask_for_a_log_in_and_come_back_after_it() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    let settings = format!("{team}/settings");

    let mut stranger = Visitor::new(&app);
    stranger
        .get(&settings)
        .await
        .assert_redirect("/login?next=%2Ft%2Facme-two%2Fsettings");
    stranger.get("/").await.assert_redirect("/login");
    let page = stranger
        .post_raw(&format!("{team}/api-keys"), &[("key_name", "x")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);

    let mut again = Visitor::new(&app);
    again.get(&format!("/login?next={settings}")).await;
    let page = again
        .post(
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("next", &settings),
            ],
        )
        .await;
    page.assert_redirect(&settings);
    // Never off-site.
    let mut third = Visitor::new(&app);
    third.get("/login").await;
    let page = third
        .post(
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    page.assert_redirect(&team);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_address_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme Two").await;
    let mut v = Visitor::new(&app);
    v.get("/login").await;
    let wrong = v
        .post(
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    let unknown = v
        .post(
            "/login",
            &[
                ("email", "bob@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, wrong.status);
    let message = "That email and password do not match an account.";
    wrong.assert_contains(message);
    unknown.assert_contains(message);
    assert_eq!(
        wrong
            .body
            .replace("ada@", "bob@")
            .replace(&csrf(&wrong), ""),
        unknown.body.replace(&csrf(&unknown), ""),
    );
}

fn csrf(page: &switchyard_tests::Page) -> String {
    switchyard_tests::visitor::csrf_in(&page.body).unwrap_or_default()
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_session_of_the_person() {
    let app = TestApp::spawn().await;
    let mut laptop = Visitor::new(&app);
    let team = laptop.sign_up("ada@example.com", "Acme Two").await;
    let mut phone = Visitor::new(&app);
    phone
        .log_in("ada@example.com", PASSWORD)
        .await
        .assert_redirect(&team);
    assert_eq!(phone.get(&team).await.status, StatusCode::OK);

    laptop.get("/account").await;
    laptop
        .post("/account/logout-everywhere", &[])
        .await
        .assert_redirect("/login");
    assert_eq!(laptop.get(&team).await.status, StatusCode::SEE_OTHER);
    assert_eq!(phone.get(&team).await.status, StatusCode::SEE_OTHER);

    // Plain log out ends only that session.
    laptop.log_in("ada@example.com", PASSWORD).await;
    phone.log_in("ada@example.com", PASSWORD).await;
    phone.get(&team).await;
    phone.post("/logout", &[]).await.assert_redirect("/login");
    assert_eq!(phone.get(&team).await.status, StatusCode::SEE_OTHER);
    assert_eq!(laptop.get(&team).await.status, StatusCode::OK);
}

#[tokio::test]
async fn log_in_is_rate_limited_per_address_and_per_account_with_a_clear_page() {
    let app = TestApp::spawn().await;
    let mut v = Visitor::new(&app);
    v.get("/login").await;
    // Per account: the 11th try on one address, however it is spelled.
    for n in 1..=10 {
        let email = if n % 2 == 0 {
            "ADA@example.com"
        } else {
            "ada@example.com"
        };
        let page = v
            .post(
                "/login",
                &[("email", email), ("password", "wrong password")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "try {n}");
    }
    let page = v
        .post("/login", &[("email", "ada@example.com"), ("password", "x")])
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    page.assert_contains("Too many attempts");
    let wait: i64 = page.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    // Other addresses still get answers until the client's own limit (20) runs out.
    for n in 12..=20 {
        let page = v
            .post(
                "/login",
                &[
                    ("email", &format!("user{n}@example.com")),
                    ("password", "x"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "try {n}");
    }
    let page = v
        .post("/login", &[("email", "zed@example.com"), ("password", "x")])
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}

/// A log-in with a wrong password for `user{n}@example.com`; its status.
async fn wrong_log_in(v: &mut Visitor, n: usize) -> StatusCode {
    let email = format!("user{n}@example.com");
    v.post("/login", &[("email", &email), ("password", "x")])
        .await
        .status
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = TestApp::spawn_with(Options {
        trusted_proxies: vec!["127.0.0.1/32".to_owned()],
        ..Options::default()
    })
    .await;
    let mut first = Visitor::forwarded_for(&app, "198.51.100.1");
    first.get("/login").await;
    for n in 1..=20 {
        assert_eq!(
            wrong_log_in(&mut first, n).await,
            StatusCode::UNAUTHORIZED,
            "try {n}"
        );
    }
    assert_eq!(
        wrong_log_in(&mut first, 21).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is counted apart.
    let mut second = Visitor::forwarded_for(&app, "198.51.100.2");
    second.get("/login").await;
    assert_eq!(
        wrong_log_in(&mut second, 22).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_reset_link_works_once_for_an_hour_and_signs_out_everywhere_else() {
    let smtp = SmtpServer::start(vec![250]);
    let app = TestApp::spawn_with(Options::mail(&smtp)).await;
    let mut ada = Visitor::new(&app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;

    let mut v = Visitor::new(&app);
    v.get("/password-reset").await;
    // The same answer with and without an account.
    let unknown = v
        .post("/password-reset", &[("email", "nobody@example.com")])
        .await;
    unknown.assert_redirect("/login?reset=sent");
    let known = v
        .post("/password-reset", &[("email", "Ada@Example.com")])
        .await;
    known.assert_redirect("/login?reset=sent");
    v.get("/login?reset=sent")
        .await
        .assert_contains("If that address has an account");

    // The sign-up verification, then the reset: nothing for the unknown address.
    let mail = smtp.mail_to(2, "ada@example.com").await;
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Reset your Switchyard password")
    );
    assert_eq!(smtp.accepted().len(), 2);
    let reset = mail.link(&app.base, "/password-reset/");
    v.get(&reset).await.assert_contains("Choose a new password");
    let page = v.post(&reset, &[("password", "short")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("at least 10 characters");
    let page = v
        .post(&reset, &[("password", "a brand new passphrase")])
        .await;
    page.assert_redirect(&team);
    assert_eq!(v.get(&team).await.status, StatusCode::OK);
    // The old session is gone, the old password too, and the link is spent.
    assert_eq!(ada.get(&team).await.status, StatusCode::SEE_OTHER);
    let old = Visitor::new(&app).log_in("ada@example.com", PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(v.get(&reset).await.status, StatusCode::GONE);

    // An hour later a link no longer works.
    let mut late = Visitor::new(&app);
    late.get("/password-reset").await;
    late.post("/password-reset", &[("email", "ada@example.com")])
        .await;
    let mail = smtp.mail_to(3, "ada@example.com").await;
    let reset = mail.link(&app.base, "/password-reset/");
    sqlx::query(
        "UPDATE account_links SET expires_at = now() - interval '1 second' WHERE used_at IS NULL",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(late.get(&reset).await.status, StatusCode::GONE);
}

#[tokio::test]
async fn a_person_changes_their_password_and_every_other_session_ends() {
    let app = TestApp::spawn().await;
    let mut here = Visitor::new(&app);
    let team = here.sign_up("ada@example.com", "Acme Two").await;
    let mut elsewhere = Visitor::new(&app);
    elsewhere.log_in("ada@example.com", PASSWORD).await;
    assert_eq!(elsewhere.get(&team).await.status, StatusCode::OK);

    here.get("/account")
        .await
        .assert_contains("Change your password");
    // A wrong current password and a short new one: both said at once, nothing changed.
    let page = here
        .post(
            "/account/password",
            &[
                ("current_password", "not it at all"),
                ("new_password", "short"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    page.assert_contains("That is not your current password.");
    page.assert_contains("The password must be at least 10 characters.");
    assert_eq!(elsewhere.get(&team).await.status, StatusCode::OK);
    // Without the form's token, nothing happens.
    let page = here
        .post_raw(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let page = here
        .submit(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    page.assert_contains("Password changed.");
    assert_eq!(
        here.get(&team).await.status,
        StatusCode::OK,
        "still signed in here"
    );
    let page = elsewhere.get(&team).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "signed out elsewhere");
    let mut again = Visitor::new(&app);
    let page = again.log_in("ada@example.com", PASSWORD).await;
    page.assert_contains("That email and password do not match an account.");
    let page = again
        .log_in("ada@example.com", "a brand new passphrase")
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    // Signed out, the form is not there to post to.
    let mut stranger = Visitor::new(&app);
    let page = stranger
        .post_raw(
            "/account/password",
            &[("current_password", "x"), ("new_password", "y")],
        )
        .await;
    assert_ne!(page.status, StatusCode::OK);
}
