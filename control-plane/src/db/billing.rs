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
    /// When a hard-capped plan last used up its included attempts (the first time in its
    /// month), Unix ms.
    pub cap_reached_at: Option<i64>,
    /// Whether a member dismissed the dashboard's banner about that.
    pub cap_banner_seen: bool,
}

impl Default for OrganisationBilling {
    fn default() -> Self {
        Self {
            plan: plans::FREE.to_owned(),
            status: BillingStatus::Active,
            past_due_since: None,
            cap_reached_at: None,
            cap_banner_seen: false,
        }
    }
}

impl OrganisationBilling {
    /// The state after a change to `plan` and `status` now: the grace period runs from the
    /// first failed payment, so a past-due time is kept while payment stays overdue and
    /// cleared once it is not; the cap fields are the usage notices' and stay.
    pub fn changed_to(&self, plan: &str, status: BillingStatus, now_ms: i64) -> Self {
        Self {
            plan: plan.to_owned(),
            status,
            past_due_since: match status {
                BillingStatus::PastDue => self.past_due_since.or(Some(now_ms)),
                _ => None,
            },
            ..self.clone()
        }
    }
}

#[derive(FromRow)]
struct BillingRow {
    plan: String,
    status: Named<BillingStatus>,
    past_due_since: Option<i64>,
    cap_reached_at: Option<i64>,
    cap_banner_seen: i64,
}

/// The organisation's billing state.
pub async fn find(db: &Db, organisation_id: &str) -> Result<OrganisationBilling, sqlx::Error> {
    let row: Option<BillingRow> = sqlx::query_as(
        "SELECT plan, status, past_due_since, cap_reached_at, cap_banner_seen \
         FROM organisation_billing WHERE organisation_id = $1",
    )
    .bind(organisation_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(
        row.map_or_else(OrganisationBilling::default, |row| OrganisationBilling {
            plan: row.plan,
            status: row.status.0,
            past_due_since: row.past_due_since,
            cap_reached_at: row.cap_reached_at,
            cap_banner_seen: row.cap_banner_seen != 0,
        }),
    )
}

/// Sets the organisation's plan, status and past-due time (not the cap fields, which the
/// usage notices keep), and marks its projects changed so the edge gets
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

/// Records that the usage notice at `percent` of the included attempts went out for `month`;
/// `false` if it already had, so each notice is sent once however often this is called.
pub async fn record_usage_notice(
    db: &Db,
    organisation_id: &str,
    month: &str,
    percent: u8,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO usage_notices (organisation_id, month, percent, sent_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organisation_id, month, percent) DO NOTHING",
    )
    .bind(organisation_id)
    .bind(month)
    .bind(i64::from(percent))
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Records that the organisation used up its plan's included attempts now, and shows the
/// dashboard's banner about it again. An organisation without a billing row is on Free.
pub async fn record_cap_reached(
    db: &Db,
    organisation_id: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO organisation_billing \
         (organisation_id, plan, status, cap_reached_at, cap_banner_seen, updated_at) \
         VALUES ($1, $2, 'active', $3, 0, $3) \
         ON CONFLICT (organisation_id) DO UPDATE SET cap_reached_at = excluded.cap_reached_at, \
         cap_banner_seen = 0, updated_at = excluded.updated_at",
    )
    .bind(organisation_id)
    .bind(plans::FREE)
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Hides the banner about the used-up allowance until the allowance is used up again.
pub async fn dismiss_cap_banner(db: &Db, organisation_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE organisation_billing SET cap_banner_seen = 1 WHERE organisation_id = $1")
        .bind(organisation_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The Stripe customer and subscription behind an organisation's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeLink {
    /// `cus_…`.
    pub customer_id: String,
    /// `sub_…`; `None` once the subscription ended.
    pub subscription_id: Option<String>,
    /// The interval billed (`month` or `year`).
    pub interval: Option<String>,
    /// When the current period ends, Unix seconds.
    pub current_period_end: Option<i64>,
}

/// Records the organisation's Stripe customer and subscription (the row exists: [`set`]
/// runs first).
pub async fn link_stripe(
    db: &Db,
    organisation_id: &str,
    link: &StripeLink,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE organisation_billing SET stripe_customer_id = $1, stripe_subscription_id = $2, \
         billing_interval = $3, current_period_end = $4, updated_at = $5 WHERE organisation_id = $6",
    )
    .bind(link.customer_id.as_str())
    .bind(link.subscription_id.as_deref())
    .bind(link.interval.as_deref())
    .bind(link.current_period_end)
    .bind(now_ms)
    .bind(organisation_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The organisation a Stripe customer pays for.
pub async fn organisation_of_customer(
    db: &Db,
    customer_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT organisation_id FROM organisation_billing WHERE stripe_customer_id = $1",
    )
    .bind(customer_id)
    .fetch_optional(db.pool())
    .await
}

/// The Stripe columns of an organisation's billing row.
#[derive(FromRow)]
struct StripeLinkRow {
    stripe_customer_id: Option<String>,
    stripe_subscription_id: Option<String>,
    billing_interval: Option<String>,
    current_period_end: Option<i64>,
}

/// The organisation's Stripe customer and subscription, if it has paid through Stripe.
pub async fn stripe_link(
    db: &Db,
    organisation_id: &str,
) -> Result<Option<StripeLink>, sqlx::Error> {
    let row: Option<StripeLinkRow> = sqlx::query_as(
        "SELECT stripe_customer_id, stripe_subscription_id, billing_interval, current_period_end \
         FROM organisation_billing WHERE organisation_id = $1",
    )
    .bind(organisation_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.and_then(|row| {
        row.stripe_customer_id.map(|customer_id| StripeLink {
            customer_id,
            subscription_id: row.stripe_subscription_id,
            interval: row.billing_interval,
            current_period_end: row.current_period_end,
        })
    }))
}

/// Whether the Stripe event with this id was applied already.
pub async fn stripe_event_applied(db: &Db, event_id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM stripe_events WHERE id = $1")
        .bind(event_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(found.is_some())
}

/// Records that a Stripe event was applied, and how; a second record of the same id is
/// ignored (two deliveries raced, and applying an event twice reads the same state).
pub async fn record_stripe_event(
    db: &Db,
    event_id: &str,
    kind: &str,
    outcome: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO stripe_events (id, type, received_at, outcome) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(event_id)
    .bind(kind)
    .bind(now_ms)
    .bind(outcome)
    .execute(db.pool())
    .await?;
    Ok(())
}
