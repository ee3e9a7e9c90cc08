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

/// What a mailed link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    VerifyEmail,
    ResetPassword,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail => "verify_email",
            LinkPurpose::ResetPassword => "reset_password",
        }
    }

    /// How long a link works.
    pub fn lifetime(self) -> Duration {
        match self {
            LinkPurpose::VerifyEmail => Duration::days(7),
            LinkPurpose::ResetPassword => Duration::hours(1),
        }
    }
}

/// Makes a single-use link token for `user` and returns it: the only copy.
#[tracing::instrument(skip_all)]
pub async fn create_link(
    db: impl PgExecutor<'_>,
    user: &UserId,
    purpose: LinkPurpose,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let token = random_token(32);
    sqlx::query(
        "INSERT INTO account_links (token_hash, user_id, purpose, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(user)
    .bind(purpose.as_str())
    .bind(now)
    .bind(now + purpose.lifetime())
    .execute(db)
    .await?;
    Ok(token)
}

/// The person a link is for, if the token is one of `purpose`'s, unused and unexpired.
/// Does not use it up.
#[tracing::instrument(skip_all)]
pub async fn peek_link(
    db: impl PgExecutor<'_>,
    token: &str,
    purpose: LinkPurpose,
    now: DateTime<Utc>,
) -> Result<Option<User>, StoreError> {
    Ok(sqlx::query_as::<_, User>(
        "SELECT u.id, u.email, u.password_hash, u.email_verified_at
         FROM account_links l JOIN users u ON u.id = l.user_id
         WHERE l.token_hash = $1 AND l.purpose = $2 AND l.used_at IS NULL AND l.expires_at > $3",
    )
    .bind(token_hash(token))
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(db)
    .await?)
}

/// Uses a link up and returns its person; `None` when it is unknown, used or expired.
/// Using one reset link retires the person's other links of that purpose.
#[tracing::instrument(skip_all)]
pub async fn use_link(
    tx: &mut PgConnection,
    token: &str,
    purpose: LinkPurpose,
    now: DateTime<Utc>,
) -> Result<Option<UserId>, StoreError> {
    let user: Option<UserId> = sqlx::query_scalar(
        "UPDATE account_links SET used_at = $3
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
         RETURNING user_id",
    )
    .bind(token_hash(token))
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(user) = &user {
        sqlx::query(
            "UPDATE account_links SET used_at = $3
             WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        )
        .bind(user)
        .bind(purpose.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(user)
}

#[tracing::instrument(skip_all)]
pub async fn mark_verified(
    db: impl PgExecutor<'_>,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, $2) WHERE id = $1",
    )
    .bind(user)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Sets a new password. The caller ends the person's sessions in the same transaction.
#[tracing::instrument(skip_all)]
pub async fn set_password(
    db: impl PgExecutor<'_>,
    user: &UserId,
    password_hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user)
        .bind(password_hash)
        .execute(db)
        .await?;
    Ok(())
}

/// Creates a person invited by email who has no account yet, with the password they
/// chose; `Conflict` when the address is taken.
#[tracing::instrument(skip_all)]
pub async fn create_user(
    db: impl PgExecutor<'_>,
    email: &str,
    password_hash: &str,
    verified_at: Option<DateTime<Utc>>,
) -> Result<User, StoreError> {
    sqlx::query_as::<_, User>(
        "INSERT INTO users (id, email, password_hash, email_verified_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING
         RETURNING id, email, password_hash, email_verified_at",
    )
    .bind(UserId::generate())
    .bind(email)
    .bind(password_hash)
    .bind(verified_at)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| StoreError::Conflict("an account with this email exists".to_owned()))
}
