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
    Ok(find_with_link(db, organisation_id).await?.0)
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

/// Records that the notice at `percent` of a project's own monthly limit went out for
/// `month`; `false` if it already had.
pub async fn record_project_limit_notice(
    db: &Db,
    project_id: &str,
    month: &str,
    percent: u8,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO project_limit_notices (project_id, month, percent, sent_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, month, percent) DO NOTHING",
    )
    .bind(project_id)
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
    /// A change of plan or interval Stripe makes when the period ends.
    pub pending_change: Option<PendingChange>,
    /// Whether the subscription ends with the current period.
    pub cancel_at_period_end: bool,
    /// Where Stripe sends invoices, as the customer last set it.
    pub billing_email: Option<String>,
}

/// A change of plan waiting for the end of the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingChange {
    /// The plan from then on.
    pub plan: String,
    /// Its interval (`month` or `year`).
    pub interval: String,
    /// When it takes effect (the end of the current period), Unix ms.
    pub at: i64,
}

/// Records the organisation's Stripe customer and subscription as Stripe has them now (the
/// row exists: [`set`] runs first). The billing email is the customer's and kept.
pub async fn link_stripe(
    db: &Db,
    organisation_id: &str,
    link: &StripeLink,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let pending = link.pending_change.as_ref();
    sqlx::query(
        "UPDATE organisation_billing SET stripe_customer_id = $1, stripe_subscription_id = $2, \
         billing_interval = $3, current_period_end = $4, pending_plan = $5, pending_interval = $6, \
         pending_at = $7, cancel_at_period_end = $8, updated_at = $9 WHERE organisation_id = $10",
    )
    .bind(link.customer_id.as_str())
    .bind(link.subscription_id.as_deref())
    .bind(link.interval.as_deref())
    .bind(link.current_period_end)
    .bind(pending.map(|change| change.plan.as_str()))
    .bind(pending.map(|change| change.interval.as_str()))
    .bind(pending.map(|change| change.at))
    .bind(i64::from(link.cancel_at_period_end))
    .bind(now_ms)
    .bind(organisation_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records the customer's billing email from a Stripe event created at `event_created`
/// (Unix seconds), unless an event at least as recent set it already: deliveries come in
/// any order. `false` if the customer pays for no organisation or the event is older.
pub async fn set_billing_email(
    db: &Db,
    customer_id: &str,
    email: Option<&str>,
    event_created: i64,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE organisation_billing SET billing_email = $1, billing_email_at = $2 \
         WHERE stripe_customer_id = $3 AND (billing_email_at IS NULL OR billing_email_at <= $2)",
    )
    .bind(email)
    .bind(event_created)
    .bind(customer_id)
    .execute(db.pool())
    .await?;
    Ok(updated.rows_affected() == 1)
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
    pending_plan: Option<String>,
    pending_interval: Option<String>,
    pending_at: Option<i64>,
    cancel_at_period_end: i64,
    billing_email: Option<String>,
}

/// The organisation's Stripe customer and subscription, if it has paid through Stripe.
pub async fn stripe_link(
    db: &Db,
    organisation_id: &str,
) -> Result<Option<StripeLink>, sqlx::Error> {
    Ok(find_with_link(db, organisation_id).await?.1)
}

/// One billing row, whole: what the plan and status columns say, and the Stripe columns.
#[derive(FromRow)]
struct FullBillingRow {
    #[sqlx(flatten)]
    billing: BillingRow,
    #[sqlx(flatten)]
    link: StripeLinkRow,
}

/// The organisation's billing state and its Stripe customer and subscription, read in one
/// query (the billing overview needs both, and runs with every batch of telemetry).
pub async fn find_with_link(
    db: &Db,
    organisation_id: &str,
) -> Result<(OrganisationBilling, Option<StripeLink>), sqlx::Error> {
    let row: Option<FullBillingRow> = sqlx::query_as(
        "SELECT plan, status, past_due_since, cap_reached_at, cap_banner_seen, \
         stripe_customer_id, stripe_subscription_id, billing_interval, current_period_end, \
         pending_plan, pending_interval, pending_at, cancel_at_period_end, billing_email \
         FROM organisation_billing WHERE organisation_id = $1",
    )
    .bind(organisation_id)
    .fetch_optional(db.pool())
    .await?;
    let Some(FullBillingRow { billing, link }) = row else {
        return Ok((OrganisationBilling::default(), None));
    };
    let account = OrganisationBilling {
        plan: billing.plan,
        status: billing.status.0,
        past_due_since: billing.past_due_since,
        cap_reached_at: billing.cap_reached_at,
        cap_banner_seen: billing.cap_banner_seen != 0,
    };
    let link = link.stripe_customer_id.map(|customer_id| StripeLink {
        customer_id,
        subscription_id: link.stripe_subscription_id,
        interval: link.billing_interval,
        current_period_end: link.current_period_end,
        pending_change: match (link.pending_plan, link.pending_interval, link.pending_at) {
            (Some(plan), Some(interval), Some(at)) => Some(PendingChange { plan, interval, at }),
            _ => None,
        },
        cancel_at_period_end: link.cancel_at_period_end != 0,
        billing_email: link.billing_email,
    });
    Ok((account, link))
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

/// A report of usage above the included attempts, as stored before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MeterReport {
    /// Sent to Stripe as the meter event's identifier and idempotency key.
    pub identifier: String,
    /// The organisation billed.
    pub organisation_id: String,
    /// Its Stripe customer.
    pub customer_id: String,
    /// The month the usage is in (`YYYY-MM`).
    pub month: String,
    /// The month's overage already reported before this one.
    pub covered_from: i64,
    /// The month's overage reported once this one is.
    pub covered_to: i64,
    /// When it was written, Unix ms.
    pub created_at: i64,
}

/// The organisations paying through a running Stripe subscription, with their customer and
/// plan: the ones whose usage above the included attempts is billed.
pub async fn subscribed_organisations(
    db: &Db,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT organisation_id, stripe_customer_id, plan FROM organisation_billing \
         WHERE stripe_subscription_id IS NOT NULL AND stripe_customer_id IS NOT NULL",
    )
    .fetch_all(db.pool())
    .await
}

