//! Sources in the dashboard: the list with each one's activity, a form per provider, and
//! a page with the ingest URL, the sender's setup steps, secret rotation, the rejected
//! requests and the latest events. The rules are the application layer's.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use serde::Deserialize;
use switchyard_domain::accounts::Action;
use switchyard_domain::app::NothingElse;
use switchyard_domain::app::sources::{self as manage, CreateSource, SettingsInput, UpdateSource};
use switchyard_domain::delivery::DestinationKind;
use switchyard_domain::ids::SourceId;
use switchyard_domain::model::{Event, EventFilter, PageRequest, Source};
use switchyard_domain::providers::{HmacScheme, ProviderKind};
use switchyard_domain::store::health::{self, Health};
use switchyard_domain::store::reconcile::{self, PassReport};
use switchyard_domain::store::sources::{self, Activity, Rejection, SecretInfo};
use switchyard_domain::store::{destinations, events, routes};

use super::catalog::{GUIDES, Guide, guide};
use super::error::{PageError, TeamPath};
use super::flash::{self, Flash, FlashQuery};
use super::forms::{Errors, NoFields, Posted, filled};
use super::session::Member;
use super::{Nav, html, limits, see_other, source_secrets};
use crate::WebState;
use crate::query::Query;
use crate::reads::Wrote;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(new)
        .service(create)
        .service(show)
        .service(edit)
        .service(update)
        .service(source_secrets::add)
        .service(send_test)
        .service(source_secrets::retire)
        .service(delete);
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/sources.html")]
struct ListPage {
    nav: Nav,
    sources: Vec<Activity>,
}

impl ListPage {
    fn guide(&self, kind: &ProviderKind) -> &'static Guide {
        guide(*kind)
    }
}

#[get("/t/{team}/sources")]
async fn list(
    state: web::Data<WebState>,
    wrote: Wrote,
    member: Member,
) -> Result<ListPage, PageError> {
    member.require(Action::Read)?;
    let db = wrote.pool(&state).await;
    Ok(ListPage {
        nav: Nav::new(&member, "sources", state.smtp_configured),
        sources: sources::with_activity(db, member.team_id(), Utc::now()).await?,
    })
}

/// Everything the new-source form sends, as text: a bad value is reported, not a 400.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SourceForm {
    name: String,
    provider: String,
    secret: String,
    body_limit: String,
    /// Minutes of silence after which the team is told; empty: not watched.
    quiet_after_minutes: String,
    /// Anthropic: the "reconcile" box, and seconds between passes.
    reconcile: Option<String>,
    reconcile_interval_s: String,
    dedup_header: String,
    dedup_pointer: String,
    event_type_header: String,
    event_type_pointer: String,
    api_key_header: String,
    allow_sha1: Option<String>,
    hmac_header: String,
    hmac_algorithm: String,
    hmac_encoding: String,
    hmac_prefix: String,
    hmac_timestamp_header: String,
    hmac_tolerance_seconds: String,
    hmac_signed_payload: String,
}

