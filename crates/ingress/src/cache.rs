//! The source cache: ingest token → source, opened secrets and compiled routes. Filled
//! on first use; emptied whenever configuration changes (Postgres `NOTIFY
//! switchyard_config`, sent by triggers on the configuration tables); a 30 s TTL bounds
//! staleness if a notification is missed while the listener reconnects.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use switchyard_domain::StoreError;
use switchyard_domain::routing::CompiledRoute;
use switchyard_domain::secrets::SecretKey;
use switchyard_domain::store::sources::{self, IngestConfig};

/// A source as the hot path uses it. No `Debug`: it holds opened secrets.
pub struct CachedSource {
    pub config: IngestConfig,
    pub secrets: Vec<Vec<u8>>,
    pub routes: Vec<CompiledRoute>,
}

/// When an entry was loaded, and the source (`None`: no source has that token).
type Entry = (Instant, Option<Arc<CachedSource>>);

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// Bumped by every clear, so a load that raced a configuration change is not cached.
    generation: u64,
}

pub struct SourceCache {
    pool: PgPool,
    key: SecretKey,
    ttl: Duration,
    entries: RwLock<Entries>,
}

impl SourceCache {
    pub fn start(pool: PgPool, key: SecretKey, ttl: Duration) -> Arc<Self> {
        let cache = Arc::new(SourceCache {
            pool,
            key,
            ttl,
            entries: RwLock::default(),
        });
        tokio::spawn(listen(Arc::downgrade(&cache)));
        cache
    }

    /// The source behind `token`, `None` for an unknown token (cached too, so a flood of
    /// bad tokens costs one query each per TTL).
    pub async fn get(&self, token: &str) -> Result<Option<Arc<CachedSource>>, StoreError> {
        let generation = {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            match entries.map.get(token) {
                Some((at, hit)) if at.elapsed() < self.ttl => return Ok(hit.clone()),
                _ => entries.generation,
            }
        };
        let mut conn = self.pool.acquire().await?;
        let loaded = sources::find_for_ingest(&mut conn, token).await?;
        let entry = loaded.map(|config| Arc::new(self.compile(config)));
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.generation == generation {
            if entries.map.len() > 100_000 {
                entries.map.clear();
            }
            entries
                .map
                .insert(token.to_owned(), (Instant::now(), entry.clone()));
        }
        Ok(entry)
    }

    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.map.clear();
        entries.generation += 1;
    }

    fn compile(&self, config: IngestConfig) -> CachedSource {
        let secrets = config
            .sealed_secrets
            .iter()
            .filter_map(|sealed| match self.key.open(sealed) {
                Ok(secret) => Some(secret),
                Err(e) => {
                    tracing::error!(source = %config.source.id, error = %e, "cannot open source secret");
                    None
                }
            })
            .collect();
        let routes = config.compiled_routes();
        for route in &routes {
            if let Err(reason) = &route.rule {
                tracing::warn!(route = %route.route_id, %reason, "route is broken: its deliveries fail until it is mended");
            }
        }
        CachedSource {
            config,
            secrets,
            routes,
        }
    }
}

async fn listen(cache: std::sync::Weak<SourceCache>) {
    loop {
        let Some(pool) = cache.upgrade().map(|c| c.pool.clone()) else {
            return;
        };
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen("switchyard_config").await.is_ok() {
                    // Anything cached before the listener was up may be stale.
                    if let Some(c) = cache.upgrade() {
                        c.clear();
                    }
                    // `try_recv` says when the connection dropped (`Ok(None)`): changes
                    // made while it was down were missed, so that clears the cache too.
                    while let Ok(_notification_or_reconnect) = listener.try_recv().await {
                        match cache.upgrade() {
                            Some(c) => c.clear(),
                            None => return,
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "config listener cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Whether `token` could be an ingest token: 32 random bytes, URL-safe base64.
pub fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
