//! An organisation's plan: what it includes, what it has used, and whether billing lets its
//! traffic through; and the plan's gates on what members and keys may configure.

use std::collections::BTreeSet;

use humanproof_protocol::TelemetryEvent;
use humanproof_protocol::wire::{Branding, Variant};
use serde::Serialize;

use super::{Actor, Principal};
use crate::db::billing::{self, MeterReport, PendingChange, StripeLink};
use crate::db::projects::enum_name;
use crate::db::telemetry::{self, LimitUse};
use crate::db::{Db, accounts, month_of, month_range_ms, orgs, projects};
use crate::error::ApiError;
use crate::i18n;
use crate::mail::Email;
use crate::plans::{self, BillingStatus, Catalogue, Interval, Plan};
use crate::roles::{Permission, Role};
use crate::state::AppState;
use crate::stripe::{
    CheckoutRequest, ItemChange, MeterEvent, Stripe, SubscriptionState, WebhookEvent,
};

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
    /// When a hard-capped plan used up its included attempts this month, Unix ms.
    pub cap_reached_at: Option<i64>,
    /// Whether a member dismissed the dashboard's banner about that.
    pub cap_notice_dismissed: bool,
    /// How often the subscription is billed; `None` without one.
    pub interval: Option<String>,
    /// When the subscription's current period ends, Unix ms.
    pub current_period_end: Option<i64>,
    /// A downgrade or change of interval waiting for the end of the period.
    pub pending_change: Option<PendingChange>,
    /// Whether the subscription ends with the current period (then the plan is Free).
    pub cancel_at_period_end: bool,
    /// Where Stripe sends invoices.
    pub billing_email: Option<String>,
}

/// The organisation's billing state, read as an operator's tools read it (no actor).
pub async fn overview_of(
    db: &Db,
    plans: &Catalogue,
    organisation_id: &str,
    now_ms: i64,
) -> Result<BillingOverview, sqlx::Error> {
    let (account, link) = billing::find_with_link(db, organisation_id).await?;
    let subscription = link.filter(|link| link.subscription_id.is_some());
    let month = month_of(now_ms);
    let used_attempts = billing::organisation_usage(db, organisation_id, &month).await?;
    let plan = plans.get_or_free(&account.plan).clone();
    Ok(BillingOverview {
        interval: subscription.as_ref().and_then(|link| link.interval.clone()),
        current_period_end: subscription
            .as_ref()
            .and_then(|link| link.current_period_end)
            .map(|end_s| end_s * 1000),
        pending_change: subscription
            .as_ref()
            .and_then(|link| link.pending_change.clone()),
        cancel_at_period_end: subscription
            .as_ref()
            .is_some_and(|link| link.cancel_at_period_end),
        billing_email: subscription.and_then(|link| link.billing_email),
        organisation_id: organisation_id.to_owned(),
        included_attempts: plan.included_attempts,
        plan,
        status: account.status,
        traffic_allowed: plans.traffic_allowed(account.status, account.past_due_since, now_ms),
        grace_ends_at: match account.status {
            BillingStatus::PastDue => account
                .past_due_since
                .map(|since| plans.grace_ends_at(since)),
            _ => None,
        },
        cap_reached_at: account.cap_reached_at.filter(|&at| month_of(at) == month),
        cap_notice_dismissed: account.cap_banner_seen,
        month,
        used_attempts,
    })
}

