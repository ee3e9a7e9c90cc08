//! The logs operators live in: events (filtered, newest first, refreshing themselves),
//! one event with its headers, body and deliveries; deliveries and one delivery with
//! every attempt; and replay.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use serde::Deserialize;
use switchyard_domain::StoreError;
use switchyard_domain::accounts::Action;
use switchyard_domain::delivery::{DeliveryStatus, DestinationKind};
use switchyard_domain::ids::{DestinationId, EventId, RouteId, SourceId};
use switchyard_domain::model::{
    Attempt, Delivery, DeliveryFilter, Event, EventFilter, PageRequest, PayloadMatch,
};
use switchyard_domain::routing::timeline;
use switchyard_domain::store::{deliveries, destinations, events, routes, sources};

use super::error::{PageError, path_id};
use super::forms::{Posted, encode, filled, local_time};
use super::session::Member;
use super::{Nav, html, see_other};
use crate::WebState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(event_list)
        .service(event_page)
        .service(delivery_list)
        .service(delivery_page)
        .service(replay)
        .service(rerun)
        .service(sessions);
}

/// How many of the latest `session.*` events the timeline reads, from how many days.
const TIMELINE_EVENTS: i64 = 1000;
const TIMELINE_DAYS: i64 = 7;

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/sessions.html")]
struct SessionsPage {
    nav: Nav,
    sessions: Vec<timeline::Session>,
}

/// Anthropic agent sessions, each told as one story in the order things happened.
#[get("/t/{team}/sessions")]
async fn sessions(state: web::Data<WebState>, member: Member) -> Result<SessionsPage, PageError> {
    member.require(Action::Read)?;
    let since = Utc::now() - chrono::Duration::days(TIMELINE_DAYS);
    let found = events::latest_with_bodies(
        &state.pool,
        member.team_id(),
        "session.",
        since,
        TIMELINE_EVENTS,
    )
    .await?;
    let sessions = timeline::sessions(
        found
            .iter()
            .map(|(e, body)| (&e.id, e.received_at, body.as_slice())),
    );
    Ok(SessionsPage {
        nav: Nav::new(&member, "events", state.smtp_configured),
        sessions,
    })
}

const PAGE: u32 = 50;

/// The badge a delivery status wears, for the pages that list deliveries.
trait Tones {
    fn tone(&self, status: &DeliveryStatus) -> &'static str {
        match status {
            DeliveryStatus::Succeeded => "ok",
            DeliveryStatus::Failed | DeliveryStatus::UnknownOutcome => "bad",
            DeliveryStatus::Held | DeliveryStatus::Throttled => "warn",
            _ => "",
        }
    }
}

impl Tones for EventsPage {}
impl Tones for EventPage {}
impl Tones for DeliveriesPage {}
impl Tones for DeliveryPage {}

/// Names of the team's sources, destinations and routes, for the tables.
struct Names {
    sources: HashMap<SourceId, String>,
    destinations: HashMap<DestinationId, (String, DestinationKind)>,
    routes: HashMap<RouteId, String>,
}

