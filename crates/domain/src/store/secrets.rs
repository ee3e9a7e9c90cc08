//! Re-sealing every stored secret with the current key, after a key change. The system's
//! own maintenance, so it runs across teams.

use sqlx::PgPool;

use super::StoreError;
use crate::secrets::SecretKey;

/// Every sealed column: (table, key column, sealed column).
const SEALED: [(&str, &str, &str); 4] = [
    ("source_secrets", "id", "ciphertext"),
    ("destinations", "id", "signing_secret"),
    ("destinations", "id", "previous_signing_secret"),
    ("destinations", "id", "sealed_credentials"),
];

/// Opens what an older key sealed and seals it with the current one, row by row, each in
/// its own statement guarded by the old value (a concurrent change wins). Returns how
/// many values were re-sealed. Fails, changing nothing more, at the first value no known
/// key opens.
pub async fn rekey(pool: &PgPool, key: &SecretKey) -> Result<usize, StoreError> {
    let mut resealed = 0;
    for (table, id, column) in SEALED {
        let select = format!("SELECT {id}, {column} FROM {table} WHERE {column} IS NOT NULL");
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(select))
            .fetch_all(pool)
            .await?;
        let update = format!("UPDATE {table} SET {column} = $1 WHERE {id} = $2 AND {column} = $3");
        for (row_id, sealed) in rows {
            if !key.is_stale(&sealed) {
                continue;
            }
            let plain = key.open(&sealed)?;
            sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                .bind(key.seal(&plain))
                .bind(&row_id)
                .bind(&sealed)
                .execute(pool)
                .await?;
            resealed += 1;
        }
    }
    Ok(resealed)
}
