//! The team's Anthropic connection: its API keys stored sealed, shown by their last four
//! characters, per workspace when asked, and never another team's.

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchyard_tests::TestApp;

const KEY: &str = "sk-ant-api03-teamkey0123456789abcdefWXYZ";
const WORKSPACE_KEY: &str = "sk-ant-api03-workspace0123456789abcdQRST";

#[tokio::test]
async fn keys_are_stored_sealed_shown_by_their_last_four_and_kept_per_team() {
    let app = TestApp::spawn().await;
    let path = "/api/v1/integrations/anthropic";
    let (status, shown) = app.get(path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["configured"], false);

    let (status, shown) = app
        .call(Method::PUT, path, Some(json!({"api_key": KEY})))
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["configured"], true);
    assert_eq!(shown["key_last4"], "WXYZ");
    assert!(!shown.to_string().contains(KEY), "{shown}");
    let (status, shown) = app
        .call(
            Method::PUT,
            path,
            Some(json!({"api_key": WORKSPACE_KEY, "workspace_id": "wrkspc_01TEST"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["workspaces"][0]["workspace_id"], "wrkspc_01TEST");
    assert_eq!(shown["workspaces"][0]["key_last4"], "QRST");

    // Sealed at rest, and never in the audit log.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT sealed_key FROM anthropic_keys")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for sealed in &stored {
        let text = String::from_utf8_lossy(sealed);
        assert!(!text.contains("sk-ant-api"), "stored in the clear");
    }
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT action || ' ' || target FROM audit_log ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(
        audit.contains(&"integration.anthropic.put team".to_owned()),
        "{audit:?}"
    );
    assert!(
        audit.iter().all(|line| !line.contains("sk-ant")),
        "{audit:?}"
    );

    // Refusals name their field; nothing changes.
    for (body, field) in [
        (json!({"api_key": "sk-live-nope"}), "api_key"),
        (
            json!({"api_key": "sk-ant-api03 with spaces in it"}),
            "api_key",
        ),
        (
            json!({"api_key": KEY, "workspace_id": "ws-1"}),
            "workspace_id",
        ),
        (json!({}), "api_key"),
    ] {
        let (status, problem) = app.call(Method::PUT, path, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (_, shown) = app.get(path).await;
    assert_eq!(shown["key_last4"], "WXYZ");

    // Another team sees none of it and can remove none of it.
    let other = app.other_team_key("rival").await;
    let theirs = app
        .client
        .get(app.url(path))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    let (status, theirs) = app.checked(&Method::GET, path, theirs).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs["configured"], false);
    assert_eq!(theirs["workspaces"], json!([]));
    let res = app
        .client
        .delete(app.url(path))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    let (status, _) = app.checked(&Method::DELETE, path, res).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Removing: a workspace's key, then the team's; twice is a 404.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{path}?workspace_id=wrkspc_01TEST"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::DELETE, path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, problem) = app.call(Method::DELETE, path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let (_, shown) = app.get(path).await;
    assert_eq!(shown["configured"], false);
}
