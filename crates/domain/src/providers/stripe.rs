//! Stripe webhooks: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, the HMAC-SHA256
//! of `t + "." + body`. Quirks this module must keep: the key is the whole endpoint
//! secret **including** its `whsec_` prefix (it is not Standard Webhooks base64); every
//! scheme but `v1` is ignored, to prevent downgrades (test mode adds a fake `v0`); one
//! `v1` is sent per active secret while Stripe rolls a secret, and any one matching
//! passes. Stripe's own libraries reject only old timestamps; this module is strict and
//! refuses `t` more than 300 s away from `now` in either direction (retries are re-signed
//! with a fresh `t`, so honest senders never need more). The event type and the dedup
//! key (`evt_…`, stable across retries) come from the body.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use sha2::Sha256;

use super::signing::{
    hex_signature, matches_any, require_secret, required_header, unix_seconds, within_window,
};
use super::{
    DedupKey, DedupKind, Inbound, Provider, ProviderSettings, VerifyError, content_hash,
    header_override, json_str,
};

pub struct Stripe;

const SIGNATURE_HEADER: &str = "Stripe-Signature";
const TOLERANCE_SECS: i64 = 300;

impl Provider for Stripe {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        require_secret(secrets)?;
        let header = required_header(req, SIGNATURE_HEADER)?;
        let parsed =
            parse_header(header).ok_or(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()))?;
        let ts = unix_seconds(parsed.timestamp)
            .ok_or(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()))?;
        within_window(now, ts, TOLERANCE_SECS)?;
        let signed: [&[u8]; 3] = [parsed.timestamp.as_bytes(), b".", req.body];
        matches_any::<Hmac<Sha256>>(secrets, &signed, &parsed.v1)
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        json_str(req, "/type")
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

pub(super) struct Parsed<'a> {
    /// As sent: the signed payload uses these exact characters.
    pub(super) timestamp: &'a str,
    pub(super) v1: Vec<Vec<u8>>,
}

/// Splits on `,` then on the first `=`. None without exactly one `t`. `v1` values that
/// are not 32-byte hex cannot match and are dropped; other schemes are ignored.
pub(super) fn parse_header(header: &str) -> Option<Parsed<'_>> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let Some((scheme, value)) = item.trim().split_once('=') else {
            continue;
        };
        match scheme {
            "t" if timestamp.is_some() => return None,
            "t" => timestamp = Some(value),
            "v1" => v1.extend(hex_signature(value, "", 32)),
            _ => {}
        }
    }
    Some(Parsed {
        timestamp: timestamp?,
        v1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Headers;
    use crate::providers::testing::{at, headers, with_json};

    /// providers.md §3 [SELF], identical from stripe-python and stripe-node.
    const SECRET: &[u8] = b"whsec_test_secret";
    const TS: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const SIG: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

    fn header(value: &str) -> Headers {
        headers(&[("Stripe-Signature", value)])
    }

    fn verify_with(
        h: &Headers,
        body: &[u8],
        secrets: &[&[u8]],
        now: i64,
    ) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Stripe.verify(req, secrets, &ProviderSettings::default(), at(now))
        })
    }

    fn verify(h: &Headers, body: &[u8], now: i64) -> Result<(), VerifyError> {
        verify_with(h, body, &[SECRET], now)
    }

    #[test]
    fn self_vector_verifies() {
        assert_eq!(
            verify(&header(&format!("t={TS},v1={SIG}")), BODY, TS),
            Ok(())
        );
    }

    #[test]
    fn the_whsec_prefix_is_part_of_the_key() {
        let h = header(&format!("t={TS},v1={SIG}"));
        assert_eq!(
            verify_with(&h, BODY, &[b"test_secret"], TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn tampered_body_is_rejected() {
        let body = br#"{"id":"evt_test_webhook","object":"evenT"}"#;
        assert_eq!(
            verify(&header(&format!("t={TS},v1={SIG}")), body, TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn a_changed_timestamp_breaks_the_signature() {
        let h = header(&format!("t={},v1={SIG}", TS + 1));
        assert_eq!(verify(&h, BODY, TS), Err(VerifyError::NoMatch));
    }

    #[test]
    fn timestamps_more_than_300_seconds_away_are_rejected_both_ways() {
        let h = header(&format!("t={TS},v1={SIG}"));
        assert_eq!(
            verify(&h, BODY, TS + 301),
            Err(VerifyError::StaleTimestamp {
                off_by: 301,
                window: 300
            })
        );
        assert_eq!(
            verify(&h, BODY, TS - 301),
            Err(VerifyError::StaleTimestamp {
                off_by: -301,
                window: 300
            })
        );
        assert_eq!(verify(&h, BODY, TS + 300), Ok(()));
        assert_eq!(verify(&h, BODY, TS - 300), Ok(()));
    }

    #[test]
    fn any_v1_among_several_passes() {
        let other = "0".repeat(64);
        let h = header(&format!("t={TS},v1={other},v1={SIG},v0={other}"));
        assert_eq!(verify(&h, BODY, TS), Ok(()));
    }

    #[test]
    fn schemes_other_than_v1_are_ignored() {
        let h = header(&format!("t={TS},v0={SIG}"));
        assert_eq!(verify(&h, BODY, TS), Err(VerifyError::NoMatch));
    }

    #[test]
    fn second_secret_is_accepted_during_rotation() {
        let h = header(&format!("t={TS},v1={SIG}"));
        assert_eq!(verify_with(&h, BODY, &[b"whsec_old", SECRET], TS), Ok(()));
        assert_eq!(
            verify_with(&h, BODY, &[b"whsec_old"], TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_reported() {
        assert_eq!(
            verify(&Headers::default(), BODY, TS),
            Err(VerifyError::MissingHeader("Stripe-Signature".into()))
        );
        for bad in [
            format!("v1={SIG}"),
            format!("t=abc,v1={SIG}"),
            format!("t={TS},t={TS},v1={SIG}"),
        ] {
            assert_eq!(
                verify(&header(&bad), BODY, TS),
                Err(VerifyError::MalformedHeader("Stripe-Signature".into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_usable_secret_is_reported() {
        let h = header(&format!("t={TS},v1={SIG}"));
        assert_eq!(verify_with(&h, BODY, &[], TS), Err(VerifyError::NoSecret));
    }

    #[test]
    fn event_type_is_the_body_type() {
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let event = with_json(&Headers::default(), body, |req| Stripe.event_type(req));
        assert_eq!(event.as_deref(), Some("invoice.paid"));
        let none = with_json(&Headers::default(), BODY, |req| Stripe.event_type(req));
        assert_eq!(none, None);
    }

    #[test]
    fn dedup_key_is_the_event_id_then_the_content_hash() {
        let settings = ProviderSettings::default();
        let key = with_json(&Headers::default(), BODY, |req| {
            Stripe.dedup_key(req, &settings)
        });
        assert_eq!(key.value, "evt_test_webhook");
        assert_eq!(key.kind, DedupKind::ProviderId);
        let key = with_json(&Headers::default(), b"{}", |req| {
            Stripe.dedup_key(req, &settings)
        });
        assert_eq!(key, content_hash(b"{}"));
    }

    #[test]
    fn dedup_header_setting_overrides_the_event_id() {
        let h = headers(&[("X-Trace", "t-1")]);
        let settings = ProviderSettings {
            dedup_header: Some("x-trace".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, BODY, |req| Stripe.dedup_key(req, &settings));
        assert_eq!(key.value, "t-1");
        assert_eq!(key.kind, DedupKind::ProviderId);
    }
}
