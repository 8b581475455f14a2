//! An organisation's billing state: its plan and whether its traffic is paid for.

use serde::Serialize;
use sqlx::FromRow;

use super::Db;
use super::columns::Named;
use super::projects::BillingStatus;
use crate::plans;

/// What an organisation pays for. An organisation never billed is on Free, active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganisationBilling {
    /// The plan's id in the catalogue.
    pub plan: String,
    /// Whether the subscription is paid up.
    pub status: BillingStatus,
    /// When a payment first failed, Unix ms; traffic continues for the grace period after.
    pub past_due_since: Option<i64>,
}

impl Default for OrganisationBilling {
    fn default() -> Self {
        Self {
            plan: plans::FREE.to_owned(),
            status: BillingStatus::Active,
            past_due_since: None,
        }
    }
}

#[derive(FromRow)]
struct BillingRow {
    plan: String,
    status: Named<BillingStatus>,
    past_due_since: Option<i64>,
}

/// The organisation's billing state.
pub async fn find(db: &Db, organisation_id: &str) -> Result<OrganisationBilling, sqlx::Error> {
    let row: Option<BillingRow> = sqlx::query_as(
        "SELECT plan, status, past_due_since FROM organisation_billing WHERE organisation_id = $1",
    )
    .bind(organisation_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(
        row.map_or_else(OrganisationBilling::default, |row| OrganisationBilling {
            plan: row.plan,
            status: row.status.0,
            past_due_since: row.past_due_since,
        }),
    )
}

/// Sets the organisation's billing state, and marks its projects changed so the edge gets
/// the new gates with the next publish.
pub async fn set(
    db: &Db,
    organisation_id: &str,
    billing: &OrganisationBilling,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO organisation_billing (organisation_id, plan, status, past_due_since, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (organisation_id) DO UPDATE SET plan = excluded.plan, status = excluded.status, \
         past_due_since = excluded.past_due_since, updated_at = excluded.updated_at",
    )
    .bind(organisation_id)
    .bind(billing.plan.as_str())
    .bind(billing.status.as_str())
    .bind(billing.past_due_since)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE projects SET revision = revision + 1 WHERE organisation_id = $1")
        .bind(organisation_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Protected attempts across the organisation's projects in `month` (`YYYY-MM`).
pub async fn organisation_usage(
    db: &Db,
    organisation_id: &str,
    month: &str,
) -> Result<u64, sqlx::Error> {
    let total: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(u.protected_attempts) AS BIGINT) FROM usage_months u \
         JOIN projects p ON p.id = u.project_id WHERE p.organisation_id = $1 AND u.month = $2",
    )
    .bind(organisation_id)
    .bind(month)
    .fetch_one(db.pool())
    .await?;
    Ok(total.map_or(0, |total| u64::try_from(total).unwrap_or(0)))
}
