//! Upkeep in every worker process: offer the hour's maintenance to its queue, which
//! keeps one task per hour so one worker across replicas runs it (see `maintenance`),
//! notice sources gone quiet (and quiet ones flowing again), count the overview's hours
//! up to a minute ago (one process at a time), and refresh the gauges: the
//! delivery queue's backlog and the age of its oldest due delivery, the side queues'
//! depth, and this process's pool.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use switchyard_domain::StoreError;
use switchyard_domain::store::alerts::{self, AlertKind};
use switchyard_domain::store::queue::{Alert, AlertTask};
use switchyard_domain::store::{health, queue, rollups, stats};

/// How often the gauges are refreshed at most.
const GAUGES_EVERY: Duration = Duration::from_secs(5);

pub async fn run(pool: PgPool, every: Duration) {
    let mut tick = tokio::time::interval(every.min(GAUGES_EVERY));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The hour whose maintenance this process has offered (once per hour is enough).
    let mut offered: Option<String> = None;
    let mut watched: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let now = Utc::now();
        if watched.is_none_or(|at| at.elapsed() >= every) {
            watched = Some(tokio::time::Instant::now());
            if let Err(e) = watch_sources(&pool, now).await {
                tracing::debug!(error = %e, "upkeep: quiet sources not checked");
            }
            match rollups::refresh(&pool, now).await {
                Ok(counted) => tracing::debug!(?counted, "hourly counts refreshed"),
                Err(e) => tracing::warn!(error = %e, "upkeep: hourly counts not refreshed"),
            }
        }
        let hour = queue::MaintenanceTask::for_hour(now);
        if offered.as_deref() != Some(hour.slot.as_str()) {
            match queue::push_maintenance(&pool, &hour).await {
                Ok(pushed) => {
                    tracing::debug!(slot = %hour.slot, pushed, "maintenance offered");
                    offered = Some(hour.slot);
                }
                Err(e) => tracing::debug!(error = %e, "upkeep: maintenance not queued"),
            }
        }
        gauges(&pool, now).await;
    }
}

/// Tells each team, once, about its watched sources that went quiet, and about quiet
/// ones whose events flow again. Every worker runs it; the `source_quiet` row each
/// change writes or deletes is what makes it once.
async fn watch_sources(pool: &PgPool, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let quiet = health::gone_quiet(&mut tx, now).await?;
    let flowing = health::flowing_again(&mut tx).await?;
    let alerts = quiet
        .into_iter()
        .map(|q| {
            let alert = Alert::SourceQuiet {
                source_id: q.source_id.clone(),
                minutes: q.minutes,
                last_event_at: q.last_event_at,
            };
            (q.team_id, q.source_id, alert)
        })
        .chain(flowing.into_iter().map(|f| {
            let alert = Alert::SourceFlowing {
                source_id: f.source_id.clone(),
                quiet_since: f.since,
            };
            (f.team_id, f.source_id, alert)
        }));
    for (team_id, source, alert) in alerts {
        tracing::info!(%source, ?alert, "source health changed");
        let task = AlertTask {
            team_id,
            destination_id: None,
            alert,
        };
        alerts::raise(&mut tx, AlertKind::SourceQuiet, source.as_str(), &task, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn gauges(pool: &PgPool, now: chrono::DateTime<Utc>) {
    match stats::backlog(pool, now).await {
        Ok(backlog) => {
            for (state, count) in [
                ("due", backlog.due),
                ("in_flight", backlog.in_flight),
                ("scheduled", backlog.scheduled),
                ("throttled", backlog.throttled),
                ("held", backlog.held),
            ] {
                metrics::gauge!("switchyard_deliveries_unsettled", "state" => state)
                    .set(count as f64);
            }
            metrics::gauge!("switchyard_deliveries_oldest_due_seconds")
                .set(backlog.oldest_due_seconds.unwrap_or(0.0).max(0.0));
        }
        Err(e) => tracing::debug!(error = %e, "upkeep: delivery backlog skipped"),
    }
    match stats::queues(pool, now).await {
        Ok(queues) => {
            for q in queues {
                let name = q.queue.trim_start_matches("switchyard::").to_owned();
                metrics::gauge!("switchyard_queue_depth", "queue" => name.clone())
                    .set(q.pending as f64);
                metrics::gauge!("switchyard_queue_oldest_pending_seconds", "queue" => name)
                    .set(q.oldest_seconds.unwrap_or(0.0).max(0.0));
            }
        }
        Err(e) => tracing::debug!(error = %e, "upkeep: queue depth skipped"),
    }
    if let Err(e) = crate::partitions::gauges(pool, now).await {
        tracing::debug!(error = %e, "upkeep: partition gauges skipped");
    }
    let idle = pool.num_idle() as f64;
    metrics::gauge!("switchyard_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("switchyard_db_pool_connections", "state" => "used")
        .set(f64::from(pool.size()) - idle);
}
