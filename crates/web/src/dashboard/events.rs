//! The events log (filtered, newest first, refreshing itself), one event with its
//! headers, body and deliveries, re-running it, and the Anthropic session timeline.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use serde::Deserialize;
use switchyard_domain::accounts::Action;
use switchyard_domain::app::events as events_app;
use switchyard_domain::app::{AppError, Scope};
use switchyard_domain::delivery::{DeliveryStatus, DestinationKind};
use switchyard_domain::ids::{EventId, SourceId};
use switchyard_domain::model::{Delivery, Event, EventFilter, Page, PageRequest};
use switchyard_domain::routing::{Filter, timeline};
use switchyard_domain::store::{deliveries, event_objects, events};

use super::error::{PageError, TeamPath};
use super::flash::{self, FlashQuery};
use super::forms::{Posted, encode, filled, local_time};
use super::logs::{Names, PAGE, Tones};
use super::session::Member;
use super::{Nav, html, see_other};
use crate::WebState;
use crate::query::Query;
use crate::reads::Wrote;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(event_list)
        .service(event_page)
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
async fn sessions(
    state: web::Data<WebState>,
    wrote: Wrote,
    member: Member,
) -> Result<SessionsPage, PageError> {
    member.require(Action::Read)?;
    let db = wrote.pool(&state).await;
    let since = Utc::now() - chrono::Duration::days(TIMELINE_DAYS);
    let found =
        events::latest_with_bodies(db, member.team_id(), "session.", since, TIMELINE_EVENTS)
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventQuery {
    source: String,
    event_type: String,
    dedup_key: String,
    /// An expression in the route filter language.
    filter: String,
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
            ("filter", &self.filter),
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
    notice: Option<String>,
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
            && self.q.filter.is_empty()
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
    wrote: Wrote,
    member: Member,
    q: Query<EventQuery>,
) -> Result<EventsPage, PageError> {
    member.require(Action::Read)?;
    let db = wrote.pool(&state).await;
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
    let expression = match filled(&q.filter).map(|raw| Filter::compile(&raw)) {
        Some(Ok(expression)) => Some(expression),
        Some(Err(e)) => {
            problem = Some(filter_mistake(&q.filter, &e));
            None
        }
        None => None,
    };
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
    let cursor = filled(&q.cursor);
    let mut notice = None;
    let found = match (&problem, &expression) {
        (Some(_), _) => Default::default(),
        (None, Some(expression)) => {
            let searched_for = events_app::search(
                Scope {
                    pool: db,
                    ..member.scope(&state)
                },
                &filter,
                expression,
                cursor.as_deref(),
                PAGE as usize,
                SEARCH_BUDGET,
            )
            .await;
            match searched_for {
                Ok(found) => {
                    notice = searched(&found);
                    Page {
                        items: found.items,
                        next_cursor: found.next_cursor,
                    }
                }
                Err(AppError::Store(e)) if e.is_timeout() => {
                    problem = Some(TOO_LONG.to_owned());
                    Default::default()
                }
                Err(e) => return Err(e.into()),
            }
        }
        (None, None) => {
            let page = PageRequest {
                cursor,
                limit: PAGE,
            };
            match events::list(db, member.team_id(), &filter, &page).await {
                Ok(found) => found,
                Err(e) if e.is_timeout() => {
                    problem = Some(TOO_LONG.to_owned());
                    Default::default()
                }
                Err(e) => return Err(e.into()),
            }
        }
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

/// What a search that ran out of time says.
const TOO_LONG: &str =
    "This search took too long. Narrow it: a shorter time range, a source or an event type.";

/// Events a filter expression reads per page: a rare match costs a bounded wait, and
/// the page says how far back it looked. At ten million events over ten days'
/// partitions this many take about 100 ms (docs/BENCHMARKS.md).
const SEARCH_BUDGET: usize = 3000;

/// A filter expression's mistake, where it is, and the usual slip: `=` for `==`.
fn filter_mistake(raw: &str, e: &switchyard_domain::routing::TemplateError) -> String {
    let mut text = format!("The filter has a mistake: {e}.");
    let single_equals = raw.char_indices().any(|(i, c)| {
        c == '=' && !raw[..i].ends_with(['=', '!', '<', '>']) && !raw[i + 1..].starts_with('=')
    });
    if single_equals {
        text.push_str(" Compare with ==, as in payload.issue.number == 42.");
    }
    text
}

/// What a filter search says about the events it read.
fn searched(found: &events_app::Found) -> Option<String> {
    let mut said = Vec::new();
    if found.stopped_early {
        let matched = match found.items.len() {
            0 => "none matched".to_owned(),
            1 => "1 matched".to_owned(),
            n => format!("{n} matched"),
        };
        said.push(format!(
            "Read {} events and {matched}; “Older events” reads on.",
            found.read
        ));
    }
    if let Some((reason, count)) = &found.failed {
        said.push(format!(
            "The filter could not judge {count} of the {} events it read ({reason}); they are left out.",
            found.read
        ));
    }
    (!said.is_empty()).then(|| said.join(" "))
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
    /// What enrichment fetched for the event: the object pretty-printed, or why there
    /// is none.
    object: Option<(Option<String>, Option<String>)>,
    deliveries: Vec<Delivery>,
    names: Names,
}

#[get("/t/{team}/events/{id}")]
async fn event_page(
    state: web::Data<WebState>,
    wrote: Wrote,
    member: Member,
    path: web::Path<TeamPath<EventId>>,
    shown: Query<FlashQuery>,
) -> Result<EventPage, PageError> {
    member.require(Action::Read)?;
    let db = wrote.pool(&state).await;
    let mut page = event_page_view(&state, db, &member, &path.id).await?;
    page.nav.flash = flash::notice(&state, &member.viewer, &shown).await?;
    Ok(page)
}

async fn event_page_view(
    state: &WebState,
    db: &sqlx::PgPool,
    member: &Member,
    id: &EventId,
) -> Result<EventPage, PageError> {
    let id = id.clone();
    let (event, headers, body) = events::get_with_body(db, member.team_id(), &id).await?;
    let pretty = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    Ok(EventPage {
        nav: Nav::new(member, "events", state.smtp_configured),
        problem: None,
        headers: serde_json::to_string_pretty(&headers).unwrap_or_default(),
        pretty,
        raw: String::from_utf8_lossy(&body).into_owned(),
        object: event_objects::get(db, member.team_id(), &id)
            .await?
            .map(|found| {
                let pretty = found
                    .object
                    .and_then(|o| serde_json::to_string_pretty(&o).ok());
                (pretty, found.note)
            }),
        deliveries: deliveries::for_event(db, member.team_id(), &id).await?,
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
    path: web::Path<TeamPath<EventId>>,
    Posted(form): Posted<RerunForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    let plans = events_app::plan_today(member.scope(&state), &id).await?;
    let reaches_routine = plans
        .iter()
        .any(|(t, kind)| *kind == DestinationKind::Routine && t.failure.is_none());
    if reaches_routine && form.confirm.is_none() {
        let mut page = event_page_view(&state, &state.pool, &member, &id).await?;
        page.problem = Some(
            "Tick the box first: a route of this event fires a routine, which starts a new Claude Code session."
                .to_owned(),
        );
        return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
    }
    events_app::rerun(member.scope(&state), &id).await?;
    Ok(see_other(member.path(&format!("events/{id}"))))
}

impl Tones for EventsPage {}
impl Tones for EventPage {}
