//! Reconciliation's store. A reconciling Anthropic source keeps each session's latest
//! known status in `session_watch`; ingest writes it for every status webhook, a pass for
//! every event it synthesizes. Both take the session's row lock before deciding, so a
//! transition is delivered once however a webhook and a pass interleave: a pass that
//! finds the webhook's status already stored synthesizes nothing, and a webhook that
//! finds its transition in `synthesized_transitions` is kept as "already reconciled"
//! and delivers nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use sqlx::{PgConnection, PgExecutor, PgPool};

use super::StoreError;
use super::queue::notify_deliveries;
use crate::ids::{EventId, SourceId, TeamId};
use crate::model::reconcile::{SAME_TRANSITION_TOLERANCE, UNCHANGED_FOR};
use crate::model::{NewEvent, StatusChange};

/// The sessions whose status a batch of new events changes, each with its latest change
/// in the batch.
fn latest_per_session<'a>(
    events: &[&'a NewEvent],
) -> BTreeMap<(&'a SourceId, &'a str), (&'a NewEvent, &'a StatusChange)> {
    let mut latest: BTreeMap<(&SourceId, &str), (&NewEvent, &StatusChange)> = BTreeMap::new();
    for event in events {
        let Some(change) = &event.status else {
            continue;
        };
        latest
            .entry((&event.source_id, change.session_id.as_str()))
            .and_modify(|kept| {
                if change.at > kept.1.at {
                    *kept = (event, change);
                }
            })
            .or_insert((event, change));
    }
    latest
}

/// Notes the status changes that new events announce on their sessions' watch rows
/// (taking each row's lock), then says which of the events repeat a transition a pass
/// already synthesized: event → the synthesized event. Nothing is written for a batch
/// without status changes.
pub(super) async fn note_status_changes(
    tx: &mut PgConnection,
    events: &[&NewEvent],
) -> Result<HashMap<EventId, EventId>, StoreError> {
    let latest = latest_per_session(events);
    if latest.is_empty() {
        return Ok(HashMap::new());
    }
    // In key order, so two batches touching the same sessions lock them in one order.
    let rows: Vec<WatchRow<'_>> = latest
        .values()
        .map(|(event, change)| WatchRow {
            source: &event.source_id,
            team: &event.team_id,
            change,
        })
        .collect();
    upsert_watch(&mut *tx, &rows, Utc::now()).await?;

    // A fresh statement: it sees a pass that committed while this one waited for a lock.
    let changes: Vec<(&NewEvent, &StatusChange)> = events
        .iter()
        .filter_map(|e| Some((*e, e.status.as_ref()?)))
        .collect();
    let matched = sqlx::query_as::<_, (EventId, EventId)>(
        "SELECT k.event_id, t.event_id
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
              AS k (event_id, source_id, session_id, event_type, at)
         CROSS JOIN LATERAL (
             SELECT t.event_id FROM synthesized_transitions t
             WHERE t.source_id = k.source_id AND t.session_id = k.session_id
               AND t.event_type = k.event_type
               AND k.at <= t.created_at + make_interval(secs => $6)
               AND (k.at >= t.created_at - make_interval(secs => $6)
                    OR k.at > coalesce(t.since, '-infinity'))
             ORDER BY abs(extract(epoch FROM t.created_at - k.at)) LIMIT 1) t",
    )
    .bind(changes.iter().map(|(e, _)| &e.id).collect::<Vec<_>>())
    .bind(
        changes
            .iter()
            .map(|(e, _)| &e.source_id)
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|(_, c)| c.session_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|(_, c)| c.event_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(changes.iter().map(|(_, c)| c.at).collect::<Vec<_>>())
    .bind(SAME_TRANSITION_TOLERANCE.as_seconds_f64())
    .fetch_all(&mut *tx)
    .await?;
    Ok(matched.into_iter().collect())
}

/// A session's status change, to note on its watch row.
struct WatchRow<'a> {
    source: &'a SourceId,
    team: &'a TeamId,
    change: &'a StatusChange,
}

