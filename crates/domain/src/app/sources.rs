//! Sources: where webhooks come in. Creating one checks its name, provider, secret and
//! settings together; updating applies only the fields sent (a value sets, `""` clears,
//! absence keeps); secrets rotate by adding a second and retiring the first. A test event
//! goes through a source's routes as the sender's would.

use serde::Deserialize;
use sqlx::PgConnection;

use super::error::missing;
use super::{AppError, Invalid, NothingElse, Scope};
use crate::StoreError;
use chrono::Utc;

use crate::delivery::DestinationKind;
use crate::ids::{EventId, SecretId, SourceId};
use crate::model::{Name, NewEvent, Source};
use crate::providers::samples;
use crate::providers::{
    DedupKey, DedupKind, HmacScheme, ProviderKind, ProviderSettings, event_type_of,
};
use crate::routing::{EventFacts, RoutedEvent};
use crate::secrets::random_token;
use crate::store::events;
use crate::store::queue::notify_deliveries;
use crate::store::reconcile;
use crate::store::sources::{self, NewSource, Reconciling, SecretInfo, SourcePatch};

pub const DEFAULT_BODY_LIMIT: i32 = 1024 * 1024;
pub const MAX_BODY_LIMIT: i32 = 10 * 1024 * 1024;

/// A new source.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct CreateSource {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// `anthropic`, `standard_webhooks`, `github`, `stripe`, `slack`, `shopify`, `linear`,
    /// `sentry`, `zendesk`, `intercom`, `pagerduty`, `jira`, `gitlab`, `twilio`, `hmac`,
    /// `basic_auth`, `api_key` or `none`.
    #[serde(default)]
    #[schema(value_type = ProviderKind)]
    pub provider: String,
    /// The sender's signing secret (`whsec_…` for Standard Webhooks and Anthropic). May
    /// come later (`POST /sources/{id}/secrets`) for `anthropic`, `standard_webhooks`,
    /// `stripe`, `linear`, `zendesk` and `pagerduty`, whose consoles show it only once
    /// the ingest URL is saved; until then the source refuses every request.
    pub secret: Option<String>,
    #[serde(flatten)]
    pub settings: SettingsInput,
    #[serde(flatten)]
    #[schema(ignore)]
    pub nothing_else: NothingElse,
}

/// Changes to a source: only the fields sent.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct UpdateSource {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[serde(flatten)]
    pub settings: SettingsInput,
    #[serde(flatten)]
    #[schema(ignore)]
    pub nothing_else: NothingElse,
}

/// How a source reads what it receives, as a command sets it: a value sets, `""`
/// clears, absence keeps.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct SettingsInput {
    /// Largest body accepted, in bytes (1 KiB to 10 MiB; default 1 MiB).
    pub body_limit: Option<i32>,
    /// Email the team's admins when the source, having received events, gets none for
    /// this many minutes (1 to 10080), and again when events flow; 0 turns it off.
    pub quiet_after_minutes: Option<i32>,
    /// Anthropic: every `reconcile_interval_s`, list the sessions and synthesize the
    /// status events whose webhooks never came (needs the team's Anthropic API key).
    pub reconcile: Option<bool>,
    /// Seconds between reconciliation passes (60 to 86400; default 300).
    pub reconcile_interval_s: Option<i32>,
    /// How far back a pass lists sessions by their creation, in seconds (3600 to 604800;
    /// default 86400).
    pub reconcile_lookback_s: Option<i32>,
    /// Header whose value is the dedup key, instead of the provider's ("" clears).
    pub dedup_header: Option<String>,
    /// JSON pointer into the body (`/data/id`) whose value is the dedup key ("" clears).
    pub dedup_pointer: Option<String>,
    /// Header whose value is the event type, instead of the provider's ("" clears).
    pub event_type_header: Option<String>,
    /// JSON pointer into the body whose value is the event type ("" clears).
    pub event_type_pointer: Option<String>,
    /// `api_key`: the header carrying the key (default `x-api-key`; "" clears).
    pub api_key_header: Option<String>,
    /// GitHub: accept the legacy sha1 signature when no sha256 one is sent.
    pub allow_sha1: Option<bool>,
    /// `hmac` (required there, refused elsewhere): how the sender signs; replaces the
    /// whole scheme.
    pub hmac: Option<HmacScheme>,
}

