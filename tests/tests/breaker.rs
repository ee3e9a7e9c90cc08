//! The circuit breaker, end to end: ten failed attempts in a row open it, deliveries are
//! held, the admins get one email, a probe after the cool-down closes it again (or a
//! person does), and every held delivery is then delivered. Cool-downs are a setting,
//! one second here, so nothing sleeps through minutes.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_domain::store::teams;
use switchyard_tests::app::Options;
use switchyard_tests::{Receiver, Reply, SmtpServer, TestApp};

const SECRET: &str = "gh-secret";

struct Rig {
    app: TestApp,
    smtp: SmtpServer,
    receiver: Receiver,
    source: Value,
    destination: String,
}

async fn rig() -> Rig {
    let smtp = SmtpServer::start(vec![250]);
    let app = TestApp::spawn_with(Options::mail(&smtp)).await;
    let team: String = sqlx::query_scalar("SELECT id FROM teams WHERE slug = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    teams::add_member(
        &mut conn,
        &team.parse().unwrap(),
        "owner@acme.test",
        "owner",
    )
    .await
    .unwrap();
    let receiver = Receiver::start(vec![Reply::status(500)]).await;
    let source = app.create_source("github", Some(SECRET)).await;
    let destination = app.create_destination(&receiver.url("/hook")).await;
    app.create_route(&source, &destination, &["*"]).await;
    let destination = destination["id"].as_str().unwrap().to_owned();
    Rig {
        app,
        smtp,
        receiver,
        source,
        destination,
    }
}

