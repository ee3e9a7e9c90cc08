//! Property tests: each signature-header parser reads back what a sender writes and never
//! panics on anything else, and every provider survives arbitrary requests (headers,
//! bytes, URLs) without panicking or accepting a signature nobody made.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;
use url::form_urlencoded;

use super::testing::with_url;
use super::{
    Headers, HmacScheme, ProviderKind, ProviderSettings, checked_event_type, resolve_event_type,
    signing, standard_webhooks, stripe, structured, twilio,
};

/// Every header name some provider reads, so arbitrary values reach every parser.
const HEADER_NAMES: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-github-event",
    "x-github-delivery",
    "stripe-signature",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-shopify-hmac-sha256",
    "x-shopify-topic",
    "x-shopify-webhook-id",
    "linear-signature",
    "linear-delivery",
    "sentry-hook-signature",
    "sentry-hook-resource",
    "x-zendesk-webhook-signature",
    "x-zendesk-webhook-signature-timestamp",
    "x-zendesk-webhook-invocation-id",
    "x-pagerduty-signature",
    "x-webhook-id",
    "x-atlassian-webhook-identifier",
    "x-gitlab-token",
    "x-gitlab-event",
    "x-gitlab-event-uuid",
    "idempotency-key",
    "x-twilio-signature",
    "i-twilio-idempotency-token",
    "authorization",
    "x-api-key",
    "x-signature",
    "x-timestamp",
    "content-type",
];

fn arbitrary_headers() -> impl Strategy<Value = Headers> {
    vec(
        (
            proptest::sample::select(HEADER_NAMES),
            prop_oneof![
                any::<String>(),
                "[ -~]{0,80}",
                "(t|v0|v1|sha1|sha256)[=,][0-9a-fA-F+/=]{0,90}",
                Just("application/x-www-form-urlencoded".to_owned()),
            ],
        ),
        0..8,
    )
    .prop_map(|pairs| {
        Headers::from_pairs(
            pairs
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        )
    })
}

fn arbitrary_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..256),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        r#"\{"(type|id|event|data|payload|action)":("[a-z._]{0,12}"|\{"type":"[a-z.]{0,8}"\}|[0-9]{1,4}|null)\}"#
            .prop_map(String::into_bytes),
        "([a-zA-Z]{1,8}=[a-zA-Z0-9%+]{0,12}&){0,5}".prop_map(String::into_bytes),
    ]
}

fn settings() -> ProviderSettings {
    ProviderSettings {
        dedup_pointer: Some("/id".to_owned()),
        event_type_pointer: Some("/payload/type".to_owned()),
        hmac: serde_json::from_value::<HmacScheme>(serde_json::json!({
            "header": "X-Signature", "prefix": "v1=", "timestamp_header": "X-Timestamp"
        }))
        .ok(),
        ..ProviderSettings::default()
    }
}

