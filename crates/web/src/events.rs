//! `/api/v1/events`: what sources received.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_domain::app::Invalid;
use switchyard_domain::app::events as events_app;
use switchyard_domain::ids::{EventId, SourceId};
use switchyard_domain::model::{Delivery, Event, EventFilter, PageRequest};
use switchyard_domain::store::{deliveries, events};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiResult, missing};
use crate::list::{List, Paging};
use crate::query::Query;
use crate::reads::Wrote;
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(get).service(rerun);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rerun {
    /// The new deliveries, one per route that takes the event today.
    deliveries: Vec<Delivery>,
}

/// Sends the event through today's routes again: one new delivery per route that takes
/// it (a failed one, saying why, for a route that cannot judge it). Its earlier
/// deliveries stay as they were.
#[utoipa::path(tag = "events", responses((status = 202, body = Rerun), (status = 404)))]
#[post("/events/{id}/rerun")]
async fn rerun(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<EventId>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let before: Vec<Delivery> = deliveries::for_event(&state.pool, &team.team, &id).await?;
    events_app::rerun(team.scope(&state), &id).await?;
    let after = deliveries::for_event(&state.pool, &team.team, &id).await?;
    let deliveries = after
        .into_iter()
        .filter(|d| !before.iter().any(|b| b.id == d.id))
        .collect();
    Ok(HttpResponse::Accepted().json(Rerun { deliveries }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[param(value_type = Option<SourceId>)]
    source_id: Option<String>,
    event_type: Option<String>,
    dedup_key: Option<String>,
    /// Received at or after (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Received before (RFC 3339).
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    /// Items per page, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<u32>,
}

#[utoipa::path(tag = "events", params(EventsQuery), responses((status = 200, body = List<Event>), (status = 422)))]
#[get("/events")]
async fn list(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    q: Query<EventsQuery>,
) -> ApiResult<web::Json<List<Event>>> {
    let q = q.into_inner();
    let mut invalid = Invalid::default();
    let source_id = q
        .source_id
        .map(|s| invalid.check("source_id", s.parse::<SourceId>()));
    invalid.finish()?;
    let filter = EventFilter {
        source_id: source_id.flatten(),
        event_type: q.event_type,
        dedup_key: q.dedup_key,
        since: q.since,
        until: q.until,
        ..EventFilter::default()
    };
    let page: PageRequest = Paging {
        cursor: q.cursor,
        limit: q.limit,
    }
    .request()?;
    let found = events::list(wrote.pool(&state).await, &team.team, &filter, &page).await?;
    Ok(web::Json(List::from_page(found, |e| e)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    event: Event,
    deliveries: Vec<Delivery>,
}

#[utoipa::path(tag = "events", responses((status = 200, body = EventDetail), (status = 404)))]
#[get("/events/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    id: web::Path<EventId>,
) -> ApiResult<web::Json<EventDetail>> {
    let (team, id) = (&team.team, &id.into_inner());
    let (event, deliveries) = wrote
        .find(&state, |db| async move {
            let event = events::get(&db, team, id).await?;
            Ok((event, deliveries::for_event(&db, team, id).await?))
        })
        .await
        .map_err(missing("event"))?;
    Ok(web::Json(EventDetail { event, deliveries }))
}
