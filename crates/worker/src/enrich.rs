//! Enrichment: before an enriching route's delivery renders, the Anthropic object its
//! event names is fetched with the team's key and kept with the event. One fetch serves
//! every enriching route of the event: attempts of one process share it while it is
//! under way, and the first object kept is the one every route and replay renders.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;
use switchyard_domain::StoreError;
use switchyard_domain::ids::{EventId, TeamId};
use switchyard_domain::store::alerts::{self, AlertKind};
use switchyard_domain::store::attempts::{Claimed, Enrichment};
use switchyard_domain::store::event_objects;
use switchyard_domain::store::queue::{Alert, AlertTask};
use switchyard_send::anthropic::{ApiError, Target, TeamKey, target};
use tokio::sync::OnceCell;

use crate::WorkerContext;

/// Why an enriching delivery cannot render now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// Worth trying again under the retry policy (a 429, a 5xx, a timeout).
    Later {
        reason: String,
        retry_after: Option<DateTime<Utc>>,
    },
    /// Not until a person acts (no key, a refused key): the delivery fails.
    Never(String),
}

type Fetch = Arc<OnceCell<Result<Enrichment, Unavailable>>>;

/// The fetches under way in this process, by event.
#[derive(Default)]
pub struct Enricher {
    under_way: Mutex<HashMap<EventId, Fetch>>,
}

impl Enricher {
    /// The object of `claimed`'s event, fetched unless it was already.
    pub async fn enrichment(
        &self,
        ctx: &WorkerContext,
        claimed: &Claimed,
    ) -> Result<Enrichment, Unavailable> {
        if let Some(kept) = &claimed.enrichment {
            return Ok(kept.clone());
        }
        let event = &claimed.delivery.event_id;
        let fetch: Fetch = {
            let mut under_way = self.under_way.lock().unwrap_or_else(|e| e.into_inner());
            under_way.entry(event.clone()).or_default().clone()
        };
        let result = fetch
            .get_or_init(|| fetch_and_keep(ctx, claimed))
            .await
            .clone();
        let mut under_way = self.under_way.lock().unwrap_or_else(|e| e.into_inner());
        if under_way
            .get(event)
            .is_some_and(|current| Arc::ptr_eq(current, &fetch))
        {
            under_way.remove(event);
        }
        result
    }
}

/// Reads what was kept for the event (another process, or an earlier attempt, may have
/// fetched it since this one was claimed), else fetches and keeps it.
async fn fetch_and_keep(ctx: &WorkerContext, claimed: &Claimed) -> Result<Enrichment, Unavailable> {
    let team = &claimed.delivery.team_id;
    let event = &claimed.delivery.event_id;
    if let Some(kept) = event_objects::get(&ctx.pool, team, event)
        .await
        .map_err(database)?
    {
        return Ok(kept);
    }
    let envelope: Value = serde_json::from_slice(&claimed.body).unwrap_or_default();
    let found = match target(&envelope) {
        Target::Deleted => Enrichment {
            object: None,
            note: Some("a deleted object: nothing to fetch".to_owned()),
        },
        Target::Unknown => Enrichment {
            object: None,
            note: Some("the event names no object Switchyard can fetch".to_owned()),
        },
        Target::Fetch(path) => fetch(ctx, team, &envelope, &path).await?,
    };
    event_objects::keep(&ctx.pool, team, event, &found)
        .await
        .map_err(database)
}

/// A database that could not answer: the delivery is tried again later.
fn database(e: StoreError) -> Unavailable {
    Unavailable::Later {
        reason: format!("enrichment: the database: {e}"),
        retry_after: None,
    }
}

async fn fetch(
    ctx: &WorkerContext,
    team: &TeamId,
    envelope: &Value,
    path: &str,
) -> Result<Enrichment, Unavailable> {
    let workspace = envelope
        .pointer("/data/workspace_id")
        .and_then(Value::as_str);
    let key = TeamKey::find(&ctx.pool, &ctx.key, team, workspace)
        .await
        .map_err(database)?;
    let Some(key) = key else {
        let reason = "enrichment: the team has no Anthropic API key; add one in Settings";
        key_alert(ctx, team, None, reason).await;
        return Err(Unavailable::Never(reason.to_owned()));
    };
    match key.get(&ctx.anthropic, &ctx.pool, team, path).await {
        Ok(object) => Ok(Enrichment {
            object: Some(object),
            note: None,
        }),
        Err(ApiError::NotFound) => Ok(Enrichment {
            object: None,
            note: Some(ApiError::NotFound.to_string()),
        }),
        Err(ApiError::Transient {
            reason,
            retry_after,
        }) => Err(Unavailable::Later {
            reason: format!("enrichment: {reason}"),
            retry_after,
        }),
        Err(ApiError::Key(reason)) => {
            let reason = format!("enrichment: the Anthropic API key was refused: {reason}");
            let workspace = (!key.workspace.is_empty()).then_some(key.workspace.as_str());
            key_alert(ctx, team, workspace, &reason).await;
            Err(Unavailable::Never(reason))
        }
        Err(ApiError::Other(reason)) => Err(Unavailable::Never(format!("enrichment: {reason}"))),
    }
}

/// Tells the team, once, that its key (or a workspace's) does not work.
pub(crate) async fn key_alert(
    ctx: &WorkerContext,
    team: &TeamId,
    workspace: Option<&str>,
    reason: &str,
) {
    let task = AlertTask {
        team_id: team.clone(),
        destination_id: None,
        alert: Alert::AnthropicKey {
            workspace: workspace.map(str::to_owned),
            reason: reason.to_owned(),
        },
    };
    let subject = workspace.unwrap_or("team");
    let raised = async {
        let mut tx = ctx.pool.begin().await?;
        alerts::raise(&mut tx, AlertKind::AnthropicKey, subject, &task, Utc::now()).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(())
    };
    if let Err(e) = raised.await {
        tracing::warn!(error = %e, "could not raise the Anthropic key alert");
    }
}
