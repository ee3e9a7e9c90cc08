//! Webhooks as senders post them to an ingest URL, signed the way each provider signs.

use reqwest::StatusCode;
use serde_json::Value;

use crate::{TestApp, sign};

impl TestApp {
    /// Posts `body` to an ingest URL with the given headers; the answer's status and JSON.
    pub async fn hook(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.post(url).body(body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.expect("send webhook");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// An Anthropic webhook (Standard Webhooks signing, `webhook-id` the envelope's
    /// id) to an ingest URL; its status and JSON answer.
    pub async fn send_anthropic(
        &self,
        url: &str,
        secret: &str,
        envelope: &Value,
    ) -> (StatusCode, Value) {
        let id = envelope["id"].as_str().expect("an envelope id");
        let body = envelope.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign::standard_webhooks(secret, id, timestamp, body.as_bytes());
        let timestamp = timestamp.to_string();
        let headers = [
            ("content-type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        self.hook(url, &headers, body).await
    }

    pub async fn send_github(
        &self,
        source: &Value,
        secret: &str,
        event: &str,
        delivery: &str,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let url = source["ingest_url"].as_str().expect("ingest_url");
        self.send_github_to(url, secret, event, delivery, body)
            .await
    }

    /// A signed GitHub webhook to an ingest URL; its status and JSON answer.
    pub async fn send_github_to(
        &self,
        url: &str,
        secret: &str,
        event: &str,
        delivery: &str,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let res = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sign::github(secret, body))
            .body(body.to_vec())
            .send()
            .await
            .expect("send webhook");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}