impl Names {
    async fn load(state: &WebState, member: &Member) -> Result<Names, PageError> {
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
                .map(|d| (d.id, (d.name, d.kind)))
                .collect(),
            routes: routes::list(&state.pool, team, &all)
                .await?
                .items
                .into_iter()
                .map(|r| (r.id, r.name))
                .collect(),
        })
    }

    fn source(&self, id: &SourceId) -> &str {
        self.sources.get(id).map_or("(deleted)", String::as_str)
    }

    fn destination(&self, id: &DestinationId) -> &str {
        self.destinations
            .get(id)
            .map_or("(deleted)", |(name, _)| name.as_str())
    }

    fn route(&self, id: &Option<RouteId>) -> &str {
        id.as_ref()
            .and_then(|id| self.routes.get(id))
            .map_or("(none)", String::as_str)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventQuery {
    source: String,
    event_type: String,
    dedup_key: String,
    payload: String,
    status: String,
    since: String,
    until: String,
    cursor: String,
}

impl EventQuery {
    /// This query as a URL query string, without the cursor.
    fn query_string(&self) -> String {
        [
            ("source", &self.source),
            ("event_type", &self.event_type),
            ("dedup_key", &self.dedup_key),
            ("payload", &self.payload),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/events.html")]
struct EventsPage {
    nav: Nav,
    q: EventQuery,
    events: Vec<Event>,
    next_cursor: Option<String>,
    names: Names,
    statuses: &'static [DeliveryStatus],
    /// A filter value that could not be read, or a search that could not finish.
    problem: Option<String>,
    notice: Option<&'static str>,
}

impl EventsPage {
    /// This page, for htmx to reload.
    fn here(&self) -> String {
        format!("/t/{}/events?{}", self.nav.team_slug, self.q.query_string())
    }

    /// Whether the list reloads itself: the first page of a cheap query only (a body or
    /// delivery-status search is not repeated every few seconds).
    fn live(&self) -> bool {
        self.q.cursor.is_empty()
            && self.q.payload.is_empty()
            && self.q.status.is_empty()
            && self.problem.is_none()
    }

    fn next_link(&self) -> Option<String> {
        let cursor = self.next_cursor.as_ref()?;
        let query = self.q.query_string();
        Some(match query.is_empty() {
            true => format!("?cursor={cursor}"),
            false => format!("?{query}&cursor={cursor}"),
        })
    }

    fn sources(&self) -> Vec<(&SourceId, &String)> {
        let mut all: Vec<_> = self.names.sources.iter().collect();
        all.sort_by_key(|(_, name)| name.to_lowercase());
        all
    }
}

#[get("/t/{team}/events")]
async fn event_list(
    state: web::Data<WebState>,
    member: Member,
    q: web::Query<EventQuery>,
) -> Result<EventsPage, PageError> {
    member.require(Action::Read)?;
    let q = q.into_inner();
    let mut problem = None;
    let mut filter = EventFilter {
        event_type_glob: filled(&q.event_type),
        dedup_key: filled(&q.dedup_key),
        ..EventFilter::default()
    };
    if let Some(raw) = filled(&q.source) {
        match raw.parse() {
            Ok(id) => filter.source_id = Some(id),
            Err(_) => problem = Some("That source does not exist.".to_owned()),
        }
    }
    if let Some(raw) = filled(&q.payload) {
        match PayloadMatch::parse(&raw) {
            Ok(m) => filter.payload = Some(m),
            Err(e) => problem = Some(super::forms::sentence(&e)),
        }
    }
    if let Some(raw) = filled(&q.status) {
        match raw.parse() {
            Ok(status) => filter.delivery_status = Some(status),
            Err(_) => problem = Some(format!("{raw:?} is not a delivery status.")),
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
    // A search inside bodies reads every body in range: it looks at the last day unless
    // the person says otherwise.
    let mut notice = None;
    if filter.payload.is_some() && filter.since.is_none() {
        filter.since = Some(Utc::now() - chrono::Duration::hours(24));
        notice = Some("Searching bodies of the last 24 hours; set From to look further back.");
    }
    let page = PageRequest {
        cursor: filled(&q.cursor),
        limit: PAGE,
    };
    let found = match problem {
        Some(_) => Default::default(),
        None => match events::list(&state.pool, member.team_id(), &filter, &page).await {
            Ok(found) => found,
            Err(e) if e.is_timeout() => {
                problem = Some(
                    "This search took too long. Narrow it: a shorter time range, a source or an event type."
                        .to_owned(),
                );
                Default::default()
            }
            Err(e) => return Err(e.into()),
        },
    };
    Ok(EventsPage {
        notice,
        nav: Nav::new(&member, "events", state.smtp_configured),
        names: Names::load(&state, &member).await?,
        q,
        events: found.items,
        next_cursor: found.next_cursor,
        statuses: DeliveryStatus::ALL,
        problem,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/event.html")]
struct EventPage {
    nav: Nav,
    /// Why a re-run was refused.
    problem: Option<String>,
    event: Event,
    headers: String,
    /// The body pretty-printed when it is JSON.
    pretty: Option<String>,
    raw: String,
    deliveries: Vec<Delivery>,
    names: Names,
}

#[get("/t/{team}/events/{id}")]
async fn event_page(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<(String, String)>,
) -> Result<EventPage, PageError> {
    member.require(Action::Read)?;
    event_page_view(&state, &member, &path_id(&path.1)?).await
}

async fn event_page_view(
    state: &WebState,
    member: &Member,
    id: &EventId,
) -> Result<EventPage, PageError> {
    let id = id.clone();
    let (event, headers, body) = events::get_with_body(&state.pool, member.team_id(), &id).await?;
    let pretty = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    Ok(EventPage {
        nav: Nav::new(member, "events", state.smtp_configured),
        problem: None,
        headers: serde_json::to_string_pretty(&headers).unwrap_or_default(),
        pretty,
        raw: String::from_utf8_lossy(&body).into_owned(),
        deliveries: deliveries::for_event(&state.pool, member.team_id(), &id).await?,
        names: Names::load(state, member).await?,
        event,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RerunForm {
    /// Routine routes start a new (paid) Claude session: the person must say so.
    confirm: Option<String>,
}

/// Sends the event through today's routes again.
#[post("/t/{team}/events/{id}/rerun")]
async fn rerun(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<(String, String)>,
    Posted(form): Posted<RerunForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id: EventId = path_id(&path.1)?;
    let acting = member.acting();
    let targets = crate::route_preview::targets_today(&state, &acting, &id).await?;
    let reaches_routine = targets
        .iter()
        .any(|(t, kind)| *kind == DestinationKind::Routine && t.failure.is_none());
    if reaches_routine && form.confirm.is_none() {
        let mut page = event_page_view(&state, &member, &id).await?;
        page.problem = Some(
            "Tick the box first: a route of this event fires a routine, which starts a new Claude Code session."
                .to_owned(),
        );
        return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
    }
    crate::events::rerun_event(&state, &acting, &id).await?;
    Ok(see_other(member.path(&format!("events/{id}"))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeliveryQuery {
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
    deliveries: Vec<Delivery>,
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
    member: Member,
    q: web::Query<DeliveryQuery>,
) -> Result<DeliveriesPage, PageError> {
    member.require(Action::Read)?;
    let q = q.into_inner();
    let mut problem = None;
    let mut filter = DeliveryFilter::default();
    if let Some(raw) = filled(&q.status) {
        match raw.parse() {
            Ok(status) => filter.status = Some(status),
            Err(_) => problem = Some(format!("{raw:?} is not a delivery status.")),
        }
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
        None => deliveries::list(&state.pool, member.team_id(), &filter, &page).await?,
    };
    Ok(DeliveriesPage {
        nav: Nav::new(&member, "deliveries", state.smtp_configured),
        names: Names::load(&state, &member).await?,
        q,
        deliveries: found.items,
        next_cursor: found.next_cursor,
        statuses: DeliveryStatus::ALL,
        problem,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/delivery.html")]
struct DeliveryPage {
    nav: Nav,
    delivery: Delivery,
    attempts: Vec<Attempt>,
    names: Names,
    kind: Option<DestinationKind>,
    problem: Option<String>,
}

impl DeliveryPage {
    fn pretty(&self, value: &serde_json::Value) -> String {
        serde_json::to_string_pretty(value).unwrap_or_default()
    }

    fn is_routine(&self) -> bool {
        self.kind == Some(DestinationKind::Routine)
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
    let delivery = deliveries::get(&state.pool, member.team_id(), id).await?;
    let names = Names::load(state, member).await?;
    let kind =
        match destinations::get(&state.pool, member.team_id(), &delivery.destination_id).await {
            Ok(d) => Some(d.kind),
            Err(switchyard_domain::StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
    Ok(DeliveryPage {
        nav: Nav::new(member, "deliveries", state.smtp_configured),
        attempts: deliveries::attempts(&state.pool, member.team_id(), id).await?,
        kind,
        names,
        delivery,
        problem,
    })
}

#[get("/t/{team}/deliveries/{id}")]
async fn delivery_page(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<(String, String)>,
) -> Result<DeliveryPage, PageError> {
    member.require(Action::Read)?;
    delivery_view(&state, &member, &path_id(&path.1)?, None).await
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
    path: web::Path<(String, String)>,
    Posted(form): Posted<ReplayForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path_id(&path.1)?;
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
    let mut tx = state.pool.begin().await?;
    match deliveries::replay(&mut tx, member.team_id(), &id, Utc::now()).await {
        Ok(_) => {}
        Err(StoreError::Conflict(why)) => {
            let page =
                delivery_view(&state, &member, &id, Some(super::forms::sentence(&why))).await?;
            return html(&page, StatusCode::CONFLICT);
        }
        Err(e) => return Err(e.into()),
    }
    member
        .audit(&mut *tx, "delivery.replay", id.as_str())
        .await?;
    tx.commit().await?;
    Ok(see_other(member.path(&format!("deliveries/{id}"))))
}
