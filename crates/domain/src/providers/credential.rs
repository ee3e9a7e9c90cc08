//! Senders that prove themselves with the shared secret itself rather than a signature:
//! HTTP Basic auth (`basic_auth`, secret `user:password`) and an API key in a header
//! (`api_key`, header `x-api-key` unless the source names another; a `Bearer ` prefix is
//! accepted in `Authorization`). Nothing covers the body, so the transport must be TLS;
//! event type and dedup key are read as for `none` (body `type`, the source's
//! overrides, else a content hash).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::none::NoVerification;
use super::signing::{equals_any, require_secret, required_header};
use super::{DedupKey, Inbound, Provider, ProviderSettings, VerifyError};

const AUTHORIZATION: &str = "Authorization";
const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

pub struct BasicAuth;
pub struct ApiKey;

impl Provider for BasicAuth {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        require_secret(secrets)?;
        let value = required_header(req, AUTHORIZATION)?;
        let encoded = strip_scheme(value, "Basic")
            .ok_or(VerifyError::MalformedHeader(AUTHORIZATION.into()))?;
        let credentials = STANDARD
            .decode(encoded.trim())
            .map_err(|_| VerifyError::MalformedHeader(AUTHORIZATION.into()))?;
        equals_any(secrets, &credentials)
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        NoVerification.event_type(req)
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        NoVerification.dedup_key(req, settings)
    }
}

impl Provider for ApiKey {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        require_secret(secrets)?;
        let header = settings
            .api_key_header
            .as_deref()
            .unwrap_or(DEFAULT_API_KEY_HEADER);
        let value = req
            .headers
            .get(header)
            .ok_or_else(|| VerifyError::MissingHeader(header.to_owned().into()))?;
        let key = if header.eq_ignore_ascii_case(AUTHORIZATION) {
            strip_scheme(value, "Bearer").unwrap_or(value)
        } else {
            value
        };
        equals_any(secrets, key.trim().as_bytes())
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        NoVerification.event_type(req)
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        NoVerification.dedup_key(req, settings)
    }
}

/// The credentials after an HTTP auth scheme, whose name is case-insensitive
/// (RFC 9110 §11.1).
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = value.trim_start().split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Headers;
    use crate::providers::testing::at;

    fn verify(
        provider: &dyn Provider,
        headers: Headers,
        settings: &ProviderSettings,
    ) -> Result<(), VerifyError> {
        let req = Inbound {
            url: "",
            headers: &headers,
            body: b"{}",
            json: None,
        };
        provider.verify(&req, &[b"old:pw", b"user:s3cret"], settings, at(0))
    }

    fn headers(name: &str, value: &str) -> Headers {
        Headers::from_pairs([(name.to_owned(), value.to_owned())])
    }

    #[test]
    fn basic_auth_accepts_any_active_credential_and_nothing_else() {
        let settings = ProviderSettings::default();
        let good = format!("Basic {}", STANDARD.encode("user:s3cret"));
        assert_eq!(
            verify(&BasicAuth, headers("authorization", &good), &settings),
            Ok(())
        );
        let wrong = format!("Basic {}", STANDARD.encode("user:guess"));
        assert_eq!(
            verify(&BasicAuth, headers("authorization", &wrong), &settings),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(
                &BasicAuth,
                headers("authorization", "Bearer user:s3cret"),
                &settings
            ),
            Err(VerifyError::MalformedHeader(AUTHORIZATION.into()))
        );
        assert_eq!(
            verify(&BasicAuth, Headers::default(), &settings),
            Err(VerifyError::MissingHeader(AUTHORIZATION.into()))
        );
    }

    #[test]
    fn an_api_key_is_read_from_the_named_header_or_a_bearer_token() {
        let default = ProviderSettings::default();
        assert_eq!(
            verify(&ApiKey, headers("X-Api-Key", "user:s3cret"), &default),
            Ok(())
        );
        assert_eq!(
            verify(&ApiKey, headers("x-api-key", "nope"), &default),
            Err(VerifyError::NoMatch)
        );
        let bearer = ProviderSettings {
            api_key_header: Some("authorization".to_owned()),
            ..default.clone()
        };
        assert_eq!(
            verify(&ApiKey, headers("Authorization", "Bearer old:pw"), &bearer),
            Ok(())
        );
        assert!(matches!(
            verify(&ApiKey, Headers::default(), &bearer),
            Err(VerifyError::MissingHeader(_))
        ));
    }
}
