//! Projects: the rows behind site keys, and what the snapshot is built from.

use humanproof_protocol::snapshot::RiskMode;
use humanproof_protocol::wire::{Branding, Theme, Variant, WidgetSettings, WidgetSize};
use humanproof_protocol::{Obfuscation, Preset, Protection, PuzzleKind, Score};
use serde::Serialize;
use sqlx::any::{Any, AnyArguments};
use sqlx::query::QueryAs;
use sqlx::{FromRow as _, Row as _};

use super::Db;
use super::columns::{self, ColumnValues, InRange, JsonText, Named};
pub use crate::plans::BillingStatus;

/// A stored project. The backend secret is not here: only its hash is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Internal id.
    pub id: String,
    /// Public site key.
    pub site_key: String,
    /// Challenge key version.
    pub key_version: u32,
    /// Owning organisation; `None` for projects an operator created from the CLI.
    pub organisation_id: Option<String>,
    /// The agency client it is filed under, if any.
    pub client_id: Option<String>,
    /// Everything its owner configures.
    pub settings: ProjectSettings,
    /// Bumped by every change; the publisher records which revision the edge has.
    pub revision: i64,
    /// Until when (Unix ms) the secret replaced by the last rotation still verifies.
    pub previous_secret_expires_at: Option<i64>,
}

/// What a project's owner configures: given at creation, stored on the project.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectSettings {
    /// Display name.
    pub name: String,
    /// Production hostnames.
    pub production_domains: Vec<String>,
    /// Testing hostnames.
    pub testing_domains: Vec<String>,
    /// Whether subdomains match.
    pub allow_subdomains: bool,
    /// Proof-of-work preset.
    pub preset: Preset,
    /// Observe or enforce.
    pub risk_mode: RiskMode,
    /// Plan name.
    pub plan: String,
    /// Billing status.
    pub billing_status: BillingStatus,
    /// Monthly limit.
    pub monthly_limit: Option<u64>,
    /// Whether the project is active (not paused).
    pub active: bool,
    /// How the widget looks on the customer's pages.
    pub widget: WidgetSettings,
}

impl ProjectSettings {
    /// What a new project starts with, before its creator's input applies: Balanced, observe
    /// mode, no domains, unlimited, active.
    pub fn new_project(plan: &str, billing_status: BillingStatus) -> ProjectSettings {
        ProjectSettings {
            name: String::new(),
            production_domains: vec![],
            testing_domains: vec![],
            allow_subdomains: false,
            preset: Preset::Balanced,
            risk_mode: RiskMode::Observe,
            plan: plan.to_owned(),
            billing_status,
            monthly_limit: None,
            active: true,
            widget: WidgetSettings::default(),
        }
    }
}

/// A unit enum's serde name (`Variant::Checkbox` → `checkbox`), as stored and shown.
pub fn enum_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What a project row stores for a monthly limit: BIGINT, so an unlimited-looking `u64`
/// saturates.
fn stored_limit(limit: Option<u64>) -> Option<i64> {
    limit.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX))
}

