//! Destinations: where deliveries go. Each kind takes its own fields and refuses the
//! others' by name; credentials (a routine's token, a Slack webhook URL, custom headers,
//! an `Authorization`) are sealed before they are stored, and only a hint of them is ever
//! shown. A person can pause a destination, resume it at once, or rotate an http
//! destination's signing secret.

mod http;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

pub use self::http::AuthInput;
use super::error::missing;
use super::{AppError, Invalid, Scope};
use crate::StoreError;
use crate::accounts;
use crate::delivery::limits::Limits;
use crate::delivery::{DestinationKind, DestinationState};
use crate::ids::DestinationId;
use crate::model::{Credentials, Destination, DestinationSettings, DestinationUrl, Name, hint};
use crate::netguard::Policy;
use crate::secrets::new_signing_secret;
use crate::store::destinations::{self, DestinationPatch, NewDestination};

/// A new destination: its name, its kind and that kind's fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDestination {
    pub name: String,
    /// `http`, `routine`, `slack` or `email`.
    pub kind: String,
    /// `http`: an `https://` URL on a public address. `slack`: the incoming-webhook URL
    /// (`https://hooks.slack.com/services/…`), kept encrypted and shown masked.
    pub url: Option<String>,
    /// `routine`: the routine's fire URL (`…/v1/claude_code/routines/trig_…/fire`).
    pub fire_url: Option<String>,
    /// `routine`: the routine's token (`sk-ant-oat01-…`), kept encrypted.
    pub token: Option<String>,
    /// `email`: the recipients (up to 20); empty or absent sends to the team's owners and
    /// admins.
    pub to: Option<Vec<String>>,
    /// `http`: `POST` (the default), `PUT` or `PATCH`.
    pub method: Option<String>,
    /// `http`: custom headers sent with every request (their values are kept encrypted
    /// and never shown); replaces the whole set, `{}` removes them.
    pub headers: Option<BTreeMap<String, String>>,
    /// `http`: an `Authorization` to send: `{"type":"bearer","token":…}`,
    /// `{"type":"basic","username":…,"password":…}` or `{"type":"none"}`.
    pub auth: Option<AuthInput>,
    /// Sends started per minute at most, spread evenly (Slack defaults to 60). 0 removes.
    pub rate_per_minute: Option<u32>,
    /// Sends in flight at once at most. 0 removes.
    pub max_in_flight: Option<u32>,
    /// Sends per UTC clock hour at most (a routine's budget of sessions). 0 removes.
    pub budget_per_hour: Option<u32>,
    /// Sends per UTC day at most. 0 removes.
    pub budget_per_day: Option<u32>,
}

/// Changes to a destination: only the fields sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDestination {
    pub name: Option<String>,
    /// `paused` stops sending and holds deliveries; `active` resumes at once (whatever
    /// paused, disabled or slowed the destination) and releases held deliveries in the
    /// order they were created.
    pub state: Option<String>,
    /// `http`: an `https://` URL on a public address. `slack`: the incoming-webhook URL
    /// (`https://hooks.slack.com/services/…`), kept encrypted and shown masked.
    pub url: Option<String>,
    /// `routine`: the routine's fire URL (`…/v1/claude_code/routines/trig_…/fire`).
    pub fire_url: Option<String>,
    /// `routine`: the routine's token (`sk-ant-oat01-…`), kept encrypted.
    pub token: Option<String>,
    /// `email`: the recipients (up to 20); empty or absent sends to the team's owners and
    /// admins.
    pub to: Option<Vec<String>>,
    /// `http`: `POST` (the default), `PUT` or `PATCH`.
    pub method: Option<String>,
    /// `http`: custom headers sent with every request (their values are kept encrypted
    /// and never shown); replaces the whole set, `{}` removes them.
    pub headers: Option<BTreeMap<String, String>>,
    /// `http`: an `Authorization` to send: `{"type":"bearer","token":…}`,
    /// `{"type":"basic","username":…,"password":…}` or `{"type":"none"}`.
    pub auth: Option<AuthInput>,
    /// Sends started per minute at most, spread evenly (Slack defaults to 60). 0 removes.
    pub rate_per_minute: Option<u32>,
    /// Sends in flight at once at most. 0 removes.
    pub max_in_flight: Option<u32>,
    /// Sends per UTC clock hour at most (a routine's budget of sessions). 0 removes.
    pub budget_per_hour: Option<u32>,
    /// Sends per UTC day at most. 0 removes.
    pub budget_per_day: Option<u32>,
}

