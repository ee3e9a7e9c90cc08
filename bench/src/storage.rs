//! The storage benchmark: a team with `events` events over `days` days (a partition a
//! day), the deliveries and attempts of the oldest and newest days, then
//! - the size of each table per million rows, partitioned and as one plain table;
//! - the dashboard's and API's lists, search and overview at that size;
//! - dropping the oldest day (events, objects, deliveries, attempts) while ingest runs
//!   open loop at half its measured maximum, against the same load unloaded; and
//!   deleting a day row by row in batches (a team keeping less) under the same load.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Duration as Days, Utc};
use sqlx::PgPool;
use switchyard_domain::ids::TeamId;
use switchyard_domain::store::partitions::{self, TABLES};
use switchyard_domain::store::{accounts, retention, rollups, teams};

use crate::ingest::{Setup, cpu_model, drive, drive_at, ms, num_cpus, percentile};
use crate::logs::{measure, seed};

pub async fn run(admin_url: &str, events: i64, days: i64, requests: usize) -> anyhow::Result<()> {
    let setup = Setup::start(admin_url, true).await?;
    let pool = setup.pool.clone();
    let (team, source, destination, route): (TeamId, String, String, String) =
        sqlx::query_as("SELECT r.team_id, r.source_id, r.destination_id, r.id FROM routes r")
            .fetch_one(&pool)
            .await?;
    lay_out_days(&pool, days + 1).await?;

    let seeding = Instant::now();
    let spacing_ms = (days * 86_400_000) as f64 / events as f64;
    seed(&pool, team.as_str(), &source, events, 0, spacing_ms).await?;
    let now = Utc::now();
    let oldest_day = (now - Days::days(days)).date_naive() + Days::days(1);
    for day in [oldest_day, now.date_naive()] {
        deliver_day(&pool, &team, &route, &destination, day).await?;
    }
    sqlx::query("ANALYZE").execute(&pool).await?;
    count_hours(&pool).await?;
    println!(
        "machine: {} cores, {}\nseeded {events} events over {days} days, the deliveries and attempts of {oldest_day} and today, in {:.0} s\n",
        num_cpus(),
        cpu_model(),
        seeding.elapsed().as_secs_f64()
    );

    sizes(&pool, oldest_day).await?;
    lists(&setup, &pool, &team, requests).await?;
    retention_under_load(&setup, &pool, &team, oldest_day).await?;
    setup.stop(admin_url).await
}

