//! Upgrading a database of the release before time partitions: every event, fetched
//! object, delivery and attempt is still there, byte for byte, in the first partition;
//! the coming week's days are made; the new release delivers what was pending and reads
//! what was stored.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use switchyard_domain::ids::{AttemptId, DeliveryId, DestinationId, EventId};
use switchyard_domain::secrets::{DEV_KEY_HEX, SecretKey};
use switchyard_domain::store::partitions::{self, TABLES};
use switchyard_tests::app::Options;
use switchyard_tests::{Receiver, Reply, TestApp, db, sign};

/// The last migration of the release before time partitions.
const PREVIOUS_RELEASE: i64 = 20261205000007;
const EVENTS: i64 = 300;

/// Each table's rows, as text, in key order: equal before and after means nothing was
/// lost or changed.
async fn fingerprint(pool: &PgPool) -> Vec<(String, i64, String)> {
    let mut prints = Vec::new();
    for (table, key) in [
        ("events", "id"),
        ("event_objects", "event_id"),
        ("deliveries", "id"),
        ("attempts", "id"),
        ("event_dedup", "dedup_key"),
    ] {
        let (count, digest): (i64, Option<String>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY {key})) FROM {table} t"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        prints.push((table.to_owned(), count, digest.unwrap_or_default()));
    }
    prints
}

#[tokio::test]
async fn a_database_of_the_previous_release_is_partitioned_in_place_without_losing_a_row() {
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let database = db::create_empty().await;
    let pool = PgPool::connect(&db::url_for(&database)).await.unwrap();
    db::migrate_up_to(&pool, PREVIOUS_RELEASE).await;

    let (team, source) = db::legacy_team(&pool, "none").await;
    let destination = DestinationId::generate();
    let key = SecretKey::from_hex(DEV_KEY_HEX).unwrap();
    sqlx::query(
        "INSERT INTO destinations (id, team_id, name, kind, url, config, signing_secret)
         VALUES ($1, $2, 'in', 'http', $3, jsonb_build_object('kind', 'http', 'url', $3::text), $4)",
    )
    .bind(&destination)
    .bind(&team)
    .bind(receiver.url("/in"))
    .bind(key.seal(sign::new_whsec().as_bytes()))
    .execute(&pool)
    .await
    .unwrap();
    // Ten days of events, one an hour-ish, each delivered once; the last few still due.
    let now = Utc::now();
    let mut pending = Vec::new();
    for n in 0..EVENTS {
        let at = now - chrono::Duration::minutes(48 * (EVENTS - n));
        let event = EventId::generate_at(at);
        sqlx::query(
            "INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body, received_at)
             VALUES ($1, $2, $3, 'push', $4, '{\"content-type\": \"application/json\"}',
                     convert_to('{\"n\": ' || $5 || '}', 'UTF8'), $6)",
        )
        .bind(&event)
        .bind(&team)
        .bind(&source)
        .bind(format!("key-{n}"))
        .bind(n)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO event_dedup (source_id, dedup_key, team_id, event_id, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&source)
        .bind(format!("key-{n}"))
        .bind(&team)
        .bind(&event)
        .bind(at + chrono::Duration::days(30))
        .execute(&pool)
        .await
        .unwrap();
        if n % 3 == 0 {
            sqlx::query(
                "INSERT INTO event_objects (event_id, team_id, object) VALUES ($1, $2, '{\"id\": 1}')",
            )
            .bind(&event)
            .bind(&team)
            .execute(&pool)
            .await
            .unwrap();
        }
        let delivery = DeliveryId::generate();
        let due = n >= EVENTS - 5;
        sqlx::query(
            "INSERT INTO deliveries (id, team_id, event_id, destination_id, status, attempt_count,
                                     created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $5 = 'pending' THEN now() END)",
        )
        .bind(&delivery)
        .bind(&team)
        .bind(&event)
        .bind(&destination)
        .bind(if due { "pending" } else { "succeeded" })
        .bind(i32::from(!due))
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
        if due {
            pending.push(delivery.to_string());
        } else {
            sqlx::query(
                "INSERT INTO attempts (id, team_id, delivery_id, number, status, started_at,
                                       response_status, duration_ms)
                 VALUES ($1, $2, $3, 1, 'succeeded', $4, 200, 12)",
            )
            .bind(AttemptId::generate())
            .bind(&team)
            .bind(&delivery)
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    let before = fingerprint(&pool).await;

    // The new release's migrations, as `switchyard migrate` applies them.
    let options = switchyard::db::options(&db::url_for(&database)).unwrap();
    switchyard::db::migrate(&options).await.unwrap();
    assert_eq!(fingerprint(&pool).await, before, "every row, unchanged");
    for table in TABLES {
        let list = partitions::list(&pool, table).await.unwrap();
        let first = &list[0];
        assert!(
            first.lower.is_none() && first.name.starts_with(&format!("{}_before_", table.name))
        );
        let outside: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {} WHERE tableoid <> '{}'::regclass",
            table.name, first.name
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            outside, 0,
            "{}: every old row in the first partition",
            table.name
        );
        // The first partition reaches to tomorrow; a week of days follows it.
        assert_eq!(list.len(), 1 + 7, "{}: {list:?}", table.name);
    }
    pool.close().await;

    // The new release runs on it: what was due is delivered, what was stored is read.
    let app = TestApp::spawn_with(Options {
        database: Some(database),
        ..Options::default()
    })
    .await;
    let seen = receiver
        .wait_for_deliveries(&pending, Duration::from_secs(30))
        .await;
    assert!(seen.values().all(|n| *n == 1), "each sent once: {seen:?}");
    let legacy_key = switchyard_domain::store::api_keys::create(&app.pool, &team, "upgrade")
        .await
        .unwrap()
        .1;
    let read = |path: String| {
        let req = app
            .client
            .request(Method::GET, app.url(&path))
            .bearer_auth(&legacy_key);
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = read("/api/v1/events?limit=5".to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    let oldest: String = sqlx::query_scalar("SELECT min(id) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (status, event) = read(format!("/api/v1/events/{oldest}")).await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["id"], oldest.as_str());
}
