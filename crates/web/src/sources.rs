//! `/api/v1/sources`: where webhooks come in.

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use switchyard_domain::ids::{SecretId, SourceId, TeamId};
use switchyard_domain::model::{Name, Source};
use switchyard_domain::problem::Problem;
use switchyard_domain::providers::{HmacScheme, ProviderKind, ProviderSettings};
use switchyard_domain::secrets::random_token;
use switchyard_domain::store::audit;
use switchyard_domain::store::sources::{self, NewSource, Rejection, SecretInfo, SourcePatch};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiResult, Invalid, missing, not_found};
use crate::list::{List, Paging};
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete)
        .service(rejections)
        .service(list_secrets)
        .service(add_secret)
        .service(retire_secret);
}

const DEFAULT_BODY_LIMIT: i32 = 1024 * 1024;
const MAX_BODY_LIMIT: i32 = 10 * 1024 * 1024;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    pub(crate) name: String,
    /// `anthropic`, `standard_webhooks`, `github`, `stripe`, `slack`, `shopify`, `linear`,
    /// `sentry`, `zendesk`, `intercom`, `pagerduty`, `jira`, `gitlab`, `twilio`, `hmac`,
    /// `basic_auth`, `api_key` or `none`.
    pub(crate) provider: String,
    /// The sender's signing secret (`whsec_…` for Standard Webhooks and Anthropic).
    pub(crate) secret: Option<String>,
    /// Largest body accepted, in bytes (1 KiB to 10 MiB; default 1 MiB).
    pub(crate) body_limit: Option<i32>,
    /// Header whose value is the dedup key, instead of the provider's ("" clears).
    pub(crate) dedup_header: Option<String>,
    /// JSON pointer into the body (`/data/id`) whose value is the dedup key ("" clears).
    pub(crate) dedup_pointer: Option<String>,
    /// Header whose value is the event type, instead of the provider's ("" clears).
    pub(crate) event_type_header: Option<String>,
    /// JSON pointer into the body whose value is the event type ("" clears).
    pub(crate) event_type_pointer: Option<String>,
    /// `api_key`: the header carrying the key (default `x-api-key`; "" clears).
    pub(crate) api_key_header: Option<String>,
    /// GitHub: accept the legacy sha1 signature when no sha256 one is sent.
    pub(crate) allow_sha1: Option<bool>,
    /// `hmac` (required there, refused elsewhere): how the sender signs.
    pub(crate) hmac: Option<HmacScheme>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    #[serde(flatten)]
    source: Source,
    /// Where the sender posts webhooks. Keep it secret: it is the credential.
    ingest_url: String,
}

fn view(state: &WebState, source: Source) -> SourceView {
    let ingest_url = ingest_url(state, &source);
    SourceView { source, ingest_url }
}

/// Where the sender posts: the source's token is the credential in the path.
pub(crate) fn ingest_url(state: &WebState, source: &Source) -> String {
    format!("{}/hooks/{}", state.public_url, source.token)
}

fn parse_id(id: &str) -> ApiResult<SourceId> {
    id.parse().map_err(|_| not_found("source"))
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

/// The provider settings a request carries, flat beside its other fields.
struct SettingsInput {
    api_key_header: Option<String>,
    dedup_header: Option<String>,
    dedup_pointer: Option<String>,
    event_type_header: Option<String>,
    event_type_pointer: Option<String>,
    allow_sha1: Option<bool>,
    hmac: Option<HmacScheme>,
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

#[utoipa::path(tag = "sources", request_body = CreateSource,
    responses((status = 201, body = SourceView), (status = 401), (status = 422)))]
#[post("/sources")]
async fn create(
    team: ApiTeam,
    state: web::Data<WebState>,
    body: web::Json<CreateSource>,
) -> ApiResult<HttpResponse> {
    let source = create_source(&state, &team.0, &team.1, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(view(&state, source)))
}

