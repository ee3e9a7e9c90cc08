//! Webhook providers: one module per sender. Each verifies a request's signature over the
//! raw bytes (constant time), and names the event type and the dedup key the sender
//! intends. Nothing here touches the network, the database or the clock: `now` is passed
//! in, and a provider sees only the request and the source's secrets and settings.

mod anthropic;
mod github;
mod headers;
mod none;
mod standard_webhooks;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use headers::Headers;
pub use standard_webhooks::{decode_secret, sign as sign_standard_webhook};

/// The request as a provider sees it: headers, the exact bytes received and, when the
/// body is JSON, its parsed form (parsed once by the caller).
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
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
    /// GitHub: also accept the legacy `X-Hub-Signature` (sha1) when no sha256 header is sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_sha1: bool,
}

/// Why a request was refused. The message is shown to the source's owner in the
/// rejection log, so it says what to fix and never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    #[error("timestamp is {0} s outside the allowed window of 300 s")]
    StaleTimestamp(i64),
    #[error("no signature matched")]
    NoMatch,
    #[error("the source has no usable secret")]
    NoSecret,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Anthropic,
    StandardWebhooks,
    Github,
    None,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::Anthropic,
        ProviderKind::StandardWebhooks,
        ProviderKind::Github,
        ProviderKind::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::StandardWebhooks => "standard_webhooks",
            ProviderKind::Github => "github",
            ProviderKind::None => "none",
        }
    }

    /// The provider's rules. Static: providers hold no state.
    pub fn provider(self) -> &'static dyn Provider {
        match self {
            ProviderKind::Anthropic => &anthropic::Anthropic,
            ProviderKind::StandardWebhooks => &standard_webhooks::StandardWebhooks,
            ProviderKind::Github => &github::Github,
            ProviderKind::None => &none::NoVerification,
        }
    }

    /// Whether a secret must be given when the source is created.
    pub fn needs_secret(self) -> bool {
        !matches!(self, ProviderKind::None)
    }

    /// Turns the secret a user pasted into the key bytes the provider signs with, refusing
    /// one that cannot be right (a Standard Webhooks secret that is not `whsec_` base64).
    pub fn parse_secret(self, secret: &str) -> Result<Vec<u8>, String> {
        match self {
            ProviderKind::Anthropic | ProviderKind::StandardWebhooks => {
                standard_webhooks::decode_secret(secret)
            }
            ProviderKind::Github | ProviderKind::None => {
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

/// sha256 of the body, hex: the dedup key of last resort.
pub fn content_hash(body: &[u8]) -> DedupKey {
    use sha2::{Digest, Sha256};
    DedupKey {
        value: format!("sha256:{}", hex::encode(Sha256::digest(body))),
        kind: DedupKind::ContentHash,
    }
}

/// The source's `dedup_header` setting, when the request carries that header. The owner
/// named it because they know their sender better than our defaults, so it beats every
/// provider's own key; an empty value is treated as absent, or all such requests would
/// collapse into one.
fn header_override(req: &Inbound<'_>, settings: &ProviderSettings) -> Option<DedupKey> {
    let name = settings.dedup_header.as_deref()?;
    let value = req.headers.get(name).filter(|v| !v.is_empty())?;
    Some(DedupKey {
        value: value.to_owned(),
        kind: DedupKind::ProviderId,
    })
}
