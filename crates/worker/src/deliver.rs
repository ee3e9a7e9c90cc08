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
use switchyard_domain::store::attempts::{self, AttemptRecord, Claim};
use switchyard_domain::store::queue::DeliveryTask;
use switchyard_domain::store::teams;
use tracing::field::Empty;

use crate::outbound::Sent;
use crate::request::Prepared;
use crate::{Deliverer, request};

#[tracing::instrument(
    name = "attempt",
    skip_all,
    fields(delivery = %task.delivery_id, team = %task.team_id, event_id = Empty)
)]
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

    tracing::Span::current().record(
        "event_id",
        tracing::field::display(&claimed.delivery.event_id),
    );
    metrics::histogram!("switchyard_attempt_claim_seconds").record(started.elapsed().as_secs_f64());
    let body = std::mem::take(&mut claimed.body);
    let (sent, request_headers) = match request::build(&ctx.key, &claimed, body, &ctx.public_base) {
        Ok(Prepared::Http(req)) => {
            let stored = req.stored_headers();
            (
                ctx.outbound
                    .send(req.method, &req.url, req.headers, req.body)
                    .await,
                Some(stored),
            )
        }
        Ok(Prepared::Email(mut email)) => {
            if email.to.is_empty() {
                email.to =
                    persist(|| teams::admin_emails(&ctx.pool, &claimed.delivery.team_id)).await?;
            }
            let sent = if email.to.is_empty() {
                Sent::refused(
                    "the destination names no recipients and the team has no admins".to_owned(),
                )
            } else {
                ctx.mailer.send(&email).await
            };
            // What an email attempt stores in place of request headers.
            let envelope =
                serde_json::json!({ "to": email.to.join(", "), "subject": email.subject });
            (sent, Some(envelope))
        }
        Err(e) => {
            // Not worth retrying: the destination cannot be sent to as configured.
            tracing::error!(delivery = %task.delivery_id, error = %e, "cannot build the request");
            (
                Sent::refused(format!("the request could not be built: {e}")),
                None,
            )
        }
    };
    metrics::histogram!("switchyard_attempt_send_seconds").record(sent.duration.as_secs_f64());
    let reading = request::read(claimed.kind, &sent);
    let now = Utc::now();
    let jitter = rand::random::<f64>() * 2.0 - 1.0;
    let decision = decide(
        claimed.kind,
        claimed.series_attempt,
        &sent.outcome,
        reading.error.as_deref(),
        now,
        jitter,
    );
    let result = if matches!(decision, Decision::Succeeded) {
        "succeeded"
    } else {
        "failed"
    };
    metrics::counter!("switchyard_attempts_total", "kind" => claimed.kind.as_str(), "result" => result)
        .increment(1);
    let record = AttemptRecord {
        duration_ms: i32::try_from(sent.duration.as_millis()).unwrap_or(i32::MAX),
        response_status: sent.status.map(i32::from),
        response_excerpt: sent.excerpt,
        error: reading.error.or(sent.error),
        request_headers,
        claude_code_session_id: reading.session_id,
        claude_code_session_url: reading.session_url,
        destination: reading.effect,
    };
    let recording = std::time::Instant::now();
    persist(|| async {
        let mut conn = ctx.pool.acquire().await?;
        attempts::record(&mut conn, &claimed, &record, &decision, &ctx.breaker, now).await
    })
    .await?;
    metrics::histogram!("switchyard_attempt_record_seconds")
        .record(recording.elapsed().as_secs_f64());
    tracing::info!(
        kind = claimed.kind.as_str(),
        number = claimed.delivery.attempt_count,
        status = record.response_status,
        ms = record.duration_ms,
        result,
        "attempt"
    );
    Ok(())
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
