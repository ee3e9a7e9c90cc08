//! Zendesk webhooks: `X-Zendesk-Webhook-Signature` is the base64 HMAC-SHA256 of the
//! timestamp header's exact text followed by the raw body, with **no separator**. The key
//! is the signing secret's UTF-8 bytes: it looks like base64 and must not be decoded.
//! The timestamp (`X-Zendesk-Webhook-Signature-Timestamp`) is RFC 3339; Zendesk
//! prescribes no window, but it is signed, so this module applies ±300 s. The dedup key
//! is `X-Zendesk-Webhook-Invocation-Id`, shared by all attempts of one invocation.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use sha2::Sha256;

use super::signing::{
    base64_signature, matches_any, require_secret, required_header, within_window,
};
use super::{DedupKey, Inbound, Provider, ProviderSettings, VerifyError, keyed_by_header};

pub struct Zendesk;

const SIGNATURE_HEADER: &str = "X-Zendesk-Webhook-Signature";
const TIMESTAMP_HEADER: &str = "X-Zendesk-Webhook-Signature-Timestamp";
const INVOCATION_HEADER: &str = "X-Zendesk-Webhook-Invocation-Id";
const TOLERANCE_SECS: i64 = 300;

impl Provider for Zendesk {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        require_secret(secrets)?;
        let signature = required_header(req, SIGNATURE_HEADER)?;
        let timestamp = required_header(req, TIMESTAMP_HEADER)?;
        let signed_at = DateTime::parse_from_rfc3339(timestamp)
            .map_err(|_| VerifyError::MalformedHeader(TIMESTAMP_HEADER.into()))?;
        within_window(now, signed_at.timestamp(), TOLERANCE_SECS)?;
        let expected = base64_signature(signature, 32)
            .ok_or(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()))?;
        let signed: [&[u8]; 2] = [timestamp.as_bytes(), req.body];
        matches_any::<Hmac<Sha256>>(secrets, &signed, &[expected])
    }

    /// Event-subscription payloads name the event in `type`; trigger and automation
    /// payloads are owner-shaped, and `event` is the common convention there.
    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        let json = req.json?;
        ["type", "event"].into_iter().find_map(|field| {
            json.get(field)?
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        })
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        keyed_by_header(req, settings, INVOCATION_HEADER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::DedupKind;
    use crate::providers::Headers;
    use crate::providers::content_hash;
    use crate::providers::testing::{at, headers, with_json};

    /// providers.md §10 [SELF]: the webhook builder's static test secret, used verbatim.
    const SECRET: &[u8] = b"dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";
    const TS: &str = "2021-03-25T05:09:27Z";
    /// 2021-03-25T05:09:27Z.
    const TS_UNIX: i64 = 1_616_648_967;
    const BODY: &[u8] = br#"{"event":"ticket.updated","id":123}"#;
    const SIG: &str = "S/RDdU2ERmj7LHDDoWJ2onPYH+t7/f2+LTM4dL7UiLM=";

    fn signed(ts: &str, sig: &str) -> Headers {
        headers(&[
            ("X-Zendesk-Webhook-Signature", sig),
            ("X-Zendesk-Webhook-Signature-Timestamp", ts),
        ])
    }

    fn verify_with(
        h: &Headers,
        body: &[u8],
        secrets: &[&[u8]],
        now: i64,
    ) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Zendesk.verify(req, secrets, &ProviderSettings::default(), at(now))
        })
    }

    fn verify(h: &Headers, body: &[u8], now: i64) -> Result<(), VerifyError> {
        verify_with(h, body, &[SECRET], now)
    }

    #[test]
    fn self_vector_verifies() {
        assert_eq!(
            DateTime::parse_from_rfc3339(TS).unwrap().timestamp(),
            TS_UNIX
        );
        assert_eq!(verify(&signed(TS, SIG), BODY, TS_UNIX), Ok(()));
    }

    #[test]
    fn the_secret_is_not_base64_decoded() {
        assert_eq!(
            verify_with(
                &signed(TS, SIG),
                BODY,
                &[b"this_secret_is_for_testing_only"],
                TS_UNIX
            ),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn tampered_body_is_rejected() {
        let body = br#"{"event":"ticket.updated","id":124}"#;
        assert_eq!(
            verify(&signed(TS, SIG), body, TS_UNIX),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn the_timestamp_text_is_signed_as_sent() {
        // The same instant written differently is a different signed string.
        let h = signed("2021-03-25T05:09:27+00:00", SIG);
        assert_eq!(verify(&h, BODY, TS_UNIX), Err(VerifyError::NoMatch));
    }

    #[test]
    fn timestamps_more_than_300_seconds_away_are_rejected_both_ways() {
        assert_eq!(
            verify(&signed(TS, SIG), BODY, TS_UNIX + 301),
            Err(VerifyError::StaleTimestamp {
                off_by: 301,
                window: 300
            })
        );
        assert_eq!(
            verify(&signed(TS, SIG), BODY, TS_UNIX - 301),
            Err(VerifyError::StaleTimestamp {
                off_by: -301,
                window: 300
            })
        );
        assert_eq!(verify(&signed(TS, SIG), BODY, TS_UNIX + 300), Ok(()));
    }

    #[test]
    fn second_secret_is_accepted_during_rotation() {
        assert_eq!(
            verify_with(&signed(TS, SIG), BODY, &[b"old", SECRET], TS_UNIX),
            Ok(())
        );
        assert_eq!(
            verify_with(&signed(TS, SIG), BODY, &[b"old"], TS_UNIX),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_reported() {
        assert_eq!(
            verify(&Headers::default(), BODY, TS_UNIX),
            Err(VerifyError::MissingHeader(
                "X-Zendesk-Webhook-Signature".into()
            ))
        );
        let h = headers(&[("X-Zendesk-Webhook-Signature", SIG)]);
        assert_eq!(
            verify(&h, BODY, TS_UNIX),
            Err(VerifyError::MissingHeader(
                "X-Zendesk-Webhook-Signature-Timestamp".into()
            ))
        );
        assert_eq!(
            verify(&signed("1616648967", SIG), BODY, TS_UNIX),
            Err(VerifyError::MalformedHeader(
                "X-Zendesk-Webhook-Signature-Timestamp".into()
            ))
        );
        assert_eq!(
            verify(&signed(TS, "S/RDdU2ERmj7"), BODY, TS_UNIX),
            Err(VerifyError::MalformedHeader(
                "X-Zendesk-Webhook-Signature".into()
            ))
        );
    }

    #[test]
    fn event_type_is_the_type_else_the_event() {
        let h = Headers::default();
        assert_eq!(
            with_json(&h, BODY, |req| Zendesk.event_type(req)).as_deref(),
            Some("ticket.updated")
        );
        let body = br#"{"type":"zen:event-type:ticket.created","event":"x"}"#;
        assert_eq!(
            with_json(&h, body, |req| Zendesk.event_type(req)).as_deref(),
            Some("zen:event-type:ticket.created")
        );
    }

    #[test]
    fn dedup_key_is_the_invocation_id_then_the_content_hash() {
        let settings = ProviderSettings::default();
        let h = headers(&[("X-Zendesk-Webhook-Invocation-Id", "8350205582")]);
        let key = with_json(&h, BODY, |req| Zendesk.dedup_key(req, &settings));
        assert_eq!(key.value, "8350205582");
        assert_eq!(key.kind, DedupKind::ProviderId);
        let key = with_json(&Headers::default(), BODY, |req| {
            Zendesk.dedup_key(req, &settings)
        });
        assert_eq!(key, content_hash(BODY));
    }

    #[test]
    fn dedup_header_setting_overrides_the_invocation_id() {
        let h = headers(&[("X-Zendesk-Webhook-Invocation-Id", "1"), ("X-Key", "k")]);
        let settings = ProviderSettings {
            dedup_header: Some("x-key".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, BODY, |req| Zendesk.dedup_key(req, &settings));
        assert_eq!(key.value, "k");
    }
}