/// Runs the overview's hourly count until it has caught up with the seeded week, as the
/// workers' upkeep would have done every minute while the events came.
async fn count_hours(pool: &PgPool) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut runs, mut hours) = (0, 0);
    let caught_up = Utc::now() - Days::minutes(2);
    loop {
        let counted = rollups::refresh(pool, Utc::now()).await?;
        runs += 1;
        hours += counted.hours;
        match counted.until {
            Some(until) if until >= caught_up => break,
            Some(_) => {}
            // A worker is counting: wait for it.
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    println!(
        "hourly counts: {hours} team-hours counted in {runs} runs, {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A partition a day from `back` days ago to a week ahead, in place of the first
/// partition a new database starts with (which would otherwise hold every seeded day).
async fn lay_out_days(pool: &PgPool, back: i64) -> anyhow::Result<()> {
    for table in TABLES {
        for p in partitions::list(pool, table).await? {
            if p.lower.is_none() {
                let detached = partitions::detach(pool, table, &p).await?;
                anyhow::ensure!(
                    matches!(detached, partitions::Detach::Done { .. }),
                    "{} kept",
                    p.name
                );
                partitions::drop_table(pool, &p.name).await?;
            }
        }
    }
    switchyard_worker::partitions::ensure(pool, Utc::now() - Days::days(back)).await?;
    let mut at = Utc::now() - Days::days(back);
    while at < Utc::now() {
        switchyard_worker::partitions::ensure(pool, at).await?;
        at += Days::days(switchyard_worker::partitions::DAYS_AHEAD);
    }
    switchyard_worker::partitions::ensure(pool, Utc::now()).await?;
    Ok(())
}

/// One delivery (succeeded) and one attempt for each of the day's events, made when the
/// event was, so they land in the same day's partitions.
async fn deliver_day(
    pool: &PgPool,
    team: &TeamId,
    route: &str,
    destination: &str,
    day: chrono::NaiveDate,
) -> anyhow::Result<()> {
    let lower = partitions::EVENTS.first_at(partitions::day_start(day));
    let upper = partitions::EVENTS.first_at(partitions::day_start(day + Days::days(1)));
    sqlx::query(
        "INSERT INTO deliveries (id, team_id, event_id, route_id, destination_id, status,
                                 attempt_count, created_at, updated_at)
         SELECT 'dlv_' || substr(id, 5), team_id, id, $2, $3, 'succeeded', 1, received_at, received_at
         FROM events WHERE team_id = $1 AND id >= $4 AND id < $5",
    )
    .bind(team)
    .bind(route)
    .bind(destination)
    .bind(&lower)
    .bind(&upper)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO attempts (id, team_id, delivery_id, number, status, started_at, due_at,
                               duration_ms, response_status)
         SELECT 'att_' || substr(id, 5), team_id, 'dlv_' || substr(id, 5), 1, 'succeeded',
                received_at, received_at, 20, 200
         FROM events WHERE team_id = $1 AND id >= $2 AND id < $3",
    )
    .bind(team)
    .bind(&lower)
    .bind(&upper)
    .execute(pool)
    .await?;
    Ok(())
}

/// Bytes per million rows of each table (heap, TOAST and indexes), over all its
/// partitions, and for one day of it copied into a plain table with the same indexes
/// (the layout before partitioning).
async fn sizes(pool: &PgPool, day: chrono::NaiveDate) -> anyhow::Result<()> {
    let per_million = |bytes: i64, rows: i64| match rows {
        0 => "-".to_owned(),
        _ => format!("{:.0}", bytes as f64 / rows as f64),
    };
    println!(
        "{:<16} {:>12} {:>20} {:>20}",
        "table", "rows", "MB/M partitioned", "MB/M one table"
    );
    for table in TABLES {
        let (rows, bytes): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT count(*) FROM {name}),
                    (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint
                     FROM pg_inherits WHERE inhparent = '{name}'::regclass)",
            name = table.name
        )))
        .fetch_one(pool)
        .await?;
        let key = if table.name == "event_objects" {
            "event_id"
        } else {
            "id"
        };
        let flat = format!("{}_flat", table.name);
        let lower = table.first_at(partitions::day_start(day));
        let upper = table.first_at(partitions::day_start(day + Days::days(1)));
        for statement in [
            format!("CREATE TABLE {flat} (LIKE {} INCLUDING ALL)", table.name),
            format!(
                "INSERT INTO {flat} SELECT * FROM {} WHERE {key} >= '{lower}' AND {key} < '{upper}'",
                table.name
            ),
            format!("VACUUM ANALYZE {flat}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(pool)
                .await?;
        }
        let (flat_rows, flat_bytes): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), pg_total_relation_size('{flat}') FROM {flat}"
        )))
        .fetch_one(pool)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {flat}")))
            .execute(pool)
            .await?;
        println!(
            "{:<16} {:>12} {:>20} {:>20}",
            table.name,
            rows,
            per_million(bytes, rows),
            per_million(flat_bytes, flat_rows)
        );
    }
    // Deliveries stay one table (the queue): its size per million as it is.
    let (rows, bytes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM deliveries), pg_total_relation_size('deliveries')",
    )
    .fetch_one(pool)
    .await?;
    println!(
        "{:<16} {:>12} {:>20} {:>20}",
        "deliveries",
        rows,
        "(one table)",
        per_million(bytes, rows)
    );
    println!();
    Ok(())
}

