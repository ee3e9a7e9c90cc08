//! GitLab webhooks, in two schemes. Classic: `X-Gitlab-Token` carries the secret token
//! itself, in plain text; nothing covers the body, so the check is a constant-time
//! equality with a secret. Since GitLab 19.0 a hook may instead have a signing token,
//! and then sends Standard Webhooks headers; when `webhook-signature` is present,
//! verification is delegated whole to that module (window, `v1,` list, and all).
//!
//! A GitLab source therefore holds either kind of secret, and `parse_secret` tells them
//! apart by prefix: a `whsec_` secret is a signing token and reaches this module already
//! base64-decoded, any other is the plain token's UTF-8 bytes. `verify` cannot tell which
//! kind each secret is, and need not: a token never signs, and a decoded key never equals
//! a token, so each scheme simply finds no match with the other kind.
//!
//! Dedup uses `Idempotency-Key` (stable across retries, GitLab ≥ 17.4, and equal to
//! `webhook-id`), then `X-Gitlab-Event-UUID`, which recursive hooks share.

use chrono::{DateTime, Utc};

use super::signing::{equals_any, require_secret, required_header};
use super::standard_webhooks::StandardWebhooks;
use super::{
    DedupKey, DedupKind, Inbound, Provider, ProviderSettings, VerifyError, content_hash,
    header_override,
};

pub struct Gitlab;

const SIGNATURE_HEADER: &str = "webhook-signature";
const TOKEN_HEADER: &str = "X-Gitlab-Token";
const EVENT_HEADER: &str = "X-Gitlab-Event";
const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
const EVENT_UUID_HEADER: &str = "X-Gitlab-Event-UUID";

