//! Flashes: what a page shows once after a form's redirect, sealed by the caller. One is
//! taken (read and deleted) by the user it was made for, before it expires.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreError;
use crate::ids::UserId;
use crate::secrets::random_token;

/// Keeps `sealed` for `user` until `expires_at`; returns the id to take it by. Expired
/// flashes go at the same time.
#[tracing::instrument(skip_all)]
pub async fn put(
    conn: &mut PgConnection,
    user: &UserId,
    sealed: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<String, StoreError> {
    sqlx::query("DELETE FROM flashes WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let id = random_token(24);
    sqlx::query("INSERT INTO flashes (id, user_id, sealed, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(user)
        .bind(sealed)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// The flash `id` made for `user`, deleted as it is read; none once taken or expired.
#[tracing::instrument(skip_all)]
pub async fn take(
    conn: &mut PgConnection,
    user: &UserId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar(
        "DELETE FROM flashes WHERE id = $1 AND user_id = $2 AND expires_at > $3
         RETURNING sealed",
    )
    .bind(id)
    .bind(user)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The viewer's live flash `id`, left in place (what a kept form is read from until it
/// expires).
#[tracing::instrument(skip_all)]
pub async fn peek(
    conn: &mut PgConnection,
    user: &UserId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT sealed FROM flashes WHERE id = $1 AND user_id = $2 AND expires_at > $3",
    )
    .bind(id)
    .bind(user)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?)
}
