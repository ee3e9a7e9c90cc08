//! Where the control plane reads. Lists, search, charts and the API's GETs go to the read
//! database (`SWITCHYARD_READ_DATABASE_URL`, a replica) when there is one; writes, and
//! every read a write decides on, stay on the primary. A client never reads older data
//! than it wrote: each write remembers the primary's WAL position (an API key in
//! `api_keys.wrote_lsn`, a browser in a cookie), and a read by that client goes to the
//! replica only once the replica has replayed that position, to the primary before.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;

use switchyard_domain::StoreError;

use crate::WebState;

/// The cookie holding a browser's last write position.
pub const WROTE_COOKIE: &str = "sy_wrote";

/// The primary, and the read database when it is another.
#[derive(Clone)]
pub struct Reads {
    primary: PgPool,
    replica: Option<Replica>,
}

#[derive(Clone)]
struct Replica {
    pool: PgPool,
    /// Whether it answered the last check ([`Reads::watch`]): while it does not, every
    /// read goes to the primary.
    up: Arc<AtomicBool>,
}

/// The longest a question to the replica may take before the primary is read instead.
const ASK_WITHIN: Duration = Duration::from_millis(500);

impl Reads {
    /// Reads on `replica` when given, else on `primary`.
    pub fn new(primary: PgPool, replica: Option<PgPool>) -> Reads {
        let replica = replica.map(|pool| Replica {
            pool,
            up: Arc::new(AtomicBool::new(true)),
        });
        Reads { primary, replica }
    }

    /// Where a client whose last write was at WAL position `wrote` reads: the replica,
    /// unless it is down or has not replayed that position yet.
    pub async fn pool(&self, wrote: Option<&str>) -> &PgPool {
        let Some(replica) = self
            .replica
            .as_ref()
            .filter(|r| r.up.load(Ordering::Relaxed))
        else {
            if self.replica.is_some() {
                on_primary("down");
            }
            return &self.primary;
        };
        let Some(position) = wrote else {
            return &replica.pool;
        };
        // A server that is not replaying anything is itself up to date.
        let asked = sqlx::query_scalar::<_, bool>(
            "SELECT NOT pg_is_in_recovery()
                    OR coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)",
        )
        .bind(position)
        .fetch_one(&replica.pool);
        match tokio::time::timeout(ASK_WITHIN, asked).await {
            Ok(Ok(true)) => &replica.pool,
            Ok(Ok(false)) => {
                on_primary("behind");
                &self.primary
            }
            _ => {
                on_primary("unanswered");
                &self.primary
            }
        }
    }

    /// The primary, for a read that found nothing on the replica: an id made by someone
    /// else (an event ingress just stored) may not have reached it yet.
    pub fn primary_after_miss(&self, read_from: &PgPool) -> Option<&PgPool> {
        let replica = self.replica.as_ref()?;
        std::ptr::eq(read_from, &replica.pool).then_some(&self.primary)
    }

    /// Whether reads go to a database other than the primary.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// How far the read database is behind the primary, in seconds: 0 when it has
    /// replayed everything the primary wrote, else how long ago the last transaction it
    /// replayed committed (which keeps growing when streaming stops). `None` without a
    /// replica, or when either server cannot be asked.
    pub async fn lag(&self) -> Option<f64> {
        let replica = self.replica.as_ref()?;
        let asked = async {
            let primary: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
                .fetch_one(&self.primary)
                .await?;
            sqlx::query_scalar::<_, Option<f64>>(
                "SELECT CASE WHEN NOT pg_is_in_recovery()
                                  OR pg_last_wal_replay_lsn() >= $1::pg_lsn THEN 0
                             ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
                        END",
            )
            .bind(primary)
            .fetch_one(&replica.pool)
            .await
        };
        match tokio::time::timeout(Duration::from_secs(2), asked).await {
            // No transaction replayed yet: as far behind as can be said, which is unknown.
            Ok(Ok(lag)) => Some(lag.unwrap_or(f64::INFINITY)),
            _ => None,
        }
    }

    /// Checks the replica every five seconds: marks it up or down (reads go to the
    /// primary while it is down) and refreshes the `switchyard_read_replica_up` and
    /// `switchyard_read_replica_lag_seconds` gauges.
    pub async fn watch(self) {
        let Some(replica) = self.replica.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let lag = self.lag().await;
            let was_up = replica.up.swap(lag.is_some(), Ordering::Relaxed);
            if was_up != lag.is_some() {
                match lag {
                    Some(_) => tracing::info!("read database answers again: reading it"),
                    None => tracing::warn!("read database does not answer: reading the primary"),
                }
            }
            metrics::gauge!("switchyard_read_replica_up").set(if lag.is_some() {
                1.0
            } else {
                0.0
            });
            if let Some(lag) = lag {
                metrics::gauge!("switchyard_read_replica_lag_seconds").set(lag);
            }
        }
    }
}