/// Writes each session's change unless a later one is already stored; a terminated
/// session stops being watched, any other change watches it again.
async fn upsert_watch(
    db: impl PgExecutor<'_>,
    rows: &[WatchRow<'_>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO session_watch (source_id, session_id, team_id, status_type, status_at,
                                    organization_id, workspace_id, changed_at, done)
         SELECT k.source_id, k.session_id, k.team_id, k.status_type, k.status_at,
                k.organization_id, k.workspace_id, $8,
                CASE WHEN k.status_type = $9 THEN 'terminated' END
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                     $6::text[], $7::text[])
              AS k (source_id, session_id, team_id, status_type, status_at, organization_id,
                    workspace_id)
         ON CONFLICT (source_id, session_id) DO UPDATE SET
             status_type = EXCLUDED.status_type,
             status_at = EXCLUDED.status_at,
             organization_id = coalesce(EXCLUDED.organization_id, session_watch.organization_id),
             workspace_id = coalesce(EXCLUDED.workspace_id, session_watch.workspace_id),
             changed_at = EXCLUDED.changed_at,
             done = EXCLUDED.done
         WHERE session_watch.status_at < EXCLUDED.status_at",
    )
    .bind(rows.iter().map(|r| r.source).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.change.session_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.team).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.change.event_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.change.at).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.change.organization_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.change.workspace_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(now)
    .bind(TERMINATED)
    .execute(db)
    .await?;
    Ok(())
}

const TERMINATED: &str = "session.status_terminated";

/// Puts a source's passes on the schedule, the first one due at once, and has it read
/// the sessions already received before comparing: called when reconciliation is
/// turned on.
pub async fn schedule(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    source: &SourceId,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO reconcile_passes (source_id, team_id, next_at) VALUES ($2, $1, now())
         ON CONFLICT (source_id) DO UPDATE SET next_at = now(), seeded = false",
    )
    .bind(team)
    .bind(source)
    .execute(db)
    .await?;
    Ok(())
}

/// Brings a reconciling source's next pass within its new interval.
pub async fn reschedule(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    source: &SourceId,
    interval_s: i32,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE reconcile_passes
         SET next_at = least(next_at, now() + make_interval(secs => $3))
         WHERE team_id = $1 AND source_id = $2",
    )
    .bind(team)
    .bind(source)
    .bind(interval_s)
    .execute(db)
    .await?;
    Ok(())
}

/// A pass this worker took.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DuePass {
    pub source_id: SourceId,
    pub team_id: TeamId,
    pub lookback_s: i32,
    pub seeded: bool,
    /// The session list page the last pass stopped at, when it ran out of calls.
    pub resume_page: Option<String>,
    /// A status change before the source existed was never sent to it.
    pub source_created_at: DateTime<Utc>,
}

/// How long a worker holds a pass it took; a pass stops before.
pub const PASS_LEASE: Duration = Duration::minutes(15);

/// Takes the most overdue pass of a reconciling source that no worker holds, moving its
/// slot one interval on and holding it for [`PASS_LEASE`].
pub async fn claim_due(pool: &PgPool, now: DateTime<Utc>) -> Result<Option<DuePass>, StoreError> {
    Ok(sqlx::query_as::<_, DuePass>(
        "UPDATE reconcile_passes p
         SET next_at = $1 + make_interval(secs => s.reconcile_interval_s), started_at = $1,
             running_until = $1 + make_interval(secs => $2)
         FROM sources s
         WHERE s.id = p.source_id AND p.source_id = (
             SELECT d.source_id FROM reconcile_passes d
             JOIN sources ds ON ds.id = d.source_id
             WHERE ds.reconcile AND d.next_at <= $1
               AND (d.running_until IS NULL OR d.running_until < $1)
             ORDER BY d.next_at LIMIT 1
             FOR UPDATE OF d SKIP LOCKED)
         RETURNING p.source_id, p.team_id, s.reconcile_lookback_s AS lookback_s, p.seeded,
                   p.resume_page, s.created_at AS source_created_at",
    )
    .bind(now)
    .bind(PASS_LEASE.as_seconds_f64())
    .fetch_optional(pool)
    .await?)
}