/// The columns a project's owner configures, each beside its value: what [`insert`] and
/// [`update_settings`] both write. A preset is stored as its name plus a Custom preset's
/// numbers, NULL for the named presets, whose numbers live in code.
fn settings_columns(settings: &ProjectSettings) -> ColumnValues {
    let custom = match settings.preset {
        Preset::Custom(custom) => Some(custom),
        _ => None,
    };
    let domains = |list: &Vec<String>| serde_json::to_string(list).expect("strings serialize");
    ColumnValues::default()
        .set("name", settings.name.as_str())
        .set("active", settings.active)
        .set("production_domains", domains(&settings.production_domains))
        .set("testing_domains", domains(&settings.testing_domains))
        .set("allow_subdomains", settings.allow_subdomains)
        .set("preset", settings.preset.name())
        .set("custom_difficulty", custom.map(|c| i64::from(c.difficulty)))
        .set(
            "custom_challenge_count",
            custom.map(|c| i64::from(c.challenge_count)),
        )
        .set("custom_obfuscation", custom.map(|c| c.obfuscation.name()))
        .set("custom_rate_limit", custom.map(|c| i64::from(c.rate_limit)))
        .set(
            "custom_block_threshold",
            custom.map(|c| i64::from(c.block_threshold.tenths())),
        )
        .set("custom_puzzle", custom.map(|c| c.puzzle.name()))
        .set("custom_squarings", custom.map(|c| i64::from(c.squarings)))
        .set("risk_mode", settings.risk_mode.as_str())
        .set("monthly_limit", stored_limit(settings.monthly_limit))
        .set("widget_variant", enum_name(&settings.widget.variant))
        .set("widget_theme", enum_name(&settings.widget.theme))
        .set("widget_language", settings.widget.language.as_str())
        .set("widget_size", enum_name(&settings.widget.size))
        .set("widget_branding", enum_name(&settings.widget.branding))
}

const COLUMNS: &str = "id, organisation_id, client_id, name, site_key, active, production_domains, \
    testing_domains, allow_subdomains, key_version, preset, custom_difficulty, \
    custom_challenge_count, custom_obfuscation, custom_rate_limit, custom_block_threshold, \
    custom_puzzle, custom_squarings, risk_mode, plan, billing_status, monthly_limit, widget_variant, widget_theme, \
    widget_language, widget_size, widget_branding, revision, previous_secret_expires_at";

/// A `projects` row as [`COLUMNS`] lists it.
#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: String,
    organisation_id: Option<String>,
    client_id: Option<String>,
    name: String,
    site_key: String,
    // Flags are 0/1 BIGINTs: the Any driver decodes a `bool` only from a boolean column.
    active: i64,
    production_domains: JsonText<Vec<String>>,
    testing_domains: JsonText<Vec<String>>,
    allow_subdomains: i64,
    key_version: InRange<u32>,
    #[sqlx(flatten)]
    preset: PresetColumns,
    risk_mode: Named<RiskMode>,
    plan: String,
    // An unknown status must not let traffic through. Failing the read lets none through on
    // its account: no snapshot entry is built from the row, so the edge keeps the last one
    // published from a known status (none, for a project never published).
    billing_status: Named<BillingStatus>,
    monthly_limit: Option<InRange<u64>>,
    widget_variant: Named<Variant>,
    widget_theme: Named<Theme>,
    widget_language: String,
    widget_size: Named<WidgetSize>,
    widget_branding: Named<Branding>,
    revision: i64,
    previous_secret_expires_at: Option<i64>,
}

impl TryFrom<ProjectRow> for Project {
    type Error = sqlx::Error;

    fn try_from(row: ProjectRow) -> Result<Self, sqlx::Error> {
        let settings = ProjectSettings {
            name: row.name,
            production_domains: row.production_domains.0,
            testing_domains: row.testing_domains.0,
            allow_subdomains: row.allow_subdomains != 0,
            preset: row.preset.preset()?,
            risk_mode: row.risk_mode.0,
            plan: row.plan,
            billing_status: row.billing_status.0,
            monthly_limit: row.monthly_limit.map(|limit| limit.0),
            active: row.active != 0,
            widget: WidgetSettings {
                variant: row.widget_variant.0,
                theme: row.widget_theme.0,
                language: row.widget_language,
                size: row.widget_size.0,
                branding: row.widget_branding.0,
            },
        };
        Ok(Project {
            id: row.id,
            site_key: row.site_key,
            key_version: row.key_version.0,
            organisation_id: row.organisation_id,
            client_id: row.client_id,
            settings,
            revision: row.revision,
            previous_secret_expires_at: row.previous_secret_expires_at,
        })
    }
}

