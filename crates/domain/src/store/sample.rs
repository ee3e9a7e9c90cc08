//! A destination's "send test": a claim for sending a sample event the way a delivery
//! would be sent, built from the destination alone.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::StoreError;
use super::attempts::Claimed;
use crate::delivery::DeliveryStatus;
use crate::ids::{AttemptId, DeliveryId, DestinationId, EventId, TeamId};
use crate::model::{Delivery, DestinationConfig};

/// The event a destination's "send test" carries.
pub const SAMPLE_EVENT_TYPE: &str = "switchyard.test";

/// A claim for sending a sample event to the destination: what a person's "send test"
/// sends. It touches no delivery, no limit and no breaker; the ids are made up for it.
#[tracing::instrument(skip_all)]
pub async fn claim(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &DestinationId,
    now: DateTime<Utc>,
) -> Result<Claimed, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        config: sqlx::types::Json<DestinationConfig>,
        signing_secret: Vec<u8>,
        previous_signing_secret: Option<Vec<u8>>,
        sealed_credentials: Option<Vec<u8>>,
        slug: String,
    }
    let row = sqlx::query_as::<_, Row>(
        "SELECT d.config, d.signing_secret,
                CASE WHEN d.previous_signing_until > $3 THEN d.previous_signing_secret END
                    AS previous_signing_secret,
                d.sealed_credentials, t.slug
         FROM destinations d JOIN teams t ON t.id = d.team_id
         WHERE d.team_id = $1 AND d.id = $2",
    )
    .bind(team)
    .bind(id)
    .bind(now)
    .fetch_one(db)
    .await?;
    let body = serde_json::json!({
        "type": SAMPLE_EVENT_TYPE,
        "message": "A test from Switchyard: this destination is reachable.",
        "sent_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let delivery = Delivery {
        id: DeliveryId::generate(),
        team_id: team.clone(),
        event_id: EventId::generate(),
        route_id: None,
        destination_id: id.clone(),
        status: DeliveryStatus::InFlight,
        attempt_count: 1,
        series_attempts: 1,
        replay_count: 0,
        next_attempt_at: None,
        last_error: None,
        claude_code_session_id: None,
        claude_code_session_url: None,
        created_at: now,
        updated_at: now,
    };
    Ok(Claimed {
        delivery,
        config: row.config.0,
        sealed_signing_secret: row.signing_secret,
        sealed_previous_signing_secret: row.previous_signing_secret,
        sealed_credentials: row.sealed_credentials,
        headers: serde_json::json!({ "content-type": "application/json" }),
        body: serde_json::to_vec(&body).unwrap_or_default(),
        event_type: Some(SAMPLE_EVENT_TYPE.to_owned()),
        received_at: now,
        dedup_key: "switchyard-test".to_owned(),
        source_name: "Switchyard".to_owned(),
        source_provider: "switchyard".to_owned(),
        team_slug: row.slug,
        template: None,
        subject: None,
        enrich: false,
        enrichment: None,
        synthesized: false,
        is_probe: false,
        attempt_id: AttemptId::generate(),
        series_attempt: 1,
    })
}