/// Reads the status events `source` received since `since` into its watch rows, and
/// notes that it did: when reconciliation is turned on, the sessions the source already
/// heard of are not missing.
pub async fn seed(pool: &PgPool, pass: &DuePass, since: DateTime<Utc>) -> Result<(), StoreError> {
    let types: Vec<&str> = crate::model::reconcile::SESSION_STATUSES
        .iter()
        .map(|s| s.webhook)
        .collect();
    let mut latest: BTreeMap<String, StatusChange> = BTreeMap::new();
    {
        // Streamed: only each session's latest change is kept.
        let mut bodies = sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT body FROM events
             WHERE source_id = $1 AND received_at > $2 AND event_type = ANY($3)
               AND NOT synthesized",
        )
        .bind(&pass.source_id)
        .bind(since)
        .bind(&types)
        .fetch(pool);
        while let Some(body) = bodies.try_next().await? {
            let Some(change) = serde_json::from_slice(&body)
                .ok()
                .and_then(|envelope| StatusChange::of(&envelope))
            else {
                continue;
            };
            match latest.get(&change.session_id) {
                Some(kept) if kept.at >= change.at => {}
                _ => {
                    latest.insert(change.session_id.clone(), change);
                }
            }
        }
    }
    let rows: Vec<WatchRow<'_>> = latest
        .values()
        .map(|change| WatchRow {
            source: &pass.source_id,
            team: &pass.team_id,
            change,
        })
        .collect();
    let mut tx = pool.begin().await?;
    if !rows.is_empty() {
        upsert_watch(&mut *tx, &rows, Utc::now()).await?;
    }
    sqlx::query("UPDATE reconcile_passes SET seeded = true WHERE source_id = $1")
        .bind(&pass.source_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A session's latest status as the source knows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Watched {
    pub session_id: String,
    pub status_type: String,
    pub status_at: DateTime<Utc>,
    pub organization_id: Option<String>,
    pub workspace_id: Option<String>,
    pub done: Option<String>,
}

/// What the source knows of `sessions`.
pub async fn known(
    pool: &PgPool,
    source: &SourceId,
    sessions: &[&str],
) -> Result<HashMap<String, Watched>, StoreError> {
    let rows = sqlx::query_as::<_, Watched>(
        "SELECT session_id, status_type, status_at, organization_id, workspace_id, done
         FROM session_watch WHERE source_id = $1 AND session_id = ANY($2)",
    )
    .bind(source)
    .bind(sessions)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|w| (w.session_id.clone(), w))
        .collect())
}

/// Stops watching sessions unchanged since before `stale_before`, then returns the
/// sessions still watched: their latest status is not terminal.
pub async fn watched(
    pool: &PgPool,
    source: &SourceId,
    stale_before: DateTime<Utc>,
) -> Result<Vec<Watched>, StoreError> {
    // Rows are locked in key order, as ingest locks them.
    sqlx::query(
        "UPDATE session_watch SET done = 'unchanged'
         WHERE (source_id, session_id) IN (
             SELECT source_id, session_id FROM session_watch
             WHERE source_id = $1 AND done IS NULL AND changed_at < $2
             ORDER BY session_id FOR UPDATE)",
    )
    .bind(source)
    .bind(stale_before)
    .execute(pool)
    .await?;
    Ok(sqlx::query_as::<_, Watched>(
        "SELECT session_id, status_type, status_at, organization_id, workspace_id, done
         FROM session_watch WHERE source_id = $1 AND done IS NULL ORDER BY session_id",
    )
    .bind(source)
    .fetch_all(pool)
    .await?)
}

/// Stops watching a session Anthropic no longer has.
pub async fn gone(pool: &PgPool, source: &SourceId, session: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE session_watch SET done = 'gone' WHERE source_id = $1 AND session_id = $2")
        .bind(source)
        .bind(session)
        .execute(pool)
        .await?;
    Ok(())
}

/// The organization and workspace the source's latest status event named: a synthesized
/// envelope carries them, and the workspace picks the API key.
pub async fn origin(
    pool: &PgPool,
    source: &SourceId,
) -> Result<(Option<String>, Option<String>), StoreError> {
    Ok(sqlx::query_as::<_, (Option<String>, Option<String>)>(
        "SELECT organization_id, workspace_id FROM session_watch
         WHERE source_id = $1 AND workspace_id IS NOT NULL
         ORDER BY status_at DESC LIMIT 1",
    )
    .bind(source)
    .fetch_optional(pool)
    .await?
    .unwrap_or_default())
}

/// What [`synthesize`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synthesis {
    /// The event was stored (with its deliveries).
    Made(EventId),
    /// The source already knows this status, or a later one: nothing was stored.
    Known,
}

