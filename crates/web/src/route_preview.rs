//! `POST /api/v1/routes/{id}/preview` and `POST /api/v1/routes/preview`: what a route
//! would do with an event, stored or pasted, without sending anything. The rules are
//! the application layer's (`app::previews`).

use actix_web::{post, web};
use switchyard_domain::app::previews::{self, Preview, PreviewSample, PreviewUnsaved};
use switchyard_domain::ids::RouteId;

use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::{ApiTeam, WebState};

#[utoipa::path(tag = "routes", request_body = PreviewSample,
    responses((status = 200, body = Preview), (status = 404), (status = 422)))]
#[post("/routes/{id}/preview")]
pub async fn preview_saved(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<RouteId>,
    body: JsonBody<PreviewSample>,
) -> ApiResult<web::Json<Preview>> {
    let id = id.into_inner();
    let preview = previews::saved(team.scope(&state), &id, body.into_inner()).await?;
    Ok(web::Json(preview))
}

#[utoipa::path(tag = "routes", request_body = PreviewUnsaved,
    responses((status = 200, body = Preview), (status = 422)))]
#[post("/routes/preview")]
pub async fn preview_unsaved(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: JsonBody<PreviewUnsaved>,
) -> ApiResult<web::Json<Preview>> {
    let preview = previews::unsaved(team.scope(&state), body.into_inner()).await?;
    Ok(web::Json(preview))
}
