//! The source form: every field as text, read into the command the use case takes, with
//! the fields that did not parse said next to them; only owners and admins may ask it to
//! turn reconciliation on.

use serde::Deserialize;
use switchyard_domain::accounts::Action;
use switchyard_domain::app::NothingElse;
use switchyard_domain::app::sources::{CreateSource, SettingsInput, UpdateSource};
use switchyard_domain::model::Source;
use switchyard_domain::providers::{HmacScheme, ProviderKind};

use super::forms::{Errors, filled};
use super::session::Member;

/// Everything the new-source form sends, as text: a bad value is reported, not a 400.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SourceForm {
    pub(super) name: String,
    pub(super) provider: String,
    pub(super) secret: String,
    pub(super) body_limit: String,
    /// Minutes of silence after which the team is told; empty: not watched.
    pub(super) quiet_after_minutes: String,
    /// Anthropic: the "reconcile" box, and seconds between passes.
    pub(super) reconcile: Option<String>,
    pub(super) reconcile_interval_s: String,
    pub(super) dedup_header: String,
    pub(super) dedup_pointer: String,
    pub(super) event_type_header: String,
    pub(super) event_type_pointer: String,
    pub(super) api_key_header: String,
    pub(super) allow_sha1: Option<String>,
    pub(super) hmac_header: String,
    pub(super) hmac_algorithm: String,
    pub(super) hmac_encoding: String,
    pub(super) hmac_prefix: String,
    pub(super) hmac_timestamp_header: String,
    pub(super) hmac_tolerance_seconds: String,
    pub(super) hmac_signed_payload: String,
}

