//! The Postgres store: named queries, one module per aggregate. Every function that reads
//! or writes a team's data takes that team's id first, so a query without it stands out.
//! Functions take an executor or a connection so callers choose the transaction; the
//! handler or job that owns the transaction commits it.

/// `list`, `get` and `delete` of a team-owned configuration table: the same three
/// queries for sources, destinations and routes, always scoped by team. Rows are read
/// from `$from` (the table, or the table joined with rows it owns one-to-one).
macro_rules! team_table {
    ($table:literal, $row:ty, $id:ty, $columns:expr) => {
        team_table!($table, $row, $id, $columns, $table);
    };
    ($table:literal, $row:ty, $id:ty, $columns:expr, $from:expr) => {
        #[tracing::instrument(skip_all)]
        pub async fn list(
            db: impl sqlx::PgExecutor<'_>,
            team: &crate::ids::TeamId,
            req: &crate::model::PageRequest,
        ) -> Result<crate::model::Page<$row>, StoreError> {
            let rows = sqlx::query_as::<_, $row>(concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $from,
                " WHERE team_id = $1 AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
            ))
            .bind(team)
            .bind(&req.cursor)
            .bind(super::fetch_limit(req))
            .fetch_all(db)
            .await?;
            Ok(super::page(rows, req, |r| r.id.to_string()))
        }

        #[tracing::instrument(skip_all)]
        pub async fn get(
            db: impl sqlx::PgExecutor<'_>,
            team: &crate::ids::TeamId,
            id: &$id,
        ) -> Result<$row, StoreError> {
            Ok(sqlx::query_as::<_, $row>(concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $from,
                " WHERE team_id = $1 AND id = $2"
            ))
            .bind(team)
            .bind(id)
            .fetch_one(db)
            .await?)
        }

        #[tracing::instrument(skip_all)]
        pub async fn delete(
            db: impl sqlx::PgExecutor<'_>,
            team: &crate::ids::TeamId,
            id: &$id,
        ) -> Result<(), StoreError> {
            let done = sqlx::query(concat!(
                "DELETE FROM ",
                $table,
                " WHERE team_id = $1 AND id = $2"
            ))
            .bind(team)
            .bind(id)
            .execute(db)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        }
    };
}

pub mod accounts;
pub mod alerts;
pub mod anthropic_keys;
pub mod api_keys;
pub mod attempts;
pub mod audit;
pub mod breaker;
pub mod claim;
pub mod deliveries;
pub mod destinations;
pub mod event_objects;
pub mod events;
pub mod flashes;
pub mod health;
pub mod members;
pub mod outcomes;
pub mod partitions;
pub mod queue;
pub mod reconcile;
pub mod replays;
pub mod retention;
pub mod rollups;
pub mod routes;
pub mod sample;
pub mod secrets;
pub mod sources;
pub mod stats;
pub mod teams;
pub mod throttle;

use crate::model::{Page, PageRequest};
use crate::secrets::SecretError;

pub use sqlx::{PgPool, Postgres, Transaction};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or state rule refused the write; the message is for the user.
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached in time: answer 503, never half-write.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("job queue error")]
    Queue(#[source] apalis_postgres::Error),
    /// A bug or broken invariant: answered as 500, logged with its message.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// The statement ran past its `statement_timeout` (a search too wide to finish).
    pub fn is_timeout(&self) -> bool {
        matches!(self, StoreError::Unavailable(sqlx::Error::Database(db))
                     | StoreError::Database(sqlx::Error::Database(db))
            if db.code().as_deref() == Some("57014"))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e),
            sqlx::Error::Database(db) => match db.constraint() {
                Some("teams_slug_key") => {
                    StoreError::Conflict("a team with this slug already exists".to_owned())
                }
                _ if db.code().as_deref().is_some_and(is_connection_class) => {
                    StoreError::Unavailable(e)
                }
                _ => StoreError::Database(e),
            },
            _ => StoreError::Database(e),
        }
    }
}

impl From<apalis_postgres::Error> for StoreError {
    fn from(e: apalis_postgres::Error) -> Self {
        match e {
            apalis_postgres::Error::Database(db) => db.into(),
            other => StoreError::Queue(other),
        }
    }
}

/// SQLSTATEs that mean "try again shortly": 08 connection exception, 57P shutting down,
/// 57014 statement timeout, 40001/40P01 serialization failure and deadlock, 53
/// insufficient resources (disk, memory, connections).
fn is_connection_class(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("57P")
        || code.starts_with("53")
        || matches!(code, "57014" | "40001" | "40P01")
}

/// Cuts one extra fetched row off into the next cursor.
pub(crate) fn page<T>(mut rows: Vec<T>, req: &PageRequest, id: impl Fn(&T) -> String) -> Page<T> {
    let limit = req.limit as usize;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(id)
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

/// The limit to ask the database for: one more than the page, to know if there is a next.
pub(crate) fn fetch_limit(req: &PageRequest) -> i64 {
    i64::from(req.limit) + 1
}

/// A read-only transaction whose statements all read one snapshot: for a page made of
/// several reads that must agree (a delivery and its attempts, counts and the mark they
/// reach to), so a write committing between two of them shows in neither or in both.
pub(crate) async fn snapshot(db: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
