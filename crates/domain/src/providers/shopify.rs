//! Shopify webhooks: `X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the raw body
//! keyed with the app's client secret as a string. Nothing else is signed: the
//! `X-Shopify-Triggered-At` header is not, so this module must not use it for freshness.
//! Replays are stopped by dedup on `X-Shopify-Webhook-Id`, which retries keep (it is per
//! subscription; `X-Shopify-Event-Id` would collapse fan-out across subscriptions, which
//! an owner can choose with the `dedup_header` setting). A rotated client secret can take
//! up to an hour to take effect, so both secrets should stay active that long.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use sha2::Sha256;

use super::signing::{Encoding, verify_body_signature};
use super::{DedupKey, Inbound, Provider, ProviderSettings, VerifyError, keyed_by_header};

pub struct Shopify;

const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";
const TOPIC_HEADER: &str = "X-Shopify-Topic";
const WEBHOOK_ID_HEADER: &str = "X-Shopify-Webhook-Id";

impl Provider for Shopify {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        verify_body_signature::<Hmac<Sha256>>(req, secrets, SIGNATURE_HEADER, Encoding::Base64)
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        req.headers
            .get(TOPIC_HEADER)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        keyed_by_header(req, settings, WEBHOOK_ID_HEADER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::DedupKind;
    use crate::providers::Headers;
    use crate::providers::content_hash;
    use crate::providers::testing::{at, headers, with_json};

    /// providers.md §7 [SELF].
    const SECRET: &[u8] = b"test_secret_key";
    const BODY: &[u8] = br#"{"id":1234567890,"email":"jon@example.com"}"#;
    const SIG: &str = "ajJxO5f3G3thXtqD4XvJK2e2Mgg6+kVZC0qD/yI0pYA=";

    fn verify(h: &Headers, body: &[u8], secrets: &[&[u8]]) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Shopify.verify(req, secrets, &ProviderSettings::default(), at(0))
        })
    }

    #[test]
    fn self_vector_verifies_whatever_the_header_case() {
        let h = headers(&[("X-Shopify-Hmac-SHA256", SIG)]);
        assert_eq!(verify(&h, BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn tampered_body_is_rejected() {
        let h = headers(&[("X-Shopify-Hmac-Sha256", SIG)]);
        let body = br#"{"id":1234567891,"email":"jon@example.com"}"#;
        assert_eq!(verify(&h, body, &[SECRET]), Err(VerifyError::NoMatch));
    }

    #[test]
    fn second_secret_is_accepted_during_rotation() {
        let h = headers(&[("X-Shopify-Hmac-Sha256", SIG)]);
        assert_eq!(verify(&h, BODY, &[b"old", SECRET]), Ok(()));
        assert_eq!(verify(&h, BODY, &[b"old"]), Err(VerifyError::NoMatch));
    }

    #[test]
    fn missing_and_malformed_signatures_are_reported() {
        assert_eq!(
            verify(&Headers::default(), BODY, &[SECRET]),
            Err(VerifyError::MissingHeader("X-Shopify-Hmac-Sha256".into()))
        );
        for bad in ["not base64!", "ajJxO5f3G3thXtqD4XvJK2e2Mgg6"] {
            let h = headers(&[("X-Shopify-Hmac-Sha256", bad)]);
            assert_eq!(
                verify(&h, BODY, &[SECRET]),
                Err(VerifyError::MalformedHeader("X-Shopify-Hmac-Sha256".into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn event_type_is_the_topic_header() {
        let h = headers(&[("X-Shopify-Topic", "orders/create")]);
        let event = with_json(&h, BODY, |req| Shopify.event_type(req));
        assert_eq!(event.as_deref(), Some("orders/create"));
        let none = with_json(&Headers::default(), BODY, |req| Shopify.event_type(req));
        assert_eq!(none, None);
    }

    #[test]
    fn dedup_key_is_the_webhook_id_then_the_content_hash() {
        let settings = ProviderSettings::default();
        let h = headers(&[
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
            ("X-Shopify-Event-Id", "evt-1"),
        ]);
        let key = with_json(&h, BODY, |req| Shopify.dedup_key(req, &settings));
        assert_eq!(key.value, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
        assert_eq!(key.kind, DedupKind::ProviderId);
        let key = with_json(&Headers::default(), BODY, |req| {
            Shopify.dedup_key(req, &settings)
        });
        assert_eq!(key, content_hash(BODY));
    }

    #[test]
    fn dedup_header_setting_can_choose_the_event_id() {
        let h = headers(&[
            ("X-Shopify-Webhook-Id", "w-1"),
            ("X-Shopify-Event-Id", "e-1"),
        ]);
        let settings = ProviderSettings {
            dedup_header: Some("X-Shopify-Event-Id".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, BODY, |req| Shopify.dedup_key(req, &settings));
        assert_eq!(key.value, "e-1");
    }
}
