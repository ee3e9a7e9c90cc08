//! The data plane: `POST /hooks/{token}`. Verify, dedupe, match routes, and make the
//! event and its deliveries durable in one commit before answering; everything slow
//! happens later, in the worker. Built as an actix scope from `IngressState`, so the
//! binary and the tests assemble the same thing.

mod cache;
mod commit;
mod hooks;
mod rejections;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use sqlx::PgPool;
use switchyard_domain::secrets::SecretKey;

pub use cache::SourceCache;
pub use commit::Committer;

/// The largest body any source may accept.
pub const MAX_BODY_LIMIT: usize = 10 * 1024 * 1024;

#[derive(Clone)]
pub struct IngressState {
    pub cache: Arc<SourceCache>,
    pub committer: Committer,
    pub rejections: rejections::RejectionLog,
    /// `SWITCHYARD_PUBLIC_URL` without a trailing slash: the ingest URL a sender posts
    /// to is this plus the request's path and query.
    pub public_base: Arc<str>,
}

impl IngressState {
    /// Starts the source cache's change listener and the group committers on the
    /// current runtime. `pool` should have a short acquire timeout: a request waits at
    /// most that long before answering 503.
    pub fn start(pool: PgPool, key: SecretKey, committers: usize, public_base: &str) -> Self {
        let cache = SourceCache::start(pool.clone(), key, Duration::from_secs(30));
        let claimers = wake::Claimers::start(pool.clone());
        let committer = Committer::start(pool.clone(), committers, claimers);
        let rejections = rejections::RejectionLog::start(pool.clone());
        IngressState {
            cache,
            committer,
            rejections,
            public_base: public_base.trim_end_matches('/').into(),
        }
    }
}

/// The routes of the data plane.
pub fn configure(state: IngressState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .route("/hooks/{token}", web::post().to(hooks::receive));
    }
}