/// p50, p95 and p99 of the dashboard's and API's reads at this size.
async fn lists(setup: &Setup, pool: &PgPool, team: &TeamId, requests: usize) -> anyhow::Result<()> {
    let user = teams::add_member(
        &mut *pool.acquire().await?,
        team,
        "bench@example.com",
        "owner",
    )
    .await?;
    let session = accounts::start_session(pool, &user, Utc::now()).await?;
    let cookie = format!("sy_session={}", session.token);
    let (_, key) = switchyard_domain::store::api_keys::create(pool, team, "reads").await?;
    let bearer = format!("Bearer {key}");
    let app = &setup.server.app;
    let cases: Vec<(&str, String, bool)> = vec![
        (
            "dashboard: events, newest page",
            format!("{app}/t/bench/events"),
            true,
        ),
        (
            "dashboard: deliveries, newest page",
            format!("{app}/t/bench/deliveries"),
            true,
        ),
        (
            "dashboard: search payload.issue.number == n",
            format!("{app}/t/bench/events?filter=payload.issue.number+%3D%3D+7"),
            true,
        ),
        (
            "dashboard: event type glob issue*",
            format!("{app}/t/bench/events?event_type=issue*"),
            true,
        ),
        (
            "dashboard: overview, 24 hours",
            format!("{app}/t/bench"),
            true,
        ),
        (
            "dashboard: overview, 7 days",
            format!("{app}/t/bench?window=7d"),
            true,
        ),
        (
            "API: events, newest page",
            format!("{app}/api/v1/events?limit=50"),
            false,
        ),
        (
            "API: deliveries, newest page",
            format!("{app}/api/v1/deliveries?limit=50"),
            false,
        ),
    ];
    println!("{requests} sequential requests each");
    println!("{:<50} {:>9} {:>9} {:>9}", "request", "p50", "p95", "p99");
    for (name, url, signed_in) in cases {
        let credential = match signed_in {
            true => ("cookie", cookie.as_str()),
            false => ("authorization", bearer.as_str()),
        };
        let samples = measure(&setup.client, &url, credential, requests).await?;
        println!(
            "{:<50} {:>9} {:>9} {:>9}",
            name,
            ms(percentile(&samples, 0.50)),
            ms(percentile(&samples, 0.95)),
            ms(percentile(&samples, 0.99))
        );
    }
    println!();
    Ok(())
}

/// Ingest at half its maximum rate, unloaded; while the oldest day's deliveries are
/// deleted and its partitions dropped; and while a day is deleted in batches.
async fn retention_under_load(
    setup: &Setup,
    pool: &PgPool,
    team: &TeamId,
    oldest_day: chrono::NaiveDate,
) -> anyhow::Result<()> {
    let max = drive(&setup.client, &setup.hook, 16, Duration::from_secs(5), 1).await;
    let rate = max.accepted as f64 / max.elapsed.as_secs_f64() / 2.0;
    println!(
        "ingest maximum {:.0}/s at c16; load at half: {rate:.0}/s open loop",
        rate * 2.0
    );
    let unloaded = drive_at(&setup.client, &setup.hook, rate, Duration::from_secs(12), 2).await;
    let p99_unloaded = percentile(&unloaded.acks, 0.99);
    println!(
        "ack p99 unloaded: {} ({} errors)",
        ms(p99_unloaded),
        unloaded.errors
    );
    let report = |what: &str, took: Duration, loaded: &Loaded| {
        let p99 = percentile(&loaded.acks, 0.99);
        println!(
            "{what} in {:.2} s; ack p99 meanwhile {}: {:.2}x unloaded ({} errors)",
            took.as_secs_f64(),
            ms(p99),
            p99.as_secs_f64() / p99_unloaded.as_secs_f64(),
            loaded.errors
        );
    };

    // The oldest day's deliveries go first, in the batches retention deletes them in.
    let events_day = partitions::list(pool, partitions::EVENTS)
        .await?
        .into_iter()
        .find(|p| p.lower == Some(partitions::day_start(oldest_day)))
        .context("the oldest day's events partition")?;
    let (deleted, took, loaded) = under_load(setup, rate, {
        let pool = pool.clone();
        async move {
            let mut total = 0;
            loop {
                let gone = partitions::delete_deliveries_of(&pool, &events_day, 5000).await?;
                total += gone;
                if gone < 5000 {
                    return Ok(total);
                }
            }
        }
    })
    .await?;
    report(
        &format!("deleted the oldest day's {deleted} deliveries"),
        took,
        &loaded,
    );

    // Then its partitions: detached, and dropped by the next run (the empty days before
    // it go first, apart).
    let retire = |before| {
        let pool = pool.clone();
        async move { Ok(switchyard_worker::partitions::retire(&pool, before).await?) }
    };
    retire(partitions::day_start(oldest_day)).await?;
    retire(partitions::day_start(oldest_day)).await?;
    let before = partitions::day_start(oldest_day + Days::days(1));
    for step in ["detached", "the next run dropped"] {
        let waits = LockWaits::start(pool.clone());
        let (retired, took, loaded) = under_load(setup, rate, retire(before)).await?;
        let waits = waits.stop().await;
        let names = match step {
            "detached" => retired.detached,
            _ => retired.dropped,
        };
        report(
            &format!("{step} {} partitions ({})", names.len(), names.join(", ")),
            took,
            &loaded,
        );
        println!("  lock waits meanwhile, sampled every 10 ms (samples: waiting <- behind):");
        for ((waiting, behind), samples) in waits.iter().take(6) {
            println!("  {samples:>4}: {waiting} <- {behind}");
        }
    }

    // A team keeping less: the next day goes row by row, in batches, for 10 s.
    let before = partitions::day_start(oldest_day + Days::days(2));
    let (deleted, took, loaded) = under_load(setup, rate, {
        let (pool, team) = (pool.clone(), team.clone());
        async move {
            let (started, mut deleted) = (Instant::now(), 0);
            while started.elapsed() < Duration::from_secs(10) {
                let gone = retention::delete_events(&pool, &team, before, 1000).await?;
                deleted += gone;
                if gone == 0 {
                    break;
                }
            }
            Ok(deleted)
        }
    })
    .await?;
    report(
        &format!(
            "batched delete of {deleted} events (with their objects), {:.0}/s,",
            deleted as f64 / took.as_secs_f64()
        ),
        took,
        &loaded,
    );
    Ok(())
}

