//! Linear webhooks: `Linear-Signature` is the bare hex HMAC-SHA256 of the raw body keyed
//! with the secret as a string. The only timestamp is inside the signed body
//! (`webhookTimestamp`, Unix **milliseconds**); like @linear/sdk, this module refuses one
//! more than 60 s from `now` either way, and reads it only after the signature has
//! matched, so an unauthenticated body never decides anything. The event type is
//! `type.action` as Linear spells them (`Issue.create`); the dedup key is the
//! `Linear-Delivery` UUID.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use sha2::Sha256;

use super::signing::{Encoding, verify_body_signature};
use super::{DedupKey, Inbound, Provider, ProviderSettings, VerifyError, keyed_by_header};

pub struct Linear;

const SIGNATURE_HEADER: &str = "Linear-Signature";
const DELIVERY_HEADER: &str = "Linear-Delivery";
const TIMESTAMP_FIELD: &str = "webhookTimestamp";
const TOLERANCE_MS: i64 = 60_000;

impl Provider for Linear {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        verify_body_signature::<Hmac<Sha256>>(req, secrets, SIGNATURE_HEADER, Encoding::Hex(""))?;

        let sent_ms = req
            .json
            .and_then(|json| json.get(TIMESTAMP_FIELD))
            .and_then(serde_json::Value::as_i64)
            .ok_or(VerifyError::MalformedBody(TIMESTAMP_FIELD))?;
        let off_by_ms = now.timestamp_millis().saturating_sub(sent_ms);
        if off_by_ms.unsigned_abs() > TOLERANCE_MS.unsigned_abs() {
            // Whole seconds, rounded away from zero so the message never reads as inside.
            let secs = off_by_ms.unsigned_abs().div_ceil(1000);
            let off_by = i64::try_from(secs).unwrap_or(i64::MAX) * off_by_ms.signum();
            return Err(VerifyError::StaleTimestamp {
                off_by,
                window: TOLERANCE_MS / 1000,
            });
        }
        Ok(())
    }

    /// `Issue.create`: the entity and the action exactly as sent; the entity alone when
    /// there is no action.
    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        let json = req.json?;
        let entity = json.get("type")?.as_str().filter(|t| !t.is_empty())?;
        match json
            .get("action")
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
        {
            Some(action) => Some(format!("{entity}.{action}")),
            None => Some(entity.to_owned()),
        }
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        keyed_by_header(req, settings, DELIVERY_HEADER)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::providers::content_hash;
    use crate::providers::testing::{at, headers, with_json};
    use crate::providers::{DedupKind, Headers};

    /// providers.md §8 [SELF].
    const SECRET: &[u8] = b"lin_wh_test_secret";
    const BODY: &[u8] = br#"{"action":"create","type":"Issue","data":{"id":"issue-1"},"webhookTimestamp":1700000000000,"webhookId":"wh-1"}"#;
    const SIG: &str = "5a25fb11a9d1146568600180f50d4fc7ade4f58c017c022cef1bb7def03913ba";
    const TS: i64 = 1_700_000_000;

    fn verify_at(
        h: &Headers,
        body: &[u8],
        secrets: &[&[u8]],
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Linear.verify(req, secrets, &ProviderSettings::default(), now)
        })
    }

    fn verify(h: &Headers, body: &[u8], secrets: &[&[u8]]) -> Result<(), VerifyError> {
        verify_at(h, body, secrets, at(TS))
    }

    fn signed() -> Headers {
        headers(&[("Linear-Signature", SIG)])
    }

    #[test]
    fn self_vector_verifies() {
        assert_eq!(verify(&signed(), BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn tampered_body_is_rejected() {
        let body = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("create", "remove");
        assert_eq!(
            verify(&signed(), body.as_bytes(), &[SECRET]),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn timestamps_more_than_60_seconds_away_are_rejected_both_ways() {
        let h = signed();
        let late = at(TS) + TimeDelta::milliseconds(60_001);
        assert_eq!(
            verify_at(&h, BODY, &[SECRET], late),
            Err(VerifyError::StaleTimestamp {
                off_by: 61,
                window: 60
            })
        );
        let early = at(TS) - TimeDelta::seconds(61);
        assert_eq!(
            verify_at(&h, BODY, &[SECRET], early),
            Err(VerifyError::StaleTimestamp {
                off_by: -61,
                window: 60
            })
        );
        assert_eq!(verify_at(&h, BODY, &[SECRET], at(TS + 60)), Ok(()));
        assert_eq!(verify_at(&h, BODY, &[SECRET], at(TS - 60)), Ok(()));
    }

    #[test]
    fn stale_message_names_the_60_second_window() {
        let err = verify_at(&signed(), BODY, &[SECRET], at(TS + 3600)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "timestamp is 3600 s outside the allowed window of 60 s"
        );
    }

    #[test]
    fn a_signed_body_without_webhook_timestamp_is_refused() {
        let body = br#"{"action":"create","type":"Issue"}"#;
        let sig = {
            use hmac::Mac;
            use hmac::digest::KeyInit;
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        };
        let h = headers(&[("Linear-Signature", &sig)]);
        assert_eq!(
            verify(&h, body, &[SECRET]),
            Err(VerifyError::MalformedBody("webhookTimestamp"))
        );
    }

    #[test]
    fn second_secret_is_accepted_during_rotation() {
        assert_eq!(verify(&signed(), BODY, &[b"old", SECRET]), Ok(()));
        assert_eq!(
            verify(&signed(), BODY, &[b"old"]),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn missing_and_malformed_signatures_are_reported() {
        assert_eq!(
            verify(&Headers::default(), BODY, &[SECRET]),
            Err(VerifyError::MissingHeader("Linear-Signature".into()))
        );
        let h = headers(&[("Linear-Signature", &format!("sha256={SIG}"))]);
        assert_eq!(
            verify(&h, BODY, &[SECRET]),
            Err(VerifyError::MalformedHeader("Linear-Signature".into()))
        );
    }

    #[test]
    fn event_type_is_the_type_and_the_action_as_sent() {
        let h = Headers::default();
        assert_eq!(
            with_json(&h, BODY, |req| Linear.event_type(req)).as_deref(),
            Some("Issue.create")
        );
        let bare = with_json(&h, br#"{"type":"Issue"}"#, |req| Linear.event_type(req));
        assert_eq!(bare.as_deref(), Some("Issue"));
    }

    #[test]
    fn dedup_key_is_the_delivery_id_then_the_content_hash() {
        let settings = ProviderSettings::default();
        let h = headers(&[("Linear-Delivery", "234d1a4e-b617-4388-90fe-adc3633d6b72")]);
        let key = with_json(&h, BODY, |req| Linear.dedup_key(req, &settings));
        assert_eq!(key.value, "234d1a4e-b617-4388-90fe-adc3633d6b72");
        assert_eq!(key.kind, DedupKind::ProviderId);
        let key = with_json(&Headers::default(), BODY, |req| {
            Linear.dedup_key(req, &settings)
        });
        assert_eq!(key, content_hash(BODY));
    }

    #[test]
    fn dedup_header_setting_overrides_the_delivery_id() {
        let h = headers(&[("Linear-Delivery", "d-1"), ("X-Key", "k")]);
        let settings = ProviderSettings {
            dedup_header: Some("x-key".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, BODY, |req| Linear.dedup_key(req, &settings));
        assert_eq!(key.value, "k");
    }
}
