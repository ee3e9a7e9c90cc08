//! Every named move of a delivery, made through the real store on a real database: the
//! claim, the outcomes, the breaker, a person's pause, resume, replay, retry now and
//! cancel. Each step checks that the delivery left a state the move leaves and entered
//! the one it enters, and the walk ends only when every move in `Transition::ALL` was
//! made.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_domain::delivery::breaker::BreakerPolicy;
use switchyard_domain::delivery::{Decision, DeliveryStatus, Transition};
use switchyard_domain::ids::DestinationId;
use switchyard_domain::store::attempts::{AttemptRecord, Claimed, DestinationEffect};
use switchyard_domain::store::claim::{self, ClaimRequest};
use switchyard_domain::store::outcomes::{self, Finished, Report};
use switchyard_tests::TestApp;
use switchyard_tests::app::Options;

const SECRET: &str = "walk-secret";
const TOKEN: &str = "sk-ant-oat01-walk-token-0123456789";

struct Walk {
    app: TestApp,
    destinations: Vec<DestinationId>,
    made: BTreeSet<String>,
}

impl Walk {
    /// A GitHub source routed to a new destination described by `destination`; the
    /// source.
    async fn wire(&mut self, name: &str, destination: Value) -> (Value, DestinationId) {
        let source = self
            .app
            .created(
                "/api/v1/sources",
                json!({"name": name, "provider": "github", "secret": SECRET}),
            )
            .await;
        let mut body = destination;
        body["name"] = json!(name);
        let destination = self.app.created("/api/v1/destinations", body).await;
        self.app.create_route(&source, &destination, &["*"]).await;
        let id: DestinationId = destination["id"].as_str().unwrap().parse().unwrap();
        self.destinations.push(id.clone());
        (source, id)
    }

    async fn send(&self, source: &Value, key: &str) -> String {
        self.app.send_issue(source, SECRET, key, b"{}").await
    }

    async fn status(&self, delivery: &str) -> DeliveryStatus {
        let status: String = sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1")
            .bind(delivery)
            .fetch_one(&self.app.pool)
            .await
            .unwrap();
        status.parse().unwrap()
    }

    /// Checks that `delivery`, which was `before`, has made `move_`.
    async fn made(&mut self, move_: Transition, delivery: &str, before: DeliveryStatus) {
        let after = self.status(delivery).await;
        assert!(move_.leaves(before), "{move_:?} does not leave {before}");
        assert_eq!(after, move_.to(), "{move_:?} from {before}");
        assert!(before.can_become(after), "{before} -> {after}");
        self.made.insert(format!("{move_:?}"));
    }

    /// Claims what is due at `destination` alone (the others are made to look full).
    async fn claim(&self, destination: &DestinationId, lease: Duration) -> Vec<Claimed> {
        let busy: HashMap<DestinationId, usize> = self
            .destinations
            .iter()
            .filter(|d| *d != destination)
            .map(|d| (d.clone(), 16))
            .collect();
        let request = ClaimRequest {
            limit: 16,
            per_destination: 16,
            busy: &busy,
            lease,
        };
        let mut conn = self.app.pool.acquire().await.unwrap();
        claim::claim(&mut conn, &request, Utc::now())
            .await
            .unwrap()
            .claimed
    }

    /// Claims `destination`'s one due delivery and starts it.
    async fn start(&mut self, destination: &DestinationId, delivery: &str) -> Claimed {
        let before = self.status(delivery).await;
        let mut claimed = self.claim(destination, Duration::from_secs(60)).await;
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        self.made(Transition::Start, delivery, before).await;
        claimed.remove(0)
    }

