//! A destination that keeps failing looks like it: deliveries say "retrying" (how many
//! attempts failed, when the next goes, the last error), the destination says
//! "failing", the overview counts them, and a person can send a retry now, cancel it,
//! or tick rows of the log to cancel or replay them together.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use switchyard_tests::{Receiver, Reply, TestApp, Visitor};

const SECRET: &str = "gh-secret";

async fn post(app: &TestApp, source: &Value, guid: &str) {
    let (status, answer) = app
        .send_github(source, SECRET, "issues", guid, br#"{"action":"opened"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// The delivery of the event `guid`, how many attempts of its series were made, and
/// when the next is due while it waits for one (pending).
async fn delivery_of(app: &TestApp, guid: &str) -> (String, i32, Option<DateTime<Utc>>) {
    sqlx::query_as(
        "SELECT d.id, d.series_attempts,
                CASE WHEN d.status = 'pending' THEN d.next_attempt_at END
         FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.dedup_key = $1",
    )
    .bind(guid)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Waits until the delivery of `guid` has `failed` failed attempts and waits for the
/// next.
async fn until_failed(app: &TestApp, guid: &str, failed: i32) -> (String, DateTime<Utc>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (id, series, next) = delivery_of(app, guid).await;
        if series == failed
            && let Some(next) = next
        {
            return (id, next);
        }
        assert!(tokio::time::Instant::now() < deadline, "{series} attempts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failing_destination_looks_failed_and_its_retries_can_be_hurried_or_cancelled() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(500)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    post(&app, &source, "guid-1").await;
    let (delivery, _) = until_failed(&app, "guid-1", 1).await;

    let list = v.get(&format!("{team}/deliveries")).await;
    list.assert_contains(">retrying</span>");
    list.assert_contains("1 of 10 attempts failed");
    list.assert_contains("<code>issues.opened</code>");
    list.assert_contains("<td class=\"num\">500</td>");
    let only = v.get(&format!("{team}/deliveries?status=retrying")).await;
    only.assert_contains(&delivery);
    let overview = v.get(&team).await;
    overview.assert_contains("Retrying</span><span class=\"stat\">1</span>");
    let (dst,): (String,) = sqlx::query_as("SELECT id FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let page = v.get(&format!("{team}/destinations/{dst}")).await;
    page.assert_contains(">failing</span>");
    page.assert_contains("Recent deliveries");
    page.assert_contains(&format!("/deliveries/{delivery}\""));
    v.get(&format!("{team}/destinations"))
        .await
        .assert_contains(">failing</span>");

    // The second failure waits about 30 s; "Retry now" sends it at once.
    let (_, next) = until_failed(&app, "guid-1", 2).await;
    let page = v.get(&format!("{team}/deliveries/{delivery}")).await;
    page.assert_contains("Retry now");
    page.assert_contains("2 of 10 attempts failed");
    let page = v
        .post(&format!("{team}/deliveries/{delivery}/retry"), &[])
        .await;
    page.assert_redirect(&format!("{team}/deliveries/{delivery}"));
    receiver.wait_for(3, Duration::from_secs(10)).await;
    let third: DateTime<Utc> =
        sqlx::query_scalar("SELECT started_at FROM attempts WHERE delivery_id = $1 AND number = 3")
            .bind(&delivery)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        third < next - chrono::Duration::seconds(10),
        "{third} vs {next}"
    );

    // Cancelled, it is sent no more; cancelling again says why not.
    until_failed(&app, "guid-1", 3).await;
    let page = v
        .post(&format!("{team}/deliveries/{delivery}/cancel"), &[])
        .await;
    page.assert_redirect(&format!("{team}/deliveries/{delivery}"));
    let page = v.get(&format!("{team}/deliveries/{delivery}")).await;
    page.assert_contains(">cancelled</span>");
    page.assert_contains(">Replay</button>");
    let page = v
        .post(&format!("{team}/deliveries/{delivery}/cancel"), &[])
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    page.assert_contains("only a pending, held or throttled delivery can be cancelled");
    let page = v
        .post(&format!("{team}/deliveries/{delivery}/retry"), &[])
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    let audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action IN ('delivery.retry_now', 'delivery.cancel')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audit, 2);

    // Another team's delivery, a malformed id, a missing token and a stranger are refused.
    let theirs = app.create_source("github", Some(SECRET)).await;
    let dst = app.create_destination(&receiver.url("/theirs")).await;
    app.create_route(&theirs, &dst, &["*"]).await;
    post(&app, &theirs, "guid-theirs").await;
    let (their_delivery, _, _) = delivery_of(&app, "guid-theirs").await;
    for action in ["retry", "cancel"] {
        let page = v
            .post(&format!("{team}/deliveries/{their_delivery}/{action}"), &[])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{action}");
        let page = v
            .post(&format!("{team}/deliveries/dlv_nonsense/{action}"), &[])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{action}");
        let page = v
            .post_raw(&format!("{team}/deliveries/{delivery}/{action}"), &[])
            .await;
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "{action} without a token"
        );
        let mut stranger = Visitor::new(&app);
        let page = stranger
            .post_raw(&format!("{team}/deliveries/{delivery}/{action}"), &[])
            .await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "{action}: {}",
            page.body
        );
        assert!(
            page.location
                .as_deref()
                .is_some_and(|l| l.starts_with("/login")),
            "{action}: {:?}",
            page.location
        );
    }
    let their_status: String = sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1")
        .bind(&their_delivery)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_ne!(their_status, "cancelled");
}

#[tokio::test]
async fn ticked_deliveries_are_cancelled_or_replayed_together() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(500)]).await;
    let (mut v, team, source) = Visitor::wired(&app, SECRET, &receiver.url("/in")).await;
    for guid in ["guid-a", "guid-b", "guid-c"] {
        post(&app, &source, guid).await;
    }
    let mut ids = Vec::new();
    for guid in ["guid-a", "guid-b", "guid-c"] {
        ids.push(until_failed(&app, guid, 1).await.0);
    }

    let list = v.get(&format!("{team}/deliveries?status=retrying")).await;
    list.assert_contains("form=\"selection\"");
    let back = "status=retrying";
    let page = v
        .submit(
            &format!("{team}/deliveries/selected"),
            &[
                ("action", "cancel"),
                ("id", &ids[0]),
                ("id", &ids[1]),
                ("back", back),
            ],
        )
        .await;
    page.assert_contains("Cancelled 2 deliveries.");
    page.assert_contains(&ids[2]);
    assert!(
        !page.body.contains(&ids[0]),
        "the list shows retrying ones only"
    );

    // A replay of what is not settled passes it over and says so.
    let page = v
        .submit(
            &format!("{team}/deliveries/selected"),
            &[
                ("action", "replay"),
                ("id", &ids[0]),
                ("id", &ids[1]),
                ("id", &ids[2]),
                ("back", ""),
            ],
        )
        .await;
    page.assert_contains("Replayed 2 deliveries; 1 delivery left as they were (not settled yet).");
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM deliveries WHERE id = ANY($1) ORDER BY id")
            .bind(&ids)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(statuses.iter().all(|s| s != "cancelled"), "{statuses:?}");

    // Nothing ticked, a made-up action, a foreign id.
    let page = v
        .submit(
            &format!("{team}/deliveries/selected"),
            &[("action", "cancel"), ("back", "")],
        )
        .await;
    page.assert_contains("Select at least one delivery.");
    let page = v
        .post(
            &format!("{team}/deliveries/selected"),
            &[("action", "explode"), ("id", &ids[0])],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let page = v
        .post(
            &format!("{team}/deliveries/selected"),
            &[("action", "cancel"), ("id", "not-an-id")],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}
