//! Stored events: sending one through today's routes again.

use std::collections::HashMap;

use chrono::Utc;

use super::error::missing;
use super::{AppError, Scope};
use crate::StoreError;
use crate::delivery::DestinationKind;
use crate::ids::EventId;
use crate::model::DeliveryPlan;
use crate::routing::{CompiledRoute, EventFacts, RoutedEvent, pipeline};
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
    let mut kinds = HashMap::new();
    let mut today = Vec::new();
    for route in routes::for_source(scope.pool, scope.team, &source.id).await? {
        if route.paused {
            continue;
        }
        let destination = destinations::get(scope.pool, scope.team, &route.destination_id).await?;
        kinds.insert(destination.id.clone(), destination.kind());
        today.push(CompiledRoute {
            route_id: route.id,
            destination_id: route.destination_id,
            rule: route.rule,
        });
    }
    let facts = EventFacts {
        id: event.id.as_str(),
        event_type: event.event_type.as_deref(),
        headers: &headers,
        body: &body,
        received_at: event.received_at,
        dedup_key: &event.dedup_key,
        source_name: &source.name,
        source_provider: source.provider.as_str(),
        team_slug: &team_slug,
    };
    let routed = RoutedEvent::new(facts, scope.public_url);
    pipeline::plan(&today, &routed)
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
    let made = events::rerun(&mut tx, scope.team, id, &plans, Utc::now()).await?;
    scope.audit(&mut *tx, "event.rerun", id.as_str()).await?;
    tx.commit().await?;
    Ok(made)
}
