//! Bulk replay in the dashboard: a filter (from the deliveries page), the count and a
//! sample to check, a confirmation, then the replay's own page showing n of m as the job
//! runs, with cancel.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;
use switchyard_domain::accounts::Action;
use switchyard_domain::app::AppError;
use switchyard_domain::app::replays::{self as manage, FilterInput};
use switchyard_domain::delivery::DestinationKind;
use switchyard_domain::ids::ReplayId;
use switchyard_domain::model::Delivery;
use switchyard_domain::store::destinations;
use switchyard_domain::store::replays::{self, Replay};

use super::error::{PageError, TeamPath};
use super::forms::{Errors, NoFields, Posted, filled, local_time};
use super::session::Member;
use super::{Nav, html, see_other};
use crate::WebState;
use crate::query::Query;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(new)
        .service(start)
        .service(show)
        .service(cancel);
}

/// The filter as the deliveries page's query and the confirmation form carry it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FilterForm {
    status: String,
    destination: String,
    route: String,
    since: String,
    until: String,
    /// Replays that reach a routine start paid Claude sessions: the person must say so.
    confirm: Option<String>,
}

impl FilterForm {
    fn input(&self) -> Result<FilterInput, String> {
        let instant = |raw: &str| match filled(raw) {
            None => Ok(None),
            Some(raw) => local_time(&raw)
                .map(Some)
                .ok_or_else(|| format!("{raw:?} is not a time such as 2026-11-27T10:30.")),
        };
        Ok(FilterInput {
            status: Some(self.status.clone()),
            destination_id: Some(self.destination.clone()),
            route_id: Some(self.route.clone()),
            since: instant(&self.since)?,
            until: instant(&self.until)?,
        })
    }
}

/// A filter the deliveries page should not have produced: its first reason, as a 400.
fn unreadable(e: AppError) -> PageError {
    match e {
        AppError::Invalid(fields) => PageError::BadRequest(
            fields
                .into_iter()
                .next()
                .map(|f| f.message)
                .unwrap_or_else(|| "this filter cannot be read".to_owned()),
        ),
        other => other.into(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/replay_new.html")]
struct NewPage {
    nav: Nav,
    form: FilterForm,
    count: i64,
    sample: Vec<Delivery>,
    /// Whether any destination the replay may reach is a routine.
    reaches_routines: bool,
    errors: Errors,
}

async fn new_page(
    state: &WebState,
    member: &Member,
    form: FilterForm,
    errors: Errors,
) -> Result<NewPage, PageError> {
    let filter = form
        .input()
        .map_err(PageError::BadRequest)?
        .parse()
        .map_err(unreadable)?;
    let (count, sample) = manage::dry_run(member.scope(state), &filter).await?;
    let reaches_routines = destinations::any_of_kind(
        &state.pool,
        member.team_id(),
        DestinationKind::Routine,
        filter.destination_id.as_ref(),
    )
    .await?;
    Ok(NewPage {
        nav: Nav::new(member, "deliveries", state.smtp_configured),
        form,
        count,
        sample,
        reaches_routines,
        errors,
    })
}

#[get("/t/{team}/replays/new")]
async fn new(
    state: web::Data<WebState>,
    member: Member,
    q: Query<FilterForm>,
) -> Result<NewPage, PageError> {
    member.require(Action::Configure)?;
    new_page(&state, &member, q.into_inner(), Errors::default()).await
}

#[post("/t/{team}/replays")]
async fn start(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<FilterForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let page = new_page(&state, &member, form, Errors::default()).await?;
    if page.reaches_routines && page.form.confirm.is_none() {
        let mut errors = Errors::default();
        errors.add(
            "confirm",
            "Tick the box first: each replay to a routine starts a new Claude Code session.",
        );
        let page = new_page(&state, &member, page.form, errors).await?;
        return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let filter = page
        .form
        .input()
        .map_err(PageError::BadRequest)?
        .parse()
        .map_err(unreadable)?;
    let replay = manage::start(member.scope(&state), &filter).await?;
    Ok(see_other(member.path(&format!("replays/{}", replay.id))))
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/replay.html")]
struct ShowPage {
    nav: Nav,
    replay: Replay,
}

impl ShowPage {
    /// Whole percent done, for the progress bar.
    fn percent(&self) -> i64 {
        match self.replay.total {
            0 => 100,
            total => (i64::from(self.replay.done) * 100 / i64::from(total)).clamp(0, 100),
        }
    }
}

#[get("/t/{team}/replays/{id}")]
async fn show(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<ReplayId>>,
) -> Result<ShowPage, PageError> {
    member.require(Action::Read)?;
    let replay = replays::get(&state.pool, member.team_id(), &path.id).await?;
    Ok(ShowPage {
        nav: Nav::new(&member, "deliveries", state.smtp_configured),
        replay,
    })
}

#[post("/t/{team}/replays/{id}/cancel")]
async fn cancel(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<ReplayId>>,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    match manage::cancel(member.scope(&state), &id).await {
        Ok(_) => {}
        // Finished meanwhile: the page says so.
        Err(AppError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(see_other(member.path(&format!("replays/{id}"))))
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/replays.html")]
struct ListPage {
    nav: Nav,
    replays: Vec<Replay>,
}

#[get("/t/{team}/replays")]
async fn list(state: web::Data<WebState>, member: Member) -> Result<ListPage, PageError> {
    member.require(Action::Read)?;
    Ok(ListPage {
        nav: Nav::new(&member, "deliveries", state.smtp_configured),
        replays: replays::latest(&state.pool, member.team_id(), 50).await?,
    })
}
