//! Projects: the rows behind site keys, and what the snapshot is built from.

use humanproof_protocol::snapshot::RiskMode;
use humanproof_protocol::wire::{Branding, Variant};
use humanproof_protocol::{Obfuscation, Preset, Protection, Score};
use serde::{Deserialize, Serialize};
use sqlx::Any;
use sqlx::Row;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;

use super::Db;

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

/// Billing state as far as traffic is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingStatus {
    /// Paid up or on a free plan.
    Active,
    /// In a trial.
    Trialing,
    /// A payment failed; traffic stops.
    PastDue,
    /// The subscription ended; traffic stops.
    Canceled,
}

impl BillingStatus {
    /// Whether the edge serves traffic in this state.
    pub fn allows_traffic(self) -> bool {
        matches!(self, Self::Active | Self::Trialing)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Trialing => "trialing",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "active" => Self::Active,
            "trialing" => Self::Trialing,
            "past_due" => Self::PastDue,
            // An unknown state must not let traffic through.
            _ => Self::Canceled,
        }
    }
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
    pub widget: WidgetOptions,
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
            widget: WidgetOptions::default(),
        }
    }
}

/// Widget defaults the integration page writes into the snippet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetOptions {
    /// checkbox, invisible or floating.
    pub variant: Variant,
    /// auto, light or dark.
    pub theme: String,
    /// auto (the page's language) or a language code the widget knows.
    pub language: String,
    /// normal or compact.
    pub size: String,
    /// full, minimal or none, as far as the plan allows.
    pub branding: Branding,
}

impl Default for WidgetOptions {
    fn default() -> Self {
        Self {
            variant: Variant::Checkbox,
            theme: "auto".into(),
            language: "auto".into(),
            size: "normal".into(),
            branding: Branding::Full,
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

fn enum_from_name<T: for<'de> Deserialize<'de>>(name: &str, fallback: T) -> T {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).unwrap_or(fallback)
}

/// How a preset is stored: its name, and a Custom preset's numbers (NULL for the named
/// presets, whose numbers live in code).
struct PresetColumns {
    name: &'static str,
    difficulty: Option<i64>,
    challenge_count: Option<i64>,
    obfuscation: Option<&'static str>,
    rate_limit: Option<i64>,
    block_threshold: Option<i64>,
}

impl PresetColumns {
    fn of(preset: Preset) -> Self {
        let custom = match preset {
            Preset::Custom(custom) => Some(custom),
            _ => None,
        };
        Self {
            name: preset.name(),
            difficulty: custom.map(|c| i64::from(c.difficulty)),
            challenge_count: custom.map(|c| i64::from(c.challenge_count)),
            obfuscation: custom.map(|c| c.obfuscation.name()),
            rate_limit: custom.map(|c| i64::from(c.rate_limit)),
            block_threshold: custom.map(|c| i64::from(c.block_threshold.tenths())),
        }
    }

    /// Binds the six preset columns, in the order the queries list them.
    fn bind_to<'q>(self, query: Query<'q, Any, AnyArguments>) -> Query<'q, Any, AnyArguments> {
        query
            .bind(self.name)
            .bind(self.difficulty)
            .bind(self.challenge_count)
            .bind(self.obfuscation)
            .bind(self.rate_limit)
            .bind(self.block_threshold)
    }

    fn read(row: &AnyRow) -> Result<Preset, sqlx::Error> {
        Ok(match row.try_get::<String, _>("preset")?.as_str() {
            "relaxed" => Preset::Relaxed,
            "strict" => Preset::Strict,
            "custom" => {
                // A column left NULL (a row from before the column existed) takes Balanced's value.
                let fallback = Protection::BALANCED;
                let number = |column: &str, fallback: u32| -> Result<u32, sqlx::Error> {
                    Ok(row
                        .try_get::<Option<i64>, _>(column)?
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(fallback))
                };
                Preset::Custom(Protection {
                    difficulty: number("custom_difficulty", fallback.difficulty)?,
                    challenge_count: number("custom_challenge_count", fallback.challenge_count)?,
                    obfuscation: row
                        .try_get::<Option<String>, _>("custom_obfuscation")?
                        .and_then(|name| Obfuscation::from_name(&name))
                        .unwrap_or(fallback.obfuscation),
                    rate_limit: number("custom_rate_limit", fallback.rate_limit)?,
                    block_threshold: row
                        .try_get::<Option<i64>, _>("custom_block_threshold")?
                        .and_then(|tenths| u8::try_from(tenths).ok())
                        .map_or(fallback.block_threshold, Score::from_tenths),
                })
            }
            _ => Preset::Balanced,
        })
    }
}

