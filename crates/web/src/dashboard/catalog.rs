//! What the dashboard tells a person about each provider: its name, what to paste as the
//! secret, and where to set the webhook up on the sender's side.

use switchyard_domain::providers::ProviderKind;

pub struct Guide {
    pub kind: ProviderKind,
    pub title: &'static str,
    /// Two letters for the provider's badge.
    pub monogram: &'static str,
    pub secret_label: &'static str,
    pub secret_hint: &'static str,
    /// The steps on the sender's side; "the ingest URL" is shown above them.
    pub steps: &'static [&'static str],
}

impl Guide {
    pub fn id(&self) -> &'static str {
        self.kind.as_str()
    }

    pub fn takes_secret(&self) -> bool {
        self.kind != ProviderKind::None
    }

    /// Whether the sender shows its secret only once the ingest URL is saved there: the
    /// source may be created without it.
    pub fn secret_later(&self) -> bool {
        self.kind.secret_follows_url()
    }

    pub fn is(&self, name: &str) -> bool {
        self.kind.as_str() == name
    }
}

pub const GUIDES: &[Guide] = &[
    Guide {
        kind: ProviderKind::Github,
        title: "GitHub",
        monogram: "GH",
        secret_label: "Webhook secret",
        secret_hint: "Any long random string; paste the same one into GitHub.",
        steps: &[
            "In the repository or organization, open Settings → Webhooks → Add webhook.",
            "Paste the ingest URL as the Payload URL.",
            "Set Content type to application/json.",
            "Paste the same secret you entered here as the Secret.",
            "Choose the events to send, keep SSL verification on, and save. GitHub sends a ping event at once.",
        ],
    },
    Guide {
        kind: ProviderKind::Anthropic,
        title: "Anthropic (Managed Agents)",
        monogram: "AN",
        secret_label: "Signing secret",
        secret_hint: "The whsec_… secret the Console shows when you create the webhook.",
        steps: &[
            "In the Claude Console, open Manage → Webhooks and add an endpoint.",
            "Paste the ingest URL and choose the event types (session.*, vault_credential.refresh_failed, …).",
            "Copy the whsec_… signing secret the Console shows and paste it here.",
        ],
    },
    Guide {
        kind: ProviderKind::Stripe,
        title: "Stripe",
        monogram: "ST",
        secret_label: "Endpoint signing secret",
        secret_hint: "The whsec_… secret of the endpoint, prefix included.",
        steps: &[
            "In the Stripe Dashboard, open Developers → Webhooks → Add endpoint.",
            "Paste the ingest URL as the endpoint URL and select the events.",
            "Reveal the endpoint's signing secret and paste it here.",
        ],
    },
    Guide {
        kind: ProviderKind::Slack,
        title: "Slack",
        monogram: "SL",
        secret_label: "Signing secret",
        secret_hint: "Basic Information → App Credentials → Signing Secret.",
        steps: &[
            "In your app's settings at api.slack.com, copy the Signing Secret and paste it here.",
            "Under Event Subscriptions (or Interactivity, or a slash command), paste the ingest URL as the Request URL.",
            "Slack verifies the URL with a url_verification request; Switchyard answers it.",
        ],
    },
    Guide {
        kind: ProviderKind::Linear,
        title: "Linear",
        monogram: "LN",
        secret_label: "Signing secret",
        secret_hint: "Shown on the webhook's page in Linear.",
        steps: &[
            "In Linear, open Settings → API → Webhooks → New webhook.",
            "Paste the ingest URL, choose the resource types, and save.",
            "Copy the webhook's signing secret and paste it here.",
        ],
    },
    Guide {
        kind: ProviderKind::Sentry,
        title: "Sentry",
        monogram: "SE",
        secret_label: "Client secret",
        secret_hint: "The internal integration's Client Secret.",
        steps: &[
            "In Sentry, open Settings → Developer Settings → Custom Integrations → New Internal Integration.",
            "Paste the ingest URL as the Webhook URL and enable the resources (issue, error, …).",
            "Copy the integration's Client Secret and paste it here.",
        ],
    },
    Guide {
        kind: ProviderKind::StandardWebhooks,
        title: "Standard Webhooks / Svix",
        monogram: "SW",
        secret_label: "Signing secret",
        secret_hint: "The whsec_… secret of the endpoint.",
        steps: &[
            "In the sender's webhook settings, add an endpoint with the ingest URL.",
            "Copy the endpoint's whsec_… signing secret and paste it here.",
        ],
    },
    Guide {
        kind: ProviderKind::Shopify,
        title: "Shopify",
        monogram: "SH",
        secret_label: "Client secret",
        secret_hint: "The app's client secret (or the store's webhook signing key).",
        steps: &[
            "Subscribe to the topics with the ingest URL as the address (app configuration or Admin API).",
            "Paste the app's client secret here.",
        ],
    },
    Guide {
        kind: ProviderKind::Zendesk,
        title: "Zendesk",
        monogram: "ZD",
        secret_label: "Signing secret",
        secret_hint: "Reveal it on the webhook's page in Admin Center.",
        steps: &[
            "In Admin Center, open Apps and integrations → Webhooks → Create webhook.",
            "Paste the ingest URL as the endpoint, method POST, format JSON.",
            "Reveal the webhook's signing secret and paste it here.",
        ],
    },
    Guide {
        kind: ProviderKind::Intercom,
        title: "Intercom",
        monogram: "IC",
        secret_label: "Client secret",
        secret_hint: "Your app's client_secret from the Developer Hub.",
        steps: &[
            "In the Developer Hub, open your app → Webhooks.",
            "Paste the ingest URL as the endpoint and pick the topics.",
            "Paste the app's client secret here (Basic information → Authentication).",
        ],
    },
    Guide {
        kind: ProviderKind::Pagerduty,
        title: "PagerDuty",
        monogram: "PD",
        secret_label: "Signing secret",
        secret_hint: "Shown once when the subscription is created.",
        steps: &[
            "In PagerDuty, open Integrations → Generic Webhooks (v3) → New Webhook.",
            "Paste the ingest URL, choose the scope and event types.",
            "Copy the signing secret PagerDuty shows once and paste it here.",
        ],
    },
    Guide {
        kind: ProviderKind::Jira,
        title: "Jira",
        monogram: "JI",
        secret_label: "Secret",
        secret_hint: "The secret you set on the webhook.",
        steps: &[
            "In Jira, open Settings → System → WebHooks → Create a WebHook.",
            "Paste the ingest URL, set a secret, and choose the events.",
            "Paste the same secret here.",
        ],
    },
    Guide {
        kind: ProviderKind::Gitlab,
        title: "GitLab",
        monogram: "GL",
        secret_label: "Secret token",
        secret_hint: "The webhook's secret token, or its whsec_… signing token.",
        steps: &[
            "In the project or group, open Settings → Webhooks → Add new webhook.",
            "Paste the ingest URL, set a secret token, and choose the triggers.",
            "Paste the same token here.",
        ],
    },
    Guide {
        kind: ProviderKind::Twilio,
        title: "Twilio",
        monogram: "TW",
        secret_label: "Auth Token",
        secret_hint: "The account's Auth Token, from the Console's account info.",
        steps: &[
            "Paste the ingest URL as the webhook or status callback URL of the number, service or flow.",
            "Paste the account's Auth Token here. Twilio signs the URL it calls: SWITCHYARD_PUBLIC_URL must be the address Twilio reaches.",
        ],
    },
    Guide {
        kind: ProviderKind::Hmac,
        title: "Any HMAC signature",
        monogram: "HM",
        secret_label: "Shared secret",
        secret_hint: "The secret the sender signs with, exactly as it shows it.",
        steps: &[
            "Paste the ingest URL into the sender's webhook settings.",
            "Describe how it signs below: the header, algorithm, encoding and any prefix or timestamp.",
        ],
    },
    Guide {
        kind: ProviderKind::BasicAuth,
        title: "HTTP Basic auth",
        monogram: "BA",
        secret_label: "user:password",
        secret_hint: "The credentials the sender puts in its Authorization header.",
        steps: &["Configure the sender to call the ingest URL with these Basic credentials."],
    },
    Guide {
        kind: ProviderKind::ApiKey,
        title: "API key header",
        monogram: "AK",
        secret_label: "Key",
        secret_hint: "The value the sender puts in the key header.",
        steps: &["Configure the sender to call the ingest URL with this key in the header below."],
    },
    Guide {
        kind: ProviderKind::None,
        title: "No verification",
        monogram: "—",
        secret_label: "",
        secret_hint: "",
        steps: &[
            "Anyone who knows the ingest URL can post to it: keep it secret, or prefer a verified provider.",
        ],
    },
];

pub fn guide(kind: ProviderKind) -> &'static Guide {
    GUIDES
        .iter()
        .find(|g| g.kind == kind)
        .unwrap_or(&GUIDES[GUIDES.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_exactly_one_guide() {
        for kind in ProviderKind::ALL {
            assert_eq!(
                GUIDES.iter().filter(|g| g.kind == kind).count(),
                1,
                "{kind}"
            );
        }
        assert_eq!(GUIDES.len(), ProviderKind::ALL.len());
    }
}
