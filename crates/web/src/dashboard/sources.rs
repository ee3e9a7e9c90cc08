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
use switchyard_domain::app::sources as manage;
use switchyard_domain::delivery::DestinationKind;
use switchyard_domain::ids::SourceId;
use switchyard_domain::model::{Event, EventFilter, PageRequest, Source};
use switchyard_domain::providers::ProviderKind;
use switchyard_domain::store::health::{self, Health};
use switchyard_domain::store::reconcile::{self, PassReport};
use switchyard_domain::store::sources::{self, Activity, Rejection, SecretInfo};
use switchyard_domain::store::{destinations, events, routes};

use super::catalog::{GUIDES, Guide, guide};
use super::error::{PageError, TeamPath};
use super::flash::{self, Flash, FlashQuery};
use super::forms::{Errors, NoFields, Posted};
use super::session::Member;
use super::source_form::SourceForm;
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
