//! One delivery attempt: claim (attempt row committed `in_flight` before anything is
//! sent), send, record the outcome and schedule what the policy decides.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use switchyard_domain::StoreError;
use switchyard_domain::delivery::decide;
use switchyard_domain::providers::{decode_secret, sign_standard_webhook};
use switchyard_domain::store::deliveries::{self, AttemptRecord, Claim, Claimed};
use switchyard_domain::store::queue::DeliveryTask;
use switchyard_domain::store::{destinations, events};

use crate::Deliverer;

pub async fn attempt(task: DeliveryTask, ctx: Data<Arc<Deliverer>>) -> Result<(), BoxDynError> {
    let claim = persist(|| async {
        let mut tx = ctx.pool.begin().await?;
        let claim = deliveries::claim(&mut tx, &task, Utc::now()).await?;
        tx.commit().await?;
        Ok(claim)
    })
    .await?;
    let claimed = match claim {
        Claim::Send(claimed) => claimed,
        Claim::Skip(why) => {
            tracing::debug!(delivery = %task.delivery_id, why, "nothing to send");
            return Ok(());
        }
    };

    let request = build_request(&ctx, &claimed).await;
    let sent = match request {
        Ok((headers, body)) => {
            ctx.outbound
                .post(&claimed.destination.url, headers, body)
                .await
        }
        Err(e) => {
            tracing::error!(delivery = %task.delivery_id, error = %e, "cannot build request");
            return Err(e.into());
        }
    };
    let now = Utc::now();
    let jitter = rand::random::<f64>() * 2.0 - 1.0;
    let decision = decide(
        claimed.destination.kind,
        claimed.series_attempt,
        &sent.outcome,
        now,
        jitter,
    );
    let record = AttemptRecord {
        duration_ms: i32::try_from(sent.duration.as_millis()).unwrap_or(i32::MAX),
        response_status: sent.status.map(i32::from),
        response_excerpt: sent.excerpt,
        error: sent.error,
    };
    metrics::counter!("switchyard_attempts_total", "result" => if record.error.is_none() && matches!(decision, switchyard_domain::delivery::Decision::Succeeded) { "succeeded" } else { "failed" }).increment(1);
    persist(|| async {
        let mut tx = ctx.pool.begin().await?;
        deliveries::record(&mut tx, &claimed, &record, &decision, now).await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(())
}

/// The signed request for an HTTP destination: the original body, verbatim, with
/// Standard Webhooks headers. `webhook-id` is the delivery id, stable across retries,
/// and `…_r{n}` for the n-th replay, so a receiver deduping on it drops retries but
/// takes a deliberate replay.
async fn build_request(
    ctx: &Deliverer,
    claimed: &Claimed,
) -> Result<(Vec<(String, String)>, Vec<u8>), StoreError> {
    let delivery = &claimed.delivery;
    let content = events::content(&ctx.pool, &delivery.team_id, &delivery.event_id).await?;
    let sealed =
        destinations::sealed_signing_secret(&ctx.pool, &delivery.team_id, &delivery.destination_id)
            .await?;
    let secret = String::from_utf8(ctx.key.open(&sealed)?).unwrap_or_default();
    let key = decode_secret(&secret).map_err(StoreError::Conflict)?;
    let msg_id = match delivery.replay_count {
        0 => delivery.id.to_string(),
        n => format!("{}_r{n}", delivery.id),
    };
    let timestamp = Utc::now().timestamp();
    let content_type = content
        .headers
        .get("content-type")
        .and_then(|v| v.as_str())
        .unwrap_or("application/json")
        .to_owned();
    let headers = vec![
        ("content-type".to_owned(), content_type),
        ("webhook-id".to_owned(), msg_id.clone()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        (
            "webhook-signature".to_owned(),
            sign_standard_webhook(&key, &msg_id, timestamp, &content.body),
        ),
        (
            "switchyard-event-id".to_owned(),
            delivery.event_id.to_string(),
        ),
        ("switchyard-delivery-id".to_owned(), delivery.id.to_string()),
    ];
    Ok((headers, content.body))
}

/// Runs a database step until it succeeds, waiting out an unreachable database (up to
/// about ten minutes) rather than dropping the attempt: the task is ours until we return,
/// and if this process dies instead, another worker takes the task over.
async fn persist<T, F, Fut>(step: F) -> Result<T, StoreError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut wait = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    loop {
        match step().await {
            Err(e) if e.is_unavailable() && waited < Duration::from_secs(600) => {
                tracing::warn!(error = %e, "database unavailable; retrying");
                tokio::time::sleep(wait).await;
                waited += wait;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}
