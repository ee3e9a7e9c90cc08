//! Retention: the hour's maintenance runs once across processes and deletes a team's
//! events past its retention, their deliveries and attempts with them, and nothing newer.

use std::time::Duration;

use reqwest::StatusCode;
use switchyard_domain::store::queue::{self, MaintenanceTask};
use switchyard_tests::app::{Options, spawn_worker_process};
use switchyard_tests::{Receiver, Reply, TestApp};

const SECRET: &str = "gh-secret";

#[tokio::test]
async fn events_past_a_team_s_retention_go_with_their_deliveries_once_an_hour() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    // Two worker processes, so two upkeep loops offer the hour's maintenance.
    let _first = spawn_worker_process(&app.database).await;
    let _second = spawn_worker_process(&app.database).await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["*"]).await;
    for guid in ["old-1", "old-2", "new-1"] {
        let (status, _) = app
            .send_github(&source, SECRET, "issues", guid, b"{}")
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    receiver.wait_for(3, Duration::from_secs(10)).await;

    // Age two of them past a one-day retention, ids and all, as if they came 3 days ago.
    sqlx::query("UPDATE teams SET retention_days = 1 WHERE slug = 'acme'")
        .execute(&app.pool)
        .await
        .unwrap();
    let aged = chrono::Utc::now() - chrono::Duration::days(3);
    let old_id = switchyard_domain::ids::EventId::first_at(aged);
    for guid in ["old-1", "old-2"] {
        let id: String = sqlx::query_scalar("SELECT id FROM events WHERE dedup_key = $1")
            .bind(guid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        let new_id = format!("{}{}", &old_id[..14], &id[14..]);
        sqlx::query(
            "WITH moved AS (
                 INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body, received_at)
                 SELECT $2, team_id, source_id, event_type, dedup_key || '-aged', headers, body, $3
                 FROM events WHERE id = $1 RETURNING id
             )
             UPDATE deliveries SET event_id = (SELECT id FROM moved) WHERE event_id = $1",
        )
        .bind(&id)
        .bind(&new_id)
        .bind(aged)
        .execute(&app.pool)
        .await
        .unwrap();
        sqlx::query("DELETE FROM events WHERE id = $1")
            .bind(&id)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    // Two processes offered this hour's maintenance; the queue holds it once.
    let this_hour = MaintenanceTask::for_hour(chrono::Utc::now());
    let key = format!("maintenance:{}", this_hour.slot);
    let offered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'switchyard::maintenance'
           AND idempotency_key = $1",
    )
    .bind(&key)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(offered, 1);
    assert!(
        !queue::push_maintenance(&app.pool, &this_hour)
            .await
            .unwrap(),
        "taken"
    );

    // Also past their time: one dedup window, and a worker that went silent two days ago
    // (a restarted worker registers under a new name).
    sqlx::query(
        "UPDATE event_dedup SET expires_at = now() - interval '1 minute' WHERE dedup_key = 'new-1'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, last_seen)
         VALUES ('switchyard-worker-gone', 'switchyard::deliveries', 'PgStorage', now() - interval '2 days')",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    // That run found nothing old; a run now (another slot, as the next hour) does.
    let next = MaintenanceTask {
        slot: "next-hour".to_owned(),
    };
    assert!(queue::push_maintenance(&app.pool, &next).await.unwrap());

    // The run has ended once its job row is done.
    app.eventually(|| async {
        let done: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM apalis.jobs
                            WHERE idempotency_key = 'maintenance:next-hour' AND status = 'Done')",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        done.then_some(())
    })
    .await;
    let (deliveries, attempts): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts)")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (deliveries, attempts),
        (1, 1),
        "the aged ones' went with them"
    );
    let kept: String = sqlx::query_scalar("SELECT dedup_key FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(kept, "new-1");
    let (dedup, silent, live): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM event_dedup WHERE dedup_key = 'new-1'),
                (SELECT count(*) FROM apalis.workers WHERE id = 'switchyard-worker-gone'),
                (SELECT count(*) FROM apalis.workers WHERE last_seen > now() - interval '1 minute')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (dedup, silent),
        (0, 0),
        "expired dedup row and silent worker pruned"
    );
    assert!(live > 0, "the running workers stay listed");
}

/// The child process of the worker test (see `spawn_worker_process`).
#[tokio::test]
#[ignore = "runs only as a child process of the retention test"]
async fn worker_process() {
    switchyard_tests::app::run_worker_process().await;
}
