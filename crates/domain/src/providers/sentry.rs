//! Sentry integration-platform (Sentry App) webhooks: `Sentry-Hook-Signature` is the bare
//! hex HMAC-SHA256 of the raw body keyed with the app's client secret as a string.
//! `Sentry-Hook-Timestamp` is **not** signed, so it must not be used for freshness. Sentry
//! sends no stable delivery id either (`Request-ID` is new on every send), so the dedup
//! key is derived from the payload: resource, action, installation and the object's id,
//! hashed. Being derived, it is a `ContentHash` key and holds only for the short window,
//! so that two real events that happen to look alike are not lost for long.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::signing::{Encoding, verify_body_signature};
use super::{
    DedupKey, DedupKind, Inbound, Provider, ProviderSettings, VerifyError, content_hash,
    header_override,
};

pub struct Sentry;

const SIGNATURE_HEADER: &str = "Sentry-Hook-Signature";
const RESOURCE_HEADER: &str = "Sentry-Hook-Resource";

impl Provider for Sentry {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        verify_body_signature::<Hmac<Sha256>>(req, secrets, SIGNATURE_HEADER, Encoding::Hex(""))
    }

    /// `issue.created`: the resource header and the body's action; the resource alone
    /// when there is no action.
    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        let resource = req.headers.get(RESOURCE_HEADER).filter(|r| !r.is_empty())?;
        let action = req
            .json
            .and_then(|json| json.get("action"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty());
        Some(match action {
            Some(action) => format!("{resource}.{action}"),
            None => resource.to_owned(),
        })
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        header_override(req, settings)
            .or_else(|| payload_key(req))
            .unwrap_or_else(|| content_hash(req.body))
    }
}

