//! Resetting a forgotten password: a link mailed to the address (single use, one hour),
//! answered the same whether or not the address has an account, then a new password
//! that signs out every other session.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use serde::Deserialize;
use switchyard_domain::accounts::{self, hash_password};
use switchyard_domain::store::accounts::{self as store, LinkPurpose};

use super::account::{MessagePage, landing, signed_out_page};
use super::error::PageError;
use super::forms::{Errors, Posted, form_csrf, sentence};
use super::session::{MaybeViewer, session_cookie};
use super::{html, limits, mail, see_other};
use crate::WebState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(reset_request_page)
        .service(reset_request)
        .service(reset_page)
        .service(reset);
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/reset_request.html")]
struct ResetRequestPage {
    csrf: String,
    email: String,
    errors: Errors,
}

#[get("/password-reset")]
async fn reset_request_page(
    req: HttpRequest,
    viewer: MaybeViewer,
) -> Result<HttpResponse, PageError> {
    let (csrf, cookie) = form_csrf(&req, &viewer);
    let page = ResetRequestPage {
        csrf,
        email: String::new(),
        errors: Errors::default(),
    };
    signed_out_page(&page, StatusCode::OK, cookie)
}

#[derive(Debug, Deserialize)]
struct ResetRequestForm {
    #[serde(default)]
    email: String,
}

/// Answers the same whether or not the address has an account.
#[post("/password-reset")]
async fn reset_request(
    req: HttpRequest,
    state: web::Data<WebState>,
    Posted(form): Posted<ResetRequestForm>,
    viewer: MaybeViewer,
) -> Result<HttpResponse, PageError> {
    let Ok(email) = accounts::email_address(&form.email) else {
        let (csrf, cookie) = form_csrf(&req, &viewer);
        let mut errors = Errors::default();
        errors.add("email", "Enter an email address such as ada@example.com.");
        let page = ResetRequestPage {
            csrf,
            email: form.email,
            errors,
        };
        return signed_out_page(&page, StatusCode::UNPROCESSABLE_ENTITY, cookie);
    };
    limits::check(
        &state,
        &[
            limits::per_ip("reset", &req, &state),
            limits::per_account("reset", &email),
        ],
    )
    .await?;
    let mut tx = state.pool.begin().await?;
    if let Some(user) = store::find_by_email(&mut *tx, &email).await? {
        let token =
            store::create_link(&mut *tx, &user.id, LinkPurpose::ResetPassword, Utc::now()).await?;
        mail::reset_password(&mut tx, &state, &user.email, &token).await?;
    }
    tx.commit().await?;
    Ok(see_other("/login?reset=sent"))
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/reset_form.html")]
struct ResetPage {
    csrf: String,
    email: String,
    token: String,
    errors: Errors,
}

fn expired_reset() -> Result<HttpResponse, PageError> {
    html(
        &MessagePage {
            title: "This link no longer works",
            lines: vec!["Reset links work once, for one hour. Ask for a new one.".to_owned()],
            link_href: "/password-reset".to_owned(),
            link_text: "Send a new link",
        },
        StatusCode::GONE,
    )
}

#[get("/password-reset/{token}")]
async fn reset_page(
    req: HttpRequest,
    state: web::Data<WebState>,
    token: web::Path<String>,
    viewer: MaybeViewer,
) -> Result<HttpResponse, PageError> {
    let Some(user) =
        store::peek_link(&state.pool, &token, LinkPurpose::ResetPassword, Utc::now()).await?
    else {
        return expired_reset();
    };
    let (csrf, cookie) = form_csrf(&req, &viewer);
    let page = ResetPage {
        csrf,
        email: user.email,
        token: token.into_inner(),
        errors: Errors::default(),
    };
    signed_out_page(&page, StatusCode::OK, cookie)
}

#[derive(Debug, Deserialize)]
struct ResetForm {
    #[serde(default)]
    password: String,
}

#[post("/password-reset/{token}")]
async fn reset(
    req: HttpRequest,
    state: web::Data<WebState>,
    token: web::Path<String>,
    Posted(form): Posted<ResetForm>,
    viewer: MaybeViewer,
) -> Result<HttpResponse, PageError> {
    let now = Utc::now();
    let Some(user) = store::peek_link(&state.pool, &token, LinkPurpose::ResetPassword, now).await?
    else {
        return expired_reset();
    };
    let password = form.password;
    let hash = match web::block(move || hash_password(&password))
        .await
        .map_err(|_| PageError::Internal)?
    {
        Ok(hash) => hash,
        Err(e) => {
            let (csrf, cookie) = form_csrf(&req, &viewer);
            let mut errors = Errors::default();
            errors.add("password", sentence(&e.to_string()));
            let page = ResetPage {
                csrf,
                email: user.email,
                token: token.into_inner(),
                errors,
            };
            return signed_out_page(&page, StatusCode::UNPROCESSABLE_ENTITY, cookie);
        }
    };
    let mut tx = state.pool.begin().await?;
    let Some(user_id) = store::use_link(&mut tx, &token, LinkPurpose::ResetPassword, now).await?
    else {
        return expired_reset();
    };
    store::set_password(&mut *tx, &user_id, &hash).await?;
    // Whoever knew the old password is signed out; the link proved the mailbox.
    store::end_all_sessions(&mut *tx, &user_id).await?;
    store::mark_verified(&mut *tx, &user_id, now).await?;
    let session = store::start_session(&mut *tx, &user_id, now).await?;
    tx.commit().await?;
    let mut res = see_other(landing(&state, &user).await?);
    res.add_cookie(&session_cookie(&state, session.token))
        .map_err(|_| PageError::Internal)?;
    Ok(res)
}
