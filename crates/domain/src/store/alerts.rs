//! Alert settings and grouping. An alert is raised in the transaction of what caused it;
//! `claim` decides there whether it goes out: the team wants that kind, and nothing of the
//! same kind about the same destination or source went out within the hour.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use super::queue::{AlertTask, push_alert};
use crate::ids::TeamId;

/// Repeats about the same thing wait this long.
pub const GROUPING: Duration = Duration::hours(1);
/// The window a source's rejections are counted over.
pub const REJECTION_WINDOW: Duration = Duration::minutes(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    DestinationDisabled,
    DeliveryFailed,
    UnknownOutcome,
    SourceRejecting,
    /// The team's Anthropic API key is missing or refused.
    AnthropicKey,
    /// A watched source went quiet, or its events flow again.
    SourceQuiet,
}

impl AlertKind {
    /// Also the settings column that switches it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DestinationDisabled => "destination_disabled",
            AlertKind::DeliveryFailed => "delivery_failed",
            AlertKind::UnknownOutcome => "unknown_outcome",
            AlertKind::SourceRejecting => "source_rejecting",
            AlertKind::AnthropicKey => "anthropic_key",
            AlertKind::SourceQuiet => "source_quiet",
        }
    }

    /// How long after one alert about a subject the next one waits. A key that fails
    /// keeps failing until a person stores a new one, which forgets the alert: it is
    /// sent once.
    fn grouping(self) -> Duration {
        match self {
            AlertKind::AnthropicKey => Duration::days(36_500),
            // `source_quiet` holds one row per silence, so each alert is already once:
            // always go out, whatever the raising worker's clock says.
            AlertKind::SourceQuiet => -Duration::days(1),
            _ => GROUPING,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AlertSettings {
    pub destination_disabled: bool,
    pub delivery_failed: bool,
    pub unknown_outcome: bool,
    pub source_rejecting: bool,
    pub anthropic_key: bool,
    pub source_quiet: bool,
    pub rejection_threshold: i32,
    /// Email the team's owners and admins.
    pub notify_admins: bool,
    pub extra_recipients: Vec<String>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            destination_disabled: true,
            delivery_failed: true,
            unknown_outcome: true,
            source_rejecting: true,
            anthropic_key: true,
            source_quiet: true,
            rejection_threshold: 20,
            notify_admins: true,
            extra_recipients: Vec::new(),
        }
    }
}

const COLUMNS: &str = "destination_disabled, delivery_failed, unknown_outcome, source_rejecting,
    rejection_threshold, notify_admins, extra_recipients, anthropic_key, source_quiet";

/// The team's settings, or the defaults when it never changed them.
#[tracing::instrument(skip_all)]
pub async fn settings(db: impl PgExecutor<'_>, team: &TeamId) -> Result<AlertSettings, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM alert_settings WHERE team_id = $1");
    Ok(sqlx::query_as::<_, AlertSettings>(sqlx::AssertSqlSafe(sql))
        .bind(team)
        .fetch_optional(db)
        .await?
        .unwrap_or_default())
}

#[tracing::instrument(skip_all)]
pub async fn save(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    s: &AlertSettings,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO alert_settings (team_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (team_id) DO UPDATE SET
             destination_disabled = EXCLUDED.destination_disabled,
             delivery_failed = EXCLUDED.delivery_failed,
             unknown_outcome = EXCLUDED.unknown_outcome,
             source_rejecting = EXCLUDED.source_rejecting,
             rejection_threshold = EXCLUDED.rejection_threshold,
             notify_admins = EXCLUDED.notify_admins,
             extra_recipients = EXCLUDED.extra_recipients,
             anthropic_key = EXCLUDED.anthropic_key,
             source_quiet = EXCLUDED.source_quiet"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(team)
        .bind(s.destination_disabled)
        .bind(s.delivery_failed)
        .bind(s.unknown_outcome)
        .bind(s.source_rejecting)
        .bind(s.rejection_threshold)
        .bind(s.notify_admins)
        .bind(&s.extra_recipients)
        .bind(s.anthropic_key)
        .bind(s.source_quiet)
        .execute(db)
        .await?;
    Ok(())
}

/// Whether an alert of `kind` about `subject` goes out now; yes also records it, so the
/// next one about the same thing waits (an hour for most kinds).
#[tracing::instrument(skip_all)]
pub async fn claim(
    tx: &mut PgConnection,
    team: &TeamId,
    kind: AlertKind,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    // The column name comes from the fixed list above, never from input.
    let sql = format!(
        "WITH wanted AS (
             SELECT coalesce((SELECT {} FROM alert_settings WHERE team_id = $1), true) AS on
         )
         INSERT INTO alert_sent (team_id, kind, subject, sent_at)
         SELECT $1, $2, $3, $4 FROM wanted WHERE wanted.on
         ON CONFLICT (team_id, kind, subject) DO UPDATE SET sent_at = EXCLUDED.sent_at
             WHERE alert_sent.sent_at <= $5
         RETURNING 1",
        kind.as_str()
    );
    Ok(sqlx::query_scalar::<_, i32>(sqlx::AssertSqlSafe(sql))
        .bind(team)
        .bind(kind.as_str())
        .bind(subject)
        .bind(now)
        .bind(now - kind.grouping())
        .fetch_optional(&mut *tx)
        .await?
        .is_some())
}

/// Forgets that an alert about `subject` went out, so the next one goes out at once (a
/// destination that recovered and fails again).
pub async fn forget(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    kind: AlertKind,
    subject: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM alert_sent WHERE team_id = $1 AND kind = $2 AND subject = $3")
        .bind(team)
        .bind(kind.as_str())
        .bind(subject)
        .execute(db)
        .await?;
    Ok(())
}

/// Pushes `alert` on the caller's transaction if [`claim`] lets it go out.
pub async fn raise(
    tx: &mut PgConnection,
    kind: AlertKind,
    subject: &str,
    alert: &AlertTask,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if claim(tx, &alert.team_id, kind, subject, now).await? {
        push_alert(tx, alert).await?;
    }
    Ok(())
}
