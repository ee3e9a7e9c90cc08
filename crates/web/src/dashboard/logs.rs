//! The deliveries log (with a selection to replay or cancel) and one delivery with every
//! attempt, replay, retry now and cancel; and what the logs pages share (names for ids,
//! status badges and the "retrying" label).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;
use switchyard_domain::accounts::Action;
use switchyard_domain::app::AppError;
use switchyard_domain::app::deliveries as deliveries_app;
use switchyard_domain::delivery::MAX_ATTEMPTS;
use switchyard_domain::delivery::{DeliveryStatus, DestinationKind, DestinationState};
use switchyard_domain::ids::{DeliveryId, DestinationId, EventId, RouteId, SourceId};
use switchyard_domain::model::{
    Attempt, Delivery, DeliveryFilter, DeliveryLine, Destination, PageRequest,
};
use switchyard_domain::store::{deliveries, destinations, routes, sources};

use super::error::{PageError, TeamPath};
use super::flash::{self, Flash, FlashQuery};
use super::forms::{NoFields, Posted, encode, filled, local_time};
use super::session::Member;
use super::{Nav, html, see_other};
use crate::WebState;
use crate::query::Query;
use crate::reads::Wrote;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(delivery_list)
        .service(selected)
        .service(delivery_page)
        .service(replay)
        .service(nudge);
}

pub(super) const PAGE: u32 = 50;

/// The badge a delivery wears, for the pages that list deliveries.
pub(super) trait Tones {
    fn tone(&self, status: &DeliveryStatus) -> &'static str {
        match status {
            DeliveryStatus::Succeeded => "ok",
            DeliveryStatus::Failed | DeliveryStatus::UnknownOutcome => "bad",
            DeliveryStatus::Held | DeliveryStatus::Throttled => "warn",
            _ => "",
        }
    }

    /// Its status, or "retrying" for a pending delivery whose last attempt failed.
    fn label(&self, d: &Delivery) -> &'static str {
        match deliveries_app::is_retrying(d) {
            true => "retrying",
            false => d.status.as_str(),
        }
    }

    fn tone_of(&self, d: &Delivery) -> &'static str {
        match deliveries_app::is_retrying(d) {
            true => "warn",
            false => self.tone(&d.status),
        }
    }

    /// How far a retrying delivery's series has gone.
    fn failed_so_far(&self, d: &Delivery) -> String {
        format!("{} of {MAX_ATTEMPTS} attempts failed", d.series_attempts)
    }
}

impl Tones for DeliveriesPage {}
impl Tones for DeliveryPage {}

/// Names of the team's sources, destinations and routes, for the tables.
pub(super) struct Names {
    pub(super) sources: HashMap<SourceId, String>,
    pub(super) destinations: HashMap<DestinationId, (String, DestinationKind)>,
    pub(super) routes: HashMap<RouteId, String>,
}

impl Names {
    pub(super) async fn load(state: &WebState, member: &Member) -> Result<Names, PageError> {
        let all = PageRequest {
            cursor: None,
            limit: 200,
        };
        let team = member.team_id();
        Ok(Names {
            sources: sources::list(&state.pool, team, &all)
                .await?
                .items
                .into_iter()
                .map(|s| (s.id, s.name))
                .collect(),
            destinations: destinations::list(&state.pool, team, &all)
                .await?
                .items
                .into_iter()
                .map(|d| (d.id.clone(), (d.name.clone(), d.kind())))
                .collect(),
            routes: routes::list(&state.pool, team, &all)
                .await?
                .items
                .into_iter()
                .map(|r| (r.id, r.name))
                .collect(),
        })
    }

    pub(super) fn source(&self, id: &SourceId) -> &str {
        self.sources.get(id).map_or("(deleted)", String::as_str)
    }

    pub(super) fn destination(&self, id: &DestinationId) -> &str {
        self.destinations
            .get(id)
            .map_or("(deleted)", |(name, _)| name.as_str())
    }

