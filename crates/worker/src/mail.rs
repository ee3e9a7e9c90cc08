//! Email out, over SMTP (`SWITCHYARD_SMTP_URL`: `smtps://` for TLS, `smtp://…?tls=required`
//! for STARTTLS, credentials in the URL). Every send becomes an `Outcome` the retry
//! policy understands: 4xx replies are worth retrying, 5xx replies are not, a connection
//! that fails is retried, and a missing SMTP configuration fails with that reason.

use std::time::{Duration, Instant};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use switchyard_domain::delivery::Outcome;

pub use switchyard_send::Email;
use switchyard_send::Sent;

#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    /// The most one send may take in all (the transport's own timeout is per command).
    timeout: Duration,
}

pub const NOT_CONFIGURED: &str = "SMTP not configured (set SWITCHYARD_SMTP_URL)";

impl Mailer {
    /// `url` None: every send fails with [`NOT_CONFIGURED`]. `timeout` bounds a whole
    /// send, as the HTTP client's does.
    pub fn new(url: Option<&str>, from: &str, timeout: Duration) -> Result<Mailer, String> {
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| format!("SWITCHYARD_SMTP_FROM is not an address: {e}"))?;
        let transport = url
            .map(|url| {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map(|builder| builder.timeout(Some(timeout)).build())
                    .map_err(|e| format!("SWITCHYARD_SMTP_URL is not usable: {e}"))
            })
            .transpose()?;
        Ok(Mailer {
            transport,
            from,
            timeout,
        })
    }

    pub fn is_configured(&self) -> bool {
        self.transport.is_some()
    }

    /// Sends `email`. Never fails: every way a send can go wrong is an `Outcome`.
    pub async fn send(&self, email: &Email) -> Sent {
        let started = Instant::now();
        let Some(transport) = &self.transport else {
            return Sent::refused(NOT_CONFIGURED.to_owned());
        };
        let message = match self.message(email) {
            Ok(message) => message,
            Err(e) => return Sent::refused(e),
        };
        let outcome = match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(response)) => Ok(u16::from(response.code())),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let error = "the SMTP server did not finish in time".to_owned();
                return Sent {
                    outcome: Outcome::NoResponse {
                        error: error.clone(),
                    },
                    duration: started.elapsed(),
                    status: None,
                    excerpt: None,
                    error: Some(error),
                };
            }
        };
        let duration = started.elapsed();
        match outcome {
            Ok(code) => Sent {
                outcome: Outcome::Response {
                    status: code,
                    retry_after: None,
                },
                duration,
                status: Some(code),
                excerpt: None,
                error: None,
            },
            Err(e) => failed(duration, &e),
        }
    }

    fn message(&self, email: &Email) -> Result<Message, String> {
        // Relays may add a Message-ID, but not all do, and mail without one is scored as
        // spam; lettre adds the Date.
        let id = format!(
            "<{}@{}>",
            switchyard_domain::secrets::random_token(24),
            self.from.email.domain()
        );
        let mut builder = Message::builder()
            .from(self.from.clone())
            .message_id(Some(id))
            .date_now()
            .subject(&email.subject);
        for to in &email.to {
            let mailbox = to
                .parse::<Mailbox>()
                .map_err(|e| format!("{to} is not an email address: {e}"))?;
            builder = builder.to(mailbox);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| format!("the email could not be built: {e}"))
    }
}

fn failed(duration: Duration, e: &SmtpError) -> Sent {
    let error = e.to_string();
    let code = e.status().map(u16::from);
    let outcome = match code {
        // The server answered: 4xx is transient, 5xx permanent, as the policy reads them.
        Some(status) => Outcome::Response {
            status,
            retry_after: None,
        },
        // Could not connect, TLS failed, or the connection dropped: send again.
        None => Outcome::NotSent {
            error: error.clone(),
        },
    };
    Sent {
        outcome,
        duration,
        status: code,
        excerpt: None,
        error: Some(error),
    }
}