/// Stores `event`, the synthesized webhook for `change`, unless the session's watch row
/// (locked first) already holds that status or a later change; then notes the
/// transition so a real copy of it is recognized, and moves the row on.
pub async fn synthesize(
    pool: &PgPool,
    event: &NewEvent,
    change: &StatusChange,
    pass_at: DateTime<Utc>,
) -> Result<Synthesis, StoreError> {
    let mut tx = pool.begin().await?;
    let row = WatchRow {
        source: &event.source_id,
        team: &event.team_id,
        change,
    };
    let fresh = sqlx::query_scalar::<_, bool>(
        "INSERT INTO session_watch (source_id, session_id, team_id, status_type, status_at,
                                    organization_id, workspace_id, changed_at, done)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $4 = $9 THEN 'terminated' END)
         ON CONFLICT (source_id, session_id) DO NOTHING RETURNING true",
    )
    .bind(row.source)
    .bind(&change.session_id)
    .bind(row.team)
    .bind(&change.event_type)
    .bind(change.at)
    .bind(&change.organization_id)
    .bind(&change.workspace_id)
    .bind(pass_at)
    .bind(TERMINATED)
    .fetch_optional(&mut *tx)
    .await?
    .is_some();
    let since = if fresh {
        None
    } else {
        let (status_type, status_at) = sqlx::query_as::<_, (String, DateTime<Utc>)>(
            "SELECT status_type, status_at FROM session_watch
             WHERE source_id = $1 AND session_id = $2 FOR UPDATE",
        )
        .bind(&event.source_id)
        .bind(&change.session_id)
        .fetch_one(&mut *tx)
        .await?;
        if status_type == change.event_type || status_at >= change.at {
            return Ok(Synthesis::Known);
        }
        upsert_watch(&mut *tx, std::slice::from_ref(&row), pass_at).await?;
        Some(status_at)
    };
    let ingested = super::events::ingest(&mut tx, std::slice::from_ref(event)).await?;
    if !matches!(ingested.first(), Some(super::events::Ingested::Accepted(_))) {
        return Ok(Synthesis::Known);
    }
    sqlx::query(
        "INSERT INTO synthesized_transitions
             (source_id, session_id, event_type, created_at, since, pass_at, event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&event.source_id)
    .bind(&change.session_id)
    .bind(&change.event_type)
    .bind(change.at)
    .bind(since)
    .bind(pass_at)
    .bind(&event.id)
    .execute(&mut *tx)
    .await?;
    notify_deliveries(&mut *tx).await?;
    tx.commit().await?;
    Ok(Synthesis::Made(event.id.clone()))
}

/// How a pass went, as the source's page shows it.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct PassReport {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub sessions_checked: i32,
    pub events_synthesized: i32,
    pub api_calls: i32,
    /// Why the pass stopped before checking everything.
    pub cut_short: Option<String>,
    /// Why the pass could not run at all.
    pub error: Option<String>,
    /// Where the next pass starts listing, when this one ran out of calls mid-list.
    #[sqlx(skip)]
    pub resume_page: Option<String>,
}

/// Records how the pass went and forgets what no pass can need again: transitions and
/// finished sessions older than the lookback and a week.
pub async fn finish(
    pool: &PgPool,
    pass: &DuePass,
    report: &PassReport,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE reconcile_passes SET finished_at = $2, sessions_checked = $3,
             events_synthesized = $4, api_calls = $5, cut_short = $6, error = $7,
             resume_page = $8, running_until = NULL
         WHERE source_id = $1",
    )
    .bind(&pass.source_id)
    .bind(now)
    .bind(report.sessions_checked)
    .bind(report.events_synthesized)
    .bind(report.api_calls)
    .bind(&report.cut_short)
    .bind(&report.error)
    .bind(&report.resume_page)
    .execute(&mut *tx)
    .await?;
    let forget_before = now - Duration::seconds(i64::from(pass.lookback_s)) - UNCHANGED_FOR;
    sqlx::query("DELETE FROM synthesized_transitions WHERE source_id = $1 AND pass_at < $2")
        .bind(&pass.source_id)
        .bind(forget_before)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM session_watch WHERE (source_id, session_id) IN (
             SELECT source_id, session_id FROM session_watch
             WHERE source_id = $1 AND done IS NOT NULL AND changed_at < $2
             ORDER BY session_id FOR UPDATE)",
    )
    .bind(&pass.source_id)
    .bind(forget_before)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The source's last pass and how many sessions it watches; `None` until reconciliation
/// was first turned on.
pub async fn last_pass(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    source: &SourceId,
) -> Result<Option<(PassReport, i64)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        report: PassReport,
        watching: i64,
    }
    Ok(sqlx::query_as::<_, Row>(
        "SELECT p.started_at, p.finished_at, p.sessions_checked, p.events_synthesized,
                p.api_calls, p.cut_short, p.error,
                (SELECT count(*) FROM session_watch w
                  WHERE w.source_id = p.source_id AND w.done IS NULL) AS watching
         FROM reconcile_passes p WHERE p.team_id = $1 AND p.source_id = $2",
    )
    .bind(team)
    .bind(source)
    .fetch_optional(db)
    .await?
    .map(|r| (r.report, r.watching)))
}
