//! Refusals as people and clients read them: text PostgreSQL cannot store is refused by
//! name before it reaches a query, and messages say what to do in plain words.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_tests::TestApp;

#[tokio::test]
async fn text_holding_a_nul_character_is_refused_naming_its_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let source = app.create_source("none", None).await;
    let destination = app.create_destination("http://127.0.0.1:9/hook").await;
    let route = app.create_route(&source, &destination, &["*"]).await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let (source, destination, route) = (id(&source), id(&destination), id(&route));
    let nul = "a\u{0}b";
    let cases = [
        (
            Method::POST,
            "/api/v1/routes".to_owned(),
            json!({"name": "r", "source_id": source, "destination_id": destination, "template": nul}),
            "template",
        ),
        (
            Method::PATCH,
            format!("/api/v1/routes/{route}"),
            json!({"filter": nul}),
            "filter",
        ),
        (
            Method::PATCH,
            format!("/api/v1/routes/{route}"),
            json!({"subject": nul}),
            "subject",
        ),
        (
            Method::PATCH,
            format!("/api/v1/routes/{route}"),
            json!({"event_types": ["x", nul]}),
            "event_types[1]",
        ),
        (
            Method::POST,
            "/api/v1/sources".to_owned(),
            json!({"name": "s", "provider": "none", "dedup_pointer": nul}),
            "dedup_pointer",
        ),
        (
            Method::PATCH,
            format!("/api/v1/sources/{source}"),
            json!({"name": nul}),
            "name",
        ),
        (
            Method::PATCH,
            format!("/api/v1/destinations/{destination}"),
            json!({"headers": {"x-key": nul}}),
            "headers.x-key",
        ),
        (
            Method::POST,
            "/api/v1/deliveries/replay".to_owned(),
            json!({"filter": {"event_type": nul}}),
            "filter.event_type",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, problem) = app.call(method.clone(), &path, Some(body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{method} {path}");
    }
    let (_, shown) = app.get(&format!("/api/v1/routes/{route}")).await;
    assert!(
        shown["filter"].is_null() && shown["subject"].is_null(),
        "{shown}"
    );
    // A query string is text too.
    for path in [
        "/api/v1/events?event_type=a%00b",
        "/api/v1/deliveries?status=a%00b",
    ] {
        let (status, problem) = app.get(path).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {problem}"
        );
    }
}

#[tokio::test]
async fn refusals_are_worded_for_people() {
    let app = TestApp::spawn().await;
    let message = |problem: &Value| problem["errors"][0]["message"].as_str().unwrap().to_owned();
    let (status, problem) = app
        .post(
            "/api/v1/destinations",
            json!({"name": "d", "kind": "http", "url": "example.com/hook"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        message(&problem),
        "enter the whole URL, starting with https://"
    );
    // This server allows plain http (tests do): it says so.
    let (_, problem) = app
        .post(
            "/api/v1/destinations",
            json!({"name": "d", "kind": "http", "url": "ftp://example.com/hook"}),
        )
        .await;
    assert_eq!(
        message(&problem),
        "url is not allowed: the URL must start with http:// or https://"
    );
    let (_, problem) = app
        .post(
            "/api/v1/routes",
            json!({"name": "r", "source_id": "nope", "destination_id": "dst_x"}),
        )
        .await;
    assert_eq!(
        message(&problem),
        "this is not the id of a source (those look like src_01…)"
    );
}
