//! Signing up, logging in and out, verifying an address, resetting a password, and the
//! account page (teams, changing the password, log out everywhere). Every form here is rate limited per client
//! address, and per account where there is one, and none of them tells whether an
//! address has an account: log-in failures read the same and take the same time.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use serde::Deserialize;
use switchyard_domain::accounts::{self, hash_password, verify_nobody, verify_password};
use switchyard_domain::model::Name;
use switchyard_domain::store::accounts::{self as store, LinkPurpose, User};
use switchyard_domain::store::{audit, members, throttle};

use super::error::PageError;
use super::forms::{Errors, NoFields, Posted, form_csrf, local_path, sentence};
use super::session::{MaybeViewer, Viewer, cleared_session_cookie, session_cookie};
use super::{html, limits, mail, see_other};
use crate::WebState;
use crate::query::Query;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(home)
        .service(signup_page)
        .service(signup)
        .service(login_page)
        .service(login)
        .service(logout)
        .service(logout_everywhere)
        .service(change_password)
        .service(account_page)
        .service(resend_verification)
        .service(verify_email)
        .service(new_team);
}

/// Where a signed-in person lands: their first team, or the account page to make one.
pub(super) async fn landing(state: &WebState, user: &User) -> Result<String, PageError> {
    let teams = store::teams_of(&state.pool, &user.id).await?;
    Ok(match teams.first() {
        Some((_, slug, _, _)) => format!("/t/{slug}"),
        None => "/account".to_owned(),
    })
}

#[get("/")]
async fn home(state: web::Data<WebState>, viewer: MaybeViewer) -> Result<HttpResponse, PageError> {
    Ok(match viewer.0 {
        Some(v) => see_other(landing(&state, &v.user).await?),
        None => see_other("/login"),
    })
}

/// A page for a signed-out person, with the anonymous CSRF cookie when it is new.
pub(super) fn signed_out_page(
    template: &impl Template,
    status: StatusCode,
    cookie: Option<actix_web::cookie::Cookie<'static>>,
) -> Result<HttpResponse, PageError> {
    let mut res = html(template, status)?;
    if let Some(cookie) = cookie {
        res.add_cookie(&cookie).map_err(|_| PageError::Internal)?;
    }
    Ok(res)
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/signup.html")]
struct SignupPage {
    csrf: String,
    email: String,
    team_name: String,
    errors: Errors,
}

#[get("/signup")]
async fn signup_page(req: HttpRequest, viewer: MaybeViewer) -> Result<HttpResponse, PageError> {
    if viewer.0.is_some() {
        return Ok(see_other("/account#new-team"));
    }
    let (csrf, cookie) = form_csrf(&req, &viewer);
    let page = SignupPage {
        csrf,
        email: String::new(),
        team_name: String::new(),
        errors: Errors::default(),
    };
    signed_out_page(&page, StatusCode::OK, cookie)
}

#[derive(Debug, Deserialize)]
struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    team_name: String,
}

#[post("/signup")]
async fn signup(
    req: HttpRequest,
    state: web::Data<WebState>,
    Posted(form): Posted<SignupForm>,
    viewer: MaybeViewer,
) -> Result<HttpResponse, PageError> {
    limits::check(&state, &[limits::per_ip("signup", &req, &state)]).await?;
    let mut errors = Errors::default();
    let email = accounts::email_address(&form.email)
        .map_err(|_| errors.add("email", "Enter an email address such as ada@example.com."))
        .ok();
    let team_name = Name::parse(form.team_name.trim())
        .map_err(|e| errors.add("team_name", format!("The team {e}.")))
        .ok();
    let password = form.password;
    let hash = web::block(move || hash_password(&password))
        .await
        .map_err(|_| PageError::Internal)?
        .map_err(|e| errors.add("password", sentence(&e.to_string())))
        .ok();
    let (Some(email), Some(team_name), Some(hash)) = (email, team_name, hash) else {
        let (csrf, cookie) = form_csrf(&req, &viewer);
        let page = SignupPage {
            csrf,
            email: form.email,
            team_name: form.team_name,
            errors,
        };
        return signed_out_page(&page, StatusCode::UNPROCESSABLE_ENTITY, cookie);
    };

    let now = Utc::now();
    let mut tx = state.pool.begin().await?;
    let (user, team) = match store::sign_up(&mut tx, &email, &hash, team_name.as_str()).await {
        Ok(made) => made,
        Err(switchyard_domain::StoreError::Conflict(_)) => {
            let (csrf, cookie) = form_csrf(&req, &viewer);
            let mut errors = Errors::default();
            errors.add(
                "email",
                "This address already has an account. Log in, or reset its password.",
            );
            let page = SignupPage {
                csrf,
                email: form.email,
                team_name: form.team_name,
                errors,
            };
            return signed_out_page(&page, StatusCode::UNPROCESSABLE_ENTITY, cookie);
        }
        Err(e) => return Err(e.into()),
    };
    let token = store::create_link(&mut *tx, &user.id, LinkPurpose::VerifyEmail, now).await?;
    mail::verify_email(&mut tx, &state, &user.email, &token).await?;
    audit::record(&mut *tx, &team.id, &user.email, "team.create", &team.name).await?;
    let session = store::start_session(&mut *tx, &user.id, now).await?;
    tx.commit().await?;
    let mut res = see_other(format!("/t/{}", team.slug));
    res.add_cookie(&session_cookie(&state, session.token))
        .map_err(|_| PageError::Internal)?;
    Ok(res)
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    next: String,
    notice: Option<&'static str>,
    errors: Errors,
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
    reset: Option<String>,
}

