//! Users, their sessions, one-time email links and failed sign-ins.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::Db;
use super::columns::Named;

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Internal id.
    pub id: String,
    /// Lowercased email address.
    pub email: String,
    /// Whether the address was confirmed through its link.
    pub email_verified: bool,
    /// `active` or `marked_for_deletion`.
    pub status: UserStatus,
    /// Preferred dashboard language.
    pub language: String,
    /// Operators administer the installation (created with `humanproof admin create`).
    pub is_operator: bool,
    /// Whether sign-in asks for a TOTP code.
    pub totp_enabled: bool,
}

/// Account status, stored by its serde name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Normal.
    Active,
    /// The owner asked for deletion; sign-in is refused.
    MarkedForDeletion,
}

/// What a one-time email link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTokenPurpose {
    /// Confirms the address.
    VerifyEmail,
    /// Sets a new password.
    ResetPassword,
    /// Keeps an account marked for deletion: given on a right password, not emailed.
    RestoreAccount,
    /// Moves the account to a new address; sent to that address.
    ChangeEmail,
}

impl EmailTokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::RestoreAccount => "restore_account",
            Self::ChangeEmail => "change_email",
        }
    }
}

const USER_COLUMNS: &str =
    "id, email, email_verified_at, status, language, is_operator, totp_enabled_at";

/// A `users` row as [`USER_COLUMNS`] lists it.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    email: String,
    email_verified_at: Option<i64>,
    status: Named<UserStatus>,
    language: String,
    // A 0/1 BIGINT: the Any driver decodes a `bool` only from a boolean column.
    is_operator: i64,
    totp_enabled_at: Option<i64>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            email: row.email,
            email_verified: row.email_verified_at.is_some(),
            status: row.status.0,
            language: row.language,
            is_operator: row.is_operator != 0,
            totp_enabled: row.totp_enabled_at.is_some(),
        }
    }
}

/// A user's row with their password hash, for signing in.
#[derive(sqlx::FromRow)]
struct UserWithPassword {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

/// Stores a new user; fails with a unique violation when the email is taken.
pub async fn insert_user(
    db: &Db,
    email: &str,
    password_hash: &str,
    is_operator: bool,
    now_ms: i64,
) -> Result<User, sqlx::Error> {
    let id = crate::secrets::new_id();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, is_operator, created_at, updated_at, password_set_at) \
         VALUES ($1, $2, $3, $4, $5, $5, $5)",
    )
    .bind(&id)
    .bind(email)
    .bind(password_hash)
    .bind(i64::from(is_operator))
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    find_user(db, &id).await?.ok_or(sqlx::Error::RowNotFound)
}

/// The user with this id.
pub async fn find_user(db: &Db, id: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .map(User::from))
}

/// The user with this (lowercased) email and their password hash.
pub async fn find_user_by_email(
    db: &Db,
    email: &str,
) -> Result<Option<(User, String)>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1");
    Ok(
        sqlx::query_as::<_, UserWithPassword>(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(db.pool())
            .await?
            .map(|row| (User::from(row.user), row.password_hash)),
    )
}

