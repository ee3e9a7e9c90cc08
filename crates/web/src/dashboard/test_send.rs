//! "Send test" on a destination's page: a sample event sent now through the worker's own
//! request building and guarded client, and the answer shown. Not a delivery: nothing is
//! recorded on one, and no limit, budget or breaker moves.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use chrono::Utc;
use serde::Deserialize;
use switchyard_domain::accounts::Action;
use switchyard_domain::delivery::DestinationKind;
use switchyard_domain::ids::DestinationId;
use switchyard_domain::store::{sample as sample_claim, teams};
use switchyard_send::Outbound;
use switchyard_send::sample::{self, SampleOutcome};

use super::destinations::{ShowFlash, TestResult, show_page};
use super::error::{PageError, TeamPath};
use super::forms::Posted;
use super::session::Member;
use super::{flash, html, limits, mail, see_other};
use crate::WebState;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TestForm {
    /// A routine test starts a real (paid) Claude session: the person must say so.
    confirm: Option<String>,
}

/// Sends a sample event now and shows the answer.
#[post("/t/{team}/destinations/{id}/test")]
pub(super) async fn send_test(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<DestinationId>>,
    Posted(form): Posted<TestForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    let mut page = show_page(&state, &member, &id).await?;
    if page.destination.kind() == DestinationKind::Routine && form.confirm.is_none() {
        page.test = Some(TestResult {
            answer: None,
            queued_for: Vec::new(),
            problem: Some(
                "Tick the box first: a test fire starts a new Claude Code session.".to_owned(),
            ),
        });
        return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
    }
    limits::check(&state, &[limits::per_target("test", id.as_str())]).await?;
    let claimed = sample_claim::claim(&state.pool, member.team_id(), &id, Utc::now()).await?;
    let outbound = Outbound::new(state.policy, TEST_TIMEOUT).map_err(|e| {
        tracing::error!(error = %e, "dashboard: no HTTP client for a test send");
        PageError::Internal
    })?;
    let outcome = sample::send(&outbound, &state.key, &claimed, &state.public_url).await;
    let result = match outcome {
        Ok(SampleOutcome::Answered(answer)) => TestResult {
            answer: Some(answer),
            queued_for: Vec::new(),
            problem: None,
        },
        Ok(SampleOutcome::Email(email)) => {
            let mut tx = state.pool.begin().await?;
            let to = match email.to.is_empty() {
                true => teams::admin_emails(&mut *tx, member.team_id()).await?,
                false => email.to,
            };
            for address in &to {
                mail::push(
                    &mut tx,
                    &state,
                    address,
                    email.subject.clone(),
                    email.text.clone(),
                )
                .await?;
            }
            tx.commit().await?;
            TestResult {
                answer: None,
                queued_for: to,
                problem: None,
            }
        }
        Err(problem) => TestResult {
            answer: None,
            queued_for: Vec::new(),
            problem: Some(problem),
        },
    };
    member
        .audit(&state.pool, "destination.test", &page.destination.name)
        .await?;
    // Post/Redirect/Get: a reload shows the result again without sending again.
    let flash = ShowFlash {
        test: Some(result),
        ..ShowFlash::default()
    };
    let shown = member.path(&format!("destinations/{id}#test-result"));
    Ok(see_other(
        flash::put(&state, &member.viewer, &flash, &shown).await?,
    ))
}

/// The longest a test send waits for its answer.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