    pub(super) fn route(&self, id: &Option<RouteId>) -> &str {
        id.as_ref()
            .and_then(|id| self.routes.get(id))
            .map_or("(none)", String::as_str)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeliveryQuery {
    /// A delivery status, or `retrying`.
    status: String,
    destination: String,
    route: String,
    since: String,
    until: String,
    cursor: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/deliveries.html")]
struct DeliveriesPage {
    nav: Nav,
    q: DeliveryQuery,
    deliveries: Vec<DeliveryLine>,
    /// Deliveries waiting behind an earlier one of their ordering key: its event.
    waiting: HashMap<DeliveryId, EventId>,
    next_cursor: Option<String>,
    names: Names,
    statuses: &'static [DeliveryStatus],
    problem: Option<String>,
}

impl DeliveriesPage {
    fn query(&self) -> Vec<String> {
        [
            ("status", &self.q.status),
            ("destination", &self.q.destination),
            ("route", &self.q.route),
            ("since", &self.q.since),
            ("until", &self.q.until),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect()
    }

    /// This page, for htmx to reload.
    fn here(&self) -> String {
        format!(
            "/t/{}/deliveries?{}",
            self.nav.team_slug,
            self.query().join("&")
        )
    }

    /// This page's query (cursor included), for a selection's redirect to come back to.
    fn back(&self) -> String {
        let mut query = self.query();
        if !self.q.cursor.is_empty() {
            query.push(format!("cursor={}", encode(&self.q.cursor)));
        }
        query.join("&")
    }

    /// Whether any delivery listed may be selected: settled (to replay) or waiting (to
    /// cancel).
    fn selectable(&self) -> bool {
        !self.deliveries.is_empty()
    }

    /// Whether the status filter names deliveries a bulk replay can take.
    fn replayable(&self) -> bool {
        self.q
            .status
            .parse::<DeliveryStatus>()
            .is_ok_and(DeliveryStatus::is_replayable)
    }

    /// The filter for the bulk replay page.
    fn replay_query(&self) -> String {
        self.query().join("&")
    }

    fn next_link(&self) -> Option<String> {
        let cursor = self.next_cursor.as_ref()?;
        let mut query = self.query();
        query.push(format!("cursor={cursor}"));
        Some(format!("?{}", query.join("&")))
    }

    fn routes(&self) -> Vec<(&RouteId, &String)> {
        let mut all: Vec<_> = self.names.routes.iter().collect();
        all.sort_by_key(|(_, name)| name.to_lowercase());
        all
    }

    fn destinations(&self) -> Vec<(&DestinationId, &String)> {
        let mut all: Vec<_> = self
            .names
            .destinations
            .iter()
            .map(|(id, (name, _))| (id, name))
            .collect();
        all.sort_by_key(|(_, name)| name.to_lowercase());
        all
    }
}

#[get("/t/{team}/deliveries")]
async fn delivery_list(
    state: web::Data<WebState>,
    wrote: Wrote,
    member: Member,
    q: Query<DeliveryQuery>,
    shown: Query<FlashQuery>,
) -> Result<DeliveriesPage, PageError> {
    member.require(Action::Read)?;
    let db = wrote.pool(&state).await;
    let q = q.into_inner();
    let flash = flash::take::<Flash>(&state, &member.viewer, &shown)
        .await?
        .unwrap_or_default();
    let mut problem = None;
    let mut filter = DeliveryFilter::default();
    match filled(&q.status).as_deref() {
        None => {}
        Some("retrying") => {
            filter.status = Some(DeliveryStatus::Pending);
            filter.retrying = true;
        }
        Some(raw) => match raw.parse() {
            Ok(status) => filter.status = Some(status),
            Err(_) => problem = Some(format!("{raw:?} is not a delivery status.")),
        },
    }
    if let Some(raw) = filled(&q.destination) {
        match raw.parse() {
            Ok(id) => filter.destination_id = Some(id),
            Err(_) => problem = Some("That destination does not exist.".to_owned()),
        }
    }
    if let Some(raw) = filled(&q.route) {
        match raw.parse() {
            Ok(id) => filter.route_id = Some(id),
            Err(_) => problem = Some("That route does not exist.".to_owned()),
        }
    }
    for (raw, slot) in [(&q.since, &mut filter.since), (&q.until, &mut filter.until)] {
        if let Some(raw) = filled(raw) {
            match local_time(&raw) {
                Some(t) => *slot = Some(t),
                None => problem = Some(format!("{raw:?} is not a time such as 2026-11-27T10:30.")),
            }
        }
    }
    let page = PageRequest {
        cursor: filled(&q.cursor),
        limit: PAGE,
    };
    let found = match problem {
        Some(_) => Default::default(),
        None => deliveries::lines(db, member.team_id(), &filter, &page).await?,
    };
    let mut nav = Nav::new(&member, "deliveries", state.smtp_configured);
    nav.flash = flash.notice;
    let problem = problem.or(flash.problem);
    let ids: Vec<&DeliveryId> = found.items.iter().map(|d| &d.delivery.id).collect();
    let waiting = deliveries::waiting_for(db, member.team_id(), &ids).await?;
    Ok(DeliveriesPage {
        nav,
        names: Names::load(&state, &member).await?,
        waiting,
        q,
        deliveries: found.items,
        next_cursor: found.next_cursor,
        statuses: DeliveryStatus::ALL,
        problem,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SelectionForm {
    /// `replay` or `cancel`.
    action: String,
    id: Vec<String>,
    /// Replays to routines start new (paid) Claude sessions: the person must say so.
    confirm: Option<String>,
    /// The list's query, to come back to.
    back: String,
}

/// Replays or cancels the deliveries ticked in the list, then shows the list again
/// with what was done.
#[post("/t/{team}/deliveries/selected")]
async fn selected(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<SelectionForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let ids = form
        .id
        .iter()
        .map(|raw| raw.parse::<DeliveryId>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| PageError::NotFound)?;
    let scope = member.scope(&state);
    let done = match form.action.as_str() {
        "replay" => deliveries_app::replay_selected(scope, &ids, form.confirm.is_some()).await,
        "cancel" => deliveries_app::cancel_selected(scope, &ids).await,
        other => {
            return Err(PageError::BadRequest(format!(
                "{other:?} is not something a selection can do; choose replay or cancel"
            )));
        }
    };
    let flash = match done {
        Ok(done) => Flash::notice(selection_notice(&form.action, done)),
        Err(AppError::Invalid(errors)) => Flash::problem(
            errors
                .iter()
                .map(|e| super::forms::sentence(&e.message))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Err(e) => return Err(e.into()),
    };
    // Only a query comes back: the path is always this team's list.
    let back: String = form
        .back
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '#')
        .collect();
    let list = member.path(&format!("deliveries?{back}"));
    Ok(see_other(
        flash::put(&state, &member.viewer, &flash, &list).await?,
    ))
}

/// What a selection did, for people.
fn selection_notice(action: &str, done: deliveries_app::Selected) -> String {
    let (did, left) = match action {
        "replay" => ("Replayed", "not settled yet"),
        _ => ("Cancelled", "no longer waiting"),
    };
    let count = |n: usize| match n {
        1 => "1 delivery".to_owned(),
        n => format!("{n} deliveries"),
    };
    match done.skipped {
        0 => format!("{did} {}.", count(done.done)),
        skipped => format!(
            "{did} {}; {} left as they were ({left}).",
            count(done.done),
            count(skipped)
        ),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/delivery.html")]
struct DeliveryPage {
    nav: Nav,
    delivery: Delivery,
    attempts: Vec<Attempt>,
    names: Names,
    /// Its destination, unless deleted since.
    destination: Option<Destination>,
    problem: Option<String>,
    /// The event of the earlier delivery of its ordering key it waits for.
    waiting_for: Option<EventId>,
}

impl DeliveryPage {
    fn pretty(&self, value: &serde_json::Value) -> String {
        serde_json::to_string_pretty(value).unwrap_or_default()
    }

    fn is_routine(&self) -> bool {
        self.destination
            .as_ref()
            .is_some_and(|d| d.kind() == DestinationKind::Routine)
    }

    /// Why a held delivery waits, and what lets it go.
    fn held_because(&self) -> String {
        let Some(d) = &self.destination else {
            return "its destination was deleted; it will not be sent.".to_owned();
        };
        let name = &d.name;
        match d.state {
            DestinationState::Paused => format!(
                "{name} is paused. Held deliveries go, in the order they were made, when it is resumed."
            ),
            DestinationState::AutoDisabled => {
                let why = d.state_reason.as_deref().unwrap_or("it kept failing");
                let probe = d.probe_at.map_or(String::new(), |t| {
                    format!(
                        " Switchyard tries one delivery again at {}.",
                        t.format("%H:%M:%S UTC")
                    )
                });
                format!("{name} was disabled: {why}.{probe} If it works again, resume it now.")
            }
            _ => format!("{name} is sending again; this delivery goes in its turn."),
        }
    }

    /// Whether the page offers to resume the destination.
    fn resumable(&self) -> bool {
        self.destination.as_ref().is_some_and(|d| {
            matches!(
                d.state,
                DestinationState::Paused | DestinationState::AutoDisabled
            )
        })
    }

    /// Whether it waits to be sent: a person may send it now or cancel it.
    fn waiting(&self) -> bool {
        matches!(
            self.delivery.status,
            DeliveryStatus::Pending | DeliveryStatus::Held | DeliveryStatus::Throttled
        )
    }

    fn settled(&self) -> bool {
        matches!(
            self.delivery.status,
            DeliveryStatus::Succeeded
                | DeliveryStatus::Failed
                | DeliveryStatus::UnknownOutcome
                | DeliveryStatus::Cancelled
        )
    }
}

async fn delivery_view(
    state: &WebState,
    member: &Member,
    id: &switchyard_domain::ids::DeliveryId,
    problem: Option<String>,
) -> Result<DeliveryPage, PageError> {
    let (delivery, attempts) = deliveries::with_attempts(&state.pool, member.team_id(), id).await?;
    let names = Names::load(state, member).await?;
    let destination =
        match destinations::get(&state.pool, member.team_id(), &delivery.destination_id).await {
            Ok(d) => Some(d),
            Err(switchyard_domain::StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
    let mut waiting = deliveries::waiting_for(&state.pool, member.team_id(), &[id]).await?;
    Ok(DeliveryPage {
        nav: Nav::new(member, "deliveries", state.smtp_configured),
        waiting_for: waiting.remove(id),
        attempts,
        destination,
        names,
        delivery,
        problem,
    })
}

#[get("/t/{team}/deliveries/{id}")]
async fn delivery_page(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<DeliveryId>>,
) -> Result<DeliveryPage, PageError> {
    member.require(Action::Read)?;
    delivery_view(&state, &member, &path.id, None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReplayForm {
    /// A routine replay starts a new (paid) Claude session: the person must say so.
    confirm: Option<String>,
}

#[post("/t/{team}/deliveries/{id}/replay")]
async fn replay(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<DeliveryId>>,
    Posted(form): Posted<ReplayForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    let page = delivery_view(&state, &member, &id, None).await?;
    if page.is_routine() && form.confirm.is_none() {
        let page = delivery_view(
            &state,
            &member,
            &id,
            Some(
                "Tick the box first: replaying to a routine starts a new Claude Code session."
                    .to_owned(),
            ),
        )
        .await?;
        return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
    }
    after_move(
        &state,
        &member,
        &id,
        deliveries_app::replay(member.scope(&state), &id).await,
    )
    .await
}

/// What a person does to a delivery still waiting to be sent.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Nudge {
    /// Send it now, its back-off cut short.
    Retry,
    /// Send it never.
    Cancel,
}

#[derive(Debug, Deserialize)]
struct NudgePath {
    id: DeliveryId,
    action: Nudge,
}

#[post("/t/{team}/deliveries/{id}/{action:retry|cancel}")]
async fn nudge(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<NudgePath>,
    Posted(_): Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let NudgePath { id, action } = path.into_inner();
    let scope = member.scope(&state);
    let moved = match action {
        Nudge::Retry => deliveries_app::retry_now(scope, &id).await,
        Nudge::Cancel => deliveries_app::cancel(scope, &id).await,
    };
    after_move(&state, &member, &id, moved).await
}

/// The delivery's page after a person moved it; a move its state does not allow shows
/// the page with why.
async fn after_move(
    state: &WebState,
    member: &Member,
    id: &DeliveryId,
    moved: Result<Delivery, AppError>,
) -> Result<HttpResponse, PageError> {
    match moved {
        Ok(_) => Ok(see_other(member.path(&format!("deliveries/{id}")))),
        Err(AppError::Conflict(why)) => {
            let page = delivery_view(state, member, id, Some(super::forms::sentence(&why))).await?;
            html(&page, StatusCode::CONFLICT)
        }
        Err(e) => Err(e.into()),
    }
}
