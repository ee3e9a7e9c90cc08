//! Structured logs: with `SWITCHYARD_LOG_FORMAT=json` every line is a JSON object, a
//! webhook's request line names its request id, source and event, the attempt that
//! delivers it names the delivery and the event, and no secret reaches the log.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use switchyard::config::LogFormat;
use switchyard_tests::{Receiver, Reply, TestApp, sign};

const SECRET: &str = "gh-log-secret-7f3a";

/// Every byte the process logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("utf-8 logs")
    }

    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

#[tokio::test]
async fn json_lines_carry_request_event_and_delivery_ids_and_no_secret() {
    let captured = Captured::default();
    let sink = captured.clone();
    switchyard::logs::init(LogFormat::Json, move || sink.clone());

    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/in")).await;
    app.create_route(&source, &destination, &["*"]).await;
    let ingest_url = source["ingest_url"].as_str().unwrap();
    let token = ingest_url.rsplit('/').next().unwrap().to_owned();

    let body = br#"{"action":"opened"}"#;
    let res = app
        .client
        .post(ingest_url)
        .header("x-request-id", "req-logs-1")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "logs-1")
        .header("x-hub-signature-256", sign::github(SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-request-id"], "req-logs-1", "echoed");
    let event_id = res.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.wait_for(1, Duration::from_secs(10)).await;

    // A request id that could forge a line is replaced by one of our own.
    let res = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "evil\"}, {\"admin\": true")
        .send()
        .await
        .unwrap();
    let issued = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!issued.contains('"') && !issued.is_empty(), "{issued}");

    // A request refused before its handler runs (no API key) is logged and answered with
    // its id like any other.
    let res = app
        .client
        .get(format!("{}/api/v1/sources", app.base))
        .header("x-request-id", "req-logs-401")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["x-request-id"], "req-logs-401");

    let attempt = app
        .eventually(|| async {
            captured
                .lines()
                .into_iter()
                .find(|l| l["message"] == "attempt")
        })
        .await;
    let delivery: String = sqlx::query_scalar("SELECT id FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(attempt["span"]["delivery"], delivery.as_str(), "{attempt}");
    assert_eq!(attempt["span"]["event_id"], event_id.as_str(), "{attempt}");
    assert_eq!(attempt["result"], "succeeded");
    assert_eq!(attempt["status"], 200);

    let lines = captured.lines();
    let request = lines
        .iter()
        .find(|l| l["message"] == "request" && l["span"]["request_id"] == "req-logs-1")
        .expect("the webhook's request line");
    assert_eq!(request["span"]["route"], "/hooks/{token}", "{request}");
    assert_eq!(request["span"]["source"], source["id"], "{request}");
    assert_eq!(request["span"]["event_id"], event_id.as_str(), "{request}");
    assert_eq!(request["status"], 200);
    assert!(request["ms"].is_number());
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == issued.as_str() && l["span"]["route"] == "/healthz"),
        "the forged id's request is logged under the issued one"
    );

    let refused = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "req-logs-401")
        .expect("the refused request's line");
    assert_eq!(refused["status"], 401, "{refused}");
    assert_eq!(refused["span"]["route"], "/api/v1/sources", "{refused}");

    let text = captured.text();
    for secret in [token.as_str(), SECRET, app.key.as_str()] {
        assert!(!text.contains(secret), "the log holds a secret: {secret}");
    }
}