/// The preset's columns of a project row: see [`settings_columns`] for how they are written.
#[derive(sqlx::FromRow)]
struct PresetColumns {
    preset: String,
    custom_difficulty: Option<InRange<u32>>,
    custom_challenge_count: Option<InRange<u32>>,
    custom_obfuscation: Option<Named<Obfuscation>>,
    custom_rate_limit: Option<InRange<u32>>,
    custom_block_threshold: Option<InRange<u8>>,
    custom_puzzle: Option<Named<PuzzleKind>>,
    custom_squarings: Option<InRange<u32>>,
}

impl PresetColumns {
    fn preset(self) -> Result<Preset, sqlx::Error> {
        match self.preset.as_str() {
            "relaxed" => Ok(Preset::Relaxed),
            "balanced" => Ok(Preset::Balanced),
            "strict" => Ok(Preset::Strict),
            "custom" => Ok(Preset::Custom(self.custom())),
            unknown => Err(columns::unknown_name("preset", unknown)),
        }
    }

    /// A Custom preset's numbers; one left NULL (a row from before its column existed)
    /// takes Balanced's value.
    fn custom(&self) -> Protection {
        let balanced = Protection::BALANCED;
        let or_balanced =
            |stored: Option<InRange<u32>>, balanced: u32| stored.map_or(balanced, |n| n.0);
        Protection {
            difficulty: or_balanced(self.custom_difficulty, balanced.difficulty),
            challenge_count: or_balanced(self.custom_challenge_count, balanced.challenge_count),
            obfuscation: self
                .custom_obfuscation
                .map_or(balanced.obfuscation, |named| named.0),
            rate_limit: or_balanced(self.custom_rate_limit, balanced.rate_limit),
            block_threshold: self
                .custom_block_threshold
                .map_or(balanced.block_threshold, |tenths| {
                    Score::from_tenths(tenths.0)
                }),
            puzzle: self
                .custom_puzzle
                .map_or(PuzzleKind::Sha256, |named| named.0),
            squarings: or_balanced(self.custom_squarings, balanced.squarings),
        }
    }
}

/// `SELECT` of every project column, then `rest` (conditions and order).
fn select(rest: &str) -> QueryAs<'static, Any, ProjectRow, AnyArguments> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM projects {rest}"
    )))
}

/// Stores a new project with the given keys; the secret is stored hashed.
pub async fn insert(
    db: &Db,
    organisation_id: Option<&str>,
    new: &ProjectSettings,
    site_key: &str,
    secret: &str,
    now_ms: i64,
) -> Result<Project, sqlx::Error> {
    let id = crate::secrets::new_id();
    settings_columns(new)
        .set("id", id.as_str())
        .set("organisation_id", organisation_id)
        .set("site_key", site_key)
        .set("secret_hash", crate::secrets::hash_secret(secret))
        .set("key_version", 1_i64)
        .set("plan", new.plan.as_str())
        .set("billing_status", new.billing_status.as_str())
        .set("created_at", now_ms)
        .set("updated_at", now_ms)
        .insert_into(db.backend(), "projects", "")
        .execute(db.pool())
        .await?;
    find(db, &id).await?.ok_or(sqlx::Error::RowNotFound)
}