#[get("/login")]
async fn login_page(
    req: HttpRequest,
    state: web::Data<WebState>,
    viewer: MaybeViewer,
    q: Query<LoginQuery>,
) -> Result<HttpResponse, PageError> {
    let next = local_path(q.next.as_deref()).unwrap_or_default();
    if let Some(v) = viewer.0 {
        let to = if next.is_empty() {
            landing(&state, &v.user).await?
        } else {
            next
        };
        return Ok(see_other(to));
    }
    let (csrf, cookie) = form_csrf(&req, &viewer);
    let page = LoginPage {
        csrf,
        email: String::new(),
        next,
        notice: q
            .reset
            .is_some()
            .then_some("If that address has an account, a reset link is on its way."),
        errors: Errors::default(),
    };
    signed_out_page(&page, StatusCode::OK, cookie)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

#[post("/login")]
async fn login(
    req: HttpRequest,
    state: web::Data<WebState>,
    Posted(form): Posted<LoginForm>,
    viewer: MaybeViewer,
) -> Result<HttpResponse, PageError> {
    let account_key = limits::per_account("login", &form.email);
    limits::check(
        &state,
        &[limits::per_ip("login", &req, &state), account_key.clone()],
    )
    .await?;
    let user = match accounts::email_address(&form.email) {
        Ok(email) => store::find_by_email(&state.pool, &email).await?,
        Err(_) => None,
    };
    let password = form.password.clone();
    let phc = user.as_ref().and_then(|u| u.password_hash.clone());
    // An unknown address, or a person invited who never chose a password, costs the
    // same verification as a wrong password.
    let verified = web::block(move || match phc {
        Some(phc) => verify_password(&password, &phc),
        None => verify_nobody(&password),
    })
    .await
    .map_err(|_| PageError::Internal)?;
    let Some(user) = user.filter(|_| verified) else {
        let (csrf, cookie) = form_csrf(&req, &viewer);
        let mut errors = Errors::default();
        errors.add("form", "That email and password do not match an account.");
        let page = LoginPage {
            csrf,
            email: form.email,
            next: local_path(Some(&form.next)).unwrap_or_default(),
            notice: None,
            errors,
        };
        return signed_out_page(&page, StatusCode::UNAUTHORIZED, cookie);
    };
    let session = store::start_session(&state.pool, &user.id, Utc::now()).await?;
    throttle::clear(&state.pool, &account_key.key).await?;
    let to = match local_path(Some(&form.next)) {
        Some(next) => next,
        None => landing(&state, &user).await?,
    };
    let mut res = see_other(to);
    res.add_cookie(&session_cookie(&state, session.token))
        .map_err(|_| PageError::Internal)?;
    Ok(res)
}

#[post("/logout")]
async fn logout(
    state: web::Data<WebState>,
    viewer: Viewer,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    store::end_session(&state.pool, &viewer.token).await?;
    let mut res = see_other("/login");
    res.add_cookie(&cleared_session_cookie(&state))
        .map_err(|_| PageError::Internal)?;
    Ok(res)
}

#[post("/account/logout-everywhere")]
async fn logout_everywhere(
    state: web::Data<WebState>,
    viewer: Viewer,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    store::end_all_sessions(&state.pool, &viewer.user.id).await?;
    let mut res = see_other("/login");
    res.add_cookie(&cleared_session_cookie(&state))
        .map_err(|_| PageError::Internal)?;
    Ok(res)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PasswordForm {
    current_password: String,
    new_password: String,
}

/// A new password, given the current one. Every other session ends: whoever knew the old
/// password is signed out; this browser stays signed in.
#[post("/account/password")]
async fn change_password(
    state: web::Data<WebState>,
    viewer: Viewer,
    Posted(form): Posted<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    limits::check(
        &state,
        &[limits::per_account("password", &viewer.user.email)],
    )
    .await?;
    let phc = viewer.user.password_hash.clone();
    let current = form.current_password;
    let known = web::block(move || match phc {
        Some(phc) => verify_password(&current, &phc),
        None => verify_nobody(&current),
    })
    .await
    .map_err(|_| PageError::Internal)?;
    let mut errors = Errors::default();
    if !known {
        errors.add("current_password", "That is not your current password.");
    }
    let new = form.new_password;
    let hash = match web::block(move || hash_password(&new))
        .await
        .map_err(|_| PageError::Internal)?
    {
        Ok(hash) => Some(hash),
        Err(e) => {
            errors.add("new_password", sentence(&e.to_string()));
            None
        }
    };
    let (true, Some(hash)) = (known, hash) else {
        let page = account_view(&state, &viewer, String::new(), errors, None).await?;
        return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let now = Utc::now();
    let mut tx = state.pool.begin().await?;
    store::set_password(&mut *tx, &viewer.user.id, &hash).await?;
    store::end_all_sessions(&mut *tx, &viewer.user.id).await?;
    let session = store::start_session(&mut *tx, &viewer.user.id, now).await?;
    tx.commit().await?;
    let mut res = see_other("/account?changed=1");
    res.add_cookie(&session_cookie(&state, session.token))
        .map_err(|_| PageError::Internal)?;
    Ok(res)
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/account.html")]
struct AccountPage {
    csrf: String,
    email: String,
    verified: bool,
    smtp_configured: bool,
    teams: Vec<(String, String, String)>,
    team_name: String,
    errors: Errors,
    notice: Option<&'static str>,
}

async fn account_view(
    state: &WebState,
    viewer: &Viewer,
    team_name: String,
    errors: Errors,
    notice: Option<&'static str>,
) -> Result<AccountPage, PageError> {
    let teams = store::teams_of(&state.pool, &viewer.user.id)
        .await?
        .into_iter()
        .map(|(_, slug, name, role)| (slug, name, role))
        .collect();
    Ok(AccountPage {
        csrf: viewer.csrf.clone(),
        email: viewer.user.email.clone(),
        verified: viewer.user.email_verified_at.is_some(),
        smtp_configured: state.smtp_configured,
        teams,
        team_name,
        errors,
        notice,
    })
}

#[derive(Debug, Deserialize)]
struct AccountQuery {
    sent: Option<String>,
    changed: Option<String>,
}

#[get("/account")]
async fn account_page(
    state: web::Data<WebState>,
    viewer: Viewer,
    q: Query<AccountQuery>,
) -> Result<AccountPage, PageError> {
    let notice = match (&q.sent, &q.changed) {
        (Some(_), _) => Some("We sent a new verification link."),
        (_, Some(_)) => Some("Password changed. Every other session was signed out."),
        _ => None,
    };
    account_view(&state, &viewer, String::new(), Errors::default(), notice).await
}

#[post("/account/verify-email")]
async fn resend_verification(
    state: web::Data<WebState>,
    viewer: Viewer,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    if viewer.user.email_verified_at.is_some() {
        return Ok(see_other("/account"));
    }
    limits::check(&state, &[limits::per_account("verify", &viewer.user.email)]).await?;
    let mut tx = state.pool.begin().await?;
    let token = store::create_link(
        &mut *tx,
        &viewer.user.id,
        LinkPurpose::VerifyEmail,
        Utc::now(),
    )
    .await?;
    mail::verify_email(&mut tx, &state, &viewer.user.email, &token).await?;
    tx.commit().await?;
    Ok(see_other("/account?sent=1"))
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/message.html")]
pub(super) struct MessagePage {
    pub(super) title: &'static str,
    pub(super) lines: Vec<String>,
    pub(super) link_href: String,
    pub(super) link_text: &'static str,
}

#[get("/verify-email/{token}")]
async fn verify_email(
    state: web::Data<WebState>,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let now = Utc::now();
    let mut tx = state.pool.begin().await?;
    let used = store::use_link(&mut tx, &token, LinkPurpose::VerifyEmail, now).await?;
    if let Some(user) = &used {
        store::mark_verified(&mut *tx, user, now).await?;
    }
    tx.commit().await?;
    let page = match used {
        Some(_) => MessagePage {
            title: "Address verified",
            lines: vec!["Thank you: your email address is confirmed.".to_owned()],
            link_href: "/".to_owned(),
            link_text: "Go to the dashboard",
        },
        None => MessagePage {
            title: "This link no longer works",
            lines: vec![
                "It was used already or it expired. Log in and ask for a new one from your account page."
                    .to_owned(),
            ],
            link_href: "/account".to_owned(),
            link_text: "Open your account",
        },
    };
    let status = if page.title == "Address verified" {
        StatusCode::OK
    } else {
        StatusCode::GONE
    };
    html(&page, status)
}

#[derive(Debug, Deserialize)]
struct NewTeamForm {
    #[serde(default)]
    team_name: String,
}

#[post("/teams")]
async fn new_team(
    state: web::Data<WebState>,
    viewer: Viewer,
    Posted(form): Posted<NewTeamForm>,
) -> Result<HttpResponse, PageError> {
    let name = match Name::parse(form.team_name.trim()) {
        Ok(name) => name,
        Err(e) => {
            let mut errors = Errors::default();
            errors.add("team_name", format!("The team {e}."));
            let page = account_view(&state, &viewer, form.team_name, errors, None).await?;
            return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let mut tx = state.pool.begin().await?;
    let team = members::create_team(&mut tx, &viewer.user.id, name.as_str()).await?;
    audit::record(
        &mut *tx,
        &team.id,
        &viewer.user.email,
        "team.create",
        &team.name,
    )
    .await?;
    tx.commit().await?;
    Ok(see_other(format!("/t/{}", team.slug)))
}
