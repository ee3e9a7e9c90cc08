//! Destinations: where deliveries go.

use chrono::{DateTime, Utc};
use serde::Serialize;

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
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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

    pub fn as_str(&self) -> &str {
        self.0.as_str()
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