/// Saves what a customer may change: everything but the plan and billing state, which
/// billing owns.
pub async fn update_settings(
    db: &Db,
    project_id: &str,
    settings: &ProjectSettings,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    settings_columns(settings)
        .set("updated_at", now_ms)
        .update_where("projects", "revision = revision + 1", "id", project_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Files a project under a client of its organisation, or under none. The caller checks the
/// client belongs to the same organisation.
pub async fn set_client(
    db: &Db,
    project_id: &str,
    client_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projects SET client_id = $1 WHERE id = $2")
        .bind(client_id)
        .bind(project_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Deletes a project and queues its site key for removal from the edge's KV.
pub async fn delete(db: &Db, project: &Project, now_ms: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO snapshot_deletions (site_key, requested_at) VALUES ($1, $2) \
         ON CONFLICT (site_key) DO NOTHING",
    )
    .bind(&project.site_key)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(&project.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    db.found_by_secret().forget();
    Ok(())
}

/// The project with this id.
pub async fn find(db: &Db, project_id: &str) -> Result<Option<Project>, sqlx::Error> {
    select("WHERE id = $1")
        .bind(project_id)
        .fetch_optional(db.pool())
        .await?
        .map(Project::try_from)
        .transpose()
}

/// The organisation's project with this id: another organisation's id finds nothing.
pub async fn find_in_organisation(
    db: &Db,
    organisation_id: &str,
    project_id: &str,
) -> Result<Option<Project>, sqlx::Error> {
    select("WHERE id = $1 AND organisation_id = $2")
        .bind(project_id)
        .bind(organisation_id)
        .fetch_optional(db.pool())
        .await?
        .map(Project::try_from)
        .transpose()
}

/// An organisation's projects, oldest first.
pub async fn list_for_organisation(
    db: &Db,
    organisation_id: &str,
) -> Result<Vec<Project>, sqlx::Error> {
    select("WHERE organisation_id = $1 ORDER BY created_at, id")
        .bind(organisation_id)
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .map(Project::try_from)
        .collect()
}

/// The project with this public site key.
pub async fn find_by_site_key(db: &Db, site_key: &str) -> Result<Option<Project>, sqlx::Error> {
    select("WHERE site_key = $1")
        .bind(site_key)
        .fetch_optional(db.pool())
        .await?
        .map(Project::try_from)
        .transpose()
}

/// The project whose backend secret this is: the current one, or the one it replaced while
/// the rotation's overlap window lasts.
pub async fn find_by_secret(
    db: &Db,
    secret: &str,
    now_ms: i64,
) -> Result<Option<std::sync::Arc<Project>>, sqlx::Error> {
    let secret_hash = crate::secrets::hash_secret(secret);
    if let Some(found) = db.found_by_secret().get(&secret_hash) {
        return Ok(found.at(now_ms));
    }
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, CAST(CASE WHEN secret_hash = $1 THEN 1 ELSE 0 END AS BIGINT) \
         AS by_current_secret FROM projects WHERE secret_hash = $1 \
         OR (previous_secret_hash = $1 AND previous_secret_expires_at > $2)"
    )))
    .bind(&secret_hash)
    .bind(now_ms)
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let current = row.try_get::<i64, _>("by_current_secret")? == 1;
    let project = std::sync::Arc::new(Project::try_from(ProjectRow::from_row(&row)?)?);
    db.found_by_secret()
        .remember(secret_hash, project.clone(), current);
    Ok(Some(project))
}

/// How long a project found by its backend secret is answered from memory: siteverify asks
/// for the same few projects thousands of times a second, and reading one costs more than
/// the rest of a verification. A change made in this process forgets them at once
/// ([`FoundBySecret::forget`]); one made by another replica or the CLI reaches this process
/// within this time.
const FOUND_BY_SECRET_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Most projects remembered at once; beyond, all are forgotten (unknown secrets are never
/// remembered, so guessing cannot fill it).
const MAX_FOUND_BY_SECRET: usize = 10_000;

/// Projects recently found by backend secret, by the secret's hash.
#[derive(Debug, Clone, Default)]
pub struct FoundBySecret(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Found>>>,
);

/// A project found by secret, when, and whether by its current secret or the previous one.
/// Shared, not copied, with each siteverify call that finds it.
#[derive(Debug, Clone)]
struct Found {
    project: std::sync::Arc<Project>,
    at: std::time::Instant,
    current: bool,
}

impl Found {
    /// The project, if the secret still names it at `now_ms`: a previous secret only until
    /// its grace period ends.
    fn at(self, now_ms: i64) -> Option<std::sync::Arc<Project>> {
        let valid = self.current
            || self
                .project
                .previous_secret_expires_at
                .is_some_and(|until| until > now_ms);
        valid.then_some(self.project)
    }
}

impl FoundBySecret {
    fn get(&self, secret_hash: &str) -> Option<Found> {
        let found = self.0.lock().expect("not poisoned");
        found
            .get(secret_hash)
            .filter(|found| found.at.elapsed() < FOUND_BY_SECRET_FOR)
            .cloned()
    }

    fn remember(&self, secret_hash: String, project: std::sync::Arc<Project>, current: bool) {
        let mut found = self.0.lock().expect("not poisoned");
        if found.len() >= MAX_FOUND_BY_SECRET {
            found.clear();
        }
        let at = std::time::Instant::now();
        found.insert(
            secret_hash,
            Found {
                project,
                at,
                current,
            },
        );
    }

    /// Forgets every project: called after a change to a project's secrets, key version or
    /// existence commits.
    pub fn forget(&self) {
        self.0.lock().expect("not poisoned").clear();
    }
}

/// Every project, for a full snapshot publish; unreadable rows are left out
/// ([`readable_projects`]).
pub async fn list_all(db: &Db) -> Result<Vec<Project>, sqlx::Error> {
    readable_projects(db, "ORDER BY created_at, id").await
}

/// Replaces a project's backend secret; the old one verifies until `old_valid_until`.
pub async fn rotate_secret(
    db: &Db,
    project_id: &str,
    secret: &str,
    old_valid_until: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projects SET previous_secret_hash = secret_hash, previous_secret_expires_at = $1, \
         secret_hash = $2, updated_at = $3, revision = revision + 1 WHERE id = $4",
    )
    .bind(old_valid_until)
    .bind(crate::secrets::hash_secret(secret))
    .bind(now_ms)
    .bind(project_id)
    .execute(db.pool())
    .await?;
    db.found_by_secret().forget();
    Ok(())
}

/// Moves a project to its next token key version, so every challenge and verification
/// token signed under the old key stops verifying; returns the new version.
pub async fn bump_key_version(db: &Db, project_id: &str, now_ms: i64) -> Result<u32, sqlx::Error> {
    let version: InRange<u32> = sqlx::query_scalar(
        "UPDATE projects SET key_version = key_version + 1, updated_at = $1, revision = revision + 1 \
         WHERE id = $2 RETURNING key_version",
    )
    .bind(now_ms)
    .bind(project_id)
    .fetch_one(db.pool())
    .await?;
    db.found_by_secret().forget();
    Ok(version.0)
}

/// Projects changed since they were last published; unreadable rows are left out
/// ([`readable_projects`]).
pub async fn unpublished(db: &Db) -> Result<Vec<Project>, sqlx::Error> {
    readable_projects(
        db,
        "WHERE published_revision < revision ORDER BY updated_at, id",
    )
    .await
}

/// The projects `rest` selects that this version can read. A row holding a value it does not
/// know (a newer version's, or a corrupted one) is logged and left out rather than failing the
/// whole list: what the publisher reads must not let one bad row hold back every other
/// project's snapshot. The left-out project keeps the entry the edge last had (Cloudflare KV)
/// and stays unpublished, so it is retried; the dev server's full refresh drops it.
async fn readable_projects(db: &Db, rest: &str) -> Result<Vec<Project>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM projects {rest}"
    )))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            match ProjectRow::from_row(row).and_then(Project::try_from) {
                Ok(project) => Some(project),
                Err(err) => {
                    let project_id = row.try_get::<String, _>("id").unwrap_or_default();
                    tracing::error!(project_id, error = %err, "project row unreadable; left out of the snapshot");
                    None
                }
            }
        })
        .collect())
}

