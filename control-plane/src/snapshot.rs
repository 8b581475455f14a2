//! Builds the snapshot entries the edge decides from, one per project.
//!
//! This is the only place that turns database state into edge gates, so the local edge,
//! the KV export and the tests all see the same thing.

use humanproof_protocol::SiteSnapshot;
use humanproof_protocol::snapshot::{BillingGate, WidgetPolicy, kv_key};
use humanproof_protocol::wire::Branding;
use serde::Serialize;

use crate::db::projects::{self, Project};
use crate::db::telemetry::{self, Usage};
use crate::db::{Db, month_of};

/// The entry for one project given this month's usage.
pub fn build(project: &Project, usage: &Usage, now_ms: i64) -> SiteSnapshot {
    let settings = &project.settings;
    SiteSnapshot {
        project_id: project.id.clone(),
        site_key: project.site_key.clone(),
        active: settings.active,
        production_domains: settings.production_domains.clone(),
        testing_domains: settings.testing_domains.clone(),
        allow_subdomains: settings.allow_subdomains,
        key_version: project.key_version,
        preset: settings.preset,
        risk_mode: settings.risk_mode,
        billing: BillingGate {
            plan: settings.plan.clone(),
            traffic_allowed: settings.billing_status.allows_traffic(),
            monthly_limit: settings.monthly_limit,
            usage_left: settings
                .monthly_limit
                .map(|limit| limit.saturating_sub(usage.protected_attempts)),
        },
        widget: widget_policy(&settings.plan),
        published_at: now_ms,
    }
}

/// The free plan shows full branding; paid plans may reduce or remove it. Every plan has
/// every variant.
fn widget_policy(plan: &str) -> WidgetPolicy {
    let mut policy = WidgetPolicy::default();
    if plan == "free" {
        policy.branding = vec![Branding::Full];
    }
    policy
}

/// Entries for every project, with this month's usage.
pub async fn build_all(db: &Db, now_ms: i64) -> Result<Vec<SiteSnapshot>, sqlx::Error> {
    build_entries(db, &projects::list_all(db).await?, now_ms).await
}

/// Entries for these projects, with this month's usage.
pub async fn build_entries(
    db: &Db,
    projects: &[Project],
    now_ms: i64,
) -> Result<Vec<SiteSnapshot>, sqlx::Error> {
    let month = month_of(now_ms);
    let mut entries = Vec::with_capacity(projects.len());
    for project in projects {
        let usage = telemetry::usage(db, &project.id, &month).await?;
        entries.push(build(project, &usage, now_ms));
    }
    Ok(entries)
}

/// One KV pair in the format `wrangler kv bulk put` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvPair {
    /// `site:<site key>`.
    pub key: String,
    /// The entry as JSON.
    pub value: String,
}

/// Entries as KV pairs.
pub fn kv_pairs(entries: &[SiteSnapshot]) -> Vec<KvPair> {
    entries
        .iter()
        .map(|entry| KvPair {
            key: kv_key(&entry.site_key),
            value: serde_json::to_string(entry).expect("snapshots serialize"),
        })
        .collect()
}
