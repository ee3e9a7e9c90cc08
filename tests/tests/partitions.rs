//! Time partitions (events, fetched objects, attempts): a week of days is made ahead, a
//! row no partition covers waits in the default partition until its day is made, days
//! past every team's retention are dropped whole unless an unsettled delivery needs
//! them (a replay under way included), and a team keeping less loses its rows on time
//! through batched deletes.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use switchyard_domain::StoreError;
use switchyard_domain::ids::{AttemptId, DeliveryId, EventId, TeamId};
use switchyard_domain::store::partitions::{self, ATTEMPTS, Detach, EVENTS, TABLES};
use switchyard_domain::store::queue::{self, MaintenanceTask};
use switchyard_domain::store::{deliveries, events, retention};
use switchyard_tests::TestApp;
use switchyard_tests::app::Options;
use switchyard_worker::partitions::{DAYS_AHEAD, ensure, retire};

/// Where a row landed: the partition holding `key` of `table`.
async fn partition_of(pool: &PgPool, table: &str, column: &str, key: &str) -> Option<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT tableoid::regclass::text FROM {table} WHERE {column} = $1"
    )))
    .bind(key)
    .fetch_optional(pool)
    .await
    .unwrap()
}

fn day_name(table: &str, at: DateTime<Utc>) -> String {
    format!("{table}_p{}", at.format("%Y%m%d"))
}

async fn partition_names(pool: &PgPool) -> Vec<String> {
    let mut names = Vec::new();
    for table in TABLES {
        for p in partitions::list(pool, table).await.unwrap() {
            names.push(p.name);
        }
    }
    names
}

/// Runs the hour's maintenance through the queue under `slot` and waits for its end.
async fn maintain(app: &TestApp, slot: &str) {
    let task = MaintenanceTask {
        slot: slot.to_owned(),
    };
    assert!(queue::push_maintenance(&app.pool, &task).await.unwrap());
    let key = format!("maintenance:{slot}");
    app.eventually(|| async {
        let done: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM apalis.jobs WHERE idempotency_key = $1 AND status = 'Done')",
        )
        .bind(&key)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        done.then_some(())
    })
    .await;
}

/// Gives a new database the partitions of one that has run for 48 days: the upgrade's
/// first partitions (empty here) give way to one a day.
async fn age(pool: &PgPool) {
    for table in TABLES {
        for p in partitions::list(pool, table).await.unwrap() {
            if p.lower.is_none() {
                let detached = partitions::detach(pool, table, &p).await.unwrap();
                assert!(matches!(detached, Detach::Done { .. }));
                partitions::drop_table(pool, &p.name).await.unwrap();
            }
        }
    }
    let now = Utc::now();
    for weeks in (0..=6).rev() {
        ensure(pool, now - Duration::days(8 * weeks)).await.unwrap();
    }
}

struct Rows<'a> {
    pool: &'a PgPool,
    source: String,
}

impl Rows<'_> {
    async fn event(&self, team: &TeamId, at: DateTime<Utc>) -> String {
        let id = EventId::generate_at(at).to_string();
        sqlx::query(
            "INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body, received_at)
             VALUES ($1, $2, $3, 'issues.opened', $1, '{}', '{}'::bytea, $4)",
        )
        .bind(&id)
        .bind(team)
        .bind(&self.source)
        .bind(at)
        .execute(self.pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO event_objects (event_id, team_id, object) VALUES ($1, $2, '{}')")
            .bind(&id)
            .bind(team)
            .execute(self.pool)
            .await
            .unwrap();
        id
    }

    /// A delivery of `event` made at `at` in `status`, with one attempt made then.
    async fn delivery(
        &self,
        team: &TeamId,
        event: &str,
        destination: &str,
        at: DateTime<Utc>,
        status: &str,
    ) -> (String, String) {
        let id = DeliveryId::generate_at(at).to_string();
        sqlx::query(
            "INSERT INTO deliveries (id, team_id, event_id, destination_id, status, attempt_count,
                                     created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6 + interval '100 years')",
        )
        .bind(&id)
        .bind(team)
        .bind(event)
        .bind(destination)
        .bind(status)
        .bind(at)
        .execute(self.pool)
        .await
        .unwrap();
        let attempt = AttemptId::generate_at(at).to_string();
        sqlx::query(
            "INSERT INTO attempts (id, team_id, delivery_id, number, status, started_at)
             VALUES ($1, $2, $3, 1, 'failed', $4)",
        )
        .bind(&attempt)
        .bind(team)
        .bind(&id)
        .bind(at)
        .execute(self.pool)
        .await
        .unwrap();
        (id, attempt)
    }
}

