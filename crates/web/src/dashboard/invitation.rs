//! Accepting an invitation. The link proves the mailbox, so a person who has no account
//! yet chooses a password here and is in, verified. Someone signed in as another address
//! is told to switch; an existing account logs in first.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use serde::Deserialize;
use switchyard_domain::accounts::hash_password;
use switchyard_domain::store::accounts as store;
use switchyard_domain::store::{audit, members};

use super::error::PageError;
use super::forms::{Errors, Posted, form_csrf, sentence};
use super::session::{MaybeViewer, session_cookie};
use super::{html, see_other};
use crate::WebState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(show).service(accept);
}

/// What the person holding the link can do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    /// Signed in as the invited address: one click.
    Invitee,
    /// Signed in as someone else.
    SomeoneElse(String),
    /// Not signed in; the address has an account with a password.
    HasAccount,
    /// Not signed in; no password yet: choose one.
    NewAccount,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/invitation.html")]
struct InvitationPage {
    csrf: String,
    token: String,
    team: String,
    role: String,
    email: String,
    holder: Holder,
    errors: Errors,
}

fn gone() -> Result<HttpResponse, PageError> {
    Err(PageError::Gone(
        "This invitation was used, revoked or has expired. Ask the team's admin for a new one.",
    ))
}

async fn holder(
    state: &WebState,
    viewer: &MaybeViewer,
    invited: &str,
) -> Result<Holder, PageError> {
    Ok(match &viewer.0 {
        Some(v) if v.user.email.eq_ignore_ascii_case(invited) => Holder::Invitee,
        Some(v) => Holder::SomeoneElse(v.user.email.clone()),
        None => match store::find_by_email(&state.pool, invited).await? {
            Some(u) if u.password_hash.is_some() => Holder::HasAccount,
            _ => Holder::NewAccount,
        },
    })
}

#[get("/invitations/{token}")]
async fn show(
    req: HttpRequest,
    state: web::Data<WebState>,
    viewer: MaybeViewer,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let Some((invitation, team)) =
        members::find_invitation(&state.pool, &token, Utc::now()).await?
    else {
        return gone();
    };
    let holder = holder(&state, &viewer, &invitation.email).await?;
    let (csrf, cookie) = form_csrf(&req, &viewer);
    let page = InvitationPage {
        csrf,
        token: token.into_inner(),
        team: team.name,
        role: invitation.role,
        email: invitation.email,
        holder,
        errors: Errors::default(),
    };
    let mut res = html(&page, StatusCode::OK)?;
    if let Some(cookie) = cookie {
        res.add_cookie(&cookie).map_err(|_| PageError::Internal)?;
    }
    Ok(res)
}

#[derive(Debug, Deserialize)]
struct AcceptForm {
    #[serde(default)]
    password: String,
}

#[post("/invitations/{token}")]
async fn accept(
    req: HttpRequest,
    state: web::Data<WebState>,
    viewer: MaybeViewer,
    token: web::Path<String>,
    Posted(form): Posted<AcceptForm>,
) -> Result<HttpResponse, PageError> {
    let now = Utc::now();
    let Some((invitation, team)) = members::find_invitation(&state.pool, &token, now).await? else {
        return gone();
    };
    let holder = holder(&state, &viewer, &invitation.email).await?;
    // A new account's password is hashed before the transaction, which then does all of
    // it or none: the account, its password, the membership and the spent invitation.
    let new_password = match holder {
        Holder::Invitee => None,
        Holder::SomeoneElse(_) | Holder::HasAccount => {
            return Err(PageError::Forbidden(
                "This invitation is for another address. Log in as that address to accept it.",
            ));
        }
        Holder::NewAccount => {
            let password = form.password;
            match web::block(move || hash_password(&password))
                .await
                .map_err(|_| PageError::Internal)?
            {
                Ok(hash) => Some(hash),
                Err(e) => {
                    let mut errors = Errors::default();
                    errors.add("password", sentence(&e.to_string()));
                    let (csrf, _) = form_csrf(&req, &viewer);
                    let page = InvitationPage {
                        csrf,
                        token: token.into_inner(),
                        team: team.name,
                        role: invitation.role,
                        email: invitation.email,
                        holder: Holder::NewAccount,
                        errors,
                    };
                    return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
                }
            }
        }
    };
    let mut tx = state.pool.begin().await?;
    let user_id = match (&new_password, &viewer.0) {
        (None, Some(v)) => v.user.id.clone(),
        (None, None) => return Err(PageError::Internal),
        // Invited earlier to another team, the person may exist without a password;
        // one who chose a password meanwhile logs in instead.
        (Some(hash), _) => match store::find_by_email(&mut *tx, &invitation.email).await? {
            Some(user) if user.password_hash.is_some() => {
                return Err(PageError::Forbidden(
                    "This address has an account now. Log in, then open the invitation again.",
                ));
            }
            Some(user) => {
                store::set_password(&mut *tx, &user.id, hash).await?;
                user.id
            }
            None => {
                store::create_user(&mut *tx, &invitation.email, hash, Some(now))
                    .await?
                    .id
            }
        },
    };
    let Some(team) = members::accept(&mut tx, &token, &user_id, now).await? else {
        return gone();
    };
    if new_password.is_some() {
        store::mark_verified(&mut *tx, &user_id, now).await?;
    }
    audit::record(
        &mut *tx,
        &team.id,
        &invitation.email,
        "invitation.accept",
        &format!("{} as {}", invitation.email, invitation.role),
    )
    .await?;
    let session = if new_password.is_some() {
        Some(store::start_session(&mut *tx, &user_id, now).await?)
    } else {
        None
    };
    tx.commit().await?;
    let mut res = see_other(format!("/t/{}", team.slug));
    if let Some(session) = session {
        res.add_cookie(&session_cookie(&state, session.token))
            .map_err(|_| PageError::Internal)?;
    }
    Ok(res)
}
