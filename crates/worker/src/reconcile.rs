//! Reconciliation passes. Anthropic drops a webhook after its third failed attempt and
//! never backfills, so a reconciling source's passes list its sessions (created within
//! the lookback, archived ones too, every page; spec §1.8) plus the older ones it still
//! watches, compare each one's status with the latest status the source knows, and
//! synthesize the webhook that would have announced a difference. The synthesized event
//! goes through the source's routes like a received one; the store's row lock on the
//! session keeps a real copy arriving at the same time from delivering it twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use switchyard_domain::StoreError;
use switchyard_domain::ids::EventId;
use switchyard_domain::model::reconcile::{SYNTHESIZED_HEADER, UNCHANGED_FOR};
use switchyard_domain::model::{NewEvent, SessionStatus, StatusChange};
use switchyard_domain::providers::{DedupKey, DedupKind};
use switchyard_domain::routing::{CompiledRoute, EventFacts, RoutedEvent, pipeline};
use switchyard_domain::store::reconcile::{self, DuePass, PassReport, Synthesis, Watched};
use switchyard_domain::store::sources::{self, IngestConfig};
use switchyard_send::anthropic::{self, ApiError, ListPage, TeamKey};

use crate::WorkerContext;

/// Takes due passes, one at a time, every `every`; each makes at most `calls` API calls.
pub async fn run(context: Arc<WorkerContext>, every: Duration, calls: u32) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            match reconcile::claim_due(&context.pool, Utc::now()).await {
                Ok(Some(due)) => pass(&context, &due, calls).await,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "reconciliation: no pass taken");
                    break;
                }
            }
        }
    }
}

/// Runs one pass and records how it went.
async fn pass(ctx: &WorkerContext, due: &DuePass, calls: u32) {
    let started = Utc::now();
    let mut report = PassReport {
        started_at: Some(started),
        ..PassReport::default()
    };
    match run_pass(ctx, due, started, calls, &mut report).await {
        Ok(()) => {}
        Err(Stop::CutShort(reason)) => report.cut_short = Some(reason),
        Err(Stop::Failed(reason)) => {
            report.error = Some(reason);
            // A cursor Anthropic refused must not be tried again.
            report.resume_page = None;
        }
        // Only a single session answers 404, and that is handled where it is asked.
        Err(Stop::NotFound) => report.error = Some(ApiError::NotFound.to_string()),
    }
    let result = match (&report.error, &report.cut_short) {
        (Some(_), _) => "failed",
        (None, Some(_)) => "cut_short",
        (None, None) => "complete",
    };
    metrics::counter!("switchyard_reconcile_passes_total", "result" => result).increment(1);
    metrics::counter!("switchyard_reconcile_synthesized_total")
        .increment(u64::try_from(report.events_synthesized).unwrap_or(0));
    tracing::info!(
        source = %due.source_id,
        checked = report.sessions_checked,
        synthesized = report.events_synthesized,
        calls = report.api_calls,
        cut_short = report.cut_short.as_deref(),
        error = report.error.as_deref(),
        "reconciliation pass"
    );
    if let Err(e) = reconcile::finish(&ctx.pool, due, &report, Utc::now()).await {
        tracing::warn!(source = %due.source_id, error = %e, "reconciliation pass not recorded");
    }
}

/// Why a pass stopped early.
enum Stop {
    /// The call budget ran out, or Anthropic asked to slow down: the next pass goes on.
    CutShort(String),
    /// The pass cannot run: no key, a refused key, an answer that makes no sense.
    Failed(String),
    /// The object asked for is gone.
    NotFound,
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Failed(format!("the database: {e}"))
    }
}

