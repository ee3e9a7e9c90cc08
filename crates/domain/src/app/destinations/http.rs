//! The `http` destination's own fields: method, custom headers (their values are
//! credentials, sealed) and an `Authorization` it sends.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::app::Invalid;
use crate::model::{AuthScheme, Credentials, DestinationSettings, HttpMethod};

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
pub(super) fn apply(
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
