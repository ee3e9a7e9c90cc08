//! What each destination kind sends, and what its answer means beyond the status code:
//! a routine's session, Slack's reasons for refusing, a back-off the whole destination
//! must respect.

use chrono::Utc;
use serde_json::{Value, json};
use switchyard_domain::StoreError;
use switchyard_domain::delivery::compose;
use switchyard_domain::delivery::{DestinationKind, Outcome};
use switchyard_domain::model::reconcile::SYNTHESIZED_HEADER;
use switchyard_domain::model::{Credentials, DestinationConfig, HttpMethod};
use switchyard_domain::providers::{Headers, decode_secret, sign_standard_webhook};
use switchyard_domain::routing::pipeline::render;
use switchyard_domain::routing::{EventFacts, Message, RoutedEvent, Templates};
use switchyard_domain::secrets::SecretKey;
use switchyard_domain::store::attempts::{Claimed, DestinationEffect};

use crate::{Email, Sent};

/// The `anthropic-version` and `anthropic-beta` a routine fire is sent with.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
pub const ROUTINE_BETA: &str = "experimental-cc-routine-2026-04-01";

/// One request, ready to send.
#[derive(Debug)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Headers whose values are the destination's secrets, beyond the well-known ones.
    pub secret_headers: Vec<String>,
}

impl Request {
    fn post(url: String, headers: Vec<(String, String)>, body: Vec<u8>) -> Request {
        Request {
            method: reqwest::Method::POST,
            url,
            headers,
            body,
            secret_headers: Vec::new(),
        }
    }

    /// The headers as the attempt stores them: credentials shown as `[redacted]`.
    pub fn stored_headers(&self) -> Value {
        let secret: Vec<&str> = self.secret_headers.iter().map(String::as_str).collect();
        Headers::from_pairs(self.headers.iter().cloned()).to_stored_json(&secret)
    }
}

/// What one attempt sends.
#[derive(Debug)]
pub enum Prepared {
    Http(Request),
    /// An email; empty `to` means the team's owners and admins.
    Email(Email),
}

/// Builds what `claimed` sends, whose event body is `body`. An error means the
/// destination cannot be sent to as configured (a credential that does not open, a
/// template that fails on this event); it is not worth retrying.
pub fn build(
    key: &SecretKey,
    claimed: &Claimed,
    body: Vec<u8>,
    public_base: &str,
) -> Result<Prepared, String> {
    let facts = EventFacts {
        id: claimed.delivery.event_id.as_str(),
        event_type: claimed.event_type.as_deref(),
        headers: &claimed.headers,
        body: &body,
        received_at: claimed.received_at,
        dedup_key: &claimed.dedup_key,
        source_name: &claimed.source_name,
        source_provider: &claimed.source_provider,
        team_slug: &claimed.team_slug,
    };
    let templates = Templates {
        body: claimed.template.as_deref(),
        subject: claimed.subject.as_deref(),
    };
    let mut event = RoutedEvent::new(facts, public_base);
    let nothing = Value::Null;
    if claimed.enrich {
        let object = claimed.enrichment.as_ref().and_then(|e| e.object.as_ref());
        event = event.with_object(object.unwrap_or(&nothing));
    }
    let message = render(claimed.kind(), templates, &event)?;
    let mut request = match message {
        Message::Email { subject, text } => {
            let DestinationConfig::Email { to } = &claimed.config else {
                return Err("an email message for a destination that is not email".to_owned());
            };
            return Ok(Prepared::Email(Email {
                to: to.clone(),
                subject,
                html: compose::html_from_text(&text),
                text,
            }));
        }
        Message::Http { body: rendered } => {
            // The route's template is the body, sent as written; else the body received.
            let body = rendered.map_or(body, String::into_bytes);
            http_request(key, claimed, body)?
        }
        Message::Routine { text } => {
            let (DestinationConfig::Routine { fire_url, .. }, Credentials::Routine { token }) =
                (&claimed.config, credentials(key, claimed)?)
            else {
                return Err("a routine message for a destination that is not a routine".to_owned());
            };
            Request::post(
                fire_url.clone(),
                vec![
                    ("authorization".to_owned(), format!("Bearer {token}")),
                    ("anthropic-version".to_owned(), ANTHROPIC_VERSION.to_owned()),
                    ("anthropic-beta".to_owned(), ROUTINE_BETA.to_owned()),
                    ("content-type".to_owned(), "application/json".to_owned()),
                ],
                json_body(&json!({ "text": text })),
            )
        }
        Message::Slack { payload } => {
            let Credentials::Slack { url } = credentials(key, claimed)? else {
                return Err("a Slack message for a destination that is not Slack".to_owned());
            };
            Request::post(
                url,
                vec![("content-type".to_owned(), "application/json".to_owned())],
                json_body(&payload),
            )
        }
    };
    // Whatever it goes to, a receiver can tell an event no sender sent.
    if claimed.synthesized {
        request
            .headers
            .push((SYNTHESIZED_HEADER.to_owned(), "true".to_owned()));
    }
    Ok(Prepared::Http(request))
}

