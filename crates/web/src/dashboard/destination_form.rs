//! The destination form: every field as text, read into what the use case takes, with
//! the fields that did not parse said next to them; and the kinds it offers.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_domain::app::destinations::{
    AuthInput, ConfigInput, EmailInput, HttpInput, LimitsInput, RoutineInput, SlackInput,
};
use switchyard_domain::delivery::DestinationKind;

use super::forms::{Errors, filled, items};

/// The form, every field as text so a bad value is reported next to it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DestinationForm {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) url: String,
    pub(super) fire_url: String,
    pub(super) token: String,
    pub(super) to: String,
    pub(super) method: String,
    pub(super) headers: String,
    pub(super) auth_type: String,
    pub(super) clear_headers: Option<String>,
    pub(super) auth_token: String,
    pub(super) auth_username: String,
    pub(super) auth_password: String,
    pub(super) rate_per_minute: String,
    pub(super) max_in_flight: String,
    pub(super) budget_per_hour: String,
    pub(super) budget_per_day: String,
    /// A route form kept while this destination is made (`flash` id), to go back to.
    pub(super) for_route: String,
}

impl DestinationForm {
    /// Only where it sends, as a recipe's form asks for it.
    pub(super) fn target(fire_url: &str, token: &str, url: &str, to: &str) -> DestinationForm {
        DestinationForm {
            fire_url: fire_url.to_owned(),
            token: token.to_owned(),
            url: url.to_owned(),
            to: to.to_owned(),
            ..DestinationForm::default()
        }
    }

    /// The kind's fields. Creating, an empty field is "not given"; editing, an empty secret
    /// keeps the current one and an empty limit removes the limit.
    /// What the form asks for, and the fields that did not parse (left out of it).
    pub(super) fn input(
        &self,
        kind: DestinationKind,
        editing: bool,
    ) -> ((ConfigInput, LimitsInput), Errors) {
        let mut errors = Errors::default();
        let number = |errors: &mut Errors, field: &str, raw: &str| match filled(raw) {
            Some(v) => match v.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.add(field, "Enter a whole number (0 for no limit).");
                    None
                }
            },
            None if editing => Some(0),
            None => None,
        };
        let limits = LimitsInput {
            rate_per_minute: number(&mut errors, "rate_per_minute", &self.rate_per_minute),
            max_in_flight: number(&mut errors, "max_in_flight", &self.max_in_flight),
            budget_per_hour: number(&mut errors, "budget_per_hour", &self.budget_per_hour),
            budget_per_day: number(&mut errors, "budget_per_day", &self.budget_per_day),
        };
        let config = match kind {
            DestinationKind::Http => {
                let mut headers = BTreeMap::new();
                for line in self.headers.lines().filter(|l| !l.trim().is_empty()) {
                    match line.split_once(':') {
                        Some((name, value)) => {
                            headers.insert(name.trim().to_owned(), value.trim().to_owned());
                        }
                        None => errors.add("headers", format!("\"{line}\" is not Name: value.")),
                    }
                }
                ConfigInput::Http(HttpInput {
                    url: filled(&self.url),
                    method: filled(&self.method),
                    headers: match (headers.is_empty(), self.clear_headers.is_some()) {
                        (false, _) => Some(headers),
                        (true, true) => Some(BTreeMap::new()),
                        (true, false) => None,
                    },
                    auth: match self.auth_type.as_str() {
                        "bearer" => Some(AuthInput::Bearer {
                            token: self.auth_token.trim().to_owned(),
                        }),
                        "basic" => Some(AuthInput::Basic {
                            username: self.auth_username.trim().to_owned(),
                            password: self.auth_password.clone(),
                        }),
                        "none" if editing => Some(AuthInput::None),
                        _ => None,
                    },
                })
            }
            DestinationKind::Slack => ConfigInput::Slack(SlackInput {
                url: filled(&self.url),
            }),
            DestinationKind::Routine => ConfigInput::Routine(RoutineInput {
                fire_url: filled(&self.fire_url),
                token: filled(&self.token),
            }),
            DestinationKind::Email => ConfigInput::Email(EmailInput {
                to: Some(items(&self.to)),
            }),
        };
        ((config, limits), errors)
    }
}

pub struct KindChoice {
    pub id: &'static str,
    pub title: &'static str,
    pub blurb: &'static str,
}

pub(super) const KINDS: &[KindChoice] = &[
    KindChoice {
        id: "routine",
        title: "Claude routine",
        blurb: "Fire a Claude Code routine with the event as its text.",
    },
    KindChoice {
        id: "slack",
        title: "Slack",
        blurb: "Post to a channel through an incoming webhook.",
    },
    KindChoice {
        id: "email",
        title: "Email",
        blurb: "Mail the event to people, or to the team's admins.",
    },
    KindChoice {
        id: "http",
        title: "HTTP endpoint",
        blurb: "POST the event to your own service, signed.",
    },
];