/// Hides the banner about this month's used-up allowance (any member may: it only informs).
pub async fn dismiss_cap_notice(state: &AppState, actor: &Actor) -> Result<(), ApiError> {
    actor.require(Permission::BillingRead)?;
    billing::dismiss_cap_banner(&state.db, &actor.organisation_id).await?;
    Ok(())
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

/// The Stripe customer and subscription paying for the actor's organisation, if any.
pub async fn stripe_link(state: &AppState, actor: &Actor) -> Result<Option<StripeLink>, ApiError> {
    actor.require(Permission::BillingRead)?;
    Ok(billing::stripe_link(&state.db, &actor.organisation_id).await?)
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
    let account = billing::find(&state.db, organisation_id)
        .await?
        .changed_to(plan, status, now);
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

/// The shares of a hard-capped plan's included attempts at which the organisation's billing
/// members get an email, once a month each.
const NOTICE_PERCENTS: [u8; 2] = [80, 100];

/// After telemetry is stored: for each organisation it counted for on a hard-capped plan,
/// sends the usage notices it has crossed this month (each once), and records when the
/// included attempts ran out, which brings up the dashboard's banner.
pub async fn send_usage_notices(
    state: &AppState,
    events: &[TelemetryEvent],
) -> Result<(), sqlx::Error> {
    let project_ids = project_ids_of(events);
    let mut organisations = BTreeSet::new();
    for project_id in &project_ids {
        if let Some(project) = projects::find(&state.db, project_id).await? {
            organisations.extend(project.organisation_id);
        }
    }
    let now = state.clock.now_ms();
    send_project_limit_notices(state, &project_ids, now).await?;
    for organisation_id in organisations {
        let overview = overview_of(&state.db, &state.plans, &organisation_id, now).await?;
        if !overview.plan.hard_cap {
            continue;
        }
        for percent in NOTICE_PERCENTS {
            let threshold = overview.included_attempts * u64::from(percent) / 100;
            if overview.used_attempts < threshold
                || !billing::record_usage_notice(
                    &state.db,
                    &organisation_id,
                    &overview.month,
                    percent,
                    now,
                )
                .await?
            {
                continue;
            }
            if percent == 100 {
                billing::record_cap_reached(&state.db, &organisation_id, now).await?;
            }
            email_usage_notice(state, &overview, percent).await?;
        }
    }
    Ok(())
}

fn project_ids_of(events: &[TelemetryEvent]) -> BTreeSet<&str> {
    events
        .iter()
        .map(|event| event.project_id.as_str())
        .collect()
}

/// For each project with a monthly limit of its own that these events counted for, emails
/// the organisation's owners and admins when it crosses 80 % and 100 % of it (each once a
/// month): at 100 % the edge refuses the project's new challenges until the month ends.
async fn send_project_limit_notices(
    state: &AppState,
    project_ids: &BTreeSet<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let month = month_of(now);
    for project_id in project_ids {
        let Some(project) = projects::find(&state.db, project_id).await? else {
            continue;
        };
        let (Some(organisation_id), Some(_)) =
            (&project.organisation_id, project.settings.monthly_limit)
        else {
            continue;
        };
        let usage = telemetry::usage(&state.db, project_id, &month).await?;
        let Some(limit) = usage.against_limit(project.settings.monthly_limit) else {
            continue;
        };
        // The highest threshold crossed is the one worth saying; a lower one not yet sent is
        // recorded with it, so a project that jumps past both gets one email.
        let mut crossed = None;
        for percent in NOTICE_PERCENTS {
            if limit.percent >= u64::from(percent)
                && billing::record_project_limit_notice(&state.db, project_id, &month, percent, now)
                    .await?
            {
                crossed = Some(percent);
            }
        }
        if let Some(percent) = crossed {
            email_project_limit_notice(state, organisation_id, &project, &limit, percent).await?;
        }
    }
    Ok(())
}

/// Tells the organisation's owners and admins, each in their language, how much of a
/// project's monthly limit it has used.
async fn email_project_limit_notice(
    state: &AppState,
    organisation_id: &str,
    project: &projects::Project,
    limit: &LimitUse,
    percent: u8,
) -> Result<(), sqlx::Error> {
    let body = if percent >= 100 {
        "{project} reached its monthly limit of {limit} protected attempts. Until the month ends, its widget refuses new challenges. Raise or remove the limit in the project's settings:\n\n{link}\n"
    } else {
        "{project} has used {used} of its monthly limit of {limit} protected attempts. When it reaches the limit, its widget refuses new challenges until the month ends. Raise or remove the limit in the project's settings:\n\n{link}\n"
    };
    let link = format!(
        "{}/orgs/{organisation_id}/projects/{}",
        state.web.public_url, project.id
    );
    let values = [
        ("project", project.settings.name.clone()),
        ("percent", percent.to_string()),
        ("used", limit.used.to_string()),
        ("limit", limit.limit.to_string()),
        ("link", link),
    ];
    email_members(
        state,
        organisation_id,
        |role| matches!(role, Role::Owner | Role::Admin),
        "{project} used {percent} % of its monthly limit on HumanProof",
        body,
        &values,
    )
    .await
}

/// Tells the members who manage billing (owners and billing members), each in their
/// language, how much of the included attempts the organisation has used.
async fn email_usage_notice(
    state: &AppState,
    overview: &BillingOverview,
    percent: u8,
) -> Result<(), sqlx::Error> {
    let body = if percent >= 100 {
        "{organisation} has used all {included} protected attempts the {plan} plan includes this month. Until the month ends, the widget on your sites refuses new challenges. Upgrade to keep your forms protected:\n\n{link}\n"
    } else {
        "{organisation} has used {used} of the {included} protected attempts the {plan} plan includes this month. When they are used up, the widget on your sites refuses new challenges until the month ends. Upgrade before then to keep your forms protected:\n\n{link}\n"
    };
    let organisation_id = &overview.organisation_id;
    let link = format!("{}/orgs/{organisation_id}/projects", state.web.public_url);
    let Some(organisation) = orgs::organisation_name(&state.db, organisation_id).await? else {
        return Ok(());
    };
    let values = [
        ("organisation", organisation),
        ("percent", percent.to_string()),
        ("used", overview.used_attempts.to_string()),
        ("included", overview.included_attempts.to_string()),
        ("plan", overview.plan.name.clone()),
        ("link", link),
    ];
    email_members(
        state,
        organisation_id,
        |role| role.allows(Permission::BillingWrite),
        "{organisation} used {percent} % of its protected attempts on HumanProof",
        body,
        &values,
    )
    .await
}

/// Emails the organisation's members whose role `to` picks, each in their language, the
/// `subject` and `body` (English keys) filled with `values`. A failed send is logged: a
/// notice must not fail the telemetry it came with.
async fn email_members(
    state: &AppState,
    organisation_id: &str,
    to: impl Fn(Role) -> bool,
    subject: &str,
    body: &str,
    values: &[(&str, String)],
) -> Result<(), sqlx::Error> {
    for member in orgs::members(&state.db, organisation_id).await? {
        if !to(member.role) {
            continue;
        }
        let Some(user) = accounts::find_user(&state.db, &member.user_id).await? else {
            continue;
        };
        let lang = &user.language;
        let email = Email {
            to: user.email.clone(),
            subject: i18n::fill(i18n::translate(lang, subject), values),
            body: i18n::fill(i18n::translate(lang, body), values),
            reply_to: None,
        };
        if let Err(err) = state.mailer.send(&email).await {
            tracing::error!(error = %err, subject, "could not send a notice");
        }
    }
    Ok(())
}

/// Opens a Stripe Checkout for a paid plan on an interval; the URL to send the member to.
/// The plan changes when Stripe's webhook reports the subscription, not here.
pub async fn start_checkout(
    state: &AppState,
    actor: &Actor,
    plan_id: &str,
    interval: Interval,
) -> Result<String, ApiError> {
    actor.require(Permission::BillingWrite)?;
    let Some(stripe) = &state.stripe else {
        return Err(ApiError::Conflict("billing_not_configured"));
    };
    let (price, plan) = price_of(&state.plans, plan_id, interval)?;
    let link = billing::stripe_link(&state.db, &actor.organisation_id).await?;
    if link
        .as_ref()
        .is_some_and(|link| link.subscription_id.is_some())
    {
        // A second subscription would bill twice; a running one is changed, not replaced.
        return Err(ApiError::Conflict("already_subscribed"));
    }
    let Principal::Member { user, .. } = &actor.principal else {
        return Err(ApiError::Forbidden("members_only"));
    };
    let billing_page = format!(
        "{}/orgs/{}/billing",
        state.web.public_url, actor.organisation_id
    );
    let request = CheckoutRequest {
        price,
        overage_price: plan.prices.overage.as_deref(),
        organisation_id: &actor.organisation_id,
        customer: link.as_ref().map(|link| link.customer_id.as_str()),
        customer_email: &user.email,
        success_url: format!("{billing_page}?checkout=done"),
        cancel_url: billing_page,
    };
    stripe.checkout(&request).await.map_err(|err| {
        tracing::error!(error = %err, "Stripe checkout failed");
        ApiError::Unavailable("stripe_unavailable")
    })
}

/// Opens Stripe's Customer Portal for the organisation's customer (payment methods, invoices,
/// cancellation); the URL to send the member to.
pub async fn open_portal(state: &AppState, actor: &Actor) -> Result<String, ApiError> {
    actor.require(Permission::BillingWrite)?;
    let Some(stripe) = &state.stripe else {
        return Err(ApiError::Conflict("billing_not_configured"));
    };
    let link = billing::stripe_link(&state.db, &actor.organisation_id)
        .await?
        .ok_or(ApiError::Conflict("no_stripe_customer"))?;
    let return_url = format!(
        "{}/orgs/{}/billing",
        state.web.public_url, actor.organisation_id
    );
    stripe
        .portal(&link.customer_id, &return_url)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "Stripe portal failed");
            ApiError::Unavailable("stripe_unavailable")
        })
}

