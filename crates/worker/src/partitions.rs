//! Keeping the time partitions: each table's days are made a week ahead, so no insert
//! ever lands in a default partition for want of one, and whole days are dropped once
//! every team's retention has passed them, their events' deliveries deleted first in
//! batches (see `store::partitions`).

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use switchyard_domain::StoreError;
use switchyard_domain::store::partitions::{self, Detach, Partition, TABLES, Table};

/// How far ahead the days' partitions are made.
pub const DAYS_AHEAD: i64 = 7;
/// Tries of a make or drop that keeps timing out on its lock, this run.
const TRIES: u32 = 10;
/// Deliveries deleted per statement with their events' day.
const DELIVERY_BATCH: i64 = 5000;

/// Makes every table's partitions from today to [`DAYS_AHEAD`] days on, where none
/// covers the day yet (the upgrade's first partition covers the day it ran). Returns how
/// many it made.
pub async fn ensure(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut made = 0;
    for table in TABLES {
        let existing = partitions::list(pool, table).await?;
        for ahead in 0..=DAYS_AHEAD {
            let day = now.date_naive() + Duration::days(ahead);
            let lower = partitions::day_start(day);
            if existing
                .iter()
                .any(|p| p.overlaps(lower, lower + Duration::days(1)))
            {
                continue;
            }
            with_retries(|| partitions::make(pool, table, day)).await?;
            tracing::info!(table = table.name, %day, "partition made");
            made += 1;
        }
    }
    Ok(made)
}

/// What one retention run did with partitions.
#[derive(Debug, Default)]
pub struct Retired {
    /// Partitions detached by this run (dropped by the next).
    pub detached: Vec<String>,
    /// Tables detached by an earlier run, dropped by this one.
    pub dropped: Vec<String>,
    /// Partitions past retention kept because a delivery that has not settled needs one
    /// of their rows.
    pub held: Vec<String>,
    /// Partitions not detached, or detached tables not dropped, because their locks (or
    /// replays under way) stayed busy through every try, and the other tables' days
    /// kept with a busy events day: the next run tries again.
    pub busy: Vec<String>,
    /// Deliveries deleted with their events' days.
    pub deliveries: u64,
    /// Rows of dropped days found in the default partitions.
    pub strays: u64,
}

/// Detaches, oldest first, every partition whose whole range was made before `before`,
/// unless an unsettled delivery needs one of its rows (that one waits for a later run),
/// and drops the tables an earlier run detached.
///
/// A detached table is dropped a run later because dropping it holds its lock while
/// its files are unlinked (about 200 ms a gigabyte), and a statement whose plan was
/// cached while it was attached locks it once more before planning again; an hour
/// later every busy statement has been planned again. (Its foreign keys go first, see
/// [`partitions::drop_table`].)
pub async fn retire(pool: &PgPool, before: DateTime<Utc>) -> Result<Retired, StoreError> {
    let mut retired = Retired::default();
    // Events days left attached for want of their locks: their fetched objects and
    // attempts stay with them.
    let mut busy_days: Vec<Partition> = Vec::new();
    for table in TABLES {
        for name in partitions::detached(pool, table).await? {
            match with_retries(|| partitions::drop_table(pool, &name)).await {
                Ok(()) => {
                    tracing::info!(table = %name, "detached partition dropped");
                    retired.dropped.push(name);
                }
                Err(e) if partitions::is_lock_timeout(&e) => retired.busy.push(name),
                Err(e) => return Err(e.into()),
            }
        }
        for partition in partitions::list(pool, table).await? {
            if partition.upper.is_none_or(|upper| upper > before) {
                break;
            }
            if busy_days.iter().any(|day| overlap(day, &partition)) {
                retired.busy.push(partition.name);
                continue;
            }
            // Checked first so a held day's deliveries are not deleted for nothing, and
            // again as it is detached.
            if partitions::holds_open_delivery(pool, table, &partition).await? {
                retired.held.push(partition.name);
                continue;
            }
            retired.deliveries += delete_deliveries(pool, table, &partition).await?;
            match with_retries(|| partitions::detach(pool, table, &partition)).await {
                Ok(Detach::Done { deliveries }) => {
                    tracing::info!(partition = %partition.name, "partition detached");
                    retired.deliveries += deliveries;
                    retired.detached.push(partition.name);
                }
                Ok(Detach::Needed) => retired.held.push(partition.name),
                Err(e) if partitions::is_lock_timeout(&e) => {
                    retired.busy.push(partition.name.clone());
                    if table.name == partitions::EVENTS.name {
                        busy_days.push(partition);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        retired.strays += partitions::delete_old_strays(pool, table, before).await?;
    }
    if !retired.held.is_empty() {
        tracing::warn!(partitions = ?retired.held, "partitions past retention kept: unsettled deliveries need them");
    }
    if !retired.busy.is_empty() {
        tracing::warn!(partitions = ?retired.busy, "partitions left for the next run: their locks stayed busy");
    }
    Ok(retired)
}

/// Whether two partitions' ranges meet (an open end reaches as far as it can).
fn overlap(a: &Partition, b: &Partition) -> bool {
    a.overlaps(
        b.lower.unwrap_or(DateTime::<Utc>::MIN_UTC),
        b.upper.unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// The deliveries of an events partition's events, in batches, before it goes.
async fn delete_deliveries(
    pool: &PgPool,
    table: Table,
    partition: &Partition,
) -> Result<u64, StoreError> {
    if table.name != partitions::EVENTS.name {
        return Ok(0);
    }
    // Until none is left: a batch that passed over a replayed delivery comes back short
    // with settled ones still to go.
    let mut total = 0;
    loop {
        let gone = partitions::delete_deliveries_of(pool, partition, DELIVERY_BATCH).await?;
        total += gone;
        if gone == 0 {
            return Ok(total);
        }
    }
}

/// Runs `step` again while it times out waiting for its lock, up to [`TRIES`] times,
/// pausing longer each time so the statements it waited behind can finish; the last
/// timeout is returned.
async fn with_retries<T, F, Fut>(mut step: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 1;
    loop {
        match step().await {
            Err(e) if partitions::is_lock_timeout(&e) && tries < TRIES => {
                metrics::counter!("switchyard_partition_lock_timeouts_total").increment(1);
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(tries))).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Publishes, per table, the rows in its default partition (alert when above 0: rows
/// came that no partition covered, and the maintenance job was not making them) and
/// how many days ahead its partitions reach (alert below 2).
pub async fn gauges(pool: &PgPool, now: DateTime<Utc>) -> Result<(), StoreError> {
    for table in TABLES {
        let strays = partitions::strays(pool, table).await?;
        metrics::gauge!("switchyard_partition_default_rows", "table" => table.name)
            .set(strays as f64);
        let reach = partitions::list(pool, table)
            .await?
            .iter()
            .filter_map(|p| p.upper)
            .max()
            .map_or(0.0, |upper| (upper - now).num_seconds() as f64 / 86_400.0);
        metrics::gauge!("switchyard_partitions_ahead_days", "table" => table.name).set(reach);
    }
    Ok(())
}
