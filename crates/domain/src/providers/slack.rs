//! Slack request signing: `X-Slack-Signature: v0=<hex>`, the HMAC-SHA256 of
//! `v0:{X-Slack-Request-Timestamp}:{body}` keyed with the signing secret as a string (it
//! looks like hex and must not be decoded), with a ±300 s window both ways as in
//! slack_sdk. Slack signs no second secret, so rotation is trying old and new. Bodies come
//! in two shapes: JSON (Events API) and `application/x-www-form-urlencoded` (slash
//! commands; interactivity, whose JSON sits in a `payload` field). Both are read through
//! the structured body (`/payload/type` for interactivity), and only the Events API carries a real delivery id (`event_id`); the others fall back to
//! `trigger_id`, which is one per user action.

use chrono::{DateTime, Utc};
use hmac::Hmac;
use serde_json::Value;
use sha2::Sha256;

use super::signing::{
    hex_signature, matches_any, require_secret, required_header, unix_seconds, within_window,
};
use super::{
    DedupKey, DedupKind, Inbound, Provider, ProviderSettings, VerifyError, content_hash,
    header_override, json_str,
};

pub struct Slack;

const SIGNATURE_HEADER: &str = "X-Slack-Signature";
const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
const TOLERANCE_SECS: i64 = 300;

impl Provider for Slack {
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
        let ts =
            unix_seconds(timestamp).ok_or(VerifyError::MalformedHeader(TIMESTAMP_HEADER.into()))?;
        within_window(now, ts, TOLERANCE_SECS)?;
        let expected = hex_signature(signature, "v0=", 32)
            .ok_or(VerifyError::MalformedHeader(SIGNATURE_HEADER.into()))?;
        let signed: [&[u8]; 4] = [b"v0:", timestamp.as_bytes(), b":", req.body];
        matches_any::<Hmac<Sha256>>(secrets, &signed, &[expected])
    }

    /// The inner `event.type` for Events API callbacks (`message`, `app_mention`), else
    /// the envelope's `type` (`url_verification`); for form posts the interactivity
    /// payload's `type` (`block_actions`) or the slash command (`/deploy`).
    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        first_string(req, &["/event/type", "/payload/type", "/type", "/command"])
    }

    /// The Events API's `event_id`; interactions and slash commands carry only their
    /// `trigger_id`.
    fn dedup_key(&self, req: &Inbound<'_>, settings: &ProviderSettings) -> DedupKey {
        header_override(req, settings)
            .or_else(|| {
                let id = first_string(req, &["/event_id", "/trigger_id", "/payload/trigger_id"])?;
                Some(DedupKey {
                    value: id,
                    kind: DedupKind::ProviderId,
                })
            })
            .unwrap_or_else(|| content_hash(req.body))
    }

    /// Slack checks a new Events API URL with a signed `url_verification` request and
    /// expects its `challenge` echoed back; it is not an event and is not stored.
    fn handshake(&self, req: &Inbound<'_>) -> Option<Value> {
        let json = req.json?;
        if json.get("type").and_then(Value::as_str) != Some("url_verification") {
            return None;
        }
        let challenge = json.get("challenge").and_then(Value::as_str)?;
        Some(serde_json::json!({ "challenge": challenge }))
    }
}

