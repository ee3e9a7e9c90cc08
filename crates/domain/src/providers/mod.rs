//! Webhook providers: one module per sender. Each verifies a request's signature over the
//! raw bytes (constant time), and names the event type and the dedup key the sender
//! intends. Nothing here touches the network, the database or the clock: `now` is passed
//! in, and a provider sees only the request and the source's secrets and settings.

mod anthropic;
mod body;
mod credential;
mod generic;
mod github;
mod gitlab;
mod headers;
mod intercom;
mod jira;
mod linear;
mod none;
mod pagerduty;
#[cfg(test)]
mod properties;
pub mod samples;
mod sentry;
mod shopify;
mod signing;
mod slack;
mod standard_webhooks;
mod stripe;
#[cfg(test)]
mod testing;
mod twilio;
mod zendesk;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use body::{form_pairs, structured};
pub use generic::{DigestEncoding, HmacAlgorithm, HmacScheme};
pub use headers::Headers;
pub use standard_webhooks::{decode_secret, sign as sign_standard_webhook};

/// The request as a provider sees it: the URL the sender requested, headers, the exact
/// bytes received and, when the body is JSON or a form, its structured form
/// ([`structured`], computed once by the caller).
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The public URL the sender posted to, query string included, as the sender wrote it
    /// (Twilio signs it). Empty where nobody needs it.
    pub url: &'a str,
    pub headers: &'a Headers,
    pub body: &'a [u8],
    pub json: Option<&'a Value>,
}

/// Per-source settings that change how a provider reads a request. Stored as JSON on the
/// source; unknown fields are refused when the source is saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Header whose value is the dedup key (the `none` provider; overrides elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_header: Option<String>,
    /// JSON pointer (`/data/id`) into the body whose value is the dedup key; tried after
    /// `dedup_header`, before the provider's own key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_pointer: Option<String>,
    /// Header whose value is the event type, instead of the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_header: Option<String>,
    /// JSON pointer into the body whose value is the event type, instead of the
    /// provider's; tried after `event_type_header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_pointer: Option<String>,
    /// `api_key`: the header that carries the key (default `x-api-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_header: Option<String>,
    /// GitHub: also accept the legacy `X-Hub-Signature` (sha1) when no sha256 header is sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_sha1: bool,
    /// `hmac`: how the sender signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<HmacScheme>,
}

impl ProviderSettings {
    /// The event type a source's overrides name, if they apply to this request.
    pub fn event_type_override(&self, req: &Inbound<'_>) -> Option<String> {
        let from_header = || {
            let name = self.event_type_header.as_deref()?;
            req.headers
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        from_header().or_else(|| pointed(req, self.event_type_pointer.as_deref()?))
    }
}

/// The scalar at a JSON pointer in the body, as text.
fn pointed(req: &Inbound<'_>, pointer: &str) -> Option<String> {
    match req.json?.pointer(pointer)? {
        Value::Number(n) => Some(n.to_string()),
        _ => json_str(req, pointer),
    }
}

/// The non-empty string at a JSON pointer in the (structured) body.
fn json_str(req: &Inbound<'_>, pointer: &str) -> Option<String> {
    req.json?
        .pointer(pointer)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The event type of a request: the source's override, else the provider's.
pub fn resolve_event_type(
    provider: &dyn Provider,
    req: &Inbound<'_>,
    settings: &ProviderSettings,
) -> Option<String> {
    settings
        .event_type_override(req)
        .or_else(|| provider.event_type(req))
        .filter(|t| !t.is_empty())
}

/// The event type `kind` reads from a request made of these parts: a sample, or one a
/// person pasted.
pub fn event_type_of(
    kind: ProviderKind,
    settings: &ProviderSettings,
    headers: &Headers,
    body: &[u8],
    json: &Value,
) -> Option<String> {
    let inbound = Inbound {
        url: "",
        headers,
        body,
        json: Some(json),
    };
    resolve_event_type(kind.provider(), &inbound, settings)
}

/// Why a request was refused. The message is shown to the source's owner in the
/// rejection log, so it says what to fix and never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(Cow<'static, str>),
    #[error("malformed header {0}")]
    MalformedHeader(Cow<'static, str>),
    /// `off_by` is `now - timestamp` in seconds (negative: from the future).
    #[error("timestamp is {off_by} s outside the allowed window of {window} s")]
    StaleTimestamp { off_by: i64, window: i64 },
    /// A field the sender signs inside the body (Linear's `webhookTimestamp`) is absent
    /// or not of the documented shape.
    #[error("missing or malformed body field {0}")]
    MalformedBody(&'static str),
    #[error("no signature matched")]
    NoMatch,
    #[error("the source has no usable secret")]
    NoSecret,
    /// Created before its sender showed the secret: nothing verifies until it is pasted.
    #[error(
        "the source is waiting for its signing secret; paste it on the source's page in Switchyard"
    )]
    AwaitingSecret,
    #[error("the source's signature scheme is not configured")]
    Unconfigured,
}

impl VerifyError {
    /// A stable name for the reason, the last segment of the 401 problem's `type`, so a
    /// sender's operator can tell a clock problem from a wrong secret without parsing
    /// the detail.
    pub fn slug(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "signature-missing",
            VerifyError::MalformedHeader(_) | VerifyError::MalformedBody(_) => {
                "signature-malformed"
            }
            VerifyError::StaleTimestamp { off_by, .. } if *off_by < 0 => "timestamp-in-future",
            VerifyError::StaleTimestamp { .. } => "timestamp-too-old",
            VerifyError::NoMatch => "signature-mismatch",
            VerifyError::NoSecret | VerifyError::Unconfigured => "source-not-configured",
            VerifyError::AwaitingSecret => "source-awaiting-secret",
        }
    }
}