/// What applying a Stripe event did, as recorded with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// The organisation's plan and status now match the subscription's.
    Applied {
        /// The organisation.
        organisation_id: String,
        /// Its plan now.
        plan: String,
        /// Its billing status now.
        status: BillingStatus,
    },
    /// The customer's billing email was recorded.
    BillingEmail,
    /// A delivery of an event applied before: nothing done.
    Duplicate,
    /// An event billing does not act on, or one that names no organisation HumanProof knows.
    Ignored(&'static str),
}

impl EventOutcome {
    /// How the event is recorded.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied { .. } => "applied",
            Self::BillingEmail => "billing_email",
            Self::Duplicate => "duplicate",
            Self::Ignored(why) => why,
        }
    }
}

/// Why a Stripe event could not be applied now; Stripe delivers it again later.
#[derive(Debug, thiserror::Error)]
pub enum StripeSyncError {
    /// Reading the subscription from Stripe failed.
    #[error("Stripe: {0}")]
    Stripe(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Applies a verified Stripe event once: reads the subscription it names back from Stripe
/// (so duplicates, late and out-of-order deliveries all end in Stripe's current state), sets
/// the organisation's plan and status from it, audits the change as Stripe's, and
/// republishes the organisation's gates. A customer's billing email comes with the event
/// itself, and an older event never overwrites a newer one.
pub async fn apply_stripe_event(
    state: &AppState,
    stripe: &Stripe,
    event: &WebhookEvent,
) -> Result<EventOutcome, StripeSyncError> {
    if billing::stripe_event_applied(&state.db, &event.id).await? {
        return Ok(EventOutcome::Duplicate);
    }
    let object = &event.data.object;
    let subscription_id = match event.kind.as_str() {
        "checkout.session.completed" | "invoice.paid" | "invoice.payment_failed" => {
            object.subscription.clone()
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => object.id.clone(),
        _ => None,
    };
    let outcome = match (subscription_id, event.kind.as_str(), &object.id) {
        (Some(subscription_id), _, _) => {
            let actor = format!("stripe:{}", event.id);
            let named = object.client_reference_id.as_deref();
            sync_subscription(state, stripe, &subscription_id, named, &actor).await?
        }
        (None, "customer.updated", Some(customer)) => {
            let email = object.email.as_deref();
            if billing::set_billing_email(&state.db, customer, email, event.created).await? {
                EventOutcome::BillingEmail
            } else {
                EventOutcome::Ignored("stale_or_unknown_customer")
            }
        }
        _ => EventOutcome::Ignored("not_a_subscription_event"),
    };
    billing::record_stripe_event(
        &state.db,
        &event.id,
        &event.kind,
        outcome.as_str(),
        state.clock.now_ms(),
    )
    .await?;
    Ok(outcome)
}

/// Reads the subscription back from Stripe and makes the organisation's billing match it:
/// plan, status, interval, period end, a change scheduled for the period's end. `named` is
/// the organisation a Checkout Session was opened for; later events find it by customer.
/// `actor` is who caused the change (`stripe:evt_…` or the member), for the audit log.
async fn sync_subscription(
    state: &AppState,
    stripe: &Stripe,
    subscription_id: &str,
    named: Option<&str>,
    actor: &str,
) -> Result<EventOutcome, StripeSyncError> {
    let stripe_failed = |err: stripe::StripeError| StripeSyncError::Stripe(err.to_string());
    let subscription = stripe
        .subscription(subscription_id)
        .await
        .map_err(stripe_failed)?;
    let named = named
        .map(str::to_owned)
        .or_else(|| subscription.organisation_id.clone());
    let organisation_id = match named {
        Some(id) if orgs::organisation_name(&state.db, &id).await?.is_some() => Some(id),
        _ => billing::organisation_of_customer(&state.db, &subscription.customer).await?,
    };
    let Some(organisation_id) = organisation_id else {
        return Ok(EventOutcome::Ignored("unknown_organisation"));
    };
    let Some((plan, interval)) = plan_of(&state.plans, &subscription) else {
        tracing::warn!(
            subscription = subscription.id,
            "a subscription to no price in the catalogue"
        );
        return Ok(EventOutcome::Ignored("unknown_price"));
    };
    let pending_change = match &subscription.schedule {
        Some(schedule) => stripe
            .scheduled_change(schedule)
            .await
            .map_err(stripe_failed)?
            .and_then(|change| {
                let (next, next_interval) = change
                    .prices
                    .iter()
                    .find_map(|price| state.plans.by_price(price))?;
                ((next.id.as_str(), next_interval) != (plan.id.as_str(), interval)).then(|| {
                    PendingChange {
                        plan: next.id.clone(),
                        interval: next_interval.as_str().to_owned(),
                        at: change.starts_at.saturating_mul(1000),
                    }
                })
            }),
        None => None,
    };
    let now = state.clock.now_ms();
    let (previous, previous_link) = billing::find_with_link(&state.db, &organisation_id).await?;
    // A subscription that ended, or never started, leaves the organisation on Free.
    let (plan, status, interval) = match subscription.status.as_str() {
        "active" => (plan.id.as_str(), BillingStatus::Active, Some(interval)),
        "trialing" => (plan.id.as_str(), BillingStatus::Trialing, Some(interval)),
        "past_due" | "unpaid" => (plan.id.as_str(), BillingStatus::PastDue, Some(interval)),
        _ => (plans::FREE, BillingStatus::Active, None),
    };
    let account = previous.changed_to(plan, status, now);
    billing::set(&state.db, &organisation_id, &account, now).await?;
    let link = StripeLink {
        customer_id: subscription.customer.clone(),
        subscription_id: interval.map(|_| subscription.id.clone()),
        interval: interval.map(|interval| interval.as_str().to_owned()),
        current_period_end: interval.and(subscription.current_period_end),
        pending_change: interval.and(pending_change),
        cancel_at_period_end: interval.is_some() && subscription.cancel_at_period_end,
        billing_email: None,
    };
    billing::link_stripe(&state.db, &organisation_id, &link, now).await?;
    if previous_link.is_none() {
        super::vat::pass_to_new_customer(state, &organisation_id, actor).await?;
    }
    let mut changes = Vec::new();
    if (previous.plan.as_str(), previous.status) != (plan, status) {
        changes.push(format!("billing.set.{plan}.{}", status.as_str()));
    }
    let previous_pending = previous_link.and_then(|link| link.pending_change);
    if previous_pending
        .as_ref()
        .map(|change| (&change.plan, &change.interval))
        != link
            .pending_change
            .as_ref()
            .map(|change| (&change.plan, &change.interval))
    {
        changes.push(match &link.pending_change {
            Some(change) => format!("billing.pending.{}.{}", change.plan, change.interval),
            None => "billing.pending.none".to_owned(),
        });
    }
    for change in changes {
        orgs::audit(
            &state.db,
            Some(&organisation_id),
            actor,
            &change,
            Some(&subscription.id),
            now,
        )
        .await?;
    }
    state.publish_changes().await;
    Ok(EventOutcome::Applied {
        organisation_id,
        plan: plan.to_owned(),
        status,
    })
}

/// The plan and interval a subscription is for: those of the first of its prices the
/// catalogue sells (its overage price stands for no interval).
fn plan_of<'a>(
    plans: &'a Catalogue,
    subscription: &SubscriptionState,
) -> Option<(&'a Plan, Interval)> {
    subscription
        .items
        .iter()
        .find_map(|item| plans.by_price(&item.price))
}

/// The price of a plan on an interval, refused if the catalogue does not sell it so.
fn price_of<'a>(
    plans: &'a Catalogue,
    plan_id: &str,
    interval: Interval,
) -> Result<(&'a str, &'a Plan), ApiError> {
    plans
        .get(plan_id)
        .and_then(|plan| Some((plan.prices.for_interval(interval)?, plan)))
        .ok_or_else(|| ApiError::invalid("plan", "That plan is not sold on that interval."))
}

/// When a subscribed organisation's plan changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeTiming {
    /// An upgrade: at once, the prorated difference invoiced now.
    Now,
    /// A downgrade or another interval: when the current period ends, until then pending
    /// and cancellable.
    AtPeriodEnd,
}

