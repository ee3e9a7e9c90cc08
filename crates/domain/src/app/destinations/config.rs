//! What a command says about where a destination sends, and how it becomes the stored
//! [`DestinationConfig`] and [`Credentials`].
//!
//! A command's body is flat: `name`, the limits and the kind's own fields side by side.
//! Serde cannot refuse unknown fields through a flattened struct, so the kind's fields
//! arrive as [`KindFields`]: any field no kind has is refused as the body is read, and
//! the rest is read as one kind's [`ConfigInput`] once the kind is known, where a field
//! of another kind is refused by name.

use serde::Deserialize;
use serde_aux::serde_introspection::serde_introspect;
use serde_json::{Map, Value};

use super::http::{self, HttpInput};
use crate::accounts;
use crate::app::{AppError, Invalid};
use crate::delivery::DestinationKind;
use crate::delivery::limits::Limits;
use crate::model::{Credentials, DestinationConfig, DestinationUrl, hint};
use crate::netguard::Policy;

/// One kind's fields in a command, each optional: creating, the kind's required fields
/// must be given; changing, an absent field keeps its value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ConfigInput {
    Routine(RoutineInput),
    Slack(SlackInput),
    Email(EmailInput),
    Http(HttpInput),
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutineInput {
    /// The routine's fire URL (`…/v1/claude_code/routines/trig_…/fire`).
    pub fire_url: Option<String>,
    /// The routine's token (`sk-ant-oat01-…`), kept encrypted.
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackInput {
    /// The incoming-webhook URL (`https://hooks.slack.com/services/…`), kept encrypted
    /// and shown masked.
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailInput {
    /// The recipients (up to 20); empty or absent sends to the team's owners and admins.
    pub to: Option<Vec<String>>,
}

impl ConfigInput {
    pub fn kind(&self) -> DestinationKind {
        match self {
            ConfigInput::Routine(_) => DestinationKind::Routine,
            ConfigInput::Slack(_) => DestinationKind::Slack,
            ConfigInput::Email(_) => DestinationKind::Email,
            ConfigInput::Http(_) => DestinationKind::Http,
        }
    }
}

/// The names of a kind's own fields.
fn fields_of(kind: DestinationKind) -> &'static [&'static str] {
    match kind {
        DestinationKind::Routine => serde_introspect::<RoutineInput>(),
        DestinationKind::Slack => serde_introspect::<SlackInput>(),
        DestinationKind::Email => serde_introspect::<EmailInput>(),
        DestinationKind::Http => serde_introspect::<HttpInput>(),
    }
}

fn is_any_kinds(field: &str) -> bool {
    DestinationKind::ALL
        .iter()
        .any(|kind| fields_of(*kind).contains(&field))
}

/// A command's kind-specific fields, before the kind is known. Reading the body refuses
/// a field that no kind has.
#[derive(Debug, Default, utoipa::ToSchema)]
#[schema(value_type = Object)]
pub struct KindFields(Map<String, Value>);

impl<'de> Deserialize<'de> for KindFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = Map::deserialize(deserializer)?;
        if let Some(unknown) = fields.keys().find(|f| !is_any_kinds(f)) {
            return Err(serde::de::Error::custom(format!(
                "unknown field `{unknown}`"
            )));
        }
        Ok(KindFields(fields))
    }
}

impl KindFields {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields as `kind`'s; one of another kind is refused by name.
    pub fn read(self, kind: DestinationKind) -> Result<ConfigInput, AppError> {
        let own = fields_of(kind);
        let mut invalid = Invalid::default();
        for field in self.0.keys().filter(|f| !own.contains(&f.as_str())) {
            invalid.add(field, format!("{kind} destinations do not take {field}"));
        }
        invalid.finish()?;
        let mut fields = self.0;
        fields.insert("kind".to_owned(), kind.as_str().into());
        serde_json::from_value(Value::Object(fields)).map_err(|e| AppError::field("body", e))
    }
}

/// The limits a command sets: a number sets one, 0 removes it, absent keeps it.
#[derive(Debug, Default, Clone, Copy, Deserialize, utoipa::ToSchema)]
pub struct LimitsInput {
    /// Sends started per minute at most, spread evenly (Slack defaults to 60). 0 removes.
    pub rate_per_minute: Option<u32>,
    /// Sends in flight at once at most. 0 removes.
    pub max_in_flight: Option<u32>,
    /// Sends per UTC clock hour at most (a routine's budget of sessions). 0 removes.
    pub budget_per_hour: Option<u32>,
    /// Sends per UTC day at most. 0 removes.
    pub budget_per_day: Option<u32>,
}

impl LimitsInput {
    pub fn is_empty(&self) -> bool {
        [
            self.rate_per_minute,
            self.max_in_flight,
            self.budget_per_hour,
            self.budget_per_day,
        ]
        .iter()
        .all(Option::is_none)
    }

    /// `limits` with what was sent applied.
    pub(super) fn apply(self, invalid: &mut Invalid, mut limits: Limits) -> Limits {
        let changes = [
            (
                "rate_per_minute",
                self.rate_per_minute,
                60_000,
                &mut limits.rate_per_minute,
            ),
            (
                "max_in_flight",
                self.max_in_flight,
                1_000,
                &mut limits.max_in_flight,
            ),
            (
                "budget_per_hour",
                self.budget_per_hour,
                1_000_000,
                &mut limits.budget_per_hour,
            ),
            (
                "budget_per_day",
                self.budget_per_day,
                1_000_000,
                &mut limits.budget_per_day,
            ),
        ];
        for (field, value, max, slot) in changes {
            match value {
                None => {}
                Some(0) => *slot = None,
                Some(v) if v <= max => *slot = Some(v),
                Some(_) => invalid.add(
                    field,
                    format!("must be at most {max} (0 removes the limit)"),
                ),
            }
        }
        limits
    }
}

