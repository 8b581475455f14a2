//! Retention rules, as code: what is kept, for how long, and in what form.
//!
//! - Hashed IPs and user agents on telemetry events are erased after 24 hours: they only
//!   serve short-term abuse analysis.
//! - The receipts of telemetry events (their random ids) are deleted after 15 days: until
//!   then a late redelivery from the edge's queues is recognised and not counted again.
//! - Telemetry and verification events are deleted after the project's plan's log window
//!   (Free 3 days, Starter 7, Pro and Business 14) and never kept over 14 days, whatever a
//!   plan says; daily statistics after the plan's statistics window (Free 7 days, others 14).
//!   Monthly usage counters, which hold no per-visitor data, are kept for billing.
//! - Siteverify claims are deleted once their token has expired: an expired token is refused
//!   on its signature's expiry alone, so the claim has nothing left to guard.
//! - Expired sessions, email links and unfinished passkey ceremonies are deleted; attempt counters (keyed
//!   hashes) are deleted 24 hours after their window began, long after it was used.
//! - Usage reports sent to Stripe's meter, and the audit log, are kept 400 days.
//! - Contact form messages are kept 90 days: long enough for a conversation that started
//!   there, and they reached their inbox by email within minutes.
//! - VIES checks that answered (valid or invalid) are kept 10 years, the proof of a VAT
//!   exemption tax authorities may ask for; checks that found VIES down prove nothing and go
//!   after 90 days. A "down" row bound to an unsettled invoice would have to stay, but
//!   HumanProof keeps no invoices (Stripe does), so no row is bound to one and the rule has no
//!   exception until invoices are tracked here.

use serde::Serialize;

use super::Db;
use super::stats::{DAY_MS, day_of};
use crate::clock::Clock;
use crate::metrics::{Job, Metrics};
use crate::plans::{Catalogue, MAX_LOG_DAYS};

/// How long hashed IPs and user agents stay on telemetry events.
pub const HASH_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// How long per-event records are kept at the most, whatever the plan: the privacy policy's
/// 14 days. Each plan's own, shorter or equal window is applied by [`apply_plan_windows`].
pub const EVENT_TTL_MS: i64 = MAX_LOG_DAYS as i64 * DAY_MS;
/// How long the receipt of a telemetry event is kept: longer than the edge's queues keep
/// trying one event (about a week) and than a queue keeps a message (14 days at most).
pub const RECEIPT_TTL_MS: i64 = 15 * DAY_MS;
/// How long the record of a sent usage notice is kept: only the current month's stop a
/// notice going out twice.
pub const USAGE_NOTICE_TTL_MS: i64 = 62 * 24 * 60 * 60 * 1000;
/// How long the record of an applied Stripe webhook event is kept: Stripe retries a delivery
/// for up to 3 days, and the rest is diagnostics.
pub const STRIPE_EVENT_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// How long a usage report Stripe accepted is kept: the record of what was billed, for
/// questions about an invoice during the following year.
pub const METER_REPORT_TTL_MS: i64 = 400 * 24 * 60 * 60 * 1000;
/// How long a VIES check that answered valid or invalid is kept: ten years (3653 days, leap
/// days included), the longest period EU member states keep VAT records for audits.
pub const VAT_CHECK_TTL_MS: i64 = 3653 * 24 * 60 * 60 * 1000;
/// How long a VIES check that found the service down is kept: it proves nothing about the id,
/// and only explains the retries of a grace period (30 days) for a while after.
pub const VAT_DOWN_CHECK_TTL_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// How long an audit entry is kept: a year and a month, long enough to answer for any
/// change to the last annual invoice and any security question about the past year.
pub const AUDIT_TTL_MS: i64 = 400 * DAY_MS;

/// How long a message from the contact form is kept.
pub const SUPPORT_MESSAGE_TTL_MS: i64 = 90 * DAY_MS;

/// How long an organisation without a single member is kept: nobody can reach its data any
/// more, so it goes (with its projects, off the edge), after a day so that one being set up
/// is never caught between its creation and its first member.
pub const MEMBERLESS_ORGANISATION_TTL_MS: i64 = DAY_MS;

