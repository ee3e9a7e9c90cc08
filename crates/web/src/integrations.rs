//! `/api/v1/integrations/anthropic`: the team's Anthropic API keys, which enrichment and
//! reconciliation call the Managed Agents API with. Shown only by their last four
//! characters.

use actix_web::{HttpResponse, delete, get, put, web};
use serde::Deserialize;
use switchyard_domain::app::integrations::{self, AnthropicStatus, PutAnthropicKey};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::query::Query;
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(show).service(store).service(remove);
}

/// Whether the team has a key, and how its last use went.
#[utoipa::path(tag = "integrations", responses((status = 200, body = AnthropicStatus)))]
#[get("/integrations/anthropic")]
async fn show(team: ApiTeam, state: web::Data<WebState>) -> ApiResult<web::Json<AnthropicStatus>> {
    Ok(web::Json(integrations::status(team.scope(&state)).await?))
}

/// Stores the team's key, or with `workspace_id` the key for that Anthropic workspace;
/// it replaces the one there.
#[utoipa::path(tag = "integrations", request_body = PutAnthropicKey,
    responses((status = 200, body = AnthropicStatus), (status = 422)))]
#[put("/integrations/anthropic")]
async fn store(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: JsonBody<PutAnthropicKey>,
) -> ApiResult<web::Json<AnthropicStatus>> {
    let status = integrations::put_key(team.scope(&state), body.into_inner()).await?;
    Ok(web::Json(status))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Remove that workspace's key instead of the team's.
    workspace_id: Option<String>,
}

/// Removes the team's key, or a workspace's.
#[utoipa::path(tag = "integrations", params(RemoveQuery),
    responses((status = 204), (status = 404)))]
#[delete("/integrations/anthropic")]
async fn remove(
    team: ApiTeam,
    state: web::Data<WebState>,
    q: Query<RemoveQuery>,
) -> ApiResult<HttpResponse> {
    integrations::delete_key(team.scope(&state), q.workspace_id.as_deref()).await?;
    Ok(HttpResponse::NoContent().finish())
}
