//! The application layer: what a person or an API client can do to a team's
//! configuration, one module per resource and one function per use case. Each takes the
//! team's [`Scope`] and a typed command, applies every rule, writes through the store in
//! one transaction with its audit record, and answers with a typed result or an
//! [`AppError`]. The JSON API and the dashboard both call it and say no each in their own
//! way; neither holds a rule of its own.

pub mod deliveries;
pub mod destinations;
mod error;
pub mod events;
mod flat;
pub mod integrations;
pub mod previews;
pub mod recipes;
pub mod replays;
pub mod routes;
pub mod sources;

pub use error::{AppError, FieldError, Invalid};
pub use flat::NothingElse;

use sqlx::PgPool;

use crate::StoreError;
use crate::ids::TeamId;
use crate::netguard::Policy;
use crate::secrets::SecretKey;

/// Who acts on which team: every use case runs in one.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub pool: &'a PgPool,
    /// Seals the secrets a command carries.
    pub key: &'a SecretKey,
    /// Which addresses a destination may point at.
    pub policy: Policy,
    pub team: &'a TeamId,
    /// Who the audit log names: a member's email or an API key's name.
    pub actor: &'a str,
    /// The dashboard's public URL, for the links routes render.
    pub public_url: &'a str,
}

/// Runs a use case on a transaction it never commits: every rule is checked as the real
/// thing checks it, and nothing is written. A form whose other fields did not even parse
/// uses it to show every mistake at once.
pub(crate) async fn dry_run<T>(
    scope: Scope<'_>,
    use_case: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<T, AppError>,
) -> Result<(), AppError> {
    let mut tx = scope.pool.begin().await?;
    use_case(&mut tx).await?;
    tx.rollback().await?;
    Ok(())
}

impl Scope<'_> {
    /// Notes in the team's audit log that this actor did `action` to `target`.
    pub async fn audit(
        &self,
        db: impl sqlx::PgExecutor<'_>,
        action: &str,
        target: &str,
    ) -> Result<(), StoreError> {
        crate::store::audit::record(db, self.team, self.actor, action, target).await
    }
}
