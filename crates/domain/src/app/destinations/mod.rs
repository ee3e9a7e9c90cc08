//! Destinations: where deliveries go. Each kind takes its own fields and refuses the
//! others' by name (see `config`); credentials (a routine's token, a Slack webhook URL, custom headers,
//! an `Authorization`) are sealed before they are stored, and only a hint of them is ever
//! shown. A person can pause a destination, resume it at once, or rotate an http
//! destination's signing secret.

mod config;
mod http;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

pub use self::config::{
    ConfigInput, EmailInput, KindFields, LimitsInput, RoutineInput, SlackInput,
};
use self::config::{Configured, configure};
pub use self::http::{AuthInput, HttpInput};
use super::error::missing;
use super::{AppError, Invalid, Scope};
use crate::StoreError;
use crate::delivery::limits::Limits;
use crate::delivery::{DestinationKind, DestinationState};
use crate::ids::DestinationId;
use crate::model::{Credentials, Destination, Name};
use crate::secrets::new_signing_secret;
use crate::store::destinations::{self, DestinationPatch, NewDestination};

/// A new destination: its name, its kind, that kind's fields and its limits.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateDestination {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// `http`, `routine`, `slack` or `email`.
    #[serde(default)]
    pub kind: String,
    #[serde(flatten)]
    pub limits: LimitsInput,
    /// The kind's own fields.
    #[serde(flatten)]
    #[schema(value_type = ConfigInput)]
    pub fields: KindFields,
}

/// Changes to a destination: only the fields sent. Its kind cannot change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateDestination {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// `paused` stops sending and holds deliveries; `active` resumes at once (whatever
    /// paused, disabled or slowed the destination) and releases held deliveries in the
    /// order they were created.
    pub state: Option<String>,
    #[serde(flatten)]
    pub limits: LimitsInput,
    /// The kind's own fields to change (see `ConfigInput`); absent ones keep their
    /// value.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: KindFields,
}

/// A destination as created: the only time its signing secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedDestination {
    #[serde(flatten)]
    pub destination: Destination,
    /// `whsec_…`: verify Switchyard's `webhook-signature` with it (Standard Webhooks).
    pub signing_secret: String,
}

fn seal(scope: Scope<'_>, credentials: &Credentials) -> Result<Option<Vec<u8>>, AppError> {
    credentials
        .seal(scope.key)
        .map_err(|e| StoreError::Internal(e.to_string()).into())
}

impl CreateDestination {
    /// The name, and the kind's fields read as that kind's.
    pub fn read(self) -> Result<(String, ConfigInput, LimitsInput), AppError> {
        let kind = self
            .kind
            .parse::<DestinationKind>()
            .map_err(|e| AppError::field("kind", e))?;
        Ok((self.name, self.fields.read(kind)?, self.limits))
    }
}

/// Validates and stores a new destination.
pub async fn create(
    scope: Scope<'_>,
    name: &str,
    config: ConfigInput,
    limits: LimitsInput,
) -> Result<CreatedDestination, AppError> {
    let mut tx = scope.pool.begin().await?;
    let created = insert_new(&mut tx, scope, name, config, limits).await?;
    tx.commit().await?;
    Ok(created)
}

/// What [`create`] would refuse of these, writing nothing.
pub async fn check_new(
    scope: Scope<'_>,
    name: &str,
    config: ConfigInput,
    limits: LimitsInput,
) -> Result<(), AppError> {
    super::dry_run(scope, async |tx| {
        insert_new(tx, scope, name, config, limits).await
    })
    .await
}

/// What [`reconfigure`] would refuse of these, writing nothing.
pub async fn check_reconfigure(
    scope: Scope<'_>,
    id: &DestinationId,
    name: Option<&str>,
    config: ConfigInput,
    limits: LimitsInput,
) -> Result<(), AppError> {
    super::dry_run(scope, async |tx| {
        update_target(tx, scope, id, name, |_| Ok(config), limits).await
    })
    .await
}