proptest! {
    #[test]
    fn every_provider_survives_arbitrary_requests_and_accepts_no_forgery(
        headers in arbitrary_headers(),
        body in arbitrary_body(),
        url in prop_oneof![any::<String>(), "https?://[a-z.]{1,12}(:[0-9]{1,5})?/hooks/[a-z0-9]{0,8}(\\?[a-z=&]{0,10})?"],
        now in 0i64..4_000_000_000,
    ) {
        let settings = settings();
        let now = DateTime::from_timestamp(now, 0).expect("in range");
        for kind in ProviderKind::ALL {
            let provider = kind.provider();
            with_url(&url, &headers, &body, |req| {
                let verdict = provider.verify(req, &[b"user:a-secret-nobody-sent"], &settings, now);
                if kind.needs_secret() {
                    prop_assert!(verdict.is_err(), "{kind} accepted {headers:?}");
                }
                let _ = checked_event_type(resolve_event_type(provider, req, &settings));
                let key = provider.dedup_key(req, &settings).bounded();
                prop_assert!(key.value.len() <= super::MAX_DEDUP_KEY);
                let _ = provider.handshake(req);
                Ok(())
            })?;
        }
    }

    #[test]
    fn stripe_headers_read_back_their_timestamp_and_v1_signatures(
        t in any::<u32>(),
        sigs in vec(any::<[u8; 32]>(), 0..4),
        others in vec("v0=[0-9a-f]{0,10}", 0..3),
    ) {
        let mut items = vec![format!("t={t}")];
        items.extend(sigs.iter().map(|s| format!("v1={}", hex::encode(s))));
        items.extend(others);
        let header = items.join(",");
        let parsed = stripe::parse_header(&header).expect("well formed");
        prop_assert_eq!(parsed.timestamp, t.to_string());
        prop_assert_eq!(parsed.v1, sigs.iter().map(|s| s.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn stripe_header_parser_takes_any_string(header in any::<String>()) {
        let _ = stripe::parse_header(&header);
    }

    #[test]
    fn standard_webhooks_lists_read_back_every_v1_signature(
        sigs in vec(vec(any::<u8>(), 1..64), 1..4),
        unknown in vec("v[2-9a],[A-Za-z0-9+/]{4,8}", 0..3),
    ) {
        let mut items: Vec<String> = sigs.iter().map(|s| format!("v1,{}", STANDARD.encode(s))).collect();
        items.extend(unknown);
        let parsed = standard_webhooks::v1_signatures(&items.join(" ")).expect("well formed");
        prop_assert_eq!(parsed, sigs);
    }

    #[test]
    fn standard_webhooks_list_parser_takes_any_string(header in any::<String>()) {
        let _ = standard_webhooks::v1_signatures(&header);
    }

    #[test]
    fn twilio_port_variants_differ_only_in_the_port(
        scheme in "https?",
        host in "[a-z]{1,10}(\\.[a-z]{2,5})?",
        port in proptest::option::of(1u16..),
        rest in "(/[a-z0-9]{0,8}){0,3}(\\?[a-z0-9=&]{0,12})?",
    ) {
        let default = if scheme == "https" { 443 } else { 80 };
        let written = match port {
            Some(p) => format!("{scheme}://{host}:{p}{rest}"),
            None => format!("{scheme}://{host}{rest}"),
        };
        let (without, with) = twilio::port_variants(&written);
        prop_assert_eq!(without, format!("{scheme}://{host}{rest}"));
        prop_assert_eq!(with, format!("{scheme}://{host}:{}{rest}", port.unwrap_or(default)));
    }

    #[test]
    fn twilio_port_variants_take_any_string(url in any::<String>()) {
        let _ = twilio::port_variants(&url);
    }

    #[test]
    fn hmac_scheme_candidates_read_back_what_was_written(
        digests in vec(any::<[u8; 32]>(), 1..3),
        base64 in any::<bool>(),
        prefix in "[a-z0-9]{0,6}=?",
    ) {
        let scheme: HmacScheme = serde_json::from_value(serde_json::json!({
            "header": "x", "prefix": prefix, "encoding": if base64 { "base64" } else { "hex" }
        })).expect("valid scheme");
        let value = digests
            .iter()
            .map(|d| format!("{prefix}{}", if base64 { STANDARD.encode(d) } else { hex::encode(d) }))
            .collect::<Vec<_>>()
            .join(", ");
        prop_assert_eq!(scheme.candidates(&value), digests.iter().map(|d| d.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn unix_seconds_reads_digits_and_nothing_else(raw in any::<String>(), n in 0i64..) {
        prop_assert_eq!(signing::unix_seconds(&n.to_string()), Some(n));
        if let Some(parsed) = signing::unix_seconds(&raw) {
            let written = parsed.to_string();
            prop_assert_eq!(written.trim_start_matches('0'), raw.trim_start_matches('0'));
        }
    }

    #[test]
    fn form_bodies_read_back_each_first_value(pairs in vec(("[a-zA-Z_]{1,8}", any::<String>()), 0..6)) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        let object = structured(Some("application/x-www-form-urlencoded"), body.as_bytes());
        if serde_json::from_slice::<Value>(body.as_bytes()).is_ok() {
            // A body that happens to be JSON is read as JSON.
            return Ok(());
        }
        let object = object.expect("a form is structured");
        for (name, value) in &pairs {
            let first = &pairs.iter().find(|(n, _)| n == name).expect("present").1;
            let read = &object[name];
            match serde_json::from_str::<Value>(first) {
                Ok(nested @ (Value::Object(_) | Value::Array(_))) => prop_assert_eq!(read, &nested),
                _ => prop_assert_eq!(read.as_str(), Some(first.as_str()), "{}={}", name, value),
            }
        }
    }

    #[test]
    fn structured_takes_any_bytes(body in vec(any::<u8>(), 0..512), form in any::<bool>()) {
        let content_type = form.then_some("application/x-www-form-urlencoded");
        let _ = structured(content_type, &body);
    }
}
