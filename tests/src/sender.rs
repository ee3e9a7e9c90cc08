//! A webhook sender that behaves like GitHub's: it signs each event, and retries a
//! refusal (503 with Retry-After) or a broken connection until the event is acknowledged.

use std::time::Duration;

use reqwest::StatusCode;

use crate::sign;

/// Posts one signed GitHub `issues` event with delivery id `guid` until it is
/// acknowledged. Returns its event id and how many tries were refused or cut.
pub async fn acknowledged(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    guid: &str,
) -> (String, usize) {
    let body = format!(r#"{{"guid":"{guid}"}}"#);
    let mut refused = 0;
    loop {
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", guid)
            .header("x-hub-signature-256", sign::github(secret, body.as_bytes()))
            .body(body.clone())
            .send()
            .await;
        match res {
            Ok(r) if r.status() == StatusCode::OK => {
                let answer: serde_json::Value = r.json().await.unwrap_or_default();
                let id = answer["event_id"].as_str().unwrap_or_default().to_owned();
                return (id, refused);
            }
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert!(r.headers().contains_key("retry-after"));
            }
            Err(_) => {}
        }
        refused += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