/// Changes a running subscription to another plan or interval. An upgrade takes effect at
/// once, prorated; a downgrade or a change of interval waits for the end of the period the
/// customer paid for, as a pending change that [`cancel_pending_change`] withdraws. A new
/// change replaces a pending one.
pub async fn change_plan(
    state: &AppState,
    actor: &Actor,
    plan_id: &str,
    interval: Interval,
) -> Result<ChangeTiming, ApiError> {
    actor.require(Permission::BillingWrite)?;
    let (stripe, subscription) = running_subscription(state, actor).await?;
    let (price, plan) = price_of(&state.plans, plan_id, interval)?;
    let Some((current, current_interval)) = plan_of(&state.plans, &subscription) else {
        return Err(ApiError::Conflict("unknown_price"));
    };
    if (current.id.as_str(), current_interval) == (plan_id, interval) {
        return Err(ApiError::Conflict("no_change"));
    }
    let upgrade = state.plans.rank(plan_id) > state.plans.rank(&current.id);
    let stripe_failed = |err: stripe::StripeError| {
        tracing::error!(error = %err, "Stripe refused a plan change");
        ApiError::Unavailable("stripe_unavailable")
    };
    if let Some(schedule) = &subscription.schedule {
        stripe
            .release_schedule(schedule)
            .await
            .map_err(stripe_failed)?;
    }
    let timing = if upgrade {
        stripe
            .change_now(
                &subscription.id,
                &item_changes(&subscription, current, price, plan),
            )
            .await
            .map_err(stripe_failed)?;
        ChangeTiming::Now
    } else {
        let prices: Vec<String> = std::iter::once(price.to_owned())
            .chain(plan.prices.overage.clone())
            .collect();
        stripe
            .change_at_period_end(&subscription, &prices, interval)
            .await
            .map_err(stripe_failed)?;
        ChangeTiming::AtPeriodEnd
    };
    let when = match timing {
        ChangeTiming::Now => "now",
        ChangeTiming::AtPeriodEnd => "period_end",
    };
    actor
        .audit(
            state,
            &format!("billing.change.{plan_id}.{}.{when}", interval.as_str()),
            Some(&subscription.id),
        )
        .await?;
    resync(state, stripe, actor, &subscription.id).await?;
    Ok(timing)
}

