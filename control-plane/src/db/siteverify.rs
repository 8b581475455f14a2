//! Siteverify state: single-use claims on verification tokens (with the stored answer that
//! makes idempotent retries possible) and verification analytics.

use super::telemetry::{Usage, add_usage};
use super::{Db, month_of};

/// Result of trying to claim a verification token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: the answer was stored.
    Fresh,
    /// Used before; the first caller's idempotency key and answer.
    Used {
        /// The key the first caller sent, if any.
        idempotency_key: Option<String>,
        /// The JSON answer given then.
        response: String,
    },
}

/// Claims `token_id` for good, storing `response` for idempotent retries until `expires_at`.
pub async fn claim(
    db: &Db,
    token_id: &str,
    project_id: &str,
    idempotency_key: Option<&str>,
    response: &str,
    expires_at: i64,
) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO siteverify_claims (token_id, project_id, idempotency_key, response, \
         expires_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_id) DO NOTHING",
    )
    .bind(token_id)
    .bind(project_id)
    .bind(idempotency_key)
    .bind(response)
    .bind(expires_at)
    .execute(db.pool())
    .await?
    .rows_affected()
        == 1;
    if inserted {
        return Ok(Claim::Fresh);
    }
    let (idempotency_key, response) = sqlx::query_as(
        "SELECT idempotency_key, response FROM siteverify_claims WHERE token_id = $1",
    )
    .bind(token_id)
    .fetch_one(db.pool())
    .await?;
    Ok(Claim::Used {
        idempotency_key,
        response,
    })
}

/// Records one siteverify answer as verification analytics (never as a protected attempt).
pub async fn record_verification(
    db: &Db,
    project_id: &str,
    at: i64,
    error_code: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO verification_events (id, project_id, at, success, error_code) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crate::secrets::new_id())
    .bind(project_id)
    .bind(at)
    .bind(i64::from(error_code.is_none()))
    .bind(error_code)
    .execute(&mut *tx)
    .await?;
    add_usage(
        &mut tx,
        project_id,
        &month_of(at),
        Usage {
            verifications: 1,
            ..Usage::default()
        },
    )
    .await?;
    tx.commit().await
}