/// Records that the edge has the project as of `revision`; a change made meanwhile keeps it
/// unpublished.
pub async fn mark_published(db: &Db, project_id: &str, revision: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projects SET published_revision = $1 WHERE id = $2 AND revision = $1")
        .bind(revision)
        .bind(project_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// What the edge does not have yet: projects changed since their last publish, and
/// deletions KV has not confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishBacklog {
    /// Projects whose revision is ahead of the one published.
    pub projects: i64,
    /// Deleted projects' site keys still in KV.
    pub deletions: i64,
}

/// Counts the publisher's backlog (read by `/metrics`).
pub async fn publish_backlog(db: &Db) -> Result<PublishBacklog, sqlx::Error> {
    let (projects, deletions) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM projects WHERE published_revision < revision), \
                (SELECT COUNT(*) FROM snapshot_deletions)",
    )
    .fetch_one(db.pool())
    .await?;
    Ok(PublishBacklog {
        projects,
        deletions,
    })
}

/// Site keys of deleted projects still in the edge's KV.
pub async fn pending_deletions(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT site_key FROM snapshot_deletions ORDER BY requested_at, site_key")
        .fetch_all(db.pool())
        .await
}

/// Forgets deletions the edge has carried out.
pub async fn clear_deletions(db: &Db, site_keys: &[String]) -> Result<(), sqlx::Error> {
    for site_key in site_keys {
        sqlx::query("DELETE FROM snapshot_deletions WHERE site_key = $1")
            .bind(site_key)
            .execute(db.pool())
            .await?;
    }
    Ok(())
}

