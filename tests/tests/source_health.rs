//! Upstream health: a source watched with `quiet_after_minutes` that has received events
//! and then gets none for that long tells the team once, and once more when events flow
//! again. Silence is read from the events' own timestamps, which the test moves back in
//! time instead of waiting.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchyard_tests::app::Options;
use switchyard_tests::{SmtpServer, TestApp};

const SECRET: &str = "It's a Secret to Everybody";

#[tokio::test]
async fn a_quiet_source_alerts_once_and_again_when_events_flow() {
    let smtp = SmtpServer::start(vec![]);
    let app = TestApp::spawn_with(Options::mail(&smtp)).await;
    app.alert_to("ops@example.com").await;
    let source = app
        .created(
            "/api/v1/sources",
            json!({"name": "api", "provider": "github", "secret": SECRET,
                   "quiet_after_minutes": 30}),
        )
        .await;
    assert_eq!(source["quiet_after_minutes"], 30);
    let subjects = || {
        smtp.accepted()
            .iter()
            .filter_map(|m| m.header("subject"))
            .collect::<Vec<_>>()
    };

    // Never heard from: nothing to miss yet.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(subjects().is_empty(), "{:?}", subjects());

    let (status, _) = app
        .send_github(&source, SECRET, "ping", "d-1", br#"{"zen": "hi"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    sqlx::query("UPDATE events SET received_at = now() - interval '31 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    let quiet = smtp.mail_to(1, "ops@example.com").await;
    assert_eq!(
        quiet.header("subject").unwrap(),
        "[Switchyard] Source \"api\" has been quiet for 30 minutes"
    );
    let page = format!("/api/v1/sources/{}", source["id"].as_str().unwrap());
    let since: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT since FROM source_quiet")
            .fetch_optional(&app.pool)
            .await
            .unwrap();
    assert!(since.is_some());
    // Once: later checks find it already known.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(subjects().len(), 1, "{:?}", subjects());

    let (status, _) = app
        .send_github(&source, SECRET, "ping", "d-2", br#"{"zen": "back"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    smtp.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        subjects(),
        [
            "[Switchyard] Source \"api\" has been quiet for 30 minutes",
            "[Switchyard] Source \"api\" is receiving events again"
        ]
    );

    // Bad values are refused by name; 0 stops watching.
    for minutes in [-1, 10081] {
        let (status, problem) = app
            .call(
                Method::PATCH,
                &page,
                Some(json!({"quiet_after_minutes": minutes})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "quiet_after_minutes");
    }
    let (status, changed) = app
        .call(
            Method::PATCH,
            &page,
            Some(json!({"quiet_after_minutes": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["quiet_after_minutes"], serde_json::Value::Null);
}
