//! `POST /api/v1/routes/{id}/preview` and `POST /api/v1/routes/preview`: what a route
//! would do with an event, stored or pasted, without sending anything.

use std::collections::BTreeMap;

use actix_web::{post, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchyard_domain::app::Invalid;
use switchyard_domain::delivery::DestinationKind;
use switchyard_domain::delivery::compose::{self, EventView};
use switchyard_domain::ids::{DestinationId, EventId, RouteId, SourceId};
use switchyard_domain::model::{Destination, Source, Target};
use switchyard_domain::providers::structured;
use switchyard_domain::routing::template::{self, EventContext, EventMeta, Links, SourceContext};
use switchyard_domain::routing::{EventTypes, Filter};
use switchyard_domain::store::{destinations, events, routes, sources, teams};
use switchyard_problem::Problem;

use crate::error::{ApiResult, missing, not_found};
use crate::{ApiTeam, WebState};

/// The event to try: a stored one by id, or a pasted sample.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewSample {
    /// A stored event of this team.
    event_id: Option<String>,
    /// A pasted body, as JSON.
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
    /// Pasted headers (names are lower-cased).
    headers: Option<BTreeMap<String, String>>,
    /// The pasted event's type.
    event_type: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewUnsaved {
    source_id: String,
    destination_id: String,
    event_types: Option<Vec<String>>,
    filter: Option<String>,
    template: Option<String>,
    subject: Option<String>,
    event_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
    headers: Option<BTreeMap<String, String>>,
    event_type: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// Whether the route would take the event.
    pub(crate) matched: bool,
    /// Why not, when it would not.
    pub(crate) reason: Option<String>,
    /// What the destination would receive (a routine's text, a Slack payload, an email's
    /// text body, an HTTP body).
    pub(crate) output: Option<String>,
    /// Email routes: the subject.
    pub(crate) subject: Option<String>,
    /// A filter or template that failed on this event, and why.
    pub(crate) error: Option<String>,
}

/// The route under test.
pub(crate) struct Candidate {
    pub(crate) source: Source,
    pub(crate) destination: Destination,
    pub(crate) event_types: Vec<String>,
    pub(crate) filter: Option<String>,
    pub(crate) template: Option<String>,
    pub(crate) subject: Option<String>,
}

/// What today's routes of an event's source make of it: one target per route that takes
/// it, and for a route whose filter fails on it, a target carrying the reason (as ingest
/// does). Paused routes take nothing.
pub(crate) async fn targets_today(
    state: &WebState,
    team: &ApiTeam,
    event: &EventId,
) -> ApiResult<Vec<(Target, DestinationKind)>> {
    let input = PreviewSample {
        event_id: Some(event.to_string()),
        ..PreviewSample::default()
    };
    let sample = sample(state, team, input).await?;
    let (stored, _, _) = events::get_with_body(&state.pool, &team.team, event).await?;
    let source = sources::get(&state.pool, &team.team, &stored.source_id).await?;
    let mut targets = Vec::new();
    for route in routes::for_source(&state.pool, &team.team, &source.id).await? {
        if route.paused {
            continue;
        }
        let destination = destinations::get(&state.pool, &team.team, &route.destination_id).await?;
        let kind = destination.kind;
        let candidate = Candidate {
            source: source.clone(),
            destination,
            event_types: route.event_types.clone(),
            filter: route.filter.clone(),
            template: None,
            subject: None,
        };
        let preview = run(state, team, &candidate, &sample).await?;
        let failure = match (preview.matched, preview.error) {
            (true, _) => None,
            (false, Some(error)) => Some(error),
            (false, None) => continue,
        };
        let target = Target {
            route_id: route.id,
            destination_id: route.destination_id,
            failure,
        };
        targets.push((target, kind));
    }
    Ok(targets)
}

/// How many of a source's latest events the dashboard looks through for one the route's
/// event types match.
const LATEST_LOOKED_AT: u32 = 50;

/// The preview against the source's latest event that the event types match (or its
/// latest event at all, which then shows why it does not match); `None` when the source
/// has no events yet.
pub(crate) async fn preview_latest(
    state: &WebState,
    team: &ApiTeam,
    candidate: &Candidate,
) -> ApiResult<Option<(EventId, Preview)>> {
    let filter = switchyard_domain::model::EventFilter {
        source_id: Some(candidate.source.id.clone()),
        ..Default::default()
    };
    let latest = switchyard_domain::model::PageRequest {
        cursor: None,
        limit: LATEST_LOOKED_AT,
    };
    let recent = events::list(&state.pool, &team.team, &filter, &latest)
        .await?
        .items;
    let types = EventTypes::parse(&candidate.event_types).ok();
    let chosen = recent
        .iter()
        .find(|e| {
            types
                .as_ref()
                .is_some_and(|t| t.matches(e.event_type.as_deref()))
        })
        .or(recent.first());
    let Some(event) = chosen else {
        return Ok(None);
    };
    let input = PreviewSample {
        event_id: Some(event.id.to_string()),
        ..PreviewSample::default()
    };
    let sample = sample(state, team, input).await?;
    let preview = run(state, team, candidate, &sample).await?;
    Ok(Some((event.id.clone(), preview)))
}

/// The event under test, as the worker would see it.
struct Sample {
    id: String,
    event_type: Option<String>,
    headers: Value,
    body: Vec<u8>,
    received_at: chrono::DateTime<chrono::Utc>,
    dedup_key: String,
}

#[utoipa::path(tag = "routes", request_body = PreviewSample,
    responses((status = 200, body = Preview), (status = 404), (status = 422)))]
