//! Bulk replay: `POST /api/v1/deliveries/replay` counts and samples what a filter selects
//! (`dry_run`), or starts a job that replays it in batches; `/api/v1/replays/{id}` shows
//! its progress and cancels it.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use switchyard_domain::app;
use switchyard_domain::app::replays::FilterInput;
use switchyard_domain::ids::ReplayId;
use switchyard_domain::model::Delivery;
use switchyard_domain::store::replays::{self, Replay};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::body::JsonBody;
use crate::error::{ApiResult, missing};
use crate::reads::Wrote;
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(start).service(get).service(cancel);
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartReplay {
    #[serde(default)]
    filter: FilterInput,
    /// Count and sample without replaying anything.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRun {
    count: i64,
    /// The newest matching deliveries.
    sample: Vec<Delivery>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Started {
    #[schema(value_type = String)]
    id: ReplayId,
    count: i64,
}

/// Replays every delivery a filter selects (by default the failed ones), in a job that
/// survives restarts and respects each destination's limits; `dry_run` only counts.
#[utoipa::path(tag = "deliveries", request_body = StartReplay,
    responses((status = 200, body = DryRun), (status = 202, body = Started), (status = 422)))]
#[post("/deliveries/replay")]
async fn start(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: JsonBody<StartReplay>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let filter = body.filter.parse()?;
    if body.dry_run {
        let (count, sample) = app::replays::dry_run(team.scope(&state), &filter).await?;
        return Ok(HttpResponse::Ok().json(DryRun { count, sample }));
    }
    let replay = app::replays::start(team.scope(&state), &filter).await?;
    Ok(HttpResponse::Accepted().json(Started {
        count: i64::from(replay.total),
        id: replay.id,
    }))
}

/// A bulk replay's progress: `done` of `total`, and whether it is `running`, `done` or
/// `cancelled`.
#[utoipa::path(tag = "deliveries", responses((status = 200, body = Replay), (status = 404)))]
#[get("/replays/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    id: web::Path<ReplayId>,
) -> ApiResult<web::Json<Replay>> {
    let (team, id) = (&team.team, &id.into_inner());
    let replay = wrote
        .find(
            &state,
            |db| async move { replays::get(&db, team, id).await },
        )
        .await
        .map_err(missing("replay"))?;
    Ok(web::Json(replay))
}

/// Stops a running bulk replay before its next batch; what it replayed stays replayed.
#[utoipa::path(tag = "deliveries", responses((status = 200, body = Replay), (status = 404), (status = 409)))]
#[post("/replays/{id}/cancel")]
async fn cancel(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<ReplayId>,
) -> ApiResult<web::Json<Replay>> {
    let replay = app::replays::cancel(team.scope(&state), &id).await?;
    Ok(web::Json(replay))
}
