//! Stored events: searching them with a filter expression, and sending one through
//! today's routes again.

use std::collections::HashMap;

use chrono::Utc;

use super::error::missing;
use super::{AppError, Scope};
use crate::StoreError;
use crate::delivery::DestinationKind;
use crate::ids::{DestinationId, EventId, SourceId};
use crate::model::{DeliveryPlan, Event, EventFilter, PageRequest};
use crate::routing::{CompiledRoute, EventFacts, Filter, RoutedEvent, pipeline};
use crate::store::{destinations, events, routes, sources, teams};

/// What today's routes of an event's source make of it, as ingest would: one plan per
/// route that takes it, failed for a route that cannot tell (its filter fails on the
/// event, or it no longer compiles), each with its destination's kind. Paused routes
/// take nothing.
pub async fn plan_today(
    scope: Scope<'_>,
    id: &EventId,
) -> Result<Vec<(DeliveryPlan, DestinationKind)>, AppError> {
    let (event, headers, body) = events::get_with_body(scope.pool, scope.team, id)
        .await
        .map_err(missing("event"))?;
    let source = sources::get(scope.pool, scope.team, &event.source_id).await?;
    let team_slug = teams::get(scope.pool, scope.team).await?.slug;
    let (today, kinds) = today_routes(scope, &source.id).await?;
    let facts = stored_facts(
        &event,
        &headers,
        &body,
        (&source.name, source.provider.as_str()),
        &team_slug,
    );
    plan_with(&today, &kinds, &RoutedEvent::new(facts, scope.public_url))
}

/// The source's routes as ingest uses them now (paused ones take nothing), with the
/// kind of each one's destination.
pub(super) async fn today_routes(
    scope: Scope<'_>,
    source: &SourceId,
) -> Result<(Vec<CompiledRoute>, HashMap<DestinationId, DestinationKind>), AppError> {
    let mut kinds = HashMap::new();
    let mut today = Vec::new();
    for route in routes::for_source(scope.pool, scope.team, source).await? {
        if route.paused {
            continue;
        }
        let destination = destinations::get(scope.pool, scope.team, &route.destination_id).await?;
        kinds.insert(destination.id.clone(), destination.kind());
        today.push(
            CompiledRoute {
                route_id: route.id,
                destination_id: route.destination_id,
                rule: route.rule,
                sequencing: None,
            }
            .sequenced(route.ordering, route.coalesce),
        );
    }
    Ok((today, kinds))
}

/// The plans `routes` make for `event`, each with its destination's kind.
pub(super) fn plan_with(
    routes: &[CompiledRoute],
    kinds: &HashMap<DestinationId, DestinationKind>,
    event: &RoutedEvent<'_>,
) -> Result<Vec<(DeliveryPlan, DestinationKind)>, AppError> {
    pipeline::plan(routes, event)
        .into_iter()
        .map(|plan| {
            let kind = kinds.get(&plan.destination_id).copied().ok_or_else(|| {
                StoreError::Internal("a planned delivery's destination was not read".into())
            })?;
            Ok((plan, kind))
        })
        .collect()
}

/// Sends the event through today's routes again: one new delivery per route that takes
/// it, linked to the event. Its earlier deliveries stay as they were. Returns how many
/// were made.
pub async fn rerun(scope: Scope<'_>, id: &EventId) -> Result<usize, AppError> {
    let plans: Vec<DeliveryPlan> = plan_today(scope, id)
        .await?
        .into_iter()
        .map(|(plan, _)| plan)
        .collect();
    let mut tx = scope.pool.begin().await?;
    let made = events::rerun(&mut tx, scope.team, id, &plans, Utc::now())
        .await
        .map_err(missing("event"))?;
    scope.audit(&mut *tx, "event.rerun", id.as_str()).await?;
    tx.commit().await?;
    Ok(made)
}

/// Events a search reads per query.
const SEARCH_BATCH: i64 = 50;

/// The largest body a search reads: a batch then holds at most 12.5 MiB of bodies,
/// however large the source lets them be.
const SEARCHED_BODY: i32 = 256 * 1024;

