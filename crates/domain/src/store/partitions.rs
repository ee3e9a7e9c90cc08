//! Time partitions: events, their fetched objects and attempts are partitioned by the
//! range of their ids, a partition a UTC day (ids are ULIDs, so a day is an id range).
//! Deliveries, the queue, stay one table. The queries here list, make and drop
//! partitions; the maintenance job decides when.
//!
//! Locks: making a partition attaches a new empty table, which takes a lock ingest never
//! waits on (SHARE UPDATE EXCLUSIVE on the parent) and the default partition's, which
//! only a stray row takes. Dropping one detaches it, which waits for the statements
//! using the table to end and holds new ones back while it waits, so both give up after
//! [`LOCK_TIMEOUT`] (the caller tries again). Nothing references a partitioned table, so
//! neither scans another table. A detach holds replays back from its last check to its
//! commit (`retention::hold_off_replays`).

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sqlx::{PgExecutor, PgPool};

use super::StoreError;
use crate::ids::{AttemptId, DeliveryId, EventId};

/// How long making or dropping a partition waits for its lock before giving up.
pub const LOCK_TIMEOUT: &str = "200ms";

/// A partitioned table: its name, its key and the kind of id the key holds.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    key: &'static str,
    /// The smallest id of the key's kind made at a time.
    first: fn(DateTime<Utc>) -> String,
    /// Storage parameters of each partition (the queue tables vacuum early).
    with: &'static str,
}

/// Vacuum a partition once 2,000 rows plus 1 % are dead, without pauses: attempts churn
/// like a queue.
const QUEUE_VACUUM: &str = " WITH (autovacuum_vacuum_scale_factor = 0.01, \
    autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0, \
    autovacuum_analyze_scale_factor = 0.02)";

pub const EVENTS: Table = Table {
    name: "events",
    key: "id",
    first: EventId::first_at,
    with: "",
};
pub const EVENT_OBJECTS: Table = Table {
    name: "event_objects",
    key: "event_id",
    first: EventId::first_at,
    with: "",
};
pub const ATTEMPTS: Table = Table {
    name: "attempts",
    key: "id",
    first: AttemptId::first_at,
    with: QUEUE_VACUUM,
};
/// Every partitioned table, in the order retention drops their days.
pub const TABLES: [Table; 3] = [EVENTS, EVENT_OBJECTS, ATTEMPTS];

impl Table {
    /// The smallest key of this table made at `at`.
    pub fn first_at(self, at: DateTime<Utc>) -> String {
        (self.first)(at)
    }

    pub fn default_partition(self) -> String {
        format!("{}_default", self.name)
    }

    pub fn day_partition(self, day: NaiveDate) -> String {
        format!("{}_p{}", self.name, day.format("%Y%m%d"))
    }
}

/// One partition of a table: `[lower, upper)` in time (`None`: unbounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub lower: Option<DateTime<Utc>>,
    pub upper: Option<DateTime<Utc>>,
}

impl Partition {
    pub fn overlaps(&self, lower: DateTime<Utc>, upper: DateTime<Utc>) -> bool {
        self.lower.is_none_or(|l| l < upper) && self.upper.is_none_or(|u| u > lower)
    }
}

/// The time an id bound was made (a bound is the first id of a millisecond).
fn bound_time(bound: &str) -> Option<DateTime<Utc>> {
    let (_, ulid) = bound.split_once('_')?;
    let ulid = ulid::Ulid::from_string(ulid).ok()?;
    Utc.timestamp_millis_opt(i64::try_from(ulid.timestamp_ms()).ok()?)
        .single()
}

/// The table's partitions other than the default, oldest first.
#[tracing::instrument(skip_all, fields(table = table.name))]
pub async fn list(db: impl PgExecutor<'_>, table: Table) -> Result<Vec<Partition>, StoreError> {
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT c.relname::text,
                substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']+)''\\)'),
                substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)')
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = $1::regclass
           AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'",
    )
    .bind(table.name)
    .fetch_all(db)
    .await?;
    let mut partitions: Vec<Partition> = rows
        .into_iter()
        .map(|(name, lower, upper)| Partition {
            name,
            lower: lower.as_deref().and_then(bound_time),
            upper: upper.as_deref().and_then(bound_time),
        })
        .collect();
    partitions.sort_by_key(|p| p.lower);
    Ok(partitions)
}

/// Rows in the table's default partition: rows no partition covered when they came.
#[tracing::instrument(skip_all, fields(table = table.name))]
pub async fn strays(db: impl PgExecutor<'_>, table: Table) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        table.default_partition()
    )))
    .fetch_one(db)
    .await?)
}

