//! `/api/v1/destinations`: where deliveries go.

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use switchyard_domain::app;
use switchyard_domain::app::destinations::{
    CreateDestination, CreatedDestination, RotateSigningSecret, RotatedSigningSecret,
    UpdateDestination,
};
use switchyard_domain::ids::DestinationId;
use switchyard_domain::model::Destination;
use switchyard_domain::store::destinations;
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
        .service(rotate_signing_secret);
}

#[utoipa::path(tag = "destinations", request_body = CreateDestination,
    responses((status = 201, body = CreatedDestination), (status = 401), (status = 422)))]
#[post("/destinations")]
async fn create(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: JsonBody<CreateDestination>,
) -> ApiResult<HttpResponse> {
    let (name, config, limits) = body.into_inner().read()?;
    let created = app::destinations::create(team.scope(&state), &name, config, limits).await?;
    Ok(HttpResponse::Created().json(created))
}

#[utoipa::path(tag = "destinations", params(Paging), responses((status = 200, body = List<Destination>)))]
#[get("/destinations")]
async fn list(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    q: Query<Paging>,
) -> ApiResult<web::Json<List<Destination>>> {
    let page = destinations::list(wrote.pool(&state).await, &team.team, &q.request()?).await?;
    Ok(web::Json(List::from_page(page, |d| d)))
}

#[utoipa::path(tag = "destinations", responses((status = 200, body = Destination), (status = 404)))]
#[get("/destinations/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    id: web::Path<DestinationId>,
) -> ApiResult<web::Json<Destination>> {
    let (team, id) = (&team.team, &id.into_inner());
    let found = wrote
        .find(&state, |db| async move {
            destinations::get(&db, team, id).await
        })
        .await
        .map_err(missing("destination"))?;
    Ok(web::Json(found))
}

#[utoipa::path(tag = "destinations", request_body = UpdateDestination,
    responses((status = 200, body = Destination), (status = 404), (status = 422)))]
#[patch("/destinations/{id}")]
async fn update(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<DestinationId>,
    body: JsonBody<UpdateDestination>,
) -> ApiResult<web::Json<Destination>> {
    let id = id.into_inner();
    let updated = app::destinations::update(team.scope(&state), &id, body.into_inner()).await?;
    Ok(web::Json(updated))
}

#[utoipa::path(tag = "destinations", responses((status = 204), (status = 404)))]
#[delete("/destinations/{id}")]
async fn delete(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<DestinationId>,
) -> ApiResult<HttpResponse> {
    app::destinations::delete(team.scope(&state), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new signing secret for an http destination (send `{}` for the default overlap).
/// Until the overlap ends every request is signed with both, so a receiver can switch
/// secrets at its own pace.
#[utoipa::path(tag = "destinations", request_body = RotateSigningSecret,
    responses((status = 200, body = RotatedSigningSecret), (status = 404), (status = 422)))]
#[post("/destinations/{id}/rotate-signing-secret")]
async fn rotate_signing_secret(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<DestinationId>,
    body: JsonBody<RotateSigningSecret>,
) -> ApiResult<web::Json<RotatedSigningSecret>> {
    let id = id.into_inner();
    let rotated =
        app::destinations::rotate_signing_secret(team.scope(&state), &id, body.into_inner())
            .await?;
    Ok(web::Json(rotated))
}