/// Replaces a project's backend secret outright, with no overlap (the demo's fixed secret).
pub async fn set_secret(
    db: &Db,
    project_id: &str,
    secret: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projects SET secret_hash = $1, updated_at = $2, revision = revision + 1 WHERE id = $3")
        .bind(crate::secrets::hash_secret(secret))
        .bind(now_ms)
        .bind(project_id)
        .execute(db.pool())
        .await?;
    db.found_by_secret().forget();
    Ok(())
}

/// Updates the gates the edge reads: active flag, billing status and monthly limit.
pub async fn set_gates(
    db: &Db,
    project_id: &str,
    active: bool,
    billing_status: BillingStatus,
    monthly_limit: Option<u64>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projects SET active = $1, billing_status = $2, monthly_limit = $3, \
         updated_at = $4, revision = revision + 1 WHERE id = $5",
    )
    .bind(i64::from(active))
    .bind(billing_status.as_str())
    .bind(stored_limit(monthly_limit))
    .bind(now_ms)
    .bind(project_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::columns::ColumnValue;
    use super::*;
    use crate::db::testing::{assert_unknown, fresh_databases};

    async fn new_project(db: &Db) -> Project {
        let settings = ProjectSettings::new_project("free", BillingStatus::Active);
        let site_key = crate::secrets::new_id();
        let secret = crate::secrets::new_backend_secret();
        insert(db, None, &settings, &site_key, &secret, 1)
            .await
            .unwrap()
    }

    /// Stores `value` in one of the project's columns behind the repository's back, as a
    /// newer version or a hand edit could.
    async fn store(
        db: &Db,
        project: &Project,
        column: &'static str,
        value: impl Into<ColumnValue>,
    ) {
        ColumnValues::default()
            .set(column, value)
            .update_where(
                "projects",
                "revision = revision + 1",
                "id",
                project.id.as_str(),
            )
            .execute(db.pool())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_project_found_by_secret_is_remembered_for_a_second_unless_changed_here() {
        for db in fresh_databases().await {
            let settings = ProjectSettings::new_project("free", BillingStatus::Active);
            let project = insert(&db, None, &settings, "sk-remembered", "first", 1)
                .await
                .unwrap();
            let found = |secret: &'static str, now_ms: i64| {
                let db = db.clone();
                async move {
                    find_by_secret(&db, secret, now_ms)
                        .await
                        .unwrap()
                        .map(|p| p.id.clone())
                }
            };
            assert_eq!(
                found("first", 2).await.as_deref(),
                Some(project.id.as_str())
            );
            // Rotated here with a grace period: both secrets verify, the old one only until
            // the period ends, remembered or not.
            rotate_secret(&db, &project.id, "second", 10, 3)
                .await
                .unwrap();
            assert_eq!(
                found("first", 4).await.as_deref(),
                Some(project.id.as_str())
            );
            assert_eq!(found("first", 10).await, None);
            assert_eq!(
                found("second", 10).await.as_deref(),
                Some(project.id.as_str())
            );
            // Changed behind this process's back (another replica, the CLI): remembered
            // until the second is up, then read again.
            store(
                &db,
                &project,
                "secret_hash",
                crate::secrets::hash_secret("third"),
            )
            .await;
            assert_eq!(
                found("second", 11).await.as_deref(),
                Some(project.id.as_str())
            );
            tokio::time::sleep(FOUND_BY_SECRET_FOR + std::time::Duration::from_millis(50)).await;
            assert_eq!(found("second", 12).await, None);
            assert_eq!(
                found("third", 12).await.as_deref(),
                Some(project.id.as_str())
            );
            // Deleted here: forgotten at once.
            delete(&db, &project, 13).await.unwrap();
            assert_eq!(found("third", 14).await, None);
        }
    }

    #[tokio::test]
    async fn an_unknown_stored_name_is_an_error_not_a_default() {
        for db in fresh_databases().await {
            for (column, value) in [
                ("preset", "extreme"),
                ("billing_status", "suspended"),
                ("risk_mode", "block_everything"),
                ("widget_variant", "popup"),
                ("widget_branding", "loud"),
            ] {
                let project = new_project(&db).await;
                store(&db, &project, column, value).await;
                assert_unknown(find(&db, &project.id).await, column, value);
                // What the snapshot is built from leaves it out, rather than publishing a
                // guess or holding back every other project.
                let other = new_project(&db).await;
                let pending: Vec<String> = unpublished(&db)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|p| p.id)
                    .collect();
                assert_eq!(pending, [other.id.as_str()]);
                let all: Vec<String> = list_all(&db)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|p| p.id)
                    .collect();
                assert_eq!(all, [other.id.as_str()]);
                delete(&db, &other, 2).await.unwrap();
                delete(&db, &project, 2).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn a_custom_preset_with_an_unknown_or_impossible_number_is_an_error() {
        for db in fresh_databases().await {
            let project = new_project(&db).await;
            store(&db, &project, "preset", "custom").await;
            // Columns left NULL, as on rows from before they existed, take Balanced's values.
            assert_eq!(
                find(&db, &project.id)
                    .await
                    .unwrap()
                    .unwrap()
                    .settings
                    .preset,
                Preset::Custom(Protection::BALANCED)
            );
            store(&db, &project, "custom_obfuscation", "heaviest").await;
            assert_unknown(
                find(&db, &project.id).await,
                "custom_obfuscation",
                "heaviest",
            );
            store(&db, &project, "custom_obfuscation", "default").await;
            store(&db, &project, "custom_difficulty", -1_i64).await;
            assert_unknown(find(&db, &project.id).await, "custom_difficulty", "-1");
        }
    }

    #[tokio::test]
    async fn numbers_out_of_range_and_malformed_domain_lists_are_errors() {
        for db in fresh_databases().await {
            for (column, value, shown) in [
                ("key_version", ColumnValue::from(-1_i64), "-1"),
                ("monthly_limit", ColumnValue::from(-5_i64), "-5"),
                (
                    "production_domains",
                    ColumnValue::from("example.com"),
                    "example.com",
                ),
            ] {
                let project = new_project(&db).await;
                store(&db, &project, column, value).await;
                assert_unknown(find(&db, &project.id).await, column, shown);
                delete(&db, &project, 2).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn every_billing_status_reads_back_as_written() {
        for db in fresh_databases().await {
            let project = new_project(&db).await;
            for status in [
                BillingStatus::Active,
                BillingStatus::Trialing,
                BillingStatus::PastDue,
                BillingStatus::Canceled,
            ] {
                set_gates(&db, &project.id, true, status, None, 2)
                    .await
                    .unwrap();
                let read = find(&db, &project.id).await.unwrap().unwrap();
                assert_eq!(read.settings.billing_status, status);
            }
        }
    }
}