async fn run_pass(
    ctx: &WorkerContext,
    due: &DuePass,
    started: DateTime<Utc>,
    calls: u32,
    report: &mut PassReport,
) -> Result<(), Stop> {
    let since = started - chrono::Duration::seconds(i64::from(due.lookback_s));
    // A pass stops well before another worker may take the source again.
    let deadline = started + reconcile::PASS_LEASE - chrono::Duration::minutes(1);
    if !due.seeded {
        reconcile::seed(&ctx.pool, due, since).await?;
    }
    let (organization, workspace) = reconcile::origin(&ctx.pool, &due.source_id).await?;
    let Some(key) = TeamKey::find(&ctx.pool, &ctx.key, &due.team_id, workspace.as_deref()).await?
    else {
        let reason = "reconciliation: the team has no Anthropic API key";
        crate::enrich::key_alert(ctx, &due.team_id, None, reason).await;
        return Err(Stop::Failed(format!(
            "{reason}; store one in Settings → Anthropic API"
        )));
    };
    let config = {
        let mut conn = ctx.pool.acquire().await.map_err(StoreError::from)?;
        sources::ingest_config_of(&mut conn, &due.team_id, &due.source_id).await?
    };
    let mut pass = Pass {
        ctx,
        due,
        routes: config.compiled_routes(),
        config,
        key,
        organization,
        workspace,
        calls,
        deadline,
        report,
    };

    let mut listed: HashSet<String> = HashSet::new();
    // Where the last pass ran out of calls, if it did; a pass cut short while listing
    // leaves the page it was on for the next.
    let mut page: Option<String> = due.resume_page.clone();
    loop {
        pass.report.resume_page = page.clone();
        let path = anthropic::sessions_path(since, page.as_deref());
        let answer =
            ListPage::of(pass.call(&path).await?).map_err(|e| Stop::Failed(e.to_string()))?;
        let ids: Vec<&str> = answer.data.iter().filter_map(session_id).collect();
        let known = reconcile::known(&ctx.pool, &due.source_id, &ids).await?;
        for session in &answer.data {
            let Some(id) = session_id(session) else {
                continue;
            };
            pass.check(session, known.get(id)).await?;
            listed.insert(id.to_owned());
        }
        match answer.next_page {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    pass.report.resume_page = None;

    // Sessions created before the lookback that the source still watches.
    let watched = reconcile::watched(&ctx.pool, &due.source_id, started - UNCHANGED_FOR).await?;
    for known in watched.iter().filter(|w| !listed.contains(&w.session_id)) {
        let Some(path) = anthropic::session_path(&known.session_id) else {
            continue;
        };
        match pass.call(&path).await {
            Ok(session) => pass.check(&session, Some(known)).await?,
            Err(Stop::NotFound) => {
                reconcile::gone(&ctx.pool, &due.source_id, &known.session_id).await?;
            }
            Err(stop) => return Err(stop),
        }
    }
    Ok(())
}

fn session_id(session: &Value) -> Option<&str> {
    session.get("id").and_then(Value::as_str)
}

fn time(object: &Value, field: &str) -> Option<DateTime<Utc>> {
    let text = object.get(field)?.as_str()?;
    Some(DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc))
}

/// One pass under way.
struct Pass<'a> {
    ctx: &'a WorkerContext,
    due: &'a DuePass,
    config: IngestConfig,
    routes: Vec<CompiledRoute>,
    key: TeamKey,
    organization: Option<String>,
    workspace: Option<String>,
    /// The most API calls the pass may make.
    calls: u32,
    /// When the pass stops, whatever is left.
    deadline: DateTime<Utc>,
    report: &'a mut PassReport,
}