/// A serde enum's name (`sha256`, `hex`).
fn enum_text(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl SourceForm {
    /// The command, or the fields the form itself could not read.
    /// The command the form makes, and the fields that did not parse (left out of it).
    fn request(&self, provider: ProviderKind) -> (CreateSource, Errors) {
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
    fn reconciles(&self) -> bool {
        self.reconcile.is_some()
    }

    /// A member who is not an owner or admin asking to turn reconciliation on (`was`:
    /// whether it already is).
    fn reconcile_refused(&self, member: &Member, was: bool, errors: &mut Errors) {
        if self.reconciles() && !was && !member.role.may(Action::Manage) {
            errors.add(
                "reconcile",
                "Only owners and admins can turn on reconciliation.",
            );
        }
    }

    /// The form showing a stored source.
    fn of(source: &Source) -> SourceForm {
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

    /// The update: every field the form shows, an empty override clearing it.
    /// The patch the edit form makes, and the fields that did not parse (left out of it).
    fn patch(&self, provider: ProviderKind) -> (UpdateSource, Errors) {
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
    fn hmac_scheme(&self) -> Result<HmacScheme, String> {
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

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/source_form.html")]
struct FormPage {
    nav: Nav,
    guides: &'static [Guide],
    chosen: &'static Guide,
    /// The source being edited; `None` when creating one.
    editing: Option<Source>,
    form: SourceForm,
    errors: Errors,
}

impl FormPage {
    /// The hint under the secret's field.
    fn secret_hint(&self) -> &'static str {
        let hint = match self.chosen.secret_later() {
            true => SECRET_LATER,
            false => self.chosen.secret_hint,
        };
        super::forms::secret_hint(&self.errors, &self.form.secret, hint)
    }
}

/// The secret's hint for a sender that shows it only once the URL is saved.
const SECRET_LATER: &str = "Leave it empty if the sender has not shown it yet: it does once you save the ingest URL there. Until it is pasted, the source refuses every request.";

#[derive(Debug, Deserialize)]
struct NewQuery {
    provider: Option<String>,
}

#[get("/t/{team}/sources/new")]
async fn new(
    state: web::Data<WebState>,
    member: Member,
    q: Query<NewQuery>,
) -> Result<FormPage, PageError> {
    member.require(Action::Configure)?;
    let kind = q
        .provider
        .as_deref()
        .and_then(|p| p.parse::<ProviderKind>().ok())
        .unwrap_or(ProviderKind::Github);
    Ok(FormPage {
        nav: Nav::new(&member, "sources", state.smtp_configured),
        guides: GUIDES,
        chosen: guide(kind),
        editing: None,
        form: SourceForm {
            provider: kind.as_str().to_owned(),
            hmac_algorithm: "sha256".to_owned(),
            hmac_encoding: "hex".to_owned(),
            ..SourceForm::default()
        },
        errors: Errors::default(),
    })
}

/// The fields the form shows; an error about any other lands at the top.
const FIELDS: &[&str] = &[
    "name",
    "provider",
    "secret",
    "body_limit",
    "quiet_after_minutes",
    "reconcile",
    "reconcile_interval_s",
    "dedup_header",
    "dedup_pointer",
    "event_type_header",
    "event_type_pointer",
    "api_key_header",
    "allow_sha1",
    "hmac",
];

#[post("/t/{team}/sources")]
async fn create(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<SourceForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let kind = form.provider.parse::<ProviderKind>().ok();
    let scope = member.scope(&state);
    let created = match kind
        .map(|kind| form.request(kind))
        .map(|(request, mut unread)| {
            form.reconcile_refused(&member, false, &mut unread);
            (request, unread)
        }) {
        None => {
            let mut errors = Errors::default();
            errors.add("provider", "Choose a provider from the list.");
            Err(errors)
        }
        Some((request, unread)) if unread.is_empty() => {
            match manage::create(scope, request).await {
                Ok(source) => Ok(source),
                Err(e) => Err(Errors::from_app(e, FIELDS)?),
            }
        }
        Some((request, unread)) => {
            let checked = manage::check_create(scope, request).await;
            Err(unread.and_checked(checked, FIELDS)?)
        }
    };
    match created {
        Ok(source) => {
            let page = member.path(&format!("sources/{}", source.id));
            let notice = Flash::notice("Source created. Point the sender at its URL.");
            Ok(see_other(
                flash::put(&state, &member.viewer, &notice, &page).await?,
            ))
        }
        Err(errors) => {
            let page = FormPage {
                nav: Nav::new(&member, "sources", state.smtp_configured),
                guides: GUIDES,
                chosen: guide(kind.unwrap_or(ProviderKind::Github)),
                editing: None,
                form,
                errors,
            };
            html(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/source.html")]
pub(super) struct ShowPage {
    nav: Nav,
    source: Source,
    guide: &'static Guide,
    ingest_url: String,
    secrets: Vec<SecretInfo>,
    rejections: Vec<Rejection>,
    events: Vec<Event>,
    errors: Errors,
    /// Whether a route of the source fires a routine: a test event then asks first.
    reaches_routine: bool,
    /// When its sender's last event came (tests from the dashboard aside), and whether
    /// it has gone quiet.
    health: Health,
    /// Reconciliation's last pass and how many sessions it watches, once it was on.
    reconciliation: Option<(PassReport, i64)>,
}

impl ShowPage {
    fn pretty(&self, value: &serde_json::Value) -> String {
        serde_json::to_string_pretty(value).unwrap_or_default()
    }

    /// Created before its sender showed the secret, which was not pasted yet.
    fn awaiting_secret(&self) -> bool {
        self.guide.takes_secret() && self.secrets.is_empty()
    }
}

pub(super) async fn show_page(
    state: &WebState,
    member: &Member,
    id: &SourceId,
    errors: Errors,
) -> Result<ShowPage, PageError> {
    let team = member.team_id();
    let source = sources::get(&state.pool, team, id).await?;
    let filter = EventFilter {
        source_id: Some(id.clone()),
        ..EventFilter::default()
    };
    let latest = PageRequest {
        cursor: None,
        limit: 10,
    };
    let mut reaches_routine = false;
    for route in routes::for_source(&state.pool, team, id).await? {
        if !route.paused {
            let destination = destinations::get(&state.pool, team, &route.destination_id).await?;
            reaches_routine |= destination.kind() == DestinationKind::Routine;
        }
    }
    let health = health::of_source(&state.pool, team, id).await?;
    Ok(ShowPage {
        reaches_routine,
        health,
        reconciliation: reconcile::last_pass(&state.pool, team, id).await?,
        nav: Nav::new(member, "sources", state.smtp_configured),
        guide: guide(source.provider),
        ingest_url: state.ingest_url(&source),
        secrets: sources::secrets(&state.pool, team, id).await?,
        rejections: sources::rejections(&state.pool, team, id).await?,
        events: events::list(&state.pool, team, &filter, &latest)
            .await?
            .items,
        source,
        errors,
    })
}

#[get("/t/{team}/sources/{id}")]
async fn show(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<SourceId>>,
    q: Query<FlashQuery>,
) -> Result<ShowPage, PageError> {
    member.require(Action::Read)?;
    let mut page = show_page(&state, &member, &path.id, Errors::default()).await?;
    page.nav.flash = flash::notice(&state, &member.viewer, &q).await?;
    Ok(page)
}

#[get("/t/{team}/sources/{id}/edit")]
async fn edit(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<SourceId>>,
) -> Result<FormPage, PageError> {
    member.require(Action::Configure)?;
    let source = sources::get(&state.pool, member.team_id(), &path.id).await?;
    Ok(FormPage {
        nav: Nav::new(&member, "sources", state.smtp_configured),
        guides: GUIDES,
        chosen: guide(source.provider),
        form: SourceForm::of(&source),
        editing: Some(source),
        errors: Errors::default(),
    })
}

#[post("/t/{team}/sources/{id}")]
async fn update(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<SourceId>>,
    Posted(form): Posted<SourceForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    let current = sources::get(&state.pool, member.team_id(), &id).await?;
    let scope = member.scope(&state);
    let (patch, mut unread) = form.patch(current.provider);
    form.reconcile_refused(&member, current.reconcile, &mut unread);
    let result = match (patch, unread) {
        (patch, unread) if unread.is_empty() => match manage::update(scope, &id, patch).await {
            Ok(source) => Ok(source),
            Err(e) => Err(Errors::from_app(e, FIELDS)?),
        },
        (patch, unread) => {
            let checked = manage::check_update(scope, &id, patch).await;
            Err(unread.and_checked(checked, FIELDS)?)
        }
    };
    match result {
        Ok(_) => {
            let page = member.path(&format!("sources/{id}"));
            let notice = Flash::notice("Saved.");
            Ok(see_other(
                flash::put(&state, &member.viewer, &notice, &page).await?,
            ))
        }
        Err(errors) => {
            let page = FormPage {
                nav: Nav::new(&member, "sources", state.smtp_configured),
                guides: GUIDES,
                chosen: guide(current.provider),
                editing: Some(current),
                form,
                errors,
            };
            html(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TestForm {
    /// A route that fires a routine starts a (paid) Claude session: the person must say so.
    confirm: Option<String>,
}

/// Sends the provider's sample through the source's routes, marked as a test; the
/// event's page shows what it made.
#[post("/t/{team}/sources/{id}/test")]
async fn send_test(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<SourceId>>,
    Posted(form): Posted<TestForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    limits::check(&state, &[limits::per_target("source-test", id.as_str())]).await?;
    match manage::send_test(member.scope(&state), &id, form.confirm.is_some()).await {
        Ok(sent) => {
            let notice = match sent.deliveries {
                0 => "Test event sent. No route took it, so nothing was delivered.".to_owned(),
                1 => "Test event sent: 1 delivery made.".to_owned(),
                n => format!("Test event sent: {n} deliveries made."),
            };
            let page = member.path(&format!("events/{}", sent.event_id));
            Ok(see_other(
                flash::put(&state, &member.viewer, &Flash::notice(notice), &page).await?,
            ))
        }
        Err(e) => {
            let errors = Errors::from_app(e, &["confirm"])?;
            html(
                &show_page(&state, &member, &id, errors).await?,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

#[post("/t/{team}/sources/{id}/delete")]
async fn delete(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<SourceId>>,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    manage::delete(member.scope(&state), &id).await?;
    Ok(see_other(member.path("sources")))
}
