//! Twilio: `X-Twilio-Signature: <base64>`, the HMAC-SHA1 keyed with the account's Auth
//! Token (its UTF-8 bytes) of the URL Twilio requested, scheme to query string exactly as
//! configured in the console, followed for form posts by every decoded parameter as
//! `name + value`, names sorted and each name's distinct values sorted (as twilio-python
//! does). For JSON bodies Twilio adds `bodySHA256=<hex sha256(body)>` to the query and
//! signs the URL alone, so the body hash in the query is checked too.
//!
//! Quirks:
//! - The URL is the source's public ingest URL (`SWITCHYARD_PUBLIC_URL` + path + query).
//!   A proxy that changes the scheme, host or path the sender saw breaks verification;
//!   the port alone is forgiven, as the official libraries forgive it: the URL is tried
//!   with and without its port (`:443`/`:80` added where none was written).
//! - Nothing signed carries a time, so there is no replay window: the
//!   `I-Twilio-Idempotency-Token` Twilio repeats on its retries is the dedup key.
//! - Rotation: keep the primary and the secondary Auth Token as the source's two secrets
//!   while promoting the secondary.
//! - Webhook Rules signed with a SharedKey (`X-Twilio-Webhooks-Signature-Settings`) are a
//!   different scheme and are not accepted by this provider; use `hmac` for them.
//! - Event type: `EventType` (Conversations, TaskRouter, …) or a CloudEvent's `type`
//!   (Event Streams) as sent; otherwise the resource's status, namespaced so that message,
//!   call and recording statuses that share a word stay apart: `message.delivered`,
//!   `message.received`, `call.completed`, `recording.completed`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use hmac::Hmac;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::body::{form_pairs, is_form};
use super::signing::{base64_signature, matches_any, require_secret, required_header};
use super::{DedupKey, Inbound, Provider, ProviderSettings, VerifyError, keyed_by_header};

pub struct Twilio;

const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
const IDEMPOTENCY_HEADER: &str = "I-Twilio-Idempotency-Token";
const BODY_HASH_PARAM: &str = "bodySHA256";

impl Provider for Twilio {
    fn verify(
        &self,
        req: &Inbound<'_>,
        secrets: &[&[u8]],
        _settings: &ProviderSettings,
        _now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        require_secret(secrets)?;
        let value = required_header(req, SIGNATURE_HEADER)?;
        let expected = base64_signature(value, 20)
            .ok_or(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()))?;
        let params = match body_hash(req.url) {
            Some(hash) => {
                if !hash.eq_ignore_ascii_case(&hex::encode(Sha256::digest(req.body))) {
                    return Err(VerifyError::NoMatch);
                }
                String::new()
            }
            None if req.headers.get("content-type").is_some_and(is_form) => sorted_params(req.body),
            None => String::new(),
        };
        let (without_port, with_port) = port_variants(req.url);
        [without_port, with_port]
            .iter()
            .map(|url| {
                matches_any::<Hmac<Sha1>>(
                    secrets,
                    &[url.as_bytes(), params.as_bytes()],
                    std::slice::from_ref(&expected),
                )
            })
            .find(Result::is_ok)
            .unwrap_or(Err(VerifyError::NoMatch))
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        let json = req.json?;
        // Event Streams post a batch of CloudEvents; they share a sink, so the first names it.
        let json = match json {
            Value::Array(events) => events.first()?,
            other => other,
        };
        let field = |name: &str| json.get(name)?.as_str().filter(|s| !s.is_empty());
        if let Some(raw) = field("EventType").or_else(|| field("type")) {
            return Some(raw.to_owned());
        }
        let namespaced = [
            ("MessageStatus", "message"),
            ("SmsStatus", "message"),
            ("CallStatus", "call"),
            ("RecordingStatus", "recording"),
        ];
        namespaced.iter().find_map(|(name, namespace)| {
            Some(format!("{namespace}.{}", field(name)?.to_ascii_lowercase()))
        })
    }

    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        keyed_by_header(req, settings, IDEMPOTENCY_HEADER)
    }
}