/// An http destination's request: signed, with its credentials, by its method.
fn http_request(key: &SecretKey, claimed: &Claimed, body: Vec<u8>) -> Result<Request, String> {
    let (
        DestinationConfig::Http { url, method, .. },
        Credentials::Http {
            headers: custom,
            authorization,
        },
    ) = (&claimed.config, credentials(key, claimed)?)
    else {
        return Err("an http request for a destination that is not http".to_owned());
    };
    let mut headers = signed_headers(key, claimed, &body).map_err(|e| e.to_string())?;
    let mut secret_headers = Vec::new();
    for (name, value) in custom {
        secret_headers.push(name.clone());
        headers.push((name, value));
    }
    if let Some(authorization) = authorization {
        headers.push(("authorization".to_owned(), authorization));
    }
    let method = match method {
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
    };
    Ok(Request {
        method,
        url: url.clone(),
        headers,
        body,
        secret_headers,
    })
}

fn json_body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn credentials(key: &SecretKey, claimed: &Claimed) -> Result<Credentials, String> {
    Credentials::open(claimed.kind(), key, claimed.sealed_credentials.as_deref())
}

/// An HTTP delivery's headers: the original content type and Standard Webhooks signing.
/// `webhook-id` is the delivery id, stable across retries, and `…_r{n}` for the n-th
/// replay, so a receiver deduping on it drops retries but takes a deliberate replay.
/// While a rotated-out secret still signs, both signatures are sent, space-separated,
/// the new one first: a receiver with either secret verifies.
fn signed_headers(
    key: &SecretKey,
    claimed: &Claimed,
    body: &[u8],
) -> Result<Vec<(String, String)>, StoreError> {
    let delivery = &claimed.delivery;
    let open = |sealed: &[u8]| -> Result<Vec<u8>, StoreError> {
        let secret = String::from_utf8(key.open(sealed)?).unwrap_or_default();
        decode_secret(&secret).map_err(StoreError::Internal)
    };
    let signing_keys = std::iter::once(claimed.sealed_signing_secret.as_slice())
        .chain(claimed.sealed_previous_signing_secret.as_deref())
        .map(open)
        .collect::<Result<Vec<_>, _>>()?;
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
    let mut headers = vec![
        ("content-type".to_owned(), content_type),
        ("webhook-id".to_owned(), msg_id.clone()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        (
            "webhook-signature".to_owned(),
            signing_keys
                .iter()
                .map(|k| sign_standard_webhook(k, &msg_id, timestamp, body))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "switchyard-event-id".to_owned(),
            delivery.event_id.to_string(),
        ),
        ("switchyard-delivery-id".to_owned(), delivery.id.to_string()),
    ];
    // A receiver can tell a deliberate replay from a first send (and from a retry).
    if delivery.replay_count > 0 {
        headers.push(("switchyard-replay".to_owned(), "true".to_owned()));
    }
    Ok(headers)
}

/// What an answer says besides its status.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// A clearer error than the status alone (the API's own message).
    pub error: Option<String>,
    pub session_id: Option<String>,
    pub session_url: Option<String>,
    pub effect: DestinationEffect,
}

/// Slack's answers that mean the webhook is gone for good, not that this message failed.
const SLACK_GONE: [(u16, &str); 5] = [
    (404, "no_service"),
    (410, "channel_is_archived"),
    (403, "invalid_token"),
    (404, "channel_not_found"),
    (410, "team_disabled"),
];

pub fn read(kind: DestinationKind, sent: &Sent) -> Reading {
    let Outcome::Response {
        status,
        retry_after,
    } = sent.outcome
    else {
        return Reading::default();
    };
    let excerpt = sent.excerpt.as_deref().unwrap_or_default();
    let backs_off = matches!(kind, DestinationKind::Routine | DestinationKind::Slack);
    let effect = match retry_after {
        Some(until) if status == 429 && backs_off => DestinationEffect::BackOffUntil(until),
        _ => DestinationEffect::None,
    };
    match kind {
        DestinationKind::Routine if (200..300).contains(&status) => {
            let answer: Value = serde_json::from_str(excerpt).unwrap_or_default();
            let field = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_owned);
            Reading {
                session_id: field("claude_code_session_id"),
                session_url: field("claude_code_session_url"),
                ..Reading::default()
            }
        }
        DestinationKind::Routine => {
            let answer: Value = serde_json::from_str(excerpt).unwrap_or_default();
            let error = answer.get("error");
            let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
            let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
            Reading {
                error: match (kind, message) {
                    (Some(kind), Some(message)) => Some(format!("HTTP {status} {kind}: {message}")),
                    (Some(kind), None) => Some(format!("HTTP {status} {kind}")),
                    _ => None,
                },
                effect,
                ..Reading::default()
            }
        }
        DestinationKind::Slack if !(200..300).contains(&status) => {
            let reason = excerpt.trim();
            let error = (!reason.is_empty() && reason.len() <= 100)
                .then(|| format!("HTTP {status} {reason}"));
            let effect = if SLACK_GONE.contains(&(status, reason)) {
                DestinationEffect::Disable(format!(
                    "Slack answered {status} {reason}: the incoming webhook no longer works; update its URL and resume"
                ))
            } else {
                effect
            };
            Reading {
                error,
                effect,
                ..Reading::default()
            }
        }
        _ => Reading {
            effect,
            ..Reading::default()
        },
    }
}
