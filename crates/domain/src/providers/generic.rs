//! The `hmac` provider, for senders without a module of their own: the source's
//! [`HmacScheme`] says which header holds the signature, the algorithm (SHA-1, SHA-256
//! or SHA-512), how the digest is written (hex or base64, after an optional prefix such as
//! `sha256=`), and what is signed. A scheme may add a timestamp header; its value is then
//! signed with the body (`{timestamp}.{body}` unless the scheme says otherwise) and
//! judged against a window both ways.
//!
//! Quirks:
//! - The key is the secret's UTF-8 bytes as pasted; a sender that base64-decodes its
//!   secret before signing needs the decoded form pasted instead.
//! - The signature header may list several signatures separated by commas or spaces
//!   (senders that sign with two keys while rotating); any one of them matching is enough,
//!   and entries without the prefix are skipped (`t=…,v1=…` with prefix `v1=`).
//! - Timestamps are Unix seconds; a value above 10^11 is read as milliseconds.
//! - Nothing in the scheme names an event type or a delivery id: set the source's
//!   `event_type_header`/`_pointer` and `dedup_header`/`_pointer`; without them the
//!   event has no type and dedups by a one-hour content hash.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::Hmac;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::signing::{matches_any, require_secret, unix_seconds, within_window};
use super::{
    DedupKey, Inbound, Provider, ProviderSettings, VerifyError, content_hash, header_override,
};

pub struct GenericHmac;

/// How an `hmac` source's sender signs. Stored in the source's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacScheme {
    /// The header carrying the signature (`X-Signature`).
    pub header: String,
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    #[serde(default)]
    pub encoding: DigestEncoding,
    /// Text before the digest in the header (`sha256=`); none by default.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// A header with the Unix time the sender signed at, signed along with the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// How far a signed timestamp may be from now, either way, in seconds (default 300).
    #[serde(default = "default_tolerance")]
    pub tolerance_seconds: u32,
    /// What is signed, with `{body}` for the raw body and `{timestamp}` for the timestamp
    /// header's value. Default: `{body}`, or `{timestamp}.{body}` with a timestamp header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_payload: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DigestEncoding {
    #[default]
    Hex,
    Base64,
}

fn default_tolerance() -> u32 {
    300
}

const MAX_TOLERANCE: u32 = 24 * 60 * 60;

/// One piece of the signed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Timestamp,
    Body,
}