    async fn record(&self, claimed: &Claimed, report: Report, breaker: BreakerPolicy) {
        let finished = Finished {
            claimed: claimed.clone(),
            report,
        };
        let mut tx = self.app.pool.begin().await.unwrap();
        outcomes::record(&mut tx, &[finished], &breaker, Utc::now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    async fn answer(&self, claimed: &Claimed, decision: Decision, effect: DestinationEffect) {
        let record = AttemptRecord {
            response_status: Some(if decision == Decision::Succeeded {
                200
            } else {
                500
            }),
            destination: effect,
            ..AttemptRecord::default()
        };
        let report = Report::Sent { record, decision };
        self.record(claimed, report, BreakerPolicy::default()).await;
    }

    async fn replay(&mut self, delivery: &str) {
        let before = self.status(delivery).await;
        let (status, body) = self
            .app
            .post(&format!("/api/v1/deliveries/{delivery}/replay"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        self.made(Transition::Replay, delivery, before).await;
    }

    /// A person's move through the API: `POST /api/v1/deliveries/{delivery}/{action}`.
    async fn act(&mut self, delivery: &str, action: &str, move_: Transition) {
        let before = self.status(delivery).await;
        let (status, body) = self
            .app
            .post(
                &format!("/api/v1/deliveries/{delivery}/{action}"),
                json!({}),
            )
            .await;
        assert!(status.is_success(), "{action}: {status} {body}");
        self.made(move_, delivery, before).await;
    }

    async fn set_destination(&self, id: &DestinationId, change: Value) {
        let (status, body) = self
            .app
            .call(
                reqwest::Method::PATCH,
                &format!("/api/v1/destinations/{id}"),
                Some(change),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

fn failed() -> Decision {
    Decision::Failed {
        reason: "HTTP 400".to_owned(),
    }
}

#[tokio::test]
async fn every_move_is_made_through_the_store_from_a_state_it_leaves_to_the_one_it_enters() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let mut walk = Walk {
        app,
        destinations: Vec::new(),
        made: BTreeSet::new(),
    };
    let http = |path: &str| json!({"kind": "http", "url": format!("http://127.0.0.1:9/{path}")});
    let none = DestinationEffect::None;

    // Answers: each settles or re-queues the delivery it answers.
    let (source, app_dest) = walk.wire("answers", http("answers")).await;
    let d1 = walk.send(&source, "d1").await;
    let c = walk.start(&app_dest, &d1).await;
    walk.answer(&c, Decision::Succeeded, none.clone()).await;
    walk.made(Transition::Succeed, &d1, DeliveryStatus::InFlight)
        .await;
    walk.replay(&d1).await;
    let c = walk.start(&app_dest, &d1).await;
    walk.answer(&c, Decision::RetryAt(Utc::now()), none.clone())
        .await;
    walk.made(Transition::Retry, &d1, DeliveryStatus::InFlight)
        .await;
    let c = walk.start(&app_dest, &d1).await;
    let not_sent = Report::NotSent {
        reason: "the lease would not cover the send".to_owned(),
    };
    walk.record(&c, not_sent, BreakerPolicy::default()).await;
    walk.made(Transition::GiveBack, &d1, DeliveryStatus::InFlight)
        .await;
    let c = walk.start(&app_dest, &d1).await;
    walk.answer(&c, failed(), none.clone()).await;
    walk.made(Transition::Fail, &d1, DeliveryStatus::InFlight)
        .await;
    walk.replay(&d1).await;
    let c = walk.start(&app_dest, &d1).await;
    let unknown = Decision::UnknownOutcome {
        reason: "the connection closed".to_owned(),
    };
    walk.answer(&c, unknown, none.clone()).await;
    walk.made(Transition::Doubt, &d1, DeliveryStatus::InFlight)
        .await;

    // The receiver says it is gone for good: the delivery is parked and the breaker
    // opens, making the oldest waiting delivery its probe; the next one is held; a
    // person's resume releases the held ones.
    walk.replay(&d1).await;
    let d2 = walk.send(&source, "d2").await;
    let started = walk.claim(&app_dest, Duration::from_secs(60)).await;
    assert_eq!(started.len(), 2);
    walk.made(Transition::Start, &d1, DeliveryStatus::Pending)
        .await;
    walk.made(Transition::Start, &d2, DeliveryStatus::Pending)
        .await;
    let (c1, c2) = if started[0].delivery.id.as_str() == d1 {
        (&started[0], &started[1])
    } else {
        (&started[1], &started[0])
    };
    walk.answer(c1, Decision::RetryAt(Utc::now()), none.clone())
        .await;
    walk.made(Transition::Retry, &d1, DeliveryStatus::InFlight)
        .await;
    let gone = DestinationEffect::Disable("no_service".to_owned());
    walk.answer(c2, Decision::RetryAt(Utc::now()), gone).await;
    walk.made(Transition::Park, &d2, DeliveryStatus::InFlight)
        .await;
    let probe: Option<String> =
        sqlx::query_scalar("SELECT probe_delivery_id FROM destination_runtime WHERE id = $1")
            .bind(&app_dest)
            .fetch_one(&walk.app.pool)
            .await
            .unwrap();
    assert_eq!(probe.as_deref(), Some(d1.as_str()));
    walk.made(Transition::Probe, &d1, DeliveryStatus::Pending)
        .await;
    let d3 = walk.send(&source, "d3").await;
    assert!(
        walk.claim(&app_dest, Duration::from_secs(60))
            .await
            .is_empty()
    );
    walk.made(Transition::Hold, &d3, DeliveryStatus::Pending)
        .await;
    walk.set_destination(&app_dest, json!({"state": "active"}))
        .await;
    walk.made(Transition::Release, &d2, DeliveryStatus::Held)
        .await;
    walk.made(Transition::Release, &d3, DeliveryStatus::Held)
        .await;

    // Under a rate limit, one starts and the others wait for their slots; a delivery
    // held while paused is released into the slot after theirs.
    walk.set_destination(&app_dest, json!({"rate_per_minute": 1}))
        .await;
    let waiting = [&d1, &d2, &d3];
    let started = walk.claim(&app_dest, Duration::from_secs(60)).await;
    assert_eq!(started.len(), 1);
    for delivery in waiting {
        if started[0].delivery.id.as_str() == delivery {
            walk.made(Transition::Start, delivery, DeliveryStatus::Pending)
                .await;
        } else {
            walk.made(Transition::Throttle, delivery, DeliveryStatus::Pending)
                .await;
        }
    }
    walk.answer(&started[0], Decision::Succeeded, none.clone())
        .await;
    walk.set_destination(&app_dest, json!({"state": "paused"}))
        .await;
    let d4 = walk.send(&source, "d4").await;
    assert!(
        walk.claim(&app_dest, Duration::from_secs(60))
            .await
            .is_empty()
    );
    walk.made(Transition::Hold, &d4, DeliveryStatus::Pending)
        .await;
    walk.set_destination(&app_dest, json!({"state": "active"}))
        .await;
    walk.made(Transition::ReleaseIntoSlots, &d4, DeliveryStatus::Held)
        .await;

    // A 429 with Retry-After: the destination backs off and the retry waits it out.
    let (source, backing) = walk.wire("backoff", http("backoff")).await;
    let e1 = walk.send(&source, "e1").await;
    let c = walk.start(&backing, &e1).await;
    let later = Utc::now() + chrono::Duration::hours(1);
    walk.answer(
        &c,
        Decision::RetryAt(Utc::now()),
        DestinationEffect::BackOffUntil(later),
    )
    .await;
    walk.made(Transition::Retry, &e1, DeliveryStatus::InFlight)
        .await;
    assert!(
        walk.claim(&backing, Duration::from_secs(60))
            .await
            .is_empty()
    );
    walk.made(Transition::Defer, &e1, DeliveryStatus::Pending)
        .await;

    // A person sends the waiting retry now, then cancels it; and cancels a delivery
    // waiting in its rate slot.
    walk.act(&e1, "retry", Transition::RetryNow).await;
    walk.act(&e1, "cancel", Transition::Cancel).await;
    assert_eq!(walk.status(&d4).await, DeliveryStatus::Throttled);
    walk.act(&d4, "cancel", Transition::Cancel).await;

    // A routine fire whose lease ran out may have started a session: a person decides.
    let routine = json!({"kind": "routine", "token": TOKEN,
        "fire_url": "http://127.0.0.1:9/v1/claude_code/routines/trig_01WALK/fire"});
    let (source, firing) = walk.wire("routine", routine).await;
    let g1 = walk.send(&source, "g1").await;
    let taken = walk.claim(&firing, Duration::from_millis(1)).await;
    assert_eq!(taken.len(), 1);
    walk.made(Transition::Start, &g1, DeliveryStatus::Pending)
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        walk.claim(&firing, Duration::from_secs(60))
            .await
            .is_empty()
    );
    walk.made(Transition::LoseFire, &g1, DeliveryStatus::InFlight)
        .await;

    let every: BTreeSet<String> = Transition::ALL.iter().map(|t| format!("{t:?}")).collect();
    assert_eq!(walk.made, every, "moves never made");
}
