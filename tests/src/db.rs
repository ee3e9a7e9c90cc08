//! Test databases: one migrated template per migration set, cloned per test, dropped
//! when the test ends (pass or panic).

use sqlx::{Connection, Executor, PgConnection};

/// The server tests run against; trust auth on localhost by default.
pub fn admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn url_for(database: &str) -> String {
    url_on(&admin_url(), database)
}

/// The URL of `database` on the server `admin` (a URL of that server) points at.
pub fn url_on(admin: &str, database: &str) -> String {
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    format!("{base}/{database}")
}

fn template_name() -> String {
    // A new migration set gets a new template, so a stale one is never cloned.
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for m in switchyard::db::MIGRATOR.iter() {
        hash.update(&m.checksum);
    }
    hash.update(env!("CARGO_PKG_VERSION"));
    format!("swtest_template_{}", &hex::encode(hash.finalize())[..12])
}

/// Creates a fresh, migrated database and returns its name.
pub async fn create() -> String {
    create_on(&admin_url()).await
}

/// Creates a fresh, migrated database on the server `admin` points at.
pub async fn create_on(admin: &str) -> String {
    let template = template_name();
    let mut conn = PgConnection::connect(admin)
        .await
        .expect("tests need PostgreSQL; see README");
    // One process builds the template; the others wait on the lock.
    conn.execute("SELECT pg_advisory_lock(727272)")
        .await
        .expect("lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut conn)
            .await
            .expect("query");
    if !exists {
        // Templates of earlier migration sets are of no further use.
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'swtest_template_%' AND datname <> $1",
        )
        .bind(&template)
        .fetch_all(&mut conn)
        .await
        .expect("query");
        for name in stale {
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
        let building = format!("{template}_building");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {building} WITH (FORCE)"
        )))
        .await
        .expect("drop");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
            .await
            .expect("create template");
        let options = switchyard::db::options(&url_on(admin, &building)).expect("url");
        switchyard::db::migrate(&options)
            .await
            .expect("migrate template");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {building} RENAME TO {template}"
        )))
        .await
        .expect("rename template");
    }
    let name = fresh_name();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE {template}"
    )))
    .await
    .expect("clone template");
    conn.execute("SELECT pg_advisory_unlock(727272)")
        .await
        .expect("unlock");
    name
}

/// Creates an empty database (no migrations) and returns its name, for a test that
/// builds an older schema itself.
pub async fn create_empty() -> String {
    let mut conn = PgConnection::connect(&admin_url())
        .await
        .expect("tests need PostgreSQL; see README");
    let name = fresh_name();
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    name
}

fn fresh_name() -> String {
    format!(
        "swtest_{}",
        switchyard_domain::secrets::random_token(9)
            .to_ascii_lowercase()
            .replace(['-', '_'], "x")
    )
}

/// Drops a test database from a thread of its own, so it works from `Drop` while the
/// test's runtime is going away.
pub fn drop_blocking(admin: &str, name: String) {
    let admin = admin.to_owned();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if let Ok(mut conn) = PgConnection::connect(&admin).await {
                let _ = conn
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
            }
        });
    })
    .join();
}

/// The schema as a release whose last migration was `version` left it: the job queue's
/// tables and Switchyard's migrations up to `version`, applied from a copy of those
/// files.
pub async fn migrate_up_to(pool: &sqlx::PgPool, version: i64) {
    apalis_postgres::PostgresStorage::<()>::setup(pool)
        .await
        .expect("the job queue's schema");
    let source = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let dir = std::env::temp_dir().join(format!(
        "switchyard-release-{version}-{}",
        switchyard_domain::secrets::random_token(6)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let number: Option<i64> = name.split('_').next().and_then(|v| v.parse().ok());
        if number.is_some_and(|n| n <= version) {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .unwrap()
        .run(pool)
        .await
        .expect("the release's migrations");
    std::fs::remove_dir_all(&dir).ok();
}

/// A team and a source of `provider`, written as an earlier release's schema (see
/// [`migrate_up_to`]) stores them, for an upgrade test to fill in around.
pub async fn legacy_team(
    pool: &sqlx::PgPool,
    provider: &str,
) -> (
    switchyard_domain::ids::TeamId,
    switchyard_domain::ids::SourceId,
) {
    let team = switchyard_domain::ids::TeamId::generate();
    let source = switchyard_domain::ids::SourceId::generate();
    sqlx::query("INSERT INTO teams (id, slug, name) VALUES ($1, 'legacy', 'Legacy')")
        .bind(&team)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sources (id, team_id, name, provider, token) VALUES ($1, $2, 'gh', $3, $4)",
    )
    .bind(&source)
    .bind(&team)
    .bind(provider)
    .bind(switchyard_domain::secrets::random_token(32))
    .execute(pool)
    .await
    .unwrap();
    (team, source)
}