impl HmacScheme {
    /// Refuses a scheme that cannot verify anything or would verify too much: a bad header
    /// name, an unsigned timestamp, a payload that leaves out the body.
    pub fn check(&self) -> Result<(), String> {
        if !is_header_name(&self.header) {
            return Err("header must be an HTTP header name".to_owned());
        }
        // The header's value is split on commas and spaces, so a prefix holding either
        // could never match.
        if self.prefix.len() > 50
            || self
                .prefix
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == ',')
        {
            return Err(
                "prefix must be at most 50 characters, without commas or spaces".to_owned(),
            );
        }
        if let Some(name) = &self.timestamp_header
            && !is_header_name(name)
        {
            return Err("timestamp_header must be an HTTP header name".to_owned());
        }
        if !(1..=MAX_TOLERANCE).contains(&self.tolerance_seconds) {
            return Err(format!(
                "tolerance_seconds must be between 1 and {MAX_TOLERANCE}"
            ));
        }
        let pieces = self.pieces()?;
        if pieces.iter().filter(|p| **p == Piece::Body).count() != 1 {
            return Err("signed_payload must contain {body} exactly once".to_owned());
        }
        let signs_time = pieces.contains(&Piece::Timestamp);
        match (self.timestamp_header.is_some(), signs_time) {
            (true, false) => Err(
                "signed_payload must contain {timestamp}: a timestamp that is not signed proves nothing"
                    .to_owned(),
            ),
            (false, true) => {
                Err("{timestamp} in signed_payload needs a timestamp_header".to_owned())
            }
            _ => Ok(()),
        }
    }

    fn pieces(&self) -> Result<Vec<Piece<'_>>, String> {
        let template = match (&self.signed_payload, &self.timestamp_header) {
            (Some(t), _) => t.as_str(),
            (None, Some(_)) => "{timestamp}.{body}",
            (None, None) => "{body}",
        };
        if template.len() > 200 {
            return Err("signed_payload must be at most 200 characters".to_owned());
        }
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(&rest[..open]));
            }
            let after = &rest[open..];
            let (piece, len) = if after.starts_with("{body}") {
                (Piece::Body, "{body}".len())
            } else if after.starts_with("{timestamp}") {
                (Piece::Timestamp, "{timestamp}".len())
            } else {
                return Err(
                    "signed_payload may only use the placeholders {body} and {timestamp}"
                        .to_owned(),
                );
            };
            pieces.push(piece);
            rest = &after[len..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest));
        }
        Ok(pieces)
    }

    fn digest_len(&self) -> usize {
        match self.algorithm {
            HmacAlgorithm::Sha1 => 20,
            HmacAlgorithm::Sha256 => 32,
            HmacAlgorithm::Sha512 => 64,
        }
    }

    /// Every well-formed digest in the header's value.
    pub(super) fn candidates(&self, value: &str) -> Vec<Vec<u8>> {
        value
            .split([',', ' '])
            .filter_map(|entry| entry.trim().strip_prefix(self.prefix.as_str()))
            .filter_map(|digest| match self.encoding {
                DigestEncoding::Hex => hex::decode(digest).ok(),
                DigestEncoding::Base64 => STANDARD.decode(digest).ok(),
            })
            .filter(|digest| digest.len() == self.digest_len())
            .collect()
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A signed Unix time in seconds, or milliseconds when it is too large to be seconds.
fn signed_seconds(raw: &str) -> Option<i64> {
    let value = unix_seconds(raw)?;
    Some(if value > 100_000_000_000 {
        value / 1000
    } else {
        value
    })
}

impl Provider for GenericHmac {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        settings: &ProviderSettings,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let scheme = settings.hmac.as_ref().ok_or(VerifyError::Unconfigured)?;
        let pieces = scheme.pieces().map_err(|_| VerifyError::Unconfigured)?;
        require_secret(secrets)?;
        let header = scheme.header.clone();
        let value = req
            .headers
            .get(&header)
            .ok_or_else(|| VerifyError::MissingHeader(header.clone().into()))?;
        let timestamp = match &scheme.timestamp_header {
            Some(name) => {
                let raw = req
                    .headers
                    .get(name)
                    .ok_or_else(|| VerifyError::MissingHeader(name.clone().into()))?;
                let seconds = signed_seconds(raw)
                    .ok_or_else(|| VerifyError::MalformedHeader(name.clone().into()))?;
                within_window(now, seconds, i64::from(scheme.tolerance_seconds))?;
                raw
            }
            None => "",
        };
        let candidates = scheme.candidates(value);
        if candidates.is_empty() {
            return Err(VerifyError::MalformedHeader(header.into()));
        }
        let message: Vec<&[u8]> = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.as_bytes(),
                Piece::Timestamp => timestamp.as_bytes(),
                Piece::Body => req.body,
            })
            .collect();
        match scheme.algorithm {
            HmacAlgorithm::Sha1 => matches_any::<Hmac<Sha1>>(secrets, &message, &candidates),
            HmacAlgorithm::Sha256 => matches_any::<Hmac<Sha256>>(secrets, &message, &candidates),
            HmacAlgorithm::Sha512 => matches_any::<Hmac<Sha512>>(secrets, &message, &candidates),
        }
    }

    /// The scheme names no event type; a source's `event_type_header`/`_pointer` does.
    fn event_type(&self, _req: &Inbound<'_>) -> Option<String> {
        None
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        header_override(req, settings).unwrap_or_else(|| content_hash(req.body))
    }
}

#[cfg(test)]
mod tests {
    use hmac::Mac;

    use super::*;
    use crate::providers::Headers;
    use crate::providers::testing::{at, headers, with_json};

