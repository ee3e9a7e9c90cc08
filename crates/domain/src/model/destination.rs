//! Destinations: where deliveries go.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use crate::delivery::limits::Limits;
use crate::delivery::{DestinationKind, DestinationState};
use crate::ids::{DestinationId, TeamId};
use crate::netguard::{Policy, Refusal};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Destination {
    pub id: DestinationId,
    #[serde(skip)]
    pub team_id: TeamId,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: DestinationKind,
    #[sqlx(try_from = "String")]
    pub state: DestinationState,
    pub state_reason: Option<String>,
    pub paused_until: Option<DateTime<Utc>>,
    /// Failed attempts in a row; the circuit breaker opens at its threshold.
    pub consecutive_failures: i32,
    /// While the breaker is open: when the next probe may go.
    pub probe_at: Option<DateTime<Utc>>,
    /// Where requests go, for kinds whose target is not a secret (`http`, `routine`).
    pub url: Option<String>,
    #[schema(value_type = DestinationSettings)]
    pub settings: Json<DestinationSettings>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a destination needs that is safe to show. Its secrets are [`Credentials`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DestinationSettings {
    /// The credential's first and last characters (`sk-ant-oat01-…Q2xA`, a Slack URL's
    /// host and the end of its path), so a person can tell which one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_hint: Option<String>,
    /// `email`: the recipients; empty sends to the team's owners and admins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// `http`: the method (POST when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// `http`: the names of the custom headers sent; their values are credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_names: Vec<String>,
    /// `http`: the `Authorization` scheme sent, if any; the credential itself is sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthScheme>,
    /// Rate, concurrency and budgets; the keys sit beside the others
    /// (`rate_per_minute`, …), as the database's `limited` column expects.
    #[serde(flatten)]
    pub limits: Limits,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    Bearer,
    Basic,
}

/// What a destination needs that must never be shown or logged: sealed at rest as one
/// JSON document, opened by the worker for each send.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// `routine`: the bearer token (`sk-ant-oat01-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `slack`: the incoming-webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `http`: custom headers, name and value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// `http`: the whole `Authorization` value (`Bearer …`, `Basic …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

/// The first `head` and last `tail` characters of a secret with an ellipsis between, or
/// only an ellipsis when the secret is too short to show any of it safely.
pub fn hint(secret: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < head + tail + 8 {
        return "…".to_owned();
    }
    let start: String = chars[..head].iter().collect();
    let end: String = chars[chars.len() - tail..].iter().collect();
    format!("{start}…{end}")
}

/// A URL Switchyard may send to: absolute, http(s), and past the SSRF policy's checks
/// that need no DNS (the outbound client checks every resolved address again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationUrl(url::Url);

impl DestinationUrl {
    pub fn parse(raw: &str, policy: Policy) -> Result<Self, String> {
        if raw.len() > 2048 {
            return Err("url must be at most 2048 characters".to_owned());
        }
        let url = url::Url::parse(raw.trim()).map_err(|e| format!("url is not valid: {e}"))?;
        policy
            .check_url(&url)
            .map_err(|e: Refusal| format!("url is not allowed: {e}"))?;
        Ok(DestinationUrl(url))
    }

    /// A Claude Code routine's fire URL: `https://…/v1/claude_code/routines/trig_…/fire`.
    pub fn parse_fire_url(raw: &str, policy: Policy) -> Result<Self, String> {
        let url = Self::parse(raw, policy)?;
        let routine = url
            .0
            .path()
            .strip_prefix("/v1/claude_code/routines/")
            .and_then(|rest| rest.strip_suffix("/fire"))
            .filter(|id| {
                id.strip_prefix("trig_").is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric())
                })
            });
        if routine.is_none() || url.0.query().is_some() {
            return Err(
                "fire_url must end in /v1/claude_code/routines/trig_…/fire, as shown when you add an API trigger"
                    .to_owned(),
            );
        }
        Ok(url)
    }

    /// A Slack incoming-webhook URL: `https://hooks.slack.com/services/…` (any host when
    /// private destinations are allowed, for tests and self-hosted fakes).
    pub fn parse_slack(raw: &str, policy: Policy) -> Result<Self, String> {
        let url = Self::parse(raw, policy)?;
        let host_ok = policy.allow_private || url.0.host_str() == Some("hooks.slack.com");
        let path_ok = url
            .0
            .path()
            .strip_prefix("/services/")
            .is_some_and(|rest| !rest.is_empty());
        if !host_ok || !path_ok {
            return Err(
                "url must be a Slack incoming webhook: https://hooks.slack.com/services/…"
                    .to_owned(),
            );
        }
        Ok(url)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Host and the last characters of the path: enough to recognise, too little to use.
    pub fn hint(&self) -> String {
        let path = self.0.path();
        let tail: String = path
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "{}://{}{}…{tail}",
            self.0.scheme(),
            self.0.host_str().unwrap_or_default(),
            path.split('/').take(2).collect::<Vec<_>>().join("/"),
        )
    }
}

macro_rules! text_try_from {
    ($($t:ty),+) => {$(
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    )+};
}
text_try_from!(
    DestinationKind,
    DestinationState,
    crate::delivery::DeliveryStatus
);
