//! The team's connection to the Anthropic API: its API keys (the team's own, and one per
//! Anthropic workspace its events come from), sealed like every secret and shown only
//! by their last four characters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AppError, Invalid, Scope};
use crate::store::alerts::{self, AlertKind};
use crate::store::anthropic_keys::{self, KeyInfo};

/// A key to store.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAnthropicKey {
    /// An Anthropic API key, `sk-ant-api…`.
    #[serde(default)]
    #[schema(pattern = "^sk-ant-api[A-Za-z0-9_-]{10,250}$")]
    pub api_key: String,
    /// The Anthropic workspace whose events this key serves (`wrkspc_…`); without it,
    /// the team's own key, used for every other workspace.
    #[schema(pattern = "^wrkspc_[A-Za-z0-9]{1,64}$")]
    pub workspace_id: Option<String>,
}

/// What the team's Anthropic connection looks like.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnthropicStatus {
    /// Whether the team has a key of its own.
    pub configured: bool,
    pub key_last4: Option<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Why the last call with the team's key failed, if it did.
    pub last_error: Option<String>,
    /// The keys kept for particular workspaces.
    pub workspaces: Vec<WorkspaceKey>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkspaceKey {
    pub workspace_id: String,
    pub key_last4: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Stores a key, replacing the one it stands for.
pub async fn put_key(scope: Scope<'_>, cmd: PutAnthropicKey) -> Result<AnthropicStatus, AppError> {
    let mut invalid = Invalid::default();
    let key = cmd.api_key.trim();
    let well_formed = key.starts_with("sk-ant-api")
        && (20..=260).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !well_formed {
        invalid.add(
            "api_key",
            "an Anthropic API key starts with sk-ant-api (create one in the Claude Console under API keys)",
        );
    }
    let workspace = cmd.workspace_id.unwrap_or_default();
    let workspace_ok = workspace.is_empty()
        || workspace.strip_prefix("wrkspc_").is_some_and(|rest| {
            (1..=64).contains(&rest.len()) && rest.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if !workspace_ok {
        invalid.add("workspace_id", "a workspace id looks like wrkspc_01…");
    }
    invalid.finish()?;
    let last4: String = key[key.len() - 4..].to_owned();
    let mut tx = scope.pool.begin().await?;
    anthropic_keys::put(
        &mut *tx,
        scope.team,
        &workspace,
        &scope.key.seal(key.as_bytes()),
        &last4,
        Utc::now(),
    )
    .await?;
    let target = match workspace.as_str() {
        "" => "team".to_owned(),
        w => w.to_owned(),
    };
    scope
        .audit(&mut *tx, "integration.anthropic.put", &target)
        .await?;
    // A new key gets a new chance: if it fails too, the team hears of it again.
    alerts::forget(&mut *tx, scope.team, AlertKind::AnthropicKey, &target).await?;
    tx.commit().await?;
    status(scope).await
}

/// The team's connection as it may be shown.
pub async fn status(scope: Scope<'_>) -> Result<AnthropicStatus, AppError> {
    let keys = anthropic_keys::list(scope.pool, scope.team).await?;
    let own: Option<&KeyInfo> = keys.iter().find(|k| k.workspace_id.is_empty());
    Ok(AnthropicStatus {
        configured: own.is_some(),
        key_last4: own.map(|k| k.key_last4.clone()),
        last_used_at: own.and_then(|k| k.last_used_at),
        last_error: own.and_then(|k| k.last_error.clone()),
        workspaces: keys
            .iter()
            .filter(|k| !k.workspace_id.is_empty())
            .map(|k| WorkspaceKey {
                workspace_id: k.workspace_id.clone(),
                key_last4: k.key_last4.clone(),
                last_used_at: k.last_used_at,
                last_error: k.last_error.clone(),
            })
            .collect(),
    })
}

/// Removes the team's key, or a workspace's.
pub async fn delete_key(scope: Scope<'_>, workspace: Option<&str>) -> Result<(), AppError> {
    let workspace = workspace.unwrap_or_default();
    let mut tx = scope.pool.begin().await?;
    if !anthropic_keys::delete(&mut *tx, scope.team, workspace).await? {
        return Err(AppError::NotFound("Anthropic API key"));
    }
    let target = match workspace {
        "" => "team",
        w => w,
    };
    scope
        .audit(&mut *tx, "integration.anthropic.delete", target)
        .await?;
    tx.commit().await?;
    Ok(())
}
