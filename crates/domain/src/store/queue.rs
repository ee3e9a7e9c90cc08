//! Queues. Deliveries need no job row: the deliveries table is their queue, and
//! [`notify_deliveries`] wakes the claimers when a transaction makes some due. The side
//! jobs (alerts, account mail, bulk replays, maintenance) are apalis-postgres tasks,
//! pushed on the caller's transaction, so a change and the work it causes commit together
//! or not at all (no dual write). The workers that run them live in the worker crate.

use apalis::prelude::TaskBuilder;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use crate::ids::{DeliveryId, DestinationId, TeamId};

/// The channel that tells the delivery claimers deliveries became due.
pub const DELIVERIES_CHANNEL: &str = "switchyard_deliveries";

/// Wakes every process's delivery claimer: in a transaction, once it commits (and
/// PostgreSQL folds repeats within one transaction into one); outside one, at once.
/// Call it for a change that makes deliveries due now. A NOTIFY in a transaction takes a
/// lock PostgreSQL holds until the commit is flushed, so the hot path (ingest) sends it
/// after its commit instead.
pub async fn notify_deliveries(db: impl PgExecutor<'_>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(DELIVERIES_CHANNEL)
        .execute(db)
        .await?;
    Ok(())
}

/// The queue of alert emails to a team's admins.
pub const ALERTS: &str = "switchyard::alerts";

/// An email to the people a team's alert settings name, about one of its destinations
/// (or, for a source's rejections, none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertTask {
    pub team_id: TeamId,
    #[serde(default)]
    pub destination_id: Option<DestinationId>,
    pub alert: Alert,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alert {
    /// The destination stopped taking deliveries by itself; `reason` says why.
    Disabled { reason: String },
    /// A probe went through and the held deliveries are on their way.
    Recovered { released: u32 },
    /// A delivery failed for good: every attempt spent, or an answer not worth retrying.
    DeliveryFailed {
        delivery_id: DeliveryId,
        error: Option<String>,
    },
    /// A routine fire whose answer never came: it may or may not have started a session,
    /// and it is not fired again.
    UnknownOutcome {
        delivery_id: DeliveryId,
        error: Option<String>,
    },
    /// A source refused more requests than the team's threshold within ten minutes.
    SourceRejecting {
        source_id: crate::ids::SourceId,
        count: i64,
        reason: String,
    },
    /// Calls to the Anthropic API with the team's key (or a workspace's: `workspace`)
    /// fail: enriching routes' deliveries fail until a working key is stored.
    AnthropicKey {
        workspace: Option<String>,
        reason: String,
    },
    /// A watched source got no events for `minutes`.
    SourceQuiet {
        source_id: crate::ids::SourceId,
        minutes: i32,
        last_event_at: chrono::DateTime<chrono::Utc>,
    },
    /// A quiet source's events flow again.
    SourceFlowing {
        source_id: crate::ids::SourceId,
        quiet_since: chrono::DateTime<chrono::Utc>,
    },
}

/// Pushes an alert on the caller's transaction, so it goes out if and only if the change
/// it reports commits. apalis retries it a few times if the SMTP server refuses.
pub async fn push_alert(tx: &mut PgConnection, alert: &AlertTask) -> Result<(), StoreError> {
    let args = serde_json::to_vec(alert).map_err(|e| StoreError::Internal(e.to_string()))?;
    let task = TaskBuilder::new(args).max_attempts(5).build();
    apalis_postgres::queries::push_tasks(tx, ALERTS, vec![task]).await?;
    Ok(())
}

/// The queue of account emails: address verification, password resets, invitations.
pub const MAIL: &str = "switchyard::mail";

/// One email to one person. Its text holds a single-use link, so the text is sealed with
/// the secret key: the queue's table never holds a usable link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailTask {
    pub to: String,
    pub subject: String,
    /// The sealed plain-text body, base64.
    pub sealed_text: String,
}

/// Pushes an account email on the caller's transaction. Without SMTP no worker takes
/// the queue, so the email waits there until one is configured.
pub async fn push_mail(tx: &mut PgConnection, mail: &MailTask) -> Result<(), StoreError> {
    let args = serde_json::to_vec(mail).map_err(|e| StoreError::Internal(e.to_string()))?;
    let task = TaskBuilder::new(args).max_attempts(10).build();
    apalis_postgres::queries::push_tasks(tx, MAIL, vec![task]).await?;
    Ok(())
}

/// The queue bulk replays run on.
pub const REPLAYS: &str = "switchyard::replays";

/// One bulk replay, run a batch at a time until it is done or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayTask {
    pub team_id: TeamId,
    pub replay_id: crate::ids::ReplayId,
}

/// Pushes a bulk replay's job on the caller's transaction, with the request that made it.
pub async fn push_replay(tx: &mut PgConnection, replay: &ReplayTask) -> Result<(), StoreError> {
    let args = serde_json::to_vec(replay).map_err(|e| StoreError::Internal(e.to_string()))?;
    let task = TaskBuilder::new(args).max_attempts(25).build();
    apalis_postgres::queries::push_tasks(tx, REPLAYS, vec![task]).await?;
    Ok(())
}

/// The queue of the hourly maintenance (retention). Every process offers each hour's
/// task; the hour is also the task's idempotency key, so the queue holds it once and one
/// worker runs it, however many replicas there are.
pub const MAINTENANCE: &str = "switchyard::maintenance";

/// The maintenance of one hour (`2026-11-27T13`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceTask {
    pub slot: String,
}

impl MaintenanceTask {
    pub fn for_hour(now: DateTime<Utc>) -> MaintenanceTask {
        MaintenanceTask {
            slot: now.format("%Y-%m-%dT%H").to_string(),
        }
    }
}

/// Pushes the hour's maintenance unless some process already did. Returns whether this
/// call pushed it.
pub async fn push_maintenance(
    db: &sqlx::PgPool,
    task: &MaintenanceTask,
) -> Result<bool, StoreError> {
    push_once(db, MAINTENANCE, &format!("maintenance:{}", task.slot), task).await
}

/// Pushes a task under a unique idempotency key, unless one with that key is already
/// queued (the queue's unique index refuses a second).
async fn push_once(
    db: &sqlx::PgPool,
    queue: &str,
    key: &str,
    task: &impl Serialize,
) -> Result<bool, StoreError> {
    let args = serde_json::to_vec(task).map_err(|e| StoreError::Internal(e.to_string()))?;
    let job = TaskBuilder::new(args)
        .idempotency_key(key)
        .max_attempts(3)
        .build();
    let mut conn = db.acquire().await?;
    match apalis_postgres::queries::push_tasks(&mut *conn, queue, vec![job]).await {
        Ok(()) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The queue's unique index on idempotency keys refused the push.
fn is_unique_violation(e: &apalis_postgres::Error) -> bool {
    matches!(e, apalis_postgres::Error::Database(sqlx::Error::Database(db))
        if db.constraint() == Some("idx_jobs_idempotency_key"))
}