/// The first non-empty string found at one of `pointers` in the structured body.
fn first_string(req: &Inbound<'_>, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| json_str(req, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Headers;
    use crate::providers::testing::{at, headers, with_json};

    /// providers.md §4 [OFFICIAL]: Slack's docs example, also in python-slack-sdk's tests.
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: i64 = 1_531_420_618;
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn signed(sig: &str) -> Headers {
        headers(&[
            ("X-Slack-Signature", sig),
            ("X-Slack-Request-Timestamp", &TS.to_string()),
        ])
    }

    fn form() -> Headers {
        headers(&[("Content-Type", "application/x-www-form-urlencoded")])
    }

    fn verify_with(
        h: &Headers,
        body: &[u8],
        secrets: &[&[u8]],
        now: i64,
    ) -> Result<(), VerifyError> {
        with_json(h, body, |req| {
            Slack.verify(req, secrets, &ProviderSettings::default(), at(now))
        })
    }

    fn verify(h: &Headers, body: &[u8], now: i64) -> Result<(), VerifyError> {
        verify_with(h, body, &[SECRET], now)
    }

    #[test]
    fn official_vector_verifies() {
        assert_eq!(verify(&signed(SIG), BODY, TS), Ok(()));
    }

    #[test]
    fn tampered_body_is_rejected() {
        let body = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("foobar", "foobaz");
        assert_eq!(
            verify(&signed(SIG), body.as_bytes(), TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn timestamps_more_than_300_seconds_away_are_rejected_both_ways() {
        assert_eq!(
            verify(&signed(SIG), BODY, TS + 301),
            Err(VerifyError::StaleTimestamp {
                off_by: 301,
                window: 300
            })
        );
        assert_eq!(
            verify(&signed(SIG), BODY, TS - 301),
            Err(VerifyError::StaleTimestamp {
                off_by: -301,
                window: 300
            })
        );
        assert_eq!(verify(&signed(SIG), BODY, TS + 300), Ok(()));
    }

    #[test]
    fn second_secret_is_accepted_during_rotation() {
        assert_eq!(
            verify_with(&signed(SIG), BODY, &[b"old", SECRET], TS),
            Ok(())
        );
        assert_eq!(
            verify_with(&signed(SIG), BODY, &[b"old"], TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_reported() {
        assert_eq!(
            verify(&Headers::default(), BODY, TS),
            Err(VerifyError::MissingHeader("X-Slack-Signature".into()))
        );
        let h = headers(&[("X-Slack-Signature", SIG)]);
        assert_eq!(
            verify(&h, BODY, TS),
            Err(VerifyError::MissingHeader(
                "X-Slack-Request-Timestamp".into()
            ))
        );
        let h = signed(SIG.trim_start_matches("v0="));
        assert_eq!(
            verify(&h, BODY, TS),
            Err(VerifyError::MalformedHeader("X-Slack-Signature".into()))
        );
    }

    #[test]
    fn slash_command_event_type_is_the_command_and_dedup_is_the_trigger_id() {
        let h = form();
        assert_eq!(
            with_json(&h, BODY, |req| Slack.event_type(req)).as_deref(),
            Some("/webhook-collect")
        );
        let key = with_json(&h, BODY, |req| {
            Slack.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(
            key.value,
            "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        );
        assert_eq!(key.kind, DedupKind::ProviderId);
    }

    #[test]
    fn events_api_type_is_the_inner_event_type_and_dedup_is_the_event_id() {
        let body =
            br#"{"type":"event_callback","event_id":"Ev123","event":{"type":"app_mention"}}"#;
        let h = Headers::default();
        assert_eq!(
            with_json(&h, body, |req| Slack.event_type(req)).as_deref(),
            Some("app_mention")
        );
        let key = with_json(&h, body, |req| {
            Slack.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key.value, "Ev123");
        assert_eq!(key.kind, DedupKind::ProviderId);
    }

    #[test]
    fn url_verification_type_is_the_top_level_type_and_dedup_the_content_hash() {
        let body = br#"{"type":"url_verification","challenge":"abc","token":"t"}"#;
        let h = Headers::default();
        assert_eq!(
            with_json(&h, body, |req| Slack.event_type(req)).as_deref(),
            Some("url_verification")
        );
        let key = with_json(&h, body, |req| {
            Slack.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key, content_hash(body));
    }

    #[test]
    fn interactivity_payload_gives_the_type_and_the_trigger_id() {
        let body =
            b"payload=%7B%22type%22%3A%22block_actions%22%2C%22trigger_id%22%3A%2212.34.ab%22%7D";
        let h = form();
        assert_eq!(
            with_json(&h, body, |req| Slack.event_type(req)).as_deref(),
            Some("block_actions")
        );
        let key = with_json(&h, body, |req| {
            Slack.dedup_key(req, &ProviderSettings::default())
        });
        assert_eq!(key.value, "12.34.ab");
    }

    #[test]
    fn dedup_header_setting_overrides_the_event_id() {
        let body = br#"{"event_id":"Ev1"}"#;
        let h = headers(&[("X-Slack-Retry-Num", "1"), ("X-Key", "k")]);
        let settings = ProviderSettings {
            dedup_header: Some("x-key".to_owned()),
            ..ProviderSettings::default()
        };
        let key = with_json(&h, body, |req| Slack.dedup_key(req, &settings));
        assert_eq!(key.value, "k");
    }
}