/// Applies a new name, the kind's fields and the limits that were sent (absent ones
/// keep their value). `config` must be of the destination's kind.
pub async fn reconfigure(
    scope: Scope<'_>,
    id: &DestinationId,
    name: Option<&str>,
    config: ConfigInput,
    limits: LimitsInput,
) -> Result<Destination, AppError> {
    let mut tx = scope.pool.begin().await?;
    let updated = update_target(&mut tx, scope, id, name, |_| Ok(config), limits).await?;
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
    config: ConfigInput,
    limits: LimitsInput,
) -> Result<CreatedDestination, AppError> {
    let mut invalid = Invalid::default();
    let name = invalid.check("name", Name::parse(name));
    // Slack takes about one message a second per webhook; start there.
    let defaults = Limits {
        rate_per_minute: (config.kind() == DestinationKind::Slack).then_some(60),
        ..Limits::default()
    };
    let limits = limits.apply(&mut invalid, defaults);
    let configured = configure(&mut invalid, config, None, scope.policy);
    invalid.finish()?;
    let (Some(name), Some(configured)) = (name, configured) else {
        return Err(StoreError::Internal("a checked destination lost a field".into()).into());
    };
    let signing_secret = new_signing_secret();
    let sealed = scope.key.seal(signing_secret.as_bytes());
    let sealed_credentials = seal(scope, &configured.credentials)?;
    let new = NewDestination {
        name: name.as_str(),
        config: &configured.config,
        limits: &limits,
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
    let changes_target = cmd.name.is_some() || !cmd.fields.is_empty() || !cmd.limits.is_empty();
    let mut tx = scope.pool.begin().await?;
    let mut updated = if changes_target || new_state.is_none() {
        // The fields are read as the kind of the destination the update locks.
        let fields = cmd.fields;
        let config = |kind| fields.read(kind);
        update_target(&mut tx, scope, id, cmd.name.as_deref(), config, cmd.limits).await?
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

/// Applies a new name, the kind's fields and the limits that were sent (absent ones
/// keep their value) on `tx`. `config` gives the fields for the destination's kind.
async fn update_target(
    tx: &mut PgConnection,
    scope: Scope<'_>,
    id: &DestinationId,
    name: Option<&str>,
    config: impl FnOnce(DestinationKind) -> Result<ConfigInput, AppError>,
    limits: LimitsInput,
) -> Result<Destination, AppError> {
    let (current, sealed) = destinations::lock_with_credentials(&mut *tx, scope.team, id)
        .await
        .map_err(missing("destination"))?;
    let kind = current.kind();
    let config = config(kind)?;
    if config.kind() != kind {
        return Err(AppError::field(
            "kind",
            format!("this is a {kind} destination; its kind cannot change"),
        ));
    }
    let credentials =
        Credentials::open(kind, scope.key, sealed.as_deref()).map_err(StoreError::Internal)?;
    let mut invalid = Invalid::default();
    let name = name.and_then(|n| invalid.check("name", Name::parse(n)));
    let limits = limits.apply(&mut invalid, current.limits);
    let current = Configured {
        config: current.config,
        credentials,
    };
    let configured = configure(&mut invalid, config, Some(current), scope.policy);
    invalid.finish()?;
    let Some(configured) = configured else {
        return Err(StoreError::Internal("a checked destination lost a field".into()).into());
    };
    let sealed_credentials = seal(scope, &configured.credentials)?;
    let patch = DestinationPatch {
        name: name.map(|n| n.to_string()),
        config: configured.config,
        limits,
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

/// Deletes a destination with its routes, deliveries and their attempts.
pub async fn delete(scope: Scope<'_>, id: &DestinationId) -> Result<(), AppError> {
    let mut tx = scope.pool.begin().await?;
    let found = destinations::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("destination"))?;
    destinations::delete_attempts(&mut *tx, scope.team, id).await?;
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
    if destination.kind() != DestinationKind::Http {
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