/// How much of the organisation's overage in `month` is reported (sent or waiting to be).
pub async fn overage_covered(
    db: &Db,
    organisation_id: &str,
    month: &str,
) -> Result<i64, sqlx::Error> {
    let covered: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(covered_to) FROM meter_reports WHERE organisation_id = $1 AND month = $2",
    )
    .bind(organisation_id)
    .bind(month)
    .fetch_one(db.pool())
    .await?;
    Ok(covered.unwrap_or(0))
}

/// Writes a report before it is sent; `false` if one with its identifier exists (another run
/// wrote the same window first).
pub async fn insert_meter_report(db: &Db, report: &MeterReport) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO meter_reports (identifier, organisation_id, customer_id, month, covered_from, \
         covered_to, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (identifier) DO NOTHING",
    )
    .bind(report.identifier.as_str())
    .bind(report.organisation_id.as_str())
    .bind(report.customer_id.as_str())
    .bind(report.month.as_str())
    .bind(report.covered_from)
    .bind(report.covered_to)
    .bind(report.created_at)
    .execute(db.pool())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Reports written but not yet accepted by Stripe, oldest first.
pub async fn unsent_meter_reports(db: &Db) -> Result<Vec<MeterReport>, sqlx::Error> {
    sqlx::query_as(
        "SELECT identifier, organisation_id, customer_id, month, covered_from, covered_to, created_at \
         FROM meter_reports WHERE sent_at IS NULL ORDER BY created_at, identifier",
    )
    .fetch_all(db.pool())
    .await
}

/// Records that Stripe accepted a report.
pub async fn meter_report_sent(db: &Db, identifier: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE meter_reports SET sent_at = $1 WHERE identifier = $2")
        .bind(now_ms)
        .bind(identifier)
        .execute(db.pool())
        .await?;
    Ok(())
}