/// How long a dedup key holds: a sender's own id dedups for the team's whole retention;
/// a key we derived from content only for a short window, so identical legitimate
/// repeats still flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupKind {
    ProviderId,
    ContentHash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupKey {
    pub value: String,
    pub kind: DedupKind,
}

/// One sender's rules.
pub trait Provider: Send + Sync {
    /// Checks the signature against each active secret (rotation keeps up to two).
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        settings: &ProviderSettings,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError>;

    /// The event type the sender names, if any.
    fn event_type(&self, req: &Inbound<'_>) -> Option<String>;

    /// The key that stays the same across the sender's retries of one delivery.
    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey;

    /// An answer the sender expects instead of an acknowledgement, for a verified
    /// handshake request that is not an event (Slack's `url_verification`).
    fn handshake(&self, _req: &Inbound<'_>) -> Option<Value> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Anthropic,
    StandardWebhooks,
    Github,
    Stripe,
    Slack,
    Shopify,
    Linear,
    Sentry,
    Zendesk,
    Intercom,
    Pagerduty,
    Jira,
    Gitlab,
    Twilio,
    Hmac,
    BasicAuth,
    ApiKey,
    None,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 18] = [
        ProviderKind::Anthropic,
        ProviderKind::StandardWebhooks,
        ProviderKind::Github,
        ProviderKind::Stripe,
        ProviderKind::Slack,
        ProviderKind::Shopify,
        ProviderKind::Linear,
        ProviderKind::Sentry,
        ProviderKind::Zendesk,
        ProviderKind::Intercom,
        ProviderKind::Pagerduty,
        ProviderKind::Jira,
        ProviderKind::Gitlab,
        ProviderKind::Twilio,
        ProviderKind::Hmac,
        ProviderKind::BasicAuth,
        ProviderKind::ApiKey,
        ProviderKind::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::StandardWebhooks => "standard_webhooks",
            ProviderKind::Github => "github",
            ProviderKind::Stripe => "stripe",
            ProviderKind::Slack => "slack",
            ProviderKind::Shopify => "shopify",
            ProviderKind::Linear => "linear",
            ProviderKind::Sentry => "sentry",
            ProviderKind::Zendesk => "zendesk",
            ProviderKind::Intercom => "intercom",
            ProviderKind::Pagerduty => "pagerduty",
            ProviderKind::Jira => "jira",
            ProviderKind::Gitlab => "gitlab",
            ProviderKind::Twilio => "twilio",
            ProviderKind::Hmac => "hmac",
            ProviderKind::BasicAuth => "basic_auth",
            ProviderKind::ApiKey => "api_key",
            ProviderKind::None => "none",
        }
    }

