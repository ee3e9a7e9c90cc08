//! Routes: which events of a source go to which destination, and what the destination
//! receives. Event-type globs, the filter, the template and the subject are compiled
//! before anything is stored, so a route that saves is one that runs.

use serde::Deserialize;

use super::error::missing;
use super::{AppError, Invalid, NothingElse, Scope};
use crate::StoreError;
use crate::ids::{DestinationId, RouteId, SourceId};
use crate::model::{Coalesce, Name, Ordering, Route};
use crate::providers::ProviderKind;
use crate::routing::EventTypes;
use crate::routing::template::check_template;
use crate::routing::{Filter, TemplateError};
use crate::store::routes::{self, NewRoute, RoutePatch};
use crate::store::sources;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateRoute {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(flatten)]
    pub draft: RouteDraft,
    pub paused: Option<bool>,
    /// Anthropic sources only: fetch the object the event names (its session, vault
    /// credential, …) before rendering, for templates to read as `object`. Only owners
    /// and admins may turn it on.
    pub enrich: Option<bool>,
    /// Deliver the events of one key (default the session, `/data/id`) one at a time, in
    /// their `created_at` order.
    pub ordering: Option<Ordering>,
    /// Deliver only the newest of a burst of one key's events.
    pub coalesce: Option<Coalesce>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub nothing_else: NothingElse,
}

/// A route as a command writes it, not yet checked: what it takes and what it sends.
/// Saving one and previewing one not saved read the same fields.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RouteDraft {
    #[serde(default)]
    pub source_id: String,
    #[serde(default)]
    pub destination_id: String,
    /// Globs: `*` matches anything (dots too), `!pattern` excludes. Default `["*"]`.
    pub event_types: Option<Vec<String>>,
    /// A boolean minijinja expression over `payload`, `headers` and `event_type`, e.g.
    /// `payload.action == "opened"`; the route takes only events for which it is true.
    pub filter: Option<String>,
    /// What the destination takes, as a minijinja template: a routine's text, a Slack
    /// message (or a Block Kit object, when it renders JSON), an email's text body, an
    /// HTTP body. Null: the destination kind's default.
    pub template: Option<String>,
    /// Email routes: the subject, as a minijinja template.
    pub subject: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoute {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub paused: Option<bool>,
    /// A new filter; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub filter: Option<Option<String>>,
    /// A new template; `null` returns to the kind's default.
    #[serde(default, deserialize_with = "nullable")]
    pub template: Option<Option<String>>,
    /// A new subject template; `null` returns to the default.
    #[serde(default, deserialize_with = "nullable")]
    pub subject: Option<Option<String>>,
    /// Anthropic sources only: fetch the object the event names before rendering.
    pub enrich: Option<bool>,
    /// New ordering; `null` stops it.
    #[serde(default, deserialize_with = "nullable")]
    pub ordering: Option<Option<Ordering>>,
    /// New coalescing; `null` stops it.
    #[serde(default, deserialize_with = "nullable")]
    pub coalesce: Option<Option<Coalesce>>,
}

/// Validates and stores a new route.
pub async fn create(scope: Scope<'_>, body: CreateRoute) -> Result<Route, AppError> {
    let mut invalid = Invalid::default();
    let name = invalid.check("name", Name::parse(&body.name));
    let source_id = invalid.check("source_id", body.draft.source_id.parse::<SourceId>());
    let destination_id = invalid.check(
        "destination_id",
        body.draft.destination_id.parse::<DestinationId>(),
    );
    let event_types = check_patterns(
        &mut invalid,
        body.draft
            .event_types
            .unwrap_or_else(|| vec!["*".to_owned()]),
    );
    let filter = check_source(&mut invalid, "filter", body.draft.filter, check_filter);
    let template = check_source(
        &mut invalid,
        "template",
        body.draft.template,
        check_template,
    );
    let subject = check_source(&mut invalid, "subject", body.draft.subject, check_template);
    let ordering = check_option(&mut invalid, "ordering", body.ordering, Ordering::check);
    let coalesce = check_option(&mut invalid, "coalesce", body.coalesce, Coalesce::check);
    invalid.finish()?;
    let (Some(name), Some(source_id), Some(destination_id), Some(event_types)) =
        (name, source_id, destination_id, event_types)
    else {
        return Err(StoreError::Internal("a checked route lost a field".into()).into());
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
        enrich: body.enrich.unwrap_or(false),
        ordering,
        coalesce,
    };
    let mut tx = scope.pool.begin().await?;
    if new.enrich {
        enrichable(&mut tx, scope, &source_id).await?;
    }
    let route = routes::insert(&mut *tx, scope.team, new)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::field(
                "source_id",
                "source_id and destination_id must name a source and a destination of this team",
            ),
            other => other.into(),
        })?;
    scope.audit(&mut *tx, "route.create", &route.name).await?;
    tx.commit().await?;
    Ok(route)
}

/// Applies the fields sent.
pub async fn update(scope: Scope<'_>, id: &RouteId, body: UpdateRoute) -> Result<Route, AppError> {
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
    let ordering = body
        .ordering
        .map(|o| check_option(&mut invalid, "ordering", o, Ordering::check));
    let coalesce = body
        .coalesce
        .map(|c| check_option(&mut invalid, "coalesce", c, Coalesce::check));
    invalid.finish()?;
    let patch = RoutePatch {
        name: name.map(|n| n.to_string()),
        event_types,
        paused: body.paused,
        filter,
        template,
        subject,
        enrich: body.enrich,
        ordering,
        coalesce,
    };
    let mut tx = scope.pool.begin().await?;
    let route = routes::update(&mut *tx, scope.team, id, patch)
        .await
        .map_err(missing("route"))?;
    if route.enrich {
        enrichable(&mut tx, scope, &route.source_id).await?;
    }
    scope.audit(&mut *tx, "route.update", &route.name).await?;
    tx.commit().await?;
    Ok(route)
}

/// Enrichment fetches from the Anthropic API, so only a route on an Anthropic source
/// can ask for it.
async fn enrichable(
    tx: &mut sqlx::PgConnection,
    scope: Scope<'_>,
    source: &SourceId,
) -> Result<(), AppError> {
    let source = sources::get(&mut *tx, scope.team, source)
        .await
        .map_err(missing("source"))?;
    if source.provider != ProviderKind::Anthropic {
        return Err(AppError::field(
            "enrich",
            "only routes on an Anthropic source can be enriched",
        ));
    }
    Ok(())
}

/// Deletes a route; its deliveries stay in the log.
pub async fn delete(scope: Scope<'_>, id: &RouteId) -> Result<(), AppError> {
    let mut tx = scope.pool.begin().await?;
    let found = routes::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("route"))?;
    routes::delete(&mut *tx, scope.team, id).await?;
    scope.audit(&mut *tx, "route.delete", &found.name).await?;
    tx.commit().await?;
    Ok(())
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
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A sequencing option that checks out, or the reason under its field.
fn check_option<T>(
    invalid: &mut Invalid,
    field: &str,
    option: Option<T>,
    check: impl Fn(&T) -> Result<(), String>,
) -> Option<T> {
    let option = option?;
    match check(&option) {
        Ok(()) => Some(option),
        Err(e) => {
            invalid.add(field, e);
            None
        }
    }
}

fn check_patterns(invalid: &mut Invalid, patterns: Vec<String>) -> Option<Vec<String>> {
    invalid
        .check("event_types", EventTypes::parse(&patterns))
        .map(|t| t.to_strings())
}
