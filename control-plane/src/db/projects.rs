//! Projects: the rows behind site keys, and what the snapshot is built from.

use humanproof_protocol::Preset;
use humanproof_protocol::snapshot::RiskMode;
use sqlx::Row;
use sqlx::any::AnyRow;

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
    /// Everything its owner configures.
    pub settings: ProjectSettings,
}

/// Billing state as far as traffic is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    /// Whether the project starts active.
    pub active: bool,
}

fn preset_columns(preset: Preset) -> (&'static str, Option<i64>, Option<i64>) {
    match preset {
        Preset::Custom { difficulty, challenge_count } => {
            ("custom", Some(i64::from(difficulty)), Some(i64::from(challenge_count)))
        }
        other => (other.name(), None, None),
    }
}

fn preset_from_columns(name: &str, difficulty: Option<i64>, count: Option<i64>) -> Preset {
    match name {
        "relaxed" => Preset::Relaxed,
        "strict" => Preset::Strict,
        "custom" => Preset::Custom {
            difficulty: difficulty.and_then(|d| u32::try_from(d).ok()).unwrap_or(4),
            challenge_count: count.and_then(|c| u32::try_from(c).ok()).unwrap_or(80),
        },
        _ => Preset::Balanced,
    }
}

fn risk_mode_str(mode: RiskMode) -> &'static str {
    match mode {
        RiskMode::Observe => "observe",
        RiskMode::Enforce => "enforce",
    }
}

const COLUMNS: &str = "id, name, site_key, active, production_domains, testing_domains, \
    allow_subdomains, key_version, preset, custom_difficulty, custom_challenge_count, \
    risk_mode, plan, billing_status, monthly_limit";

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
        preset: preset_from_columns(
            &row.try_get::<String, _>("preset")?,
            row.try_get("custom_difficulty")?,
            row.try_get("custom_challenge_count")?,
        ),
        risk_mode: match row.try_get::<String, _>("risk_mode")?.as_str() {
            "enforce" => RiskMode::Enforce,
            _ => RiskMode::Observe,
        },
        plan: row.try_get("plan")?,
        billing_status: BillingStatus::parse(&row.try_get::<String, _>("billing_status")?),
        monthly_limit: row
            .try_get::<Option<i64>, _>("monthly_limit")?
            .map(|limit| u64::try_from(limit).unwrap_or(0)),
    };
    Ok(Project {
        id: row.try_get("id")?,
        site_key: row.try_get("site_key")?,
        key_version: u32::try_from(row.try_get::<i64, _>("key_version")?).unwrap_or(1),
        settings,
    })
}

/// Stores a new project with the given keys; the secret is stored hashed.
pub async fn insert(
    db: &Db,
    new: &ProjectSettings,
    site_key: &str,
    secret: &str,
    now_ms: i64,
) -> Result<Project, sqlx::Error> {
    let id = crate::secrets::new_id();
    let (preset, difficulty, count) = preset_columns(new.preset);
    sqlx::query(
        "INSERT INTO projects (id, name, site_key, secret_hash, active, production_domains, \
         testing_domains, allow_subdomains, key_version, preset, custom_difficulty, \
         custom_challenge_count, risk_mode, plan, billing_status, monthly_limit, created_at, \
         updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
    )
    .bind(&id)
    .bind(&new.name)
    .bind(site_key)
    .bind(crate::secrets::hash_secret(secret))
    .bind(i64::from(new.active))
    .bind(serde_json::to_string(&new.production_domains).expect("strings serialize"))
    .bind(serde_json::to_string(&new.testing_domains).expect("strings serialize"))
    .bind(i64::from(new.allow_subdomains))
    .bind(preset)
    .bind(difficulty)
    .bind(count)
    .bind(risk_mode_str(new.risk_mode))
    .bind(&new.plan)
    .bind(new.billing_status.as_str())
    .bind(new.monthly_limit.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX)))
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    find_by_site_key(db, site_key)
        .await?
        .ok_or_else(|| sqlx::Error::RowNotFound)
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

/// The project whose backend secret this is.
pub async fn find_by_secret(db: &Db, secret: &str) -> Result<Option<Project>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE secret_hash = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(crate::secrets::hash_secret(secret))
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

/// Replaces a project's backend secret (the demo's fixed secret, and rotation later).
pub async fn set_secret(db: &Db, project_id: &str, secret: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projects SET secret_hash = $1, updated_at = $2 WHERE id = $3")
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
         updated_at = $4 WHERE id = $5",
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