/// A serde enum's name (`sha256`, `hex`).
fn enum_text(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl SourceForm {
    /// The command the form makes, and the fields that did not parse (left out of it).
    pub(super) fn request(&self, provider: ProviderKind) -> (CreateSource, Errors) {
        let mut errors = Errors::default();
        let body_limit = match filled(&self.body_limit) {
            None => None,
            Some(raw) => raw
                .parse::<i32>()
                .map_err(|_| errors.add("body_limit", "Enter a number of bytes, such as 1048576."))
                .ok(),
        };
        let quiet_after_minutes = match filled(&self.quiet_after_minutes) {
            None => None,
            Some(raw) => raw
                .parse::<i32>()
                .map_err(|_| {
                    errors.add(
                        "quiet_after_minutes",
                        "Enter a number of minutes, such as 60.",
                    )
                })
                .ok(),
        };
        let reconcile_interval_s = match filled(&self.reconcile_interval_s) {
            Some(raw) if provider == ProviderKind::Anthropic => raw
                .parse::<i32>()
                .map_err(|_| {
                    errors.add(
                        "reconcile_interval_s",
                        "Enter a number of seconds, such as 300.",
                    )
                })
                .ok(),
            _ => None,
        };
        let hmac = (provider == ProviderKind::Hmac)
            .then(|| self.hmac_scheme())
            .transpose()
            .map_err(|e| errors.add("hmac", e))
            .ok()
            .flatten();
        let request = CreateSource {
            name: self.name.clone(),
            provider: provider.as_str().to_owned(),
            secret: filled(&self.secret).filter(|_| provider != ProviderKind::None),
            settings: SettingsInput {
                body_limit,
                quiet_after_minutes,
                reconcile: (provider == ProviderKind::Anthropic).then_some(self.reconciles()),
                reconcile_interval_s,
                reconcile_lookback_s: None,
                dedup_header: filled(&self.dedup_header),
                dedup_pointer: filled(&self.dedup_pointer),
                event_type_header: filled(&self.event_type_header),
                event_type_pointer: filled(&self.event_type_pointer),
                api_key_header: filled(&self.api_key_header)
                    .filter(|_| provider == ProviderKind::ApiKey),
                allow_sha1: (provider == ProviderKind::Github).then_some(self.allow_sha1.is_some()),
                hmac,
            },
            nothing_else: NothingElse,
        };
        (request, errors)
    }

    /// Whether the reconcile box was ticked.
    pub(super) fn reconciles(&self) -> bool {
        self.reconcile.is_some()
    }

    /// A member who is not an owner or admin asking to turn reconciliation on (`was`:
    /// whether it already is).
    pub(super) fn reconcile_refused(&self, member: &Member, was: bool, errors: &mut Errors) {
        if self.reconciles() && !was && !member.role.may(Action::Manage) {
            errors.add(
                "reconcile",
                "Only owners and admins can turn on reconciliation.",
            );
        }
    }

    /// The form showing a stored source.
    pub(super) fn of(source: &Source) -> SourceForm {
        let settings = &source.settings.0;
        let hmac = settings.hmac.as_ref();
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        SourceForm {
            name: source.name.clone(),
            provider: source.provider.as_str().to_owned(),
            body_limit: source.body_limit.to_string(),
            quiet_after_minutes: source
                .quiet_after_minutes
                .map(|m| m.to_string())
                .unwrap_or_default(),
            reconcile: source.reconcile.then(|| "on".to_owned()),
            reconcile_interval_s: source.reconcile_interval_s.to_string(),
            dedup_header: text(&settings.dedup_header),
            dedup_pointer: text(&settings.dedup_pointer),
            event_type_header: text(&settings.event_type_header),
            event_type_pointer: text(&settings.event_type_pointer),
            api_key_header: text(&settings.api_key_header),
            allow_sha1: settings.allow_sha1.then(|| "on".to_owned()),
            hmac_header: hmac.map(|h| h.header.clone()).unwrap_or_default(),
            hmac_algorithm: hmac
                .map(|h| enum_text(&h.algorithm))
                .unwrap_or_else(|| "sha256".to_owned()),
            hmac_encoding: hmac
                .map(|h| enum_text(&h.encoding))
                .unwrap_or_else(|| "hex".to_owned()),
            hmac_prefix: hmac.map(|h| h.prefix.clone()).unwrap_or_default(),
            hmac_timestamp_header: hmac
                .and_then(|h| h.timestamp_header.clone())
                .unwrap_or_default(),
            hmac_tolerance_seconds: hmac
                .map(|h| h.tolerance_seconds.to_string())
                .unwrap_or_default(),
            hmac_signed_payload: hmac
                .and_then(|h| h.signed_payload.clone())
                .unwrap_or_default(),
            ..SourceForm::default()
        }
    }

    /// The update: every field the form shows, an empty override clearing it; and the
    /// fields that did not parse (left out of it).
    pub(super) fn patch(&self, provider: ProviderKind) -> (UpdateSource, Errors) {
        let (fields, errors) = self.request(provider);
        let cleared = |v: &str| Some(v.trim().to_owned());
        let patch = UpdateSource {
            name: Some(fields.name),
            settings: SettingsInput {
                // Emptied: no longer watched.
                quiet_after_minutes: fields.settings.quiet_after_minutes.or(filled(
                    &self.quiet_after_minutes,
                )
                .is_none()
                .then_some(0)),
                dedup_header: cleared(&self.dedup_header),
                dedup_pointer: cleared(&self.dedup_pointer),
                event_type_header: cleared(&self.event_type_header),
                event_type_pointer: cleared(&self.event_type_pointer),
                api_key_header: (provider == ProviderKind::ApiKey)
                    .then(|| cleared(&self.api_key_header))
                    .flatten(),
                ..fields.settings
            },
            nothing_else: NothingElse,
        };
        (patch, errors)
    }

    /// The hmac fields as the scheme the command takes, read by the same rules.
    pub(super) fn hmac_scheme(&self) -> Result<HmacScheme, String> {
        let mut scheme = serde_json::Map::new();
        let fields = [
            ("header", &self.hmac_header),
            ("algorithm", &self.hmac_algorithm),
            ("encoding", &self.hmac_encoding),
            ("prefix", &self.hmac_prefix),
            ("timestamp_header", &self.hmac_timestamp_header),
            ("signed_payload", &self.hmac_signed_payload),
        ];
        for (key, value) in fields {
            if let Some(v) = filled(value) {
                scheme.insert(key.to_owned(), v.into());
            }
        }
        if let Some(t) = filled(&self.hmac_tolerance_seconds) {
            let seconds: u32 = t
                .parse()
                .map_err(|_| "The tolerance is a whole number of seconds.".to_owned())?;
            scheme.insert("tolerance_seconds".to_owned(), seconds.into());
        }
        serde_json::from_value(scheme.into()).map_err(|e| format!("The signature scheme: {e}."))
    }
}
