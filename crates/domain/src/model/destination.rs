//! Destinations: where deliveries go.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::delivery::limits::Limits;
use crate::delivery::{DestinationKind, DestinationState};
use crate::ids::{DestinationId, TeamId};
use crate::netguard::{Policy, Refusal};
use crate::secrets::SecretKey;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Destination {
    pub id: DestinationId,
    #[serde(skip)]
    pub team_id: TeamId,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Where it sends: `kind` and that kind's own fields.
    #[serde(flatten)]
    #[sqlx(json)]
    pub config: DestinationConfig,
    #[sqlx(try_from = "String")]
    pub state: DestinationState,
    pub state_reason: Option<String>,
    pub paused_until: Option<DateTime<Utc>>,
    /// Failed attempts in a row; the circuit breaker opens at its threshold.
    pub consecutive_failures: i32,
    /// While the breaker is open: when the next probe may go.
    pub probe_at: Option<DateTime<Utc>>,
    /// Rate, concurrency and budgets.
    #[sqlx(json, rename = "settings")]
    pub limits: Limits,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Destination {
    pub fn kind(&self) -> DestinationKind {
        self.config.kind()
    }
}

/// Where a destination sends, by kind: each kind has its own fields and no others. What
/// is secret (a routine's token, a Slack webhook URL, header values) is not here but in
/// its [`Credentials`]; the config keeps only a hint of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DestinationConfig {
    /// A Claude Code routine, fired with the rendered event as its text.
    Routine {
        /// `https://…/v1/claude_code/routines/trig_…/fire`.
        fire_url: String,
        /// The token's first and last characters (`sk-ant-oat01-…Q2xA`).
        token_hint: String,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The webhook URL's host and the end of its path.
        url_hint: String,
    },
    /// Mail to people.
    Email {
        /// The recipients; empty sends to the team's owners and admins.
        #[serde(default)]
        to: Vec<String>,
    },
    /// An HTTP endpoint, signed (Standard Webhooks).
    Http {
        url: String,
        #[serde(default)]
        method: HttpMethod,
        /// The names of the custom headers sent; their values are credentials.
        #[serde(default)]
        header_names: Vec<String>,
        /// The `Authorization` scheme sent, if any; the credential itself is sealed.
        #[serde(default)]
        auth: Option<AuthScheme>,
    },
}

impl DestinationConfig {
    pub fn kind(&self) -> DestinationKind {
        match self {
            DestinationConfig::Routine { .. } => DestinationKind::Routine,
            DestinationConfig::Slack { .. } => DestinationKind::Slack,
            DestinationConfig::Email { .. } => DestinationKind::Email,
            DestinationConfig::Http { .. } => DestinationKind::Http,
        }
    }
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

impl AuthScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScheme::Bearer => "bearer",
            AuthScheme::Basic => "basic",
        }
    }
}

/// What a destination needs that must never be shown or logged, by kind: sealed at rest
/// as one JSON document, opened by the worker for each send.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Credentials {
    /// The routine's bearer token (`sk-ant-oat01-…`).
    Routine {
        token: String,
    },
    /// The incoming-webhook URL.
    Slack {
        url: String,
    },
    Email,
    Http {
        /// Custom headers, name and value.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        headers: Vec<(String, String)>,
        /// The whole `Authorization` value (`Bearer …`, `Basic …`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization: Option<String>,
    },
}

impl Credentials {
    /// Sealed for storing; `None` when there is nothing secret.
    pub fn seal(&self, key: &SecretKey) -> Result<Option<Vec<u8>>, serde_json::Error> {
        let nothing = match self {
            Credentials::Email => true,
            Credentials::Http {
                headers,
                authorization,
            } => headers.is_empty() && authorization.is_none(),
            Credentials::Routine { .. } | Credentials::Slack { .. } => false,
        };
        if nothing {
            return Ok(None);
        }
        Ok(Some(key.seal(&serde_json::to_vec(self)?)))
    }

    /// Opens a `kind` destination's sealed credentials. Documents sealed before they
    /// carried their kind are read as that kind's.
    pub fn open(
        kind: DestinationKind,
        key: &SecretKey,
        sealed: Option<&[u8]>,
    ) -> Result<Credentials, String> {
        let mut document = match sealed {
            Some(blob) => {
                let json = key.open(blob).map_err(|e| e.to_string())?;
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json)
                    .map_err(|_| "the stored credentials are unreadable".to_owned())?
            }
            None => serde_json::Map::new(),
        };
        document.insert("kind".to_owned(), kind.as_str().into());
        serde_json::from_value(document.into())
            .map_err(|_| format!("the {kind} destination's credentials are missing"))
    }
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
        let url = url::Url::parse(raw.trim()).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => {
                "enter the whole URL, starting with https://".to_owned()
            }
            other => format!("this is not a URL ({other})"),
        })?;
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