/// Where a destination sends, whole: what may be shown, and what is sealed.
pub(super) struct Configured {
    pub config: DestinationConfig,
    pub credentials: Credentials,
}

const TOKEN_PREFIX: &str = "sk-ant-oat01-";
const MAX_RECIPIENTS: usize = 20;

/// Applies `input` over `current` (none: a new destination), noting what is wrong in
/// `invalid`. `None` when something required is missing or invalid.
pub(super) fn configure(
    invalid: &mut Invalid,
    input: ConfigInput,
    current: Option<Configured>,
    policy: Policy,
) -> Option<Configured> {
    let (config, credentials) = current
        .map(|c| (Some(c.config), Some(c.credentials)))
        .unwrap_or_default();
    match input {
        ConfigInput::Routine(input) => {
            let (fire_url, token_hint, token) = match (config, credentials) {
                (
                    Some(DestinationConfig::Routine {
                        fire_url,
                        token_hint,
                    }),
                    Some(Credentials::Routine { token }),
                ) => (Some(fire_url), Some(token_hint), Some(token)),
                _ => (None, None, None),
            };
            let fire_url = given_or_kept(
                invalid,
                "fire_url",
                input.fire_url,
                fire_url,
                "a routine destination needs its fire_url",
                |raw| DestinationUrl::parse_fire_url(raw, policy).map(|u| u.as_str().to_owned()),
            );
            let token = given_or_kept(
                invalid,
                "token",
                input.token,
                token.zip(token_hint),
                "a routine destination needs its token",
                |raw| {
                    let token = raw.trim();
                    if token.starts_with(TOKEN_PREFIX) && token.len() > TOKEN_PREFIX.len() + 8 {
                        Ok((token.to_owned(), hint(token, TOKEN_PREFIX.len(), 4)))
                    } else {
                        Err(format!("a routine token starts with {TOKEN_PREFIX}"))
                    }
                },
            );
            let (fire_url, (token, token_hint)) = (fire_url?, token?);
            Some(Configured {
                config: DestinationConfig::Routine {
                    fire_url,
                    token_hint,
                },
                credentials: Credentials::Routine { token },
            })
        }
        ConfigInput::Slack(input) => {
            let current = match (config, credentials) {
                (Some(DestinationConfig::Slack { url_hint }), Some(Credentials::Slack { url })) => {
                    Some((url, url_hint))
                }
                _ => None,
            };
            let (url, url_hint) = given_or_kept(
                invalid,
                "url",
                input.url,
                current,
                "a slack destination needs its incoming-webhook url",
                |raw| {
                    DestinationUrl::parse_slack(raw, policy)
                        .map(|u| (u.as_str().to_owned(), u.hint()))
                },
            )?;
            Some(Configured {
                config: DestinationConfig::Slack { url_hint },
                credentials: Credentials::Slack { url },
            })
        }
        ConfigInput::Email(input) => {
            let mut to = match config {
                Some(DestinationConfig::Email { to }) => to,
                _ => Vec::new(),
            };
            if let Some(given) = input.to {
                if given.len() > MAX_RECIPIENTS {
                    invalid.add("to", format!("at most {MAX_RECIPIENTS} recipients"));
                    return None;
                }
                let parsed: Result<Vec<String>, String> =
                    given.iter().map(|a| accounts::email_address(a)).collect();
                to = invalid.check("to", parsed)?;
            }
            Some(Configured {
                config: DestinationConfig::Email { to },
                credentials: Credentials::Email,
            })
        }
        ConfigInput::Http(input) => {
            let current = match (config, credentials) {
                (Some(config @ DestinationConfig::Http { .. }), Some(credentials)) => {
                    Some((config, credentials))
                }
                _ => None,
            };
            http::configure(invalid, input, current, policy)
        }
    }
}

/// The field as given (checked by `parse`), or else as it was; `missing` when neither.
pub(super) fn given_or_kept<T>(
    invalid: &mut Invalid,
    field: &str,
    given: Option<String>,
    kept: Option<T>,
    missing: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match (given, kept) {
        (Some(raw), _) => invalid.check(field, parse(&raw)),
        (None, Some(kept)) => Some(kept),
        (None, None) => {
            invalid.add(field, missing);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: Value) -> Result<KindFields, serde_json::Error> {
        serde_json::from_value(body)
    }

    #[test]
    fn a_field_no_kind_has_is_refused_as_the_body_is_read() {
        let err = fields(serde_json::json!({"url": "https://x.example", "surprise": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `surprise`"), "{err}");
    }

    #[test]
    fn a_field_of_another_kind_is_refused_by_name() {
        let read = fields(serde_json::json!({"fire_url": "https://x.example", "to": []}))
            .unwrap()
            .read(DestinationKind::Http);
        let Err(AppError::Invalid(errors)) = read else {
            panic!("{read:?}");
        };
        let named: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["fire_url", "to"]);
        assert_eq!(errors[0].message, "http destinations do not take fire_url");
    }

    #[test]
    fn the_kind_s_own_fields_are_read_as_its_input() {
        let read = fields(serde_json::json!({"fire_url": "https://x.example/f", "token": "t"}))
            .unwrap()
            .read(DestinationKind::Routine)
            .unwrap();
        let ConfigInput::Routine(input) = read else {
            panic!("{read:?}");
        };
        assert_eq!(input.fire_url.as_deref(), Some("https://x.example/f"));
        assert_eq!(input.token.as_deref(), Some("t"));
    }
}
