//! The `http` destination's own fields: its URL, method, custom headers (their values
//! are credentials, sealed) and an `Authorization` it sends.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::config::{Configured, given_or_kept};
use crate::app::Invalid;
use crate::model::{AuthScheme, Credentials, DestinationConfig, DestinationUrl, HttpMethod};
use crate::netguard::Policy;

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

/// An http destination's fields in a command.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpInput {
    /// An `https://` URL on a public address.
    pub url: Option<String>,
    /// `POST` (the default), `PUT` or `PATCH`.
    pub method: Option<String>,
    /// Custom headers sent with every request (their values are kept encrypted and
    /// never shown); replaces the whole set, `{}` removes them.
    pub headers: Option<BTreeMap<String, String>>,
    /// An `Authorization` to send: `{"type":"bearer","token":…}`,
    /// `{"type":"basic","username":…,"password":…}` or `{"type":"none"}`.
    pub auth: Option<AuthInput>,
}

/// Applies the http fields that were sent over `current`: `url`, `method`, `headers`
/// (the whole set; `{}` clears) and `auth`.
pub(super) fn configure(
    invalid: &mut Invalid,
    input: HttpInput,
    current: Option<(DestinationConfig, Credentials)>,
    policy: Policy,
) -> Option<Configured> {
    let (url, mut method, mut header_names, mut auth, mut headers, mut authorization) =
        match current {
            Some((
                DestinationConfig::Http {
                    url,
                    method,
                    header_names,
                    auth,
                },
                Credentials::Http {
                    headers,
                    authorization,
                },
            )) => (
                Some(url),
                method,
                header_names,
                auth,
                headers,
                authorization,
            ),
            _ => Default::default(),
        };
    let url = given_or_kept(
        invalid,
        "url",
        input.url,
        url,
        "an http destination needs its url",
        |raw| DestinationUrl::parse(raw, policy).map(|u| u.as_str().to_owned()),
    );
    if let Some(given) = input.method {
        match given.to_ascii_uppercase().as_str() {
            "POST" => method = HttpMethod::Post,
            "PUT" => method = HttpMethod::Put,
            "PATCH" => method = HttpMethod::Patch,
            _ => invalid.add("method", "must be POST, PUT or PATCH"),
        }
    }
    if let Some(given) = input.headers {
        match check_headers(given) {
            Ok(given) => {
                header_names = given.iter().map(|(n, _)| n.clone()).collect();
                headers = given;
            }
            Err(e) => invalid.add("headers", e),
        }
    }
    if let Some(given) = input.auth {
        match given {
            AuthInput::Bearer { token } if valid_value(&token) && !token.is_empty() => {
                auth = Some(AuthScheme::Bearer);
                authorization = Some(format!("Bearer {token}"));
            }
            AuthInput::Basic { username, password }
                if !username.contains(':') && valid_value(&username) && valid_value(&password) =>
            {
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                auth = Some(AuthScheme::Basic);
                authorization = Some(format!("Basic {encoded}"));
            }
            AuthInput::None => {
                auth = None;
                authorization = None;
            }
            _ => invalid.add(
                "auth",
                "a bearer token, or a username without ':' and a password, without line breaks",
            ),
        }
    }
    Some(Configured {
        config: DestinationConfig::Http {
            url: url?,
            method,
            header_names,
            auth,
        },
        credentials: Credentials::Http {
            headers,
            authorization,
        },
    })
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
