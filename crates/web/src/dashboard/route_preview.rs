//! The route form's preview panel: what the route as typed would do with one of its
//! source's recent events, the latest it takes, or a sample pasted into the form. htmx
//! swaps it in as the form changes.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use askama::Template;
use switchyard_domain::accounts::Action;
use switchyard_domain::app::AppError;
use switchyard_domain::app::previews::{self, Candidate, Preview, PreviewSample};
use switchyard_domain::ids::{DestinationId, EventId, SourceId};
use switchyard_domain::model::{Event, EventFilter, PageRequest};
use switchyard_domain::store::{destinations, events, sources};

use super::error::PageError;
use super::forms::Posted;
use super::html;
use super::routes::RouteForm;
use super::session::Member;
use crate::WebState;

/// What the preview panel shows.
#[derive(Template, Default)]
#[template(path = "dashboard/route_preview.html")]
pub(super) struct PreviewPanel {
    /// Why there is nothing to show yet.
    waiting: Option<&'static str>,
    /// What the preview ran on, in words.
    tried: Option<String>,
    preview: Option<Preview>,
    problem: Option<String>,
    /// The source's recent events, to pick one.
    recent: Vec<Event>,
    /// The one picked, if any.
    picked: String,
    /// Where a new pick posts.
    preview_url: String,
}

impl PreviewPanel {
    fn waiting(why: &'static str) -> PreviewPanel {
        PreviewPanel {
            waiting: Some(why),
            ..PreviewPanel::default()
        }
    }
}

/// Recent events the preview offers to pick from.
const PICKABLE: u32 = 20;

/// Runs the form's route against the event it picks, the sample pasted into it, or the
/// latest event of its source the event types match.
pub(super) async fn panel(state: &WebState, member: &Member, form: &RouteForm) -> PreviewPanel {
    PreviewPanel {
        preview_url: member.path("routes/preview"),
        ..try_route(state, member, form).await
    }
}

async fn try_route(state: &WebState, member: &Member, form: &RouteForm) -> PreviewPanel {
    let ids = (
        form.source_id.parse::<SourceId>(),
        form.destination_id.parse::<DestinationId>(),
    );
    let (Ok(source_id), Ok(destination_id)) = ids else {
        return PreviewPanel::waiting("Choose a source and a destination to see a preview.");
    };
    let team = member.team_id();
    let found = (
        sources::get(&state.pool, team, &source_id).await,
        destinations::get(&state.pool, team, &destination_id).await,
    );
    let (Ok(source), Ok(destination)) = found else {
        return PreviewPanel::waiting("Choose a source and a destination to see a preview.");
    };
    let newest = EventFilter {
        source_id: Some(source_id),
        ..EventFilter::default()
    };
    let pickable = PageRequest {
        cursor: None,
        limit: PICKABLE,
    };
    let recent = match events::list(&state.pool, team, &newest, &pickable).await {
        Ok(found) => found.items,
        Err(e) => return unavailable(e.into()),
    };
    let candidate = Candidate {
        source,
        kind: destination.kind(),
        event_types: form.patterns(),
        filter: RouteForm::optional(&form.filter),
        template: RouteForm::optional(&form.template),
        subject: RouteForm::optional(&form.subject),
    };
    let scope = member.scope(state);
    let tried = if !form.sample_body.trim().is_empty() {
        let sample = match pasted(form) {
            Ok(sample) => sample,
            Err(problem) => {
                return PreviewPanel {
                    problem: Some(problem),
                    recent,
                    ..PreviewPanel::default()
                };
            }
        };
        previews::with_sample(scope, &candidate, sample)
            .await
            .map(|p| Some(("With the pasted sample.".to_owned(), p)))
    } else if let Some(id) = form
        .preview_event
        .parse::<EventId>()
        .ok()
        .filter(|id| recent.iter().any(|e| &e.id == id))
    {
        let picked = PreviewSample {
            event_id: Some(id.to_string()),
            ..PreviewSample::default()
        };
        previews::with_sample(scope, &candidate, picked)
            .await
            .map(|p| Some((format!("With the event {id}."), p)))
    } else {
        previews::latest(scope, &candidate)
            .await
            .map(|found| found.map(|(id, p)| (format!("With the latest matching event, {id}."), p)))
    };
    match tried {
        Ok(Some((tried, preview))) => PreviewPanel {
            tried: Some(tried),
            preview: Some(preview),
            picked: form.preview_event.clone(),
            recent,
            ..PreviewPanel::default()
        },
        Ok(None) => PreviewPanel::waiting(
            "This source has no events yet. Send one from the sender, or paste a sample below the form.",
        ),
        Err(e) => PreviewPanel {
            recent,
            ..unavailable(e)
        },
    }
}

/// A preview that could not run, and why, for people.
fn unavailable(e: AppError) -> PreviewPanel {
    let problem = match e {
        AppError::Invalid(errors) => errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        AppError::Store(e) => {
            tracing::warn!(error = ?e, "route preview failed");
            "the preview is unavailable right now; try again in a moment".to_owned()
        }
        other => other.to_string(),
    };
    PreviewPanel {
        problem: Some(super::forms::sentence(&problem)),
        ..PreviewPanel::default()
    }
}

/// The sample pasted into the form: `Name: value` header lines and a JSON body.
fn pasted(form: &RouteForm) -> Result<PreviewSample, String> {
    let payload = serde_json::from_str(&form.sample_body)
        .map_err(|e| format!("The pasted body is not JSON: {e}."))?;
    let mut headers = BTreeMap::new();
    for (n, line) in form.sample_headers.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!(
                "Line {} of the pasted headers is not Name: value.",
                n + 1
            ));
        };
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    Ok(PreviewSample {
        payload: Some(payload),
        headers: Some(headers),
        ..PreviewSample::default()
    })
}

/// The preview panel alone, for htmx as the form changes.
#[post("/t/{team}/routes/preview")]
pub(super) async fn live_preview(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<RouteForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Read)?;
    html(&panel(&state, &member, &form).await, StatusCode::OK)
}