fn on_primary(why: &'static str) {
    metrics::counter!("switchyard_reads_on_primary_total", "why" => why).increment(1);
}

/// The write position a browser's cookie holds, if any.
pub fn wrote_by_browser(req: &HttpRequest) -> Option<String> {
    req.cookie(WROTE_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| is_position(v))
}

/// A WAL position as PostgreSQL prints one (`16/B374D848`).
fn is_position(value: &str) -> bool {
    value.split_once('/').is_some_and(|(high, low)| {
        [high, low].iter().all(|part| {
            (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_hexdigit())
        })
    })
}

/// The primary's current WAL insert position: past every commit made before, whatever
/// `synchronous_commit` says.
async fn position(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar::<_, String>("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(pool)
        .await
        .ok()
}

/// Whether a request may have written: anything but a read.
fn writes(req: &ServiceRequest) -> bool {
    !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware for the dashboard: after a change went through, the browser keeps the
/// write's position for a while, so the page it is sent to next reads what it wrote.
/// Only with a replica; the position is no secret, and a forged one only sends the
/// browser's reads to the primary.
pub async fn remember_browser_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let watched = writes(&req);
    let state = req.app_data::<web::Data<WebState>>().cloned();
    let mut res = next.call(req).await?.map_into_boxed_body();
    let Some(state) = state.filter(|s| watched && s.reads.has_replica()) else {
        return Ok(res);
    };
    if res.status().is_client_error() || res.status().is_server_error() {
        return Ok(res);
    }
    if let Some(position) = position(&state.pool).await {
        let cookie = Cookie::build(WROTE_COOKIE, position)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(state.secure_cookies())
            .max_age(time::Duration::minutes(10))
            .finish();
        res.response_mut().add_cookie(&cookie)?;
    }
    Ok(res)
}

/// After an API write went through, notes its position on the key that made it.
pub(crate) async fn remember_key_write(state: &WebState, method: &Method, key: &str) {
    if !state.reads.has_replica() || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
    {
        return;
    }
    let noted = switchyard_domain::store::api_keys::note_write(&state.pool, key).await;
    if let Err(e) = noted {
        tracing::warn!(error = %e, "could not note the API key's write position");
    }
}

/// The write position of the request's client: set by authentication for an API key,
/// read from the cookie for a browser.
#[derive(Debug, Clone, Default)]
pub struct Wrote(pub Option<String>);

impl Wrote {
    /// Where this client reads.
    pub async fn pool<'a>(&self, state: &'a WebState) -> &'a PgPool {
        state.reads.pool(self.0.as_deref()).await
    }

    /// Reads one thing by id where this client reads; one the replica does not have
    /// (yet) is looked for on the primary, so a fresh id made by someone else (an event
    /// ingress just stored) is never a 404.
    pub async fn find<T, F, Fut>(&self, state: &WebState, read: F) -> Result<T, StoreError>
    where
        F: Fn(PgPool) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let db = self.pool(state).await;
        match read(db.clone()).await {
            Err(StoreError::NotFound) => match state.reads.primary_after_miss(db) {
                Some(primary) => read(primary.clone()).await,
                None => Err(StoreError::NotFound),
            },
            other => other,
        }
    }
}

impl actix_web::FromRequest for Wrote {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        // Reading the cookie borrows the extensions again: the first borrow ends first.
        let set = req.extensions().get::<Wrote>().cloned();
        let wrote = set.unwrap_or_else(|| Wrote(wrote_by_browser(req)));
        std::future::ready(Ok(wrote))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wal_positions_are_read_from_the_cookie() {
        assert!(is_position("16/B374D848"));
        assert!(is_position("0/0"));
        assert!(!is_position("16/B374D848; DROP"));
        assert!(!is_position("/1"));
        assert!(!is_position("123456789/1"));
        assert!(!is_position("x"));
    }
}
