//! Teams.

use sqlx::PgExecutor;

use super::StoreError;
use crate::ids::TeamId;
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

#[tracing::instrument(skip_all)]
pub async fn find_by_slug(db: impl PgExecutor<'_>, slug: &str) -> Result<Team, StoreError> {
    Ok(sqlx::query_as::<_, Team>(
        "SELECT id, slug, name, retention_days, created_at FROM teams WHERE slug = $1",
    )
    .bind(slug)
    .fetch_one(db)
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
    fn slugs() {
        for ok in ["acme", "a1", "acme-corp"] {
            assert!(super::valid_slug(ok), "{ok}");
        }
        for bad in ["", "a", "Acme", "1acme", "acme-", "ac me", &"a".repeat(41)] {
            assert!(!super::valid_slug(bad), "{bad}");
        }
    }
}
