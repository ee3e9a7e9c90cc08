//! The `http` destination's own settings: method, custom headers (their values are
//! credentials, sealed), an `Authorization` it sends, and the rotation of its signing
//! secret.

use std::collections::BTreeMap;

use actix_web::{post, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use switchyard_domain::app::Invalid;
use switchyard_domain::delivery::DestinationKind;
use switchyard_domain::model::{AuthScheme, Credentials, DestinationSettings, HttpMethod};
use switchyard_domain::secrets::new_signing_secret;
use switchyard_domain::store::destinations;
use switchyard_problem::Problem;

use crate::error::{ApiResult, missing, not_found};
use crate::{ApiTeam, WebState};

/// What the request may send as the `Authorization` header.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthInput {
    Bearer {
        token: String,
    },
    Basic {
        username: String,
        password: String,
    },
    /// Sends none (clears one set before).
    None,
}

const MAX_HEADERS: usize = 20;
const MAX_HEADER_VALUE: usize = 4096;

/// Headers Switchyard sets itself, or that would change how the request is framed.
fn reserved(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "content-type"
            | "content-length"
            | "host"
            | "connection"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "user-agent"
    ) || name.starts_with("webhook-")
        || name.starts_with("switchyard-")
}

/// Applies the http fields that were sent: `method`, `headers` (the whole set; `{}`
/// clears) and `auth`.
pub fn apply(
    invalid: &mut Invalid,
    method: Option<&str>,
    headers: Option<BTreeMap<String, String>>,
    auth: Option<AuthInput>,
    settings: &mut DestinationSettings,
    credentials: &mut Option<Credentials>,
) {
    if let Some(method) = method {
        match method.to_ascii_uppercase().as_str() {
            "POST" => settings.method = None,
            "PUT" => settings.method = Some(HttpMethod::Put),
            "PATCH" => settings.method = Some(HttpMethod::Patch),
            _ => invalid.add("method", "must be POST, PUT or PATCH"),
        }
    }
    if let Some(headers) = headers {
        match check_headers(headers) {
            Ok(headers) => {
                settings.header_names = headers.iter().map(|(n, _)| n.clone()).collect();
                credentials.get_or_insert_with(Credentials::default).headers = headers;
            }
            Err(e) => invalid.add("headers", e),
        }
    }
    if let Some(auth) = auth {
        let (scheme, value) = match auth {
            AuthInput::Bearer { token } if valid_value(&token) && !token.is_empty() => {
                (Some(AuthScheme::Bearer), Some(format!("Bearer {token}")))
            }
            AuthInput::Basic { username, password }
                if !username.contains(':') && valid_value(&username) && valid_value(&password) =>
            {
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                (Some(AuthScheme::Basic), Some(format!("Basic {encoded}")))
            }
            AuthInput::None => (None, None),
            _ => {
                invalid.add(
                    "auth",
                    "a bearer token, or a username without ':' and a password, without line breaks",
                );
                return;
            }
        };
        settings.auth = scheme;
        credentials
            .get_or_insert_with(Credentials::default)
            .authorization = value;
    }
}

/// What an HTTP header value may hold: visible ASCII, spaces and tabs, and UTF-8 beyond
/// ASCII; never control characters (CR and LF would start a new header).
fn valid_value(value: &str) -> bool {
    value.len() <= MAX_HEADER_VALUE && !value.chars().any(|c| c.is_control() && c != '\t')
}

fn check_headers(headers: BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!("at most {MAX_HEADERS} headers"));
    }
    headers
        .into_iter()
        .map(|(name, value)| {
            let name = name.trim().to_ascii_lowercase();
            let token = !name.is_empty()
                && name.len() <= 100
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !token {
                return Err(format!("{name:?} is not a header name"));
            }
            if reserved(&name) {
                return Err(format!(
                    "{name} is set by Switchyard (use auth for authorization)"
                ));
            }
            if !valid_value(&value) {
                return Err(format!(
                    "the value of {name} is too long or has line breaks"
                ));
            }
            Ok((name, value))
        })
        .collect()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSigningSecret {
    /// How long the old secret keeps signing beside the new one, in seconds (default one
    /// day, at most a week; 0 stops it at once).
    overlap_seconds: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedSigningSecret {
    /// The new `whsec_…` secret; shown this once.
    signing_secret: String,
    /// Until when requests also carry a signature made with the old secret.
    previous_valid_until: DateTime<Utc>,
}

const DEFAULT_OVERLAP: u32 = 24 * 60 * 60;
const MAX_OVERLAP: u32 = 7 * 24 * 60 * 60;

/// A new signing secret for an http destination (send `{}` for the default overlap).
/// Until the overlap ends every request is signed with both, so a receiver can switch
/// secrets at its own pace.
#[utoipa::path(tag = "destinations", request_body = RotateSigningSecret,
    responses((status = 200, body = RotatedSigningSecret), (status = 404), (status = 422)))]
#[post("/destinations/{id}/rotate-signing-secret")]
pub async fn rotate_signing_secret(
    team: ApiTeam,
    state: web::Data<WebState>,
    id: web::Path<String>,
    body: web::Json<RotateSigningSecret>,
) -> ApiResult<web::Json<RotatedSigningSecret>> {
    let id = id.parse().map_err(|_| not_found("destination"))?;
    let overlap = body.overlap_seconds.unwrap_or(DEFAULT_OVERLAP);
    if overlap > MAX_OVERLAP {
        let mut invalid = Invalid::default();
        invalid.add(
            "overlap_seconds",
            format!("must be at most {MAX_OVERLAP} (a week)"),
        );
        invalid.finish()?;
    }
    let destination = destinations::get(&state.pool, &team.team, &id)
        .await
        .map_err(missing("destination"))?;
    if destination.kind != DestinationKind::Http {
        return Err(
            Problem::invalid_field("kind", "only http destinations sign their requests").into(),
        );
    }
    let signing_secret = new_signing_secret();
    let until = Utc::now() + Duration::seconds(i64::from(overlap));
    let sealed = state.key.seal(signing_secret.as_bytes());
    destinations::rotate_signing_secret(&state.pool, &team.team, &id, &sealed, until)
        .await
        .map_err(missing("destination"))?;
    Ok(web::Json(RotatedSigningSecret {
        signing_secret,
        previous_valid_until: until,
    }))
}
