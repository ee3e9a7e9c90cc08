//! What a route would do with an event, stored or pasted, without sending anything: the
//! route's page shows it as the route is written, the API answers it for a saved route
//! or for one not saved yet.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::missing;
use super::routes::RouteDraft;
use super::{AppError, Invalid, NothingElse, Scope};
use crate::StoreError;
use crate::delivery::DestinationKind;
use crate::ids::{DestinationId, EventId, RouteId, SourceId};
use crate::model::{EventFilter, PageRequest, Source};
use crate::providers::{Headers, event_type_of};
use crate::routing::pipeline::{RouteRule, RuleError, Verdict, render};
use crate::routing::{EventFacts, Message, RoutedEvent, Templates};
use crate::store::{destinations, events, routes, sources, teams};

/// The event to try: a stored one by id, or a pasted sample.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewSample {
    /// A stored event of this team.
    pub event_id: Option<String>,
    /// A pasted body, as JSON.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// Pasted headers (names are lower-cased).
    pub headers: Option<BTreeMap<String, String>>,
    /// The pasted event's type; without it, read from the sample as the source's
    /// provider reads it on arrival (GitHub's `x-github-event` and `action`, …).
    pub event_type: Option<String>,
}

/// A route not saved yet, and the event to try it on.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PreviewUnsaved {
    #[serde(flatten)]
    pub route: RouteDraft,
    #[serde(flatten)]
    pub sample: PreviewSample,
    #[serde(flatten)]
    #[schema(ignore)]
    pub nothing_else: NothingElse,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// Whether the route would take the event.
    pub matched: bool,
    /// Why not, when it would not.
    pub reason: Option<String>,
    /// What the destination would receive (a routine's text, a Slack payload, an email's
    /// text body, an HTTP body).
    pub output: Option<String>,
    /// Email routes: the subject.
    pub subject: Option<String>,
    /// A filter or template that failed on this event, and why (or the saved route no
    /// longer compiles).
    pub error: Option<String>,
}

impl Preview {
    fn failed(error: String) -> Preview {
        Preview {
            matched: false,
            reason: None,
            output: None,
            subject: None,
            error: Some(error),
        }
    }
}

/// A route as written on its form: the source and destination it joins, its rule and
/// its templates.
pub struct Candidate {
    pub source: Source,
    pub kind: DestinationKind,
    pub event_types: Vec<String>,
    pub filter: Option<String>,
    pub template: Option<String>,
    pub subject: Option<String>,
}

impl Candidate {
    /// The route's rule, or the field that keeps it from compiling.
    fn rule(&self) -> Result<RouteRule, RuleError> {
        RouteRule::compile(&self.event_types, self.filter.as_deref())
    }
}

/// The event under test, as the worker would see it.
struct Sample {
    id: String,
    event_type: Option<String>,
    headers: Value,
    body: Vec<u8>,
    received_at: DateTime<Utc>,
    dedup_key: String,
}

/// A saved route on the event given.
pub async fn saved(
    scope: Scope<'_>,
    id: &RouteId,
    input: PreviewSample,
) -> Result<Preview, AppError> {
    let route = routes::get(scope.pool, scope.team, id)
        .await
        .map_err(missing("route"))?;
    let source = sources::get(scope.pool, scope.team, &route.source_id).await?;
    let sample = sample(scope, input, &source).await?;
    // A stored route a newer release refuses: say so, as its deliveries do.
    let rule = match &route.rule {
        Ok(rule) => rule.clone(),
        Err(reason) => return Ok(Preview::failed(reason.clone())),
    };
    let candidate = Candidate {
        source,
        kind: destinations::get(scope.pool, scope.team, &route.destination_id)
            .await?
            .kind(),
        event_types: route.event_types,
        filter: route.filter,
        template: route.template,
        subject: route.subject,
    };
    run(scope, &candidate, &rule, &sample).await
}

/// A route not saved yet; its fields are checked as saving it would.
pub async fn unsaved(scope: Scope<'_>, input: PreviewUnsaved) -> Result<Preview, AppError> {
    let mut invalid = Invalid::default();
    let route = input.route;
    let source_id = invalid.check("source_id", route.source_id.parse::<SourceId>());
    let destination_id = invalid.check(
        "destination_id",
        route.destination_id.parse::<DestinationId>(),
    );
    invalid.finish()?;
    let (Some(source_id), Some(destination_id)) = (source_id, destination_id) else {
        return Err(StoreError::Internal("a checked preview lost a field".into()).into());
    };
    let source = sources::get(scope.pool, scope.team, &source_id)
        .await
        .map_err(unknown("source_id", "no source of this team has this id"))?;
    let destination = destinations::get(scope.pool, scope.team, &destination_id)
        .await
        .map_err(unknown(
            "destination_id",
            "no destination of this team has this id",
        ))?;
    let candidate = Candidate {
        source,
        kind: destination.kind(),
        event_types: route.event_types.unwrap_or_else(|| vec!["*".to_owned()]),
        filter: route.filter,
        template: route.template,
        subject: route.subject,
    };
    with_sample(scope, &candidate, input.sample).await
}

