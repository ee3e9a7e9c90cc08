//! Alert emails to a team's owners and admins, one per task on the alerts queue. The
//! task was pushed in the transaction that changed the destination, so an alert goes
//! out if and only if that change happened; apalis retries a refused send a few times.
//! Account emails (verification, password reset, invitations) ride a queue of their own.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use askama::Template;
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use switchyard_domain::StoreError;
use switchyard_domain::delivery::compose;
use switchyard_domain::ids::TeamId;
use switchyard_domain::store::queue::{Alert, AlertTask, MailTask};
use switchyard_domain::store::{alerts, destinations, sources, teams};

use crate::WorkerContext;
use crate::mail::Email;

#[derive(Template)]
#[template(path = "email/alert.txt")]
pub struct AlertText<'a> {
    pub alert: &'a Alert,
    /// The destination's or source's name.
    pub name: &'a str,
    /// The destination's kind (empty for a source).
    pub kind: &'a str,
    pub team: &'a str,
    /// The destination's id.
    pub id: &'a str,
    /// `SWITCHYARD_PUBLIC_URL`, for links.
    pub base: &'a str,
}

impl AlertText<'_> {
    pub fn subject(&self) -> String {
        let name = self.name;
        match self.alert {
            Alert::Disabled { .. } => format!("[Switchyard] Destination \"{name}\" is disabled"),
            Alert::Recovered { .. } => format!("[Switchyard] Destination \"{name}\" recovered"),
            Alert::DeliveryFailed { .. } => {
                format!("[Switchyard] A delivery to \"{name}\" failed")
            }
            Alert::UnknownOutcome { .. } => {
                format!("[Switchyard] A fire of \"{name}\" may or may not have started")
            }
            Alert::SourceRejecting { count, .. } => {
                format!("[Switchyard] Source \"{name}\" refused {count} requests")
            }
            Alert::AnthropicKey { .. } => format!("[Switchyard] {name} does not work"),
            Alert::SourceQuiet { minutes, .. } => {
                format!("[Switchyard] Source \"{name}\" has been quiet for {minutes} minutes")
            }
            Alert::SourceFlowing { .. } => {
                format!("[Switchyard] Source \"{name}\" is receiving events again")
            }
        }
    }
}

/// Who hears about a team's alerts: its owners and admins (unless switched off) and the
/// extra addresses in its settings.
async fn recipients(pool: &sqlx::PgPool, team: &TeamId) -> Result<Vec<String>, BoxDynError> {
    let settings = alerts::settings(pool, team).await?;
    let mut to = if settings.notify_admins {
        teams::admin_emails(pool, team).await?
    } else {
        Vec::new()
    };
    for extra in settings.extra_recipients {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(&extra)) {
            to.push(extra);
        }
    }
    Ok(to)
}

pub async fn send(task: AlertTask, ctx: Data<Arc<WorkerContext>>) -> Result<(), BoxDynError> {
    if !ctx.mailer.is_configured() {
        tracing::warn!(team = %task.team_id, "alert not sent: SMTP not configured");
        return Ok(());
    }
    let team = match teams::get(&ctx.pool, &task.team_id).await {
        Ok(team) => team,
        Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // What the alert is about; deleted meanwhile, nobody needs to hear about it.
    let (name, kind, id) = match (&task.alert, &task.destination_id) {
        (
            Alert::SourceRejecting { source_id, .. }
            | Alert::SourceQuiet { source_id, .. }
            | Alert::SourceFlowing { source_id, .. },
            _,
        ) => match sources::get(&ctx.pool, &task.team_id, source_id).await {
            Ok(source) => (source.name, String::new(), source.id.to_string()),
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e.into()),
        },
        (Alert::AnthropicKey { workspace, .. }, _) => {
            let name = match workspace {
                Some(w) => format!("The Anthropic API key for workspace {w}"),
                None => "The team's Anthropic API key".to_owned(),
            };
            (name, String::new(), String::new())
        }
        (_, Some(destination)) => {
            match destinations::get(&ctx.pool, &task.team_id, destination).await {
                Ok(d) => (
                    d.name.clone(),
                    d.kind().as_str().to_owned(),
                    d.id.to_string(),
                ),
                Err(StoreError::NotFound) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        (_, None) => return Ok(()),
    };
    let to = recipients(&ctx.pool, &task.team_id).await?;
    if to.is_empty() {
        tracing::warn!(team = %task.team_id, "alert not sent: nobody to send it to");
        return Ok(());
    }
    let text = AlertText {
        alert: &task.alert,
        name: &name,
        kind: &kind,
        team: &team.slug,
        id: &id,
        base: &ctx.public_base,
    };
    let subject = text.subject();
    let text = text.render()?;
    let html = compose::html_from_text(&text);
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
    ctx: Data<Arc<WorkerContext>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_domain::ids::{DeliveryId, SourceId};

    fn render(alert: Alert, name: &str, kind: &str) -> String {
        let text = AlertText {
            alert: &alert,
            name,
            kind,
            team: "acme",
            id: "dst_01jdq5x3v8k2m9n4p6r7s8t0ab",
            base: "https://switchyard.example",
        };
        format!("Subject: {}\n\n{}", text.subject(), text.render().unwrap())
    }

    #[test]
    fn alert_emails_read_well() {
        let delivery: DeliveryId = "dlv_01jdq5x3v8k2m9n4p6r7s8t0ab".parse().unwrap();
        let source: SourceId = "src_01jdq5x3v8k2m9n4p6r7s8t0ab".parse().unwrap();
        let cases = [
            (
                "disabled",
                render(
                    Alert::Disabled {
                        reason: "10 consecutive failed attempts; the last: HTTP 503".to_owned(),
                    },
                    "billing",
                    "http",
                ),
            ),
            (
                "recovered",
                render(Alert::Recovered { released: 3 }, "billing", "http"),
            ),
            (
                "delivery_failed",
                render(
                    Alert::DeliveryFailed {
                        delivery_id: delivery.clone(),
                        error: Some(
                            "HTTP 400 invalid_request_error: This routine is paused.".to_owned(),
                        ),
                    },
                    "triage",
                    "routine",
                ),
            ),
            (
                "unknown_outcome",
                render(
                    Alert::UnknownOutcome {
                        delivery_id: delivery,
                        error: Some("no answer within 30 s".to_owned()),
                    },
                    "triage",
                    "routine",
                ),
            ),
            (
                "source_rejecting",
                render(
                    Alert::SourceRejecting {
                        source_id: source.clone(),
                        count: 25,
                        reason: "no signature matched".to_owned(),
                    },
                    "acme/api",
                    "",
                ),
            ),
            (
                "source_quiet",
                render(
                    Alert::SourceQuiet {
                        source_id: source.clone(),
                        minutes: 60,
                        last_event_at: "2026-12-05T08:00:00Z".parse().unwrap(),
                    },
                    "agents",
                    "",
                ),
            ),
            (
                "source_flowing",
                render(
                    Alert::SourceFlowing {
                        source_id: source.clone(),
                        quiet_since: "2026-12-05T09:00:00Z".parse().unwrap(),
                    },
                    "agents",
                    "",
                ),
            ),
            (
                "anthropic_key",
                render(
                    Alert::AnthropicKey {
                        workspace: None,
                        reason:
                            "Anthropic answered HTTP 401 authentication_error: invalid x-api-key"
                                .to_owned(),
                    },
                    "The team's Anthropic API key",
                    "",
                ),
            ),
        ];
        for (name, text) in cases {
            insta::assert_snapshot!(name, text);
        }
    }
}
