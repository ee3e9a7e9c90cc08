//! Upgrading a database whose destinations keep their kind's fields in `url` and
//! `settings`: each becomes a `config` of its kind, the secrets sealed the old way still
//! open, and for one release processes of either release may write a destination while
//! the other reads it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use switchyard_domain::ids::{DestinationId, TeamId};
use switchyard_domain::secrets::{DEV_KEY_HEX, SecretKey};
use switchyard_domain::store::api_keys;
use switchyard_tests::app::Options;
use switchyard_tests::{Receiver, Reply, TestApp, db};

/// The last migration before destinations had a `config`.
const PREVIOUS_RELEASE: i64 = 20261201000005;
const TOKEN: &str = "sk-ant-oat01-test-token-0123456789";
const SECRET: &str = "legacy-github-secret";

/// Inserts a destination as the previous release wrote one.
async fn legacy_destination(
    pool: &PgPool,
    team: &TeamId,
    kind: &str,
    url: Option<&str>,
    settings: Value,
    credentials: Option<Value>,
) -> DestinationId {
    let key = SecretKey::from_hex(DEV_KEY_HEX).unwrap();
    let id = DestinationId::generate();
    sqlx::query(
        "INSERT INTO destinations (id, team_id, name, kind, url, settings, signing_secret,
                                   sealed_credentials)
         VALUES ($1, $2, $3, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(team)
    .bind(kind)
    .bind(url)
    .bind(settings)
    .bind(key.seal(b"whsec_bGVnYWN5LXNpZ25pbmctc2VjcmV0LTAxMjM0NQ=="))
    .bind(credentials.map(|c| key.seal(&serde_json::to_vec(&c).unwrap())))
    .execute(pool)
    .await
    .unwrap();
    id
}

/// A client of the legacy team's API.
struct Legacy<'a> {
    app: &'a TestApp,
    key: String,
}

impl Legacy<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new()
            .request(method, self.app.url(path))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn destination(&self, id: &DestinationId) -> Value {
        let (status, body) = self
            .call(Method::GET, &format!("/api/v1/destinations/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

#[tokio::test]
async fn each_destination_becomes_a_config_of_its_kind_and_both_releases_can_write_it() {
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let database = db::create_empty().await;
    let pool = PgPool::connect(&db::url_for(&database)).await.unwrap();
    db::migrate_up_to(&pool, PREVIOUS_RELEASE).await;
    let team = TeamId::generate();
    sqlx::query("INSERT INTO teams (id, slug, name) VALUES ($1, 'legacy', 'Legacy')")
        .bind(&team)
        .execute(&pool)
        .await
        .unwrap();
    let fire_url = "https://api.anthropic.com/v1/claude_code/routines/trig_01ABCDEF/fire";
    let routine = legacy_destination(
        &pool,
        &team,
        "routine",
        Some(fire_url),
        json!({"credential_hint": "sk-ant-oat01-…6789"}),
        Some(json!({"token": TOKEN})),
    )
    .await;
    let slack = legacy_destination(
        &pool,
        &team,
        "slack",
        None,
        json!({"credential_hint": "https://hooks.slack.com/services…uvwx", "rate_per_minute": 60}),
        Some(json!({"url": "https://hooks.slack.com/services/T0/B0/uvwx"})),
    )
    .await;
    let email = legacy_destination(
        &pool,
        &team,
        "email",
        None,
        json!({"to": ["ops@example.com"]}),
        None,
    )
    .await;
    let http = legacy_destination(
        &pool,
        &team,
        "http",
        Some(&receiver.url("/in")),
        json!({"method": "PUT", "header_names": ["x-tenant"], "auth": "bearer",
               "max_in_flight": 4}),
        Some(json!({"headers": [["x-tenant", "acme"]], "authorization": "Bearer legacy"})),
    )
    .await;
    pool.close().await;

    let app = TestApp::spawn_with(Options {
        database: Some(database),
        ..Options::default()
    })
    .await;
    let (_, key) = api_keys::create(&app.pool, &team, "legacy").await.unwrap();
    let legacy = Legacy { app: &app, key };

    // Each kind reads as its own fields, limits apart.
    let shown = legacy.destination(&routine).await;
    assert_eq!(shown["kind"], "routine");
    assert_eq!(shown["fire_url"], fire_url);
    assert_eq!(shown["token_hint"], "sk-ant-oat01-…6789");
    assert!(
        shown.get("url").is_none() && shown.get("settings").is_none(),
        "{shown}"
    );
    let shown = legacy.destination(&slack).await;
    assert_eq!(shown["url_hint"], "https://hooks.slack.com/services…uvwx");
    assert_eq!(shown["limits"], json!({"rate_per_minute": 60}));
    let shown = legacy.destination(&email).await;
    assert_eq!(shown["to"], json!(["ops@example.com"]));
    let shown = legacy.destination(&http).await;
    assert_eq!(shown["url"], receiver.url("/in"));
    assert_eq!(shown["method"], "PUT");
    assert_eq!(shown["header_names"], json!(["x-tenant"]));
    assert_eq!(shown["auth"], "bearer");
    assert_eq!(shown["limits"], json!({"max_in_flight": 4}));

    // The http destination sends with the credentials the previous release sealed.
    let (status, source) = legacy
        .call(
            Method::POST,
            "/api/v1/sources",
            Some(json!({"name": "gh", "provider": "github", "secret": SECRET})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let (status, route) = legacy
        .call(
            Method::POST,
            "/api/v1/routes",
            Some(
                json!({"name": "r", "source_id": source["id"], "destination_id": http,
                        "event_types": ["*"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{route}");
    let ingest = source["ingest_url"].as_str().unwrap();
    let (status, _) = app
        .send_github_to(
            ingest,
            SECRET,
            "issues",
            "legacy-1",
            br#"{"action":"opened"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].method, "PUT");
    assert_eq!(got[0].headers["x-tenant"], "acme");
    assert_eq!(got[0].headers["authorization"], "Bearer legacy");

    // A process of the previous release changes a destination its way: the config
    // follows.
    sqlx::query(
        "UPDATE destinations SET url = $2, settings = settings || '{\"method\": \"PATCH\"}'
         WHERE id = $1",
    )
    .bind(&http)
    .bind(receiver.url("/moved"))
    .execute(&app.pool)
    .await
    .unwrap();
    let shown = legacy.destination(&http).await;
    assert_eq!(shown["url"], receiver.url("/moved"));
    assert_eq!(shown["method"], "PATCH");
    assert_eq!(shown["limits"], json!({"max_in_flight": 4}));

    // This release changes one: the columns the previous release reads follow.
    let moved = "https://api.anthropic.com/v1/claude_code/routines/trig_02GHIJKL/fire";
    let (status, changed) = legacy
        .call(
            Method::PATCH,
            &format!("/api/v1/destinations/{routine}"),
            Some(
                json!({"fire_url": moved, "token": "sk-ant-oat01-another-token-wxyz",
                        "budget_per_hour": 5}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let (url, settings): (Option<String>, Value) =
        sqlx::query_as("SELECT url, settings FROM destinations WHERE id = $1")
            .bind(&routine)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(url.as_deref(), Some(moved));
    assert_eq!(
        settings,
        json!({"credential_hint": "sk-ant-oat01-…wxyz", "budget_per_hour": 5})
    );

    // A destination the previous release creates after the upgrade has a config too.
    let late = {
        let pool = app.pool.clone();
        legacy_destination(&pool, &team, "email", None, json!({}), None).await
    };
    let shown = legacy.destination(&late).await;
    assert_eq!(shown["kind"], "email");
    assert_eq!(shown["to"], json!([]));
}