const COLUMNS: &str = "id, organisation_id, client_id, name, site_key, active, production_domains, \
    testing_domains, allow_subdomains, key_version, preset, custom_difficulty, \
    custom_challenge_count, custom_obfuscation, custom_rate_limit, custom_block_threshold, risk_mode, plan, billing_status, monthly_limit, widget_variant, \
    widget_theme, widget_language, widget_size, widget_branding, revision, \
    previous_secret_expires_at";

fn from_row(row: &AnyRow) -> Result<Project, sqlx::Error> {
    let domains = |column: &str| -> Result<Vec<String>, sqlx::Error> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|err| sqlx::Error::Decode(Box::new(err)))
    };
    let settings = ProjectSettings {
        name: row.try_get("name")?,
        active: row.try_get::<i64, _>("active")? != 0,
        production_domains: domains("production_domains")?,
        testing_domains: domains("testing_domains")?,
        allow_subdomains: row.try_get::<i64, _>("allow_subdomains")? != 0,
        preset: PresetColumns::read(row)?,
        risk_mode: match row.try_get::<String, _>("risk_mode")?.as_str() {
            "enforce" => RiskMode::Enforce,
            _ => RiskMode::Observe,
        },
        plan: row.try_get("plan")?,
        billing_status: BillingStatus::parse(&row.try_get::<String, _>("billing_status")?),
        monthly_limit: row
            .try_get::<Option<i64>, _>("monthly_limit")?
            .map(|limit| u64::try_from(limit).unwrap_or(0)),
        widget: WidgetOptions {
            variant: enum_from_name(
                &row.try_get::<String, _>("widget_variant")?,
                Variant::Checkbox,
            ),
            theme: row.try_get("widget_theme")?,
            language: row.try_get("widget_language")?,
            size: row.try_get("widget_size")?,
            branding: enum_from_name(
                &row.try_get::<String, _>("widget_branding")?,
                Branding::Full,
            ),
        },
    };
    Ok(Project {
        id: row.try_get("id")?,
        site_key: row.try_get("site_key")?,
        key_version: u32::try_from(row.try_get::<i64, _>("key_version")?).unwrap_or(1),
        organisation_id: row.try_get("organisation_id")?,
        client_id: row.try_get("client_id")?,
        settings,
        revision: row.try_get("revision")?,
        previous_secret_expires_at: row.try_get("previous_secret_expires_at")?,
    })
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
    let preset = PresetColumns::of(new.preset);
    let query = sqlx::query(
        "INSERT INTO projects (id, organisation_id, name, site_key, secret_hash, active, \
         production_domains, testing_domains, allow_subdomains, key_version, preset, \
         custom_difficulty, custom_challenge_count, custom_obfuscation, custom_rate_limit, \
         custom_block_threshold, risk_mode, plan, billing_status, monthly_limit, widget_variant, \
         widget_theme, widget_language, widget_size, widget_branding, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22, $23, $24, $25, $25)",
    )
    .bind(&id)
    .bind(organisation_id)
    .bind(&new.name)
    .bind(site_key)
    .bind(crate::secrets::hash_secret(secret))
    .bind(i64::from(new.active))
    .bind(serde_json::to_string(&new.production_domains).expect("strings serialize"))
    .bind(serde_json::to_string(&new.testing_domains).expect("strings serialize"))
    .bind(i64::from(new.allow_subdomains));
    preset
        .bind_to(query)
        .bind(new.risk_mode.as_str())
        .bind(&new.plan)
        .bind(new.billing_status.as_str())
        .bind(
            new.monthly_limit
                .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX)),
        )
        .bind(enum_name(&new.widget.variant))
        .bind(&new.widget.theme)
        .bind(&new.widget.language)
        .bind(&new.widget.size)
        .bind(enum_name(&new.widget.branding))
        .bind(now_ms)
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
    let preset = PresetColumns::of(settings.preset);
    let query = sqlx::query(
        "UPDATE projects SET name = $1, active = $2, production_domains = $3, \
         testing_domains = $4, allow_subdomains = $5, preset = $6, custom_difficulty = $7, \
         custom_challenge_count = $8, custom_obfuscation = $9, custom_rate_limit = $10, \
         custom_block_threshold = $11, risk_mode = $12, monthly_limit = $13, widget_variant = $14, \
         widget_theme = $15, widget_language = $16, widget_size = $17, widget_branding = $18, \
         updated_at = $19, revision = revision + 1 WHERE id = $20",
    )
    .bind(&settings.name)
    .bind(i64::from(settings.active))
    .bind(serde_json::to_string(&settings.production_domains).expect("strings serialize"))
    .bind(serde_json::to_string(&settings.testing_domains).expect("strings serialize"))
    .bind(i64::from(settings.allow_subdomains));
    preset
        .bind_to(query)
        .bind(settings.risk_mode.as_str())
        .bind(
            settings
                .monthly_limit
                .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX)),
        )
        .bind(enum_name(&settings.widget.variant))
        .bind(&settings.widget.theme)
        .bind(&settings.widget.language)
        .bind(&settings.widget.size)
        .bind(enum_name(&settings.widget.branding))
        .bind(now_ms)
        .bind(project_id)
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
    tx.commit().await
}

