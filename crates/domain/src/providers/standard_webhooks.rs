//! Standard Webhooks v1 (and Svix, which sends the same scheme under `svix-*` names):
//! the `id.timestamp.body` HMAC-SHA256, the ±300 s window, and the `whsec_` secret
//! format. Owns signing too, because outbound deliveries must sign exactly as inbound
//! ones are checked. Must not read the clock (`now` is passed in) or hold any state;
//! ed25519 (`v1a`) is not implemented and is skipped, never refused.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::signing::{matches_any, require_secret, required_header, unix_seconds, within_window};
use super::{
    DedupKey, DedupKind, Headers, Inbound, Provider, ProviderSettings, VerifyError, content_hash,
    header_override, json_str,
};

pub struct StandardWebhooks;

/// Both directions: a timestamp far in the future is as suspect as an old one, and
/// retries are re-signed with a fresh timestamp, so honest senders never need more.
const TOLERANCE_SECS: i64 = 300;

/// Standard alphabet, padding optional: people paste secrets without the `=`, and the
/// reference Python library pads them itself (`b64decode(s + "==")`). Encoding through
/// this engine still writes the padding the spec requires.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One set of header names. A request is read from a single family, so an id from one
/// can never be paired with a signature from the other.
struct Family {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const WEBHOOK: Family = Family {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

const SVIX: Family = Family {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

impl Family {
    /// `webhook-*` wins when any of its headers is present (white-labelled Svix sends only
    /// those); `svix-*` is the fallback, so a missing-header error names the standard name.
    fn of(headers: &Headers) -> &'static Family {
        let present = |f: &Family| {
            [f.id, f.timestamp, f.signature]
                .iter()
                .any(|name| headers.get(name).is_some())
        };
        if !present(&WEBHOOK) && present(&SVIX) {
            &SVIX
        } else {
            &WEBHOOK
        }
    }
}

impl Provider for StandardWebhooks {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        require_secret(secrets)?;
        let family = Family::of(req.headers);
        let required = |name: &'static str| required_header(req, name);
        let id = required(family.id)?;
        let timestamp = required(family.timestamp)?;
        let signature = required(family.signature)?;

        // A '.' in the id would make the signed content ambiguous (ids `a.b` and `a` could
        // sign the same bytes); the timestamp is held to digits below for the same reason.
        if id.is_empty() || id.contains('.') {
            return Err(VerifyError::MalformedHeader(family.id.into()));
        }
        let ts =
            unix_seconds(timestamp).ok_or(VerifyError::MalformedHeader(family.timestamp.into()))?;

        // Window before signature, as the reference libraries do: a replayed request is
        // refused for being old whatever its signature says.
        within_window(now, ts, TOLERANCE_SECS)?;