/// Withdraws a change waiting for the end of the period; the plan stays as it is.
pub async fn cancel_pending_change(state: &AppState, actor: &Actor) -> Result<(), ApiError> {
    actor.require(Permission::BillingWrite)?;
    let (stripe, subscription) = running_subscription(state, actor).await?;
    let Some(schedule) = &subscription.schedule else {
        return Err(ApiError::Conflict("no_pending_change"));
    };
    stripe.release_schedule(schedule).await.map_err(|err| {
        tracing::error!(error = %err, "Stripe refused to release a schedule");
        ApiError::Unavailable("stripe_unavailable")
    })?;
    actor
        .audit(state, "billing.pending.cancelled", Some(&subscription.id))
        .await?;
    resync(state, stripe, actor, &subscription.id).await
}

/// The organisation's running subscription, as Stripe has it now.
async fn running_subscription<'a>(
    state: &'a AppState,
    actor: &Actor,
) -> Result<(&'a Stripe, SubscriptionState), ApiError> {
    let Some(stripe) = &state.stripe else {
        return Err(ApiError::Conflict("billing_not_configured"));
    };
    let subscription_id = billing::stripe_link(&state.db, &actor.organisation_id)
        .await?
        .and_then(|link| link.subscription_id)
        .ok_or(ApiError::Conflict("not_subscribed"))?;
    let subscription = stripe.subscription(&subscription_id).await.map_err(|err| {
        tracing::error!(error = %err, "could not read a subscription from Stripe");
        ApiError::Unavailable("stripe_unavailable")
    })?;
    Ok((stripe, subscription))
}

