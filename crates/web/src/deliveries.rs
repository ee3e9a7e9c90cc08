//! `/api/v1/deliveries`: every attempt to hand an event to a destination; replay, retry
//! now and cancel.

use actix_web::{HttpResponse, web};
use actix_web::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_domain::app::{self, Invalid};
use switchyard_domain::delivery::DeliveryStatus;
use switchyard_domain::ids::{DeliveryId, DestinationId, EventId, RouteId};
use switchyard_domain::model::{Attempt, Delivery, DeliveryFilter};
use switchyard_domain::store::deliveries;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiResult, missing};
use crate::list::{List, Paging};
use crate::query::Query;
use crate::reads::Wrote;
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list)
        .service(get)
        .service(replay)
        .service(retry)
        .service(cancel);
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    #[param(value_type = Option<EventId>)]
    event_id: Option<String>,
    #[param(value_type = Option<RouteId>)]
    route_id: Option<String>,
    #[param(value_type = Option<DestinationId>)]
    destination_id: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    /// Items per page, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<u32>,
}

#[utoipa::path(tag = "deliveries", params(DeliveriesQuery),
    responses((status = 200, body = List<Delivery>), (status = 422)))]
#[get("/deliveries")]
async fn list(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    q: Query<DeliveriesQuery>,
) -> ApiResult<web::Json<List<Delivery>>> {
    let q = q.into_inner();
    let mut invalid = Invalid::default();
    let filter = DeliveryFilter {
        status: q
            .status
            .and_then(|s| invalid.check("status", s.parse::<DeliveryStatus>())),
        retrying: false,
        event_id: q
            .event_id
            .and_then(|s| invalid.check("event_id", s.parse::<EventId>())),
        route_id: q
            .route_id
            .and_then(|s| invalid.check("route_id", s.parse::<RouteId>())),
        destination_id: q
            .destination_id
            .and_then(|s| invalid.check("destination_id", s.parse::<DestinationId>())),
        since: q.since,
        until: q.until,
    };
    invalid.finish()?;
    let page = Paging {
        cursor: q.cursor,
        limit: q.limit,
    }
    .request()?;
    let found = deliveries::list(wrote.pool(&state).await, &team.team, &filter, &page).await?;
    Ok(web::Json(List::from_page(found, |d| d)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    delivery: Delivery,
    attempts: Vec<Attempt>,
}

#[utoipa::path(tag = "deliveries", responses((status = 200, body = DeliveryDetail), (status = 404)))]
#[get("/deliveries/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    id: web::Path<DeliveryId>,
) -> ApiResult<web::Json<DeliveryDetail>> {
    let (team, id) = (&team.team, &id.into_inner());
    let (delivery, attempts) = wrote
        .find(&state, |db| async move {
            deliveries::with_attempts(&db, team, id).await
        })
        .await
        .map_err(missing("delivery"))?;
    Ok(web::Json(DeliveryDetail { delivery, attempts }))
}

/// Sends a settled delivery again: it is `pending` at once, keeps its id, and its new
/// attempts are marked `replay` (`webhook-id` gains `_r{n}`).
#[utoipa::path(tag = "deliveries",
    responses((status = 202, body = Delivery), (status = 404), (status = 409)))]
#[post("/deliveries/{id}/replay")]
async fn replay(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<DeliveryId>,
) -> ApiResult<HttpResponse> {
    let delivery = app::deliveries::replay(team.scope(&state), &id.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(delivery))
}

/// Sends a delivery waiting for its next attempt now: the back-off is cut short and the
/// retry series goes on.
#[utoipa::path(tag = "deliveries",
    responses((status = 202, body = Delivery), (status = 404), (status = 409)))]
#[post("/deliveries/{id}/retry")]
async fn retry(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<DeliveryId>,
) -> ApiResult<HttpResponse> {
    let delivery = app::deliveries::retry_now(team.scope(&state), &id.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(delivery))
}

/// Cancels a delivery still waiting to be sent (`pending`, `held` or `throttled`). A
/// cancelled delivery can be replayed later.
#[utoipa::path(tag = "deliveries",
    responses((status = 200, body = Delivery), (status = 404), (status = 409)))]
#[post("/deliveries/{id}/cancel")]
async fn cancel(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<DeliveryId>,
) -> ApiResult<web::Json<Delivery>> {
    let delivery = app::deliveries::cancel(team.scope(&state), &id.into_inner()).await?;
    Ok(web::Json(delivery))
}
