//! An organisation's EU VAT id: checked against VIES, every check kept in an append-only
//! trail, retried daily while VIES is down, and passed to Stripe once valid.
//!
//! Any organisation may enter one, on any plan: "business customers" are customers buying
//! as a business, not the Business plan, and a business on Starter is owed the reverse charge
//! as much as one on Business. Organisations often enter it before their first checkout, so
//! the id is checked at once and reaches Stripe as an `eu_vat` tax id as soon as the
//! organisation has a Stripe customer (at once if it has one, else by the next retry run).
//!
//! While VIES is down the id is `pending`: the check is retried once a day for
//! [`VAT_GRACE_DAYS`]; if VIES never answers in that time the id becomes `unverified`, and
//! the member may check it again. A pending id is not sent to Stripe: only VIES's "valid" is.

use serde::Serialize;

use super::Actor;
use crate::db::vat::{self, CheckOutcome, OrganisationVat, VatCheck, VatStatus};
use crate::db::{billing, orgs};
use crate::error::ApiError;
use crate::roles::Permission;
use crate::state::AppState;
use crate::vies::{Outcome, VatId};

/// How long VIES may stay down for an id before the id is given up as unverified.
pub const VAT_GRACE_DAYS: i64 = 30;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How long after a "down" answer the id is asked about again.
pub const RETRY_AFTER_MS: i64 = DAY_MS;

/// Checks an organisation's members may ask for in 24 hours: VIES blocks addresses that ask
/// too often, which would stop every organisation's checks.
pub const CHECKS_PER_DAY: u64 = 10;

/// How the audit log names the retry job.
const RETRY_ACTOR: &str = "system:vat-retry";

/// An organisation's VAT id as the billing page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VatDetails {
    /// The id and where its check stands.
    #[serde(flatten)]
    pub vat: OrganisationVat,
    /// The newest check of this id that VIES answered "valid": the consultation number and
    /// the trader's name and address.
    pub proof: Option<VatCheck>,
}

/// The organisation's VAT id, if it entered one.
pub async fn details(state: &AppState, actor: &Actor) -> Result<Option<VatDetails>, ApiError> {
    actor.require(Permission::BillingRead)?;
    Ok(details_of(state, &actor.organisation_id).await?)
}

async fn details_of(
    state: &AppState,
    organisation_id: &str,
) -> Result<Option<VatDetails>, sqlx::Error> {
    let Some(vat) = vat::find(&state.db, organisation_id).await? else {
        return Ok(None);
    };
    // Enough rows to find the last valid one behind a grace period of daily "down" rows.
    let proof = vat::checks(&state.db, organisation_id, VAT_GRACE_DAYS + 2)
        .await?
        .into_iter()
        .find(|check| check.vat_id == vat.vat_id && check.outcome == CheckOutcome::Valid);
    Ok(Some(VatDetails { vat, proof }))
}

/// Sets the organisation's VAT id and checks it against VIES now.
pub async fn set_vat_id(
    state: &AppState,
    actor: &Actor,
    input: &str,
) -> Result<VatDetails, ApiError> {
    actor.require(Permission::BillingWrite)?;
    let id = VatId::parse(input).ok_or_else(|| {
        ApiError::invalid(
            "vat_id",
            "Enter an EU VAT id: the country prefix (such as DE, FR or EL for Greece) and the number.",
        )
    })?;
    let now = state.clock.now_ms();
    let organisation_id = &actor.organisation_id;
    if vat::checks_since(&state.db, organisation_id, now - DAY_MS).await? >= CHECKS_PER_DAY {
        return Err(ApiError::Conflict("vat_check_limit"));
    }
    let previous = vat::find(&state.db, organisation_id).await?;
    check(state, organisation_id, &id, previous, &actor.audit_name()).await?;
    Ok(details_of(state, organisation_id)
        .await?
        .expect("the check was just recorded"))
}