/// Rows each rule touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Events whose hashes were erased.
    pub hashes_erased: u64,
    /// Telemetry events deleted.
    pub telemetry_deleted: u64,
    /// Receipts of telemetry events deleted.
    pub receipts_deleted: u64,
    /// Verification events deleted.
    pub verifications_deleted: u64,
    /// Expired siteverify claims deleted.
    pub claims_deleted: u64,
    /// Expired sessions deleted.
    pub sessions_deleted: u64,
    /// Expired email links deleted.
    pub email_links_deleted: u64,
    /// Attempt counters (keyed hashes) whose window ended over a day ago, deleted.
    pub throttles_deleted: u64,
    /// Abandoned passkey ceremonies deleted.
    pub ceremonies_deleted: u64,
    /// Records of usage notices from past months deleted.
    pub usage_notices_deleted: u64,
    /// Records of projects' monthly-limit notices from past months deleted.
    pub project_limit_notices_deleted: u64,
    /// Records of applied Stripe events deleted.
    pub stripe_events_deleted: u64,
    /// Usage reports Stripe accepted over a year ago, deleted.
    pub meter_reports_deleted: u64,
    /// Organisations left without members, deleted with everything of theirs.
    pub memberless_organisations_deleted: u64,
    /// Audit entries over 400 days old, deleted.
    pub audit_entries_deleted: u64,
    /// VIES checks that answered, deleted after ten years.
    pub vat_checks_deleted: u64,
    /// VIES checks that found the service down, deleted after 90 days.
    pub vat_down_checks_deleted: u64,
    /// Contact form messages over 90 days old, deleted.
    pub support_messages_deleted: u64,
}

/// Applies every rule as of `now_ms`.
pub async fn apply(db: &Db, now_ms: i64) -> Result<RetentionReport, sqlx::Error> {
    let run = |sql: &'static str, cutoff: i64| async move {
        Ok::<_, sqlx::Error>(
            sqlx::query(sql)
                .bind(cutoff)
                .execute(db.pool())
                .await?
                .rows_affected(),
        )
    };
    Ok(RetentionReport {
        hashes_erased: run(
            "UPDATE telemetry_events SET ip_hash = NULL, ua_hash = NULL \
             WHERE at < $1 AND (ip_hash IS NOT NULL OR ua_hash IS NOT NULL)",
            now_ms - HASH_TTL_MS,
        )
        .await?,
        telemetry_deleted: run(
            "DELETE FROM telemetry_events WHERE at < $1",
            now_ms - EVENT_TTL_MS,
        )
        .await?,
        receipts_deleted: run(
            "DELETE FROM telemetry_receipts WHERE received_at < $1",
            now_ms - RECEIPT_TTL_MS,
        )
        .await?,
        verifications_deleted: run(
            "DELETE FROM verification_events WHERE at < $1",
            now_ms - EVENT_TTL_MS,
        )
        .await?,
        claims_deleted: run(
            "DELETE FROM siteverify_claims WHERE expires_at < $1",
            now_ms,
        )
        .await?,
        sessions_deleted: run("DELETE FROM sessions WHERE expires_at < $1", now_ms).await?,
        email_links_deleted: run("DELETE FROM email_tokens WHERE expires_at < $1", now_ms).await?,
        throttles_deleted: run(
            "DELETE FROM throttles WHERE window_start < $1",
            now_ms - HASH_TTL_MS,
        )
        .await?,
        ceremonies_deleted: run(
            "DELETE FROM webauthn_ceremonies WHERE expires_at < $1",
            now_ms,
        )
        .await?,
        usage_notices_deleted: run(
            "DELETE FROM usage_notices WHERE sent_at < $1",
            now_ms - USAGE_NOTICE_TTL_MS,
        )
        .await?,
        project_limit_notices_deleted: run(
            "DELETE FROM project_limit_notices WHERE sent_at < $1",
            now_ms - USAGE_NOTICE_TTL_MS,
        )
        .await?,
        stripe_events_deleted: run(
            "DELETE FROM stripe_events WHERE received_at < $1",
            now_ms - STRIPE_EVENT_TTL_MS,
        )
        .await?,
        audit_entries_deleted: run("DELETE FROM audit_log WHERE at < $1", now_ms - AUDIT_TTL_MS)
            .await?,
        memberless_organisations_deleted: delete_memberless_organisations(
            db,
            now_ms - MEMBERLESS_ORGANISATION_TTL_MS,
            now_ms,
        )
        .await?,
        // Unsent reports stay: they are usage still owed.
        meter_reports_deleted: run(
            "DELETE FROM meter_reports WHERE sent_at < $1",
            now_ms - METER_REPORT_TTL_MS,
        )
        .await?,
        vat_checks_deleted: run(
            "DELETE FROM vat_checks WHERE outcome IN ('valid', 'invalid') AND checked_at < $1",
            now_ms - VAT_CHECK_TTL_MS,
        )
        .await?,
        vat_down_checks_deleted: run(
            "DELETE FROM vat_checks WHERE outcome = 'down' AND checked_at < $1",
            now_ms - VAT_DOWN_CHECK_TTL_MS,
        )
        .await?,
        support_messages_deleted: run(
            "DELETE FROM support_messages WHERE received_at < $1",
            now_ms - SUPPORT_MESSAGE_TTL_MS,
        )
        .await?,
    })
}

