//! `/api/v1/routes`: which events of a source go to which destination.

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use serde::Deserialize;
use switchyard_domain::ids::{DestinationId, RouteId, SourceId, TeamId};
use switchyard_domain::model::{Name, Route};
use switchyard_domain::problem::Problem;
use switchyard_domain::routing::EventTypes;
use switchyard_domain::routing::template::check_template;
use switchyard_domain::routing::{Filter, TemplateError};
use switchyard_domain::store::audit;
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
    pub(crate) name: String,
    pub(crate) source_id: String,
    pub(crate) destination_id: String,
    /// Globs: `*` matches anything (dots too), `!pattern` excludes. Default `["*"]`.
    pub(crate) event_types: Option<Vec<String>>,
    /// A boolean minijinja expression over `payload`, `headers` and `event_type`, e.g.
    /// `payload.action == "opened"`; the route takes only events for which it is true.
    pub(crate) filter: Option<String>,
    /// What the destination takes, as a minijinja template: a routine's text, a Slack
    /// message (or a Block Kit object, when it renders JSON), an email's text body, an
    /// HTTP body. Null: the destination kind's default.
    pub(crate) template: Option<String>,
    /// Email routes: the subject, as a minijinja template.
    pub(crate) subject: Option<String>,
    pub(crate) paused: Option<bool>,
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
    let route = create_route(&state, &team.0, &team.1, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(route))
}

/// Validates and stores a new route, for the API and the dashboard alike.
pub(crate) async fn create_route(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    body: CreateRoute,
) -> ApiResult<Route> {
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
    let mut tx = state.pool.begin().await?;
    let route = routes::insert(&mut *tx, team, new)
        .await
        .map_err(|e| match e {
            switchyard_domain::StoreError::NotFound => ApiError(Problem::invalid_field(
                "source_id",
                "source_id and destination_id must name a source and a destination of this team",
            )),
            other => ApiError::from(other),
        })?;
    audit::record(&mut *tx, team, actor, "route.create", &route.name).await?;
    tx.commit().await?;
    Ok(route)
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

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoute {
    pub(crate) name: Option<String>,
    pub(crate) event_types: Option<Vec<String>>,
    pub(crate) paused: Option<bool>,
    /// A new filter; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) filter: Option<Option<String>>,
    /// A new template; `null` returns to the kind's default.
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) template: Option<Option<String>>,
    /// A new subject template; `null` returns to the default.
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) subject: Option<Option<String>>,
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
    let route = update_route(&state, &team.0, &team.1, &id, body.into_inner()).await?;
    Ok(web::Json(route))
}

/// Applies the fields sent, for the API and the dashboard alike.
pub(crate) async fn update_route(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    id: &RouteId,
    body: UpdateRoute,
) -> ApiResult<Route> {
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
    let mut tx = state.pool.begin().await?;
    let route = routes::update(&mut *tx, team, id, patch)
        .await
        .map_err(missing("route"))?;
    audit::record(&mut *tx, team, actor, "route.update", &route.name).await?;
    tx.commit().await?;
    Ok(route)
}

#[utoipa::path(tag = "routes", responses((status = 204), (status = 404)))]
#[delete("/routes/{id}")]
async fn delete(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    delete_route(&state, &team.0, &team.1, &parse_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) async fn delete_route(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    id: &RouteId,
) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    let found = routes::get(&mut *tx, team, id)
        .await
        .map_err(missing("route"))?;
    routes::delete(&mut *tx, team, id).await?;
    audit::record(&mut *tx, team, actor, "route.delete", &found.name).await?;
    tx.commit().await?;
    Ok(())
}