/// Replaces the password after a reset, signs the user out everywhere, and pauses the
/// passkeys added since the password was last set (whoever reset it may be evicting an
/// intruder who added one). Returns how many passkeys were paused.
pub async fn reset_password(
    db: &Db,
    user_id: &str,
    password_hash: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let paused = sqlx::query(
        "UPDATE passkeys SET paused_at = $1 WHERE user_id = $2 AND paused_at IS NULL \
         AND created_at >= (SELECT password_set_at FROM users WHERE id = $3)",
    )
    .bind(now_ms)
    .bind(user_id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    set_password(&mut tx, user_id, password_hash, now_ms).await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(paused)
}

/// Records that the user confirmed their address.
pub async fn mark_email_verified(db: &Db, user_id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email_verified_at = $1, updated_at = $1 WHERE id = $2 AND email_verified_at IS NULL")
        .bind(now_ms)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Sets the dashboard language.
pub async fn set_language(
    db: &Db,
    user_id: &str,
    language: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET language = $1, updated_at = $2 WHERE id = $3")
        .bind(language)
        .bind(now_ms)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Starts a session for the token whose hash is given; with `second_factor_due` it grants
/// nothing until [`complete_second_factor`].
pub async fn insert_session(
    db: &Db,
    token_hash: &str,
    user_id: &str,
    second_factor_due: bool,
    authenticated_at: Option<i64>,
    now_ms: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, second_factor_due, authenticated_at, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(i64::from(second_factor_due))
    .bind(authenticated_at)
    .bind(now_ms)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The user behind a live session: a full one, or (with `second_factor_due`) one still
/// waiting for its second factor.
pub async fn session_user(
    db: &Db,
    token_hash: &str,
    second_factor_due: bool,
    now_ms: i64,
) -> Result<Option<User>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM users u JOIN sessions s ON s.user_id = u.id \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.second_factor_due = $3",
        USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
        .bind(token_hash)
        .bind(now_ms)
        .bind(i64::from(second_factor_due))
        .fetch_optional(db.pool())
        .await?
        .map(User::from))
}

/// When the session last proved its owner (password, passkey or second factor), if ever.
pub async fn session_authenticated_at(
    db: &Db,
    token_hash: &str,
) -> Result<Option<i64>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(
        "SELECT authenticated_at FROM sessions WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?
    .flatten())
}

/// Records that the session's owner just proved themselves again.
pub async fn mark_authenticated(db: &Db, token_hash: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET authenticated_at = $1 WHERE token_hash = $2")
        .bind(now_ms)
        .bind(token_hash)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Turns a session waiting for its second factor into a full one, proven now.
pub async fn complete_second_factor(
    db: &Db,
    token_hash: &str,
    now_ms: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET second_factor_due = 0, authenticated_at = $1, expires_at = $2 WHERE token_hash = $3")
        .bind(now_ms)
        .bind(expires_at)
        .bind(token_hash)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Marks the account for deletion as of now and ends its sessions.
pub async fn mark_for_deletion(db: &Db, user_id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE users SET status = 'marked_for_deletion', deletion_requested_at = $1, \
         updated_at = $1 WHERE id = $2",
    )
    .bind(now_ms)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The stored password hash of a user.
pub async fn password_hash(db: &Db, user_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db.pool())
        .await
}

/// A user's sealed TOTP secret and the last step accepted, set up or not yet confirmed.
pub async fn totp_secret(
    db: &Db,
    user_id: &str,
) -> Result<Option<(String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT totp_secret, totp_last_step FROM users WHERE id = $1 AND totp_secret IS NOT NULL",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await
}

/// Stores a new, not yet confirmed TOTP secret (replacing any unconfirmed one).
pub async fn set_pending_totp(
    db: &Db,
    user_id: &str,
    sealed: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET totp_secret = $1, totp_enabled_at = NULL, totp_last_step = NULL, updated_at = $2 \
         WHERE id = $3 AND totp_enabled_at IS NULL",
    )
    .bind(sealed)
    .bind(now_ms)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Turns TOTP on (after a confirmed code) with a fresh set of hashed recovery codes.
pub async fn enable_totp(
    db: &Db,
    user_id: &str,
    step: i64,
    recovery_hashes: &[String],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE users SET totp_enabled_at = $1, totp_last_step = $2, updated_at = $1 WHERE id = $3",
    )
    .bind(now_ms)
    .bind(step)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for hash in recovery_hashes {
        sqlx::query("INSERT INTO recovery_codes (code_hash, user_id) VALUES ($1, $2)")
            .bind(hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Turns TOTP off and forgets the secret and recovery codes.
pub async fn disable_totp(db: &Db, user_id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL, updated_at = $1 WHERE id = $2",
    )
    .bind(now_ms)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Records an accepted TOTP step; false if that step (or a later one) was already used, so
/// two requests racing with one code cannot both pass.
pub async fn accept_totp_step(db: &Db, user_id: &str, step: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
    )
    .bind(step)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Uses a recovery code: true once per code.
pub async fn use_recovery_code(
    db: &Db,
    user_id: &str,
    code_hash: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE recovery_codes SET used_at = $1 WHERE code_hash = $2 AND user_id = $3 AND used_at IS NULL",
    )
    .bind(now_ms)
    .bind(code_hash)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Recovery codes not yet used.
pub async fn unused_recovery_codes(db: &Db, user_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) AS unused FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(db.pool())
    .await
}

/// Ends a session.
pub async fn delete_session(db: &Db, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Stores a new one-time link and purges the user's earlier unused links for the same
/// purpose, so only the newest one works.
pub async fn insert_email_token(
    db: &Db,
    token_hash: &str,
    user_id: &str,
    purpose: EmailTokenPurpose,
    now_ms: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM email_tokens WHERE user_id = $1 AND purpose = $2")
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now_ms)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Stores a link that moves the user to `new_email` (replacing an earlier unused one).
pub async fn insert_email_change_token(
    db: &Db,
    token_hash: &str,
    user_id: &str,
    new_email: &str,
    now_ms: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    insert_email_token(
        db,
        token_hash,
        user_id,
        EmailTokenPurpose::ChangeEmail,
        now_ms,
        expires_at,
    )
    .await?;
    sqlx::query("UPDATE email_tokens SET new_email = $1 WHERE token_hash = $2")
        .bind(new_email)
        .bind(token_hash)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Uses an email change link, once: the user and the address it moves them to.
pub async fn use_email_change_token(
    db: &Db,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE email_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
         AND new_email IS NOT NULL RETURNING user_id, new_email",
    )
    .bind(now_ms)
    .bind(token_hash)
    .bind(EmailTokenPurpose::ChangeEmail.as_str())
    .fetch_optional(db.pool())
    .await
}

/// Moves the user to a confirmed new address, and the audit entries that name them by their
/// old one along (so the account's deletion still finds them); `false` if another account
/// has the address by now.
pub async fn set_email(
    db: &Db,
    user_id: &str,
    email: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let old: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(old) = old else {
        return Ok(false);
    };
    let changed = sqlx::query(
        "UPDATE users SET email = $1, email_verified_at = $2, updated_at = $2 WHERE id = $3 \
         AND NOT EXISTS (SELECT 1 FROM users WHERE email = $1)",
    )
    .bind(email)
    .bind(now_ms)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("UPDATE audit_log SET actor = $1 WHERE actor = $2")
        .bind(format!("user:{email}"))
        .bind(format!("user:{old}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE audit_log SET target = $1 WHERE target = $2")
        .bind(email)
        .bind(&old)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Uses a one-time link: the user it belongs to if it is unused and unexpired, once.
pub async fn use_email_token(
    db: &Db,
    token_hash: &str,
    purpose: EmailTokenPurpose,
    now_ms: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE email_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
         RETURNING user_id",
    )
    .bind(now_ms)
    .bind(token_hash)
    .bind(purpose.as_str())
    .fetch_optional(db.pool())
    .await
}

/// Whether a one-time link would still work, without using it (to show the form).
pub async fn email_token_usable(
    db: &Db,
    token_hash: &str,
    purpose: EmailTokenPurpose,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT 1 AS usable FROM email_tokens \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now_ms)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

/// Counts one attempt against a subject (a keyed hash of an email, an IP network or an
/// account) in its current window, starting a new window when the last one began more than
/// `window_ms` ago. One statement reads and writes the row, so of any number of parallel
/// attempts each sees a different count. Returns the attempts in the window, this one
/// included, and when the window began.
pub async fn count_attempt(
    db: &Db,
    subject_hash: &str,
    now_ms: i64,
    window_ms: i64,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO throttles (subject_hash, window_start, attempts) VALUES ($1, $2, 1) \
         ON CONFLICT (subject_hash) DO UPDATE SET \
           attempts = CASE WHEN throttles.window_start <= $3 THEN 1 ELSE throttles.attempts + 1 END, \
           window_start = CASE WHEN throttles.window_start <= $4 THEN $5 ELSE throttles.window_start END \
         RETURNING attempts, window_start",
    )
    .bind(subject_hash)
    .bind(now_ms)
    .bind(now_ms - window_ms)
    .bind(now_ms - window_ms)
    .bind(now_ms)
    .fetch_one(db.pool())
    .await
}

/// Takes back one attempt that turned out to be legitimate (a correct password from an IP
/// network that others share).
pub async fn refund_attempt(db: &Db, subject_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE throttles SET attempts = attempts - 1 WHERE subject_hash = $1 AND attempts > 0",
    )
    .bind(subject_hash)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Forgets a subject's attempts, after it proved itself (the right password or code).
pub async fn clear_attempts(db: &Db, subject_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM throttles WHERE subject_hash = $1")
        .bind(subject_hash)
        .execute(db.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::{assert_unknown, fresh_databases};

    #[tokio::test]
    async fn an_unknown_stored_user_status_is_an_error_not_a_default() {
        for db in fresh_databases().await {
            let user = insert_user(&db, "someone@example.com", "hash", false, 1)
                .await
                .unwrap();
            sqlx::query("UPDATE users SET status = 'suspended' WHERE id = $1")
                .bind(&user.id)
                .execute(db.pool())
                .await
                .unwrap();
            assert_unknown(find_user(&db, &user.id).await, "status", "suspended");
            assert_unknown(
                find_user_by_email(&db, &user.email).await,
                "status",
                "suspended",
            );
        }
    }
}

/// When the account's deletion was asked for, if it is marked for deletion.
pub async fn deletion_requested_at(db: &Db, user_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let at: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT deletion_requested_at FROM users WHERE id = $1 AND status = 'marked_for_deletion'",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(at.flatten())
}

/// Keeps an account marked for deletion: active again.
pub async fn restore(db: &Db, user_id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET status = 'active', deletion_requested_at = NULL, updated_at = $1 \
         WHERE id = $2",
    )
    .bind(now_ms)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The accounts whose deletion was asked for before `requested_before`: due for deletion.
pub async fn due_for_deletion(db: &Db, requested_before: i64) -> Result<Vec<User>, sqlx::Error> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE status = 'marked_for_deletion' \
         AND deletion_requested_at < $1 ORDER BY deletion_requested_at"
    );
    let rows: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(requested_before)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(User::from).collect())
}

/// The organisations the user is the only owner of: they go with the account.
pub async fn solely_owned_organisations(
    db: &Db,
    user_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT m.organisation_id FROM memberships m WHERE m.user_id = $1 AND m.role = 'owner' \
         AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.organisation_id = m.organisation_id \
         AND o.role = 'owner' AND o.user_id <> $1) ORDER BY m.organisation_id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
}

/// What deleting an account took with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountDeletion {
    /// The organisations it alone owned, deleted with their projects, events, statistics,
    /// counters, billing state, keys and audit log.
    pub organisations: Vec<String>,
    /// The projects' site keys, queued for removal from the edge.
    pub site_keys: u64,
}

