//! "Send test": one sample event sent to a destination the way a delivery would be, at a
//! person's request, with the answer shown to them. Nothing is recorded on a delivery and
//! no limit, budget or breaker is consulted: it is a probe a person reads.

use switchyard_domain::delivery::Outcome;
use switchyard_domain::secrets::SecretKey;
use switchyard_domain::store::attempts::Claimed;

use crate::request::{self, Prepared};
use crate::{Email, Outbound};

/// What the receiver said.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    pub succeeded: bool,
    pub status: Option<u16>,
    pub duration_ms: u128,
    pub excerpt: Option<String>,
    pub error: Option<String>,
    /// A routine's answer: the Claude Code session the test started.
    pub session_url: Option<String>,
}

pub enum SampleOutcome {
    Answered(Answer),
    /// An email destination's message, for the caller to queue.
    Email(Email),
}

pub async fn send(
    outbound: &Outbound,
    key: &SecretKey,
    claimed: &Claimed,
    public_base: &str,
) -> Result<SampleOutcome, String> {
    let request = match request::build(key, claimed, claimed.body.clone(), public_base)? {
        Prepared::Email(email) => return Ok(SampleOutcome::Email(email)),
        Prepared::Http(request) => request,
    };
    let sent = outbound
        .send(request.method, &request.url, request.headers, request.body)
        .await;
    let reading = request::read(claimed.kind(), &sent);
    let succeeded =
        matches!(sent.outcome, Outcome::Response { status, .. } if (200..300).contains(&status));
    Ok(SampleOutcome::Answered(Answer {
        succeeded,
        status: sent.status,
        duration_ms: sent.duration.as_millis(),
        excerpt: sent.excerpt,
        error: reading.error.or(sent.error),
        session_url: reading.session_url,
    }))
}
