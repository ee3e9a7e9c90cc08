//! The Managed Agents API as Switchyard calls it, with a team's API key: the object a
//! thin event names (enrichment) and a cheap call that checks a key. Every call goes out
//! through the SSRF-guarded client; objects are kept as the raw JSON Anthropic answered,
//! so a field it adds or drops changes nothing here.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use switchyard_domain::StoreError;
use switchyard_domain::delivery::Outcome;
use switchyard_domain::ids::TeamId;
use switchyard_domain::netguard::Policy;
use switchyard_domain::secrets::SecretKey;
use switchyard_domain::store::anthropic_keys;

use crate::Outbound;
use crate::request::ANTHROPIC_VERSION;

/// The beta the Managed Agents endpoints are served under.
pub const MANAGED_AGENTS_BETA: &str = "managed-agents-2026-04-01";

/// The Anthropic API at `base` (`SWITCHYARD_ANTHROPIC_API_URL`).
#[derive(Clone)]
pub struct AnthropicApi {
    outbound: Outbound,
    base: String,
}

/// Why a call brought no object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 404: Anthropic no longer has it.
    NotFound,
    /// 401 or 403: the key is wrong, revoked, or may not read this.
    Key(String),
    /// A 429, a 5xx, a timeout or a connection that failed: worth trying again later.
    Transient {
        reason: String,
        retry_after: Option<DateTime<Utc>>,
    },
    /// Any other answer, or one that is not a JSON object.
    Other(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::NotFound => f.write_str("Anthropic answered 404: it no longer exists"),
            ApiError::Key(reason) | ApiError::Other(reason) => f.write_str(reason),
            ApiError::Transient { reason, .. } => f.write_str(reason),
        }
    }
}

/// The most one call may take; a slower one is tried again later.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The most of one answer that is read: a page of sessions, each with its agent's
/// configuration, is far larger than a destination's answer worth keeping.
const ANSWER_CAP: usize = 4 * 1024 * 1024;