impl Pass<'_> {
    /// One API call, within the pass's budget.
    async fn call(&mut self, path: &str) -> Result<Value, Stop> {
        if self.report.api_calls >= i32::try_from(self.calls).unwrap_or(i32::MAX) {
            return Err(Stop::CutShort(format!(
                "stopped after {} API calls; the next pass goes on",
                self.calls
            )));
        }
        if Utc::now() > self.deadline {
            return Err(Stop::CutShort(
                "stopped after running for its time; the next pass goes on".to_owned(),
            ));
        }
        self.report.api_calls += 1;
        let answer = self
            .key
            .get(&self.ctx.anthropic, &self.ctx.pool, &self.due.team_id, path)
            .await;
        match answer {
            Ok(answer) => Ok(answer),
            Err(ApiError::NotFound) => Err(Stop::NotFound),
            Err(ApiError::Transient { reason, .. }) => Err(Stop::CutShort(reason)),
            Err(ApiError::Key(reason)) => {
                let reason = format!("reconciliation: the Anthropic API key was refused: {reason}");
                let workspace =
                    (!self.key.workspace.is_empty()).then_some(self.key.workspace.as_str());
                crate::enrich::key_alert(self.ctx, &self.due.team_id, workspace, &reason).await;
                Err(Stop::Failed(reason))
            }
            Err(ApiError::Other(reason)) => Err(Stop::Failed(reason)),
        }
    }

    /// Compares a listed session's status with what the source knows, and synthesizes
    /// the webhook for a difference.
    async fn check(&mut self, session: &Value, known: Option<&Watched>) -> Result<(), Stop> {
        let (Some(id), Some(status)) = (
            // An id ingest would not note either (it could never match its real copy).
            session_id(session).filter(|id| anthropic::session_path(id).is_some()),
            session
                .get("status")
                .and_then(Value::as_str)
                .and_then(SessionStatus::listed),
        ) else {
            return Ok(());
        };
        self.report.sessions_checked += 1;
        if known.is_some_and(|w| w.status_type == status.webhook) {
            return Ok(());
        }
        let at = self.changed_at(id, status, session).await?;
        // A webhook newer than the listing already told the source; a change from
        // before the source existed was never sent to it.
        if known.is_some_and(|w| w.status_at >= at) || at < self.due.source_created_at {
            return Ok(());
        }
        let change = StatusChange {
            session_id: id.to_owned(),
            event_type: status.webhook.to_owned(),
            at,
            organization_id: known
                .and_then(|w| w.organization_id.clone())
                .or_else(|| self.organization.clone()),
            workspace_id: known
                .and_then(|w| w.workspace_id.clone())
                .or_else(|| self.workspace.clone()),
        };
        let event = self.synthesized(&change);
        let made = reconcile::synthesize(&self.ctx.pool, &event, &change, Utc::now()).await?;
        if let Synthesis::Made(id) = made {
            tracing::info!(source = %self.due.source_id, event = %id, session = %change.session_id,
                           kind = %change.event_type, "synthesized a dropped status event");
            self.report.events_synthesized += 1;
        }
        Ok(())
    }

    /// Anthropic's time for the session's change to `status`: its latest session event
    /// of that status, else the session's `updated_at`.
    async fn changed_at(
        &mut self,
        id: &str,
        status: SessionStatus,
        session: &Value,
    ) -> Result<DateTime<Utc>, Stop> {
        if let Some(path) = anthropic::latest_event_path(id, status.session_event) {
            match self.call(&path).await {
                Ok(answer) => {
                    let latest = ListPage::of(answer).ok().and_then(|p| {
                        let event = p.data.first()?;
                        time(event, "processed_at").or_else(|| time(event, "created_at"))
                    });
                    if let Some(at) = latest {
                        return Ok(at);
                    }
                }
                Err(Stop::NotFound) => {}
                Err(stop) => return Err(stop),
            }
        }
        Ok(time(session, "updated_at").unwrap_or_else(Utc::now))
    }

    /// The webhook Anthropic would have sent for `change`, routed by the source's routes
    /// as ingest would route it.
    fn synthesized(&self, change: &StatusChange) -> NewEvent {
        let id = EventId::generate();
        let mut data = Map::new();
        data.insert("type".into(), json!(change.event_type));
        data.insert("id".into(), json!(change.session_id));
        if let Some(organization) = &change.organization_id {
            data.insert("organization_id".into(), json!(organization));
        }
        if let Some(workspace) = &change.workspace_id {
            data.insert("workspace_id".into(), json!(workspace));
        }
        let envelope = json!({
            "type": "event",
            "id": id.as_str(),
            "created_at": change.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "data": data,
        });
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        let headers = json!({"content-type": "application/json", SYNTHESIZED_HEADER: "true"});
        let now = Utc::now();
        // The same transition synthesized twice (two passes racing) dedups.
        let dedup_key = DedupKey {
            value: format!(
                "synthesized:{}:{}:{}",
                change.session_id,
                change.event_type,
                change.at.timestamp_millis()
            ),
            kind: DedupKind::ProviderId,
        };
        let source = &self.config.source;
        let deliveries = {
            let facts = EventFacts {
                id: id.as_str(),
                event_type: Some(&change.event_type),
                headers: &headers,
                body: &body,
                received_at: now,
                dedup_key: &dedup_key.value,
                source_name: &source.name,
                source_provider: source.provider.as_str(),
                team_slug: &self.config.team_slug,
            };
            let event = RoutedEvent::new(facts, &self.ctx.public_base).with_payload(Some(envelope));
            pipeline::plan(&self.routes, &event)
        };
        NewEvent {
            id,
            team_id: source.team_id.clone(),
            source_id: source.id.clone(),
            event_type: Some(change.event_type.clone()),
            dedup_until: now + chrono::Duration::days(i64::from(self.config.retention_days)),
            dedup_key,
            headers,
            body,
            received_at: now,
            deliveries,
            status: None,
            synthesized: true,
        }
    }
}
