//! `/api/v1/integrations/anthropic`: the team's Anthropic API keys, which enrichment and
//! reconciliation call the Managed Agents API with. Shown only by their last four
//! characters.

use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use switchyard_domain::app::AppError;
use switchyard_domain::app::integrations::{self, AnthropicStatus, PutAnthropicKey};
use switchyard_domain::ids::TeamId;
use switchyard_send::anthropic::TeamKey;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::query::Query;
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(show)
        .service(store)
        .service(remove)
        .service(check);
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
pub struct KeyQuery {
    /// That workspace's key instead of the team's.
    workspace_id: Option<String>,
}

/// Removes the team's key, or a workspace's.
#[utoipa::path(tag = "integrations", params(KeyQuery),
    responses((status = 204), (status = 404)))]
#[delete("/integrations/anthropic")]
async fn remove(
    team: ApiTeam,
    state: web::Data<WebState>,
    q: Query<KeyQuery>,
) -> ApiResult<HttpResponse> {
    integrations::delete_key(team.scope(&state), q.workspace_id.as_deref()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What checking a key came to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyCheck {
    /// Whether the Anthropic API took the key.
    pub ok: bool,
    /// What it answered, for people.
    pub message: String,
}

/// Makes one cheap authenticated call with the team's key (or a workspace's) and says
/// how it went; the key's `last_used_at` and `last_error` record it too.
#[utoipa::path(tag = "integrations", params(KeyQuery),
    responses((status = 200, body = KeyCheck), (status = 404)))]
#[post("/integrations/anthropic/check")]
async fn check(
    team: ApiTeam,
    state: web::Data<WebState>,
    q: Query<KeyQuery>,
) -> ApiResult<web::Json<KeyCheck>> {
    let answer = check_key(&state, &team.team, q.workspace_id.as_deref()).await?;
    Ok(web::Json(answer))
}

/// Checks the key stored for `workspace` (none: the team's own).
pub(crate) async fn check_key(
    state: &WebState,
    team: &TeamId,
    workspace: Option<&str>,
) -> Result<KeyCheck, AppError> {
    let workspace = workspace.unwrap_or_default();
    let Some(key) = TeamKey::stored(&state.pool, &state.key, team, workspace).await? else {
        return Err(AppError::NotFound("Anthropic API key"));
    };
    Ok(match key.check(&state.anthropic, &state.pool, team).await {
        Ok(()) => KeyCheck {
            ok: true,
            message: "The Anthropic API accepted the key.".to_owned(),
        },
        Err(e) => KeyCheck {
            ok: false,
            message: e.to_string(),
        },
    })
}