/// Validates and stores a new source.
pub async fn create(scope: Scope<'_>, cmd: CreateSource) -> Result<Source, AppError> {
    let mut tx = scope.pool.begin().await?;
    let source = create_on(&mut tx, scope, cmd).await?;
    tx.commit().await?;
    Ok(source)
}

/// What [`create`] would refuse of `cmd`, writing nothing.
pub async fn check_create(scope: Scope<'_>, cmd: CreateSource) -> Result<(), AppError> {
    super::dry_run(scope, async |tx| create_on(tx, scope, cmd).await).await
}

async fn create_on(
    tx: &mut PgConnection,
    scope: Scope<'_>,
    cmd: CreateSource,
) -> Result<Source, AppError> {
    let mut invalid = Invalid::default();
    let name = invalid.check("name", Name::parse(&cmd.name));
    let provider = invalid.check("provider", cmd.provider.parse::<ProviderKind>());
    let body_limit =
        check_body_limit(&mut invalid, cmd.settings.body_limit).unwrap_or(DEFAULT_BODY_LIMIT);
    let quiet_after = check_quiet_after(&mut invalid, cmd.settings.quiet_after_minutes).flatten();
    let reconciling = check_reconciling(&mut invalid, provider, None, &cmd.settings);
    let mut settings = ProviderSettings::default();
    apply_settings(&mut invalid, provider, &mut settings, cmd.settings);
    let sealed_secret = match (provider, cmd.secret.as_deref()) {
        (Some(p), None) if p.needs_secret() && !p.secret_follows_url() => {
            invalid.add(
                "secret",
                format!("the {p} provider needs the sender's signing secret"),
            );
            None
        }
        (Some(ProviderKind::None), Some(_)) => {
            invalid.add(
                "secret",
                "a none source verifies nothing and takes no secret",
            );
            None
        }
        (Some(p), Some(secret)) => invalid
            .check("secret", p.parse_secret(secret))
            .map(|key| scope.key.seal(&key)),
        _ => None,
    };
    invalid.finish()?;
    let (Some(name), Some(provider)) = (name, provider) else {
        return Err(StoreError::Internal("a checked source lost its name".into()).into());
    };

    let new = NewSource {
        name: name.as_str(),
        provider,
        settings: &settings,
        body_limit,
        quiet_after_minutes: quiet_after,
        reconciling: reconciling.unwrap_or(Reconciling::OFF),
        sealed_secret,
    };
    let source = sources::insert(tx, scope.team, new, &random_token(32)).await?;
    if source.reconcile {
        reconcile::schedule(&mut *tx, scope.team, &source.id).await?;
    }
    scope.audit(&mut *tx, "source.create", &source.name).await?;
    Ok(source)
}

/// Applies the fields sent.
pub async fn update(
    scope: Scope<'_>,
    id: &SourceId,
    cmd: UpdateSource,
) -> Result<Source, AppError> {
    let mut tx = scope.pool.begin().await?;
    let source = update_on(&mut tx, scope, id, cmd).await?;
    tx.commit().await?;
    Ok(source)
}

/// What [`update`] would refuse of `cmd`, writing nothing.
pub async fn check_update(
    scope: Scope<'_>,
    id: &SourceId,
    cmd: UpdateSource,
) -> Result<(), AppError> {
    super::dry_run(scope, async |tx| update_on(tx, scope, id, cmd).await).await
}

