//! Intercom webhooks: `X-Hub-Signature: sha1=<hex>`, the HMAC-SHA1 of the raw body keyed
//! with the app's `client_secret` as a string. SHA-1 is all Intercom offers, so it is
//! accepted here (unlike GitHub, where it is an opt-in fallback). No timestamp is signed
//! in a header and none is documented for replay checks, so this module does not check
//! freshness: the notification `id` (`notif_…`) in the body is the dedup key.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use sha1::Sha1;

use super::signing::{Encoding, verify_body_signature};
use super::{
    DedupKey, DedupKind, Inbound, Provider, ProviderSettings, VerifyError, content_hash,
    header_override, json_str,
};

pub struct Intercom;

const SIGNATURE_HEADER: &str = "X-Hub-Signature";

impl Provider for Intercom {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        verify_body_signature::<Hmac<Sha1>>(req, secrets, SIGNATURE_HEADER, Encoding::Hex("sha1="))
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        json_str(req, "/topic")
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        header_override(req, settings)
            .or_else(|| {
                let id = req.json?.get("id")?.as_str().filter(|id| !id.is_empty())?;
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
    use crate::providers::Headers;
    use crate::providers::testing::{at, headers, with_json};

    /// providers.md §11 [SELF] (npm x-hub-signature agrees).
    const SECRET: &[u8] = b"intercom_client_secret";
    const BODY: &[u8] = br#"{"type":"notification_event","id":"notif_123","topic":"ping"}"#;
    const SIG: &str = "sha1=95834802568a9c82a6829393a38536412ddbd189";

    fn verify(h: &Headers, body: &[u8], secrets: &[&[u8]]) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Intercom.verify(req, secrets, &ProviderSettings::default(), at(0))
        })
    }

    #[test]
    fn self_vector_verifies() {
        let h = headers(&[("X-Hub-Signature", SIG)]);
        assert_eq!(verify(&h, BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn tampered_body_is_rejected() {
        let h = headers(&[("X-Hub-Signature", SIG)]);
        let body = br#"{"type":"notification_event","id":"notif_124","topic":"ping"}"#;
        assert_eq!(verify(&h, body, &[SECRET]), Err(VerifyError::NoMatch));
    }

    #[test]
    fn second_secret_is_accepted_during_rotation() {
        let h = headers(&[("X-Hub-Signature", SIG)]);
        assert_eq!(verify(&h, BODY, &[b"old", SECRET]), Ok(()));
        assert_eq!(verify(&h, BODY, &[b"old"]), Err(VerifyError::NoMatch));
    }

    #[test]
    fn missing_and_malformed_signatures_are_reported() {
        assert_eq!(
            verify(&Headers::default(), BODY, &[SECRET]),
            Err(VerifyError::MissingHeader("X-Hub-Signature".into()))
        );
        let h = headers(&[(
            "X-Hub-Signature",
            "sha256=95834802568a9c82a6829393a38536412ddbd189",
        )]);
        assert_eq!(
            verify(&h, BODY, &[SECRET]),
            Err(VerifyError::MalformedHeader("X-Hub-Signature".into()))
        );
    }

    #[test]
    fn event_type_is_the_topic_and_dedup_key_the_notification_id() {
        let h = Headers::default();
        assert_eq!(
            with_json(&h, BODY, |req| Intercom.event_type(req)).as_deref(),
            Some("ping")
        );
        let key = with_json(&h, BODY, |req| {
            Intercom.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key.value, "notif_123");
        assert_eq!(key.kind, DedupKind::ProviderId);
        let key = with_json(&h, b"{}", |req| {
            Intercom.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key, content_hash(b"{}"));
    }

    #[test]
    fn dedup_header_setting_overrides_the_notification_id() {
        let h = headers(&[("X-Key", "k-1")]);
        let settings = ProviderSettings {
            dedup_header: Some("x-key".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, BODY, |req| Intercom.dedup_key(req, &settings));
        assert_eq!(key.value, "k-1");
    }
}