/// The first instant of a UTC day.
pub fn day_start(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// Attaches a new, empty partition for `day`, first moving into it any stray rows of
/// its range from the default partition (attaching checks the default holds none).
#[tracing::instrument(skip_all, fields(table = table.name, %day))]
pub async fn make(pool: &PgPool, table: Table, day: NaiveDate) -> Result<(), sqlx::Error> {
    let name = table.day_partition(day);
    let lower = table.first_at(day_start(day));
    let upper = table.first_at(day_start(day + Duration::days(1)));
    let (parent, key, default) = (table.name, table.key, table.default_partition());
    let mut tx = pool.begin().await?;
    set_lock_timeout(&mut tx, LOCK_TIMEOUT).await?;
    for statement in [
        format!(
            "CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
             INCLUDING STORAGE){with}",
            with = table.with
        ),
        format!(
            "WITH moved AS (DELETE FROM {default} WHERE {key} >= '{lower}' AND {key} < '{upper}' \
             RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        format!(
            "ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM ('{lower}') TO ('{upper}')"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Makes every lock the rest of the transaction waits for give up after `timeout` (a
/// PostgreSQL interval, from a constant).
pub(crate) async fn set_lock_timeout(
    tx: &mut sqlx::PgConnection,
    timeout: &'static str,
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{timeout}'"
    )))
    .execute(tx)
    .await?;
    Ok(())
}

/// Whether an error is a lock wait that ran out ([`LOCK_TIMEOUT`]).
pub fn is_lock_timeout(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(e) if e.code().as_deref() == Some("55P03"))
}

/// The delivery states that still need their rows.
const OPEN: &str = "('pending', 'held', 'throttled', 'in_flight', 'unknown_outcome')";

/// Whether a delivery that has not settled needs a row of `partition`: its event (or
/// the event's fetched object), or one of its attempts.
#[tracing::instrument(skip_all, fields(table = table.name, partition = %partition.name))]
pub async fn holds_open_delivery(
    db: impl PgExecutor<'_>,
    table: Table,
    partition: &Partition,
) -> Result<bool, sqlx::Error> {
    let Some(upper) = partition.upper else {
        return Ok(true);
    };
    let lower = partition.lower.map(|l| table.first_at(l));
    let upper_key = table.first_at(upper);
    let check = match table.name {
        // Open deliveries are few; those made before the partition ended fewer still.
        "attempts" => format!(
            "SELECT EXISTS (SELECT 1 FROM deliveries d
                            WHERE d.status IN {OPEN} AND d.id < $3
                              AND EXISTS (SELECT 1 FROM attempts a
                                          WHERE a.delivery_id = d.id
                                            AND ($1::text IS NULL OR a.id >= $1) AND a.id < $2))"
        ),
        _ => format!(
            "SELECT EXISTS (SELECT 1 FROM deliveries
                            WHERE status IN {OPEN}
                              AND ($1::text IS NULL OR event_id >= $1) AND event_id < $2)"
        ),
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(check))
        .bind(lower)
        .bind(upper_key)
        .bind(DeliveryId::first_at(upper))
        .fetch_one(db)
        .await
}

/// Deletes up to `batch` of the settled deliveries of events made in the events
/// partition's range, so none outlives its event, with those of their attempts made
/// after the range (a replay's; the others go with their own days). One replayed
/// meanwhile stays, and keeps its event's day (see [`detach`]). Returns how many
/// deliveries went.
#[tracing::instrument(skip_all, fields(partition = %events.name))]
pub async fn delete_deliveries_of(
    db: impl PgExecutor<'_>,
    events: &Partition,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let Some(upper) = events.upper else {
        return Ok(0);
    };
    // The state is tested again on the row deleted, in case a replay changed it since
    // the rows were chosen.
    let gone: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "WITH gone AS (
             DELETE FROM deliveries WHERE status NOT IN {OPEN} AND id IN (
                 SELECT id FROM deliveries
                 WHERE ($1::text IS NULL OR event_id >= $1) AND event_id < $2
                   AND status NOT IN {OPEN}
                 LIMIT $3
             )
             RETURNING id
         ), later_attempts AS (
             DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM gone) AND id >= $4
         )
         SELECT count(*) FROM gone"
    )))
    .bind(events.lower.map(|l| EVENTS.first_at(l)))
    .bind(EVENTS.first_at(upper))
    .bind(batch)
    .bind(ATTEMPTS.first_at(upper))
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(gone).unwrap_or(0))
}

