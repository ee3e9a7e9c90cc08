//! The OpenAPI document as exact as the server: the problems every operation can answer,
//! path parameters with the ids' patterns, enums and bounds on what requests carry, and
//! the server refusing what the document says it refuses. (Every answer the black-box
//! tests get is also checked against the document, in `tests/src/contract.rs`.)

use reqwest::StatusCode;
use switchyard_tests::TestApp;

#[tokio::test]
async fn the_openapi_document_lists_problems_enums_and_bounds_and_the_server_keeps_them() {
    let app = TestApp::spawn().await;
    let doc = app.openapi().await;
    let list = &doc["paths"]["/api/v1/sources"]["get"];
    for status in ["401", "422", "503"] {
        assert_eq!(
            list["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{status}"
        );
    }
    let create = &doc["paths"]["/api/v1/sources"]["post"];
    for status in ["400", "401", "413", "415", "422", "503"] {
        assert!(
            create["responses"][status]["description"].is_string(),
            "{status}"
        );
    }
    let one = &doc["paths"]["/api/v1/sources/{id}"]["get"];
    assert!(one["responses"]["404"].is_object());
    assert_eq!(
        one["parameters"][0]["schema"]["pattern"],
        "^src_[0-9a-z]{26}$"
    );
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 250);
    let schemas = &doc["components"]["schemas"];
    let provider = &schemas["CreateSource"]["allOf"][1]["properties"]["provider"];
    assert!(provider.to_string().contains("ProviderKind"), "{provider}");
    assert!(schemas["ProviderKind"]["enum"].as_array().unwrap().len() > 10);
    assert_eq!(schemas["Source"]["properties"]["name"]["maxLength"], 100);

    // The server holds to the bounds it documents.
    for limit in ["0", "251", "2147483648", "-1", "many"] {
        let (status, problem) = app.get(&format!("/api/v1/sources?limit={limit}")).await;
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
            "limit={limit}: {status} {problem}"
        );
    }
    let (status, _) = app.get("/api/v1/events?limit=250").await;
    assert_eq!(status, StatusCode::OK);
    let (status, problem) = app.get("/api/v1/deliveries?limit=251").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "limit");
}
