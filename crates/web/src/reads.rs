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
use sqlx::PgPool;

use crate::WebState;

/// The cookie holding a browser's last write position.
pub const WROTE_COOKIE: &str = "sy_wrote";

/// The primary, and the read database when it is another.
#[derive(Clone)]
pub struct Reads {
    primary: PgPool,
    replica: Option<PgPool>,
}

impl Reads {
    /// Reads on `replica` when given, else on `primary`.
    pub fn new(primary: PgPool, replica: Option<PgPool>) -> Reads {
        Reads { primary, replica }
    }

    /// Where a client whose last write was at WAL position `wrote` reads.
    pub async fn pool(&self, wrote: Option<&str>) -> &PgPool {
        let Some(replica) = &self.replica else {
            return &self.primary;
        };
        let Some(position) = wrote else {
            return replica;
        };
        // A server that is not replaying anything is itself up to date.
        let caught_up = sqlx::query_scalar::<_, bool>(
            "SELECT NOT pg_is_in_recovery()
                    OR coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)",
        )
        .bind(position)
        .fetch_one(replica)
        .await;
        match caught_up {
            Ok(true) => replica,
            Ok(false) => {
                metrics::counter!("switchyard_reads_on_primary_total", "why" => "behind")
                    .increment(1);
                &self.primary
            }
            Err(e) => {
                tracing::debug!(error = %e, "read database unreadable; reading the primary");
                metrics::counter!("switchyard_reads_on_primary_total", "why" => "unreachable")
                    .increment(1);
                &self.primary
            }
        }
    }

    /// Whether reads go to a database other than the primary.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// How far the read database is behind the primary, in seconds: how long ago the
    /// last transaction it replayed committed (0 when it is not replaying anything).
    /// `None` without a replica, or when it cannot be asked.
    pub async fn lag(&self) -> Option<f64> {
        let replica = self.replica.as_ref()?;
        sqlx::query_scalar::<_, f64>(
            "SELECT CASE WHEN pg_is_in_recovery() AND pg_last_wal_receive_lsn() IS DISTINCT FROM
                              pg_last_wal_replay_lsn()
                         THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
                         ELSE 0 END",
        )
        .fetch_one(replica)
        .await
        .ok()
    }
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

/// The primary's current WAL position: at or past every commit made before.
async fn position(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar::<_, String>("SELECT pg_current_wal_lsn()::text")
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