async fn update_on(
    tx: &mut PgConnection,
    scope: Scope<'_>,
    id: &SourceId,
    cmd: UpdateSource,
) -> Result<Source, AppError> {
    let mut invalid = Invalid::default();
    let name = cmd
        .name
        .as_deref()
        .and_then(|n| invalid.check("name", Name::parse(n)));
    let body_limit = check_body_limit(&mut invalid, cmd.settings.body_limit);
    let quiet_after = check_quiet_after(&mut invalid, cmd.settings.quiet_after_minutes);
    let current = sources::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("source"))?;
    let reconciling = check_reconciling(
        &mut invalid,
        Some(current.provider),
        Some(&current),
        &cmd.settings,
    );
    let mut settings = current.settings.0.clone();
    apply_settings(
        &mut invalid,
        Some(current.provider),
        &mut settings,
        cmd.settings,
    );
    invalid.finish()?;
    let patch = SourcePatch {
        name: name.map(|n| n.to_string()),
        settings: Some(settings),
        body_limit,
        quiet_after_minutes: quiet_after,
        reconciling,
    };
    let source = sources::update(&mut *tx, scope.team, id, patch).await?;
    if source.reconcile && !current.reconcile {
        reconcile::schedule(&mut *tx, scope.team, &source.id).await?;
    } else if source.reconcile_interval_s != current.reconcile_interval_s {
        reconcile::reschedule(
            &mut *tx,
            scope.team,
            &source.id,
            source.reconcile_interval_s,
        )
        .await?;
    }
    scope.audit(&mut *tx, "source.update", &source.name).await?;
    Ok(source)
}

/// Deletes a source with its routes, secrets, rejection log and events (their
/// deliveries and attempts with them).
pub async fn delete(scope: Scope<'_>, id: &SourceId) -> Result<(), AppError> {
    let mut tx = scope.pool.begin().await?;
    let source = sources::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("source"))?;
    sources::delete_dependants(&mut *tx, scope.team, id).await?;
    sources::delete(&mut *tx, scope.team, id).await?;
    scope.audit(&mut *tx, "source.delete", &source.name).await?;
    tx.commit().await?;
    Ok(())
}

/// Starts a rotation: adds a second secret that verifies alongside the current one.
pub async fn add_secret(
    scope: Scope<'_>,
    id: &SourceId,
    secret: &str,
) -> Result<SecretInfo, AppError> {
    let mut tx = scope.pool.begin().await?;
    let source = sources::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("source"))?;
    let key = source
        .provider
        .parse_secret(secret)
        .map_err(|e| AppError::field("secret", e))?;
    let added = sources::add_secret(&mut tx, scope.team, id, &scope.key.seal(&key)).await?;
    scope
        .audit(&mut *tx, "source.secret.add", &source.name)
        .await?;
    tx.commit().await?;
    Ok(added)
}

/// Ends a rotation: the retired secret no longer verifies. The last one cannot go.
pub async fn retire_secret(
    scope: Scope<'_>,
    id: &SourceId,
    secret_id: &SecretId,
) -> Result<(), AppError> {
    let mut tx = scope.pool.begin().await?;
    sources::retire_secret(&mut tx, scope.team, id, secret_id)
        .await
        .map_err(missing("secret"))?;
    scope
        .audit(&mut *tx, "source.secret.retire", id.as_str())
        .await?;
    tx.commit().await?;
    Ok(())
}

fn check_body_limit(invalid: &mut Invalid, limit: Option<i32>) -> Option<i32> {
    match limit {
        Some(l) if !(1024..=MAX_BODY_LIMIT).contains(&l) => {
            invalid.add(
                "body_limit",
                format!("must be between 1024 and {MAX_BODY_LIMIT} bytes"),
            );
            None
        }
        other => other,
    }
}

/// The longest silence a source may be watched for: a week.
const MAX_QUIET_MINUTES: i32 = 7 * 24 * 60;