impl Provider for Gitlab {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        settings: &ProviderSettings,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        if req.headers.get(SIGNATURE_HEADER).is_some() {
            return StandardWebhooks.verify(req, secrets, settings, now);
        }
        require_secret(secrets)?;
        let token = required_header(req, TOKEN_HEADER)?;
        equals_any(secrets, token.as_bytes())
    }

    /// The header as sent: `Push Hook`, `Merge Request Hook`.
    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        req.headers
            .get(EVENT_HEADER)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        header_override(req, settings)
            .or_else(|| {
                let id = [IDEMPOTENCY_HEADER, EVENT_UUID_HEADER]
                    .into_iter()
                    .find_map(|name| req.headers.get(name).filter(|id| !id.is_empty()))?;
                Some(DedupKey {
                    value: id.to_owned(),
                    kind: DedupKind::ProviderId,
                })
            })
            .unwrap_or_else(|| content_hash(req.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{at, headers, with_json};
    use crate::providers::{Headers, ProviderKind, decode_secret};

    /// providers.md §14 [SELF].
    const TOKEN: &str = "glwt-test-token";

    /// providers.md §5 [OFFICIAL] Standard Webhooks vector, for signing tokens.
    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TS: i64 = 1_614_265_330;
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn verify(h: &Headers, body: &[u8], secrets: &[&[u8]], now: i64) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Gitlab.verify(req, secrets, &ProviderSettings::default(), at(now))
        })
    }

    fn signed(sig: &str) -> Headers {
        headers(&[
            ("webhook-id", SW_ID),
            ("webhook-timestamp", &SW_TS.to_string()),
            ("webhook-signature", sig),
        ])
    }

    #[test]
    fn self_vector_plain_token_is_accepted_iff_equal() {
        let h = headers(&[("X-Gitlab-Token", TOKEN)]);
        assert_eq!(verify(&h, b"{}", &[TOKEN.as_bytes()], 0), Ok(()));
        for other in ["glwt-test-toke", "glwt-test-tokeN", "glwt-test-token ", ""] {
            let h = headers(&[("X-Gitlab-Token", other)]);
            assert_eq!(
                verify(&h, b"{}", &[TOKEN.as_bytes()], 0),
                Err(VerifyError::NoMatch),
                "{other:?}"
            );
        }
    }

    #[test]
    fn second_token_is_accepted_during_rotation() {
        let h = headers(&[("X-Gitlab-Token", TOKEN)]);
        assert_eq!(
            verify(&h, b"{}", &[b"old-token", TOKEN.as_bytes()], 0),
            Ok(())
        );
        assert_eq!(
            verify(&h, b"{}", &[b"old-token"], 0),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn missing_token_and_missing_secret_are_reported() {
        assert_eq!(
            verify(&Headers::default(), b"{}", &[TOKEN.as_bytes()], 0),
            Err(VerifyError::MissingHeader("X-Gitlab-Token".into()))
        );
        let h = headers(&[("X-Gitlab-Token", "")]);
        assert_eq!(verify(&h, b"{}", &[b""], 0), Err(VerifyError::NoSecret));
    }

    #[test]
    fn signing_token_official_vector_verifies_as_standard_webhooks() {
        let key = ProviderKind::Gitlab.parse_secret(SW_SECRET).unwrap();
        assert_eq!(key, decode_secret(SW_SECRET).unwrap());
        assert_eq!(verify(&signed(SW_SIG), SW_BODY, &[&key], SW_TS), Ok(()));
    }

    #[test]
    fn signing_token_rejects_a_tampered_body_and_a_stale_timestamp() {
        let key = decode_secret(SW_SECRET).unwrap();
        assert_eq!(
            verify(&signed(SW_SIG), br#"{"test": 2432232315}"#, &[&key], SW_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&signed(SW_SIG), SW_BODY, &[&key], SW_TS + 301),
            Err(VerifyError::StaleTimestamp {
                off_by: 301,
                window: 300
            })
        );
    }

    #[test]
    fn a_signed_request_is_not_let_through_by_a_token_header() {
        // With webhook-signature present only the signature decides.
        let key = decode_secret(SW_SECRET).unwrap();
        let h = headers(&[
            ("webhook-id", SW_ID),
            ("webhook-timestamp", &SW_TS.to_string()),
            ("webhook-signature", "v1,AAAA"),
            ("X-Gitlab-Token", TOKEN),
        ]);
        assert_eq!(
            verify(&h, SW_BODY, &[TOKEN.as_bytes(), &key], SW_TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn a_source_holding_both_kinds_accepts_both_schemes() {
        let key = decode_secret(SW_SECRET).unwrap();
        let secrets: [&[u8]; 2] = [TOKEN.as_bytes(), &key];
        assert_eq!(verify(&signed(SW_SIG), SW_BODY, &secrets, SW_TS), Ok(()));
        let h = headers(&[("X-Gitlab-Token", TOKEN)]);
        assert_eq!(verify(&h, SW_BODY, &secrets, SW_TS), Ok(()));
    }

    #[test]
    fn event_type_is_the_gitlab_event_header() {
        let h = headers(&[("X-Gitlab-Event", "Merge Request Hook")]);
        let event = with_json(&h, b"{}", |req| Gitlab.event_type(req));
        assert_eq!(event.as_deref(), Some("Merge Request Hook"));
        let none = with_json(&Headers::default(), b"{}", |req| Gitlab.event_type(req));
        assert_eq!(none, None);
    }

    #[test]
    fn dedup_key_prefers_the_idempotency_key_then_the_event_uuid() {
        let settings = ProviderSettings::default();
        let both = headers(&[
            ("Idempotency-Key", "idem-1"),
            ("X-Gitlab-Event-UUID", "uuid-1"),
        ]);
        let key = with_json(&both, b"{}", |req| Gitlab.dedup_key(req, &settings));
        assert_eq!(key.value, "idem-1");
        assert_eq!(key.kind, DedupKind::ProviderId);
        let uuid = headers(&[("X-Gitlab-Event-UUID", "uuid-1")]);
        let key = with_json(&uuid, b"{}", |req| Gitlab.dedup_key(req, &settings));
        assert_eq!(key.value, "uuid-1");
        let key = with_json(&Headers::default(), b"{}", |req| {
            Gitlab.dedup_key(req, &settings)
        });
        assert_eq!(key, content_hash(b"{}"));
    }

    #[test]
    fn dedup_header_setting_overrides_the_idempotency_key() {
        let h = headers(&[
            ("Idempotency-Key", "idem-1"),
            ("X-Gitlab-Webhook-UUID", "hook-9"),
        ]);
        let settings = ProviderSettings {
            dedup_header: Some("x-gitlab-webhook-uuid".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, b"{}", |req| Gitlab.dedup_key(req, &settings));
        assert_eq!(key.value, "hook-9");
    }
}