async fn ids(pool: &PgPool, query: &str) -> Vec<String> {
    let mut ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
        .fetch_all(pool)
        .await
        .unwrap();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<&String>) -> Vec<String> {
    ids.sort();
    ids.into_iter().cloned().collect()
}

#[tokio::test]
async fn the_week_ahead_is_made_and_a_stray_row_waits_in_the_default_partition_for_its_day() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    // Migrating made today (the upgrade's first partition covers it) and a week on.
    let names = partition_names(&app.pool).await;
    for ahead in 1..=DAYS_AHEAD {
        let day = now + Duration::days(ahead);
        for table in TABLES {
            assert!(
                names.contains(&day_name(table.name, day)),
                "{} in {names:?}",
                day_name(table.name, day)
            );
        }
    }
    assert_eq!(
        ensure(&app.pool, now).await.unwrap(),
        0,
        "nothing left to make"
    );

    // A webhook lands in today's partition.
    let source = app.create_source("none", None).await;
    let url = source["ingest_url"].as_str().unwrap();
    let (status, _) = app
        .hook(url, &[("content-type", "application/json")], "{\"n\":1}")
        .await;
    assert!(status.is_success());
    let first: String = sqlx::query_scalar("SELECT id FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let home = partition_of(&app.pool, "events", "id", &first)
        .await
        .unwrap();
    assert!(home.starts_with("events_before_"), "{home}");

    // A row from 20 days on (a clock far ahead) is stored all the same, in the default.
    let team: TeamId = sqlx::query_scalar("SELECT team_id FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let rows = Rows {
        pool: &app.pool,
        source: source["id"].as_str().unwrap().to_owned(),
    };
    let later = now + Duration::days(20);
    let stray = rows.event(&team, later).await;
    assert_eq!(
        partition_of(&app.pool, "events", "id", &stray)
            .await
            .as_deref(),
        Some("events_default")
    );
    assert_eq!(partitions::strays(&app.pool, EVENTS).await.unwrap(), 1);
    // The workers' gauges say so (once a second in tests).
    app.eventually(|| async {
        let text = app.metrics_at(&app.base).await;
        (text.contains(r#"switchyard_partition_default_rows{table="events"}"#)
            && text.contains(r#"switchyard_partitions_ahead_days{table="attempts"}"#))
        .then_some(())
    })
    .await;

    // Once its day is made, the row moves into it and the default is empty again.
    ensure(&app.pool, later - Duration::days(3)).await.unwrap();
    assert_eq!(
        partition_of(&app.pool, "events", "id", &stray).await,
        Some(day_name("events", later))
    );
    assert_eq!(partitions::strays(&app.pool, EVENTS).await.unwrap(), 0);
    let objects = partition_of(&app.pool, "event_objects", "event_id", &stray).await;
    assert_eq!(objects, Some(day_name("event_objects", later)));
}

/// An app aged 48 days with two teams, acme keeping 30 days and brief a week, a source
/// and a destination to make their rows with.
struct Aged {
    app: TestApp,
    acme: TeamId,
    brief: TeamId,
    source: String,
    destination: String,
}

impl Aged {
    async fn spawn(options: Options) -> Self {
        let app = TestApp::spawn_with(options).await;
        age(&app.pool).await;
        let source = app.create_source("none", None).await;
        let destination = app.create_destination("http://127.0.0.1:9/in").await;
        let acme: TeamId = sqlx::query_scalar("SELECT id FROM teams WHERE slug = 'acme'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        let brief: TeamId = sqlx::query_scalar(
            "INSERT INTO teams (id, slug, name, retention_days) VALUES ($1, 'brief', 'Brief', 7) RETURNING id",
        )
        .bind(TeamId::generate())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        Aged {
            acme,
            brief,
            source: source["id"].as_str().unwrap().to_owned(),
            destination: destination["id"].as_str().unwrap().to_owned(),
            app,
        }
    }

    fn rows(&self) -> Rows<'_> {
        Rows {
            pool: &self.app.pool,
            source: self.source.clone(),
        }
    }
}

#[tokio::test]
async fn days_past_every_retention_are_dropped_unless_an_unsettled_delivery_needs_them() {
    let aged = Aged::spawn(Options::default()).await;
    let (app, rows) = (&aged.app, aged.rows());
    let (acme, brief, destination) = (aged.acme.clone(), aged.brief.clone(), &aged.destination);
    let now = Utc::now();
    let days = |n: i64| now - Duration::days(n);

    // Past every retention: a day's event, delivery and attempt.
    let old = rows.event(&acme, days(40)).await;
    let (old_delivery, old_attempt) = rows
        .delivery(&acme, &old, destination, days(40), "succeeded")
        .await;
    // An event as old, replayed today: its replay goes with it.
    let replayed = rows.event(&acme, days(40)).await;
    let (replay, replay_attempt) = rows
        .delivery(&acme, &replayed, destination, now, "succeeded")
        .await;
    // Older still, but a routine's outcome nobody has settled: its days stay.
    let unsettled = rows.event(&acme, days(44)).await;
    let (waiting, waiting_attempt) = rows
        .delivery(&acme, &unsettled, destination, days(44), "unknown_outcome")
        .await;
    // Inside acme's 30 days.
    let kept = rows.event(&acme, days(20)).await;
    let (kept_delivery, _) = rows
        .delivery(&acme, &kept, destination, days(20), "succeeded")
        .await;
    // Past brief's week: deleted row by row, except one still held for its destination.
    let short = rows.event(&brief, days(20)).await;
    let (short_delivery, short_attempt) = rows
        .delivery(&brief, &short, destination, days(20), "succeeded")
        .await;
    let short_held = rows.event(&brief, days(20)).await;
    let (held, _) = rows
        .delivery(&brief, &short_held, destination, days(20), "held")
        .await;
    let recent = rows.event(&brief, days(3)).await;

    maintain(app, "first").await;

    let names = partition_names(&app.pool).await;
    for table in TABLES {
        let name = table.name;
        assert!(
            !names.contains(&day_name(name, days(40))),
            "{name} day -40 dropped"
        );
        assert!(
            !names.contains(&day_name(name, days(31))),
            "{name} day -31 dropped"
        );
        assert!(
            names.contains(&day_name(name, days(44))),
            "{name} day -44 held"
        );
        assert!(
            names.contains(&day_name(name, days(29))),
            "{name} day -29 kept"
        );
    }
    assert_eq!(
        ids(&app.pool, "SELECT id FROM events").await,
        sorted(vec![&unsettled, &kept, &short_held, &recent])
    );
    assert_eq!(
        ids(&app.pool, "SELECT event_id FROM event_objects").await,
        sorted(vec![&unsettled, &kept, &short_held, &recent])
    );
    assert_eq!(
        ids(&app.pool, "SELECT id FROM deliveries").await,
        sorted(vec![&waiting, &kept_delivery, &held])
    );
    let attempts = ids(&app.pool, "SELECT id FROM attempts").await;
    assert!(attempts.contains(&waiting_attempt));
    for gone in [&old_attempt, &replay_attempt, &short_attempt] {
        assert!(!attempts.contains(gone), "{gone} deleted");
    }
    let _ = (old_delivery, replay, short_delivery);

    // A row of a day already dropped waits in the default partition until the next run.
    let late = rows.event(&acme, days(35)).await;
    assert_eq!(partitions::strays(&app.pool, EVENTS).await.unwrap(), 1);

    // Once the outcome is settled, the next run drops its days.
    sqlx::query("UPDATE deliveries SET status = 'failed' WHERE id = $1")
        .bind(&waiting)
        .execute(&app.pool)
        .await
        .unwrap();
    // A run detaches the days it retires; the next drops them.
    let first_run = partitions::detached(&app.pool, ATTEMPTS).await.unwrap();
    assert!(
        first_run.contains(&day_name(ATTEMPTS.name, days(40))),
        "{first_run:?}"
    );
    maintain(app, "second").await;
    assert_eq!(
        partitions::detached(&app.pool, ATTEMPTS).await.unwrap(),
        vec![day_name(ATTEMPTS.name, days(44))],
        "the first run's dropped, the second's detached"
    );
    let names = partition_names(&app.pool).await;
    for table in TABLES {
        assert!(!names.contains(&day_name(table.name, days(44))));
    }
    let events = ids(&app.pool, "SELECT id FROM events").await;
    assert!(!events.contains(&unsettled) && !events.contains(&late));
    assert!(
        !ids(&app.pool, "SELECT id FROM deliveries")
            .await
            .contains(&waiting)
    );
    for table in [EVENTS, ATTEMPTS] {
        assert_eq!(partitions::strays(&app.pool, table).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn a_replay_under_way_keeps_what_it_needs_from_retention() {
    let aged = Aged::spawn(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let (pool, rows) = (&aged.app.pool, aged.rows());
    let (acme, brief, destination) = (&aged.acme, &aged.brief, &aged.destination);
    let now = Utc::now();
    let days = |n: i64| now - Duration::days(n);
    let day = |table: partitions::Table| async move {
        let name = day_name(table.name, days(40));
        let all = partitions::list(pool, table).await.unwrap();
        all.into_iter().find(|p| p.name == name).unwrap()
    };
    // Settled deliveries past every retention (acme's) and past brief's week.
    let old = rows.event(acme, days(40)).await;
    let (old_delivery, _) = rows
        .delivery(acme, &old, destination, days(40), "succeeded")
        .await;
    let short = rows.event(brief, days(20)).await;
    let (short_delivery, _) = rows
        .delivery(brief, &short, destination, days(20), "failed")
        .await;

    // Both are being replayed: the replay's transaction has not committed yet.
    let mut replay = pool.begin().await.unwrap();
    for (team, id) in [(acme, &old_delivery), (brief, &short_delivery)] {
        deliveries::replay(&mut replay, team, &id.parse().unwrap(), now)
            .await
            .unwrap();
    }
    // Retention waits for it: detaching the old delivery's attempts day (a table the
    // replay does not touch) gives up on its lock, to be tried again.
    let waited = partitions::detach(pool, ATTEMPTS, &day(ATTEMPTS).await)
        .await
        .unwrap_err();
    assert!(partitions::is_lock_timeout(&waited), "{waited}");
    // The events day's batched delete waits on the replayed row, brief's delete on the
    // lock (or it gives way, deleting nothing, if the replay took over 500 ms).
    let events_day = day(EVENTS).await;
    let batch = tokio::spawn({
        let (pool, events_day) = (pool.clone(), events_day.clone());
        async move { partitions::delete_deliveries_of(&pool, &events_day, 5000).await }
    });
    let deleting = tokio::spawn({
        let (pool, brief) = (pool.clone(), brief.clone());
        async move { retention::delete_events(&pool, &brief, now - Duration::days(7), 100).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(!batch.is_finished());
    replay.commit().await.unwrap();

    // Then each sees the replay, and nothing it needs goes.
    assert_eq!(
        batch.await.unwrap().unwrap(),
        0,
        "the replayed one passed over"
    );
    assert_eq!(deleting.await.unwrap().unwrap(), 0);
    let retired = retire(pool, days(30)).await.unwrap();
    for table in TABLES {
        let day = day_name(table.name, days(40));
        assert!(retired.held.contains(&day), "{day} held: {retired:?}");
    }
    assert_eq!(
        ids(pool, "SELECT id FROM events").await,
        sorted(vec![&old, &short])
    );
    assert_eq!(
        ids(pool, "SELECT status::text FROM deliveries").await,
        ["pending", "pending"]
    );

    // Settled again after the batches passed it, it goes with its day.
    sqlx::query("UPDATE deliveries SET status = 'failed' WHERE id = $1")
        .bind(&old_delivery)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        partitions::detach(pool, EVENTS, &events_day).await.unwrap(),
        Detach::Done { deliveries: 1 }
    );
    assert_eq!(
        ids(pool, "SELECT id FROM deliveries").await,
        vec![short_delivery]
    );

    // A re-run holds retention back as a replay does...
    let mut rerun = pool.begin().await.unwrap();
    let made = events::rerun(&mut rerun, brief, &short.parse().unwrap(), &[], now).await;
    assert_eq!(made.unwrap(), 0, "no routes planned");
    let waited = partitions::detach(pool, ATTEMPTS, &day(ATTEMPTS).await)
        .await
        .unwrap_err();
    assert!(partitions::is_lock_timeout(&waited), "{waited}");
    rerun.rollback().await.unwrap();
    // ...and one planned before retention took its event finds it gone when it writes.
    let mut rerun = pool.begin().await.unwrap();
    let made = events::rerun(&mut rerun, acme, &old.parse().unwrap(), &[], now).await;
    assert!(matches!(made, Err(StoreError::NotFound)), "{made:?}");
}

#[tokio::test]
async fn a_day_whose_lock_stays_busy_is_left_whole_for_the_next_run() {
    let aged = Aged::spawn(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let pool = &aged.app.pool;
    let now = Utc::now();
    let days = |n: i64| now - Duration::days(n);
    // A long read holds the events of 40 days ago through every try of the detach.
    let mut reader = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        day_name(EVENTS.name, days(40))
    )))
    .execute(&mut *reader)
    .await
    .unwrap();

    let retired = retire(pool, days(30)).await.unwrap();
    for table in TABLES {
        let (busy, free) = (
            day_name(table.name, days(40)),
            day_name(table.name, days(41)),
        );
        assert!(retired.busy.contains(&busy), "{busy} busy: {retired:?}");
        assert!(retired.detached.contains(&free), "{free} detached");
    }

    reader.rollback().await.unwrap();
    let retired = retire(pool, days(30)).await.unwrap();
    assert!(retired.busy.is_empty(), "{retired:?}");
    for table in TABLES {
        let day = day_name(table.name, days(40));
        assert!(
            retired.detached.contains(&day),
            "{day} detached: {retired:?}"
        );
    }
}