/// Deletes the account in one transaction: the organisations it alone owns (their projects'
/// site keys queued for removal from the edge, their audit log, and everything that
/// references them), its name in other organisations' audit logs, and the account with its
/// sessions, links, factors and memberships.
pub async fn delete_account(
    db: &Db,
    user: &User,
    now_ms: i64,
) -> Result<AccountDeletion, sqlx::Error> {
    let organisations = solely_owned_organisations(db, &user.id).await?;
    let mut tx = db.begin_write().await?;
    let mut site_keys = 0;
    for organisation_id in &organisations {
        site_keys += super::orgs::delete_organisation(&mut tx, organisation_id, now_ms).await?;
    }
    // Other organisations keep their history, without the person's address, whether the
    // entry names them as who acted or as whom it was about (joined, removed, left).
    sqlx::query("UPDATE audit_log SET actor = 'deleted-user' WHERE actor = $1")
        .bind(format!("user:{}", user.email))
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE audit_log SET target = 'deleted-user' WHERE target = $1")
        .bind(&user.email)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    db.found_by_secret().forget();
    Ok(AccountDeletion {
        organisations,
        site_keys,
    })
}

/// A session as the account page and the person's data export show it: when, never the
/// token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct SessionSummary {
    /// The first 16 hex digits of the token's hash, which name the session on the account
    /// page (a hash's prefix gives away nothing of the token); not exported.
    #[serde(skip)]
    pub handle: String,
    /// When it began, Unix ms.
    pub created_at: i64,
    /// When it ends, Unix ms.
    pub expires_at: i64,
}

