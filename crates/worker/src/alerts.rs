//! Alert emails to a team's owners and admins, one per task on the alerts queue. The
//! task was pushed in the transaction that changed the destination, so an alert goes
//! out if and only if that change happened; apalis retries a refused send a few times.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use askama::Template;
use switchyard_domain::delivery::compose;
use switchyard_domain::store::queue::{Alert, AlertTask};
use switchyard_domain::store::{destinations, teams};

use crate::Deliverer;
use crate::mail::Email;

#[derive(Template)]
#[template(path = "alert.txt")]
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