#[post("/routes/{id}/preview")]
pub async fn preview_saved(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
    body: web::Json<PreviewSample>,
) -> ApiResult<web::Json<Preview>> {
    let id: RouteId = id.parse().map_err(|_| not_found("route"))?;
    let route = routes::get(&state.pool, &team.team, &id)
        .await
        .map_err(missing("route"))?;
    let candidate = Candidate {
        source: sources::get(&state.pool, &team.team, &route.source_id).await?,
        destination: destinations::get(&state.pool, &team.team, &route.destination_id).await?,
        event_types: route.event_types,
        filter: route.filter,
        template: route.template,
        subject: route.subject,
    };
    let sample = sample(&state, &team, body.into_inner()).await?;
    run(&state, &team, &candidate, &sample).await.map(web::Json)
}

#[utoipa::path(tag = "routes", request_body = PreviewUnsaved,
    responses((status = 200, body = Preview), (status = 422)))]
#[post("/routes/preview")]
pub async fn preview_unsaved(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: web::Json<PreviewUnsaved>,
) -> ApiResult<web::Json<Preview>> {
    let body = body.into_inner();
    let mut invalid = Invalid::default();
    let source_id = invalid.check("source_id", body.source_id.parse::<SourceId>());
    let destination_id = invalid.check(
        "destination_id",
        body.destination_id.parse::<DestinationId>(),
    );
    invalid.finish()?;
    let (Some(source_id), Some(destination_id)) = (source_id, destination_id) else {
        return Err(Problem::internal().into());
    };
    let source = sources::get(&state.pool, &team.team, &source_id)
        .await
        .map_err(|_| Problem::invalid_field("source_id", "no source of this team has this id"))?;
    let destination = destinations::get(&state.pool, &team.team, &destination_id)
        .await
        .map_err(|_| {
            Problem::invalid_field("destination_id", "no destination of this team has this id")
        })?;
    let candidate = Candidate {
        source,
        destination,
        event_types: body.event_types.unwrap_or_else(|| vec!["*".to_owned()]),
        filter: body.filter,
        template: body.template,
        subject: body.subject,
    };
    let sample_input = PreviewSample {
        event_id: body.event_id,
        payload: body.payload,
        headers: body.headers,
        event_type: body.event_type,
    };
    let sample = sample(&state, &team, sample_input).await?;
    run(&state, &team, &candidate, &sample).await.map(web::Json)
}

async fn sample(state: &WebState, team: &ApiTeam, input: PreviewSample) -> ApiResult<Sample> {
    if let Some(id) = input.event_id {
        let id: EventId = id
            .parse()
            .map_err(|_| Problem::invalid_field("event_id", "no event of this team has this id"))?;
        let (event, headers, body) = events::get_with_body(&state.pool, &team.team, &id)
            .await
            .map_err(|_| Problem::invalid_field("event_id", "no event of this team has this id"))?;
        return Ok(Sample {
            id: event.id.to_string(),
            event_type: event.event_type,
            headers,
            body,
            received_at: event.received_at,
            dedup_key: event.dedup_key,
        });
    }
    let Some(payload) = input.payload else {
        return Err(Problem::invalid_field("payload", "send an event_id or a payload").into());
    };
    let headers: serde_json::Map<String, Value> = input
        .headers
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), Value::String(value)))
        .collect();
    Ok(Sample {
        id: "evt_preview".to_owned(),
        event_type: input.event_type,
        headers: Value::Object(headers),
        body: serde_json::to_vec(&payload).unwrap_or_default(),
        received_at: chrono::Utc::now(),
        dedup_key: "preview".to_owned(),
    })
}

