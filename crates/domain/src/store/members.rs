//! Who belongs to a team and with what role; invitations to join one.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use crate::accounts::Role;
use crate::ids::{InvitationId, TeamId, UserId};
use crate::model::Team;
use crate::secrets::random_token;

/// How long an invitation link works.
pub const INVITATION_LIFETIME: Duration = Duration::days(7);

fn role_of(raw: &str) -> Result<Role, StoreError> {
    raw.parse().map_err(StoreError::Internal)
}

/// The team with `slug` and the person's role in it; `None` when there is no such team
/// or the person is not in it, which callers answer alike.
#[tracing::instrument(skip_all)]
pub async fn membership(
    db: impl PgExecutor<'_>,
    user: &UserId,
    slug: &str,
) -> Result<Option<(Team, Role)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        team: Team,
        role: String,
    }
    let row = sqlx::query_as::<_, Row>(
        "SELECT t.id, t.slug, t.name, t.retention_days, t.created_at, m.role
         FROM memberships m JOIN teams t ON t.id = m.team_id
         WHERE m.user_id = $1 AND t.slug = $2",
    )
    .bind(user)
    .bind(slug)
    .fetch_optional(db)
    .await?;
    row.map(|r| Ok((r.team, role_of(&r.role)?))).transpose()
}

#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub since: DateTime<Utc>,
}

#[tracing::instrument(skip_all)]
pub async fn list(db: impl PgExecutor<'_>, team: &TeamId) -> Result<Vec<Member>, StoreError> {
    let rows: Vec<(UserId, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT u.id, u.email, m.role, m.created_at FROM memberships m
         JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY u.email",
    )
    .bind(team)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(user_id, email, role, since)| {
            Ok(Member {
                user_id,
                email,
                role: role_of(&role)?,
                since,
            })
        })
        .collect()
}

