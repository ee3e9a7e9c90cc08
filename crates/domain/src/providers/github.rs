//! GitHub webhooks: `X-Hub-Signature-256: sha256=<hex>` over the raw body, and the
//! legacy sha1 header only when the source opted in. Owns the event name
//! (`X-GitHub-Event` plus the body's `action`) and the delivery-id dedup key. GitHub
//! signs no timestamp, so this module must not pretend to check freshness: replays are
//! stopped by dedup on `X-GitHub-Delivery`, which redeliveries keep.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use serde_json::Value;
use sha1::Sha1;
use sha2::Sha256;

use super::signing::{hex_signature, matches_any, require_secret};
use super::{DedupKey, Inbound, Provider, ProviderSettings, VerifyError, keyed_by_header};

pub struct Github;

const SHA256_HEADER: &str = "X-Hub-Signature-256";
const SHA1_HEADER: &str = "X-Hub-Signature";
const EVENT_HEADER: &str = "X-GitHub-Event";
const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

impl Provider for Github {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        require_secret(secrets)?;
        // GitHub has no rotation of its own, so an owner rotating keeps the old and the
        // new secret active for a while (octokit's `verifyWithFallback`): each is tried.
        // When sha256 is sent it is the only one checked, even with sha1 allowed: falling
        // back after a sha256 mismatch would let a forger pick the weaker algorithm.
        if let Some(value) = req.headers.get(SHA256_HEADER) {
            let expected = hex_signature(value, "sha256=", 32)
                .ok_or(VerifyError::MalformedHeader(SHA256_HEADER.into()))?;
            return matches_any::<Hmac<Sha256>>(secrets, &[req.body], &[expected]);
        }
        if settings.allow_sha1
            && let Some(value) = req.headers.get(SHA1_HEADER)
        {
            let expected = hex_signature(value, "sha1=", 20)
                .ok_or(VerifyError::MalformedHeader(SHA1_HEADER.into()))?;
            return matches_any::<Hmac<Sha1>>(secrets, &[req.body], &[expected]);
        }
        Err(VerifyError::MissingHeader(SHA256_HEADER.into()))
    }

    /// `issues.opened` rather than `issues`: most GitHub events are only useful to route
    /// on together with their action.
    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        let event = req.headers.get(EVENT_HEADER).filter(|e| !e.is_empty())?;
        // A form-encoded delivery carries the JSON in its `payload` field.
        let action = req
            .json
            .and_then(|json| {
                json.get("action")
                    .or_else(|| json.pointer("/payload/action"))
            })
            .and_then(Value::as_str);
        Some(match action {
            Some(action) => format!("{event}.{action}"),
            None => event.to_owned(),
        })
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        keyed_by_header(req, settings, DELIVERY_HEADER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::DedupKind;
    use crate::providers::Headers;
    use crate::providers::content_hash;

    const DOCS_SECRET: &[u8] = b"It's a Secret to Everybody";
    const DOCS_BODY: &[u8] = b"Hello, World!";
    const DOCS_SHA256: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const DOCS_SHA1: &str = "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59";

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn verify_with(
        headers: &Headers,
        body: &[u8],
        secrets: &[&[u8]],
        settings: &ProviderSettings,
    ) -> Result<(), VerifyError> {
        let req = Inbound {
            url: "",
            headers,
            body,
            json: None,
        };
        Github.verify(&req, secrets, settings, now())
    }

    fn verify(headers: &Headers, body: &[u8]) -> Result<(), VerifyError> {
        verify_with(headers, body, &[DOCS_SECRET], &ProviderSettings::default())
    }

    fn sha1_allowed() -> ProviderSettings {
        ProviderSettings {
            allow_sha1: true,
            ..ProviderSettings::default()
        }
    }

    fn with_json<T>(headers: &Headers, body: &[u8], f: impl FnOnce(&Inbound<'_>) -> T) -> T {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        f(&Inbound {
            url: "",
            headers,
            body,
            json: json.as_ref(),
        })
    }

    #[test]
    fn github_official_vector_verifies() {
        let h = headers(&[("X-Hub-Signature-256", DOCS_SHA256)]);
        assert_eq!(verify(&h, DOCS_BODY), Ok(()));
    }

    #[test]
    fn octokit_official_vector_verifies() {
        let body = b"{\n  \"foo\": \"bar\"\n}\n";
        assert_eq!(body.len(), 19);
        let h = headers(&[(
            "x-hub-signature-256",
            "sha256=e3eccac34c43c7dc1cbb905488b1b81347fcc700a7b025697a9d07862256023f",
        )]);
        assert_eq!(
            verify_with(&h, body, &[b"mysecret"], &ProviderSettings::default()),
            Ok(())
        );
    }

    #[test]
    fn legacy_sha1_vector_verifies_when_allowed() {
        let h = headers(&[("X-Hub-Signature", DOCS_SHA1)]);
        assert_eq!(
            verify_with(&h, DOCS_BODY, &[DOCS_SECRET], &sha1_allowed()),
            Ok(())
        );
    }

    #[test]
    fn legacy_sha1_alone_is_refused_unless_allowed() {
        let h = headers(&[("X-Hub-Signature", DOCS_SHA1)]);
        assert_eq!(
            verify(&h, DOCS_BODY),
            Err(VerifyError::MissingHeader("X-Hub-Signature-256".into()))
        );
    }

    #[test]
    fn sha1_is_not_a_fallback_when_sha256_fails() {
        let wrong = "sha256=0000000000000000000000000000000000000000000000000000000000000000";
        let h = headers(&[
            ("X-Hub-Signature-256", wrong),
            ("X-Hub-Signature", DOCS_SHA1),
        ]);
        assert_eq!(
            verify_with(&h, DOCS_BODY, &[DOCS_SECRET], &sha1_allowed()),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn tampered_body_is_rejected() {
        let h = headers(&[("X-Hub-Signature-256", DOCS_SHA256)]);
        assert_eq!(verify(&h, b"Hello, World?"), Err(VerifyError::NoMatch));
        let h = headers(&[("X-Hub-Signature", DOCS_SHA1)]);
        assert_eq!(
            verify_with(&h, b"Hello, World?", &[DOCS_SECRET], &sha1_allowed()),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn wrong_secret_is_rejected_and_a_second_secret_is_accepted() {
        let h = headers(&[("X-Hub-Signature-256", DOCS_SHA256)]);
        let settings = ProviderSettings::default();
        assert_eq!(
            verify_with(&h, DOCS_BODY, &[b"old secret"], &settings),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify_with(&h, DOCS_BODY, &[b"old secret", DOCS_SECRET], &settings),
            Ok(())
        );
    }

    #[test]
    fn missing_signature_header_is_reported() {
        assert_eq!(
            verify(&Headers::default(), DOCS_BODY),
            Err(VerifyError::MissingHeader("X-Hub-Signature-256".into()))
        );
    }

    #[test]
    fn malformed_signature_headers_are_reported() {
        let bad = [
            DOCS_SHA256.trim_start_matches("sha256="),
            "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e",
            "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ];
        for value in bad {
            let h = headers(&[("X-Hub-Signature-256", value)]);
            assert_eq!(
                verify(&h, DOCS_BODY),
                Err(VerifyError::MalformedHeader("X-Hub-Signature-256".into())),
                "{value}"
            );
        }
    }

    #[test]
    fn no_usable_secret_is_reported() {
        let h = headers(&[("X-Hub-Signature-256", DOCS_SHA256)]);
        let settings = ProviderSettings::default();
        assert_eq!(
            verify_with(&h, DOCS_BODY, &[], &settings),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn event_type_joins_the_event_header_and_the_action() {
        let h = headers(&[("X-GitHub-Event", "issues")]);
        let event = with_json(&h, br#"{"action":"opened","issue":{}}"#, |req| {
            Github.event_type(req)
        });
        assert_eq!(event.as_deref(), Some("issues.opened"));
    }

    #[test]
    fn event_type_is_the_bare_event_without_a_string_action() {
        let h = headers(&[("x-github-event", "push")]);
        let push = with_json(&h, br#"{"ref":"refs/heads/main"}"#, |req| {
            Github.event_type(req)
        });
        assert_eq!(push.as_deref(), Some("push"));
        let odd = with_json(&h, br#"{"action":7}"#, |req| Github.event_type(req));
        assert_eq!(odd.as_deref(), Some("push"));
        let not_json = with_json(&h, b"payload=%7B%7D", |req| Github.event_type(req));
        assert_eq!(not_json.as_deref(), Some("push"));
    }

    #[test]
    fn event_type_is_none_without_the_event_header() {
        let h = Headers::default();
        let event = with_json(&h, br#"{"action":"opened"}"#, |req| Github.event_type(req));
        assert_eq!(event, None);
    }

    #[test]
    fn dedup_key_is_the_delivery_id() {
        let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        let h = headers(&[("X-GitHub-Delivery", delivery)]);
        let key = with_json(&h, DOCS_BODY, |req| {
            Github.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key.value, delivery);
        assert_eq!(key.kind, DedupKind::ProviderId);
    }

    #[test]
    fn dedup_key_falls_back_to_the_content_hash() {
        let key = with_json(&Headers::default(), DOCS_BODY, |req| {
            Github.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key, content_hash(DOCS_BODY));
    }

    #[test]
    fn dedup_header_setting_overrides_the_delivery_id() {
        let h = headers(&[("X-GitHub-Delivery", "d-1"), ("X-GitHub-Hook-ID", "h-9")]);
        let settings = ProviderSettings {
            dedup_header: Some("x-github-hook-id".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, DOCS_BODY, |req| Github.dedup_key(req, &settings));
        assert_eq!(key.value, "h-9");
        assert_eq!(key.kind, DedupKind::ProviderId);
    }
}
