//! Organisations, their members and roles, their API keys, and the audit log.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use crate::roles::{Role, Scope};

/// An organisation a user belongs to, with the user's role in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// Organisation id.
    pub organisation_id: String,
    /// Organisation name.
    pub organisation_name: String,
    /// The member's role.
    pub role: Role,
}

/// A member of an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// User id.
    pub user_id: String,
    /// Email address.
    pub email: String,
    /// Role.
    pub role: Role,
}

fn role_column(row: &AnyRow) -> Result<Role, sqlx::Error> {
    let name: String = row.try_get("role")?;
    Role::parse(&name).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {name:?}").into()))
}

/// Creates an organisation with `owner` as its first member.
pub async fn create_organisation(
    db: &Db,
    name: &str,
    owner: &str,
    now_ms: i64,
) -> Result<String, sqlx::Error> {
    let id = crate::secrets::new_id();
    let mut tx = db.begin_write().await?;
    sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind(name)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO memberships (organisation_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(owner)
        .bind(Role::Owner.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// The organisations a user belongs to, oldest first.
pub async fn memberships(db: &Db, user_id: &str) -> Result<Vec<Membership>, sqlx::Error> {
    sqlx::query(
        "SELECT m.organisation_id, o.name, m.role FROM memberships m \
         JOIN organisations o ON o.id = m.organisation_id WHERE m.user_id = $1 \
         ORDER BY o.created_at, o.id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(Membership {
            organisation_id: row.try_get("organisation_id")?,
            organisation_name: row.try_get("name")?,
            role: role_column(row)?,
        })
    })
    .collect()
}

/// The user's membership in one organisation, if any.
pub async fn membership(
    db: &Db,
    organisation_id: &str,
    user_id: &str,
) -> Result<Option<Membership>, sqlx::Error> {
    Ok(memberships(db, user_id)
        .await?
        .into_iter()
        .find(|m| m.organisation_id == organisation_id))
}

/// Everyone in an organisation.
pub async fn members(db: &Db, organisation_id: &str) -> Result<Vec<Member>, sqlx::Error> {
    sqlx::query(
        "SELECT m.user_id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.organisation_id = $1 ORDER BY m.created_at, u.email",
    )
    .bind(organisation_id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(Member {
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            role: role_column(row)?,
        })
    })
    .collect()
}

