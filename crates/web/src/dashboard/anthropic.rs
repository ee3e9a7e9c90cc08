//! Settings: the team's Anthropic API keys (its own, and one per Anthropic workspace),
//! which enrichment calls the Managed Agents API with. Owners and admins store, check
//! and remove them; everyone sees which keys there are, by their last four characters.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use switchyard_domain::accounts::Action;
use switchyard_domain::app::integrations::{self, PutAnthropicKey};

use super::flash::{self, Flash};
use super::forms::{Errors, Posted};
use super::session::Member;
use super::team::SettingsPage;
use super::{PageError, html, see_other};
use crate::WebState;
use crate::integrations::check_key;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(store).service(remove).service(check);
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeyForm {
    api_key: String,
    workspace_id: String,
}

impl KeyForm {
    fn workspace(&self) -> Option<String> {
        let workspace = self.workspace_id.trim();
        (!workspace.is_empty()).then(|| workspace.to_owned())
    }
}

const SECTION: &str = "settings#anthropic";

#[post("/t/{team}/anthropic")]
async fn store(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<KeyForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Manage)?;
    let cmd = PutAnthropicKey {
        api_key: form.api_key.clone(),
        workspace_id: form.workspace(),
    };
    match integrations::put_key(member.scope(&state), cmd).await {
        Ok(_) => {
            let notice = Flash::notice("Anthropic API key stored.");
            let page = member.path(SECTION);
            Ok(see_other(
                flash::put(&state, &member.viewer, &notice, &page).await?,
            ))
        }
        Err(e) => {
            let mut page = SettingsPage::load(&state, &member).await?;
            page.anthropic_workspace = form.workspace_id;
            page.errors = Errors::from_app(e, &["api_key", "workspace_id"])?;
            html(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

#[post("/t/{team}/anthropic/remove")]
async fn remove(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<KeyForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Manage)?;
    integrations::delete_key(member.scope(&state), form.workspace().as_deref()).await?;
    let notice = Flash::notice("Anthropic API key removed.");
    let page = member.path(SECTION);
    Ok(see_other(
        flash::put(&state, &member.viewer, &notice, &page).await?,
    ))
}

/// One cheap authenticated call with the key; the answer is shown on the page.
#[post("/t/{team}/anthropic/check")]
async fn check(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<KeyForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Manage)?;
    let workspace = form.workspace();
    let checked = check_key(&state, member.team_id(), workspace.as_deref()).await?;
    let which = match &workspace {
        Some(w) => format!("the key for {w}"),
        None => "the team's key".to_owned(),
    };
    let flash = if checked.ok {
        Flash::notice(format!("Checked {which}: {}", checked.message))
    } else {
        Flash {
            problem: Some(format!("Checked {which}: {}", checked.message)),
            ..Flash::default()
        }
    };
    let page = member.path(SECTION);
    Ok(see_other(
        flash::put(&state, &member.viewer, &flash, &page).await?,
    ))
}
