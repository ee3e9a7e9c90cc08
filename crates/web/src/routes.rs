//! `/api/v1/routes`: which events of a source go to which destination.

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use switchyard_domain::app;
use switchyard_domain::app::routes::{CreateRoute, UpdateRoute};
use switchyard_domain::ids::RouteId;
use switchyard_domain::model::Route;
use switchyard_domain::store::routes;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::body::JsonBody;
use crate::error::{ApiResult, missing};
use crate::list::{List, Paging};
use crate::query::Query;
use crate::reads::Wrote;
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete)
        .service(crate::route_preview::preview_saved)
        .service(crate::route_preview::preview_unsaved);
}

#[utoipa::path(tag = "routes", request_body = CreateRoute,
    responses((status = 201, body = Route), (status = 401), (status = 422)))]
#[post("/routes")]
async fn create(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: JsonBody<CreateRoute>,
) -> ApiResult<HttpResponse> {
    let route = app::routes::create(team.scope(&state), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(route))
}

#[utoipa::path(tag = "routes", params(Paging), responses((status = 200, body = List<Route>)))]
#[get("/routes")]
async fn list(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    q: Query<Paging>,
) -> ApiResult<web::Json<List<Route>>> {
    let page = routes::list(wrote.pool(&state).await, &team.team, &q.request()?).await?;
    Ok(web::Json(List::from_page(page, |r| r)))
}

#[utoipa::path(tag = "routes", responses((status = 200, body = Route), (status = 404)))]
#[get("/routes/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    id: web::Path<RouteId>,
) -> ApiResult<web::Json<Route>> {
    let (team, id) = (&team.team, &id.into_inner());
    let route = wrote
        .find(&state, |db| async move { routes::get(&db, team, id).await })
        .await
        .map_err(missing("route"))?;
    Ok(web::Json(route))
}

#[utoipa::path(tag = "routes", request_body = UpdateRoute,
    responses((status = 200, body = Route), (status = 404), (status = 422)))]
#[patch("/routes/{id}")]
async fn update(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<RouteId>,
    body: JsonBody<UpdateRoute>,
) -> ApiResult<web::Json<Route>> {
    let id = id.into_inner();
    let route = app::routes::update(team.scope(&state), &id, body.into_inner()).await?;
    Ok(web::Json(route))
}

#[utoipa::path(tag = "routes", responses((status = 204), (status = 404)))]
#[delete("/routes/{id}")]
async fn delete(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<RouteId>,
) -> ApiResult<HttpResponse> {
    app::routes::delete(team.scope(&state), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
