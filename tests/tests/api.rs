//! The control plane: every route authenticated, team-scoped and documented; bad input
//! answered with a problem document that says what is wrong.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_tests::TestApp;

/// Every route of the API, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/sources"),
    ("get", "/api/v1/sources"),
    ("get", "/api/v1/sources/{id}"),
    ("patch", "/api/v1/sources/{id}"),
    ("delete", "/api/v1/sources/{id}"),
    ("get", "/api/v1/sources/{id}/rejections"),
    ("get", "/api/v1/sources/{id}/secrets"),
    ("post", "/api/v1/sources/{id}/secrets"),
    ("delete", "/api/v1/sources/{id}/secrets/{secret_id}"),
    ("post", "/api/v1/destinations"),
    ("get", "/api/v1/destinations"),
    ("get", "/api/v1/destinations/{id}"),
    ("patch", "/api/v1/destinations/{id}"),
    ("delete", "/api/v1/destinations/{id}"),
    ("post", "/api/v1/destinations/{id}/rotate-signing-secret"),
    ("post", "/api/v1/routes"),
    ("get", "/api/v1/routes"),
    ("get", "/api/v1/routes/{id}"),
    ("patch", "/api/v1/routes/{id}"),
    ("delete", "/api/v1/routes/{id}"),
    ("post", "/api/v1/routes/{id}/preview"),
    ("post", "/api/v1/routes/preview"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/events/{id}"),
    ("post", "/api/v1/events/{id}/rerun"),
    ("get", "/api/v1/deliveries"),
    ("get", "/api/v1/deliveries/{id}"),
    ("post", "/api/v1/deliveries/{id}/replay"),
    ("post", "/api/v1/deliveries/{id}/retry"),
    ("post", "/api/v1/deliveries/{id}/cancel"),
    ("post", "/api/v1/deliveries/replay"),
    ("get", "/api/v1/replays/{id}"),
    ("post", "/api/v1/replays/{id}/cancel"),
    ("get", "/api/v1/recipes"),
    ("post", "/api/v1/recipes/{name}"),
    ("get", "/api/v1/integrations/anthropic"),
    ("put", "/api/v1/integrations/anthropic"),
    ("delete", "/api/v1/integrations/anthropic"),
    ("post", "/api/v1/integrations/anthropic/check"),
];

fn method(name: &str) -> Method {
    name.to_ascii_uppercase().parse().unwrap()
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_served() {
    let app = TestApp::spawn().await;
    let doc = app.openapi().await;
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn every_route_refuses_a_missing_or_wrong_key() {
    let app = TestApp::spawn().await;
    for (m, path) in ROUTES {
        let path = path.replace("{id}", "src_01jdq5x3v8k2m9n4p6r7s8t0ab");
        for key in [None, Some("sy_live_nope"), Some("garbage")] {
            let mut req = app
                .client
                .request(method(m), app.url(&path))
                .json(&json!({}));
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            let res = req.send().await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "{m} {path} with {key:?}"
            );
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            app.checked(&method(m), &path, res).await;
        }
    }
}

/// Creates one of everything and returns their ids by path segment.
async fn one_of_each(app: &TestApp) -> Vec<(&'static str, String)> {
    let source = app.create_source("none", None).await;
    let destination = app.create_destination("http://127.0.0.1:9/hook").await;
    let route = app.create_route(&source, &destination, &["*"]).await;
    let sent: Value = app
        .client
        .post(source["ingest_url"].as_str().unwrap())
        .body("x")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = sent["event_id"].as_str().unwrap().to_owned();
    let delivery = app.delivery_of(&event).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, started) = app
        .post("/api/v1/deliveries/replay", json!({"filter": {}}))
        .await;
    let replay = started["id"].as_str().unwrap().to_owned();
    vec![
        ("sources", source["id"].as_str().unwrap().to_owned()),
        (
            "destinations",
            destination["id"].as_str().unwrap().to_owned(),
        ),
        ("routes", route["id"].as_str().unwrap().to_owned()),
        ("events", event),
        ("deliveries", delivery),
        ("replays", replay),
    ]
}