/// Deletes the rows in the table's default partition made before `before`: a stray row
/// of a day already dropped, past every team's retention.
#[tracing::instrument(skip_all, fields(table = table.name))]
pub async fn delete_old_strays(
    db: impl PgExecutor<'_>,
    table: Table,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {default} WHERE {key} < $1",
        default = table.default_partition(),
        key = table.key
    )))
    .bind(table.first_at(before))
    .execute(db)
    .await?
    .rows_affected())
}

/// What [`detach`] did with a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detach {
    /// Detached, with the day's deliveries that settled after [`delete_deliveries_of`]
    /// passed them (an events partition's).
    Done { deliveries: u64 },
    /// Kept: a delivery that has not settled needs one of its rows.
    Needed,
}

/// Detaches a partition from its table unless a delivery that has not settled needs one
/// of its rows, waiting at most [`LOCK_TIMEOUT`] for each lock: replays under way,
/// then the tables'. Replays wait from the check to the commit, so none reopens a
/// delivery of the day between them. The parent's lock is held for the detach alone;
/// [`drop_table`] drops the table later.
///
/// Holding delivery rows while it waits for the parent's lock, this can close a cycle
/// with a source's or team's delete (which holds the parent and wants those rows); the
/// lock timeout, shorter than `deadlock_timeout`, makes this side give way and the
/// caller try again.
#[tracing::instrument(skip_all, fields(table = table.name, partition = %partition.name))]
pub async fn detach(
    pool: &PgPool,
    table: Table,
    partition: &Partition,
) -> Result<Detach, sqlx::Error> {
    let mut tx = pool.begin().await?;
    set_lock_timeout(&mut tx, LOCK_TIMEOUT).await?;
    super::retention::hold_off_replays(&mut tx).await?;
    if holds_open_delivery(&mut *tx, table, partition).await? {
        tx.rollback().await?;
        return Ok(Detach::Needed);
    }
    let deliveries = if table.name == EVENTS.name {
        delete_deliveries_of(&mut *tx, partition, i64::MAX).await?
    } else {
        0
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE {parent} DETACH PARTITION {name}",
        parent = table.name,
        name = partition.name
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Detach::Done { deliveries })
}

/// Drops a detached partition: its foreign keys first, each in a moment of its own
/// (dropping one locks the table it references, `teams` or `sources`, whose key checks
/// ingest makes with every event), then the table, whose files are unlinked under its
/// own lock alone. Each step gives up after [`LOCK_TIMEOUT`].
#[tracing::instrument(skip_all, fields(partition = name))]
pub async fn drop_table(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint
         WHERE conrelid = $1::regclass AND contype = 'f'",
    )
    .bind(name)
    .fetch_all(pool)
    .await?;
    let statements = keys
        .iter()
        .map(|key| format!("ALTER TABLE {name} DROP CONSTRAINT \"{key}\""))
        .chain([format!("DROP TABLE {name}")]);
    for statement in statements {
        let mut tx = pool.begin().await?;
        set_lock_timeout(&mut tx, LOCK_TIMEOUT).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The table's former partitions that were detached but not dropped yet.
#[tracing::instrument(skip_all, fields(table = table.name))]
pub async fn detached(db: impl PgExecutor<'_>, table: Table) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT relname::text FROM pg_class
         WHERE relkind = 'r' AND NOT relispartition
           AND relnamespace = current_schema()::regnamespace
           AND relname ~ ('^' || $1 || '_(p|before_)[0-9]{8}$')",
    )
    .bind(table.name)
    .fetch_all(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_reads_back_as_the_time_it_was_made_at() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap();
        for table in TABLES {
            assert_eq!(bound_time(&table.first_at(at)), Some(at));
        }
        assert_eq!(bound_time("evt_nonsense"), None);
    }

    #[test]
    fn overlap_counts_unbounded_ends() {
        let day = |d| Utc.with_ymd_and_hms(2026, 12, d, 0, 0, 0).unwrap();
        let first = Partition {
            name: "first".into(),
            lower: None,
            upper: Some(day(6)),
        };
        assert!(first.overlaps(day(5), day(6)));
        assert!(!first.overlaps(day(6), day(7)));
        let daily = Partition {
            name: "daily".into(),
            lower: Some(day(7)),
            upper: Some(day(8)),
        };
        assert!(daily.overlaps(day(7), day(8)));
        assert!(!daily.overlaps(day(8), day(9)));
        assert!(!daily.overlaps(day(6), day(7)));
    }
}