impl Rig {
    async fn send(&self, guid: &str) -> String {
        let body = format!(r#"{{"action":"opened","guid":"{guid}"}}"#);
        self.app
            .send_issue(&self.source, SECRET, guid, body.as_bytes())
            .await
    }

    async fn destination(&self) -> Value {
        self.app
            .get(&format!("/api/v1/destinations/{}", self.destination))
            .await
            .1
    }

    async fn until_destination(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let d = self.destination().await;
            if done(&d) {
                return d;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: {d:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ten events whose first attempts all fail: the breaker opens.
    async fn open(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(self.send(&format!("g-{i}")).await);
        }
        let disabled = self
            .until_destination("the breaker opens", |d| d["state"] == "auto_disabled")
            .await;
        assert!(
            disabled["state_reason"]
                .as_str()
                .unwrap()
                .starts_with("10 consecutive failed attempts; the last: HTTP 500"),
            "{disabled:#}"
        );
        ids
    }

    /// A person resumes the destination through the API.
    async fn resume(&self) -> (StatusCode, Value) {
        self.app
            .call(
                Method::PATCH,
                &format!("/api/v1/destinations/{}", self.destination),
                Some(json!({"state": "active"})),
            )
            .await
    }

    async fn all_succeed(&self, ids: &[String]) {
        for id in ids {
            self.app
                .wait_delivery(id, Duration::from_secs(20), |d| d["status"] == "succeeded")
                .await;
        }
    }
}

#[tokio::test]
async fn ten_failures_open_the_breaker_and_a_probe_closes_it_with_nothing_lost() {
    let rig = rig().await;
    let mut ids = rig.open().await;

    // While open, a new event is held without a request.
    let seen = rig.receiver.received().len();
    let late = rig.send("late").await;
    rig.app
        .wait_delivery(&late, Duration::from_secs(10), |d| d["status"] == "held")
        .await;
    ids.push(late);

    // One email to the admins.
    let alert = rig
        .smtp
        .wait_for(1, Duration::from_secs(10))
        .await
        .remove(0);
    assert_eq!(alert.to, ["owner@acme.test"]);
    assert_eq!(
        alert.header("Subject").as_deref(),
        Some("[Switchyard] Destination \"app\" is disabled")
    );
    assert!(alert.part("text/plain").unwrap().contains("held, not lost"));

    // The first probe fails too: the cool-down doubles and nothing else is sent.
    let cooldown = rig
        .app
        .eventually(|| async {
            let cooldown: i32 = sqlx::query_scalar(
                "SELECT cooldown_seconds FROM destination_runtime WHERE id = $1",
            )
            .bind(&rig.destination)
            .fetch_one(&rig.app.pool)
            .await
            .unwrap();
            (cooldown > 1).then_some(cooldown)
        })
        .await;
    assert_eq!(cooldown, 2, "the first cool-down doubled");
    assert_eq!(
        rig.receiver.received().len(),
        seen + 1,
        "only the probe was sent"
    );

    // The receiver recovers; the next probe closes the breaker and everything goes.
    rig.receiver.script(vec![Reply::status(200)]);
    let active = rig
        .until_destination("a good probe closes the breaker", |d| {
            d["state"] == "active"
        })
        .await;
    assert_eq!(active["consecutive_failures"], 0);
    assert!(active["probe_at"].is_null());
    rig.all_succeed(&ids).await;
    let recovered = rig
        .smtp
        .wait_for(2, Duration::from_secs(10))
        .await
        .remove(1);
    assert_eq!(
        recovered.header("Subject").as_deref(),
        Some("[Switchyard] Destination \"app\" recovered")
    );
    assert_eq!(rig.smtp.accepted().len(), 2, "one email each way");
}

#[tokio::test]
async fn a_person_resumes_an_open_breaker_at_once() {
    let rig = rig().await;
    let ids = rig.open().await;
    // Before the resume, every delivery waits for the destination: held, but for the
    // oldest, the probe, which is due when the cool-down ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let statuses: Vec<String> = sqlx::query_scalar(
            "SELECT status FROM deliveries WHERE destination_id = $1 ORDER BY id",
        )
        .bind(&rig.destination)
        .fetch_all(&rig.app.pool)
        .await
        .unwrap();
        if statuses[0] == "pending" && statuses[1..].iter().all(|s| s == "held") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.receiver.script(vec![Reply::status(200)]);
    let (status, resumed) = rig.resume().await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["state"], "active");
    assert_eq!(resumed["consecutive_failures"], 0);
    rig.all_succeed(&ids).await;
}

#[tokio::test]
async fn after_a_person_resumes_the_next_disabling_is_emailed_like_the_first() {
    let rig = rig().await;
    rig.open().await;
    let first = rig
        .smtp
        .wait_for(1, Duration::from_secs(10))
        .await
        .remove(0);
    assert_eq!(
        first.header("Subject").as_deref(),
        Some("[Switchyard] Destination \"app\" is disabled")
    );
    // Resumed while the receiver still fails: the released deliveries open it again.
    let (status, resumed) = rig.resume().await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    rig.until_destination("the breaker opens again", |d| d["state"] == "auto_disabled")
        .await;
    let again = rig
        .smtp
        .wait_for(2, Duration::from_secs(10))
        .await
        .remove(1);
    assert_eq!(
        again.header("Subject").as_deref(),
        Some("[Switchyard] Destination \"app\" is disabled"),
        "the second outage is told like the first"
    );
    // Its recovery follows the outage people were told of.
    rig.receiver.script(vec![Reply::status(200)]);
    let recovered = rig
        .smtp
        .wait_for(3, Duration::from_secs(20))
        .await
        .remove(2);
    assert_eq!(
        recovered.header("Subject").as_deref(),
        Some("[Switchyard] Destination \"app\" recovered")
    );
}

#[tokio::test]
async fn cancelling_the_probe_makes_the_next_waiting_delivery_the_probe() {
    let rig = rig().await;
    let ids = rig.open().await;
    let probe = |app: &TestApp| {
        let destination = rig.destination.clone();
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT probe_delivery_id FROM destination_runtime WHERE id = $1",
            )
            .bind(&destination)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let first = rig.app.eventually(|| async { probe(&rig.app).await }).await;
    assert_eq!(first, ids[0], "the oldest waiting delivery is the probe");
    let (status, cancelled) = rig
        .app
        .post(&format!("/api/v1/deliveries/{first}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(probe(&rig.app).await.as_deref(), Some(ids[1].as_str()));
    let (status, _) = rig
        .app
        .post(&format!("/api/v1/deliveries/{first}/cancel"), json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a cancelled delivery stays cancelled"
    );

    // The new probe goes after the cool-down, closes the breaker, and the rest follow;
    // the cancelled one is never sent.
    rig.receiver.script(vec![Reply::status(200)]);
    rig.all_succeed(&ids[1..]).await;
    let (_, first) = rig.app.get(&format!("/api/v1/deliveries/{first}")).await;
    assert_eq!(first["status"], "cancelled");
}