/// The `bodySHA256` query parameter of a JSON request's URL.
fn body_hash(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    let query = query.split('#').next().unwrap_or_default();
    form_pairs(query.as_bytes())
        .find(|(name, _)| name == BODY_HASH_PARAM)
        .map(|(_, value)| value.into_owned())
}

/// `name + value` for every distinct form parameter: names sorted, each name's values
/// sorted (byte order of UTF-8, which is Python's code-point order).
fn sorted_params(body: &[u8]) -> String {
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, value) in form_pairs(body) {
        by_name
            .entry(name.into_owned())
            .or_default()
            .insert(value.into_owned());
    }
    let mut signed = String::new();
    for (name, values) in &by_name {
        for value in values {
            signed.push_str(name);
            signed.push_str(value);
        }
    }
    signed
}

/// The URL without its port, and with one (its own, or the scheme's default when none
/// is written). A URL whose authority cannot be found is returned as it is, twice.
pub(super) fn port_variants(url: &str) -> (String, String) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_owned(), url.to_owned());
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    // The port follows the last ':' unless that colon sits inside an IPv6 literal.
    let port_colon = authority
        .rfind(':')
        .filter(|&i| !authority[i..].contains(']'))
        .filter(|&i| authority[i + 1..].bytes().all(|b| b.is_ascii_digit()));
    let (before, after) = (&url[..authority_start], &url[authority_end..]);
    match port_colon {
        Some(i) => (
            format!("{before}{}{after}", &authority[..i]),
            url.to_owned(),
        ),
        None => {
            let port = if url[..scheme_end].eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            (url.to_owned(), format!("{before}{authority}:{port}{after}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Headers;
    use crate::providers::content_hash;
    use crate::providers::testing::{at, headers, with_url};

    /// providers.md §13 [OFFICIAL]: twilio-python's request validator tests.
    const TOKEN: &[u8] = b"12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const BODY: &[u8] = b"CallSid=CA1234567890ABCDE&Digits=1234&From=%2B14158675309&To=%2B18005551212&Caller=%2B14158675309";
    const SIG: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const JSON_BODY: &[u8] = br#"{"property": "value", "boolean": true}"#;
    const JSON_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const JSON_SIG: &str = "a9nBmqA0ju/hNViExpshrM61xv4=";

    fn form(sig: &str) -> Headers {
        headers(&[
            ("X-Twilio-Signature", sig),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ])
    }

    fn verify_with(
        url: &str,
        h: &Headers,
        body: &[u8],
        secrets: &[&[u8]],
    ) -> Result<(), VerifyError> {
        with_url(url, h, body, |req| {
            Twilio.verify(req, secrets, &ProviderSettings::default(), at(0))
        })
    }

    fn verify(url: &str, h: &Headers, body: &[u8]) -> Result<(), VerifyError> {
        verify_with(url, h, body, &[TOKEN])
    }

    #[test]
    fn official_form_vector_verifies() {
        assert_eq!(verify(URL, &form(SIG), BODY), Ok(()));
    }

    #[test]
    fn tampered_params_url_and_wrong_token_are_rejected() {
        let tampered = b"CallSid=CA1234567890ABCDE&Digits=1235&From=%2B14158675309&To=%2B18005551212&Caller=%2B14158675309";
        assert_eq!(verify(URL, &form(SIG), tampered), Err(VerifyError::NoMatch));
        let other_url = "https://mycompany.com/myapp.php?foo=1&bar=3";
        assert_eq!(
            verify(other_url, &form(SIG), BODY),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify_with(URL, &form(SIG), BODY, &[b"54321"]),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn the_secondary_token_verifies_during_promotion() {
        assert_eq!(
            verify_with(URL, &form(SIG), BODY, &[b"54321", TOKEN]),
            Ok(())
        );
    }

    #[test]
    fn signatures_made_with_or_without_the_port_verify_against_either_url() {
        // Signed with :443 written; received at the URL without it, and the reverse.
        assert_eq!(
            verify(URL, &form("kvajT1Ptam85bY51eRf/AJRuM3w="), BODY),
            Ok(())
        );
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(verify(with_port, &form(SIG), BODY), Ok(()));
        let http = "http://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            verify(http, &form("0ZXoZLH/DfblKGATFgpif+LLRf4="), BODY),
            Ok(())
        );
        let custom = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(
            verify(custom, &form("Zmvh+3yNM1Phv2jhDCwEM3q5ebU="), BODY),
            Ok(())
        );
        // A different port is a different URL.
        let other = "http://mycompany.com:1235/myapp.php?foo=1&bar=2";
        assert_eq!(
            verify(other, &form("Zmvh+3yNM1Phv2jhDCwEM3q5ebU="), BODY),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn repeated_names_sort_their_values() {
        let body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234";
        assert_eq!(
            verify(URL, &form("IK+Dwps556ElfBT0I3Rgjkr1wJU="), body),
            Ok(())
        );
    }

    #[test]
    fn official_json_vector_verifies_and_checks_the_body_hash() {
        let h = headers(&[
            ("X-Twilio-Signature", JSON_SIG),
            ("Content-Type", "application/json"),
        ]);
        assert_eq!(verify(JSON_URL, &h, JSON_BODY), Ok(()));
        let tampered = br#"{"property": "value", "boolean": false}"#;
        assert_eq!(verify(JSON_URL, &h, tampered), Err(VerifyError::NoMatch));
    }

    #[test]
    fn missing_and_malformed_signatures_are_reported() {
        let h = headers(&[("Content-Type", "application/x-www-form-urlencoded")]);
        assert_eq!(
            verify(URL, &h, BODY),
            Err(VerifyError::MissingHeader("X-Twilio-Signature".into()))
        );
        for bad in ["not base64!", "c2hvcnQ="] {
            assert_eq!(
                verify(URL, &form(bad), BODY),
                Err(VerifyError::MalformedHeader("X-Twilio-Signature".into()))
            );
        }
        assert_eq!(
            verify_with(URL, &form(SIG), BODY, &[]),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn port_variants_handle_defaults_custom_ports_and_ipv6() {
        assert_eq!(
            port_variants("https://a.example/x?y=1"),
            (
                "https://a.example/x?y=1".to_owned(),
                "https://a.example:443/x?y=1".to_owned()
            )
        );
        assert_eq!(
            port_variants("http://a.example:8080"),
            (
                "http://a.example".to_owned(),
                "http://a.example:8080".to_owned()
            )
        );
        assert_eq!(
            port_variants("http://[::1]/h"),
            ("http://[::1]/h".to_owned(), "http://[::1]:80/h".to_owned())
        );
        assert_eq!(port_variants("no scheme").0, "no scheme");
    }

    #[test]
    fn event_type_prefers_the_named_event_then_namespaced_statuses() {
        let cases: [(&[u8], &str); 5] = [
            (
                b"EventType=onMessageAdded&MessageStatus=sent",
                "onMessageAdded",
            ),
            (
                b"MessageSid=SM1&MessageStatus=Delivered&SmsStatus=delivered",
                "message.delivered",
            ),
            (b"SmsSid=SM2&SmsStatus=received", "message.received"),
            (b"CallSid=CA1&CallStatus=completed", "call.completed"),
            (b"RecordingStatus=completed", "recording.completed"),
        ];
        for (body, expected) in cases {
            let got = with_url(URL, &form(SIG), body, |req| Twilio.event_type(req));
            assert_eq!(
                got.as_deref(),
                Some(expected),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let cloud = br#"[{"type":"com.twilio.messaging.message.delivered","id":"1"}]"#;
        let got = with_url(URL, &Headers::default(), cloud, |req| {
            Twilio.event_type(req)
        });
        assert_eq!(
            got.as_deref(),
            Some("com.twilio.messaging.message.delivered")
        );
    }

    #[test]
    fn dedup_key_is_the_idempotency_token_else_the_content_hash() {
        let h = headers(&[("I-Twilio-Idempotency-Token", "0b0d3bd4-1b8b")]);
        let key = with_url(URL, &h, BODY, |req| {
            Twilio.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key.value, "0b0d3bd4-1b8b");
        let key = with_url(URL, &form(SIG), BODY, |req| {
            Twilio.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key, content_hash(BODY));
    }
}