/// Validates and stores a new source, for the API and the dashboard alike.
pub(crate) async fn create_source(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    body: CreateSource,
) -> ApiResult<Source> {
    let mut invalid = Invalid::default();
    let name = invalid.check("name", Name::parse(&body.name));
    let provider = invalid.check("provider", body.provider.parse::<ProviderKind>());
    let body_limit = check_body_limit(&mut invalid, body.body_limit).unwrap_or(DEFAULT_BODY_LIMIT);
    let mut settings = ProviderSettings::default();
    let input = SettingsInput {
        api_key_header: body.api_key_header,
        dedup_header: body.dedup_header,
        dedup_pointer: body.dedup_pointer,
        event_type_header: body.event_type_header,
        event_type_pointer: body.event_type_pointer,
        allow_sha1: body.allow_sha1,
        hmac: body.hmac,
    };
    apply_settings(&mut invalid, provider, &mut settings, input);
    let sealed_secret = match (provider, body.secret.as_deref()) {
        (Some(p), None) if p.needs_secret() => {
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
            .map(|key| state.key.seal(&key)),
        _ => None,
    };
    invalid.finish()?;
    let (Some(name), Some(provider)) = (name, provider) else {
        return Err(Problem::internal().into());
    };

    let mut tx = state.pool.begin().await?;
    let new = NewSource {
        name: name.as_str(),
        provider,
        settings: &settings,
        body_limit,
        sealed_secret,
    };
    let source = sources::insert(&mut tx, team, new, &random_token(32)).await?;
    audit::record(&mut *tx, team, actor, "source.create", &source.name).await?;
    tx.commit().await?;
    Ok(source)
}

#[utoipa::path(tag = "sources", params(Paging), responses((status = 200, body = List<SourceView>)))]
#[get("/sources")]
async fn list(
    team: ApiTeam,
    state: web::Data<WebState>,
    q: web::Query<Paging>,
) -> ApiResult<web::Json<List<SourceView>>> {
    let page = sources::list(&state.pool, &team.0, &q.request()).await?;
    Ok(web::Json(List::from_page(page, |s| view(&state, s))))
}

#[utoipa::path(tag = "sources", responses((status = 200, body = SourceView), (status = 404)))]
#[get("/sources/{id}")]
async fn get(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<SourceView>> {
    let source = sources::get(&state.pool, &team.0, &parse_id(&id)?)
        .await
        .map_err(missing("source"))?;
    Ok(web::Json(view(&state, source)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSource {
    pub(crate) name: Option<String>,
    pub(crate) body_limit: Option<i32>,
    /// Header whose value is the dedup key, instead of the provider's ("" clears).
    pub(crate) dedup_header: Option<String>,
    /// JSON pointer into the body (`/data/id`) whose value is the dedup key ("" clears).
    pub(crate) dedup_pointer: Option<String>,
    /// Header whose value is the event type, instead of the provider's ("" clears).
    pub(crate) event_type_header: Option<String>,
    /// JSON pointer into the body whose value is the event type ("" clears).
    pub(crate) event_type_pointer: Option<String>,
    /// `api_key`: the header carrying the key (default `x-api-key`; "" clears).
    pub(crate) api_key_header: Option<String>,
    /// GitHub: accept the legacy sha1 signature when no sha256 one is sent.
    pub(crate) allow_sha1: Option<bool>,
    /// `hmac`: how the sender signs (replaces the whole scheme).
    pub(crate) hmac: Option<HmacScheme>,
}

#[utoipa::path(tag = "sources", request_body = UpdateSource,
    responses((status = 200, body = SourceView), (status = 404), (status = 422)))]
#[patch("/sources/{id}")]
async fn update(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
    body: web::Json<UpdateSource>,
) -> ApiResult<web::Json<SourceView>> {
    let id = parse_id(&id)?;
    let source = update_source(&state, &team.0, &team.1, &id, body.into_inner()).await?;
    Ok(web::Json(view(&state, source)))
}

/// Applies the fields sent, for the API and the dashboard alike.
pub(crate) async fn update_source(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    id: &SourceId,
    body: UpdateSource,
) -> ApiResult<Source> {
    let mut invalid = Invalid::default();
    let name = body
        .name
        .as_deref()
        .and_then(|n| invalid.check("name", Name::parse(n)));
    let body_limit = check_body_limit(&mut invalid, body.body_limit);
    let mut tx = state.pool.begin().await?;
    let current = sources::get(&mut *tx, team, id)
        .await
        .map_err(missing("source"))?;
    let mut settings = current.settings.0.clone();
    let input = SettingsInput {
        api_key_header: body.api_key_header,
        dedup_header: body.dedup_header,
        dedup_pointer: body.dedup_pointer,
        event_type_header: body.event_type_header,
        event_type_pointer: body.event_type_pointer,
        allow_sha1: body.allow_sha1,
        hmac: body.hmac,
    };
    apply_settings(&mut invalid, Some(current.provider), &mut settings, input);
    invalid.finish()?;
    let patch = SourcePatch {
        name: name.map(|n| n.to_string()),
        settings: Some(settings),
        body_limit,
    };
    let source = sources::update(&mut *tx, team, id, patch).await?;
    audit::record(&mut *tx, team, actor, "source.update", &source.name).await?;
    tx.commit().await?;
    Ok(source)
}

#[utoipa::path(tag = "sources", responses((status = 204), (status = 404)))]
#[delete("/sources/{id}")]
async fn delete(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    delete_source(&state, &team.0, &team.1, &parse_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) async fn delete_source(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    id: &SourceId,
) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    let source = sources::get(&mut *tx, team, id)
        .await
        .map_err(missing("source"))?;
    sources::delete(&mut *tx, team, id).await?;
    audit::record(&mut *tx, team, actor, "source.delete", &source.name).await?;
    tx.commit().await?;
    Ok(())
}

/// Why the source's latest requests were refused (newest first, the last 100 kept).
#[utoipa::path(tag = "sources", responses((status = 200, body = List<Rejection>), (status = 404)))]
#[get("/sources/{id}/rejections")]
async fn rejections(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<List<Rejection>>> {
    let id = owned(&state, &team, &id).await?;
    Ok(whole(sources::rejections(&state.pool, &team.0, &id).await?))
}

/// The id of one of the team's sources, or the 404 for a sub-resource of another's.
async fn owned(state: &WebState, team: &ApiTeam, id: &str) -> ApiResult<SourceId> {
    let id = parse_id(id)?;
    sources::get(&state.pool, &team.0, &id)
        .await
        .map_err(missing("source"))?;
    Ok(id)
}

/// A short list answered whole: no further page.
fn whole<T>(data: Vec<T>) -> web::Json<List<T>> {
    web::Json(List {
        data,
        next_cursor: None,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSecret {
    /// The sender's new signing secret. Both the old and the new one verify until the
    /// old one is retired.
    secret: String,
}

/// The source's secrets (never their values), newest first.
#[utoipa::path(tag = "sources", responses((status = 200, body = List<SecretInfo>), (status = 404)))]
#[get("/sources/{id}/secrets")]
async fn list_secrets(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> ApiResult<web::Json<List<SecretInfo>>> {
    let id = owned(&state, &team, &id).await?;
    Ok(whole(sources::secrets(&state.pool, &team.0, &id).await?))
}

/// Starts a rotation: adds a second secret that verifies alongside the current one.
#[utoipa::path(tag = "sources", request_body = AddSecret,
    responses((status = 201, body = SecretInfo), (status = 404), (status = 409), (status = 422)))]
#[post("/sources/{id}/secrets")]
async fn add_secret(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
    body: web::Json<AddSecret>,
) -> ApiResult<HttpResponse> {
    let added = add_source_secret(&state, &team.0, &team.1, &parse_id(&id)?, &body.secret).await?;
    Ok(HttpResponse::Created().json(added))
}

pub(crate) async fn add_source_secret(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    id: &SourceId,
    secret: &str,
) -> ApiResult<SecretInfo> {
    let mut tx = state.pool.begin().await?;
    let source = sources::get(&mut *tx, team, id)
        .await
        .map_err(missing("source"))?;
    let key = source
        .provider
        .parse_secret(secret)
        .map_err(|e| Problem::invalid_field("secret", e))?;
    let added = sources::add_secret(&mut tx, team, id, &state.key.seal(&key)).await?;
    audit::record(&mut *tx, team, actor, "source.secret.add", &source.name).await?;
    tx.commit().await?;
    Ok(added)
}

/// Ends a rotation: the retired secret no longer verifies. The last one cannot go.
#[utoipa::path(tag = "sources", responses((status = 204), (status = 404), (status = 409)))]
#[delete("/sources/{id}/secrets/{secret_id}")]
async fn retire_secret(
    team: ApiTeam,
    state: web::Data<WebState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, secret_id) = path.into_inner();
    let id = parse_id(&id)?;
    let secret_id: SecretId = secret_id.parse().map_err(|_| not_found("secret"))?;
    retire_source_secret(&state, &team.0, &team.1, &id, &secret_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) async fn retire_source_secret(
    state: &WebState,
    team: &TeamId,
    actor: &str,
    id: &SourceId,
    secret_id: &SecretId,
) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    sources::retire_secret(&mut tx, team, id, secret_id)
        .await
        .map_err(missing("secret"))?;
    audit::record(&mut *tx, team, actor, "source.secret.retire", id.as_str()).await?;
    tx.commit().await?;
    Ok(())
}
