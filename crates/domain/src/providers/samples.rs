//! A realistic event per provider, for a source's "Send test event": the headers and
//! body the sender would post (its signature aside), shaped so the provider reads the
//! event type and its fields as it would from the real thing. Ids in it say "test".

use serde_json::{Value, json};

use super::{Headers, ProviderKind};

/// What a sender would post: headers (lower-case names) and a JSON body.
pub struct Sample {
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

impl Sample {
    /// The headers as a provider reads them.
    pub fn read_headers(&self) -> Headers {
        Headers::from_pairs(
            self.headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone())),
        )
    }
}

/// The sample `kind`'s sender would post; `id` makes its ids unique.
pub fn sample(kind: ProviderKind, id: &str) -> Sample {
    let (headers, body): (Vec<(&'static str, String)>, Value) = match kind {
        ProviderKind::Anthropic => (
            vec![("webhook-id", format!("whe_test_{id}"))],
            json!({
                "type": "event", "id": format!("whe_test_{id}"),
                "created_at": "2026-12-01T09:30:00Z",
                "data": {"type": "session.status_idled", "id": "sesn_test_01",
                         "organization_id": "org_test", "workspace_id": "wrkspc_test"}
            }),
        ),
        ProviderKind::StandardWebhooks => (
            vec![("webhook-id", format!("msg_test_{id}"))],
            json!({"type": "invoice.paid", "timestamp": "2026-12-01T09:30:00Z",
                   "data": {"id": "inv_test_01", "amount": 4200, "currency": "usd"}}),
        ),
        ProviderKind::Github => (
            vec![
                ("x-github-event", "issues".to_owned()),
                ("x-github-delivery", format!("test-{id}")),
            ],
            json!({
                "action": "opened",
                "issue": {"number": 1347, "title": "Crash when saving a draft",
                          "html_url": "https://github.com/octo-org/octo-repo/issues/1347",
                          "user": {"login": "octocat"}, "labels": [{"name": "bug"}],
                          "body": "Steps to reproduce: open a draft, press save."},
                "repository": {"full_name": "octo-org/octo-repo"},
                "sender": {"login": "octocat"}
            }),
        ),
        ProviderKind::Stripe => (
            vec![],
            json!({
                "id": format!("evt_test_{id}"), "object": "event", "type": "payment_intent.succeeded",
                "livemode": false, "created": 1_764_581_400,
                "data": {"object": {"id": "pi_test_01", "object": "payment_intent",
                                    "amount": 4200, "currency": "usd", "status": "succeeded",
                                    "customer": "cus_test_01"}}
            }),
        ),
        ProviderKind::Slack => (
            vec![],
            json!({
                "type": "event_callback", "event_id": format!("Ev_test_{id}"), "team_id": "T0TEST",
                "event": {"type": "app_mention", "user": "U0TEST", "channel": "C0TEST",
                          "text": "<@U0BOT> summarise yesterday's incidents", "ts": "1764581400.000100"}
            }),
        ),
        ProviderKind::Shopify => (
            vec![
                ("x-shopify-topic", "orders/create".to_owned()),
                ("x-shopify-webhook-id", format!("test-{id}")),
                (
                    "x-shopify-shop-domain",
                    "test-shop.myshopify.com".to_owned(),
                ),
            ],
            json!({"id": 820_982_911_946_154_508_u64, "name": "#1001", "email": "jon@example.com",
                   "total_price": "42.00", "currency": "USD", "financial_status": "paid"}),
        ),
        ProviderKind::Linear => (
            vec![("linear-delivery", format!("test-{id}"))],
            json!({
                "action": "create", "type": "Issue", "webhookTimestamp": 1_764_581_400_000_i64,
                "url": "https://linear.app/test/issue/ENG-42",
                "data": {"id": "test-issue-01", "identifier": "ENG-42",
                         "title": "Flaky deploy on Mondays", "priority": 2,
                         "state": {"name": "Todo"}, "team": {"key": "ENG"}}
            }),
        ),
        ProviderKind::Sentry => (
            vec![
                ("sentry-hook-resource", "issue".to_owned()),
                ("request-id", format!("test-{id}")),
            ],
            json!({
                "action": "created",
                "data": {"issue": {"id": "1170820242", "title": "TypeError: cannot read properties of undefined",
                                   "culprit": "app/checkout.js", "level": "error",
                                   "web_url": "https://test.sentry.io/issues/1170820242/"}},
                "installation": {"uuid": "test-installation"}
            }),
        ),
        ProviderKind::Zendesk => (
            vec![],
            json!({
                "type": "zen:event-type:ticket.created", "id": format!("test-{id}"),
                "time": "2026-12-01T09:30:00Z",
                "detail": {"id": "35436", "subject": "Cannot log in", "priority": "high",
                           "status": "NEW", "requester_id": "20978392"}
            }),
        ),
        ProviderKind::Intercom => (
            vec![],
            json!({
                "type": "notification_event", "id": format!("notif_test_{id}"),
                "topic": "conversation.user.created", "created_at": 1_764_581_400,
                "data": {"item": {"type": "conversation", "id": "test-conversation-01",
                                  "source": {"body": "<p>Where is my invoice?</p>"}}}
            }),
        ),
        ProviderKind::Pagerduty => (
            vec![("x-webhook-id", format!("test-{id}"))],
            json!({
                "event": {"id": format!("test-{id}"), "event_type": "incident.triggered",
                          "occurred_at": "2026-12-01T09:30:00Z",
                          "data": {"id": "PTEST01", "number": 42, "title": "Checkout latency above 2 s",
                                   "urgency": "high", "status": "triggered",
                                   "html_url": "https://test.pagerduty.com/incidents/PTEST01"}}
            }),
        ),
        ProviderKind::Jira => (
            vec![("x-atlassian-webhook-identifier", format!("test-{id}"))],
            json!({
                "webhookEvent": "jira:issue_created", "timestamp": 1_764_581_400_000_i64,
                "issue": {"key": "OPS-7", "fields": {"summary": "Rotate the staging certificates",
                                                     "priority": {"name": "High"}}},
                "user": {"displayName": "Test User"}
            }),
        ),
        ProviderKind::Gitlab => (
            vec![
                ("x-gitlab-event", "Issue Hook".to_owned()),
                ("x-gitlab-event-uuid", format!("test-{id}")),
            ],
            json!({
                "object_kind": "issue", "event_type": "issue",
                "project": {"path_with_namespace": "test-group/test-project"},
                "object_attributes": {"iid": 23, "title": "Pipeline fails on main",
                                      "action": "open",
                                      "url": "https://gitlab.example.com/test-group/test-project/-/issues/23"}
            }),
        ),
        ProviderKind::Twilio => (
            vec![],
            json!({"MessageSid": format!("SMtest{id}"), "From": "+15005550006",
                   "To": "+15005550001", "Body": "Is my order on its way?", "EventType": "onMessageAdded"}),
        ),
        ProviderKind::Hmac
        | ProviderKind::BasicAuth
        | ProviderKind::ApiKey
        | ProviderKind::None => (
            vec![],
            json!({"type": "order.shipped", "id": format!("test-{id}"),
                   "data": {"order": "A-1001", "carrier": "UPS", "tracking": "1Z999AA10123456784"}}),
        ),
    };
    let mut headers = headers;
    headers.push(("content-type", "application/json".to_owned()));
    headers.push((TEST_HEADER, "true".to_owned()));
    Sample { headers, body }
}

/// The header a test event carries, stored with it and shown on its page.
pub const TEST_HEADER: &str = "switchyard-test";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{ProviderSettings, event_type_of};

    /// Each sample reads as its provider's real events do: it has a type (the generic
    /// HMAC scheme names none) and says it is a test.
    #[test]
    fn every_provider_s_sample_has_the_type_its_provider_reads() {
        for kind in ProviderKind::ALL {
            let sample = sample(kind, "a1");
            let body = serde_json::to_vec(&sample.body).unwrap();
            let headers = sample.read_headers();
            let settings = ProviderSettings::default();
            let event_type = event_type_of(kind, &settings, &headers, &body, &sample.body);
            match kind {
                ProviderKind::Hmac => assert_eq!(event_type, None),
                _ => assert!(event_type.is_some(), "{kind}"),
            }
            assert_eq!(headers.get(TEST_HEADER), Some("true"), "{kind}");
        }
    }
}
