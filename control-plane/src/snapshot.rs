//! Builds the snapshot entries the edge decides from, one per project.
//!
//! This is the only place that turns database state into edge gates, so the local edge,
//! the KV export and the tests all see the same thing.

use humanproof_protocol::SiteSnapshot;
use std::collections::HashMap;

use humanproof_protocol::snapshot::{BillingGate, kv_key};
use serde::Serialize;

use crate::db::billing::{self, OrganisationBilling};
use crate::db::projects::{self, Project};
use crate::db::telemetry::{self, Usage};
use crate::db::{Db, month_of};
use crate::plans::{Catalogue, Plan};

/// What a project is served on: its organisation's plan and billing state, or, for a project
/// an operator created without an organisation, its own plan and status.
#[derive(Debug, Clone, Copy)]
pub struct Terms<'a> {
    /// The plan whose gates apply.
    pub plan: &'a Plan,
    /// Whether billing lets traffic through.
    pub traffic_allowed: bool,
    /// What is left of a hard-capped plan's included attempts this month.
    pub included_left: Option<u64>,
}

/// The entry for one project given this month's usage and the terms it is served on.
pub fn build(project: &Project, usage: &Usage, terms: &Terms<'_>, now_ms: i64) -> SiteSnapshot {
    let settings = &project.settings;
    let limit_left = settings
        .monthly_limit
        .map(|limit| limit.saturating_sub(usage.protected_attempts));
    let usage_left = match (limit_left, terms.included_left) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (left, None) | (None, left) => left,
    };
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
            plan: terms.plan.id.clone(),
            traffic_allowed: terms.traffic_allowed,
            monthly_limit: settings.monthly_limit,
            usage_left,
        },
        widget: terms.plan.widget_policy(),
        widget_settings: settings.widget.clone(),
        published_at: now_ms,
    }
}

/// Entries for every project, with this month's usage.
pub async fn build_all(
    db: &Db,
    plans: &Catalogue,
    now_ms: i64,
) -> Result<Vec<SiteSnapshot>, sqlx::Error> {
    build_entries(db, plans, &projects::list_all(db).await?, now_ms).await
}

/// Entries for these projects, with this month's usage and their organisations' terms (read
/// once per organisation).
pub async fn build_entries(
    db: &Db,
    plans: &Catalogue,
    projects: &[Project],
    now_ms: i64,
) -> Result<Vec<SiteSnapshot>, sqlx::Error> {
    let month = month_of(now_ms);
    let mut organisations: HashMap<&str, (OrganisationBilling, u64)> = HashMap::new();
    let mut entries = Vec::with_capacity(projects.len());
    for project in projects {
        let usage = telemetry::usage(db, &project.id, &month).await?;
        let terms = match project.organisation_id.as_deref() {
            Some(organisation_id) => {
                if !organisations.contains_key(organisation_id) {
                    let account = billing::find(db, organisation_id).await?;
                    let used = billing::organisation_usage(db, organisation_id, &month).await?;
                    organisations.insert(organisation_id, (account, used));
                }
                let (account, used) = &organisations[organisation_id];
                let plan = plans.get_or_free(&account.plan);
                Terms {
                    plan,
                    traffic_allowed: plans.traffic_allowed(
                        account.status,
                        account.past_due_since,
                        now_ms,
                    ),
                    included_left: plan
                        .hard_cap
                        .then(|| plan.included_attempts.saturating_sub(*used)),
                }
            }
            // An operator's own project: no organisation to bill, so no included-attempts
            // cap; the operator sets its plan, status and monthly limit from the CLI.
            None => Terms {
                plan: plans.get_or_free(&project.settings.plan),
                traffic_allowed: project.settings.billing_status.allows_traffic(),
                included_left: None,
            },
        };
        entries.push(build(project, &usage, &terms, now_ms));
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
