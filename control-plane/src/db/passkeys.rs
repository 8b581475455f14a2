//! Passkeys and the server half of WebAuthn ceremonies.

use serde::Serialize;

use super::Db;

/// A registered passkey as listed (the credential itself stays in the database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PasskeySummary {
    /// Credential id (base64url).
    pub id: String,
    /// The name its owner gave it.
    pub name: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last sign-in with it.
    pub last_used_at: Option<i64>,
    /// Set while it is paused after a password reset, until its owner confirms it.
    pub paused_at: Option<i64>,
}

/// Stores a passkey.
pub async fn insert(
    db: &Db,
    id: &str,
    user_id: &str,
    name: &str,
    credential: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO passkeys (id, user_id, name, credential, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(user_id)
        .bind(name)
        .bind(credential)
        .bind(now_ms)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A user's passkeys, oldest first.
pub async fn list(db: &Db, user_id: &str) -> Result<Vec<PasskeySummary>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, created_at, last_used_at, paused_at FROM passkeys WHERE user_id = $1 ORDER BY created_at, id")
        .bind(user_id)
        .fetch_all(db.pool())
        .await
}

/// A user's serialised credentials that may sign in (paused ones may not).
pub async fn credentials(db: &Db, user_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT credential FROM passkeys WHERE user_id = $1 AND paused_at IS NULL ORDER BY created_at, id")
        .bind(user_id)
        .fetch_all(db.pool())
        .await
}

/// Whether the user has a passkey that may sign in.
pub async fn has_any(db: &Db, user_id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM passkeys WHERE user_id = $1 AND paused_at IS NULL LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?
    .is_some())
}

/// Saves a credential after a sign-in (its signature counter moves) and the time.
pub async fn record_use(
    db: &Db,
    id: &str,
    credential: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE passkeys SET credential = $1, last_used_at = $2 WHERE id = $3")
        .bind(credential)
        .bind(now_ms)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Lets a paused passkey sign in again; false if the user has no such paused passkey.
pub async fn unpause(db: &Db, user_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE passkeys SET paused_at = NULL WHERE id = $1 AND user_id = $2 AND paused_at IS NOT NULL")
        .bind(id)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes one of the user's passkeys; false if they have no such passkey.
pub async fn delete(db: &Db, user_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Parks a ceremony's server state; returns its id for the client.
pub async fn start_ceremony(
    db: &Db,
    user_id: Option<&str>,
    kind: &str,
    state: &str,
    expires_at: i64,
) -> Result<String, sqlx::Error> {
    let id = crate::secrets::new_id();
    sqlx::query("INSERT INTO webauthn_ceremonies (id, user_id, kind, state, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(user_id)
        .bind(kind)
        .bind(state)
        .bind(expires_at)
        .execute(db.pool())
        .await?;
    Ok(id)
}

/// Takes a ceremony's state, once, if unexpired: (user id, state).
pub async fn take_ceremony(
    db: &Db,
    id: &str,
    kind: &str,
    now_ms: i64,
) -> Result<Option<(Option<String>, String)>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM webauthn_ceremonies WHERE id = $1 AND kind = $2 AND expires_at > $3 RETURNING user_id, state",
    )
    .bind(id)
    .bind(kind)
    .bind(now_ms)
    .fetch_optional(db.pool())
    .await
}
