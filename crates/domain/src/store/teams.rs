//! Teams.

use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use crate::ids::{TeamId, UserId};
use crate::model::Team;

#[tracing::instrument(skip_all)]
pub async fn insert(db: impl PgExecutor<'_>, slug: &str, name: &str) -> Result<Team, StoreError> {
    Ok(sqlx::query_as::<_, Team>(
        "INSERT INTO teams (id, slug, name) VALUES ($1, $2, $3)
         RETURNING id, slug, name, retention_days, created_at",
    )
    .bind(TeamId::generate())
    .bind(slug)
    .bind(name)
    .fetch_one(db)
    .await?)
}

/// A team named `name` whose slug is derived from the name (`Acme Corp` → `acme-corp`),
/// with a number added when the slug is taken.
#[tracing::instrument(skip_all)]
pub async fn insert_unique(db: &mut PgConnection, name: &str) -> Result<Team, StoreError> {
    let base = slug_from(name);
    for n in 1..=50 {
        let slug = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let team = sqlx::query_as::<_, Team>(
            "INSERT INTO teams (id, slug, name) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING
             RETURNING id, slug, name, retention_days, created_at",
        )
        .bind(TeamId::generate())
        .bind(&slug)
        .bind(name)
        .fetch_optional(&mut *db)
        .await?;
        if let Some(team) = team {
            return Ok(team);
        }
    }
    Err(StoreError::Conflict(
        "no free slug for this team name".to_owned(),
    ))
}

/// Lower-case letters, digits and single dashes from a team's name, starting with a
/// letter, as `valid_slug` wants.
pub fn slug_from(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug
        .trim_matches('-')
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let mut slug: String = slug.trim_start_matches('-').chars().take(36).collect();
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.len() < 2 {
        slug = format!("team{slug}");
    }
    slug
}

#[tracing::instrument(skip_all)]
pub async fn get(db: impl PgExecutor<'_>, id: &TeamId) -> Result<Team, StoreError> {
    Ok(sqlx::query_as::<_, Team>(
        "SELECT id, slug, name, retention_days, created_at FROM teams WHERE id = $1",
    )
    .bind(id)
    .fetch_one(db)
    .await?)
}

#[tracing::instrument(skip_all)]
pub async fn find_by_slug(db: impl PgExecutor<'_>, slug: &str) -> Result<Team, StoreError> {
    Ok(sqlx::query_as::<_, Team>(
        "SELECT id, slug, name, retention_days, created_at FROM teams WHERE slug = $1",
    )
    .bind(slug)
    .fetch_one(db)
    .await?)
}

/// Adds the person with `email` to the team with `role` (`owner`, `admin`, `member` or
/// `viewer`), creating the user if there is none with that address yet.
#[tracing::instrument(skip_all)]
pub async fn add_member(
    db: &mut PgConnection,
    team: &TeamId,
    email: &str,
    role: &str,
) -> Result<UserId, StoreError> {
    let user: UserId = sqlx::query_scalar(
        "WITH found AS (SELECT id FROM users WHERE lower(email) = lower($2)),
              made AS (
                  INSERT INTO users (id, email) SELECT $1, $2
                  WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id
              )
         SELECT id FROM found UNION ALL SELECT id FROM made",
    )
    .bind(UserId::generate())
    .bind(email)
    .fetch_one(&mut *db)
    .await?;
    sqlx::query(
        "INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(team)
    .bind(&user)
    .bind(role)
    .execute(&mut *db)
    .await?;
    Ok(user)
}

/// The addresses of the team's owners and admins: who hears about its destinations.
#[tracing::instrument(skip_all)]
pub async fn admin_emails(
    db: impl PgExecutor<'_>,
    team: &TeamId,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.team_id = $1 AND m.role IN ('owner', 'admin') ORDER BY u.email",
    )
    .bind(team)
    .fetch_all(db)
    .await?)
}

/// A team slug: lower-case letters, digits and dashes, 2 to 40 long, starting with a letter.
pub fn valid_slug(slug: &str) -> bool {
    (2..=40).contains(&slug.len())
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.ends_with('-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_from_names_are_valid() {
        for (name, slug) in [
            ("Acme Corp", "acme-corp"),
            ("  Ünïcode  Team!! ", "n-code-team"),
            ("42 Labs", "labs"),
            ("x", "teamx"),
            ("---", "team"),
        ] {
            let made = super::slug_from(name);
            assert_eq!(made, slug, "{name}");
            assert!(super::valid_slug(&made), "{made}");
        }
        assert!(super::valid_slug(&super::slug_from(
            &"long name ".repeat(20)
        )));
    }

    #[test]
    fn slugs() {
        for ok in ["acme", "a1", "acme-corp"] {
            assert!(super::valid_slug(ok), "{ok}");
        }
        for bad in ["", "a", "Acme", "1acme", "acme-", "ac me", &"a".repeat(41)] {
            assert!(!super::valid_slug(bad), "{bad}");
        }
    }
}

/// What a team's overview counts.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Counts {
    pub sources: i64,
    pub destinations: i64,
    pub routes: i64,
    /// Destinations that are not taking deliveries (paused, backing off, disabled).
    pub unhealthy: i64,
}

#[tracing::instrument(skip_all)]
pub async fn counts(db: impl PgExecutor<'_>, team: &TeamId) -> Result<Counts, StoreError> {
    Ok(sqlx::query_as::<_, Counts>(
        "SELECT
             (SELECT count(*) FROM sources WHERE team_id = $1) AS sources,
             (SELECT count(*) FROM destinations WHERE team_id = $1) AS destinations,
             (SELECT count(*) FROM routes WHERE team_id = $1) AS routes,
             (SELECT count(*) FROM destination_runtime WHERE team_id = $1 AND state <> 'active') AS unhealthy",
    )
    .bind(team)
    .fetch_one(db)
    .await?)
}

/// Deletes a team and everything it owns.
#[tracing::instrument(skip_all)]
pub async fn delete(db: impl PgExecutor<'_>, team: &TeamId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM teams WHERE id = $1")
        .bind(team)
        .execute(db)
        .await?;
    Ok(())
}