impl AnthropicApi {
    /// The API at `base`, called through a client of its own under `policy`.
    pub fn connect(policy: Policy, base: &str) -> Result<AnthropicApi, reqwest::Error> {
        Ok(AnthropicApi {
            outbound: Outbound::new(policy, TIMEOUT)?.reading_up_to(ANSWER_CAP),
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET {base}{path}` with the key and the headers every Managed Agents call carries;
    /// the answer's JSON object.
    pub async fn get(&self, api_key: &str, path: &str) -> Result<Value, ApiError> {
        let headers = vec![
            ("x-api-key".to_owned(), api_key.to_owned()),
            ("anthropic-version".to_owned(), ANTHROPIC_VERSION.to_owned()),
            ("anthropic-beta".to_owned(), MANAGED_AGENTS_BETA.to_owned()),
            ("accept".to_owned(), "application/json".to_owned()),
        ];
        let url = format!("{}{path}", self.base);
        let sent = self
            .outbound
            .send(reqwest::Method::GET, &url, headers, Vec::new())
            .await;
        let excerpt = sent.excerpt.unwrap_or_default();
        let (status, retry_after) = match sent.outcome {
            Outcome::Response {
                status,
                retry_after,
            } => (status, retry_after),
            _ => {
                let error = sent.error.unwrap_or_else(|| "no answer".to_owned());
                return Err(ApiError::Transient {
                    reason: format!("the Anthropic API did not answer: {error}"),
                    retry_after: None,
                });
            }
        };
        let answer: Value = serde_json::from_str(&excerpt).unwrap_or_default();
        match status {
            200..=299 if answer.is_object() => Ok(answer),
            200..=299 => Err(ApiError::Other(format!(
                "the Anthropic API answered {status} without a JSON object"
            ))),
            404 => Err(ApiError::NotFound),
            401 | 403 => Err(ApiError::Key(described(status, &answer))),
            429 | 500..=599 => Err(ApiError::Transient {
                reason: described(status, &answer),
                retry_after,
            }),
            _ => Err(ApiError::Other(described(status, &answer))),
        }
    }
}

/// A team's key, opened for a call, and the workspace it was stored for (`""`: the
/// team's own).
pub struct TeamKey {
    pub workspace: String,
    key: String,
}

impl std::fmt::Debug for TeamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TeamKey({:?}, ..)", self.workspace)
    }
}

impl TeamKey {
    /// The key for calls about an event of `workspace`: that workspace's, else the
    /// team's own; `None` when the team has neither.
    pub async fn find(
        pool: &PgPool,
        secrets: &SecretKey,
        team: &TeamId,
        workspace: Option<&str>,
    ) -> Result<Option<TeamKey>, StoreError> {
        let Some((workspace, sealed)) = anthropic_keys::sealed_for(pool, team, workspace).await?
        else {
            return Ok(None);
        };
        TeamKey::open(secrets, workspace, &sealed).map(Some)
    }

    /// The key stored for `workspace` exactly (`""`: the team's own), as a check calls
    /// with it.
    pub async fn stored(
        pool: &PgPool,
        secrets: &SecretKey,
        team: &TeamId,
        workspace: &str,
    ) -> Result<Option<TeamKey>, StoreError> {
        match anthropic_keys::sealed(pool, team, workspace).await? {
            Some(sealed) => TeamKey::open(secrets, workspace.to_owned(), &sealed).map(Some),
            None => Ok(None),
        }
    }

    fn open(secrets: &SecretKey, workspace: String, sealed: &[u8]) -> Result<TeamKey, StoreError> {
        let key = String::from_utf8(secrets.open(sealed)?)
            .map_err(|_| StoreError::Internal("a stored Anthropic key is not text".into()))?;
        Ok(TeamKey { workspace, key })
    }

    /// Calls `path` with this key, and records on the key how the call went.
    pub async fn get(
        &self,
        api: &AnthropicApi,
        pool: &PgPool,
        team: &TeamId,
        path: &str,
    ) -> Result<Value, ApiError> {
        let answer = api.get(&self.key, path).await;
        let error = match &answer {
            Ok(_) | Err(ApiError::NotFound) => None,
            Err(e) => Some(e.to_string()),
        };
        let recorded =
            anthropic_keys::record_use(pool, team, &self.workspace, error.as_deref(), Utc::now())
                .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record the Anthropic key's use");
        }
        answer
    }

    /// One cheap authenticated call (a one-session list), recorded like any other.
    pub async fn check(
        &self,
        api: &AnthropicApi,
        pool: &PgPool,
        team: &TeamId,
    ) -> Result<(), ApiError> {
        self.get(api, pool, team, CHECK_PATH).await.map(|_| ())
    }
}

/// One page of a list (spec §1.8): its items, and the cursor of the next page when
/// there is one (there is no `has_more`).
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub data: Vec<Value>,
    pub next_page: Option<String>,
}

impl ListPage {
    /// A list answer's page; an answer without a `data` array is not one.
    pub fn of(answer: Value) -> Result<ListPage, ApiError> {
        let Value::Object(mut answer) = answer else {
            return Err(ApiError::Other(
                "a list answer that is not an object".into(),
            ));
        };
        let Some(Value::Array(data)) = answer.remove("data") else {
            return Err(ApiError::Other(
                "the Anthropic API answered a list without its data".into(),
            ));
        };
        let next_page = answer
            .remove("next_page")
            .and_then(|p| p.as_str().map(str::to_owned))
            .filter(|p| !p.is_empty());
        Ok(ListPage { data, next_page })
    }
}

/// How many sessions one list page asks for.
const SESSIONS_PER_PAGE: u32 = 50;

/// `GET /v1/sessions`: the sessions created since `since`, archived ones too, oldest
/// first, from the page `page` names.
pub fn sessions_path(since: DateTime<Utc>, page: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("include_archived", "true")
        .append_pair("order", "asc")
        .append_pair("limit", &SESSIONS_PER_PAGE.to_string())
        .append_pair(
            "created_at[gte]",
            &since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    if let Some(page) = page {
        query.append_pair("page", page);
    }
    format!("/v1/sessions?{}", query.finish())
}

/// `GET /v1/sessions/{id}`, for a session id safe in a path.
pub fn session_path(session: &str) -> Option<String> {
    is_id(session).then(|| format!("/v1/sessions/{session}"))
}

/// `GET /v1/sessions/{id}/events`: the session's latest event of type `kind`.
pub fn latest_event_path(session: &str, kind: &str) -> Option<String> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("types[]", kind)
        .append_pair("order", "desc")
        .append_pair("limit", "1");
    is_id(session).then(|| format!("/v1/sessions/{session}/events?{}", query.finish()))
}

/// What a check calls: cheap, authenticated, and under the Managed Agents beta.
const CHECK_PATH: &str = "/v1/sessions?limit=1";

/// An error answer as people read it: `HTTP 429 rate_limit_error: …`.
fn described(status: u16, answer: &Value) -> String {
    let error = answer.get("error");
    let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
    match (kind, message) {
        (Some(kind), Some(message)) => {
            format!("Anthropic answered HTTP {status} {kind}: {message}")
        }
        (Some(kind), None) => format!("Anthropic answered HTTP {status} {kind}"),
        _ => format!("Anthropic answered HTTP {status}"),
    }
}

/// What enrichment fetches for an event, by its `data.type` (spec §1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The path of the object to fetch.
    Fetch(String),
    /// Nothing is left to fetch: the event says it was deleted.
    Deleted,
    /// A type Switchyard does not know how to fetch, or ids that are not ids.
    Unknown,
}

/// The object a thin Anthropic event names, from its envelope.
pub fn target(envelope: &Value) -> Target {
    let data = envelope.get("data");
    let field = |name: &str| {
        data.and_then(|d| d.get(name))
            .and_then(Value::as_str)
            .filter(|v| is_id(v))
    };
    let Some(kind) = data.and_then(|d| d.get("type")).and_then(Value::as_str) else {
        return Target::Unknown;
    };
    if kind.ends_with(".deleted") {
        return Target::Deleted;
    }
    let Some(id) = field("id") else {
        return Target::Unknown;
    };
    let (family, _) = kind.split_once('.').unwrap_or((kind, ""));
    let path = match family {
        "session" if kind.starts_with("session.thread_") => match field("session_thread_id") {
            Some(thread) => format!("/v1/sessions/{id}/threads/{thread}"),
            None => return Target::Unknown,
        },
        "session" => format!("/v1/sessions/{id}"),
        "vault_credential" => match field("vault_id") {
            Some(vault) => format!("/v1/vaults/{vault}/credentials/{id}"),
            None => return Target::Unknown,
        },
        "vault" => format!("/v1/vaults/{id}"),
        "agent" => format!("/v1/agents/{id}"),
        "deployment" => format!("/v1/deployments/{id}"),
        "deployment_run" => format!("/v1/deployment_runs/{id}"),
        "environment" => format!("/v1/environments/{id}"),
        "memory_store" => format!("/v1/memory_stores/{id}"),
        _ => return Target::Unknown,
    };
    Target::Fetch(path)
}

/// An id safe to put in a path: what Anthropic's ids are made of, nothing that could
/// climb out of the segment.
fn is_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(data: Value) -> Value {
        json!({"type": "event", "id": "whe_1", "data": data})
    }

    #[test]
    fn each_family_names_its_object() {
        let cases = [
            (
                json!({"type": "session.status_idled", "id": "sesn_1"}),
                "/v1/sessions/sesn_1",
            ),
            (
                json!({"type": "session.thread_idled", "id": "sesn_1", "session_thread_id": "sthr_2"}),
                "/v1/sessions/sesn_1/threads/sthr_2",
            ),
            (
                json!({"type": "vault_credential.refresh_failed", "id": "vcrd_1", "vault_id": "vlt_2"}),
                "/v1/vaults/vlt_2/credentials/vcrd_1",
            ),
            (
                json!({"type": "vault.created", "id": "vlt_2"}),
                "/v1/vaults/vlt_2",
            ),
            (
                json!({"type": "agent.updated", "id": "agent_1"}),
                "/v1/agents/agent_1",
            ),
            (
                json!({"type": "deployment.paused", "id": "dep_1"}),
                "/v1/deployments/dep_1",
            ),
            (
                json!({"type": "deployment_run.failed", "id": "drun_1"}),
                "/v1/deployment_runs/drun_1",
            ),
            (
                json!({"type": "environment.updated", "id": "env_1"}),
                "/v1/environments/env_1",
            ),
            (
                json!({"type": "memory_store.created", "id": "mem_1"}),
                "/v1/memory_stores/mem_1",
            ),
        ];
        for (data, path) in cases {
            assert_eq!(target(&event(data)), Target::Fetch(path.to_owned()));
        }
    }

    #[test]
    fn deleted_unknown_and_unsafe_ids_fetch_nothing() {
        let deleted = event(json!({"type": "session.deleted", "id": "sesn_1"}));
        assert_eq!(target(&deleted), Target::Deleted);
        let unknown = event(json!({"type": "billing.updated", "id": "x_1"}));
        assert_eq!(target(&unknown), Target::Unknown);
        let climbing = event(json!({"type": "session.updated", "id": "../admin"}));
        assert_eq!(target(&climbing), Target::Unknown);
        let no_vault = event(json!({"type": "vault_credential.created", "id": "vcrd_1"}));
        assert_eq!(target(&no_vault), Target::Unknown);
        assert_eq!(target(&json!({"data": "nope"})), Target::Unknown);
    }
}
