//! Account emails, rendered here and queued in the caller's transaction. The text holds
//! a single-use link, so it is sealed before it reaches the queue's table.

use askama::Template;
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use sqlx::PgConnection;
use switchyard_domain::store::queue::{self, MailTask};

use super::error::PageError;
use crate::WebState;

#[derive(Template)]
#[template(path = "email/verify.txt")]
struct Verify<'a> {
    email: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "email/reset.txt")]
struct Reset<'a> {
    email: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "email/invite.txt")]
struct Invite<'a> {
    inviter: &'a str,
    team: &'a str,
    role: &'a str,
    link: &'a str,
}

/// Queues one email of plain text to `to`.
pub async fn push(
    tx: &mut PgConnection,
    state: &WebState,
    to: &str,
    subject: String,
    text: String,
) -> Result<(), PageError> {
    let task = MailTask {
        to: to.to_owned(),
        subject,
        sealed_text: BASE64_STANDARD.encode(state.key.seal(text.as_bytes())),
    };
    queue::push_mail(tx, &task).await?;
    Ok(())
}

pub async fn verify_email(
    tx: &mut PgConnection,
    state: &WebState,
    email: &str,
    token: &str,
) -> Result<(), PageError> {
    let link = format!("{}/verify-email/{token}", state.public_url);
    let text = Verify { email, link: &link }.render()?;
    push(
        tx,
        state,
        email,
        "Confirm your email for Switchyard".to_owned(),
        text,
    )
    .await
}

pub async fn reset_password(
    tx: &mut PgConnection,
    state: &WebState,
    email: &str,
    token: &str,
) -> Result<(), PageError> {
    let link = format!("{}/password-reset/{token}", state.public_url);
    let text = Reset { email, link: &link }.render()?;
    push(
        tx,
        state,
        email,
        "Reset your Switchyard password".to_owned(),
        text,
    )
    .await
}

pub async fn invitation(
    tx: &mut PgConnection,
    state: &WebState,
    to: &str,
    inviter: &str,
    team: &str,
    role: &str,
    token: &str,
) -> Result<(), PageError> {
    let link = format!("{}/invitations/{token}", state.public_url);
    let text = Invite {
        inviter,
        team,
        role,
        link: &link,
    }
    .render()?;
    let subject = format!("Join {team} on Switchyard");
    push(tx, state, to, subject, text).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_emails_read_well() {
        let link = "https://switchyard.example/verify-email/t0k3n";
        insta::assert_snapshot!(
            "verify",
            Verify {
                email: "ada@example.com",
                link
            }
            .render()
            .unwrap()
        );
        let link = "https://switchyard.example/password-reset/t0k3n";
        insta::assert_snapshot!(
            "reset",
            Reset {
                email: "ada@example.com",
                link
            }
            .render()
            .unwrap()
        );
        let link = "https://switchyard.example/invitations/t0k3n";
        insta::assert_snapshot!(
            "invite",
            Invite {
                inviter: "ada@example.com",
                team: "Analytical Engines",
                role: "member",
                link
            }
            .render()
            .unwrap()
        );
    }
}
