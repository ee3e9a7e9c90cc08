//! The `none` provider: for senders that sign nothing, or that the owner verifies some
//! other way (a secret path, an allow-listed network). Every request is accepted, so this
//! module must not be chosen silently: a source is `none` only because its owner said so.
//! Dedup has no sender id to lean on, hence the owner-named `dedup_header` or
//! `dedup_pointer`, or a content hash.

use chrono::{DateTime, Utc};

use super::{
    DedupKey, Inbound, Provider, ProviderSettings, VerifyError, content_hash, header_override,
    json_str,
};

pub struct NoVerification;

impl Provider for NoVerification {
    fn verify(
        &self,
        _req: &Inbound<'_>,
        _secrets: &[&[u8]],
        _settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        Ok(())
    }

    /// A top-level `type` is the most common convention among unsigned senders; anything
    /// else is left for routing on the body.
    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        json_str(req, "/type")
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        header_override(req, settings).unwrap_or_else(|| content_hash(req.body))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::providers::{DedupKind, Headers};

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
    fn any_request_verifies_even_without_secrets() {
        let h = Headers::default();
        let now = DateTime::from_timestamp(0, 0).unwrap();
        let result = with_json(&h, b"anything", |req| {
            NoVerification.verify(req, &[], &ProviderSettings::default(), now)
        });
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn event_type_is_the_top_level_type_string() {
        let h = Headers::default();
        let event = with_json(&h, br#"{"type":"build.finished"}"#, |req| {
            NoVerification.event_type(req)
        });
        assert_eq!(event.as_deref(), Some("build.finished"));
    }

    #[test]
    fn event_type_is_none_without_a_type_string() {
        let h = Headers::default();
        for body in [&br#"{"kind":"x"}"#[..], br#"{"type":3}"#, b"not json"] {
            let event = with_json(&h, body, |req| NoVerification.event_type(req));
            assert_eq!(event, None);
        }
    }

    #[test]
    fn dedup_key_is_the_named_header_when_sent() {
        let h = Headers::from_pairs([("Idempotency-Key".to_owned(), "k-42".to_owned())]);
        let settings = ProviderSettings {
            dedup_header: Some("idempotency-key".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, b"{}", |req| NoVerification.dedup_key(req, &settings));
        assert_eq!(key.value, "k-42");
        assert_eq!(key.kind, DedupKind::ProviderId);
    }

    #[test]
    fn dedup_key_is_the_content_hash_when_the_named_header_is_absent_or_empty() {
        let settings = ProviderSettings {
            dedup_header: Some("idempotency-key".to_owned()),
            ..ProviderSettings::default()
        };
        let empty = Headers::from_pairs([("Idempotency-Key".to_owned(), String::new())]);
        for h in [Headers::default(), empty] {
            let key = with_json(&h, b"{}", |req| NoVerification.dedup_key(req, &settings));
            assert_eq!(key, content_hash(b"{}"));
            assert_eq!(key.kind, DedupKind::ContentHash);
        }
        let key = with_json(&Headers::default(), b"{}", |req| {
            NoVerification.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key, content_hash(b"{}"));
    }
}