    const SECRET: &[u8] = b"generic-secret";
    const BODY: &[u8] = br#"{"kind":"order.paid","id":"ord_1"}"#;
    const NOW: i64 = 1_700_000_000;

    fn scheme(json: serde_json::Value) -> HmacScheme {
        serde_json::from_value(json).unwrap()
    }

    /// Signs independently of the module: the message is assembled by hand.
    fn sign256(message: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    fn verify(scheme: &HmacScheme, h: &Headers, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let settings = ProviderSettings {
            hmac: Some(scheme.clone()),
            ..ProviderSettings::default()
        };
        with_json(h, body, |req| {
            GenericHmac.verify(req, &[SECRET], &settings, at(now))
        })
    }

    #[test]
    fn a_bare_hex_sha256_of_the_body_verifies_and_a_flipped_byte_does_not() {
        let s = scheme(serde_json::json!({"header": "X-Signature"}));
        let sig = hex::encode(sign256(BODY));
        assert_eq!(
            verify(&s, &headers(&[("x-signature", &sig)]), BODY, NOW),
            Ok(())
        );
        let mut tampered = BODY.to_vec();
        tampered[3] ^= 1;
        assert_eq!(
            verify(&s, &headers(&[("x-signature", &sig)]), &tampered, NOW),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn prefix_base64_sha512_and_sha1_are_honoured() {
        let s = scheme(serde_json::json!({
            "header": "X-Sig", "algorithm": "sha512", "encoding": "base64", "prefix": "sha512="
        }));
        let mut mac = Hmac::<Sha512>::new_from_slice(SECRET).unwrap();
        mac.update(BODY);
        let sig = format!("sha512={}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(verify(&s, &headers(&[("X-Sig", &sig)]), BODY, NOW), Ok(()));
        // Without the prefix the entry is not a signature at all.
        let bare = sig.trim_start_matches("sha512=");
        assert_eq!(
            verify(&s, &headers(&[("X-Sig", bare)]), BODY, NOW),
            Err(VerifyError::MalformedHeader("X-Sig".into()))
        );

        let s = scheme(serde_json::json!({"header": "X-Sig", "algorithm": "sha1"}));
        let mut mac = Hmac::<Sha1>::new_from_slice(SECRET).unwrap();
        mac.update(BODY);
        let sig = hex::encode(mac.finalize().into_bytes());
        assert_eq!(verify(&s, &headers(&[("X-Sig", &sig)]), BODY, NOW), Ok(()));
    }

    #[test]
    fn a_signed_timestamp_is_part_of_the_message_and_judged_both_ways() {
        let s = scheme(serde_json::json!({
            "header": "X-Sig", "prefix": "v1=", "timestamp_header": "X-Timestamp",
            "tolerance_seconds": 60
        }));
        let ts = NOW.to_string();
        let sig = format!(
            "t={ts},v1={}",
            hex::encode(sign256(
                format!("{ts}.")
                    .as_bytes()
                    .iter()
                    .chain(BODY)
                    .copied()
                    .collect::<Vec<_>>()
                    .as_slice()
            ))
        );
        let h = headers(&[("X-Sig", &sig), ("X-Timestamp", &ts)]);
        assert_eq!(verify(&s, &h, BODY, NOW + 60), Ok(()));
        assert_eq!(
            verify(&s, &h, BODY, NOW + 61),
            Err(VerifyError::StaleTimestamp {
                off_by: 61,
                window: 60
            })
        );
        assert_eq!(
            verify(&s, &h, BODY, NOW - 61),
            Err(VerifyError::StaleTimestamp {
                off_by: -61,
                window: 60
            })
        );
        // Milliseconds name the same instant.
        let ms = format!("{NOW}000");
        let h = headers(&[("X-Sig", &sig), ("X-Timestamp", &ms)]);
        assert_eq!(
            verify(&s, &h, BODY, NOW),
            Err(VerifyError::NoMatch),
            "the raw value is signed"
        );
        let h = headers(&[("X-Sig", &sig)]);
        assert_eq!(
            verify(&s, &h, BODY, NOW),
            Err(VerifyError::MissingHeader("X-Timestamp".into()))
        );
        let h = headers(&[("X-Sig", &sig), ("X-Timestamp", "-5")]);
        assert_eq!(
            verify(&s, &h, BODY, NOW),
            Err(VerifyError::MalformedHeader("X-Timestamp".into()))
        );
    }

    #[test]
    fn a_custom_payload_template_is_signed_in_its_order() {
        let s = scheme(serde_json::json!({
            "header": "X-Sig", "timestamp_header": "X-Ts", "signed_payload": "v0:{timestamp}:{body}"
        }));
        let ts = NOW.to_string();
        let message: Vec<u8> = format!("v0:{ts}:")
            .into_bytes()
            .into_iter()
            .chain(BODY.iter().copied())
            .collect();
        let sig = hex::encode(sign256(&message));
        let h = headers(&[("X-Sig", &sig), ("X-Ts", &ts)]);
        assert_eq!(verify(&s, &h, BODY, NOW), Ok(()));
    }

    #[test]
    fn any_listed_signature_may_match() {
        let s = scheme(serde_json::json!({"header": "X-Sig"}));
        let good = hex::encode(sign256(BODY));
        let value = format!("{} {good}", "00".repeat(32));
        assert_eq!(
            verify(&s, &headers(&[("X-Sig", &value)]), BODY, NOW),
            Ok(())
        );
        assert_eq!(
            verify(&s, &Headers::default(), BODY, NOW),
            Err(VerifyError::MissingHeader("X-Sig".into()))
        );
    }

    #[test]
    fn a_source_without_a_scheme_refuses_everything() {
        let settings = ProviderSettings::default();
        let h = Headers::default();
        assert_eq!(
            with_json(&h, BODY, |req| GenericHmac.verify(
                req,
                &[SECRET],
                &settings,
                at(NOW)
            )),
            Err(VerifyError::Unconfigured)
        );
    }

    #[test]
    fn schemes_that_prove_nothing_are_refused() {
        let bad = [
            serde_json::json!({"header": "X Sig"}),
            serde_json::json!({"header": "X-Sig", "timestamp_header": "X-Ts", "signed_payload": "{body}"}),
            serde_json::json!({"header": "X-Sig", "signed_payload": "{timestamp}{body}"}),
            serde_json::json!({"header": "X-Sig", "signed_payload": "{timestamp}"}),
            serde_json::json!({"header": "X-Sig", "signed_payload": "{body}{body}"}),
            serde_json::json!({"header": "X-Sig", "signed_payload": "{method}{body}"}),
            serde_json::json!({"header": "X-Sig", "tolerance_seconds": 0}),
            serde_json::json!({"header": "X-Sig", "prefix": "a,b"}),
            serde_json::json!({"header": "X-Sig", "prefix": "HMAC "}),
        ];
        for json in bad {
            assert!(scheme(json.clone()).check().is_err(), "{json}");
        }
        let good = scheme(serde_json::json!({"header": "X-Sig", "timestamp_header": "X-Ts"}));
        assert_eq!(good.check(), Ok(()));
        assert!(
            serde_json::from_value::<HmacScheme>(
                serde_json::json!({"header": "X", "algorithm": "md5"})
            )
            .is_err()
        );
    }

    #[test]
    fn type_and_dedup_come_only_from_the_source_overrides() {
        let settings = ProviderSettings {
            event_type_pointer: Some("/kind".to_owned()),
            dedup_pointer: Some("/id".to_owned()),
            ..ProviderSettings::default()
        };
        let h = Headers::default();
        with_json(&h, BODY, |req| {
            assert_eq!(GenericHmac.event_type(req), None);
            assert_eq!(
                crate::providers::resolve_event_type(&GenericHmac, req, &settings).as_deref(),
                Some("order.paid")
            );
            assert_eq!(GenericHmac.dedup_key(req, &settings).value, "ord_1");
            assert_eq!(
                GenericHmac.dedup_key(req, &ProviderSettings::default()),
                content_hash(BODY)
            );
        });
    }
}
