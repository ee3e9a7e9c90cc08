//! `/api/v1/destinations`: where deliveries go.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use switchyard_domain::StoreError;
use switchyard_domain::accounts;
use switchyard_domain::app::Invalid;
use switchyard_domain::delivery::limits::Limits;
use switchyard_domain::delivery::{DestinationKind, DestinationState};
use switchyard_domain::ids::{DestinationId, TeamId};
use switchyard_domain::model::{
    Credentials, Destination, DestinationSettings, DestinationUrl, Name, hint,
};
use switchyard_domain::netguard::Policy;
use switchyard_domain::secrets::new_signing_secret;
use switchyard_domain::store::audit;
use switchyard_domain::store::destinations::{self, DestinationPatch, NewDestination};
use switchyard_problem::Problem;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiResult, missing, not_found};
use crate::http_target::{self, AuthInput};
use crate::list::{List, Paging};
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete)
        .service(http_target::rotate_signing_secret);
}

fn parse_id(id: &str) -> ApiResult<DestinationId> {
    id.parse().map_err(|_| not_found("destination"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDestination {
    name: String,
    /// `http`, `routine`, `slack` or `email`.
    kind: String,
    /// `http`: an `https://` URL on a public address. `slack`: the incoming-webhook URL
    /// (`https://hooks.slack.com/services/…`), kept encrypted and shown masked.
    url: Option<String>,
    /// `routine`: the routine's fire URL (`…/v1/claude_code/routines/trig_…/fire`).
    fire_url: Option<String>,
    /// `routine`: the routine's token (`sk-ant-oat01-…`), kept encrypted.
    token: Option<String>,
    /// `email`: the recipients (up to 20); empty or absent sends to the team's owners and
    /// admins.
    to: Option<Vec<String>>,
    /// `http`: `POST` (the default), `PUT` or `PATCH`.
    method: Option<String>,
    /// `http`: custom headers sent with every request (their values are kept encrypted
    /// and never shown); replaces the whole set, `{}` removes them.
    headers: Option<BTreeMap<String, String>>,
    /// `http`: an `Authorization` to send: `{"type":"bearer","token":…}`,
    /// `{"type":"basic","username":…,"password":…}` or `{"type":"none"}`.
    auth: Option<AuthInput>,
    /// Sends started per minute at most, spread evenly (Slack defaults to 60). 0 removes.
    rate_per_minute: Option<u32>,
    /// Sends in flight at once at most. 0 removes.
    max_in_flight: Option<u32>,
    /// Sends per UTC clock hour at most (a routine's budget of sessions). 0 removes.
    budget_per_hour: Option<u32>,
    /// Sends per UTC day at most. 0 removes.
    budget_per_day: Option<u32>,
}

/// The kind-specific fields of a request. Each kind takes its own and refuses the
/// others'. (The request structs list them again, flat: serde cannot refuse unknown
/// fields through a flattened struct.)
/// A create or update request's kind-specific fields, gathered.
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

#[derive(Default)]
pub(crate) struct TargetInput {
    pub(crate) url: Option<String>,
    pub(crate) fire_url: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) to: Option<Vec<String>>,
    pub(crate) method: Option<String>,
    pub(crate) headers: Option<BTreeMap<String, String>>,
    pub(crate) auth: Option<AuthInput>,
    pub(crate) limits: [(&'static str, Option<u32>); 4],
}

/// A destination as created: the only time its signing secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedDestination {
    #[serde(flatten)]
    pub(crate) destination: Destination,
    /// `whsec_…`: verify Switchyard's `webhook-signature` with it (Standard Webhooks).
    pub(crate) signing_secret: String,
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
            http_target::apply(
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

fn seal(state: &WebState, credentials: &Option<Credentials>) -> ApiResult<Option<Vec<u8>>> {
    credentials
        .as_ref()
        .map(|c| serde_json::to_vec(c).map(|json| state.key.seal(&json)))
        .transpose()
        .map_err(|_| Problem::internal().into())
}

#[utoipa::path(tag = "destinations", request_body = CreateDestination,
    responses((status = 201, body = CreatedDestination), (status = 401), (status = 422)))]
#[post("/destinations")]
async fn create(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: web::Json<CreateDestination>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let input = target_input!(body);
    let mut tx = state.pool.begin().await?;
    let created = insert_new(
        &mut tx,
        &state,
        &team.team,
        &team.actor,
        &body.name,
        &body.kind,
        input,
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(created))
}

/// Validates a new destination and inserts it on `tx`, noting it in the audit log: for
/// the API, the dashboard and recipes (which create one in the same transaction as its
/// route).
pub(crate) async fn insert_new(
    tx: &mut PgConnection,
    state: &WebState,
    team: &TeamId,
    actor: &str,
    name: &str,
    kind: &str,
    input: TargetInput,
) -> ApiResult<CreatedDestination> {
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
    let target = kind.map(|kind| parse_target(&mut invalid, kind, input, empty, state.policy));
    invalid.finish()?;
    let (Some(name), Some(kind), Some(target)) = (name, kind, target) else {
        return Err(Problem::internal().into());
    };
    let signing_secret = new_signing_secret();
    let sealed = state.key.seal(signing_secret.as_bytes());
    let sealed_credentials = seal(state, &target.credentials)?;
    let new = NewDestination {
        name: name.as_str(),
        kind,
        url: target.url.as_deref(),
        settings: &target.settings,
        sealed_signing_secret: &sealed,
        sealed_credentials: sealed_credentials.as_deref(),
    };
    let destination = destinations::insert(&mut *tx, team, new).await?;
    audit::record(
        &mut *tx,
        team,
        actor,
        "destination.create",
        &destination.name,
    )
    .await?;
    Ok(CreatedDestination {
        destination,
        signing_secret,
    })
}

#[utoipa::path(tag = "destinations", params(Paging), responses((status = 200, body = List<Destination>)))]
#[get("/destinations")]
async fn list(
    team: ApiTeam,
    state: web::Data<WebState>,
    q: web::Query<Paging>,
) -> ApiResult<web::Json<List<Destination>>> {
    let page = destinations::list(&state.pool, &team.team, &q.request()).await?;
    Ok(web::Json(List::from_page(page, |d| d)))
}

#[utoipa::path(tag = "destinations", responses((status = 200, body = Destination), (status = 404)))]
#[get("/destinations/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<Destination>> {
    let found = destinations::get(&state.pool, &team.team, &parse_id(&id)?)
        .await
        .map_err(missing("destination"))?;
    Ok(web::Json(found))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDestination {
    name: Option<String>,
    /// `paused` stops sending and holds deliveries; `active` resumes at once (whatever
    /// paused, disabled or slowed the destination) and releases held deliveries in the
    /// order they were created.
    state: Option<String>,
    /// `http`: an `https://` URL on a public address. `slack`: the incoming-webhook URL
    /// (`https://hooks.slack.com/services/…`), kept encrypted and shown masked.
    url: Option<String>,
    /// `routine`: the routine's fire URL (`…/v1/claude_code/routines/trig_…/fire`).
    fire_url: Option<String>,
    /// `routine`: the routine's token (`sk-ant-oat01-…`), kept encrypted.
    token: Option<String>,
    /// `email`: the recipients (up to 20); empty or absent sends to the team's owners and
    /// admins.
    to: Option<Vec<String>>,
    /// `http`: `POST` (the default), `PUT` or `PATCH`.
    method: Option<String>,
    /// `http`: custom headers sent with every request (their values are kept encrypted
    /// and never shown); replaces the whole set, `{}` removes them.
    headers: Option<BTreeMap<String, String>>,
    /// `http`: an `Authorization` to send: `{"type":"bearer","token":…}`,
    /// `{"type":"basic","username":…,"password":…}` or `{"type":"none"}`.
    auth: Option<AuthInput>,
    /// Sends started per minute at most, spread evenly (Slack defaults to 60). 0 removes.
    rate_per_minute: Option<u32>,
    /// Sends in flight at once at most. 0 removes.
    max_in_flight: Option<u32>,
    /// Sends per UTC clock hour at most (a routine's budget of sessions). 0 removes.
    budget_per_hour: Option<u32>,
    /// Sends per UTC day at most. 0 removes.
    budget_per_day: Option<u32>,
}

#[utoipa::path(tag = "destinations", request_body = UpdateDestination,
    responses((status = 200, body = Destination), (status = 404), (status = 422)))]
#[patch("/destinations/{id}")]
async fn update(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
    body: web::Json<UpdateDestination>,
) -> ApiResult<web::Json<Destination>> {
    let id = parse_id(&id)?;
    let body = body.into_inner();
    let new_state = match body.state.as_deref() {
        None => None,
        Some(raw) => match raw.parse::<DestinationState>() {
            Ok(s @ (DestinationState::Active | DestinationState::Paused)) => Some(s),
            _ => {
                return Err(Problem::invalid_field(
                    "state",
                    "state may be set to active or paused",
                )
                .into());
            }
        },
    };
    let changes_target = body.name.is_some()
        || body.url.is_some()
        || body.fire_url.is_some()
        || body.token.is_some()
        || body.to.is_some()
        || body.method.is_some()
        || body.headers.is_some()
        || body.auth.is_some()
        || body.rate_per_minute.is_some()
        || body.max_in_flight.is_some()
        || body.budget_per_hour.is_some()
        || body.budget_per_day.is_some();
    let name = body.name.clone();
    let input = target_input!(body);
    let mut tx = state.pool.begin().await?;
    let mut updated = if changes_target || new_state.is_none() {
        update_target(
            &mut tx,
            &state,
            &team.team,
            &team.actor,
            &id,
            name.as_deref(),
            input,
        )
        .await?
    } else {
        destinations::get(&mut *tx, &team.team, &id)
            .await
            .map_err(missing("destination"))?
    };
    if let Some(new_state) = new_state {
        updated = change_state(&mut tx, &team.team, &team.actor, &id, new_state).await?;
    }
    tx.commit().await?;
    Ok(web::Json(updated))
}

/// Applies a new name and the kind's fields that were sent (absent ones keep their
/// value), for the API and the dashboard alike.
pub(crate) async fn update_target(
    tx: &mut PgConnection,
    state: &WebState,
    team: &TeamId,
    actor: &str,
    id: &DestinationId,
    name: Option<&str>,
    input: TargetInput,
) -> ApiResult<Destination> {
    let (current, sealed) = destinations::lock_with_credentials(&mut *tx, team, id)
        .await
        .map_err(missing("destination"))?;
    let credentials = sealed
        .map(|blob| -> Result<Credentials, StoreError> {
            let json = state.key.open(&blob)?;
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
    let target = parse_target(&mut invalid, current.kind, input, target, state.policy);
    invalid.finish()?;
    let sealed_credentials = seal(state, &target.credentials)?;
    let patch = DestinationPatch {
        name: name.map(|n| n.to_string()),
        url: target.url,
        settings: target.settings,
        sealed_credentials,
    };
    let updated = destinations::update(&mut *tx, team, id, patch).await?;
    audit::record(&mut *tx, team, actor, "destination.update", &updated.name).await?;
    Ok(updated)
}

/// A person pauses the destination, or resumes it at once (whatever paused, disabled or
/// slowed it), releasing its held deliveries in creation order.
pub(crate) async fn change_state(
    tx: &mut PgConnection,
    team: &TeamId,
    actor: &str,
    id: &DestinationId,
    new_state: DestinationState,
) -> ApiResult<Destination> {
    let action = match new_state {
        DestinationState::Paused => {
            destinations::pause(&mut *tx, team, id).await?;
            "destination.pause"
        }
        _ => {
            let released = destinations::resume(&mut *tx, team, id, Utc::now()).await?;
            tracing::info!(destination = %id, released, "destination resumed");
            "destination.resume"
        }
    };
    let updated = destinations::get(&mut *tx, team, id).await?;
    audit::record(&mut *tx, team, actor, action, &updated.name).await?;
    Ok(updated)
}

#[utoipa::path(tag = "destinations", responses((status = 204), (status = 404)))]
#[delete("/destinations/{id}")]
async fn delete(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    delete_destination(&state, &team.team, &team.actor, &parse_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) async fn delete_destination(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    id: &DestinationId,
) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    let found = destinations::get(&mut *tx, team, id)
        .await
        .map_err(missing("destination"))?;
    destinations::delete(&mut *tx, team, id).await?;
    audit::record(&mut *tx, team, actor, "destination.delete", &found.name).await?;
    tx.commit().await?;
    Ok(())
}
