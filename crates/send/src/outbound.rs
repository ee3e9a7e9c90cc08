//! The one outbound HTTP client. It resolves names itself and refuses any address the
//! SSRF policy forbids (so a DNS answer cannot point a destination at the metadata
//! service), follows no redirects, bounds connect and total time, and keeps at most
//! 64 KiB of an answer (more for a client that reads whole API answers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use switchyard_domain::delivery::{Outcome, parse_retry_after};
use switchyard_domain::netguard::{Policy, Refusal};

/// The most of a response body that is read and stored.
pub const RESPONSE_CAP: usize = 64 * 1024;

#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    policy: Policy,
    /// The most of an answer that is read.
    cap: usize,
}

/// What a send came to, with what is worth storing on the attempt.
#[derive(Debug, Clone)]
pub struct Sent {
    pub outcome: Outcome,
    pub duration: Duration,
    pub status: Option<u16>,
    pub excerpt: Option<String>,
    pub error: Option<String>,
}

impl Outbound {
    /// `timeout` bounds a whole send, answer included (30 s in production).
    pub fn new(policy: Policy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect on our behalf, past the address checks.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("Switchyard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Outbound {
            client,
            policy,
            cap: RESPONSE_CAP,
        })
    }

    /// The same client reading up to `cap` bytes of each answer.
    pub fn reading_up_to(self, cap: usize) -> Outbound {
        Outbound { cap, ..self }
    }

    /// Sends a POST. Never fails: every way a send can go wrong is an `Outcome`.
    pub async fn post(&self, url: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Sent {
        self.send(reqwest::Method::POST, url, headers, body).await
    }

    /// Sends a request. Never fails: every way a send can go wrong is an `Outcome`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Sent {
        let started = Instant::now();
        let url = match reqwest::Url::parse(url) {
            Ok(url) => url,
            Err(e) => return refused(started, format!("invalid URL: {e}")),
        };
        if let Err(refusal) = self.policy.check_url(&url) {
            return refused(started, refusal.to_string());
        }
        let mut request = self.client.request(method, url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return failed(started, &e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let excerpt = read_capped(response, self.cap).await;
        Sent {
            outcome: Outcome::Response {
                status,
                retry_after,
            },
            duration: started.elapsed(),
            status: Some(status),
            excerpt: Some(excerpt),
            error: None,
        }
    }
}

async fn read_capped(response: reqwest::Response, cap: usize) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    printable(&String::from_utf8_lossy(&body))
}

/// Text PostgreSQL can store: no NUL characters (a binary answer has them).
fn printable(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

fn refused(started: Instant, error: String) -> Sent {
    Sent {
        duration: started.elapsed(),
        ..Sent::refused(error)
    }
}

impl Sent {
    /// A send that was not attempted because it never could succeed.
    pub fn refused(error: String) -> Sent {
        Sent {
            outcome: Outcome::Refused {
                error: error.clone(),
            },
            duration: Duration::ZERO,
            status: None,
            excerpt: None,
            error: Some(error),
        }
    }
}

fn failed(started: Instant, e: &reqwest::Error) -> Sent {
    let error = describe(e);
    let outcome = if let Some(refusal) = find_refusal(e) {
        Outcome::Refused {
            error: refusal.to_string(),
        }
    } else if e.is_connect() {
        Outcome::NotSent {
            error: error.clone(),
        }
    } else {
        // Timed out or dropped after the request may have gone out.
        Outcome::NoResponse {
            error: error.clone(),
        }
    };
    let error = match &outcome {
        Outcome::Refused { error } => error.clone(),
        _ => error,
    };
    Sent {
        outcome,
        duration: started.elapsed(),
        status: None,
        excerpt: None,
        error: Some(error),
    }
}

/// The error and its causes on one line, without the URL (it may hold a secret path).
fn describe(e: &reqwest::Error) -> String {
    let mut parts = vec![if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    }];
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.dedup();
    printable(&parts.join(": "))
}

fn find_refusal(e: &reqwest::Error) -> Option<&Refusal> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        source = cause.source();
    }
    None
}

struct GuardedResolver {
    policy: Policy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.allowed(addr.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refusal = Some(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(refusal)) => {
                    Err(Box::new(refusal) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_refused() {
        let resolver = GuardedResolver {
            policy: Policy::default(),
        };
        let err = match resolver.resolve(Name::from_str("localhost").unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<Refusal>().is_some(), "{err}");
    }

    #[tokio::test]
    async fn allow_private_lets_loopback_through() {
        let resolver = GuardedResolver {
            policy: Policy {
                allow_private: true,
            },
        };
        let addrs: Vec<_> = resolver
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
