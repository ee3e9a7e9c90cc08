//! Secrets at rest survive a change of SWITCHYARD_SECRET_KEY: with the old key listed as
//! previous they still open, and `rekey` re-seals every one with the new key.

use serde_json::json;
use switchyard_domain::secrets::{DEV_KEY_HEX, SecretKey};
use switchyard_domain::store::secrets;
use switchyard_tests::TestApp;

#[tokio::test]
async fn rekey_reseals_every_stored_secret_with_the_new_key() {
    let app = TestApp::spawn().await;
    app.create_source("github", Some("gh-secret")).await;
    app.created(
        "/api/v1/destinations",
        json!({"name": "r", "kind": "routine", "token": "sk-ant-oat01-rekey-token-000000",
               "fire_url": "http://127.0.0.1:9/v1/claude_code/routines/trig_01REKEY/fire"}),
    )
    .await;
    let http = app.create_destination("http://127.0.0.1:9/hook").await;
    app.post(
        &format!(
            "/api/v1/destinations/{}/rotate-signing-secret",
            http["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await;

    let new_hex = "44".repeat(32);
    let new_only = SecretKey::from_hex(&new_hex).unwrap();
    let rotating = SecretKey::from_hex(&new_hex)
        .unwrap()
        .with_previous([DEV_KEY_HEX])
        .unwrap();
    // source secret, 2 signing secrets, 1 previous signing secret, 1 credentials
    assert_eq!(secrets::rekey(&app.pool, &rotating).await.unwrap(), 5);
    assert_eq!(
        secrets::rekey(&app.pool, &rotating).await.unwrap(),
        0,
        "idempotent"
    );

    let blobs: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT ciphertext FROM source_secrets
         UNION ALL SELECT signing_secret FROM destinations
         UNION ALL SELECT previous_signing_secret FROM destinations WHERE previous_signing_secret IS NOT NULL
         UNION ALL SELECT sealed_credentials FROM destinations WHERE sealed_credentials IS NOT NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(blobs.len(), 5);
    for blob in blobs {
        assert!(new_only.open(&blob).is_ok(), "opens with the new key alone");
    }
    // Without the old key, nothing could have been re-sealed: it says so.
    let err = secrets::rekey(&app.pool, &SecretKey::from_hex(&"55".repeat(32)).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PREVIOUS_SECRET_KEYS"), "{err}");
}