/// The account's open sessions, newest first.
pub async fn sessions(db: &Db, user_id: &str) -> Result<Vec<SessionSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT SUBSTR(token_hash, 1, 16) AS handle, created_at, expires_at FROM sessions \
         WHERE user_id = $1 ORDER BY created_at DESC",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await
}

/// Ends the account's session named by `handle`; whether there was one.
pub async fn end_session(db: &Db, user_id: &str, handle: &str) -> Result<bool, sqlx::Error> {
    let ended =
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND SUBSTR(token_hash, 1, 16) = $2")
            .bind(user_id)
            .bind(handle)
            .execute(db.pool())
            .await?;
    Ok(ended.rows_affected() > 0)
}

/// Stores a new password hash, and when it was set (passkeys added after it survive a reset).
async fn set_password(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    password_hash: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, updated_at = $2, password_set_at = $2 WHERE id = $3",
    )
    .bind(password_hash)
    .bind(now_ms)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the password of a signed-in user who gave the current one, and ends every other
/// session of theirs (one may be an intruder's); the session `kept` goes on.
pub async fn change_password(
    db: &Db,
    user_id: &str,
    password_hash: &str,
    kept: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    set_password(&mut tx, user_id, password_hash, now_ms).await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
        .bind(user_id)
        .bind(kept)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
