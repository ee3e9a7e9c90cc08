//! One delivery attempt: claim (attempt row committed `in_flight` before anything is
//! sent), send, record the outcome and schedule what the policy decides.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use switchyard_domain::StoreError;
use switchyard_domain::delivery::{Decision, decide};
use switchyard_domain::ids::AttemptId;
use switchyard_domain::providers::{decode_secret, sign_standard_webhook};
use switchyard_domain::store::attempts::{self, AttemptRecord, Claim, Claimed};
use switchyard_domain::store::queue::DeliveryTask;

use crate::Deliverer;
use crate::outbound::Sent;

pub async fn attempt(task: DeliveryTask, ctx: Data<Arc<Deliverer>>) -> Result<(), BoxDynError> {
    let started = std::time::Instant::now();
    // One id for every try: a retried claim then recognises its own attempt.
    let attempt_id = AttemptId::generate();
    let claim = persist(|| async {
        let mut conn = ctx.pool.acquire().await?;
        attempts::claim(&mut conn, &task, &attempt_id, Utc::now()).await
    })
    .await?;
    let mut claimed = match claim {
        Claim::Send(claimed) => claimed,
        Claim::Skip(why) => {
            tracing::debug!(delivery = %task.delivery_id, why, "nothing to send");
            return Ok(());
        }
    };

    metrics::histogram!("switchyard_attempt_claim_seconds").record(started.elapsed().as_secs_f64());
    let body = std::mem::take(&mut claimed.body);
    let sent = match signed_request(&ctx, &claimed, &body) {
        Ok(headers) => ctx.outbound.post(&claimed.url, headers, body).await,
        Err(e) => {
            // Not worth retrying: the stored signing secret cannot be used.
            tracing::error!(delivery = %task.delivery_id, error = %e, "cannot sign the request");
            Sent::refused(format!("the request could not be signed: {e}"))
        }
    };
    metrics::histogram!("switchyard_attempt_send_seconds").record(sent.duration.as_secs_f64());
    let now = Utc::now();
    let jitter = rand::random::<f64>() * 2.0 - 1.0;
    let decision = decide(
        claimed.kind,
        claimed.series_attempt,
        &sent.outcome,
        now,
        jitter,
    );
    let result = if matches!(decision, Decision::Succeeded) {
        "succeeded"
    } else {
        "failed"
    };
    metrics::counter!("switchyard_attempts_total", "result" => result).increment(1);
    let record = AttemptRecord {
        duration_ms: i32::try_from(sent.duration.as_millis()).unwrap_or(i32::MAX),
        response_status: sent.status.map(i32::from),
        response_excerpt: sent.excerpt,
        error: sent.error,
    };
    let recording = std::time::Instant::now();
    persist(|| async {
        let mut conn = ctx.pool.acquire().await?;
        attempts::record(&mut conn, &claimed, &record, &decision, now).await
    })
    .await?;
    metrics::histogram!("switchyard_attempt_record_seconds")
        .record(recording.elapsed().as_secs_f64());
    Ok(())
}

/// The headers of an HTTP delivery: the original content type and Standard Webhooks
/// signing. `webhook-id` is the delivery id, stable across retries, and `…_r{n}` for the
/// n-th replay, so a receiver deduping on it drops retries but takes a deliberate replay.
fn signed_request(
    ctx: &Deliverer,
    claimed: &Claimed,
    body: &[u8],
) -> Result<Vec<(String, String)>, StoreError> {
    let delivery = &claimed.delivery;
    let secret =
        String::from_utf8(ctx.key.open(&claimed.sealed_signing_secret)?).unwrap_or_default();
    let key = decode_secret(&secret).map_err(StoreError::Internal)?;
    let msg_id = match delivery.replay_count {
        0 => delivery.id.to_string(),
        n => format!("{}_r{n}", delivery.id),
    };
    let timestamp = Utc::now().timestamp();
    let content_type = claimed
        .headers
        .get("content-type")
        .and_then(|v| v.as_str())
        .unwrap_or("application/json")
        .to_owned();
    Ok(vec![
        ("content-type".to_owned(), content_type),
        ("webhook-id".to_owned(), msg_id.clone()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        (
            "webhook-signature".to_owned(),
            sign_standard_webhook(&key, &msg_id, timestamp, body),
        ),
        (
            "switchyard-event-id".to_owned(),
            delivery.event_id.to_string(),
        ),
        ("switchyard-delivery-id".to_owned(), delivery.id.to_string()),
    ])
}

/// Runs a database step until it succeeds, waiting out an unreachable database for as
/// long as it takes rather than dropping the attempt: the task is ours until we return,
/// and if this process dies instead, another worker takes the task over. Other errors
/// are returned; the upkeep sweep picks up whatever they strand.
async fn persist<T, F, Fut>(step: F) -> Result<T, StoreError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut wait = Duration::from_millis(200);
    loop {
        match step().await {
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}