async fn run(
    state: &WebState,
    team: &ApiTeam,
    candidate: &Candidate,
    sample: &Sample,
) -> ApiResult<Preview> {
    let mut preview = Preview {
        matched: false,
        reason: None,
        output: None,
        subject: None,
        error: None,
    };
    let event_types = EventTypes::parse(&candidate.event_types)
        .map_err(|e| Problem::invalid_field("event_types", e.to_string()))?;
    if !event_types.matches(sample.event_type.as_deref()) {
        preview.reason = Some(format!(
            "the event type {} matches none of {}",
            sample.event_type.as_deref().unwrap_or("(none)"),
            candidate.event_types.join(", ")
        ));
        return Ok(preview);
    }
    let team_slug = teams::get(&state.pool, &team.team).await?.slug;
    let content_type = sample.headers.get("content-type").and_then(Value::as_str);
    let payload = structured(content_type, &sample.body);
    let context = EventContext {
        event_type: sample.event_type.as_deref(),
        payload: payload.as_ref(),
        headers: &sample.headers,
        source: SourceContext {
            name: &candidate.source.name,
            provider: candidate.source.provider.as_str(),
        },
        event: EventMeta {
            id: &sample.id,
            received_at: sample
                .received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            dedup_key: &sample.dedup_key,
        },
        links: Links {
            event: format!("{}/t/{team_slug}/events/{}", state.public_url, sample.id),
        },
    }
    .to_value();
    if let Some(filter) = &candidate.filter {
        let filter =
            Filter::compile(filter).map_err(|e| Problem::invalid_field("filter", e.to_string()))?;
        match filter.matches(&context) {
            Ok(true) => {}
            Ok(false) => {
                preview.reason = Some("the filter is false for this event".to_owned());
                return Ok(preview);
            }
            Err(e) => {
                preview.error = Some(e);
                return Ok(preview);
            }
        }
    }
    preview.matched = true;
    let view = EventView {
        id: &sample.id,
        event_type: sample.event_type.as_deref(),
        source_name: &candidate.source.name,
        received_at: sample.received_at,
        body: &sample.body,
    };
    let rendered = match candidate.template.as_deref() {
        Some(source) => template::render(source, &context).map(Some),
        None => Ok(None),
    };
    let rendered = match rendered {
        Ok(rendered) => rendered,
        Err(e) => {
            preview.error = Some(e);
            return Ok(preview);
        }
    };
    preview.output = Some(match (candidate.destination.kind, rendered) {
        (DestinationKind::Routine, Some(text)) => {
            compose::truncate(text, compose::ROUTINE_TEXT_MAX)
        }
        (DestinationKind::Routine, None) => compose::routine_text(&view),
        (DestinationKind::Slack, Some(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(object @ Value::Object(_)) => object.to_string(),
            _ => json!({ "text": text }).to_string(),
        },
        (DestinationKind::Slack, None) => json!({ "text": compose::slack_text(&view) }).to_string(),
        (DestinationKind::Email, Some(text)) => compose::truncate(text, compose::EMAIL_TEXT_MAX),
        (DestinationKind::Email, None) => compose::email_text(&view),
        (DestinationKind::Http, Some(text)) => text,
        (DestinationKind::Http, None) => String::from_utf8_lossy(&sample.body).into_owned(),
    });
    if candidate.destination.kind == DestinationKind::Email {
        preview.subject = match candidate.subject.as_deref() {
            Some(source) => match template::render(source, &context) {
                Ok(subject) => Some(subject.lines().next().unwrap_or_default().trim().to_owned()),
                Err(e) => {
                    preview.error = Some(e);
                    None
                }
            },
            None => Some(compose::email_subject(&view)),
        };
    }
    Ok(preview)
}
