//! Teams own everything; API keys act as an admin of one team.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{ApiKeyId, TeamId};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub slug: String,
    pub name: String,
    pub retention_days: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: ApiKeyId,
    #[serde(skip)]
    pub team_id: TeamId,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}
