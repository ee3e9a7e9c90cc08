//! Anthropic (Claude Managed Agents) webhooks. On the wire they are Standard Webhooks v1,
//! so verification is delegated whole to that module rather than restated: a fix there
//! must reach both. What this module owns is the envelope: the event type lives in
//! `data.type` (the top-level `type` is always "event"), and the body's `id` is the
//! documented idempotency key when no header carries one.

use chrono::{DateTime, Utc};

use super::standard_webhooks::{StandardWebhooks, message_id};
use super::{
    DedupKey, DedupKind, Inbound, Provider, ProviderSettings, VerifyError, content_hash,
    header_override, json_str,
};

pub struct Anthropic;

impl Provider for Anthropic {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        settings: &ProviderSettings,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        StandardWebhooks.verify(req, secrets, settings, now)
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        json_str(req, "/data/type")
    }

    /// `webhook-id` equals the body `id` in current deliveries; the body is the fallback
    /// for a relay that drops the header, and both are stable across Anthropic's retries.
    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        header_override(req, settings)
            .or_else(|| message_id(req.headers))
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
    use serde_json::Value;

    use super::*;
    use crate::providers::{Headers, decode_secret};

    /// anthropic.md §1.2: the SDK test secret and body.
    const SDK_SECRET: &str = "whsec_c2VjcmV0Cg==";
    const SDK_ID: &str = "whe_0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const SDK_TS: i64 = 1_773_568_800;
    const SDK_BODY: &[u8] = br#"{"id":"whe_0f1e2d3c4b5a69788796a5b4c3d2e1f0","created_at":"2026-03-15T10:00:00Z","data":{"id":"sesn_011CZkZAtmR3yMPDzynEDxu7","organization_id":"org_011CZkZZAe0sMna4vkBdtrfx","type":"session.status_idled","workspace_id":"wrkspc_011CZkZaBF1tNoB5wlCeusgy"},"type":"event"}"#;
    const SDK_SIGNATURE: &str = "v1,YunRpM14wPHe8sMDuEeZVa/YijpgKtXgHBZzex3fEP0=";

    /// providers.md §6 [SELF].
    const SELF_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SELF_ID: &str = "msg_test_01";
    const SELF_TS: i64 = 1_767_225_600;
    const SELF_BODY: &[u8] = br#"{"type":"event","id":"wevt_test_01","created_at":"2026-01-01T00:00:00Z","data":{"type":"session.status_idled","id":"sesn_test_01"}}"#;
    const SELF_SIGNATURE: &str = "v1,GlPwhmlmt/cuU/PQsPCZdVxEHYip72iBMF6KOhjaNis=";

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        )
    }

    fn delivery(id: &str, ts: i64, signature: &str) -> Headers {
        headers(&[
            ("Webhook-Id", id),
            ("Webhook-Timestamp", &ts.to_string()),
            ("Webhook-Signature", signature),
        ])
    }

    fn verify(headers: &Headers, body: &[u8], secret: &str, now: i64) -> Result<(), VerifyError> {
        let key = decode_secret(secret).unwrap();
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let req = Inbound {
            url: "",
            headers,
            body,
            json: json.as_ref(),
        };
        let now = DateTime::from_timestamp(now, 0).unwrap();
        Anthropic.verify(&req, &[&key], &ProviderSettings::default(), now)
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
    fn sdk_vector_verifies() {
        let h = delivery(SDK_ID, SDK_TS, SDK_SIGNATURE);
        assert_eq!(verify(&h, SDK_BODY, SDK_SECRET, SDK_TS), Ok(()));
    }

    #[test]
    fn sdk_secret_decodes_to_the_sdk_test_key() {
        assert_eq!(decode_secret(SDK_SECRET).unwrap(), b"secret\n");
    }

    #[test]
    fn self_vector_verifies() {
        let h = delivery(SELF_ID, SELF_TS, SELF_SIGNATURE);
        assert_eq!(verify(&h, SELF_BODY, SELF_SECRET, SELF_TS), Ok(()));
    }

    #[test]
    fn official_standard_webhooks_vector_verifies_as_anthropic() {
        let h = delivery(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        assert_eq!(
            verify(&h, br#"{"test": 2432232314}"#, SELF_SECRET, 1_614_265_330),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_is_rejected() {
        let h = delivery(SDK_ID, SDK_TS, SDK_SIGNATURE);
        let body = String::from_utf8(SDK_BODY.to_vec())
            .unwrap()
            .replace("status_idled", "status_terminated");
        assert_eq!(
            verify(&h, body.as_bytes(), SDK_SECRET, SDK_TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_rejected() {
        let h = delivery(SDK_ID, SDK_TS, SDK_SIGNATURE);
        assert_eq!(
            verify(&h, SDK_BODY, SDK_SECRET, SDK_TS + 301),
            Err(VerifyError::StaleTimestamp {
                off_by: 301,
                window: 300
            })
        );
        assert_eq!(
            verify(&h, SDK_BODY, SDK_SECRET, SDK_TS - 301),
            Err(VerifyError::StaleTimestamp {
                off_by: -301,
                window: 300
            })
        );
    }

    #[test]
    fn the_legacy_x_webhook_signature_header_is_not_accepted() {
        let h = headers(&[
            ("webhook-id", SDK_ID),
            ("webhook-timestamp", &SDK_TS.to_string()),
            ("X-Webhook-Signature", SDK_SIGNATURE),
        ]);
        assert_eq!(
            verify(&h, SDK_BODY, SDK_SECRET, SDK_TS),
            Err(VerifyError::MissingHeader("webhook-signature".into()))
        );
    }

    #[test]
    fn event_type_is_data_type_not_the_envelope_type() {
        let h = Headers::default();
        let event = with_json(&h, SDK_BODY, |req| Anthropic.event_type(req));
        assert_eq!(event.as_deref(), Some("session.status_idled"));
        let none = with_json(&h, br#"{"type":"event"}"#, |req| Anthropic.event_type(req));
        assert_eq!(none, None);
    }

    #[test]
    fn dedup_key_is_the_webhook_id() {
        let h = delivery("whe_header", SDK_TS, SDK_SIGNATURE);
        let key = with_json(&h, SDK_BODY, |req| {
            Anthropic.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key.value, "whe_header");
        assert_eq!(key.kind, DedupKind::ProviderId);
    }

    #[test]
    fn dedup_key_falls_back_to_the_body_id_then_the_content_hash() {
        let h = Headers::default();
        let key = with_json(&h, SDK_BODY, |req| {
            Anthropic.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key.value, SDK_ID);
        assert_eq!(key.kind, DedupKind::ProviderId);

        let body = br#"{"type":"event","data":{"type":"session.deleted"}}"#;
        let key = with_json(&h, body, |req| {
            Anthropic.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key, content_hash(body));
    }

    #[test]
    fn dedup_header_setting_overrides_the_webhook_id() {
        let h = headers(&[("webhook-id", SDK_ID), ("X-Trace", "trace-7")]);
        let settings = ProviderSettings {
            dedup_header: Some("X-Trace".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, SDK_BODY, |req| Anthropic.dedup_key(req, &settings));
        assert_eq!(key.value, "trace-7");
        assert_eq!(key.kind, DedupKind::ProviderId);
    }
}
