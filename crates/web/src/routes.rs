//! `/api/v1/routes`: which events of a source go to which destination.

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use serde::Deserialize;
use switchyard_domain::ids::{DestinationId, RouteId, SourceId};
use switchyard_domain::model::{Name, Route};
use switchyard_domain::problem::Problem;
use switchyard_domain::routing::EventTypes;
use switchyard_domain::routing::template::check_template;
use switchyard_domain::routing::{Filter, TemplateError};
use switchyard_domain::store::routes::{self, NewRoute, RoutePatch};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, ApiResult, Invalid, missing, not_found};
use crate::list::{List, Paging};
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

fn parse_id(id: &str) -> ApiResult<RouteId> {
    id.parse().map_err(|_| not_found("route"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoute {
    name: String,
    source_id: String,
    destination_id: String,
    /// Globs: `*` matches anything (dots too), `!pattern` excludes. Default `["*"]`.
    event_types: Option<Vec<String>>,
    /// A boolean minijinja expression over `payload`, `headers` and `event_type`, e.g.
    /// `payload.action == "opened"`; the route takes only events for which it is true.
    filter: Option<String>,
    /// What the destination takes, as a minijinja template: a routine's text, a Slack
    /// message (or a Block Kit object, when it renders JSON), an email's text body, an
    /// HTTP body. Null: the destination kind's default.
    template: Option<String>,
    /// Email routes: the subject, as a minijinja template.
    subject: Option<String>,
    paused: Option<bool>,
}

/// The longest filter, template or subject accepted.
const MAX_TEMPLATE: usize = 64 * 1024;

/// A filter, template or subject that compiles, or the reason with its line and column.
fn check_source(
    invalid: &mut Invalid,
    field: &str,
    source: Option<String>,
    check: impl Fn(&str) -> Result<(), TemplateError>,
) -> Option<String> {
    let source = source?;
    if source.len() > MAX_TEMPLATE {
        invalid.add(field, format!("must be at most {MAX_TEMPLATE} bytes"));
        return None;
    }
    match check(&source) {
        Ok(()) => Some(source),
        Err(e) => {
            invalid.add(field, e);
            None
        }
    }
}

fn check_filter(source: &str) -> Result<(), TemplateError> {
    Filter::compile(source).map(|_| ())
}

/// `Some(None)` for an explicit `null` (clear), `None` when the field is absent.
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn check_patterns(invalid: &mut Invalid, patterns: Vec<String>) -> Option<Vec<String>> {
    invalid
        .check("event_types", EventTypes::parse(&patterns))
        .map(|t| t.to_strings())
}

#[utoipa::path(tag = "routes", request_body = CreateRoute,
    responses((status = 201, body = Route), (status = 401), (status = 422)))]
#[post("/routes")]
async fn create(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: web::Json<CreateRoute>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let mut invalid = Invalid::default();
    let name = invalid.check("name", Name::parse(&body.name));
    let source_id = invalid.check("source_id", body.source_id.parse::<SourceId>());
    let destination_id = invalid.check(
        "destination_id",
        body.destination_id.parse::<DestinationId>(),
    );
    let event_types = check_patterns(
        &mut invalid,
        body.event_types.unwrap_or_else(|| vec!["*".to_owned()]),
    );
    let filter = check_source(&mut invalid, "filter", body.filter, check_filter);
    let template = check_source(&mut invalid, "template", body.template, check_template);
    let subject = check_source(&mut invalid, "subject", body.subject, check_template);
    invalid.finish()?;
    let (Some(name), Some(source_id), Some(destination_id), Some(event_types)) =
        (name, source_id, destination_id, event_types)
    else {
        return Err(Problem::internal().into());
    };
    let new = NewRoute {
        name: name.as_str(),
        source_id: &source_id,
        destination_id: &destination_id,
        event_types,
        filter,
        template,
        subject,
        paused: body.paused.unwrap_or(false),
    };
    let route = routes::insert(&state.pool, &team.0, new)
        .await
        .map_err(|e| match e {
            switchyard_domain::StoreError::NotFound => ApiError(Problem::invalid_field(
                "source_id",
                "source_id and destination_id must name a source and a destination of this team",
            )),
            other => ApiError::from(other),
        })?;
    Ok(HttpResponse::Created().json(route))
}

#[utoipa::path(tag = "routes", params(Paging), responses((status = 200, body = List<Route>)))]
#[get("/routes")]
async fn list(
    team: ApiTeam,
    state: web::Data<WebState>,
    q: web::Query<Paging>,
) -> ApiResult<web::Json<List<Route>>> {
    let page = routes::list(&state.pool, &team.0, &q.request()).await?;
    Ok(web::Json(List::from_page(page, |r| r)))
}

#[utoipa::path(tag = "routes", responses((status = 200, body = Route), (status = 404)))]
#[get("/routes/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<Route>> {
    Ok(web::Json(
        routes::get(&state.pool, &team.0, &parse_id(&id)?)
            .await
            .map_err(missing("route"))?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoute {
    name: Option<String>,
    event_types: Option<Vec<String>>,
    paused: Option<bool>,
    /// A new filter; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    filter: Option<Option<String>>,
    /// A new template; `null` returns to the kind's default.
    #[serde(default, deserialize_with = "nullable")]
    template: Option<Option<String>>,
    /// A new subject template; `null` returns to the default.
    #[serde(default, deserialize_with = "nullable")]
    subject: Option<Option<String>>,
}

#[utoipa::path(tag = "routes", request_body = UpdateRoute,
    responses((status = 200, body = Route), (status = 404), (status = 422)))]
#[patch("/routes/{id}")]
async fn update(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
    body: web::Json<UpdateRoute>,
) -> ApiResult<web::Json<Route>> {
    let id = parse_id(&id)?;
    let body = body.into_inner();
    let mut invalid = Invalid::default();
    let name = body
        .name
        .as_deref()
        .and_then(|n| invalid.check("name", Name::parse(n)));
    let event_types = body
        .event_types
        .and_then(|p| check_patterns(&mut invalid, p));
    let mut replace = |field: &str,
                       value: Option<Option<String>>,
                       check: fn(&str) -> Result<(), TemplateError>| {
        value.map(|v| check_source(&mut invalid, field, v, check))
    };
    let filter = replace("filter", body.filter, check_filter);
    let template = replace("template", body.template, check_template);
    let subject = replace("subject", body.subject, check_template);
    invalid.finish()?;
    let patch = RoutePatch {
        name: name.map(|n| n.to_string()),
        event_types,
        paused: body.paused,
        filter,
        template,
        subject,
    };
    Ok(web::Json(
        routes::update(&state.pool, &team.0, &id, patch)
            .await
            .map_err(missing("route"))?,
    ))
}

#[utoipa::path(tag = "routes", responses((status = 204), (status = 404)))]
#[delete("/routes/{id}")]
async fn delete(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    routes::delete(&state.pool, &team.0, &parse_id(&id)?)
        .await
        .map_err(missing("route"))?;
    Ok(HttpResponse::NoContent().finish())
}