    /// The provider's rules. Static: providers hold no state.
    pub fn provider(self) -> &'static dyn Provider {
        match self {
            ProviderKind::Anthropic => &anthropic::Anthropic,
            ProviderKind::StandardWebhooks => &standard_webhooks::StandardWebhooks,
            ProviderKind::Github => &github::Github,
            ProviderKind::Stripe => &stripe::Stripe,
            ProviderKind::Slack => &slack::Slack,
            ProviderKind::Shopify => &shopify::Shopify,
            ProviderKind::Linear => &linear::Linear,
            ProviderKind::Sentry => &sentry::Sentry,
            ProviderKind::Zendesk => &zendesk::Zendesk,
            ProviderKind::Intercom => &intercom::Intercom,
            ProviderKind::Pagerduty => &pagerduty::Pagerduty,
            ProviderKind::Jira => &jira::Jira,
            ProviderKind::Gitlab => &gitlab::Gitlab,
            ProviderKind::Twilio => &twilio::Twilio,
            ProviderKind::Hmac => &generic::GenericHmac,
            ProviderKind::BasicAuth => &credential::BasicAuth,
            ProviderKind::ApiKey => &credential::ApiKey,
            ProviderKind::None => &none::NoVerification,
        }
    }

    /// Whether the source verifies with a secret.
    pub fn needs_secret(self) -> bool {
        !matches!(self, ProviderKind::None)
    }

    /// Whether the sender's console shows the signing secret only once the endpoint's
    /// URL is saved: such a source may be created without one, and refuses every request
    /// until it is pasted. Senders whose secret is chosen by the user, or known before
    /// (an app's secret), need it at creation.
    pub fn secret_follows_url(self) -> bool {
        matches!(
            self,
            ProviderKind::Anthropic
                | ProviderKind::StandardWebhooks
                | ProviderKind::Stripe
                | ProviderKind::Linear
                | ProviderKind::Zendesk
                | ProviderKind::Pagerduty
        )
    }

    /// Turns the secret a user pasted into the key bytes the provider signs with, refusing
    /// one that cannot be right (a Standard Webhooks secret that is not `whsec_` base64).
    ///
    /// Only Standard Webhooks senders base64-decode what follows `whsec_`; every other
    /// HMAC provider keys with the secret's UTF-8 bytes exactly as shown, so Stripe's
    /// `whsec_…` keeps its prefix and Zendesk's or PagerDuty's base64-looking secrets are
    /// not decoded. GitLab holds either kind: a `whsec_` secret is a signing token
    /// (Standard Webhooks, decoded here), any other is the plain `X-Gitlab-Token` value.
    /// Whitespace around a pasted secret is a copying accident, never part of the key.
    pub fn parse_secret(self, secret: &str) -> Result<Vec<u8>, String> {
        let secret = secret.trim();
        match self {
            ProviderKind::Anthropic | ProviderKind::StandardWebhooks => {
                standard_webhooks::decode_secret(secret)
            }
            ProviderKind::Gitlab if secret.starts_with("whsec_") => {
                standard_webhooks::decode_secret(secret)
            }
            ProviderKind::BasicAuth if !secret.contains(':') => {
                Err("a basic_auth secret is user:password".to_owned())
            }
            ProviderKind::Github
            | ProviderKind::Stripe
            | ProviderKind::Slack
            | ProviderKind::Shopify
            | ProviderKind::Linear
            | ProviderKind::Sentry
            | ProviderKind::Zendesk
            | ProviderKind::Intercom
            | ProviderKind::Pagerduty
            | ProviderKind::Jira
            | ProviderKind::Gitlab
            | ProviderKind::Twilio
            | ProviderKind::Hmac
            | ProviderKind::BasicAuth
            | ProviderKind::ApiKey
            | ProviderKind::None => {
                if secret.is_empty() {
                    Err("secret must not be empty".to_owned())
                } else {
                    Ok(secret.as_bytes().to_vec())
                }
            }
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown provider {s:?}"))
    }
}

/// The longest event type stored; a longer one is refused.
pub const MAX_EVENT_TYPE: usize = 200;
/// The longest dedup key stored as sent; a longer one is stored as its hash.
pub const MAX_DEDUP_KEY: usize = 200;

/// An event type fit to store and match: bounded, without control characters.
pub fn checked_event_type(event_type: Option<String>) -> Result<Option<String>, String> {
    match event_type {
        Some(t) if t.chars().count() > MAX_EVENT_TYPE => Err(format!(
            "the event type is longer than {MAX_EVENT_TYPE} characters"
        )),
        Some(t) if t.chars().any(char::is_control) => {
            Err("the event type contains control characters".to_owned())
        }
        other => Ok(other),
    }
}

impl DedupKey {
    /// The key as stored: a sender's key that is too long for the index or carries
    /// control characters is replaced by its hash (same key, same hash).
    pub fn bounded(self) -> DedupKey {
        if self.value.len() <= MAX_DEDUP_KEY && !self.value.chars().any(char::is_control) {
            return self;
        }
        use sha2::{Digest, Sha256};
        DedupKey {
            value: format!(
                "sha256:{}",
                hex::encode(Sha256::digest(self.value.as_bytes()))
            ),
            kind: self.kind,
        }
    }
}