/// Statements waiting for a lock and the ones they waited behind, sampled from
/// `pg_stat_activity` every 10 ms until stopped.
struct LockWaits {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<HashMap<(String, String), u64>>,
}

impl LockWaits {
    fn start(pool: PgPool) -> LockWaits {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut seen = HashMap::new();
            while stopped.try_recv().is_err() {
                let pairs: Vec<(String, String)> = sqlx::query_as(
                    "SELECT left(regexp_replace(w.query, '\\s+', ' ', 'g'), 70),
                            left(regexp_replace(b.query, '\\s+', ' ', 'g'), 70)
                     FROM pg_stat_activity w
                     CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker (pid)
                     JOIN pg_stat_activity b ON b.pid = blocker.pid
                     WHERE w.wait_event_type = 'Lock' AND w.datname = current_database()",
                )
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
                for pair in pairs {
                    *seen.entry(pair).or_insert(0) += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        });
        LockWaits { stop, task }
    }

    /// The pairs seen, most often first.
    async fn stop(self) -> Vec<((String, String), u64)> {
        let _ = self.stop.send(());
        let mut seen: Vec<_> = self.task.await.unwrap_or_default().into_iter().collect();
        seen.sort_by_key(|pair| std::cmp::Reverse(pair.1));
        seen
    }
}

/// The acks of the load that ran while an operation did.
#[derive(Default)]
struct Loaded {
    acks: Vec<Duration>,
    errors: usize,
}

/// Runs `op` while ingest runs open loop at `rate`, in windows of two seconds until the
/// operation has ended. Returns what it returned, how long it took and the load's acks.
async fn under_load<T: Send + 'static>(
    setup: &Setup,
    rate: f64,
    op: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<(T, Duration, Loaded)> {
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let done = op.await;
        (done, started.elapsed())
    });
    let mut loaded = Loaded::default();
    for window in 10.. {
        let phase = drive_at(
            &setup.client,
            &setup.hook,
            rate,
            Duration::from_secs(2),
            window,
        )
        .await;
        loaded.acks.extend(phase.acks);
        loaded.errors += phase.errors;
        if task.is_finished() {
            break;
        }
    }
    let (done, took) = task.await.context("operation")?;
    Ok((done?, took, loaded))
}