/// A create or update command's kind-specific fields, gathered.
macro_rules! target_input {
    ($body:expr) => {
        TargetInput {
            url: $body.url,
            fire_url: $body.fire_url,
            token: $body.token,
            to: $body.to,
            method: $body.method,
            headers: $body.headers,
            auth: $body.auth,
            limits: [
                ("rate_per_minute", $body.rate_per_minute),
                ("max_in_flight", $body.max_in_flight),
                ("budget_per_hour", $body.budget_per_hour),
                ("budget_per_day", $body.budget_per_day),
            ],
        }
    };
}

/// The kind-specific fields of a command. Each kind takes its own and refuses the
/// others'. (The commands list them again, flat: serde cannot refuse unknown fields
/// through a flattened struct.)
#[derive(Default)]
pub struct TargetInput {
    pub url: Option<String>,
    pub fire_url: Option<String>,
    pub token: Option<String>,
    pub to: Option<Vec<String>>,
    pub method: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub auth: Option<AuthInput>,
    pub limits: [(&'static str, Option<u32>); 4],
}

/// A destination as created: the only time its signing secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedDestination {
    #[serde(flatten)]
    pub destination: Destination,
    /// `whsec_…`: verify Switchyard's `webhook-signature` with it (Standard Webhooks).
    pub signing_secret: String,
}

const MAX_RECIPIENTS: usize = 20;

/// Where a destination sends, as stored: the visible URL, what may be shown about its
/// credentials, and the credentials themselves.
struct Target {
    url: Option<String>,
    settings: DestinationSettings,
    credentials: Option<Credentials>,
}

const TOKEN_PREFIX: &str = "sk-ant-oat01-";

/// Reads the kind's fields from `input` over `current` (a PATCH keeps what it does not
/// name). Fields of other kinds are refused by name.
fn parse_target(
    invalid: &mut Invalid,
    kind: DestinationKind,
    input: TargetInput,
    mut current: Target,
    policy: Policy,
) -> Target {
    let foreign = |invalid: &mut Invalid, field: &str, given: bool| {
        if given {
            invalid.add(field, format!("{kind} destinations do not take {field}"));
        }
    };
    if kind != DestinationKind::Email {
        foreign(invalid, "to", input.to.is_some());
    }
    if kind != DestinationKind::Http {
        foreign(invalid, "method", input.method.is_some());
        foreign(invalid, "headers", input.headers.is_some());
        foreign(invalid, "auth", input.auth.is_some());
    }
    match kind {
        DestinationKind::Http => {
            foreign(invalid, "fire_url", input.fire_url.is_some());
            foreign(invalid, "token", input.token.is_some());
            if let Some(url) = input.url.as_deref() {
                current.url = invalid
                    .check("url", DestinationUrl::parse(url, policy))
                    .map(|u| u.as_str().to_owned());
            }
            http::apply(
                invalid,
                input.method.as_deref(),
                input.headers,
                input.auth,
                &mut current.settings,
                &mut current.credentials,
            );
        }
        DestinationKind::Routine => {
            foreign(invalid, "url", input.url.is_some());
            if let Some(url) = input.fire_url.as_deref() {
                current.url = invalid
                    .check("fire_url", DestinationUrl::parse_fire_url(url, policy))
                    .map(|u| u.as_str().to_owned());
            }
            if let Some(token) = input.token.map(|t| t.trim().to_owned()) {
                if token.starts_with(TOKEN_PREFIX) && token.len() > TOKEN_PREFIX.len() + 8 {
                    current.settings.credential_hint = Some(hint(&token, TOKEN_PREFIX.len(), 4));
                    current
                        .credentials
                        .get_or_insert_with(Credentials::default)
                        .token = Some(token);
                } else {
                    invalid.add(
                        "token",
                        format!("a routine token starts with {TOKEN_PREFIX}"),
                    );
                }
            }
            if current.url.is_none() {
                invalid.add("fire_url", "a routine destination needs its fire_url");
            }
            if current
                .credentials
                .as_ref()
                .and_then(|c| c.token.as_ref())
                .is_none()
            {
                invalid.add("token", "a routine destination needs its token");
            }
        }
        DestinationKind::Slack => {
            foreign(invalid, "fire_url", input.fire_url.is_some());
            foreign(invalid, "token", input.token.is_some());
            if let Some(url) = input.url.as_deref()
                && let Some(url) = invalid.check("url", DestinationUrl::parse_slack(url, policy))
            {
                current.settings.credential_hint = Some(url.hint());
                current
                    .credentials
                    .get_or_insert_with(Credentials::default)
                    .url = Some(url.as_str().to_owned());
            }
            if current
                .credentials
                .as_ref()
                .and_then(|c| c.url.as_ref())
                .is_none()
            {
                invalid.add("url", "a slack destination needs its incoming-webhook url");
            }
        }
        DestinationKind::Email => {
            foreign(invalid, "url", input.url.is_some());
            foreign(invalid, "fire_url", input.fire_url.is_some());
            foreign(invalid, "token", input.token.is_some());
            if let Some(to) = input.to {
                if to.len() > MAX_RECIPIENTS {
                    invalid.add("to", format!("at most {MAX_RECIPIENTS} recipients"));
                } else {
                    let parsed: Result<Vec<String>, String> =
                        to.iter().map(|a| accounts::email_address(a)).collect();
                    match parsed {
                        Ok(to) => current.settings.to = to,
                        Err(e) => invalid.add("to", e),
                    }
                }
            }
        }
    }

    if kind == DestinationKind::Http && current.url.is_none() {
        invalid.add("url", "an http destination needs its url");
    }
    apply_limits(invalid, &mut current.settings.limits, input.limits);
    current
}

/// The most each limit may be set to.
const LIMIT_MAX: [u32; 4] = [60_000, 1_000, 1_000_000, 1_000_000];

/// Sets each limit that was sent: a number sets it, 0 removes it.
fn apply_limits(
    invalid: &mut Invalid,
    limits: &mut Limits,
    input: [(&'static str, Option<u32>); 4],
) {
    let slots = [
        &mut limits.rate_per_minute,
        &mut limits.max_in_flight,
        &mut limits.budget_per_hour,
        &mut limits.budget_per_day,
    ];
    for (((field, value), slot), max) in input.into_iter().zip(slots).zip(LIMIT_MAX) {
        match value {
            None => {}
            Some(0) => *slot = None,
            Some(v) if v <= max => *slot = Some(v),
            Some(_) => invalid.add(
                field,
                format!("must be at most {max} (0 removes the limit)"),
            ),
        }
    }
}

fn seal(scope: Scope<'_>, credentials: &Option<Credentials>) -> Result<Option<Vec<u8>>, AppError> {
    credentials
        .as_ref()
        .map(|c| serde_json::to_vec(c).map(|json| scope.key.seal(&json)))
        .transpose()
        .map_err(|e| StoreError::Internal(e.to_string()).into())
}

/// Validates and stores a new destination of `kind` with the kind's fields.
pub async fn create(
    scope: Scope<'_>,
    name: &str,
    kind: &str,
    target: TargetInput,
) -> Result<CreatedDestination, AppError> {
    let mut tx = scope.pool.begin().await?;
    let created = insert_new(&mut tx, scope, name, kind, target).await?;
    tx.commit().await?;
    Ok(created)
}

impl CreateDestination {
    /// The name, the kind and the kind's fields, as `create` takes them.
    pub fn into_parts(self) -> (String, String, TargetInput) {
        let target = target_input!(self);
        (self.name, self.kind, target)
    }
}

/// Applies a new name and the kind's fields that were sent (absent ones keep their
/// value).
pub async fn reconfigure(
    scope: Scope<'_>,
    id: &DestinationId,
    name: Option<&str>,
    target: TargetInput,
) -> Result<Destination, AppError> {
    let mut tx = scope.pool.begin().await?;
    let updated = update_target(&mut tx, scope, id, name, target).await?;
    tx.commit().await?;
    Ok(updated)
}

/// A person pauses the destination, or resumes it at once.
pub async fn set_state(
    scope: Scope<'_>,
    id: &DestinationId,
    new_state: DestinationState,
) -> Result<Destination, AppError> {
    let mut tx = scope.pool.begin().await?;
    destinations::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("destination"))?;
    let updated = change_state(&mut tx, scope, id, new_state).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Validates a new destination and inserts it on `tx`, noting it in the audit log;
/// recipes create one in the same transaction as its route.
pub async fn insert_new(
    tx: &mut PgConnection,
    scope: Scope<'_>,
    name: &str,
    kind: &str,
    input: TargetInput,
) -> Result<CreatedDestination, AppError> {
    let mut invalid = Invalid::default();
    let name = invalid.check("name", Name::parse(name));
    let kind = invalid.check("kind", kind.parse::<DestinationKind>());
    // Slack takes about one message a second per webhook; start there.
    let limits = Limits {
        rate_per_minute: (kind == Some(DestinationKind::Slack)).then_some(60),
        ..Limits::default()
    };
    let empty = Target {
        url: None,
        settings: DestinationSettings {
            limits,
            ..DestinationSettings::default()
        },
        credentials: None,
    };
    let target = kind.map(|kind| parse_target(&mut invalid, kind, input, empty, scope.policy));
    invalid.finish()?;
    let (Some(name), Some(kind), Some(target)) = (name, kind, target) else {
        return Err(StoreError::Internal("a checked destination lost a field".into()).into());
    };
    let signing_secret = new_signing_secret();
    let sealed = scope.key.seal(signing_secret.as_bytes());
    let sealed_credentials = seal(scope, &target.credentials)?;
    let new = NewDestination {
        name: name.as_str(),
        kind,
        url: target.url.as_deref(),
        settings: &target.settings,
        sealed_signing_secret: &sealed,
        sealed_credentials: sealed_credentials.as_deref(),
    };
    let destination = destinations::insert(&mut *tx, scope.team, new).await?;
    scope
        .audit(&mut *tx, "destination.create", &destination.name)
        .await?;
    Ok(CreatedDestination {
        destination,
        signing_secret,
    })
}

/// Applies the fields sent; `state` pauses the destination or resumes it at once.
pub async fn update(
    scope: Scope<'_>,
    id: &DestinationId,
    cmd: UpdateDestination,
) -> Result<Destination, AppError> {
    let new_state = match cmd.state.as_deref() {
        None => None,
        Some(raw) => match raw.parse::<DestinationState>() {
            Ok(s @ (DestinationState::Active | DestinationState::Paused)) => Some(s),
            _ => {
                return Err(AppError::field(
                    "state",
                    "state may be set to active or paused",
                ));
            }
        },
    };
    let changes_target = cmd.name.is_some()
        || cmd.url.is_some()
        || cmd.fire_url.is_some()
        || cmd.token.is_some()
        || cmd.to.is_some()
        || cmd.method.is_some()
        || cmd.headers.is_some()
        || cmd.auth.is_some()
        || cmd.rate_per_minute.is_some()
        || cmd.max_in_flight.is_some()
        || cmd.budget_per_hour.is_some()
        || cmd.budget_per_day.is_some();
    let name = cmd.name.clone();
    let input = target_input!(cmd);
    let mut tx = scope.pool.begin().await?;
    let mut updated = if changes_target || new_state.is_none() {
        update_target(&mut tx, scope, id, name.as_deref(), input).await?
    } else {
        destinations::get(&mut *tx, scope.team, id)
            .await
            .map_err(missing("destination"))?
    };
    if let Some(new_state) = new_state {
        updated = change_state(&mut tx, scope, id, new_state).await?;
    }
    tx.commit().await?;
    Ok(updated)
}

/// Applies a new name and the kind's fields that were sent (absent ones keep their
/// value) on `tx`.
async fn update_target(
    tx: &mut PgConnection,
    scope: Scope<'_>,
    id: &DestinationId,
    name: Option<&str>,
    input: TargetInput,
) -> Result<Destination, AppError> {
    let (current, sealed) = destinations::lock_with_credentials(&mut *tx, scope.team, id)
        .await
        .map_err(missing("destination"))?;
    let credentials = sealed
        .map(|blob| -> Result<Credentials, StoreError> {
            let json = scope.key.open(&blob)?;
            serde_json::from_slice(&json).map_err(|e| StoreError::Internal(e.to_string()))
        })
        .transpose()?;
    let mut invalid = Invalid::default();
    let name = name.and_then(|n| invalid.check("name", Name::parse(n)));
    let target = Target {
        url: current.url.clone(),
        settings: current.settings.0.clone(),
        credentials,
    };
    let target = parse_target(&mut invalid, current.kind, input, target, scope.policy);
    invalid.finish()?;
    let sealed_credentials = seal(scope, &target.credentials)?;
    let patch = DestinationPatch {
        name: name.map(|n| n.to_string()),
        url: target.url,
        settings: target.settings,
        sealed_credentials,
    };
    let updated = destinations::update(&mut *tx, scope.team, id, patch).await?;
    scope
        .audit(&mut *tx, "destination.update", &updated.name)
        .await?;
    Ok(updated)
}

/// A person pauses the destination, or resumes it at once (whatever paused, disabled or
/// slowed it), releasing its held deliveries in creation order.
async fn change_state(
    tx: &mut PgConnection,
    scope: Scope<'_>,
    id: &DestinationId,
    new_state: DestinationState,
) -> Result<Destination, AppError> {
    let action = match new_state {
        DestinationState::Paused => {
            destinations::pause(&mut *tx, scope.team, id).await?;
            "destination.pause"
        }
        _ => {
            let released = destinations::resume(&mut *tx, scope.team, id, Utc::now()).await?;
            tracing::info!(destination = %id, released, "destination resumed");
            "destination.resume"
        }
    };
    let updated = destinations::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("destination"))?;
    scope.audit(&mut *tx, action, &updated.name).await?;
    Ok(updated)
}

/// Deletes a destination with its routes; its deliveries stay in the log.
pub async fn delete(scope: Scope<'_>, id: &DestinationId) -> Result<(), AppError> {
    let mut tx = scope.pool.begin().await?;
    let found = destinations::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("destination"))?;
    destinations::delete(&mut *tx, scope.team, id).await?;
    scope
        .audit(&mut *tx, "destination.delete", &found.name)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSigningSecret {
    /// How long the old secret keeps signing beside the new one, in seconds (default one
    /// day, at most a week; 0 stops it at once).
    pub overlap_seconds: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedSigningSecret {
    /// The new `whsec_…` secret; shown this once.
    pub signing_secret: String,
    /// Until when requests also carry a signature made with the old secret.
    pub previous_valid_until: DateTime<Utc>,
}

const DEFAULT_OVERLAP: u32 = 24 * 60 * 60;
const MAX_OVERLAP: u32 = 7 * 24 * 60 * 60;

/// A new signing secret for an http destination. Until the overlap ends every request is
/// signed with both, so a receiver can switch secrets at its own pace.
pub async fn rotate_signing_secret(
    scope: Scope<'_>,
    id: &DestinationId,
    cmd: RotateSigningSecret,
) -> Result<RotatedSigningSecret, AppError> {
    let overlap = cmd.overlap_seconds.unwrap_or(DEFAULT_OVERLAP);
    if overlap > MAX_OVERLAP {
        return Err(AppError::field(
            "overlap_seconds",
            format!("must be at most {MAX_OVERLAP} (a week)"),
        ));
    }
    let mut tx = scope.pool.begin().await?;
    let destination = destinations::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("destination"))?;
    if destination.kind != DestinationKind::Http {
        return Err(AppError::field(
            "kind",
            "only http destinations sign their requests",
        ));
    }
    let signing_secret = new_signing_secret();
    let until = Utc::now() + Duration::seconds(i64::from(overlap));
    let sealed = scope.key.seal(signing_secret.as_bytes());
    destinations::rotate_signing_secret(&mut *tx, scope.team, id, &sealed, until)
        .await
        .map_err(missing("destination"))?;
    scope
        .audit(&mut *tx, "destination.secret.rotate", &destination.name)
        .await?;
    tx.commit().await?;
    Ok(RotatedSigningSecret {
        signing_secret,
        previous_valid_until: until,
    })
}
