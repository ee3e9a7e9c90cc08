//! Outcomes recorded many per transaction, against the real store: a batch that mixes a
//! destination's failures and successes counts them in the order they came, and a stale
//! outcome beside the fresh one of the same delivery changes nothing.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use switchyard_domain::delivery::Decision;
use switchyard_domain::delivery::breaker::BreakerPolicy;
use switchyard_domain::store::attempts::{AttemptRecord, Claimed};
use switchyard_domain::store::claim::{self, ClaimRequest};
use switchyard_domain::store::outcomes::{self, Finished, Recorded, Report};
use switchyard_tests::app::Options;
use switchyard_tests::{Receiver, Reply, TestApp};

const SECRET: &str = "gh-secret";

/// An app without workers, a route to a receiver, and `n` due deliveries.
async fn due(n: usize) -> (TestApp, Receiver, String) {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.github_to(SECRET, &receiver.url("/in"), &["*"]).await;
    for i in 0..n {
        app.send_issue(&source, SECRET, &format!("batch-{i}"), b"{}")
            .await;
    }
    let destination: String = sqlx::query_scalar("SELECT id FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    (app, receiver, destination)
}

async fn claim_all(app: &TestApp, lease: Duration) -> Vec<Claimed> {
    let busy = HashMap::new();
    let request = ClaimRequest {
        limit: 16,
        per_destination: 16,
        busy: &busy,
        lease,
    };
    let mut conn = app.pool.acquire().await.unwrap();
    let mut claimed = claim::claim(&mut conn, &request, Utc::now())
        .await
        .unwrap()
        .claimed;
    claimed.sort_by(|a, b| a.delivery.id.cmp(&b.delivery.id));
    claimed
}

fn answered(claimed: &Claimed, status: u16) -> Finished {
    let decision = if status == 200 {
        Decision::Succeeded
    } else {
        Decision::RetryAt(Utc::now() + chrono::Duration::seconds(5))
    };
    Finished {
        claimed: claimed.clone(),
        report: Report::Sent {
            record: AttemptRecord {
                response_status: Some(i32::from(status)),
                ..AttemptRecord::default()
            },
            decision,
        },
    }
}

async fn record(app: &TestApp, batch: &[Finished]) -> Vec<Recorded> {
    let mut tx = app.pool.begin().await.unwrap();
    let recorded = outcomes::record(&mut tx, batch, &BreakerPolicy::default(), Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    recorded
}

#[tokio::test]
async fn a_batch_counts_a_destination_s_failures_and_successes_in_the_order_they_came() {
    let (app, _receiver, destination) = due(5).await;
    let claimed = claim_all(&app, Duration::from_secs(60)).await;
    assert_eq!(claimed.len(), 5);
    // Three failures, a success, a failure: one failure in a row at the end.
    let batch: Vec<Finished> = claimed
        .iter()
        .zip([500, 500, 500, 200, 500])
        .map(|(c, status)| answered(c, status))
        .collect();
    let recorded = record(&app, &batch).await;
    assert!(recorded.iter().all(|r| *r == Recorded::Recorded));
    let failures: i32 =
        sqlx::query_scalar("SELECT consecutive_failures FROM destination_runtime WHERE id = $1")
            .bind(&destination)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(failures, 1);
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM deliveries ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        statuses,
        ["pending", "pending", "pending", "succeeded", "pending"]
    );
}

#[tokio::test]
async fn a_stale_outcome_beside_the_fresh_one_of_the_same_delivery_changes_nothing() {
    let (app, _receiver, _) = due(1).await;
    let stale = claim_all(&app, Duration::from_millis(1)).await.remove(0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The lease ran out: a claim takes the delivery over with a new attempt.
    let fresh = claim_all(&app, Duration::from_secs(60)).await.remove(0);
    assert_eq!(fresh.delivery.id, stale.delivery.id);
    assert_ne!(fresh.attempt_id, stale.attempt_id);
    // Both outcomes reach one commit, the stale failure last.
    let recorded = record(&app, &[answered(&fresh, 200), answered(&stale, 500)]).await;
    assert_eq!(recorded, [Recorded::Recorded, Recorded::Late]);
    let (status, failures): (String, i32) = sqlx::query_as(
        "SELECT d.status, r.consecutive_failures FROM deliveries d
         JOIN destination_runtime r ON r.id = d.destination_id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), failures), ("succeeded", 0));
    let attempts: Vec<String> = sqlx::query_scalar("SELECT status FROM attempts ORDER BY number")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(attempts, ["lost", "succeeded"]);
}
