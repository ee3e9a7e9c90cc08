//! Bulk replays: what a filter selects (counted and sampled first), a replay job that
//! works through it in batches, and cancelling that job.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{AppError, Invalid, Scope};
use crate::delivery::DeliveryStatus;
use crate::ids::{DestinationId, ReplayId, RouteId};
use crate::model::Delivery;
use crate::store::queue::{ReplayTask, push_replay};
use crate::store::replays::{self, Replay, ReplayFilter};

/// How many matching deliveries a dry run shows.
pub const SAMPLE: i64 = 10;

/// Which deliveries a replay takes, as sent.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterInput {
    /// `failed` (the default), `unknown_outcome`, `cancelled` or `succeeded`.
    pub status: Option<String>,
    pub route_id: Option<String>,
    pub destination_id: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

impl FilterInput {
    pub fn parse(self) -> Result<ReplayFilter, AppError> {
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

/// What a filter selects now, and the newest few of them.
pub async fn dry_run(
    scope: Scope<'_>,
    filter: &ReplayFilter,
) -> Result<(i64, Vec<Delivery>), AppError> {
    let now = Utc::now();
    let count = replays::count(scope.pool, scope.team, filter, now).await?;
    let sample = replays::sample(scope.pool, scope.team, filter, now, SAMPLE).await?;
    Ok((count, sample))
}

/// Records the replay and pushes its job in one transaction.
pub async fn start(scope: Scope<'_>, filter: &ReplayFilter) -> Result<Replay, AppError> {
    let now = Utc::now();
    let mut tx = scope.pool.begin().await?;
    let count = replays::count(&mut *tx, scope.team, filter, now).await?;
    let replay = replays::create(&mut tx, scope.team, filter, count, scope.actor, now).await?;
    let task = ReplayTask {
        team_id: scope.team.clone(),
        replay_id: replay.id.clone(),
    };
    push_replay(&mut tx, &task).await?;
    scope
        .audit(
            &mut *tx,
            "replay.start",
            &format!("{} ({count} {} deliveries)", replay.id, filter.status),
        )
        .await?;
    tx.commit().await?;
    Ok(replay)
}

/// Stops a running replay before its next batch; a finished one is a conflict.
pub async fn cancel(scope: Scope<'_>, id: &ReplayId) -> Result<Replay, AppError> {
    let mut tx = scope.pool.begin().await?;
    let replay = replays::cancel(&mut tx, scope.team, id, Utc::now())
        .await
        .map_err(super::error::missing("replay"))?;
    scope.audit(&mut *tx, "replay.cancel", id.as_str()).await?;
    tx.commit().await?;
    Ok(replay)
}