/// What one page of a search found.
#[derive(Debug, Default)]
pub struct Found {
    pub items: Vec<Event>,
    /// Where the next page starts: after the last match when the page filled, or after
    /// the last event read when the search stopped at its budget.
    pub next_cursor: Option<String>,
    /// How many events were read.
    pub read: usize,
    /// Whether the search stopped at its budget with older events still unread.
    pub stopped_early: bool,
    /// Why the filter could not judge some of the events it read (the first reason),
    /// and how many.
    pub failed: Option<(String, usize)>,
}

/// The team's events matching `filter` that `expression` is true for, newest first,
/// older than `cursor`: the route filter language, run on each event as its routes see
/// it. Reads at most `budget` events, so a rare match costs a bounded amount per page;
/// the page then says where to go on.
pub async fn search(
    scope: Scope<'_>,
    filter: &EventFilter,
    expression: &Filter,
    cursor: Option<&str>,
    page: usize,
    budget: usize,
) -> Result<Found, AppError> {
    let team_slug = teams::get(scope.pool, scope.team).await?.slug;
    let mut sources_read = HashMap::new();
    let mut found = Found::default();
    let mut before = cursor.map(str::to_owned);
    let note = |found: &mut Found, reason: String| match &mut found.failed {
        Some((_, count)) => *count += 1,
        None => found.failed = Some((reason, 1)),
    };
    while found.read < budget {
        let want = SEARCH_BATCH.min((budget - found.read) as i64);
        let batch = events::list_with_bodies(
            scope.pool,
            scope.team,
            filter,
            before.as_deref(),
            want,
            SEARCHED_BODY,
        )
        .await?;
        let exhausted = (batch.len() as i64) < want;
        for (event, headers, body) in batch {
            found.read += 1;
            before = Some(event.id.to_string());
            let Some(body) = body else {
                note(
                    &mut found,
                    "a body larger than 256 KiB is not searched".to_owned(),
                );
                continue;
            };
            let source = source_named(scope, &mut sources_read, &event.source_id).await?;
            let facts = stored_facts(&event, &headers, &body, (&source.0, &source.1), &team_slug);
            match RoutedEvent::new(facts, scope.public_url).passes(expression) {
                Ok(true) => found.items.push(event),
                Ok(false) => {}
                Err(e) => note(&mut found, e),
            }
            if found.items.len() == page {
                break;
            }
        }
        if found.items.len() == page || exhausted {
            break;
        }
    }
    // Where to go on: after what was read, if anything older is left.
    let last_read = match found.items.len() == page {
        true => found.items.last().map(|e| e.id.to_string()),
        false => before,
    };
    if let Some(last) = last_read
        && older_exists(scope, filter, &last).await?
    {
        found.stopped_early = found.items.len() < page;
        found.next_cursor = Some(last);
    }
    Ok(found)
}

/// Whether any event matching `filter` is older than `before`.
async fn older_exists(
    scope: Scope<'_>,
    filter: &EventFilter,
    before: &str,
) -> Result<bool, AppError> {
    let one = PageRequest {
        cursor: Some(before.to_owned()),
        limit: 1,
    };
    let page = events::list(scope.pool, scope.team, filter, &one).await?;
    Ok(!page.items.is_empty())
}

/// A source's name and provider, read once per search.
async fn source_named(
    scope: Scope<'_>,
    read: &mut HashMap<SourceId, (String, String)>,
    id: &SourceId,
) -> Result<(String, String), AppError> {
    if let Some(known) = read.get(id) {
        return Ok(known.clone());
    }
    let source = sources::get(scope.pool, scope.team, id).await?;
    let named = (source.name, source.provider.as_str().to_owned());
    read.insert(id.clone(), named.clone());
    Ok(named)
}

/// What routes see of a stored event from `source` (its name and provider).
fn stored_facts<'a>(
    event: &'a Event,
    headers: &'a serde_json::Value,
    body: &'a [u8],
    source: (&'a str, &'a str),
    team_slug: &'a str,
) -> EventFacts<'a> {
    EventFacts {
        id: event.id.as_str(),
        event_type: event.event_type.as_deref(),
        headers,
        body,
        received_at: event.received_at,
        dedup_key: &event.dedup_key,
        source_name: source.0,
        source_provider: source.1,
        team_slug,
    }
}
