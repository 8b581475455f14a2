//! Organisations, their members and roles, their API keys, and the audit log.

use serde::Serialize;

use super::Db;
use super::columns::{JsonText, Named};
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

/// A membership joined with its organisation's name.
#[derive(sqlx::FromRow)]
struct MembershipRow {
    organisation_id: String,
    organisation_name: String,
    role: Named<Role>,
}

impl From<MembershipRow> for Membership {
    fn from(row: MembershipRow) -> Self {
        Membership {
            organisation_id: row.organisation_id,
            organisation_name: row.organisation_name,
            role: row.role.0,
        }
    }
}

/// A membership joined with its user's email.
#[derive(sqlx::FromRow)]
struct MemberRow {
    user_id: String,
    email: String,
    role: Named<Role>,
}

impl From<MemberRow> for Member {
    fn from(row: MemberRow) -> Self {
        Member {
            user_id: row.user_id,
            email: row.email,
            role: row.role.0,
        }
    }
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

/// The name of the organisation with this id, if there is one.
pub async fn organisation_name(
    db: &Db,
    organisation_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM organisations WHERE id = $1")
        .bind(organisation_id)
        .fetch_optional(db.pool())
        .await
}

/// Gives the organisation a new name.
pub async fn rename_organisation(
    db: &Db,
    organisation_id: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE organisations SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(organisation_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The organisations a user belongs to, oldest first.
pub async fn memberships(db: &Db, user_id: &str) -> Result<Vec<Membership>, sqlx::Error> {
    let rows: Vec<MembershipRow> = sqlx::query_as(
        "SELECT m.organisation_id, o.name AS organisation_name, m.role FROM memberships m \
         JOIN organisations o ON o.id = m.organisation_id WHERE m.user_id = $1 \
         ORDER BY o.created_at, o.id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Membership::from).collect())
}

/// Everyone in an organisation.
pub async fn members(db: &Db, organisation_id: &str) -> Result<Vec<Member>, sqlx::Error> {
    let rows: Vec<MemberRow> = sqlx::query_as(
        "SELECT m.user_id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.organisation_id = $1 ORDER BY m.created_at, u.email",
    )
    .bind(organisation_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Member::from).collect())
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
    /// The member's role and how many other owners the organisation has.
    #[derive(sqlx::FromRow)]
    struct OwnerCount {
        role: Named<Role>,
        other_owners: i64,
    }
    let OwnerCount {
        role: Named(role),
        other_owners,
    } = sqlx::query_as(
        "SELECT m.role, (SELECT COUNT(*) FROM memberships o \
                         WHERE o.organisation_id = m.organisation_id AND o.role = 'owner' AND o.user_id <> m.user_id) AS other_owners \
         FROM memberships m WHERE m.organisation_id = $1 AND m.user_id = $2",
    )
    .bind(organisation_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(MembershipError::NotMember)?;
    let is_owner = role == Role::Owner;
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

/// An `api_keys` row as [`API_KEY_COLUMNS`] lists it.
#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    organisation_id: String,
    name: String,
    prefix: String,
    scopes: JsonText<Vec<Scope>>,
    // A 0/1 BIGINT: the Any driver decodes a `bool` only from a boolean column.
    active: i64,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        ApiKey {
            id: row.id,
            organisation_id: row.organisation_id,
            name: row.name,
            prefix: row.prefix,
            scopes: row.scopes.0,
            active: row.active != 0,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
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
    let rows: Vec<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(organisation_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

/// The active key with this hash, marking it used.
pub async fn use_api_key(
    db: &Db,
    key_hash: &str,
    now_ms: i64,
) -> Result<Option<ApiKey>, sqlx::Error> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND active = 1");
    let Some(key) = sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql))
        .bind(key_hash)
        .fetch_optional(db.pool())
        .await?
        .map(ApiKey::from)
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

/// Deletes an organisation's key; whether there was one.
pub async fn delete_api_key(
    db: &Db,
    organisation_id: &str,
    key_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND organisation_id = $2")
        .bind(key_id)
        .bind(organisation_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
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
    sqlx::query_as("SELECT actor, action, target, at FROM audit_log WHERE organisation_id = $1 ORDER BY at DESC, id LIMIT $2")
        .bind(organisation_id)
        .bind(limit)
        .fetch_all(db.pool())
        .await
}

/// The audit entries, in every organisation, of what a person did or what was done to their
/// account: the person's own history, for their data export.
pub async fn audit_about_user(
    db: &Db,
    email: &str,
    user_id: &str,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT actor, action, target, at FROM audit_log WHERE actor = $1 OR target = $2 \
         ORDER BY at DESC, id LIMIT $3",
    )
    .bind(format!("user:{email}"))
    .bind(user_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await
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

/// An `invitations` row's email, role and expiry.
#[derive(sqlx::FromRow)]
struct InvitationRow {
    email: String,
    role: Named<Role>,
    expires_at: i64,
}

impl From<InvitationRow> for Invitation {
    fn from(row: InvitationRow) -> Self {
        Invitation {
            email: row.email,
            role: row.role.0,
            expires_at: row.expires_at,
        }
    }
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
    let rows: Vec<InvitationRow> = sqlx::query_as(
        "SELECT email, role, expires_at FROM invitations \
         WHERE organisation_id = $1 AND accepted_at IS NULL AND expires_at > $2 ORDER BY created_at, email",
    )
    .bind(organisation_id)
    .bind(now_ms)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Invitation::from).collect())
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
    /// An invitation with the organisation it is to.
    #[derive(sqlx::FromRow)]
    struct FoundInvitation {
        organisation_id: String,
        organisation_name: String,
        #[sqlx(flatten)]
        invitation: InvitationRow,
    }
    let found: Option<FoundInvitation> = sqlx::query_as(
        "SELECT i.organisation_id, o.name AS organisation_name, i.email, i.role, i.expires_at \
         FROM invitations i JOIN organisations o ON o.id = i.organisation_id \
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(db.pool())
    .await?;
    Ok(found.map(|found| {
        (
            found.organisation_id,
            found.organisation_name,
            found.invitation.into(),
        )
    }))
}

/// Accepts an invitation once: marks it used and adds the member, in one transaction.
pub async fn accept_invitation(
    db: &Db,
    token_hash: &str,
    user_id: &str,
    now_ms: i64,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    /// What an accepted invitation grants. The role is decoded, not copied as text, so an
    /// unknown one fails here instead of spreading into memberships.
    #[derive(sqlx::FromRow)]
    struct Grant {
        organisation_id: String,
        role: Named<Role>,
    }
    let Some(Grant {
        organisation_id,
        role: Named(role),
    }) = sqlx::query_as(
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
    sqlx::query(
        "INSERT INTO memberships (organisation_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organisation_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(&organisation_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(organisation_id))
}

/// A client of an agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
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
    sqlx::query_as("SELECT id, name FROM clients WHERE organisation_id = $1 ORDER BY name, id")
        .bind(organisation_id)
        .fetch_all(db.pool())
        .await
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

/// Deletes an organisation inside `tx` with everything that references it: its projects'
/// site keys are queued for removal from the edge first, and its audit log (which names the
/// organisation without a foreign key) goes with it; the site keys queued. Once `tx`
/// commits, the caller forgets the projects found by secret ([`Db::found_by_secret`]).
pub async fn delete_organisation(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    organisation_id: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    let site_keys = sqlx::query(
        "INSERT INTO snapshot_deletions (site_key, requested_at) \
         SELECT site_key, $2 FROM projects WHERE organisation_id = $1 \
         ON CONFLICT (site_key) DO NOTHING",
    )
    .bind(organisation_id)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM audit_log WHERE organisation_id = $1")
        .bind(organisation_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM organisations WHERE id = $1")
        .bind(organisation_id)
        .execute(&mut **tx)
        .await?;
    Ok(site_keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::accounts::insert_user;
    use crate::db::testing::{assert_unknown, fresh_databases};

    #[tokio::test]
    async fn an_unknown_stored_role_is_an_error_not_a_default() {
        for db in fresh_databases().await {
            let owner = insert_user(&db, "owner@example.com", "hash", false, 1)
                .await
                .unwrap();
            let organisation = create_organisation(&db, "Acme", &owner.id, 1)
                .await
                .unwrap();
            sqlx::query("UPDATE memberships SET role = 'superuser' WHERE user_id = $1")
                .bind(&owner.id)
                .execute(db.pool())
                .await
                .unwrap();
            assert_unknown(memberships(&db, &owner.id).await, "role", "superuser");
            assert_unknown(members(&db, &organisation).await, "role", "superuser");
            let change = MembershipChange::SetRole(Role::Viewer);
            assert!(matches!(
                change_membership(&db, &organisation, &owner.id, change).await,
                Err(MembershipError::Database(_))
            ));
        }
    }

    #[tokio::test]
    async fn an_invitation_with_an_unknown_role_is_not_accepted() {
        for db in fresh_databases().await {
            let owner = insert_user(&db, "owner@example.com", "hash", false, 1)
                .await
                .unwrap();
            let guest = insert_user(&db, "guest@example.com", "hash", false, 1)
                .await
                .unwrap();
            let organisation = create_organisation(&db, "Acme", &owner.id, 1)
                .await
                .unwrap();
            let invitation = Invitation {
                email: guest.email.clone(),
                role: Role::Viewer,
                expires_at: 1_000,
            };
            insert_invitation(&db, "token", &organisation, &invitation, &owner.id, 1)
                .await
                .unwrap();
            sqlx::query("UPDATE invitations SET role = 'guest' WHERE token_hash = 'token'")
                .execute(db.pool())
                .await
                .unwrap();
            assert_unknown(
                pending_invitations(&db, &organisation, 2).await,
                "role",
                "guest",
            );
            assert_unknown(find_invitation(&db, "token", 2).await, "role", "guest");
            assert_unknown(
                accept_invitation(&db, "token", &guest.id, 2).await,
                "role",
                "guest",
            );
            // The failed acceptance changed nothing: no member with the unknown role.
            assert_eq!(members(&db, &organisation).await.unwrap().len(), 1);
        }
    }
}
