//! Alert emails to a team's owners and admins, one per task on the alerts queue. The
//! task was pushed in the transaction that changed the destination, so an alert goes
//! out if and only if that change happened; apalis retries a refused send a few times.
//! Account emails (verification, password reset, invitations) ride a queue of their own.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use askama::Template;
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use switchyard_domain::delivery::compose;
use switchyard_domain::store::queue::{Alert, AlertTask, MailTask};
use switchyard_domain::store::{destinations, teams};

use crate::Deliverer;
use crate::mail::Email;

#[derive(Template)]
#[template(path = "email/alert.txt")]
struct AlertText<'a> {
    alert: &'a Alert,
    name: &'a str,
    kind: &'a str,
    team: &'a str,
    id: &'a str,
}

pub async fn send(task: AlertTask, ctx: Data<Arc<Deliverer>>) -> Result<(), BoxDynError> {
    if !ctx.mailer.is_configured() {
        tracing::warn!(destination = %task.destination_id, "alert not sent: SMTP not configured");
        return Ok(());
    }
    let destination = match destinations::get(&ctx.pool, &task.team_id, &task.destination_id).await
    {
        Ok(d) => d,
        // Deleted meanwhile: nobody needs to hear about it.
        Err(switchyard_domain::StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let to = teams::admin_emails(&ctx.pool, &task.team_id).await?;
    if to.is_empty() {
        tracing::warn!(destination = %task.destination_id, "alert not sent: the team has no admins");
        return Ok(());
    }
    let team = teams::get(&ctx.pool, &task.team_id).await?;
    let (name, kind, id) = (
        destination.name.as_str(),
        destination.kind.as_str(),
        destination.id.as_str(),
    );
    let text = AlertText {
        alert: &task.alert,
        name,
        kind,
        team: &team.slug,
        id,
    }
    .render()?;
    let html = compose::html_from_text(&text);
    let subject = match task.alert {
        Alert::Disabled { .. } => format!("[Switchyard] Destination \"{name}\" is disabled"),
        Alert::Recovered { .. } => format!("[Switchyard] Destination \"{name}\" recovered"),
    };
    let sent = ctx
        .mailer
        .send(&Email {
            to,
            subject,
            text,
            html,
        })
        .await;
    match sent.error {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// Sends one account email (verification, reset, invitation). Its text was sealed by
/// the web process; a text that no longer opens (the key was rotated away) is dropped.
pub async fn send_account_mail(
    task: MailTask,
    ctx: Data<Arc<Deliverer>>,
) -> Result<(), BoxDynError> {
    let sealed = match BASE64_STANDARD.decode(&task.sealed_text) {
        Ok(sealed) => sealed,
        Err(e) => {
            tracing::warn!(error = %e, "account email dropped: its text is not base64");
            return Ok(());
        }
    };
    let text = match ctx.key.open(&sealed).map(String::from_utf8) {
        Ok(Ok(text)) => text,
        _ => {
            tracing::warn!("account email dropped: its text does not open with the current keys");
            return Ok(());
        }
    };
    let html = compose::html_from_text(&text);
    let sent = ctx
        .mailer
        .send(&Email {
            to: vec![task.to],
            subject: task.subject,
            text,
            html,
        })
        .await;
    match sent.error {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}