/// `sentry:` + sha256 hex of the JSON array `[resource, action, installation.uuid,
/// object id]` (an array, so no choice of values can make two different tuples encode
/// alike). The object id is the `id` of the first object under `data` that has one, in
/// sorted key order so the choice does not depend on how the JSON map keeps its keys; a numeric id is
/// taken as its decimal text. None when the body is not JSON or names neither an
/// installation nor an object: such a key would merge unrelated deliveries.
fn payload_key(req: &Inbound<'_>) -> Option<DedupKey> {
    let json = req.json?;
    let text = |value: Option<&Value>| match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let installation = text(json.get("installation").and_then(|i| i.get("uuid")));
    let object_id = json
        .get("data")
        .and_then(Value::as_object)
        .and_then(|data| {
            let mut keys: Vec<&String> = data.keys().collect();
            keys.sort();
            keys.into_iter()
                .find_map(|key| text(data.get(key).and_then(|object| object.get("id"))))
        });
    if installation.is_none() && object_id.is_none() {
        return None;
    }
    let resource = req.headers.get(RESOURCE_HEADER).unwrap_or_default();
    let action = json
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tuple = serde_json::json!([resource, action, installation, object_id]);
    Some(DedupKey {
        value: format!(
            "sentry:{}",
            hex::encode(Sha256::digest(tuple.to_string().as_bytes()))
        ),
        kind: DedupKind::ContentHash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Headers;
    use crate::providers::testing::{at, headers, with_json};

    /// providers.md §9 [SELF].
    const SECRET: &[u8] = b"sentry_client_secret";
    const BODY: &[u8] = br#"{"action":"created","installation":{"uuid":"inst-1"},"data":{"issue":{"id":"1"}},"actor":{"type":"application","id":"sentry","name":"Sentry"}}"#;
    const SIG: &str = "452db58b875312592f3ed67b050b1cf917d7bac5cd3b34a6de116453e20e4105";

    fn verify(h: &Headers, body: &[u8], secrets: &[&[u8]]) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Sentry.verify(req, secrets, &ProviderSettings::default(), at(0))
        })
    }

    fn dedup(h: &Headers, body: &[u8]) -> DedupKey {
        with_json(h, body, |req| {
            Sentry.dedup_key(req, &ProviderSettings::default())
        })
    }

    #[test]
    fn self_vector_verifies() {
        let h = headers(&[("Sentry-Hook-Signature", SIG)]);
        assert_eq!(verify(&h, BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn tampered_body_is_rejected() {
        let h = headers(&[("Sentry-Hook-Signature", SIG)]);
        let body = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("created", "resolved");
        assert_eq!(
            verify(&h, body.as_bytes(), &[SECRET]),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn second_secret_is_accepted_during_rotation() {
        let h = headers(&[("Sentry-Hook-Signature", SIG)]);
        assert_eq!(verify(&h, BODY, &[b"old", SECRET]), Ok(()));
        assert_eq!(verify(&h, BODY, &[b"old"]), Err(VerifyError::NoMatch));
    }

    #[test]
    fn missing_and_malformed_signatures_are_reported() {
        assert_eq!(
            verify(&Headers::default(), BODY, &[SECRET]),
            Err(VerifyError::MissingHeader("Sentry-Hook-Signature".into()))
        );
        let h = headers(&[("Sentry-Hook-Signature", &SIG[..40])]);
        assert_eq!(
            verify(&h, BODY, &[SECRET]),
            Err(VerifyError::MalformedHeader("Sentry-Hook-Signature".into()))
        );
    }

    #[test]
    fn event_type_is_the_resource_and_the_action() {
        let h = headers(&[("Sentry-Hook-Resource", "issue")]);
        assert_eq!(
            with_json(&h, BODY, |req| Sentry.event_type(req)).as_deref(),
            Some("issue.created")
        );
        let bare = with_json(&h, b"{}", |req| Sentry.event_type(req));
        assert_eq!(bare.as_deref(), Some("issue"));
        let none = with_json(&Headers::default(), BODY, |req| Sentry.event_type(req));
        assert_eq!(none, None);
    }

    #[test]
    fn dedup_key_is_a_short_window_hash_of_the_payload_identity() {
        let h = headers(&[("Sentry-Hook-Resource", "issue"), ("Request-ID", "a1")]);
        let key = dedup(&h, BODY);
        let expected = Sha256::digest(br#"["issue","created","inst-1","1"]"#);
        assert_eq!(key.value, format!("sentry:{}", hex::encode(expected)));
        assert_eq!(key.kind, DedupKind::ContentHash);
    }

    #[test]
    fn dedup_key_ignores_the_per_send_request_id_and_other_fields() {
        let first = headers(&[("Sentry-Hook-Resource", "issue"), ("Request-ID", "a1")]);
        let resend = headers(&[("Sentry-Hook-Resource", "issue"), ("Request-ID", "b2")]);
        let other_actor = br#"{"action":"created","installation":{"uuid":"inst-1"},"data":{"issue":{"id":"1"}},"actor":{"id":"u-2"}}"#;
        assert_eq!(dedup(&first, BODY), dedup(&resend, other_actor));
        let other_action = br#"{"action":"resolved","installation":{"uuid":"inst-1"},"data":{"issue":{"id":"1"}}}"#;
        assert_ne!(dedup(&first, BODY), dedup(&first, other_action));
    }

    #[test]
    fn dedup_key_takes_a_numeric_id_and_the_first_data_key_in_sorted_order() {
        let h = headers(&[("Sentry-Hook-Resource", "event_alert")]);
        let body = br#"{"action":"triggered","data":{"z":{"id":"zz"},"event":{"id":42}}}"#;
        let expected = Sha256::digest(br#"["event_alert","triggered",null,"42"]"#);
        assert_eq!(
            dedup(&h, body).value,
            format!("sentry:{}", hex::encode(expected))
        );
    }

    #[test]
    fn dedup_key_is_the_content_hash_without_an_installation_or_object() {
        let h = headers(&[("Sentry-Hook-Resource", "issue")]);
        let body = br#"{"action":"created","data":{}}"#;
        assert_eq!(dedup(&h, body), content_hash(body));
        assert_eq!(dedup(&h, b"not json"), content_hash(b"not json"));
    }

    #[test]
    fn dedup_header_setting_overrides_the_payload_key() {
        let h = headers(&[("X-Key", "k")]);
        let settings = ProviderSettings {
            dedup_header: Some("x-key".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, BODY, |req| Sentry.dedup_key(req, &settings));
        assert_eq!(key.value, "k");
        assert_eq!(key.kind, DedupKind::ProviderId);
    }
}
