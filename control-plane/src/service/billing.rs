//! An organisation's plan: what it includes, what it has used, and whether billing lets its
//! traffic through; and the plan's gates on what members and keys may configure.

use humanproof_protocol::wire::{Branding, Variant};
use serde::Serialize;

use super::Actor;
use crate::db::billing::{self, OrganisationBilling};
use crate::db::projects::enum_name;
use crate::db::{Db, month_of};
use crate::error::ApiError;
use crate::plans::{self, BillingStatus, Catalogue, Plan};
use crate::roles::Permission;
use crate::state::AppState;

/// An organisation's billing state as the dashboard, the API and `humanproof billing show`
/// report it.
#[derive(Debug, Clone, Serialize)]
pub struct BillingOverview {
    /// The organisation.
    pub organisation_id: String,
    /// Its plan, whole (limits, variants, branding, prices).
    pub plan: Plan,
    /// Whether the subscription is paid up.
    pub status: BillingStatus,
    /// Whether billing lets traffic through now.
    pub traffic_allowed: bool,
    /// When traffic stops if a failed payment is not fixed, Unix ms.
    pub grace_ends_at: Option<i64>,
    /// The month the usage is for (`YYYY-MM`, UTC).
    pub month: String,
    /// Protected attempts across the organisation's projects this month.
    pub used_attempts: u64,
    /// The plan's included attempts this month.
    pub included_attempts: u64,
}

/// The organisation's billing state, read as an operator's tools read it (no actor).
pub async fn overview_of(
    db: &Db,
    plans: &Catalogue,
    organisation_id: &str,
    now_ms: i64,
) -> Result<BillingOverview, sqlx::Error> {
    let account = billing::find(db, organisation_id).await?;
    let month = month_of(now_ms);
    let used_attempts = billing::organisation_usage(db, organisation_id, &month).await?;
    let plan = plans.get_or_free(&account.plan).clone();
    Ok(BillingOverview {
        organisation_id: organisation_id.to_owned(),
        included_attempts: plan.included_attempts,
        plan,
        status: account.status,
        traffic_allowed: plans::traffic_allowed(account.status, account.past_due_since, now_ms),
        grace_ends_at: match account.status {
            BillingStatus::PastDue => account
                .past_due_since
                .map(|since| since.saturating_add(plans::PAYMENT_GRACE_MS)),
            _ => None,
        },
        month,
        used_attempts,
    })
}

/// The actor's organisation's billing state.
pub async fn overview(state: &AppState, actor: &Actor) -> Result<BillingOverview, ApiError> {
    actor.require(Permission::BillingRead)?;
    Ok(overview_of(
        &state.db,
        &state.plans,
        &actor.organisation_id,
        state.clock.now_ms(),
    )
    .await?)
}

/// The plan the actor's organisation is on.
pub async fn current_plan(state: &AppState, actor: &Actor) -> Result<Plan, ApiError> {
    let account = billing::find(&state.db, &actor.organisation_id).await?;
    Ok(state.plans.get_or_free(&account.plan).clone())
}

/// Sets an organisation's plan and billing status (the operator's tool until Stripe sets
/// them), and republishes its projects' gates.
pub async fn set_plan(
    state: &AppState,
    organisation_id: &str,
    plan: &str,
    status: BillingStatus,
) -> Result<(), ApiError> {
    if state.plans.get(plan).is_none() {
        return Err(ApiError::invalid("plan", "No such plan in the catalogue."));
    }
    let now = state.clock.now_ms();
    let previous = billing::find(&state.db, organisation_id).await?;
    let past_due_since = match status {
        BillingStatus::PastDue => previous.past_due_since.or(Some(now)),
        _ => None,
    };
    let account = OrganisationBilling {
        plan: plan.to_owned(),
        status,
        past_due_since,
    };
    billing::set(&state.db, organisation_id, &account, now).await?;
    crate::db::orgs::audit(
        &state.db,
        Some(organisation_id),
        "operator",
        &format!("billing.set.{plan}.{}", status.as_str()),
        None,
        now,
    )
    .await?;
    state.publish_changes().await;
    Ok(())
}

/// Refuses what the plan does not include, saying which plan does not and that an upgrade
/// does; nothing the edge would refuse is ever saved.
pub(super) fn check_widget(
    plan: &Plan,
    variant: Variant,
    branding: Branding,
) -> Result<(), ApiError> {
    if !plan.variants.contains(&variant) {
        return Err(not_in_plan(
            plan,
            "widget.variant",
            &format!("the {} variant", enum_name(&variant)),
        ));
    }
    if !plan.branding.contains(&branding) {
        return Err(not_in_plan(
            plan,
            "widget.branding",
            &format!("{} branding", enum_name(&branding)),
        ));
    }
    Ok(())
}

/// The refusal for something the plan lacks.
pub(super) fn not_in_plan(plan: &Plan, field: &'static str, what: &str) -> ApiError {
    ApiError::NotInPlan {
        field,
        message: format!(
            "The {} plan does not include {what}. Upgrade to use it.",
            plan.name
        ),
    }
}