/// Changes a member's role, or removes them with `None`. A team always keeps an owner:
/// taking away the last one is a `Conflict`, and so is changing an owner unless
/// `may_change_owners` (the one asking is an owner, or an owner leaving). `NotFound` when
/// the person is not a member.
#[tracing::instrument(skip_all)]
pub async fn change(
    tx: &mut PgConnection,
    team: &TeamId,
    user: &UserId,
    role: Option<Role>,
    may_change_owners: bool,
) -> Result<(), StoreError> {
    // Lock the team's owners so two demotions cannot each leave the other as the last.
    let owners: Vec<UserId> = sqlx::query_scalar(
        "SELECT user_id FROM memberships WHERE team_id = $1 AND role = 'owner' FOR UPDATE",
    )
    .bind(team)
    .fetch_all(&mut *tx)
    .await?;
    // Checked under the lock: someone promoted to owner a moment ago counts.
    if owners.contains(user) && !may_change_owners {
        return Err(StoreError::Conflict(
            "only an owner can change another owner".to_owned(),
        ));
    }
    if owners.len() == 1 && owners[0] == *user && role != Some(Role::Owner) {
        return Err(StoreError::Conflict(
            "a team needs an owner: make someone else owner first".to_owned(),
        ));
    }
    let done = match role {
        Some(role) => {
            sqlx::query("UPDATE memberships SET role = $3 WHERE team_id = $1 AND user_id = $2")
                .bind(team)
                .bind(user)
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM memberships WHERE team_id = $1 AND user_id = $2")
                .bind(team)
                .bind(user)
                .execute(&mut *tx)
                .await?
        }
    };
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Creates a team owned by `user`.
#[tracing::instrument(skip_all)]
pub async fn create_team(
    tx: &mut PgConnection,
    user: &UserId,
    name: &str,
) -> Result<Team, StoreError> {
    let team = super::teams::insert_unique(&mut *tx, name).await?;
    sqlx::query("INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(&team.id)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    Ok(team)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invitation {
    pub id: InvitationId,
    pub team_id: TeamId,
    pub email: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Invites `email` to the team with `role`, replacing a pending invitation to the same
/// address. Returns the invitation and its token: the only copy, for the email.
#[tracing::instrument(skip_all)]
pub async fn invite(
    tx: &mut PgConnection,
    team: &TeamId,
    email: &str,
    role: Role,
    invited_by: &UserId,
    now: DateTime<Utc>,
) -> Result<(Invitation, String), StoreError> {
    if role == Role::Owner {
        return Err(StoreError::Conflict(
            "invite as admin, then make them owner once they joined".to_owned(),
        ));
    }
    sqlx::query(
        "DELETE FROM invitations
         WHERE team_id = $1 AND lower(email) = lower($2) AND accepted_at IS NULL",
    )
    .bind(team)
    .bind(email)
    .execute(&mut *tx)
    .await?;
    let token = random_token(32);
    let invitation = sqlx::query_as::<_, Invitation>(
        "INSERT INTO invitations (id, team_id, email, role, token_hash, invited_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, team_id, email, role, created_at, expires_at",
    )
    .bind(InvitationId::generate())
    .bind(team)
    .bind(email)
    .bind(role.as_str())
    .bind(token_hash(&token))
    .bind(invited_by)
    .bind(now)
    .bind(now + INVITATION_LIFETIME)
    .fetch_one(&mut *tx)
    .await?;
    Ok((invitation, token))
}

/// The team's invitations that are neither accepted nor expired.
#[tracing::instrument(skip_all)]
pub async fn pending(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    now: DateTime<Utc>,
) -> Result<Vec<Invitation>, StoreError> {
    Ok(sqlx::query_as::<_, Invitation>(
        "SELECT id, team_id, email, role, created_at, expires_at FROM invitations
         WHERE team_id = $1 AND accepted_at IS NULL AND expires_at > $2
         ORDER BY created_at DESC",
    )
    .bind(team)
    .bind(now)
    .fetch_all(db)
    .await?)
}

#[tracing::instrument(skip_all)]
pub async fn revoke(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &InvitationId,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "DELETE FROM invitations WHERE team_id = $1 AND id = $2 AND accepted_at IS NULL",
    )
    .bind(team)
    .bind(id)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The invitation a token opens, with its team, while it is pending.
#[tracing::instrument(skip_all)]
pub async fn find_invitation(
    db: impl PgExecutor<'_>,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Invitation, Team)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        invitation: Invitation,
        slug: String,
        name: String,
        retention_days: i32,
        team_created_at: DateTime<Utc>,
    }
    let row = sqlx::query_as::<_, Row>(
        "SELECT i.id, i.team_id, i.email, i.role, i.created_at, i.expires_at,
                t.slug, t.name, t.retention_days, t.created_at AS team_created_at
         FROM invitations i JOIN teams t ON t.id = i.team_id
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2",
    )
    .bind(token_hash(token))
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let team = Team {
            id: r.invitation.team_id.clone(),
            slug: r.slug,
            name: r.name,
            retention_days: r.retention_days,
            created_at: r.team_created_at,
        };
        (r.invitation, team)
    }))
}

/// Accepts an invitation for `user`: they join with the invited role (someone already in
/// the team keeps the role they have). `None` when the token is no longer pending.
#[tracing::instrument(skip_all)]
pub async fn accept(
    tx: &mut PgConnection,
    token: &str,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<Option<Team>, StoreError> {
    let Some((invitation, team)) = find_invitation(&mut *tx, token, now).await? else {
        return Ok(None);
    };
    let accepted = sqlx::query(
        "UPDATE invitations SET accepted_at = $2 WHERE id = $1 AND accepted_at IS NULL",
    )
    .bind(&invitation.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if accepted.rows_affected() == 0 {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (team_id, user_id) DO NOTHING",
    )
    .bind(&team.id)
    .bind(user)
    .bind(&invitation.role)
    .execute(&mut *tx)
    .await?;
    Ok(Some(team))
}
