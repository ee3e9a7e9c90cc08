//! `/api/v1/sources`: where webhooks come in.

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use switchyard_domain::app;
use switchyard_domain::app::sources::{CreateSource, UpdateSource};
use switchyard_domain::ids::{SecretId, SourceId};
use switchyard_domain::model::Source;
use switchyard_domain::store::sources::{self, Rejection, SecretInfo};
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
        .service(rejections)
        .service(list_secrets)
        .service(add_secret)
        .service(retire_secret);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    #[serde(flatten)]
    source: Source,
    /// Where the sender posts webhooks. Keep it secret: it is the credential.
    ingest_url: String,
}

fn view(state: &WebState, source: Source) -> SourceView {
    let ingest_url = state.ingest_url(&source);
    SourceView { source, ingest_url }
}

#[utoipa::path(tag = "sources", request_body = CreateSource,
    responses((status = 201, body = SourceView), (status = 401), (status = 422)))]
#[post("/sources")]
async fn create(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: JsonBody<CreateSource>,
) -> ApiResult<HttpResponse> {
    let source = app::sources::create(team.scope(&state), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(view(&state, source)))
}

#[utoipa::path(tag = "sources", params(Paging), responses((status = 200, body = List<SourceView>)))]
#[get("/sources")]
async fn list(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    q: Query<Paging>,
) -> ApiResult<web::Json<List<SourceView>>> {
    let page = sources::list(wrote.pool(&state).await, &team.team, &q.request()?).await?;
    Ok(web::Json(List::from_page(page, |s| view(&state, s))))
}

#[utoipa::path(tag = "sources", responses((status = 200, body = SourceView), (status = 404)))]
#[get("/sources/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    id: web::Path<SourceId>,
) -> ApiResult<web::Json<SourceView>> {
    let (team, id) = (&team.team, &id.into_inner());
    let source = wrote
        .find(
            &state,
            |db| async move { sources::get(&db, team, id).await },
        )
        .await
        .map_err(missing("source"))?;
    Ok(web::Json(view(&state, source)))
}

#[utoipa::path(tag = "sources", request_body = UpdateSource,
    responses((status = 200, body = SourceView), (status = 404), (status = 422)))]
#[patch("/sources/{id}")]
async fn update(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<SourceId>,
    body: JsonBody<UpdateSource>,
) -> ApiResult<web::Json<SourceView>> {
    let id = id.into_inner();
    let source = app::sources::update(team.scope(&state), &id, body.into_inner()).await?;
    Ok(web::Json(view(&state, source)))
}

#[utoipa::path(tag = "sources", responses((status = 204), (status = 404)))]
#[delete("/sources/{id}")]
async fn delete(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<SourceId>,
) -> ApiResult<HttpResponse> {
    app::sources::delete(team.scope(&state), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Why the source's latest requests were refused (newest first, the last 100 kept).
#[utoipa::path(tag = "sources", responses((status = 200, body = List<Rejection>), (status = 404)))]
#[get("/sources/{id}/rejections")]
async fn rejections(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    id: web::Path<SourceId>,
) -> ApiResult<web::Json<List<Rejection>>> {
    let id = owned(&state, &team, id).await?;
    Ok(whole(
        sources::rejections(wrote.pool(&state).await, &team.team, &id).await?,
    ))
}

/// The id of one of the team's sources, or the 404 for a sub-resource of another's.
async fn owned(state: &WebState, team: &ApiTeam, id: web::Path<SourceId>) -> ApiResult<SourceId> {
    let id = id.into_inner();
    sources::get(&state.pool, &team.team, &id)
        .await
        .map_err(missing("source"))?;
    Ok(id)
}

/// A short list answered whole: no further page.
fn whole<T>(data: Vec<T>) -> web::Json<List<T>> {
    web::Json(List {
        data,
        next_cursor: None,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSecret {
    /// The sender's new signing secret. Both the old and the new one verify until the
    /// old one is retired.
    secret: String,
}

/// The source's secrets (never their values), newest first.
#[utoipa::path(tag = "sources", responses((status = 200, body = List<SecretInfo>), (status = 404)))]
#[get("/sources/{id}/secrets")]
async fn list_secrets(
    team: ApiTeam,
    state: web::Data<WebState>,
    wrote: Wrote,
    id: web::Path<SourceId>,
) -> ApiResult<web::Json<List<SecretInfo>>> {
    let id = owned(&state, &team, id).await?;
    Ok(whole(
        sources::secrets(wrote.pool(&state).await, &team.team, &id).await?,
    ))
}

/// Starts a rotation: adds a second secret that verifies alongside the current one.
#[utoipa::path(tag = "sources", request_body = AddSecret,
    responses((status = 201, body = SecretInfo), (status = 404), (status = 409), (status = 422)))]
#[post("/sources/{id}/secrets")]
async fn add_secret(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<SourceId>,
    body: JsonBody<AddSecret>,
) -> ApiResult<HttpResponse> {
    let added = app::sources::add_secret(team.scope(&state), &id, &body.secret).await?;
    Ok(HttpResponse::Created().json(added))
}

/// Ends a rotation: the retired secret no longer verifies. The last one cannot go.
#[utoipa::path(tag = "sources", responses((status = 204), (status = 404), (status = 409)))]
#[delete("/sources/{id}/secrets/{secret_id}")]
async fn retire_secret(
    team: ApiTeam,
    state: web::Data<WebState>,
    path: web::Path<(SourceId, SecretId)>,
) -> ApiResult<HttpResponse> {
    let (id, secret_id) = path.into_inner();
    app::sources::retire_secret(team.scope(&state), &id, &secret_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
