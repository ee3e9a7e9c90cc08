//! A source's signing secrets in the dashboard: pasting the first (or the next, to
//! rotate), and retiring the old one.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use switchyard_domain::accounts::Action;
use switchyard_domain::app::sources as manage;
use switchyard_domain::ids::{SecretId, SourceId};
use switchyard_domain::store::sources;

use super::error::{PageError, TeamPath};
use super::flash::{self, Flash};
use super::forms::{Errors, NoFields, Posted};
use super::session::Member;
use super::sources::show_page;
use super::{html, see_other};
use crate::WebState;

#[derive(Debug, Deserialize)]
struct SecretForm {
    #[serde(default)]
    secret: String,
}

#[post("/t/{team}/sources/{id}/secrets")]
pub(super) async fn add(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<SourceId>>,
    Posted(form): Posted<SecretForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    let first = sources::secrets(&state.pool, member.team_id(), &id)
        .await?
        .is_empty();
    match manage::add_secret(member.scope(&state), &id, &form.secret).await {
        Ok(_) => {
            let notice = match first {
                true => "Signing secret saved: requests signed with it are accepted from now on.",
                false => "Secret added: both verify until you retire the old one.",
            };
            let page = member.path(&format!("sources/{id}#secrets"));
            Ok(see_other(
                flash::put(&state, &member.viewer, &Flash::notice(notice), &page).await?,
            ))
        }
        Err(e) => {
            let errors = Errors::from_app(e, &["secret"])?;
            html(
                &show_page(&state, &member, &id, errors).await?,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// `/t/{team}/sources/{id}/secrets/{secret}/…`.
#[derive(Deserialize)]
struct SecretPath {
    id: SourceId,
    secret: SecretId,
}

#[post("/t/{team}/sources/{id}/secrets/{secret}/retire")]
pub(super) async fn retire(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<SecretPath>,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let SecretPath { id, secret } = path.into_inner();
    match manage::retire_secret(member.scope(&state), &id, &secret).await {
        Ok(()) => Ok(see_other(member.path(&format!("sources/{id}#secrets")))),
        Err(e) => {
            let errors = Errors::from_app(e, &["confirm"])?;
            html(
                &show_page(&state, &member, &id, errors).await?,
                StatusCode::CONFLICT,
            )
        }
    }
}