        let candidates = v1_signatures(signature)
            .ok_or(VerifyError::MalformedHeader(family.signature.into()))?;
        let signed: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", req.body];
        matches_any::<Hmac<Sha256>>(secrets, &signed, &candidates)
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        json_str(req, "/type")
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        header_override(req, settings)
            .or_else(|| message_id(req.headers))
            .unwrap_or_else(|| content_hash(req.body))
    }
}

/// The sender's message id, stable across its retries: the spec's own idempotency key.
pub(super) fn message_id(headers: &Headers) -> Option<DedupKey> {
    let id = headers
        .get(Family::of(headers).id)
        .filter(|id| !id.is_empty())?;
    Some(DedupKey {
        value: id.to_owned(),
        kind: DedupKind::ProviderId,
    })
}

/// The decoded `v1` signatures in a space-separated `version,base64` list, or None when
/// no item has that shape at all. Other versions (`v1a` is ed25519, later ones unknown)
/// are skipped: the list exists so senders can offer several and receivers upgrade at
/// their own pace. A `v1` item that is not base64 cannot match, so it is dropped too.
pub(super) fn v1_signatures(header: &str) -> Option<Vec<Vec<u8>>> {
    let mut well_formed = false;
    let mut v1 = Vec::new();
    for item in header.split_ascii_whitespace() {
        let Some((version, signature)) = item.split_once(',') else {
            continue;
        };
        well_formed = true;
        if version == "v1"
            && let Ok(bytes) = BASE64.decode(signature)
        {
            v1.push(bytes);
        }
    }
    well_formed.then_some(v1)
}

/// HMAC-SHA256 over `id.timestamp.body`, fed in pieces so the body is never copied.
fn signed_content_mac(
    key: &[u8],
    msg_id: &str,
    timestamp: &str,
    body: &[u8],
) -> Result<Hmac<Sha256>, hmac::digest::InvalidLength> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `v1,<base64>` signature of one message, as a `webhook-signature` item.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length (RFC 2104 hashes long ones), so the hmac crate's
    // InvalidLength cannot happen here; the Result exists only for fixed-size MACs.
    let mac = signed_content_mac(key, msg_id, &timestamp.to_string(), body)
        .expect("HMAC accepts keys of every length");
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The HMAC key behind a `whsec_` secret as a user pasted it. The prefix is optional, as
/// in both reference libraries. Errors say what is wrong without repeating any of the
/// secret, because they are shown back in forms and logs.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Err("secret must not be empty".to_owned());
    }
    if secret.starts_with("whsk_") || secret.starts_with("whpk_") {
        return Err(
            "secret is an ed25519 key (whsk_/whpk_); only whsec_ HMAC secrets are supported"
                .to_owned(),
        );
    }
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    if encoded.is_empty() {
        return Err("secret has nothing after the whsec_ prefix".to_owned());
    }
    let key = BASE64.decode(encoded).map_err(|err| {
        // DecodeError's own message quotes the offending byte, which is part of the secret.
        let why = match err {
            // '=' is the one byte safe to name: it is padding, not key material.
            base64::DecodeError::InvalidByte(offset, b'=') => {
                format!("padding '=' at character {} is misplaced", offset + 1)
            }
            base64::DecodeError::InvalidByte(offset, _) => {
                format!("character {} is not in the base64 alphabet", offset + 1)
            }
            base64::DecodeError::InvalidLength(_) => "its length is not valid".to_owned(),
            base64::DecodeError::InvalidLastSymbol(_, _) => {
                "its last character is not valid".to_owned()
            }
            base64::DecodeError::InvalidPadding => "its padding is not valid".to_owned(),
        };
        format!("secret (after any whsec_ prefix) is not standard base64: {why}")
    })?;
    // Unreachable from non-empty base64 today; kept because an empty HMAC key is one
    // anybody can sign with.
    if key.is_empty() {
        return Err("secret decodes to an empty key".to_owned());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        )
    }

    fn official(signature: &str) -> Headers {
        headers(&[
            ("webhook-id", MSG_ID),
            ("webhook-timestamp", &TS.to_string()),
            ("webhook-signature", signature),
        ])
    }

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    fn verify_with(
        headers: &Headers,
        body: &[u8],
        secrets: &[&[u8]],
        now: i64,
    ) -> Result<(), VerifyError> {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let req = Inbound {
            url: "",
            headers,
            body,
            json: json.as_ref(),
        };
        StandardWebhooks.verify(&req, secrets, &ProviderSettings::default(), at(now))
    }

    fn verify(headers: &Headers, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let key = decode_secret(SECRET).unwrap();
        verify_with(headers, body, &[&key], now)
    }

    fn dedup(headers: &Headers, body: &[u8], settings: &ProviderSettings) -> DedupKey {
        let req = Inbound {
            url: "",
            headers,
            body,
            json: None,
        };
        StandardWebhooks.dedup_key(&req, settings)
    }

    #[test]
    fn official_secret_decodes_to_24_bytes() {
        assert_eq!(decode_secret(SECRET).unwrap().len(), 24);
    }

    #[test]
    fn official_sign_vector_is_reproduced() {
        let key = decode_secret(SECRET).unwrap();
        assert_eq!(sign(&key, MSG_ID, TS, BODY), SIGNATURE);
    }

    #[test]
    fn official_vector_verifies() {
        assert_eq!(verify(&official(SIGNATURE), BODY, TS), Ok(()));
    }

    #[test]
    fn official_negative_vector_is_rejected() {
        let h = official("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=");
        assert_eq!(verify(&h, BODY, TS), Err(VerifyError::NoMatch));
    }

    #[test]
    fn official_multi_signature_header_verifies() {
        let other = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let header = format!("v1,{other} v2,{other} {SIGNATURE} v1,{other}");
        assert_eq!(verify(&official(&header), BODY, TS), Ok(()));
    }

    #[test]
    fn tampered_body_is_rejected() {
        let body = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(&official(SIGNATURE), body, TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn timestamp_301_seconds_old_is_rejected() {
        assert_eq!(
            verify(&official(SIGNATURE), BODY, TS + 301),
            Err(VerifyError::StaleTimestamp {
                off_by: 301,
                window: 300
            })
        );
    }

    #[test]
    fn timestamp_301_seconds_in_the_future_is_rejected() {
        assert_eq!(
            verify(&official(SIGNATURE), BODY, TS - 301),
            Err(VerifyError::StaleTimestamp {
                off_by: -301,
                window: 300
            })
        );
    }

    #[test]
    fn stale_timestamp_message_names_the_offset_and_the_window() {
        let err = verify(&official(SIGNATURE), BODY, TS + 301).unwrap_err();
        assert_eq!(
            err.to_string(),
            "timestamp is 301 s outside the allowed window of 300 s"
        );
        assert!(err.to_string().contains("outside the allowed window"));
    }

    #[test]
    fn timestamp_exactly_300_seconds_away_either_way_is_accepted() {
        assert_eq!(verify(&official(SIGNATURE), BODY, TS + 300), Ok(()));
        assert_eq!(verify(&official(SIGNATURE), BODY, TS - 300), Ok(()));
    }

    #[test]
    fn second_secret_is_accepted_during_rotation() {
        let key = decode_secret(SECRET).unwrap();
        let old = b"an old key that no longer signs".as_slice();
        assert_eq!(
            verify_with(&official(SIGNATURE), BODY, &[old, &key], TS),
            Ok(())
        );
        assert_eq!(
            verify_with(&official(SIGNATURE), BODY, &[old], TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn svix_headers_are_accepted_when_webhook_headers_are_absent() {
        let h = headers(&[
            ("Svix-Id", MSG_ID),
            ("Svix-Timestamp", &TS.to_string()),
            ("Svix-Signature", SIGNATURE),
        ]);
        assert_eq!(verify(&h, BODY, TS), Ok(()));
    }

    #[test]
    fn webhook_headers_are_not_mixed_with_svix_headers() {
        let h = headers(&[
            ("webhook-id", MSG_ID),
            ("webhook-timestamp", &TS.to_string()),
            ("svix-signature", SIGNATURE),
        ]);
        assert_eq!(
            verify(&h, BODY, TS),
            Err(VerifyError::MissingHeader("webhook-signature".into()))
        );
    }

    #[test]
    fn missing_headers_are_named() {
        assert_eq!(
            verify(&Headers::default(), BODY, TS),
            Err(VerifyError::MissingHeader("webhook-id".into()))
        );
        let h = headers(&[("webhook-id", MSG_ID), ("webhook-signature", SIGNATURE)]);
        assert_eq!(
            verify(&h, BODY, TS),
            Err(VerifyError::MissingHeader("webhook-timestamp".into()))
        );
    }

    #[test]
    fn id_containing_a_dot_is_malformed() {
        let h = headers(&[
            ("webhook-id", "msg.1"),
            ("webhook-timestamp", &TS.to_string()),
            ("webhook-signature", SIGNATURE),
        ]);
        assert_eq!(
            verify(&h, BODY, TS),
            Err(VerifyError::MalformedHeader("webhook-id".into()))
        );
    }

    #[test]
    fn timestamp_that_is_not_an_integer_is_malformed() {
        for bad in [
            "1614265330.0",
            "1614265330.",
            "abc",
            "",
            "-1614265330",
            "+1614265330",
            "1e9",
        ] {
            let h = headers(&[
                ("webhook-id", MSG_ID),
                ("webhook-timestamp", bad),
                ("webhook-signature", SIGNATURE),
            ]);
            assert_eq!(
                verify(&h, BODY, TS),
                Err(VerifyError::MalformedHeader("webhook-timestamp".into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn signature_header_without_any_version_item_is_malformed() {
        assert_eq!(
            verify(
                &official("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
                BODY,
                TS
            ),
            Err(VerifyError::MalformedHeader("webhook-signature".into()))
        );
    }

    #[test]
    fn only_v1_items_are_checked() {
        let sig = SIGNATURE.trim_start_matches("v1,");
        let h = official(&format!("v1a,{sig} v2,{sig}"));
        assert_eq!(verify(&h, BODY, TS), Err(VerifyError::NoMatch));
    }

    #[test]
    fn no_usable_secret_is_reported() {
        assert_eq!(
            verify_with(&official(SIGNATURE), BODY, &[], TS),
            Err(VerifyError::NoSecret)
        );
        assert_eq!(
            verify_with(&official(SIGNATURE), BODY, &[b""], TS),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn secret_is_accepted_without_prefix_and_without_padding() {
        let key = decode_secret(SECRET).unwrap();
        assert_eq!(
            decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            key
        );
        assert_eq!(decode_secret("whsec_c2VjcmV0Cg").unwrap(), b"secret\n");
        assert_eq!(decode_secret("whsec_c2VjcmV0Cg==").unwrap(), b"secret\n");
        assert_eq!(decode_secret(" whsec_c2VjcmV0Cg==\n").unwrap(), b"secret\n");
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        for bad in [
            "",
            "   ",
            "whsec_",
            "whsec_c2Vj!!mV0Cg",
            "whsec_a",
            "whsk_c2VjcmV0Cg",
        ] {
            let err = decode_secret(bad).unwrap_err();
            let tail = bad.trim().trim_start_matches("whsec_");
            assert!(
                tail.len() < 3 || !err.contains(tail),
                "{err:?} echoes {bad:?}"
            );
        }
        let err = decode_secret("whsec_c2Vj!!mV0Cg").unwrap_err();
        assert!(err.contains("character 5"), "{err}");
        assert!(!err.contains('!'), "{err}");
    }

    #[test]
    fn misplaced_padding_is_named_as_such() {
        let err = decode_secret("whsec_==").unwrap_err();
        assert!(err.contains("padding '=' at character 1"), "{err}");
    }

    #[test]
    fn event_type_is_the_top_level_type() {
        let body = br#"{"type":"invoice.paid","data":{"type":"nested"}}"#;
        let json: Value = serde_json::from_slice(body).unwrap();
        let h = Headers::default();
        let req = Inbound {
            url: "",
            headers: &h,
            body,
            json: Some(&json),
        };
        assert_eq!(
            StandardWebhooks.event_type(&req).as_deref(),
            Some("invoice.paid")
        );
        let no_json = Inbound {
            url: "",
            headers: &h,
            body,
            json: None,
        };
        assert_eq!(StandardWebhooks.event_type(&no_json), None);
    }

    #[test]
    fn dedup_key_is_the_webhook_id() {
        let key = dedup(&official(SIGNATURE), BODY, &ProviderSettings::default());
        assert_eq!(key.value, MSG_ID);
        assert_eq!(key.kind, DedupKind::ProviderId);
    }

    #[test]
    fn dedup_key_is_the_svix_id_for_svix_requests() {
        let h = headers(&[("svix-id", "msg_svix"), ("svix-signature", SIGNATURE)]);
        let key = dedup(&h, BODY, &ProviderSettings::default());
        assert_eq!(key.value, "msg_svix");
        assert_eq!(key.kind, DedupKind::ProviderId);
    }

    #[test]
    fn dedup_key_falls_back_to_the_content_hash() {
        let key = dedup(&Headers::default(), BODY, &ProviderSettings::default());
        assert_eq!(key, content_hash(BODY));
        assert_eq!(key.kind, DedupKind::ContentHash);
    }

    #[test]
    fn dedup_header_setting_overrides_the_webhook_id() {
        let mut h = vec![("X-Request-Key", "custom-1")];
        h.push(("webhook-id", MSG_ID));
        let settings = ProviderSettings {
            dedup_header: Some("x-request-key".to_owned()),
            ..ProviderSettings::default()
        };
        let key = dedup(&headers(&h), BODY, &settings);
        assert_eq!(key.value, "custom-1");
        assert_eq!(key.kind, DedupKind::ProviderId);
        // The setting only wins when the header is actually sent.
        let key = dedup(&official(SIGNATURE), BODY, &settings);
        assert_eq!(key.value, MSG_ID);
    }
}
