//! Destinations in the dashboard: the list with each one's health, a form per kind, and a
//! page with its settings, its health and the pause and resume buttons. Secrets are taken
//! once and shown masked; an HTTP destination's signing secret is shown once, on creation.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::{Deserialize, Serialize};
use switchyard_domain::accounts::Action;
use switchyard_domain::app::destinations as manage;
use switchyard_domain::delivery::{DestinationKind, DestinationState};
use switchyard_domain::ids::DestinationId;
use switchyard_domain::model::{
    DeliveryFilter, DeliveryLine, Destination, DestinationConfig, PageRequest,
};
use switchyard_domain::store::deliveries;
use switchyard_domain::store::destinations::{self, Health};

use super::destination_form::{DestinationForm, KINDS, KindChoice};
use super::error::{PageError, TeamPath};
use super::flash::{self, Flash, FlashQuery};
use super::forms::{Errors, NoFields, Posted};
use super::logs::Tones;
use super::session::Member;
use super::{Nav, html, see_other};
use crate::WebState;
use crate::query::Query;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(new)
        .service(create)
        .service(show)
        .service(edit)
        .service(update)
        .service(set_state)
        .service(delete);
}

/// The badge a destination wears, as (label, tone): its state, or "failing" while it
/// still takes deliveries but its latest attempts failed (a label for people, not a
/// state: the breaker decides when failing becomes disabled).
pub fn badge(d: &Destination) -> (&'static str, &'static str) {
    match d.state {
        DestinationState::Active | DestinationState::BackingOff if d.consecutive_failures > 0 => {
            ("failing", "bad")
        }
        DestinationState::Active => ("active", "ok"),
        DestinationState::BackingOff => ("backing_off", "warn"),
        DestinationState::AutoDisabled => ("auto_disabled", "bad"),
        DestinationState::Paused => ("paused", ""),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/destinations.html")]
struct ListPage {
    nav: Nav,
    rows: Vec<(Destination, Health)>,
}

async fn with_health(
    state: &WebState,
    member: &Member,
) -> Result<Vec<(Destination, Health)>, PageError> {
    let team = member.team_id();
    let mut health = destinations::health(&state.pool, team).await?;
    let mut all = destinations::list(
        &state.pool,
        team,
        &switchyard_domain::model::PageRequest {
            cursor: None,
            limit: 200,
        },
    )
    .await?
    .items;
    all.sort_by_key(|d| d.name.to_lowercase());
    Ok(all
        .into_iter()
        .map(|d| {
            let h = health.remove(&d.id).unwrap_or_default();
            (d, h)
        })
        .collect())
}

#[get("/t/{team}/destinations")]
async fn list(state: web::Data<WebState>, member: Member) -> Result<ListPage, PageError> {
    member.require(Action::Read)?;
    Ok(ListPage {
        nav: Nav::new(&member, "destinations", state.smtp_configured),
        rows: with_health(&state, &member).await?,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/destination_form.html")]
struct FormPage {
    nav: Nav,
    kinds: &'static [KindChoice],
    kind: String,
    /// The destination being edited; `None` when creating one.
    editing: Option<Destination>,
    form: DestinationForm,
    errors: Errors,
}

impl FormPage {
    /// The query that keeps a route form waiting for this destination, if one is.
    fn for_route(&self) -> String {
        match self.form.for_route.is_empty() {
            true => String::new(),
            false => format!("&for_route={}", super::forms::encode(&self.form.for_route)),
        }
    }
}

impl FormPage {
    /// The hint under the secret field `typed` came from.
    fn secret_hint(&self, typed: &str, hint: &'static str) -> &'static str {
        let otherwise = if self.editing.is_some() {
            "Leave empty to keep the current one."
        } else {
            hint
        };
        super::forms::secret_hint(&self.errors, typed, otherwise)
    }

    /// The hint under a secret field that has none of its own.
    fn retype(&self, typed: &str) -> &'static str {
        super::forms::secret_hint(&self.errors, typed, "")
    }

    /// The names of the custom headers the destination being edited sends.
    fn header_names(&self) -> &[String] {
        match self.editing.as_ref().map(|d| &d.config) {
            Some(DestinationConfig::Http { header_names, .. }) => header_names,
            _ => &[],
        }
    }

    fn headers_hint(&self) -> String {
        match self.header_names() {
            [] => {
                "One Name: value per line. Values are encrypted and never shown again.".to_owned()
            }
            names => format!(
                "Now sent: {}. New lines replace them all; leave empty to keep them.",
                names.join(", ")
            ),
        }
    }
}

#[derive(Debug, Deserialize)]
struct NewQuery {
    kind: Option<String>,
    /// A route form kept while this destination is made, to go back to.
    for_route: Option<String>,
}

#[get("/t/{team}/destinations/new")]
async fn new(
    state: web::Data<WebState>,
    member: Member,
    q: Query<NewQuery>,
) -> Result<FormPage, PageError> {
    member.require(Action::Configure)?;
    let kind = q
        .kind
        .as_deref()
        .and_then(|k| k.parse::<DestinationKind>().ok())
        .unwrap_or(DestinationKind::Routine);
    Ok(FormPage {
        nav: Nav::new(&member, "destinations", state.smtp_configured),
        kinds: KINDS,
        kind: kind.as_str().to_owned(),
        editing: None,
        form: DestinationForm {
            auth_type: "none".to_owned(),
            method: "POST".to_owned(),
            for_route: q.for_route.clone().unwrap_or_default(),
            ..DestinationForm::default()
        },
        errors: Errors::default(),
    })
}

const FIELDS: &[&str] = &[
    "name",
    "kind",
    "url",
    "fire_url",
    "token",
    "to",
    "method",
    "headers",
    "auth",
    "rate_per_minute",
    "max_in_flight",
    "budget_per_hour",
    "budget_per_day",
];

#[post("/t/{team}/destinations")]
async fn create(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<DestinationForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let kind = form.kind.parse::<DestinationKind>().ok();
    let scope = member.scope(&state);
    let created = match kind.map(|kind| form.input(kind, false)) {
        None => {
            let mut errors = Errors::default();
            errors.add("kind", "Choose what kind of destination this is.");
            Err(errors)
        }
        Some(((config, limits), unread)) if unread.is_empty() => {
            match manage::create(scope, &form.name, config, limits).await {
                Ok(created) => Ok(created),
                Err(e) => Err(Errors::from_app(e, FIELDS)?),
            }
        }
        Some(((config, limits), unread)) => {
            let checked = manage::check_new(scope, &form.name, config, limits).await;
            Err(unread.and_checked(checked, FIELDS)?)
        }
    };
    match created {
        Ok(created) => {
            // An http destination's signing secret is shown this once, on the page the
            // redirect leads to.
            let id = &created.destination.id;
            if !form.for_route.is_empty() {
                // Back to the route form, this destination chosen; an http destination's
                // signing secret is said there, this once.
                let notice = match created.destination.kind() {
                    DestinationKind::Http => format!(
                        "Destination created. Its signing secret, shown this once: {}",
                        created.signing_secret
                    ),
                    _ => "Destination created.".to_owned(),
                };
                let back = format!(
                    "routes/new?draft={}&destination_id={id}",
                    super::forms::encode(&form.for_route)
                );
                let page = member.path(&back);
                return Ok(see_other(
                    flash::put(&state, &member.viewer, &Flash::notice(notice), &page).await?,
                ));
            }
            let flash = if created.destination.kind() == DestinationKind::Http {
                Flash::secret("Destination created.", created.signing_secret)
            } else {
                Flash::notice("Destination created.")
            };
            let page = member.path(&format!("destinations/{id}"));
            Ok(see_other(
                flash::put(&state, &member.viewer, &flash, &page).await?,
            ))
        }
        Err(errors) => {
            let page = FormPage {
                nav: Nav::new(&member, "destinations", state.smtp_configured),
                kinds: KINDS,
                kind: form.kind.clone(),
                editing: None,
                form,
                errors,
            };
            html(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

/// What the destination's page shows once after a form: a [`Flash`] (that it was created,
/// and an http destination's signing secret), or what a test send came to.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct ShowFlash {
    #[serde(flatten)]
    pub(super) flash: Flash,
    pub(super) test: Option<TestResult>,
}

/// What "send test" came to, for the page.
#[derive(Debug, Serialize, Deserialize)]
pub struct TestResult {
    pub(super) answer: Option<switchyard_send::sample::Answer>,
    /// An email test: who it was queued for.
    pub(super) queued_for: Vec<String>,
    /// Why nothing could be sent.
    pub(super) problem: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/destination.html")]
pub(super) struct ShowPage {
    nav: Nav,
    pub(super) destination: Destination,
    health: Health,
    /// Its newest deliveries.
    recent: Vec<DeliveryLine>,
    signing_secret: Option<String>,
    pub(super) test: Option<TestResult>,
}

impl Tones for ShowPage {}

impl ShowPage {
    fn badge(&self) -> (&'static str, &'static str) {
        badge(&self.destination)
    }
}

impl ListPage {
    fn badge(&self, d: &Destination) -> (&'static str, &'static str) {
        badge(d)
    }
}

/// Deliveries a destination's page lists.
const RECENT: u32 = 10;

pub(super) async fn show_page(
    state: &WebState,
    member: &Member,
    id: &DestinationId,
) -> Result<ShowPage, PageError> {
    let destination = destinations::get(&state.pool, member.team_id(), id).await?;
    let health = destinations::health(&state.pool, member.team_id())
        .await?
        .remove(id)
        .unwrap_or_default();
    let newest = DeliveryFilter {
        destination_id: Some(id.clone()),
        ..DeliveryFilter::default()
    };
    let recent = deliveries::lines(
        &state.pool,
        member.team_id(),
        &newest,
        &PageRequest {
            cursor: None,
            limit: RECENT,
        },
    )
    .await?
    .items;
    Ok(ShowPage {
        nav: Nav::new(member, "destinations", state.smtp_configured),
        destination,
        health,
        recent,
        signing_secret: None,
        test: None,
    })
}

#[get("/t/{team}/destinations/{id}")]
async fn show(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<DestinationId>>,
    q: Query<FlashQuery>,
) -> Result<ShowPage, PageError> {
    member.require(Action::Read)?;
    let mut page = show_page(&state, &member, &path.id).await?;
    if let Some(flash) = flash::take::<ShowFlash>(&state, &member.viewer, &q).await? {
        page.nav.flash = flash.flash.notice;
        page.signing_secret = flash.flash.secret;
        page.test = flash.test;
    }
    Ok(page)
}

#[derive(Debug, Deserialize)]
struct StateForm {
    #[serde(default)]
    state: String,
}

/// Pause, or resume at once whatever stopped it.
#[post("/t/{team}/destinations/{id}/state")]
async fn set_state(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<DestinationId>>,
    Posted(form): Posted<StateForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    let new_state = match form.state.as_str() {
        "paused" => DestinationState::Paused,
        "active" => DestinationState::Active,
        _ => {
            return Err(PageError::BadRequest(
                "state is active or paused".to_owned(),
            ));
        }
    };
    manage::set_state(member.scope(&state), &id, new_state).await?;
    Ok(see_other(member.path(&format!("destinations/{id}"))))
}

#[get("/t/{team}/destinations/{id}/edit")]
async fn edit(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<DestinationId>>,
) -> Result<FormPage, PageError> {
    member.require(Action::Configure)?;
    let destination = destinations::get(&state.pool, member.team_id(), &path.id).await?;
    let limits = &destination.limits;
    let number = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    let mut form = DestinationForm {
        name: destination.name.clone(),
        kind: destination.kind().as_str().to_owned(),
        method: "POST".to_owned(),
        auth_type: "keep".to_owned(),
        rate_per_minute: number(limits.rate_per_minute),
        max_in_flight: number(limits.max_in_flight),
        budget_per_hour: number(limits.budget_per_hour),
        budget_per_day: number(limits.budget_per_day),
        ..DestinationForm::default()
    };
    match &destination.config {
        DestinationConfig::Http { url, method, .. } => {
            form.url = url.clone();
            form.method = method.as_str().to_owned();
        }
        DestinationConfig::Routine { fire_url, .. } => form.fire_url = fire_url.clone(),
        DestinationConfig::Email { to } => form.to = to.join("\n"),
        DestinationConfig::Slack { .. } => {}
    }
    Ok(FormPage {
        nav: Nav::new(&member, "destinations", state.smtp_configured),
        kinds: KINDS,
        kind: destination.kind().as_str().to_owned(),
        editing: Some(destination),
        form,
        errors: Errors::default(),
    })
}

#[post("/t/{team}/destinations/{id}")]
async fn update(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<DestinationId>>,
    Posted(form): Posted<DestinationForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    let current = destinations::get(&state.pool, member.team_id(), &id).await?;
    let scope = member.scope(&state);
    let name = Some(form.name.as_str());
    let result = match form.input(current.kind(), true) {
        ((config, limits), unread) if unread.is_empty() => {
            match manage::reconfigure(scope, &id, name, config, limits).await {
                Ok(_) => Ok(()),
                Err(e) => Err(Errors::from_app(e, FIELDS)?),
            }
        }
        ((config, limits), unread) => {
            let checked = manage::check_reconfigure(scope, &id, name, config, limits).await;
            Err(unread.and_checked(checked, FIELDS)?)
        }
    };
    match result {
        Ok(()) => {
            let page = member.path(&format!("destinations/{id}"));
            let notice = Flash::notice("Saved.");
            Ok(see_other(
                flash::put(&state, &member.viewer, &notice, &page).await?,
            ))
        }
        Err(errors) => {
            let page = FormPage {
                nav: Nav::new(&member, "destinations", state.smtp_configured),
                kinds: KINDS,
                kind: current.kind().as_str().to_owned(),
                editing: Some(current),
                form,
                errors,
            };
            html(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

#[post("/t/{team}/destinations/{id}/delete")]
async fn delete(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<DestinationId>>,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    manage::delete(member.scope(&state), &id).await?;
    Ok(see_other(member.path("destinations")))
}