/// What a run of [`retry_pending_vat_checks`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetryReport {
    /// Pending ids asked about again.
    pub checked: u64,
    /// Valid ids given to the organisation's Stripe customer.
    pub passed_to_stripe: u64,
}

/// Asks VIES again about every pending id whose retry is due (one a day per id), and gives
/// Stripe the valid ids of organisations that have a Stripe customer now but had none when
/// their id was checked.
pub async fn retry_pending_vat_checks(state: &AppState) -> Result<RetryReport, sqlx::Error> {
    let mut report = RetryReport::default();
    for organisation_id in vat::pending_due(&state.db, state.clock.now_ms()).await? {
        let Some(previous) = vat::find(&state.db, &organisation_id).await? else {
            continue;
        };
        let Some(id) = VatId::parse(&previous.vat_id) else {
            tracing::error!(organisation_id, "a stored VAT id no longer parses");
            continue;
        };
        check(state, &organisation_id, &id, Some(previous), RETRY_ACTOR).await?;
        report.checked += 1;
    }
    for organisation_id in vat::valid_without_stripe_tax_id(&state.db).await? {
        if let Some(mut current) = vat::find(&state.db, &organisation_id).await?
            && pass_to_stripe(state, &organisation_id, &mut current, RETRY_ACTOR).await?
        {
            report.passed_to_stripe += 1;
        }
    }
    Ok(report)
}

/// Runs [`retry_pending_vat_checks`] now and every hour after, for as long as the server
/// runs; each id is still asked about once a day, when its retry falls due.
pub async fn run_retries(state: AppState) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        match retry_pending_vat_checks(&state).await {
            Ok(report) => tracing::info!(?report, "VAT checks retried"),
            Err(err) => tracing::warn!(error = %err, "VAT retries failed; will try next hour"),
        }
    }
}

/// Asks VIES about `id`, appends the answer to the trail, sets the organisation's state from
/// it, audits a change, and keeps Stripe's tax id in step.
async fn check(
    state: &AppState,
    organisation_id: &str,
    id: &VatId,
    previous: Option<OrganisationVat>,
    actor: &str,
) -> Result<(), sqlx::Error> {
    let outcome = state.vies.check(id).await;
    let now = state.clock.now_ms();
    let vat_id = id.to_string();
    let same_id = previous.as_ref().filter(|vat| vat.vat_id == vat_id);
    let mut row = VatCheck {
        id: crate::secrets::new_id(),
        organisation_id: organisation_id.to_owned(),
        vat_id: vat_id.clone(),
        outcome: CheckOutcome::Down,
        consultation_number: None,
        trader_name: None,
        trader_address: None,
        detail: None,
        checked_at: now,
    };
    let mut current = OrganisationVat {
        vat_id,
        status: VatStatus::Pending,
        checked_at: now,
        grace_ends_at: None,
        next_check_at: None,
        stripe_tax_id: None,
    };
    match outcome {
        Outcome::Valid(registration) => {
            row.outcome = CheckOutcome::Valid;
            row.consultation_number = registration.consultation_number;
            row.trader_name = registration.name;
            row.trader_address = registration.address;
            current.status = VatStatus::Valid;
        }
        Outcome::Invalid => {
            row.outcome = CheckOutcome::Invalid;
            current.status = VatStatus::Invalid;
        }
        Outcome::Down(detail) => {
            row.detail = Some(detail);
            // The grace period runs from the first "down" of a pending id, not from each retry.
            let grace_ends_at = same_id
                .filter(|vat| vat.status == VatStatus::Pending)
                .and_then(|vat| vat.grace_ends_at)
                .unwrap_or(now + VAT_GRACE_DAYS * DAY_MS);
            if now >= grace_ends_at {
                current.status = VatStatus::Unverified;
            } else {
                current.grace_ends_at = Some(grace_ends_at);
                current.next_check_at = Some(now + RETRY_AFTER_MS);
            }
        }
    }
    // Stripe keeps the tax id while the same id is valid, or pending after being valid;
    // a new id, an invalid or an unverified one takes it off the customer.
    let previous_tax_id = previous.as_ref().and_then(|vat| vat.stripe_tax_id.clone());
    let keeps_tax_id =
        same_id.is_some() && matches!(current.status, VatStatus::Valid | VatStatus::Pending);
    if keeps_tax_id {
        current.stripe_tax_id = previous_tax_id;
    } else if let Some(tax_id) = previous_tax_id {
        remove_from_stripe(state, organisation_id, &tax_id).await?;
    }
    vat::record(&state.db, &row, &current).await?;
    let changed = previous.as_ref().is_none_or(|vat| {
        (vat.vat_id.as_str(), vat.status) != (current.vat_id.as_str(), current.status)
    });
    if changed {
        audit(state, organisation_id, actor, &current, now).await?;
    }
    if current.status == VatStatus::Valid && current.stripe_tax_id.is_none() {
        pass_to_stripe(state, organisation_id, &mut current, actor).await?;
    }
    Ok(())
}