/// After a member's change, the organisation's billing as Stripe has it now (Stripe's
/// webhook about the same change then finds nothing left to do).
async fn resync(
    state: &AppState,
    stripe: &Stripe,
    actor: &Actor,
    subscription_id: &str,
) -> Result<(), ApiError> {
    sync_subscription(
        state,
        stripe,
        subscription_id,
        Some(&actor.organisation_id),
        &actor.audit_name(),
    )
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "could not read back a changed subscription");
        ApiError::Unavailable("stripe_unavailable")
    })?;
    Ok(())
}

/// How a subscription's items move to `price` (and the new plan's overage price): the
/// plan's item is replaced, the overage item replaced, added or removed.
fn item_changes(
    subscription: &SubscriptionState,
    current: &Plan,
    price: &str,
    plan: &Plan,
) -> Vec<ItemChange> {
    let mut changes = Vec::new();
    let mut overage_item = None;
    for item in &subscription.items {
        if current.prices.overage.as_deref() == Some(item.price.as_str()) {
            overage_item = Some(item.id.clone());
        } else {
            changes.push(ItemChange::Replace {
                item: item.id.clone(),
                price: price.to_owned(),
            });
        }
    }
    match (overage_item, &plan.prices.overage) {
        (Some(item), Some(price)) => changes.push(ItemChange::Replace {
            item,
            price: price.clone(),
        }),
        (Some(item), None) => changes.push(ItemChange::Remove { item }),
        (None, Some(price)) => changes.push(ItemChange::Add {
            price: price.clone(),
        }),
        (None, None) => {}
    }
    changes
}