/// The preview against the stored event or the pasted sample `input` gives.
pub async fn with_sample(
    scope: Scope<'_>,
    candidate: &Candidate,
    input: PreviewSample,
) -> Result<Preview, AppError> {
    let rule = candidate.rule()?;
    let sample = sample(scope, input, &candidate.source).await?;
    run(scope, candidate, &rule, &sample).await
}

/// How many of a source's latest events the dashboard looks through for one the route's
/// event types match.
const LATEST_LOOKED_AT: u32 = 50;

/// The preview against the source's latest event that the event types match (or its
/// latest event at all, which then shows why it does not match); `None` when the source
/// has no events yet.
pub async fn latest(
    scope: Scope<'_>,
    candidate: &Candidate,
) -> Result<Option<(EventId, Preview)>, AppError> {
    let rule = candidate.rule()?;
    let filter = EventFilter {
        source_id: Some(candidate.source.id.clone()),
        ..Default::default()
    };
    let page = PageRequest {
        cursor: None,
        limit: LATEST_LOOKED_AT,
    };
    let recent = events::list(scope.pool, scope.team, &filter, &page)
        .await?
        .items;
    let chosen = recent
        .iter()
        .find(|e| rule.event_types().matches(e.event_type.as_deref()))
        .or(recent.first());
    let Some(event) = chosen else {
        return Ok(None);
    };
    let sample = stored(scope, &event.id).await?;
    let preview = run(scope, candidate, &rule, &sample).await?;
    Ok(Some((event.id.clone(), preview)))
}

/// A store miss as a field naming something the team does not have.
fn unknown(field: &'static str, message: &'static str) -> impl FnOnce(StoreError) -> AppError {
    move |e| match e {
        StoreError::NotFound => AppError::field(field, message),
        other => other.into(),
    }
}

async fn sample(
    scope: Scope<'_>,
    input: PreviewSample,
    source: &Source,
) -> Result<Sample, AppError> {
    if let Some(id) = input.event_id {
        let unknown = || AppError::field("event_id", "no event of this team has this id");
        let id: EventId = id.parse().map_err(|_| unknown())?;
        return stored(scope, &id).await.map_err(|e| match e {
            AppError::NotFound(_) => unknown(),
            other => other,
        });
    }
    let Some(payload) = input.payload else {
        return Err(AppError::field("payload", "send an event_id or a payload"));
    };
    let headers: Vec<(String, String)> = input
        .headers
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let body = serde_json::to_vec(&payload).unwrap_or_default();
    let event_type = input.event_type.or_else(|| {
        let read = Headers::from_pairs(headers.clone());
        event_type_of(source.provider, &source.settings.0, &read, &body, &payload)
    });
    let headers = headers
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    Ok(Sample {
        id: "evt_preview".to_owned(),
        event_type,
        headers: Value::Object(headers),
        body,
        received_at: Utc::now(),
        dedup_key: "preview".to_owned(),
    })
}

async fn stored(scope: Scope<'_>, id: &EventId) -> Result<Sample, AppError> {
    let (event, headers, body) = events::get_with_body(scope.pool, scope.team, id)
        .await
        .map_err(missing("event"))?;
    Ok(Sample {
        id: event.id.to_string(),
        event_type: event.event_type,
        headers,
        body,
        received_at: event.received_at,
        dedup_key: event.dedup_key,
    })
}

async fn run(
    scope: Scope<'_>,
    candidate: &Candidate,
    rule: &RouteRule,
    sample: &Sample,
) -> Result<Preview, AppError> {
    let team_slug = teams::get(scope.pool, scope.team).await?.slug;
    let facts = EventFacts {
        id: &sample.id,
        event_type: sample.event_type.as_deref(),
        headers: &sample.headers,
        body: &sample.body,
        received_at: sample.received_at,
        dedup_key: &sample.dedup_key,
        source_name: &candidate.source.name,
        source_provider: candidate.source.provider.as_str(),
        team_slug: &team_slug,
    };
    let event = RoutedEvent::new(facts, scope.public_url);
    let mut preview = Preview {
        matched: false,
        reason: None,
        output: None,
        subject: None,
        error: None,
    };
    match rule.decide(&event) {
        Verdict::Takes => preview.matched = true,
        Verdict::Skips(skip) => {
            preview.reason = Some(rule.describe(skip, &event));
            return Ok(preview);
        }
        Verdict::Fails(error) => return Ok(Preview::failed(error)),
    }
    let templates = Templates {
        body: candidate.template.as_deref(),
        subject: candidate.subject.as_deref(),
    };
    match render(candidate.kind, templates, &event) {
        Ok(Message::Routine { text }) => preview.output = Some(text),
        Ok(Message::Slack { payload }) => preview.output = Some(payload.to_string()),
        Ok(Message::Email { subject, text }) => {
            preview.output = Some(text);
            preview.subject = Some(subject);
        }
        Ok(Message::Http { body }) => {
            preview.output =
                Some(body.unwrap_or_else(|| String::from_utf8_lossy(&sample.body).into_owned()));
        }
        Err(error) => preview.error = Some(error),
    }
    Ok(preview)
}