/// The project with this id.
pub async fn find(db: &Db, project_id: &str) -> Result<Option<Project>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(project_id)
        .fetch_optional(db.pool())
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

/// The organisation's project with this id: another organisation's id finds nothing.
pub async fn find_in_organisation(
    db: &Db,
    organisation_id: &str,
    project_id: &str,
) -> Result<Option<Project>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1 AND organisation_id = $2");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(project_id)
        .bind(organisation_id)
        .fetch_optional(db.pool())
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

/// An organisation's projects, oldest first.
pub async fn list_for_organisation(
    db: &Db,
    organisation_id: &str,
) -> Result<Vec<Project>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM projects WHERE organisation_id = $1 ORDER BY created_at, id"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(organisation_id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// The project with this public site key.
pub async fn find_by_site_key(db: &Db, site_key: &str) -> Result<Option<Project>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE site_key = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(site_key)
        .fetch_optional(db.pool())
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

/// The project whose backend secret this is: the current one, or the one it replaced while
/// the rotation's overlap window lasts.
pub async fn find_by_secret(
    db: &Db,
    secret: &str,
    now_ms: i64,
) -> Result<Option<Project>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM projects WHERE secret_hash = $1 \
         OR (previous_secret_hash = $1 AND previous_secret_expires_at > $2)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(crate::secrets::hash_secret(secret))
        .bind(now_ms)
        .fetch_optional(db.pool())
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

/// Every project, for a full snapshot publish.
pub async fn list_all(db: &Db) -> Result<Vec<Project>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM projects ORDER BY created_at, id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(from_row)
        .collect()
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
    Ok(())
}

/// Moves a project to its next token key version, so every challenge and verification
/// token signed under the old key stops verifying; returns the new version.
pub async fn bump_key_version(db: &Db, project_id: &str, now_ms: i64) -> Result<u32, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE projects SET key_version = key_version + 1, updated_at = $1, revision = revision + 1 \
         WHERE id = $2 RETURNING key_version",
    )
    .bind(now_ms)
    .bind(project_id)
    .fetch_one(db.pool())
    .await?;
    u32::try_from(row.try_get::<i64, _>("key_version")?)
        .map_err(|err| sqlx::Error::Decode(Box::new(err)))
}

/// Projects changed since they were last published.
pub async fn unpublished(db: &Db) -> Result<Vec<Project>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM projects WHERE published_revision < revision ORDER BY updated_at, id"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(from_row)
        .collect()
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

/// Site keys of deleted projects still in the edge's KV.
pub async fn pending_deletions(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query("SELECT site_key FROM snapshot_deletions ORDER BY requested_at, site_key")
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|row| row.try_get("site_key"))
        .collect()
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
    .bind(monthly_limit.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX)))
    .bind(now_ms)
    .bind(project_id)
    .execute(db.pool())
    .await?;
    Ok(())
}