/// `Some(None)` turns watching off (0), `Some(Some(n))` sets it, `None` keeps it.
fn check_quiet_after(invalid: &mut Invalid, minutes: Option<i32>) -> Option<Option<i32>> {
    match minutes? {
        0 => Some(None),
        n if (1..=MAX_QUIET_MINUTES).contains(&n) => Some(Some(n)),
        _ => {
            invalid.add(
                "quiet_after_minutes",
                format!("must be between 1 and {MAX_QUIET_MINUTES} minutes, or 0 to stop watching"),
            );
            None
        }
    }
}

/// The reconciliation settings the fields sent make of `current` (the defaults for a new
/// source); `None` when none was sent. Only an Anthropic source reconciles.
fn check_reconciling(
    invalid: &mut Invalid,
    provider: Option<ProviderKind>,
    current: Option<&Source>,
    input: &SettingsInput,
) -> Option<Reconciling> {
    if input.reconcile.is_none()
        && input.reconcile_interval_s.is_none()
        && input.reconcile_lookback_s.is_none()
    {
        return None;
    }
    let was = current.map_or(Reconciling::OFF, |s| Reconciling {
        on: s.reconcile,
        interval_s: s.reconcile_interval_s,
        lookback_s: s.reconcile_lookback_s,
    });
    let on = input.reconcile.unwrap_or(was.on);
    if on && provider.is_some_and(|p| p != ProviderKind::Anthropic) {
        invalid.add(
            "reconcile",
            "only an Anthropic source can be reconciled: its sessions are listed from the Managed Agents API",
        );
    }
    let mut bounded =
        |field: &str, value: Option<i32>, range: std::ops::RangeInclusive<i32>| match value {
            Some(v) if !range.contains(&v) => {
                invalid.add(
                    field,
                    format!(
                        "must be between {} and {} seconds",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            other => other,
        };
    let interval_s = bounded(
        "reconcile_interval_s",
        input.reconcile_interval_s,
        60..=86_400,
    );
    let lookback_s = bounded(
        "reconcile_lookback_s",
        input.reconcile_lookback_s,
        3_600..=604_800,
    );
    Some(Reconciling {
        on,
        interval_s: interval_s.unwrap_or(was.interval_s),
        lookback_s: lookback_s.unwrap_or(was.lookback_s),
    })
}

/// Applies the fields that were sent to `settings`: a value sets, `""` clears, absence
/// keeps. Bad values are noted in `invalid`.
fn apply_settings(
    invalid: &mut Invalid,
    provider: Option<ProviderKind>,
    settings: &mut ProviderSettings,
    input: SettingsInput,
) {
    let headers = [
        (
            "api_key_header",
            input.api_key_header,
            &mut settings.api_key_header,
        ),
        (
            "dedup_header",
            input.dedup_header,
            &mut settings.dedup_header,
        ),
        (
            "event_type_header",
            input.event_type_header,
            &mut settings.event_type_header,
        ),
    ];
    for (field, value, slot) in headers {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            None => {}
            Some(v) if v.is_empty() => *slot = None,
            Some(v)
                if v.len() <= 100
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                *slot = Some(v)
            }
            Some(_) => invalid.add(field, "must be an HTTP header name"),
        }
    }
    let pointers = [
        (
            "dedup_pointer",
            input.dedup_pointer,
            &mut settings.dedup_pointer,
        ),
        (
            "event_type_pointer",
            input.event_type_pointer,
            &mut settings.event_type_pointer,
        ),
    ];
    for (field, value, slot) in pointers {
        match value {
            None => {}
            Some(v) if v.is_empty() => *slot = None,
            Some(v) if v.starts_with('/') && v.len() <= 200 && !v.chars().any(char::is_control) => {
                *slot = Some(v)
            }
            Some(_) => invalid.add(field, "must be a JSON pointer such as /data/id"),
        }
    }
    match (provider, input.allow_sha1) {
        (Some(ProviderKind::Github), Some(allow)) => settings.allow_sha1 = allow,
        (Some(_), Some(_)) => invalid.add("allow_sha1", "only github sources take allow_sha1"),
        _ => {}
    }
    match (provider, input.hmac) {
        (Some(ProviderKind::Hmac), Some(scheme)) => match scheme.check() {
            Ok(()) => settings.hmac = Some(scheme),
            Err(reason) => invalid.add("hmac", reason),
        },
        (Some(ProviderKind::Hmac), None) if settings.hmac.is_none() => invalid.add(
            "hmac",
            "an hmac source needs its signature scheme: at least the header",
        ),
        (Some(_), Some(_)) => invalid.add("hmac", "only hmac sources take a signature scheme"),
        _ => {}
    }
}

/// What a test event made.
#[derive(Debug, Clone)]
pub struct TestSent {
    pub event_id: EventId,
    pub deliveries: usize,
}

/// How long a test event's dedup key holds: it is unique anyway.
const TEST_DEDUP: chrono::Duration = chrono::Duration::hours(1);

/// Sends the provider's sample event through the source as if its sender had posted it,
/// the signature aside: stored marked as a test (and with the `switchyard-test` header
/// templates can read), routed by today's routes, delivered like any other. A route that
/// would fire a routine starts a paid Claude Code session, so unless
/// `routines_confirmed` the test is refused and nothing is stored.
pub async fn send_test(
    scope: Scope<'_>,
    id: &SourceId,
    routines_confirmed: bool,
) -> Result<TestSent, AppError> {
    let source = sources::get(scope.pool, scope.team, id)
        .await
        .map_err(missing("source"))?;
    let team_slug = crate::store::teams::get(scope.pool, scope.team).await?.slug;
    let event_id = EventId::generate();
    let suffix = &event_id.as_str()[event_id.as_str().len() - 8..];
    let sample = samples::sample(source.provider, suffix);
    let body = serde_json::to_vec(&sample.body).unwrap_or_default();
    let event_type = event_type_of(
        source.provider,
        &source.settings.0,
        &sample.read_headers(),
        &body,
        &sample.body,
    );
    let headers: serde_json::Map<String, serde_json::Value> = sample
        .headers
        .into_iter()
        .map(|(name, value)| (name.to_owned(), serde_json::Value::String(value)))
        .collect();
    let headers = serde_json::Value::Object(headers);
    let now = Utc::now();
    let dedup_key = DedupKey {
        value: format!("test-{suffix}"),
        kind: DedupKind::ContentHash,
    };
    let (routes, kinds) = super::events::today_routes(scope, &source.id).await?;
    let facts = EventFacts {
        id: event_id.as_str(),
        event_type: event_type.as_deref(),
        headers: &headers,
        body: &body,
        received_at: now,
        dedup_key: &dedup_key.value,
        source_name: &source.name,
        source_provider: source.provider.as_str(),
        team_slug: &team_slug,
    };
    let planned =
        super::events::plan_with(&routes, &kinds, &RoutedEvent::new(facts, scope.public_url))?;
    let fires_routine = planned
        .iter()
        .any(|(plan, kind)| *kind == DestinationKind::Routine && plan.failure.is_none());
    if fires_routine && !routines_confirmed {
        return Err(AppError::field(
            "confirm",
            "a route of this source fires a routine, and each fire starts a new Claude Code session: confirm first",
        ));
    }
    let deliveries: Vec<_> = planned.into_iter().map(|(plan, _)| plan).collect();
    let made = deliveries.len();
    let event = NewEvent {
        id: event_id.clone(),
        team_id: scope.team.clone(),
        source_id: source.id.clone(),
        event_type,
        dedup_key,
        dedup_until: now + TEST_DEDUP,
        headers,
        body,
        received_at: now,
        deliveries,
        status: None,
        synthesized: false,
    };
    let mut tx = scope.pool.begin().await?;
    events::ingest(&mut tx, std::slice::from_ref(&event)).await?;
    events::mark_test(&mut *tx, scope.team, &event_id).await?;
    scope.audit(&mut *tx, "source.test", &source.name).await?;
    notify_deliveries(&mut *tx).await?;
    tx.commit().await?;
    Ok(TestSent {
        event_id,
        deliveries: made,
    })
}
