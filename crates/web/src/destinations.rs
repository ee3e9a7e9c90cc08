//! `/api/v1/destinations`: where deliveries go.

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use switchyard_domain::delivery::DestinationKind;
use switchyard_domain::ids::DestinationId;
use switchyard_domain::model::{Destination, DestinationUrl, Name};
use switchyard_domain::secrets::new_signing_secret;
use switchyard_domain::store::destinations::{self, DestinationPatch};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiResult, Invalid, missing, not_found};
use crate::list::{List, Paging};
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete);
}

fn parse_id(id: &str) -> ApiResult<DestinationId> {
    id.parse().map_err(|_| not_found("destination"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDestination {
    name: String,
    /// `http`. Routines, Slack and email are added with their delivery rules.
    kind: String,
    /// An `https://` URL on a public address.
    url: String,
}

/// A destination as created: the only time its signing secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedDestination {
    #[serde(flatten)]
    destination: Destination,
    /// `whsec_…`: verify Switchyard's `webhook-signature` with it (Standard Webhooks).
    signing_secret: String,
}

fn parse_kind(raw: &str) -> Result<DestinationKind, String> {
    match raw.parse::<DestinationKind>()? {
        DestinationKind::Http => Ok(DestinationKind::Http),
        other => Err(format!(
            "{other} destinations are not available yet; use http"
        )),
    }
}

#[utoipa::path(tag = "destinations", request_body = CreateDestination,
    responses((status = 201, body = CreatedDestination), (status = 401), (status = 422)))]
#[post("/destinations")]
async fn create(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: web::Json<CreateDestination>,
) -> ApiResult<HttpResponse> {
    let mut invalid = Invalid::default();
    let name = invalid.check("name", Name::parse(&body.name));
    let kind = invalid.check("kind", parse_kind(&body.kind));
    let url = invalid.check("url", DestinationUrl::parse(&body.url, state.policy));
    invalid.finish()?;
    let (Some(name), Some(kind), Some(url)) = (name, kind, url) else {
        return Err(switchyard_domain::problem::Problem::internal().into());
    };
    let signing_secret = new_signing_secret();
    let sealed = state.key.seal(signing_secret.as_bytes());
    let destination = destinations::insert(
        &state.pool,
        &team.0,
        name.as_str(),
        kind,
        url.as_str(),
        &sealed,
    )
    .await?;
    Ok(HttpResponse::Created().json(CreatedDestination {
        destination,
        signing_secret,
    }))
}

#[utoipa::path(tag = "destinations", params(Paging), responses((status = 200, body = List<Destination>)))]
#[get("/destinations")]
async fn list(
    team: ApiTeam,
    state: web::Data<WebState>,
    q: web::Query<Paging>,
) -> ApiResult<web::Json<List<Destination>>> {
    let page = destinations::list(&state.pool, &team.0, &q.request()).await?;
    Ok(web::Json(List::from_page(page, |d| d)))
}

#[utoipa::path(tag = "destinations", responses((status = 200, body = Destination), (status = 404)))]
#[get("/destinations/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<Destination>> {
    let found = destinations::get(&state.pool, &team.0, &parse_id(&id)?)
        .await
        .map_err(missing("destination"))?;
    Ok(web::Json(found))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDestination {
    name: Option<String>,
    url: Option<String>,
}

#[utoipa::path(tag = "destinations", request_body = UpdateDestination,
    responses((status = 200, body = Destination), (status = 404), (status = 422)))]
#[patch("/destinations/{id}")]
async fn update(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
    body: web::Json<UpdateDestination>,
) -> ApiResult<web::Json<Destination>> {
    let id = parse_id(&id)?;
    let mut invalid = Invalid::default();
    let name = body
        .name
        .as_deref()
        .and_then(|n| invalid.check("name", Name::parse(n)));
    let url = body
        .url
        .as_deref()
        .and_then(|u| invalid.check("url", DestinationUrl::parse(u, state.policy)));
    invalid.finish()?;
    let patch = DestinationPatch {
        name: name.map(|n| n.to_string()),
        url: url.map(|u| u.as_str().to_owned()),
    };
    let updated = destinations::update(&state.pool, &team.0, &id, patch)
        .await
        .map_err(missing("destination"))?;
    Ok(web::Json(updated))
}

#[utoipa::path(tag = "destinations", responses((status = 204), (status = 404)))]
#[delete("/destinations/{id}")]
async fn delete(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    destinations::delete(&state.pool, &team.0, &parse_id(&id)?)
        .await
        .map_err(missing("destination"))?;
    Ok(HttpResponse::NoContent().finish())
}
