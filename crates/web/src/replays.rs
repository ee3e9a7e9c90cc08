//! Bulk replay: `POST /api/v1/deliveries/replay` counts and samples what a filter selects
//! (`dry_run`), or starts a job that replays it in batches; `/api/v1/replays/{id}` shows
//! its progress and cancels it.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_domain::StoreError;
use switchyard_domain::app::Invalid;
use switchyard_domain::delivery::DeliveryStatus;
use switchyard_domain::ids::{DestinationId, ReplayId, RouteId, TeamId};
use switchyard_domain::model::Delivery;
use switchyard_domain::store::audit;
use switchyard_domain::store::queue::{ReplayTask, push_replay};
use switchyard_domain::store::replays::{self, Replay, ReplayFilter};
use switchyard_problem::Problem;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiResult, missing, not_found};
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(start).service(get).service(cancel);
}

/// How many matching deliveries a dry run shows.
const SAMPLE: i64 = 10;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterInput {
    /// `failed` (the default), `unknown_outcome`, `cancelled` or `succeeded`.
    pub(crate) status: Option<String>,
    pub(crate) route_id: Option<String>,
    pub(crate) destination_id: Option<String>,
    /// Created at or after (RFC 3339).
    pub(crate) since: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub(crate) until: Option<DateTime<Utc>>,
}

impl FilterInput {
    pub(crate) fn parse(self) -> ApiResult<ReplayFilter> {
        let mut invalid = Invalid::default();
        let status = match self.status.as_deref() {
            None | Some("") => Some(DeliveryStatus::Failed),
            Some(raw) => invalid.check(
                "filter.status",
                raw.parse::<DeliveryStatus>()
                    .map_err(|e| e.to_string())
                    .and_then(|s| match s.is_replayable() {
                        true => Ok(s),
                        false => Err(format!(
                            "{s} deliveries are still on their way; replay takes failed, unknown_outcome, cancelled or succeeded ones"
                        )),
                    }),
            ),
        };
        let route_id = self
            .route_id
            .filter(|r| !r.is_empty())
            .and_then(|r| invalid.check("filter.route_id", r.parse::<RouteId>()));
        let destination_id = self
            .destination_id
            .filter(|d| !d.is_empty())
            .and_then(|d| invalid.check("filter.destination_id", d.parse::<DestinationId>()));
        invalid.finish()?;
        Ok(ReplayFilter {
            status: status.unwrap_or(DeliveryStatus::Failed),
            route_id,
            destination_id,
            since: self.since,
            until: self.until,
        })
    }
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

/// What a filter selects now, and the newest few of them.
pub(crate) async fn dry_run(
    state: &WebState,
    team: &TeamId,
    filter: &ReplayFilter,
) -> ApiResult<(i64, Vec<Delivery>)> {
    let now = Utc::now();
    let count = replays::count(&state.pool, team, filter, now).await?;
    let sample = replays::sample(&state.pool, team, filter, now, SAMPLE).await?;
    Ok((count, sample))
}

/// Records the replay and pushes its job in one transaction.
pub(crate) async fn start_replay(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    filter: &ReplayFilter,
) -> ApiResult<Replay> {
    let now = Utc::now();
    let mut tx = state.pool.begin().await?;
    let count = replays::count(&mut *tx, team, filter, now).await?;
    let replay = replays::create(&mut tx, team, filter, count, actor, now).await?;
    let task = ReplayTask {
        team_id: team.clone(),
        replay_id: replay.id.clone(),
    };
    push_replay(&mut tx, &task).await?;
    audit::record(
        &mut *tx,
        team,
        actor,
        "replay.start",
        &format!("{} ({count} {} deliveries)", replay.id, filter.status),
    )
    .await?;
    tx.commit().await?;
    Ok(replay)
}

pub(crate) async fn cancel_replay(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    id: &ReplayId,
) -> ApiResult<Replay> {
    let mut tx = state.pool.begin().await?;
    let replay = replays::cancel(&mut tx, team, id, Utc::now())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(why) => Problem::conflict(why).into(),
            other => missing("replay")(other),
        })?;
    audit::record(&mut *tx, team, actor, "replay.cancel", id.as_str()).await?;
    tx.commit().await?;
    Ok(replay)
}

/// Replays every delivery a filter selects (by default the failed ones), in a job that
/// survives restarts and respects each destination's limits; `dry_run` only counts.
#[utoipa::path(tag = "deliveries", request_body = StartReplay,
    responses((status = 200, body = DryRun), (status = 202, body = Started), (status = 422)))]
#[post("/deliveries/replay")]
async fn start(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: web::Json<StartReplay>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let filter = body.filter.parse()?;
    if body.dry_run {
        let (count, sample) = dry_run(&state, &team.team, &filter).await?;
        return Ok(HttpResponse::Ok().json(DryRun { count, sample }));
    }
    let replay = start_replay(&state, &team.team, &team.actor, &filter).await?;
    Ok(HttpResponse::Accepted().json(Started {
        count: i64::from(replay.total),
        id: replay.id,
    }))
}

fn parse_id(id: &str) -> ApiResult<ReplayId> {
    id.parse().map_err(|_| not_found("replay"))
}

/// A bulk replay's progress: `done` of `total`, and whether it is `running`, `done` or
/// `cancelled`.
#[utoipa::path(tag = "deliveries", responses((status = 200, body = Replay), (status = 404)))]
#[get("/replays/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<Replay>> {
    let replay = replays::get(&state.pool, &team.team, &parse_id(&id)?)
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
    id: web::Path<String>,
) -> ApiResult<web::Json<Replay>> {
    let replay = cancel_replay(&state, &team.team, &team.actor, &parse_id(&id)?).await?;
    Ok(web::Json(replay))
}