async fn audit(
    state: &AppState,
    organisation_id: &str,
    actor: &str,
    current: &OrganisationVat,
    now: i64,
) -> Result<(), sqlx::Error> {
    orgs::audit(
        &state.db,
        Some(organisation_id),
        actor,
        &format!("vat.{}", current.status.as_str()),
        Some(&current.vat_id),
        now,
    )
    .await
}

/// When an organisation gets its Stripe customer (its first checkout), gives the customer the
/// valid VAT id entered before, so the first invoice already carries it.
pub async fn pass_to_new_customer(
    state: &AppState,
    organisation_id: &str,
    actor: &str,
) -> Result<(), sqlx::Error> {
    if let Some(mut current) = vat::find(&state.db, organisation_id).await?
        && current.status == VatStatus::Valid
        && current.stripe_tax_id.is_none()
    {
        pass_to_stripe(state, organisation_id, &mut current, actor).await?;
    }
    Ok(())
}

/// Gives the organisation's Stripe customer the valid id as an `eu_vat` tax id; `false` when
/// there is no Stripe or no customer yet, or Stripe failed (logged; the retry run tries again).
async fn pass_to_stripe(
    state: &AppState,
    organisation_id: &str,
    current: &mut OrganisationVat,
    actor: &str,
) -> Result<bool, sqlx::Error> {
    let Some(stripe) = &state.stripe else {
        return Ok(false);
    };
    let Some(link) = billing::stripe_link(&state.db, organisation_id).await? else {
        return Ok(false);
    };
    match stripe
        .add_eu_vat_id(&link.customer_id, &current.vat_id)
        .await
    {
        Ok(tax_id) => {
            let now = state.clock.now_ms();
            current.stripe_tax_id = Some(tax_id.clone());
            vat::set_state(&state.db, organisation_id, current, now).await?;
            orgs::audit(
                &state.db,
                Some(organisation_id),
                actor,
                "vat.stripe_tax_id",
                Some(&tax_id),
                now,
            )
            .await?;
            Ok(true)
        }
        Err(err) => {
            tracing::warn!(error = %err, organisation_id, "Stripe did not take the VAT id; retried later");
            Ok(false)
        }
    }
}

/// Takes a tax id off the organisation's Stripe customer. If Stripe refuses, the id is
/// logged for the operator to remove by hand: the organisation's VAT state moves on either
/// way, so a member is never stuck behind Stripe.
async fn remove_from_stripe(
    state: &AppState,
    organisation_id: &str,
    tax_id: &str,
) -> Result<(), sqlx::Error> {
    let (Some(stripe), Some(link)) = (
        &state.stripe,
        billing::stripe_link(&state.db, organisation_id).await?,
    ) else {
        return Ok(());
    };
    if let Err(err) = stripe.remove_tax_id(&link.customer_id, tax_id).await {
        tracing::error!(error = %err, organisation_id, tax_id, "remove this tax id from the Stripe customer by hand");
    }
    Ok(())
}
