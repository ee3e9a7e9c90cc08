//! One delivery attempt, as the apalis worker runs it: the claim already committed it
//! `in_flight` under a lease; check that the lease still covers a send, send, and hand
//! the outcome (and what the retry policy decides) to the committer. The send slot goes
//! back as soon as the answer is in: waiting for the outcome's commit is not a send.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use switchyard_domain::delivery::{Decision, decide, retry_later};
use switchyard_domain::store::attempts::{AttemptRecord, Claimed};
use switchyard_domain::store::outcomes::{Finished, Recorded, Report};
use switchyard_domain::store::teams;

use crate::engine::{Attempt, Engine, persist};
use crate::enrich::Unavailable;
use switchyard_send::Sent;
use switchyard_send::request::{self, Prepared};

#[tracing::instrument(
    name = "attempt",
    skip_all,
    fields(delivery = %attempt.claimed.delivery.id, team = %attempt.claimed.delivery.team_id,
           event_id = %attempt.claimed.delivery.event_id)
)]
pub async fn attempt(attempt: Attempt, engine: Data<Arc<Engine>>) -> Result<(), BoxDynError> {
    let Attempt {
        mut claimed,
        mut slot,
        lease_started,
    } = attempt;
    if !engine.lease_covers_a_send(lease_started) {
        slot.sent();
        give_back(&engine, *claimed).await;
        return Ok(());
    }
    let ctx = &engine.context;
    if claimed.enrich {
        match engine.enricher.enrichment(ctx, &claimed).await {
            Ok(found) => claimed.enrichment = Some(found),
            Err(unavailable) => {
                slot.sent();
                unsent(&engine, *claimed, unavailable).await;
                return Ok(());
            }
        }
        // The fetch took some of the lease.
        if !engine.lease_covers_a_send(lease_started) {
            slot.sent();
            give_back(&engine, *claimed).await;
            return Ok(());
        }
    }
    let note = claimed
        .enrichment
        .as_ref()
        .and_then(|e| e.note.as_ref())
        .map(|note| format!("enrichment: {note}; sent with \"object\": null"));
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
                // That may have waited out an unreachable database.
                if !engine.lease_covers_a_send(lease_started) {
                    slot.sent();
                    give_back(&engine, *claimed).await;
                    return Ok(());
                }
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
            tracing::error!(error = %e, "cannot build the request");
            (
                Sent::refused(format!("the request could not be built: {e}")),
                None,
            )
        }
    };
    slot.sent();
    metrics::histogram!("switchyard_attempt_send_seconds").record(sent.duration.as_secs_f64());
    let reading = request::read(claimed.kind(), &sent);
    let jitter = rand::random::<f64>() * 2.0 - 1.0;
    let decision = decide(
        claimed.kind(),
        claimed.series_attempt,
        &sent.outcome,
        reading.error.as_deref(),
        Utc::now(),
        jitter,
    );
    let result = if matches!(decision, Decision::Succeeded) {
        "succeeded"
    } else {
        "failed"
    };
    metrics::counter!("switchyard_attempts_total", "kind" => claimed.kind().as_str(), "result" => result)
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
        note,
    };
    tracing::info!(
        kind = claimed.kind().as_str(),
        number = claimed.delivery.attempt_count,
        status = record.response_status,
        ms = record.duration_ms,
        result,
        probe = claimed.is_probe,
        "attempt"
    );
    submit(
        &engine,
        Finished {
            claimed: *claimed,
            report: Report::Sent { record, decision },
        },
    )
    .await;
    Ok(())
}

/// Records an enriching delivery that could not render: its object could not be had.
/// The retry policy decides when it goes again (or fails it, for a missing or refused
/// key); the destination's breaker never hears of it.
async fn unsent(engine: &Engine, claimed: Claimed, unavailable: Unavailable) {
    let (reason, decision) = match unavailable {
        Unavailable::Later {
            reason,
            retry_after,
        } => {
            let jitter = rand::random::<f64>() * 2.0 - 1.0;
            let decision = retry_later(
                claimed.series_attempt,
                reason.clone(),
                retry_after,
                Utc::now(),
                jitter,
            );
            (reason, decision)
        }
        Unavailable::Never(reason) => (reason.clone(), Decision::Failed { reason }),
    };
    tracing::warn!(reason, "enrichment failed; not sent");
    let record = AttemptRecord {
        error: Some(reason),
        ..AttemptRecord::default()
    };
    let report = Report::Unsent { record, decision };
    submit(engine, Finished { claimed, report }).await;
}

/// Gives the delivery back unsent: held up since the claim (a stalled process), the
/// lease may run out before a send could end and be recorded, and another worker may
/// take the delivery over meanwhile, so none starts. Even a routine's delivery is due
/// again at once: nothing was fired.
async fn give_back(engine: &Engine, claimed: Claimed) {
    tracing::warn!("lease too short for a send; giving the delivery back unsent");
    let report = Report::NotSent {
        reason: "not sent: the attempt's lease ran short before it could be sent".to_owned(),
    };
    submit(engine, Finished { claimed, report }).await;
}

/// Hands the outcome to the committer and waits for its commit.
async fn submit(engine: &Engine, finished: Finished) {
    let recording = std::time::Instant::now();
    match engine.committer.submit(finished).await {
        Ok(Recorded::Recorded) => {}
        Ok(Recorded::Late) => {
            metrics::counter!("switchyard_late_outcomes_total").increment(1);
        }
        // The delivery stays in flight until its lease runs out; a claim then takes it
        // over.
        Err(e) => tracing::error!(error = %e, "the outcome could not be recorded"),
    }
    metrics::histogram!("switchyard_attempt_record_seconds")
        .record(recording.elapsed().as_secs_f64());
}