/// Reports usage above the included attempts of every organisation paying through Stripe to
/// the Billing Meter: first the reports an earlier run could not send (with their first
/// identifier, so Stripe counts each once), then, per organisation and for this month and the
/// last, the overage not reported yet. Run every few minutes by `serve`; returns the reports
/// Stripe accepted.
pub async fn report_overage(state: &AppState) -> Result<usize, sqlx::Error> {
    let Some(stripe) = &state.stripe else {
        return Ok(0);
    };
    let now = state.clock.now_ms();
    let this_month = month_of(now);
    let last_month = month_range_ms(&this_month)
        .map_or_else(|| this_month.clone(), |(start, _)| month_of(start - 1));
    for (organisation_id, customer_id, plan_id) in
        billing::subscribed_organisations(&state.db).await?
    {
        let plan = state.plans.get_or_free(&plan_id);
        if plan.hard_cap {
            continue;
        }
        for month in [&last_month, &this_month] {
            let used = billing::organisation_usage(&state.db, &organisation_id, month).await?;
            let overage =
                i64::try_from(used.saturating_sub(plan.included_attempts)).unwrap_or(i64::MAX);
            let covered = billing::overage_covered(&state.db, &organisation_id, month).await?;
            if overage <= covered {
                continue;
            }
            let report = MeterReport {
                identifier: format!("humanproof-{organisation_id}-{month}-{covered}"),
                organisation_id: organisation_id.clone(),
                customer_id: customer_id.clone(),
                month: month.clone(),
                covered_from: covered,
                covered_to: overage,
                created_at: now,
            };
            billing::insert_meter_report(&state.db, &report).await?;
        }
    }
    let mut sent = 0;
    for report in billing::unsent_meter_reports(&state.db).await? {
        // Usage is dated inside its month, so a report sent after the month ended is billed
        // with that month's invoice.
        let month_end_s = month_range_ms(&report.month).map_or(i64::MAX, |(_, end)| end / 1000);
        let event = MeterEvent {
            event_name: stripe.meter_event_name(),
            customer: &report.customer_id,
            value: u64::try_from(report.covered_to - report.covered_from).unwrap_or(0),
            identifier: &report.identifier,
            timestamp: (report.created_at / 1000).min(month_end_s),
        };
        match stripe.report_usage(&event).await {
            Ok(()) => {
                billing::meter_report_sent(&state.db, &report.identifier, now).await?;
                sent += 1;
            }
            Err(err) => {
                tracing::warn!(error = %err, identifier = report.identifier, "a usage report waits for the next run");
            }
        }
    }
    Ok(sent)
}

/// How often `serve` reports usage above the included attempts. Stripe bills an invoice's
/// usage reported up to about an hour after its period ends, so this leaves ample room.
pub const OVERAGE_REPORT_PERIOD: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Runs [`report_overage`] every [`OVERAGE_REPORT_PERIOD`], for as long as the server runs.
pub async fn report_overage_periodically(state: AppState) {
    let mut every = tokio::time::interval(OVERAGE_REPORT_PERIOD);
    loop {
        every.tick().await;
        if let Err(err) = report_overage(&state).await {
            tracing::warn!(error = %err, "usage reporting failed; will retry");
        }
    }
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
