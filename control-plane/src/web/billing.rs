//! The billing page: the organisation's plan, its usage and status, the plans on sale, its
//! EU VAT id, and the way to Stripe's checkout for members who manage billing.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::extract::{Form, OrgActor};
use super::render::{PageError, can, format_time, org_frame, render};
use super::security::{CspAlso, CsrfToken};
use crate::error::ApiError;
use crate::plans::Interval;
use crate::roles::Permission;
use crate::service::billing::{self, ChangeTiming};
use crate::service::vat;
use crate::state::AppState;

/// What Stripe adds to the billing page's address when it sends the buyer back
/// (`checkout=done`), or what a change of plan did (`changed=now|later|kept`).
#[derive(Debug, Deserialize)]
pub struct BillingQuery {
    #[serde(default)]
    checkout: Option<String>,
    #[serde(default)]
    changed: Option<String>,
}

/// `GET /orgs/{org}/billing`.
pub async fn billing_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Query(query): Query<BillingQuery>,
) -> Result<Response, PageError> {
    let overview = billing::overview(&state, &actor).await?;
    let link = billing::stripe_link(&state, &actor).await?;
    let subscribed = link
        .as_ref()
        .is_some_and(|link| link.subscription_id.is_some());
    let manages_billing = state.stripe.is_some() && can(&actor, Permission::BillingWrite);
    let can_buy = manages_billing && !subscribed;
    let can_change = manages_billing && subscribed;
    let can_manage = manages_billing && link.is_some();
    let period_end = overview.current_period_end.map(format_time);
    let grace_end = overview.grace_ends_at.map(format_time);
    let pending = overview.pending_change.as_ref().map(|change| {
        context! {
            plan => state.plans.get_or_free(&change.plan).name.clone(),
            yearly => change.interval == Interval::Year.as_str(),
            date => format_time(change.at),
        }
    });
    let vat = vat::details(&state, &actor).await?;
    let vat_times = vat.as_ref().map(|details| {
        context! {
            checked => format_time(details.vat.checked_at),
            grace_end => details.vat.grace_ends_at.map(format_time),
        }
    });
    // The buttons' forms are answered with a redirect to Stripe's checkout or portal.
    let form_action = state
        .stripe
        .as_ref()
        .filter(|_| can_buy || can_manage)
        .map(|stripe| CspAlso::FormAction(stripe.checkout_origin().to_owned()));
    let page = render(
        &state,
        StatusCode::OK,
        "billing.html",
        &org_frame(&csrf, &actor, "billing"),
        context! {
            billing => Value::from_serialize(&overview), plans => Value::from_serialize(state.plans.plans()),
            can_buy => can_buy, can_change => can_change, can_manage => can_manage, billing_configured => state.stripe.is_some(),
            period_end => period_end, grace_end => grace_end, pending => pending, checkout_done => query.checkout.as_deref() == Some("done"),
            changed => query.changed,
            vat => Value::from_serialize(&vat), vat_times => vat_times, can_set_vat => can(&actor, Permission::BillingWrite),
        },
    );
    let mut response = page.into_response();
    if let Some(form_action) = form_action {
        response.extensions_mut().insert(form_action);
    }
    Ok(response)
}

/// `POST /orgs/{org}/billing/portal`: on to Stripe's Customer Portal.
pub async fn portal(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
) -> Result<Redirect, PageError> {
    Ok(Redirect::to(&billing::open_portal(&state, &actor).await?))
}

/// The plan and interval a member picked.
#[derive(Debug, Deserialize)]
pub struct PlanForm {
    plan: String,
    interval: String,
}

impl PlanForm {
    fn interval(&self) -> Result<Interval, ApiError> {
        match self.interval.as_str() {
            "month" => Ok(Interval::Month),
            "year" => Ok(Interval::Year),
            _ => Err(ApiError::invalid("interval", "Pick monthly or yearly.")),
        }
    }
}

/// `POST /orgs/{org}/billing/checkout`: on to Stripe's checkout page.
pub async fn checkout(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Form(form): Form<PlanForm>,
) -> Result<Redirect, PageError> {
    let url = billing::start_checkout(&state, &actor, &form.plan, form.interval()?).await?;
    Ok(Redirect::to(&url))
}

/// `POST /orgs/{org}/billing/change`: another plan or interval for the running subscription,
/// now (an upgrade) or when the period ends.
pub async fn change(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Form(form): Form<PlanForm>,
) -> Result<Redirect, PageError> {
    let timing = billing::change_plan(&state, &actor, &form.plan, form.interval()?).await?;
    let changed = match timing {
        ChangeTiming::Now => "now",
        ChangeTiming::AtPeriodEnd => "later",
    };
    Ok(Redirect::to(&format!(
        "/orgs/{}/billing?changed={changed}",
        actor.organisation_id
    )))
}

/// `POST /orgs/{org}/billing/pending/cancel`: keeps the plan as it is.
pub async fn cancel_pending(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
) -> Result<Redirect, PageError> {
    billing::cancel_pending_change(&state, &actor).await?;
    Ok(Redirect::to(&format!(
        "/orgs/{}/billing?changed=kept",
        actor.organisation_id
    )))
}

/// The VAT id a member entered.
#[derive(Debug, Deserialize)]
pub struct VatForm {
    vat_id: String,
}

/// `POST /orgs/{org}/billing/vat`: sets the VAT id and checks it against VIES now; back to
/// the billing page, which shows the result.
pub async fn set_vat_id(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Form(form): Form<VatForm>,
) -> Result<Redirect, PageError> {
    vat::set_vat_id(&state, &actor, &form.vat_id).await?;
    Ok(Redirect::to(&format!(
        "/orgs/{}/billing",
        actor.organisation_id
    )))
}
