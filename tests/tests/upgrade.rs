//! Upgrading a database of the release that pushed an apalis task per delivery: its
//! pending delivery tasks become due deliveries, a delivery it had in flight is taken
//! over as an expired lease (sent again; a routine fire becomes `unknown_outcome`), and
//! each destination's state moves over with it.

use std::time::Duration;

use apalis::prelude::TaskBuilder;
use serde_json::json;
use sqlx::PgPool;
use switchyard_domain::ids::{AttemptId, DeliveryId, DestinationId, EventId, RouteId, TeamId};
use switchyard_domain::secrets::{DEV_KEY_HEX, SecretKey};
use switchyard_tests::app::Options;
use switchyard_tests::{FakeRoutines, Receiver, Reply, TestApp, db, sign};

/// The last migration of the previous release.
const PREVIOUS_RELEASE: i64 = 20261127000019;
const TOKEN: &str = "sk-ant-oat01-test-token-0123456789";

/// What the previous release wrote for one delivery of `event` to `destination`.
async fn delivery(
    pool: &PgPool,
    team: &TeamId,
    event: &EventId,
    route: &RouteId,
    destination: &DestinationId,
    status: &str,
) -> DeliveryId {
    let id = DeliveryId::generate();
    let started = status == "in_flight";
    sqlx::query(
        "INSERT INTO deliveries (id, team_id, event_id, route_id, destination_id, status,
                                 attempt_count, series_attempts, task_seq, next_attempt_at,
                                 created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1,
                 CASE WHEN $6 = 'pending' THEN now() END, now())",
    )
    .bind(&id)
    .bind(team)
    .bind(event)
    .bind(route)
    .bind(destination)
    .bind(status)
    .bind(i32::from(started))
    .execute(pool)
    .await
    .unwrap();
    if started {
        sqlx::query(
            "INSERT INTO attempts (id, team_id, delivery_id, number, status, started_at)
             VALUES ($1, $2, $3, 1, 'in_flight', now())",
        )
        .bind(AttemptId::generate())
        .bind(team)
        .bind(&id)
        .execute(pool)
        .await
        .unwrap();
    } else if status == "pending" {
        // Its task, as the previous release pushed it.
        let task = json!({"team_id": team, "delivery_id": id, "seq": 1});
        let task = TaskBuilder::new(serde_json::to_vec(&task).unwrap())
            .max_attempts(1)
            .build();
        let mut conn = pool.acquire().await.unwrap();
        apalis_postgres::queries::push_tasks(&mut *conn, "switchyard::deliveries", vec![task])
            .await
            .unwrap();
    }
    id
}

#[tokio::test]
async fn the_previous_release_s_delivery_tasks_become_due_deliveries_and_nothing_is_lost() {
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let fake = FakeRoutines::start(TOKEN, vec![]).await;
    let database = db::create_empty().await;
    let pool = PgPool::connect(&db::url_for(&database)).await.unwrap();
    db::migrate_up_to(&pool, PREVIOUS_RELEASE).await;

    let key = SecretKey::from_hex(DEV_KEY_HEX).unwrap();
    let (team, source) = db::legacy_team(&pool, "github").await;
    let (http, routine, paused) = (
        DestinationId::generate(),
        DestinationId::generate(),
        DestinationId::generate(),
    );
    let signing = key.seal(sign::new_whsec().as_bytes());
    // The previous release sealed a routine's credentials without their kind.
    let sealed = key.seal(&serde_json::to_vec(&json!({ "token": TOKEN })).unwrap());
    for (id, kind, url, state, failures, credentials) in [
        (&http, "http", receiver.url("/in"), "active", 3, None),
        (
            &routine,
            "routine",
            fake.fire_url("trig_01ABCDEF"),
            "active",
            0,
            Some(&sealed),
        ),
        (&paused, "http", receiver.url("/paused"), "paused", 0, None),
    ] {
        sqlx::query(
            "INSERT INTO destinations (id, team_id, name, kind, url, signing_secret,
                                       sealed_credentials, state, consecutive_failures)
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(&team)
        .bind(kind)
        .bind(url)
        .bind(&signing)
        .bind(credentials)
        .bind(state)
        .bind(failures)
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut routes = Vec::new();
    for destination in [&http, &routine, &paused] {
        let route = RouteId::generate();
        sqlx::query(
            "INSERT INTO routes (id, team_id, name, source_id, destination_id, event_types)
             VALUES ($1, $2, 'r', $3, $4, '{*}')",
        )
        .bind(&route)
        .bind(&team)
        .bind(&source)
        .bind(destination)
        .execute(&pool)
        .await
        .unwrap();
        routes.push(route);
    }
    let mut events = Vec::new();
    for n in 0..7 {
        let event = EventId::generate();
        sqlx::query(
            "INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body,
                                 received_at)
             VALUES ($1, $2, $3, 'issues.opened', $4, '{\"content-type\": \"application/json\"}',
                     '{\"action\": \"opened\"}'::bytea, now())",
        )
        .bind(&event)
        .bind(&team)
        .bind(&source)
        .bind(format!("guid-{n}"))
        .execute(&pool)
        .await
        .unwrap();
        events.push(event);
    }
    let mut pending = Vec::new();
    for event in &events[..5] {
        pending.push(delivery(&pool, &team, event, &routes[0], &http, "pending").await);
    }
    let sending = delivery(&pool, &team, &events[5], &routes[0], &http, "in_flight").await;
    let firing = delivery(&pool, &team, &events[6], &routes[1], &routine, "in_flight").await;
    let held = delivery(&pool, &team, &events[0], &routes[2], &paused, "held").await;
    pool.close().await;

    // The new release starts on that database: it migrates, and its worker takes over.
    let app = TestApp::spawn_with(Options {
        database: Some(database),
        ..Options::default()
    })
    .await;
    let mut expected: Vec<String> = pending.iter().map(ToString::to_string).collect();
    expected.push(sending.to_string());
    let seen = receiver
        .wait_for_deliveries(&expected, Duration::from_secs(30))
        .await;
    assert!(seen.values().all(|n| *n == 1), "each sent once: {seen:?}");

    let status = |id: &DeliveryId| {
        let pool = app.pool.clone();
        let id = id.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM deliveries WHERE id = $1")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while status(&firing).await != "unknown_outcome" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fire was not taken over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        fake.received().is_empty(),
        "a fire in flight is never sent again"
    );
    for id in pending.iter().chain([&sending]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while status(id).await != "succeeded" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} did not succeed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let attempts: Vec<String> =
        sqlx::query_scalar("SELECT status FROM attempts WHERE delivery_id = $1 ORDER BY number")
            .bind(&sending)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, ["lost", "succeeded"]);

    // The paused destination stayed paused, its delivery held; no old task is left.
    assert_eq!(status(&held).await, "held");
    let (state, failures): (String, i32) =
        sqlx::query_as("SELECT state, consecutive_failures FROM destination_runtime WHERE id = $1")
            .bind(&paused)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), failures), ("paused", 0));
    assert!(
        !receiver.received().iter().any(|r| r.path == "/paused"),
        "nothing went to the paused destination"
    );
    let tasks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'switchyard::deliveries'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(tasks, 0);
}