#[tokio::test]
async fn another_team_sees_none_of_this_team_s_resources() {
    let app = TestApp::spawn().await;
    let ids = one_of_each(&app).await;
    let other = app.other_team_key("rival").await;
    for (m, template) in ROUTES.iter().filter(|(_, p)| p.contains("{id}")) {
        let kind = template.split('/').nth(3).unwrap();
        let id = &ids.iter().find(|(k, _)| *k == kind).unwrap().1;
        let path = template.replace("{id}", id);
        let res = app
            .client
            .request(method(m), app.url(&path))
            .bearer_auth(&other)
            // A body the route accepts, so only ownership can refuse it.
            .json(&if path.ends_with("/secrets") {
                json!({"secret": "s"})
            } else {
                json!({})
            })
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{m} {path}");
    }
    for list in [
        "/api/v1/sources",
        "/api/v1/destinations",
        "/api/v1/routes",
        "/api/v1/events",
        "/api/v1/deliveries",
    ] {
        let body: Value = app
            .client
            .get(app.url(list))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["data"], json!([]), "{list}");
    }
    // Nor can it route this team's source to its own destination.
    let source_id = &ids[0].1;
    let theirs: Value = app
        .client
        .post(app.url("/api/v1/destinations"))
        .bearer_auth(&other)
        .json(&json!({"name": "x", "kind": "http", "url": "http://127.0.0.1:9/"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/routes"))
        .bearer_auth(&other)
        .json(&json!({"name": "steal", "source_id": source_id, "destination_id": theirs["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Still owned by this team.
    for (kind, id) in &ids {
        let (status, _) = app.get(&format!("/api/v1/{kind}/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{kind}");
    }
}

#[tokio::test]
async fn bodies_that_are_malformed_oversized_mistyped_or_carry_unknown_fields_are_refused_clearly()
{
    let app = TestApp::spawn().await;
    let ids = one_of_each(&app).await;
    let writes: Vec<(Method, String)> = ROUTES
        .iter()
        // Replaying, retrying or cancelling one thing, or checking a key, takes no body.
        .filter(|(m, p)| {
            matches!(*m, "post" | "patch" | "put")
                && !p.ends_with("/check")
                && !(p.contains("{id}")
                    && ["/replay", "/retry", "/cancel", "/rerun"]
                        .iter()
                        .any(|action| p.ends_with(action)))
        })
        .map(|(m, p)| {
            let path = if p.contains("{id}") {
                let kind = p.split('/').nth(3).unwrap();
                let id = &ids.iter().find(|(k, _)| *k == kind).unwrap().1;
                p.replace("{id}", id)
            } else {
                p.replace("{name}", "github-issue-to-routine")
            };
            (method(m), path)
        })
        .collect();
    for (m, path) in &writes {
        let send = |body: Vec<u8>, content_type: &'static str| {
            app.api(m.clone(), path)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let res = send(b"{not json".to_vec(), "application/json")
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "{m} {path} malformed"
        );
        app.checked(m, path, res).await;
        let res = send(br#"{"surprise":1}"#.to_vec(), "application/json")
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{m} {path} unknown field"
        );
        let (_, problem) = app.checked(m, path, res).await;
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("surprise"),
            "{problem}"
        );
        let res = send(br#"{"name":42}"#.to_vec(), "application/json")
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{m} {path} wrong type"
        );
        app.checked(m, path, res).await;
        let res = send(vec![b' '; 300 * 1024], "application/json")
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{m} {path} oversized"
        );
        app.checked(m, path, res).await;
        let res = send(b"name=x".to_vec(), "application/x-www-form-urlencoded")
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{m} {path} form"
        );
        app.checked(m, path, res).await;
    }
}

#[tokio::test]
async fn invalid_fields_are_all_named_in_one_answer() {
    let app = TestApp::spawn().await;
    let (status, problem) = app
        .post(
            "/api/v1/sources",
            json!({"name": " ", "provider": "carrier-pigeon", "body_limit": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "provider", "body_limit"]);

    let (status, problem) = app
        .post(
            "/api/v1/sources",
            json!({"name": "gh", "provider": "github"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "secret");
    let (status, _) = app
        .post(
            "/api/v1/sources",
            json!({"name": "a", "provider": "anthropic", "secret": "not-whsec!"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, problem) = app
        .post(
            "/api/v1/destinations",
            json!({"name": "d", "kind": "http", "url": "ftp://example.com"}),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("url"))
    );

    let source = app.create_source("none", None).await;
    let destination = app.create_destination("https://example.com/hook").await;
    for event_types in [json!([]), json!(["!a.b"]), json!(["a b"])] {
        let (status, _) = app
            .post("/api/v1/routes", json!({"name": "r", "source_id": source["id"], "destination_id": destination["id"], "event_types": event_types}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{event_types}");
    }
    let (status, _) = app.get("/api/v1/deliveries?status=bogus").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.get("/api/v1/events?since=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.get("/api/v1/sources/not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An id of another kind is as unknown as a malformed one, before any query.
    let (status, problem) = app
        .get(&format!(
            "/api/v1/routes/{}",
            source["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(problem["status"], 404, "{problem}");
}

#[tokio::test]
async fn lists_page_newest_first_with_a_cursor() {
    let app = TestApp::spawn().await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(
            app.create_source("none", None).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    made.reverse();
    let (_, first) = app.get("/api/v1/sources?limit=2").await;
    let (_, second) = app
        .get(&format!(
            "/api/v1/sources?limit=2&cursor={}",
            first["next_cursor"].as_str().unwrap()
        ))
        .await;
    let (_, third) = app
        .get(&format!(
            "/api/v1/sources?limit=2&cursor={}",
            second["next_cursor"].as_str().unwrap()
        ))
        .await;
    let ids: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|page| {
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(ids, made);
    assert_eq!(third["next_cursor"], Value::Null);
}

#[tokio::test]
async fn sources_destinations_and_routes_can_be_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let source = app.create_source("github", Some("s3cret")).await;
    assert!(
        source.get("secret").is_none(),
        "secrets are never shown back"
    );
    let id = source["id"].as_str().unwrap();
    let (status, changed) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/sources/{id}"),
            Some(json!({"name": "renamed", "allow_sha1": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["name"], "renamed");
    assert_eq!(changed["settings"]["allow_sha1"], true);
    assert_eq!(changed["ingest_url"], source["ingest_url"]);

    let destination = app.create_destination("https://example.com/a").await;
    assert!(
        destination["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let did = destination["id"].as_str().unwrap();
    let (_, fetched) = app.get(&format!("/api/v1/destinations/{did}")).await;
    assert!(
        fetched.get("signing_secret").is_none(),
        "the signing secret is shown once"
    );
    let (status, moved) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/destinations/{did}"),
            Some(json!({"url": "https://example.com/b"})),
        )
        .await;
    assert_eq!(
        (status, moved["url"].as_str()),
        (StatusCode::OK, Some("https://example.com/b"))
    );

    let route = app
        .create_route(&source, &destination, &["issues.*", "!issues.deleted"])
        .await;
    let rid = route["id"].as_str().unwrap();
    let (status, paused) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/routes/{rid}"),
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(
        (status, paused["paused"].as_bool()),
        (StatusCode::OK, Some(true))
    );

    let (status, _) = app
        .call(Method::DELETE, &format!("/api/v1/sources/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/api/v1/routes/{rid}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a source's routes go with it"
    );
    let (status, _) = app
        .call(Method::DELETE, &format!("/api/v1/sources/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let app = TestApp::spawn().await;
    app.create_source("github", Some("plain-secret-value"))
        .await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT ciphertext FROM source_secrets")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        !stored
            .windows(b"plain-secret-value".len())
            .any(|w| w == b"plain-secret-value")
    );
    let destination = app.create_destination("https://example.com/x").await;
    let secret = destination["signing_secret"].as_str().unwrap();
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT signing_secret FROM destinations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    let source = app.create_source("none", None).await;
    app.client
        .post(source["ingest_url"].as_str().unwrap())
        .body("m")
        .send()
        .await
        .unwrap();
    let destination = app.create_destination("http://127.0.0.1:9/nowhere").await;
    let other = app.create_source("github", Some("s")).await;
    app.create_route(&other, &destination, &["*"]).await;
    app.send_github(&other, "s", "issues", "m-1", b"{}").await;
    // Gauges come from the workers' upkeep, once a second in tests.
    let metrics = app
        .eventually(|| async {
            let text = app.metrics_at(&app.base).await;
            (text.contains("switchyard_attempts_total")
                && text.contains("switchyard_queue_depth")
                && text.contains("switchyard_outcome_batch_size"))
            .then_some(text)
        })
        .await;
    for expected in [
        r#"switchyard_ingest_total{provider="none",result="accepted"}"#,
        r#"switchyard_ingest_total{provider="github",result="accepted"}"#,
        r#"switchyard_attempts_total{kind="http",result="failed"}"#,
        "switchyard_queue_oldest_pending_seconds{queue=",
        r#"switchyard_deliveries_unsettled{state="held"}"#,
        r#"switchyard_deliveries_unsettled{state="due"}"#,
        "switchyard_deliveries_oldest_due_seconds",
        r#"switchyard_claim_batch_size{quantile="0.5"}"#,
        r#"switchyard_outcome_batch_size{quantile="0.5"}"#,
        r#"switchyard_db_pool_connections{state="idle"}"#,
        r#"switchyard_http_request_seconds{route="/hooks/{token}",quantile="0.99"}"#,
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
}
