//! PagerDuty v3 webhook subscriptions: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]`, the
//! HMAC-SHA256 of the raw body, one item per signing secret PagerDuty holds (that is its
//! zero-downtime rotation), so any `v1` matching any of our secrets passes; other versions
//! are skipped. The secret looks like base64 but is used as a string, never decoded. No
//! timestamp is signed, so freshness is not checked: `X-Webhook-Id`, repeated on every
//! delivery attempt, is the dedup key.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use sha2::Sha256;

use super::signing::{hex_signature, matches_any, require_secret, required_header};
use super::{
    DedupKey, Inbound, Provider, ProviderSettings, VerifyError, json_str, keyed_by_header,
};

pub struct Pagerduty;

const SIGNATURE_HEADER: &str = "X-PagerDuty-Signature";
const WEBHOOK_ID_HEADER: &str = "X-Webhook-Id";

impl Provider for Pagerduty {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        require_secret(secrets)?;
        let value = required_header(req, SIGNATURE_HEADER)?;
        // A `v1=` item that is not 32-byte hex cannot match and is dropped, as go-pagerduty
        // does; a header with no `version=` item at all is not this scheme.
        if !value.split(',').any(|item| item.contains('=')) {
            return Err(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()));
        }
        let candidates: Vec<Vec<u8>> = value
            .split(',')
            .filter_map(|item| hex_signature(item, "v1=", 32))
            .collect();
        matches_any::<Hmac<Sha256>>(secrets, &[req.body], &candidates)
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        json_str(req, "/event/event_type")
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

    /// providers.md §12 [OFFICIAL]: go-pagerduty `webhookv3/webhookv3_test.go`.
    const GO_SECRET: &[u8] = b"lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK";
    const GO_BODY: &[u8] = br#"{"event":{"id":"01BWDWL3NYY7LUFPZCC28QUCMK","event_type":"incident.priority_updated","resource_type":"incident","occurred_at":"2021-04-26T17:36:27.458Z","agent":{"html_url":"https://acme.pagerduty.com/users/PLH1HKV","id":"PLH1HKV","self":"https://api.pagerduty.com/users/PLH1HKV","summary":"Tenex Engineer","type":"user_reference"},"client":null,"data":{"id":"PGR0VU2","type":"incident","self":"https://api.pagerduty.com/incidents/PGR0VU2","html_url":"https://acme.pagerduty.com/incidents/PGR0VU2","number":2,"status":"triggered","title":"A little bump in the road","service":{"html_url":"https://acme.pagerduty.com/services/PF9KMXH","id":"PF9KMXH","self":"https://api.pagerduty.com/services/PF9KMXH","summary":"API Service","type":"service_reference"},"assignees":[{"html_url":"https://acme.pagerduty.com/users/PTUXL6G","id":"PTUXL6G","self":"https://api.pagerduty.com/users/PTUXL6G","summary":"User 123","type":"user_reference"}],"escalation_policy":{"html_url":"https://acme.pagerduty.com/escalation_policies/PUS0KTE","id":"PUS0KTE","self":"https://api.pagerduty.com/escalation_policies/PUS0KTE","summary":"Default","type":"escalation_policy_reference"},"teams":[{"html_url":"https://acme.pagerduty.com/teams/PFCVPS0","id":"PFCVPS0","self":"https://api.pagerduty.com/teams/PFCVPS0","summary":"Engineering","type":"team_reference"}],"priority":{"html_url":"https://acme.pagerduty.com/account/incident_priorities","id":"PSO75BM","self":"https://api.pagerduty.com/priorities/PSO75BM","summary":"P1","type":"priority_reference"},"urgency":"high","conference_bridge":{"conference_number":1000,"conference_url":"https://example.com"},"resolve_reason":null}}}"#;
    const GO_SIG: &str = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd";
    const GO_BAD_SIG: &str = "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5";

    /// providers.md §12 [SELF, short].
    const SHORT_SECRET: &[u8] = b"pd_secret";
    const SHORT_BODY: &[u8] = br#"{"event":{"id":"01TEST","event_type":"incident.triggered"}}"#;
    const SHORT_SIG: &str = "v1=a412e46be5af57b62b47c98418b9b838f12f32fff8e489c0272637286589cc96";

    fn verify(h: &Headers, body: &[u8], secrets: &[&[u8]]) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Pagerduty.verify(req, secrets, &ProviderSettings::default(), at(0))
        })
    }

    fn signed(value: &str) -> Headers {
        headers(&[("X-PagerDuty-Signature", value)])
    }

    #[test]
    fn official_go_pagerduty_vector_verifies() {
        assert_eq!(GO_BODY.len(), 1655);
        assert_eq!(verify(&signed(GO_SIG), GO_BODY, &[GO_SECRET]), Ok(()));
    }

    #[test]
    fn official_negative_vector_is_rejected() {
        assert_eq!(
            verify(&signed(GO_BAD_SIG), GO_BODY, &[GO_SECRET]),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn self_short_vector_verifies() {
        assert_eq!(
            verify(&signed(SHORT_SIG), SHORT_BODY, &[SHORT_SECRET]),
            Ok(())
        );
    }

    #[test]
    fn rotation_form_with_an_old_signature_first_verifies() {
        let header = format!("{GO_BAD_SIG},{SHORT_SIG}");
        assert_eq!(
            verify(&signed(&header), SHORT_BODY, &[SHORT_SECRET]),
            Ok(())
        );
        let spaced = format!("{GO_BAD_SIG}, {SHORT_SIG}");
        assert_eq!(
            verify(&signed(&spaced), SHORT_BODY, &[SHORT_SECRET]),
            Ok(())
        );
    }

    #[test]
    fn only_v1_items_are_checked() {
        let v2 = SHORT_SIG.replace("v1=", "v2=");
        assert_eq!(
            verify(&signed(&v2), SHORT_BODY, &[SHORT_SECRET]),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn tampered_body_is_rejected() {
        let body = br#"{"event":{"id":"01TEST","event_type":"incident.resolved"}}"#;
        assert_eq!(
            verify(&signed(SHORT_SIG), body, &[SHORT_SECRET]),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn second_secret_is_accepted_during_rotation() {
        assert_eq!(
            verify(&signed(SHORT_SIG), SHORT_BODY, &[b"old", SHORT_SECRET]),
            Ok(())
        );
        assert_eq!(
            verify(&signed(SHORT_SIG), SHORT_BODY, &[b"old"]),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn missing_and_malformed_signatures_are_reported() {
        assert_eq!(
            verify(&Headers::default(), SHORT_BODY, &[SHORT_SECRET]),
            Err(VerifyError::MissingHeader("X-PagerDuty-Signature".into()))
        );
        let bare = SHORT_SIG.trim_start_matches("v1=");
        assert_eq!(
            verify(&signed(bare), SHORT_BODY, &[SHORT_SECRET]),
            Err(VerifyError::MalformedHeader("X-PagerDuty-Signature".into()))
        );
    }

    #[test]
    fn event_type_is_the_event_event_type() {
        let h = Headers::default();
        let event = with_json(&h, GO_BODY, |req| Pagerduty.event_type(req));
        assert_eq!(event.as_deref(), Some("incident.priority_updated"));
    }

    #[test]
    fn dedup_key_is_the_webhook_id_then_the_content_hash() {
        let settings = ProviderSettings::default();
        let h = headers(&[
            ("X-Webhook-Id", "wh-123"),
            ("X-Webhook-Subscription", "sub-1"),
        ]);
        let key = with_json(&h, SHORT_BODY, |req| Pagerduty.dedup_key(req, &settings));
        assert_eq!(key.value, "wh-123");
        assert_eq!(key.kind, DedupKind::ProviderId);
        let key = with_json(&Headers::default(), SHORT_BODY, |req| {
            Pagerduty.dedup_key(req, &settings)
        });
        assert_eq!(key, content_hash(SHORT_BODY));
    }

    #[test]
    fn dedup_header_setting_overrides_the_webhook_id() {
        let h = headers(&[("X-Webhook-Id", "wh-123"), ("X-Key", "k")]);
        let settings = ProviderSettings {
            dedup_header: Some("x-key".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, SHORT_BODY, |req| Pagerduty.dedup_key(req, &settings));
        assert_eq!(key.value, "k");
    }
}
