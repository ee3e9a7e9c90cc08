//! Jira / Atlassian admin webhooks registered with a secret (Jira Cloud since Feb 2024,
//! Jira Data Center): `X-Hub-Signature: sha256=<hex>`, the WebSub HMAC-SHA256 of the raw
//! body keyed with the secret as a string. Connect apps authenticate with a JWT instead,
//! which this module does not handle. No timestamp is signed in a header and no window is
//! documented for the body's `timestamp`, so freshness is not checked: replays are stopped
//! by dedup on `X-Atlassian-Webhook-Identifier`, which retries keep.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use sha2::Sha256;

use super::signing::{Encoding, verify_body_signature};
use super::{
    DedupKey, Inbound, Provider, ProviderSettings, VerifyError, json_str, keyed_by_header,
};

pub struct Jira;

const SIGNATURE_HEADER: &str = "X-Hub-Signature";
const IDENTIFIER_HEADER: &str = "X-Atlassian-Webhook-Identifier";

impl Provider for Jira {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        verify_body_signature::<Hmac<Sha256>>(
            req,
            secrets,
            SIGNATURE_HEADER,
            Encoding::Hex("sha256="),
        )
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        json_str(req, "/webhookEvent")
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        keyed_by_header(req, settings, IDENTIFIER_HEADER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::DedupKind;
    use crate::providers::Headers;
    use crate::providers::content_hash;
    use crate::providers::testing::{at, headers, with_json};

    /// providers.md §15 [SELF].
    const SECRET: &[u8] = b"jira_secret";
    const BODY: &[u8] = br#"{"webhookEvent":"jira:issue_created","timestamp":1700000000000}"#;
    const SIG: &str = "sha256=7fa9d4cfc67d745c0a818a658b8b55faf55674c0b6d883ebbcd9459ed0e929ca";

    fn verify(h: &Headers, body: &[u8], secrets: &[&[u8]]) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Jira.verify(req, secrets, &ProviderSettings::default(), at(0))
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
        let body = br#"{"webhookEvent":"jira:issue_deleted","timestamp":1700000000000}"#;
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
            "sha1=95834802568a9c82a6829393a38536412ddbd189",
        )]);
        assert_eq!(
            verify(&h, BODY, &[SECRET]),
            Err(VerifyError::MalformedHeader("X-Hub-Signature".into()))
        );
    }

    #[test]
    fn event_type_is_the_webhook_event() {
        let event = with_json(&Headers::default(), BODY, |req| Jira.event_type(req));
        assert_eq!(event.as_deref(), Some("jira:issue_created"));
    }

    #[test]
    fn dedup_key_is_the_webhook_identifier_then_the_content_hash() {
        let settings = ProviderSettings::default();
        let h = headers(&[
            ("X-Atlassian-Webhook-Identifier", "wh-1-100"),
            ("X-Atlassian-Webhook-Retry", "1"),
        ]);
        let key = with_json(&h, BODY, |req| Jira.dedup_key(req, &settings));
        assert_eq!(key.value, "wh-1-100");
        assert_eq!(key.kind, DedupKind::ProviderId);
        let key = with_json(&Headers::default(), BODY, |req| {
            Jira.dedup_key(req, &settings)
        });
        assert_eq!(key, content_hash(BODY));
    }

    #[test]
    fn dedup_header_setting_overrides_the_webhook_identifier() {
        let h = headers(&[("X-Atlassian-Webhook-Identifier", "wh-1"), ("X-Key", "k")]);
        let settings = ProviderSettings {
            dedup_header: Some("x-key".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, BODY, |req| Jira.dedup_key(req, &settings));
        assert_eq!(key.value, "k");
    }
}
