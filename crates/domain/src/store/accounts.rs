//! Accounts: signing up (a person, their first team, their ownership of it) and
//! server-side sessions.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use super::teams;
use crate::ids::{TeamId, UserId};
use crate::model::Team;
use crate::secrets::random_token;

/// A session unused this long has ended.
pub const IDLE_EXPIRY: Duration = Duration::days(14);
/// How stale `last_seen_at` may get before a request refreshes it: one write per
/// session per minute at most, not one per page.
const TOUCH_EVERY: Duration = Duration::minutes(1);

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub email: String,
    #[sqlx(default)]
    pub password_hash: Option<String>,
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// Creates a person with their first team, which they own. `Conflict` when the address
/// is taken (compared without case).
#[tracing::instrument(skip_all)]
pub async fn sign_up(
    tx: &mut PgConnection,
    email: &str,
    password_hash: &str,
    team_name: &str,
) -> Result<(User, Team), StoreError> {
    let user = sqlx::query_as::<_, User>(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING
         RETURNING id, email, password_hash, email_verified_at",
    )
    .bind(UserId::generate())
    .bind(email)
    .bind(password_hash)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::Conflict("an account with this email exists".to_owned()))?;
    let team = teams::insert_unique(&mut *tx, team_name).await?;
    sqlx::query("INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(&team.id)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    Ok((user, team))
}

#[tracing::instrument(skip_all)]
pub async fn find_by_email(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<User>, StoreError> {
    Ok(sqlx::query_as::<_, User>(
        "SELECT id, email, password_hash, email_verified_at FROM users
         WHERE lower(email) = lower($1)",
    )
    .bind(email)
    .fetch_optional(db)
    .await?)
}

/// The teams a person belongs to, with their role in each, by name.
#[tracing::instrument(skip_all)]
pub async fn teams_of(
    db: impl PgExecutor<'_>,
    user: &UserId,
) -> Result<Vec<(TeamId, String, String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.slug, t.name, m.role FROM memberships m JOIN teams t ON t.id = m.team_id
         WHERE m.user_id = $1 ORDER BY t.name",
    )
    .bind(user)
    .fetch_all(db)
    .await?)
}

/// A signed-in browser: the token for its cookie (shown once, never stored) and the
/// session's CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[tracing::instrument(skip_all)]
pub async fn start_session(
    db: impl PgExecutor<'_>,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<NewSession, StoreError> {
    let session = NewSession {
        token: random_token(32),
        csrf_token: random_token(24),
    };
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(token_hash(&session.token))
    .bind(user)
    .bind(&session.csrf_token)
    .bind(now)
    .execute(db)
    .await?;
    Ok(session)
}

/// Who a session token signs in, and the session's CSRF token; none when the token is
/// unknown or the session sat idle past [`IDLE_EXPIRY`]. Using a session keeps it alive.
#[tracing::instrument(skip_all)]
pub async fn session_user(
    db: &mut PgConnection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<(User, String)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        csrf_token: String,
        last_seen_at: DateTime<Utc>,
    }
    let hash = token_hash(token);
    let row = sqlx::query_as::<_, Row>(
        "SELECT u.id, u.email, u.password_hash, u.email_verified_at, s.csrf_token, s.last_seen_at
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.last_seen_at > $2",
    )
    .bind(&hash)
    .bind(now - IDLE_EXPIRY)
    .fetch_optional(&mut *db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if now - row.last_seen_at > TOUCH_EVERY {
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind(&hash)
            .bind(now)
            .execute(&mut *db)
            .await?;
    }
    Ok(Some((row.user, row.csrf_token)))
}

/// Ends one session (log out).
#[tracing::instrument(skip_all)]
pub async fn end_session(db: impl PgExecutor<'_>, token: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(token_hash(token))
        .execute(db)
        .await?;
    Ok(())
}

/// Ends every session of a person (log out everywhere; a password change).
#[tracing::instrument(skip_all)]
pub async fn end_all_sessions(db: impl PgExecutor<'_>, user: &UserId) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user)
        .execute(db)
        .await?
        .rows_affected())
}

/// Deletes sessions idle past their expiry. The system's own upkeep.
#[tracing::instrument(skip_all)]
pub async fn prune_sessions(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM sessions WHERE last_seen_at <= $1")
        .bind(now - IDLE_EXPIRY)
        .execute(db)
        .await?
        .rows_affected())
}
