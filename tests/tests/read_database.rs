//! `SWITCHYARD_READ_DATABASE_URL`: the dashboard's lists and the API's GETs read a
//! replica, and a client never reads older data than it wrote. One test runs a real
//! streaming replica whose replay it pauses; one points the read URL at the same server.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use switchyard_domain::store::api_keys;
use switchyard_tests::app::Options;
use switchyard_tests::cluster::Cluster;
use switchyard_tests::{TestApp, Visitor, db};

async fn team_id(app: &TestApp) -> switchyard_domain::ids::TeamId {
    sqlx::query_scalar("SELECT id FROM teams WHERE slug = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The source ids `key` sees listed.
async fn listed(app: &TestApp, key: &str) -> Vec<String> {
    let answer: Value = app
        .client
        .get(app.url("/api/v1/sources"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lists_read_the_replica_and_a_client_reads_what_it_wrote() {
    let primary = Cluster::start();
    let standby = Cluster::standby_of(&primary);
    let database = db::create_on(&primary.admin_url()).await;
    let read_url = db::url_on(&standby.admin_url(), &database);
    // The database reaches the standby with the WAL that made it.
    let mut replica = loop {
        if let Ok(conn) = PgConnection::connect(&read_url).await {
            break conn;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let app = TestApp::spawn_with(Options {
        server: Some(primary.admin_url()),
        database: Some(database.clone()),
        read_database_url: Some(read_url.clone()),
        ..Options::default()
    })
    .await;
    let (_, reader) = api_keys::create(&app.pool, &team_id(&app).await, "reader")
        .await
        .unwrap();
    let mut admin = Visitor::member_of(&app, "ops@example.com", "acme", "admin").await;
    // Everything so far has reached the replica; from here it falls behind.
    app.eventually(|| async {
        let (_, sources) = app.get("/api/v1/sources").await;
        sources["data"].is_array().then_some(())
    })
    .await;
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut replica)
        .await
        .unwrap();

    // The key that writes reads its write back at once, listed and alone.
    let source = app.create_source("none", None).await;
    let id = source["id"].as_str().unwrap().to_owned();
    let (status, got) = app.get(&format!("/api/v1/sources/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert!(listed(&app, &app.key).await.contains(&id));
    // Another key of the team, which wrote nothing, reads the replica: not listed yet,
    // but asked for by id (as a destination handed its id would), it is found.
    assert!(!listed(&app, &reader).await.contains(&id));
    let by_id = app
        .client
        .get(app.url(&format!("/api/v1/sources/{id}")))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.status(), StatusCode::OK);

    // A browser that changes something lands on a page that shows it.
    admin.get("/t/acme/sources/new?provider=none").await;
    let page = admin
        .submit(
            "/t/acme/sources",
            &[("name", "fresh from the form"), ("provider", "none")],
        )
        .await;
    page.assert_contains("fresh from the form");
    admin
        .get("/t/acme/sources")
        .await
        .assert_contains("fresh from the form");
    // Its admin sees how far behind the replica is.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settings = admin.get("/t/acme/settings").await;
    settings.assert_contains("Lists, search and charts read a replica, ");
    assert!(
        !settings.body.contains("0.0 s behind"),
        "a paused replica is behind"
    );

    // Once the replica replays again, every reader sees it.
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut replica)
        .await
        .unwrap();
    let mut caught_up = false;
    for _ in 0..100 {
        if listed(&app, &reader).await.contains(&id) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught_up, "the replica never showed the new source");

    // A replica that goes away costs the readers at most a check's interval: then they
    // read the primary.
    standby.stop();
    let mut answered = false;
    for _ in 0..60 {
        let status = app
            .client
            .get(app.url("/api/v1/sources"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(answered, "reads did not fall back to the primary");
}

#[tokio::test]
async fn the_read_url_may_name_the_same_server() {
    let database = db::create_on(&db::admin_url()).await;
    let app = TestApp::spawn_with(Options {
        database: Some(database.clone()),
        read_database_url: Some(format!("{}?connect_timeout=5", db::url_for(&database))),
        ..Options::default()
    })
    .await;
    let source = app.create_source("none", None).await;
    let (status, _) = app
        .get(&format!(
            "/api/v1/sources/{}",
            source["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The read pool connected, under its own name, to serve that.
    let readers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = $1 AND application_name = 'switchyard-read'",
    )
    .bind(&database)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(readers >= 1, "no connection of the read pool");
    let mut admin = Visitor::member_of(&app, "ops@example.com", "acme", "admin").await;
    admin
        .get("/t/acme/settings")
        .await
        .assert_contains("0.0 s behind the primary");
    let metrics = app.metrics_at(&app.base).await;
    for gauge in [
        "switchyard_read_replica_lag_seconds",
        "switchyard_read_replica_up",
    ] {
        assert!(metrics.contains(gauge), "{gauge} missing: {metrics}");
    }
}
