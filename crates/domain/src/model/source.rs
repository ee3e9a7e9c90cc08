//! Sources: where webhooks come in, with their provider's rules and secrets.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use crate::ids::{SourceId, TeamId};
use crate::providers::{ProviderKind, ProviderSettings};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Source {
    pub id: SourceId,
    #[serde(skip)]
    pub team_id: TeamId,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[sqlx(try_from = "String")]
    pub provider: ProviderKind,
    /// The ingest URL's secret path segment; shown only inside `ingest_url`.
    #[serde(skip)]
    pub token: String,
    #[schema(value_type = ProviderSettings)]
    pub settings: Json<ProviderSettings>,
    /// Largest body accepted, in bytes.
    pub body_limit: i32,
    /// Minutes without events after which the team is told the source went quiet.
    pub quiet_after_minutes: Option<i32>,
    /// Anthropic: passes list the sessions and synthesize the status events whose
    /// webhooks never came.
    pub reconcile: bool,
    /// Seconds between passes.
    pub reconcile_interval_s: i32,
    /// How far back a pass lists sessions by their creation, in seconds.
    pub reconcile_lookback_s: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<String> for ProviderKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