/// The sender's delivery id from `header`, when it sent a non-empty one: a dedup key
/// for the whole retention.
fn header_id(req: &Inbound<'_>, header: &str) -> Option<DedupKey> {
    let id = req.headers.get(header).filter(|id| !id.is_empty())?;
    Some(DedupKey {
        value: id.to_owned(),
        kind: DedupKind::ProviderId,
    })
}

/// The usual dedup key: the source's overrides, else the sender's delivery id in
/// `header`, else the content hash.
fn keyed_by_header(req: &Inbound<'_>, settings: &ProviderSettings, header: &str) -> DedupKey {
    header_override(req, settings)
        .or_else(|| header_id(req, header))
        .unwrap_or_else(|| content_hash(req.body))
}

/// sha256 of the body, hex: the dedup key of last resort.
pub fn content_hash(body: &[u8]) -> DedupKey {
    use sha2::{Digest, Sha256};
    DedupKey {
        value: format!("sha256:{}", hex::encode(Sha256::digest(body))),
        kind: DedupKind::ContentHash,
    }
}

/// The dedup key a source's overrides name (`dedup_header`, then `dedup_pointer`), if
/// they apply to this request. The owner named them because they know their sender
/// better than our defaults, so every provider tries them before its own key; an empty
/// value is treated as absent, or all such requests would collapse into one.
fn header_override(req: &Inbound<'_>, settings: &ProviderSettings) -> Option<DedupKey> {
    let from_header = || {
        let name = settings.dedup_header.as_deref()?;
        req.headers
            .get(name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let value = from_header().or_else(|| pointed(req, settings.dedup_pointer.as_deref()?))?;
    Some(DedupKey {
        value,
        kind: DedupKind::ProviderId,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_overrides_take_the_event_type_and_dedup_key_from_headers_or_pointers() {
        let headers = Headers::from_pairs([("x-kind".to_owned(), "from.header".to_owned())]);
        let json = serde_json::json!({"meta": {"kind": "from.pointer", "seq": 42}});
        let req = Inbound {
            url: "",
            headers: &headers,
            body: b"{}",
            json: Some(&json),
        };
        let by_pointer = ProviderSettings {
            event_type_pointer: Some("/meta/kind".to_owned()),
            dedup_pointer: Some("/meta/seq".to_owned()),
            ..ProviderSettings::default()
        };
        let provider = ProviderKind::None.provider();
        assert_eq!(
            resolve_event_type(provider, &req, &by_pointer).as_deref(),
            Some("from.pointer")
        );
        assert_eq!(provider.dedup_key(&req, &by_pointer).value, "42");
        let by_header = ProviderSettings {
            event_type_header: Some("X-Kind".to_owned()),
            ..by_pointer.clone()
        };
        assert_eq!(
            resolve_event_type(provider, &req, &by_header).as_deref(),
            Some("from.header")
        );
        let missing = ProviderSettings {
            event_type_pointer: Some("/nope".to_owned()),
            ..ProviderSettings::default()
        };
        assert_eq!(resolve_event_type(provider, &req, &missing), None);
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, Value::String(kind.as_str().to_owned()));
        }
        assert!("twillio".parse::<ProviderKind>().is_err());
    }

    #[test]
    fn every_new_provider_needs_a_secret_and_keys_with_its_utf8_bytes() {
        for name in [
            "stripe",
            "slack",
            "shopify",
            "linear",
            "sentry",
            "zendesk",
            "intercom",
            "pagerduty",
            "jira",
            "gitlab",
            "twilio",
            "hmac",
        ] {
            let kind: ProviderKind = name.parse().unwrap();
            assert!(kind.needs_secret(), "{name}");
            assert!(kind.parse_secret("").is_err(), "{name}");
            assert_eq!(
                kind.parse_secret("dGhpc19zZWNyZXQ=").unwrap(),
                b"dGhpc19zZWNyZXQ=",
                "{name}"
            );
        }
        assert_eq!(
            ProviderKind::Stripe
                .parse_secret("whsec_test_secret")
                .unwrap(),
            b"whsec_test_secret"
        );
    }

    #[test]
    fn gitlab_decodes_a_whsec_secret_and_keeps_a_plain_token() {
        assert_eq!(
            ProviderKind::Gitlab
                .parse_secret("whsec_c2VjcmV0Cg==")
                .unwrap(),
            b"secret\n"
        );
        assert_eq!(
            ProviderKind::Gitlab
                .parse_secret("glwt-test-token")
                .unwrap(),
            b"glwt-test-token"
        );
        assert!(ProviderKind::Gitlab.parse_secret("whsec_!!").is_err());
    }
}