/// Adds a member, or changes the role of an existing one.
pub async fn put_member(
    db: &Db,
    organisation_id: &str,
    user_id: &str,
    role: Role,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO memberships (organisation_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organisation_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(organisation_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A change to an existing membership: a new role, or removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// Give the member this role.
    SetRole(Role),
    /// Remove the member.
    Remove,
}

/// Why a membership change was not made.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The change would leave the organisation without an owner.
    #[error("an organisation keeps at least one owner")]
    LastOwner,
    /// The user is not a member.
    #[error("not a member")]
    NotMember,
    /// Storage failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Changes an existing membership unless that would leave the organisation without an
/// owner. The organisation's row is locked first (a no-op update, which both databases
/// treat as a write lock), so two owners demoting or removing each other at the same moment
/// take turns, and the second sees the first's change instead of the old owner count.
pub async fn change_membership(
    db: &Db,
    organisation_id: &str,
    user_id: &str,
    change: MembershipChange,
) -> Result<(), MembershipError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE organisations SET name = name WHERE id = $1")
        .bind(organisation_id)
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query(
        "SELECT m.role, (SELECT COUNT(*) FROM memberships o \
                         WHERE o.organisation_id = m.organisation_id AND o.role = 'owner' AND o.user_id <> m.user_id) AS other_owners \
         FROM memberships m WHERE m.organisation_id = $1 AND m.user_id = $2",
    )
    .bind(organisation_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(MembershipError::NotMember)?;
    let is_owner = role_column(&row)? == Role::Owner;
    let other_owners: i64 = row.try_get("other_owners")?;
    let stays_owner = change == MembershipChange::SetRole(Role::Owner);
    if is_owner && !stays_owner && other_owners == 0 {
        return Err(MembershipError::LastOwner);
    }
    match change {
        MembershipChange::SetRole(role) => {
            sqlx::query(
                "UPDATE memberships SET role = $1 WHERE organisation_id = $2 AND user_id = $3",
            )
            .bind(role.as_str())
            .bind(organisation_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        }
        MembershipChange::Remove => {
            sqlx::query("DELETE FROM memberships WHERE organisation_id = $1 AND user_id = $2")
                .bind(organisation_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// An API key as listed: never the key itself, which only its creator saw once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Id.
    pub id: String,
    /// Organisation.
    pub organisation_id: String,
    /// Label.
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Disabled keys are refused.
    pub active: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last authenticated request.
    pub last_used_at: Option<i64>,
}

const API_KEY_COLUMNS: &str =
    "id, organisation_id, name, prefix, scopes, active, created_at, last_used_at";

fn api_key_from_row(row: &AnyRow) -> Result<ApiKey, sqlx::Error> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        organisation_id: row.try_get("organisation_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        scopes: serde_json::from_str(&scopes).map_err(|err| sqlx::Error::Decode(Box::new(err)))?,
        active: row.try_get::<i64, _>("active")? != 0,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// Stores a key by its hash.
pub async fn insert_api_key(
    db: &Db,
    organisation_id: &str,
    name: &str,
    key_hash: &str,
    prefix: &str,
    scopes: &[Scope],
    now_ms: i64,
) -> Result<ApiKey, sqlx::Error> {
    let id = crate::secrets::new_id();
    sqlx::query(
        "INSERT INTO api_keys (id, organisation_id, name, key_hash, prefix, scopes, active, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(name)
    .bind(key_hash)
    .bind(prefix)
    .bind(serde_json::to_string(scopes).expect("scopes serialize"))
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(ApiKey {
        id,
        organisation_id: organisation_id.to_owned(),
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        scopes: scopes.to_vec(),
        active: true,
        created_at: now_ms,
        last_used_at: None,
    })
}

/// An organisation's keys, newest first.
pub async fn list_api_keys(db: &Db, organisation_id: &str) -> Result<Vec<ApiKey>, sqlx::Error> {
    let sql = format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE organisation_id = $1 ORDER BY created_at DESC, id"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(organisation_id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(api_key_from_row)
        .collect()
}

/// The active key with this hash, marking it used.
pub async fn use_api_key(
    db: &Db,
    key_hash: &str,
    now_ms: i64,
) -> Result<Option<ApiKey>, sqlx::Error> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND active = 1");
    let Some(key) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key_hash)
        .fetch_optional(db.pool())
        .await?
        .map(|row| api_key_from_row(&row))
        .transpose()?
    else {
        return Ok(None);
    };
    sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(&key.id)
        .execute(db.pool())
        .await?;
    Ok(Some(key))
}

/// Enables or disables one of the organisation's keys; false if it has no such key.
pub async fn set_api_key_active(
    db: &Db,
    organisation_id: &str,
    key_id: &str,
    active: bool,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE api_keys SET active = $1 WHERE id = $2 AND organisation_id = $3")
            .bind(i64::from(active))
            .bind(key_id)
            .bind(organisation_id)
            .execute(db.pool())
            .await?;
    Ok(done.rows_affected() > 0)
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// `user:<email>`, `api_key:<id>` or `operator`.
    pub actor: String,
    /// What happened, e.g. `project.created`.
    pub action: String,
    /// What it happened to.
    pub target: Option<String>,
    /// Unix ms.
    pub at: i64,
}

/// Records a security- or billing-relevant action.
pub async fn audit(
    db: &Db,
    organisation_id: Option<&str>,
    actor: &str,
    action: &str,
    target: Option<&str>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (id, organisation_id, actor, action, target, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(crate::secrets::new_id())
        .bind(organisation_id)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(now_ms)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// An organisation's newest audit entries.
pub async fn audit_log(
    db: &Db,
    organisation_id: &str,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query("SELECT actor, action, target, at FROM audit_log WHERE organisation_id = $1 ORDER BY at DESC, id LIMIT $2")
        .bind(organisation_id)
        .bind(limit)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|row| {
            Ok(AuditEntry {
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                at: row.try_get("at")?,
            })
        })
        .collect()
}

/// A pending invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    /// Invited address.
    pub email: String,
    /// Role on acceptance.
    pub role: Role,
    /// Unix ms after which the link no longer works.
    pub expires_at: i64,
}

/// Stores an invitation; an earlier pending one to the same address is replaced.
pub async fn insert_invitation(
    db: &Db,
    token_hash: &str,
    organisation_id: &str,
    invitation: &Invitation,
    invited_by: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let Invitation {
        email,
        role,
        expires_at,
    } = invitation;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "DELETE FROM invitations WHERE organisation_id = $1 AND email = $2 AND accepted_at IS NULL",
    )
    .bind(organisation_id)
    .bind(email)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO invitations (token_hash, organisation_id, email, role, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token_hash)
    .bind(organisation_id)
    .bind(email)
    .bind(role.as_str())
    .bind(invited_by)
    .bind(now_ms)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Pending, unexpired invitations of an organisation.
pub async fn pending_invitations(
    db: &Db,
    organisation_id: &str,
    now_ms: i64,
) -> Result<Vec<Invitation>, sqlx::Error> {
    sqlx::query(
        "SELECT email, role, expires_at FROM invitations \
         WHERE organisation_id = $1 AND accepted_at IS NULL AND expires_at > $2 ORDER BY created_at, email",
    )
    .bind(organisation_id)
    .bind(now_ms)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| Ok(Invitation { email: row.try_get("email")?, role: role_column(row)?, expires_at: row.try_get("expires_at")? }))
    .collect()
}

/// Withdraws a pending invitation; false if there was none.
pub async fn revoke_invitation(
    db: &Db,
    organisation_id: &str,
    email: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM invitations WHERE organisation_id = $1 AND email = $2 AND accepted_at IS NULL",
    )
    .bind(organisation_id)
    .bind(email)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The invitation behind a link, if pending and unexpired: (organisation id and name, email, role).
pub async fn find_invitation(
    db: &Db,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<(String, String, Invitation)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.organisation_id, o.name, i.email, i.role, i.expires_at FROM invitations i \
         JOIN organisations o ON o.id = i.organisation_id \
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        Ok((
            row.try_get("organisation_id")?,
            row.try_get("name")?,
            Invitation {
                email: row.try_get("email")?,
                role: role_column(&row)?,
                expires_at: row.try_get("expires_at")?,
            },
        ))
    })
    .transpose()
}

/// Accepts an invitation once: marks it used and adds the member, in one transaction.
pub async fn accept_invitation(
    db: &Db,
    token_hash: &str,
    user_id: &str,
    now_ms: i64,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let Some(row) = sqlx::query(
        "UPDATE invitations SET accepted_at = $1 WHERE token_hash = $2 AND accepted_at IS NULL AND expires_at > $1 \
         RETURNING organisation_id, role",
    )
    .bind(now_ms)
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let organisation_id: String = row.try_get("organisation_id")?;
    let role: String = row.try_get("role")?;
    sqlx::query(
        "INSERT INTO memberships (organisation_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organisation_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(&organisation_id)
    .bind(user_id)
    .bind(role)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(organisation_id))
}

/// A client of an agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
}

/// Adds a client.
pub async fn insert_client(
    db: &Db,
    organisation_id: &str,
    name: &str,
    now_ms: i64,
) -> Result<Client, sqlx::Error> {
    let id = crate::secrets::new_id();
    sqlx::query(
        "INSERT INTO clients (id, organisation_id, name, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(name)
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(Client {
        id,
        name: name.to_owned(),
    })
}

/// An organisation's clients, by name.
pub async fn clients(db: &Db, organisation_id: &str) -> Result<Vec<Client>, sqlx::Error> {
    sqlx::query("SELECT id, name FROM clients WHERE organisation_id = $1 ORDER BY name, id")
        .bind(organisation_id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|row| {
            Ok(Client {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
            })
        })
        .collect()
}

/// Removes a client; its projects stay, unassigned. False if the organisation has no such client.
pub async fn delete_client(
    db: &Db,
    organisation_id: &str,
    client_id: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE projects SET client_id = NULL WHERE client_id = $1 AND organisation_id = $2",
    )
    .bind(client_id)
    .bind(organisation_id)
    .execute(&mut *tx)
    .await?;
    let done = sqlx::query("DELETE FROM clients WHERE id = $1 AND organisation_id = $2")
        .bind(client_id)
        .bind(organisation_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}