/// Deletes the organisations created before `created_before` that have no member left,
/// queuing their projects' site keys for removal from the edge; how many.
async fn delete_memberless_organisations(
    db: &Db,
    created_before: i64,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    let memberless: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM organisations o WHERE o.created_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.organisation_id = o.id)",
    )
    .bind(created_before)
    .fetch_all(db.pool())
    .await?;
    if memberless.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin_write().await?;
    for organisation_id in &memberless {
        super::orgs::delete_organisation(&mut tx, organisation_id, now_ms).await?;
    }
    tx.commit().await?;
    db.found_by_secret().forget();
    Ok(memberless.len() as u64)
}

/// What the plans' windows deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanWindowsReport {
    /// Telemetry events past their plan's log window.
    pub telemetry_deleted: u64,
    /// Verification events past their plan's log window.
    pub verifications_deleted: u64,
    /// Days of statistics past their plan's statistics window.
    pub daily_stats_deleted: u64,
}

/// Applies each project's plan's windows as of `now_ms`: its events go after the plan's
/// `log_days`, its daily statistics after its `stats_days` (today and the days before it).
/// A project's plan is its organisation's (Free without a billing row), or its own for a
/// project an operator created without an organisation; a plan the catalogue no longer has
/// is Free's.
pub async fn apply_plan_windows(
    db: &Db,
    plans: &Catalogue,
    now_ms: i64,
) -> Result<PlanWindowsReport, sqlx::Error> {
    let projects: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.id, CASE WHEN p.organisation_id IS NULL THEN p.plan ELSE COALESCE(b.plan, 'free') END \
         FROM projects p LEFT JOIN organisation_billing b ON b.organisation_id = p.organisation_id",
    )
    .fetch_all(db.pool())
    .await?;
    let mut report = PlanWindowsReport::default();
    for (project_id, plan) in projects {
        let plan = plans.get_or_free(&plan);
        let events_before = now_ms - i64::from(plan.log_days.min(MAX_LOG_DAYS)) * DAY_MS;
        let first_day_kept = day_of(now_ms - (i64::from(plan.stats_days.max(1)) - 1) * DAY_MS);
        report.telemetry_deleted +=
            sqlx::query("DELETE FROM telemetry_events WHERE project_id = $1 AND at < $2")
                .bind(&project_id)
                .bind(events_before)
                .execute(db.pool())
                .await?
                .rows_affected();
        report.verifications_deleted +=
            sqlx::query("DELETE FROM verification_events WHERE project_id = $1 AND at < $2")
                .bind(&project_id)
                .bind(events_before)
                .execute(db.pool())
                .await?
                .rows_affected();
        report.daily_stats_deleted +=
            sqlx::query("DELETE FROM daily_stats WHERE project_id = $1 AND day < $2")
                .bind(&project_id)
                .bind(first_day_kept)
                .execute(db.pool())
                .await?
                .rows_affected();
    }
    Ok(report)
}

/// Applies the rules and the plans' windows now and every hour after; a failed run is
/// logged and retried next hour.
pub async fn apply_hourly(db: Db, plans: Catalogue, clock: Clock, metrics: Metrics) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        let now_ms = clock.now_ms();
        let applied = apply(&db, now_ms).await;
        metrics.job_run(Job::Retention, applied.is_ok(), now_ms);
        match applied {
            Ok(report) => tracing::info!(?report, "retention applied"),
            Err(err) => tracing::warn!(error = %err, "retention failed; will retry next hour"),
        }
        let applied = apply_plan_windows(&db, &plans, now_ms).await;
        metrics.job_run(Job::PlanWindows, applied.is_ok(), now_ms);
        match applied {
            Ok(report) => tracing::info!(?report, "plan windows applied"),
            Err(err) => tracing::warn!(error = %err, "plan windows failed; will retry next hour"),
        }
    }
}
