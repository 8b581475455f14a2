//! EU VAT ids on SQLite and PostgreSQL, against the VIES and Stripe stand-ins: valid (proof
//! kept, tax id on the Stripe customer, audited), invalid, malformed (refused before VIES is
//! asked), VIES down (pending under the grace period, retried daily until it answers or the
//! grace runs out), the append-only trail, and its retention.

use humanproof_control_plane::AppState;
use humanproof_control_plane::db::billing::{self, StripeLink};
use humanproof_control_plane::db::retention::{self, VAT_CHECK_TTL_MS, VAT_DOWN_CHECK_TTL_MS};
use humanproof_control_plane::db::vat::{self, CheckOutcome, VatCheck, VatStatus};
use humanproof_control_plane::db::{accounts, orgs};
use humanproof_control_plane::local::{StripeStandIn, ViesStandIn};
use humanproof_control_plane::roles::Role;
use humanproof_control_plane::service::vat::{VAT_GRACE_DAYS, retry_pending_vat_checks};
use humanproof_control_plane::stripe::Stripe;
use humanproof_control_plane::vies::{VatId, Vies};
use humanproof_tests::*;

const PASSWORD: &str = "correct horse battery";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const VALID: &str = "DE123456789";
const CUSTOMER: &str = "cus_vat";

/// The control plane with Stripe and VIES pointed at their stand-ins, and an owner signed in
/// to an organisation that has a Stripe customer.
struct Billed {
    state: AppState,
    stripe: StripeStandIn,
    vies: ViesStandIn,
    base: String,
    owner: Browser,
    org: String,
}

async fn billed(world: &World, with_customer: bool) -> Billed {
    let stripe = StripeStandIn::new(world.clock.clone(), &world.state().plans);
    let stripe_url = serve_app(stripe.router()).await;
    let vies = ViesStandIn::new();
    vies.register(VALID, "Kunde GmbH", "Musterstraße 1, 10115 Berlin");
    let vies_url = serve_app(vies.router()).await;
    let state = world.state().with(|state| {
        state.stripe =
            Some(Stripe::new("sk_test_vat", "whsec_test", &format!("{stripe_url}/")).unwrap());
        state.vies = Vies::new(&vies_url, VatId::parse("IE9999999X"));
    });
    let base = serve_control_plane(state.clone()).await;
    let owner = Browser::new(&base);
    let org = owner.sign_up("owner@example.com", PASSWORD).await;
    if with_customer {
        link_customer(world, &org).await;
    }
    Billed {
        state,
        stripe,
        vies,
        base,
        owner,
        org,
    }
}

/// Gives the organisation a Stripe customer, as a checkout would.
async fn link_customer(world: &World, org: &str) {
    world.on_plan(org, "pro").await;
    let link = StripeLink {
        customer_id: CUSTOMER.into(),
        subscription_id: Some("sub_vat".into()),
        interval: Some("month".into()),
        current_period_end: None,
        pending_change: None,
        cancel_at_period_end: false,
        billing_email: None,
    };
    billing::link_stripe(&world.db, org, &link, world.clock.now_ms())
        .await
        .unwrap();
}

/// The organisation's trail, oldest first.
async fn trail(world: &World, org: &str) -> Vec<VatCheck> {
    let mut checks = vat::checks(&world.db, org, 1000).await.unwrap();
    checks.reverse();
    checks
}

/// The organisation's VAT audit actions, sorted (entries written in the same millisecond
/// have no order).
async fn vat_audits(world: &World, org: &str) -> Vec<String> {
    let mut actions: Vec<String> = orgs::audit_log(&world.db, org, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|entry| entry.action.starts_with("vat."))
        .map(|entry| entry.action)
        .collect();
    actions.sort();
    actions
}

async fn set_vat(billed: &Billed, browser: &Browser, input: &str) -> Page {
    browser
        .post(
            &format!("/orgs/{}/billing/vat", billed.org),
            &[("vat_id", input)],
        )
        .await
}

on_both_databases! {
    async fn a_valid_id_is_kept_with_its_proof_and_given_to_the_stripe_customer(world: World) {
        let billed = billed(&world, true).await;
        set_vat(&billed, &billed.owner, "de 123.456-789").await.expect(303);

        let rows = trail(&world, &billed.org).await;
        assert_eq!(rows.len(), 1);
        let proof = &rows[0];
        assert_eq!((proof.vat_id.as_str(), proof.outcome), (VALID, CheckOutcome::Valid));
        assert!(proof.consultation_number.as_deref().is_some_and(|n| n.starts_with("WAPI")), "{proof:?}");
        assert_eq!(proof.trader_name.as_deref(), Some("Kunde GmbH"));
        let state = vat::find(&world.db, &billed.org).await.unwrap().unwrap();
        assert_eq!(state.status, VatStatus::Valid);
        let tax_ids = billed.stripe.tax_ids(CUSTOMER);
        assert_eq!(tax_ids.len(), 1);
        assert_eq!((tax_ids[0].kind.as_str(), tax_ids[0].value.as_str()), ("eu_vat", VALID));
        assert_eq!(state.stripe_tax_id.as_deref(), Some(tax_ids[0].id.as_str()));
        assert_eq!(vat_audits(&world, &billed.org).await, ["vat.stripe_tax_id", "vat.valid"]);

        let page = billed.owner.get(&format!("/orgs/{}/billing", billed.org)).await.expect(200);
        assert!(page.body.contains(VALID) && page.body.contains("Consultation number"), "{}", page.body);
        assert!(page.body.contains(proof.consultation_number.as_deref().unwrap()) && page.body.contains("Kunde GmbH"));

        // A viewer sees the id but has no form, and cannot change it.
        let now = world.clock.now_ms();
        let hash = humanproof_control_plane::accounts::hash_password(PASSWORD).await;
        let user = accounts::insert_user(&world.db, "viewer@example.com", &hash, false, now).await.unwrap();
        accounts::mark_email_verified(&world.db, &user.id, now).await.unwrap();
        orgs::put_member(&world.db, &billed.org, &user.id, Role::Viewer, now).await.unwrap();
        let viewer = Browser::new(&billed.base);
        viewer.sign_in("viewer@example.com", PASSWORD).await.expect(303);
        let page = viewer.get(&format!("/orgs/{}/billing", billed.org)).await.expect(200);
        assert!(page.body.contains(VALID) && !page.body.contains("/billing/vat"), "{}", page.body);
        set_vat(&billed, &viewer, "FR12345678901").await.expect(403);
        assert_eq!(trail(&world, &billed.org).await, rows, "nothing was asked for the viewer");
    }

    async fn an_invalid_id_is_recorded_and_replaces_the_one_stripe_had(world: World) {
        let billed = billed(&world, true).await;
        set_vat(&billed, &billed.owner, VALID).await.expect(303);
        assert_eq!(billed.stripe.tax_ids(CUSTOMER).len(), 1);

        world.clock.advance(1000);
        set_vat(&billed, &billed.owner, "FR 123 456 789 01").await.expect(303);
        let rows = trail(&world, &billed.org).await;
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].vat_id.as_str(), rows[1].outcome), ("FR12345678901", CheckOutcome::Invalid));
        assert_eq!((rows[1].consultation_number.as_deref(), rows[1].trader_name.as_deref()), (None, None));
        let state = vat::find(&world.db, &billed.org).await.unwrap().unwrap();
        assert_eq!((state.status, state.stripe_tax_id.as_deref()), (VatStatus::Invalid, None));
        assert!(billed.stripe.tax_ids(CUSTOMER).is_empty(), "the replaced id is off the customer");
        assert_eq!(vat_audits(&world, &billed.org).await, ["vat.invalid", "vat.stripe_tax_id", "vat.valid"]);
        let page = billed.owner.get(&format!("/orgs/{}/billing", billed.org)).await.expect(200);
        assert!(page.body.contains("Not valid: VIES does not know this VAT id."), "{}", page.body);
    }

    async fn malformed_ids_are_refused_before_vies_is_asked(world: World) {
        let billed = billed(&world, true).await;
        for input in ["", "DE", "US123456789", "GB123456789", "DE12345678901234", "DE1234_5678", "DEABCDEFG"] {
            let page = set_vat(&billed, &billed.owner, input).await.expect(400);
            assert!(page.body.contains("Enter an EU VAT id"), "{input:?}: {}", page.body);
        }
        // The same refusal as JSON names its field and code.
        let actor = humanproof_control_plane::service::Actor::member(
            &billed.state,
            accounts::find_user_by_email(&world.db, "owner@example.com").await.unwrap().unwrap().0,
            &billed.org,
        ).await.unwrap().unwrap();
        let err = humanproof_control_plane::service::vat::set_vat_id(&billed.state, &actor, "XX1").await.unwrap_err();
        assert_eq!((err.code(), err.status_code().as_u16()), ("invalid_field", 400));
        assert_eq!(billed.vies.questions(), 0);
        assert!(trail(&world, &billed.org).await.is_empty());
        assert!(vat::find(&world.db, &billed.org).await.unwrap().is_none());
    }

    async fn an_organisation_asks_vies_at_most_ten_times_a_day(world: World) {
        let billed = billed(&world, false).await;
        for _ in 0..humanproof_control_plane::service::vat::CHECKS_PER_DAY {
            set_vat(&billed, &billed.owner, "FR12345678901").await.expect(303);
        }
        let page = set_vat(&billed, &billed.owner, VALID).await.expect(409);
        assert!(page.body.contains("checked VAT ids too often today"), "{}", page.body);
        assert_eq!(billed.vies.questions(), 10);
        world.clock.advance(DAY_MS);
        set_vat(&billed, &billed.owner, VALID).await.expect(303);
        assert_eq!(vat::find(&world.db, &billed.org).await.unwrap().unwrap().status, VatStatus::Valid);
    }

    async fn while_vies_is_down_the_id_is_pending_and_retried_daily_until_it_answers(world: World) {
        let billed = billed(&world, true).await;
        billed.vies.set_down(true);
        let start = world.clock.now_ms();
        set_vat(&billed, &billed.owner, VALID).await.expect(303);
        let first = trail(&world, &billed.org).await;
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].outcome, first[0].detail.as_deref()), (CheckOutcome::Down, Some("MS_UNAVAILABLE")));
        let state = vat::find(&world.db, &billed.org).await.unwrap().unwrap();
        assert_eq!(state.status, VatStatus::Pending, "down is never invalid");
        assert_eq!(state.grace_ends_at, Some(start + VAT_GRACE_DAYS * DAY_MS));
        assert_eq!(state.next_check_at, Some(start + DAY_MS));
        assert!(billed.stripe.tax_ids(CUSTOMER).is_empty(), "a pending id is not given to Stripe");
        let page = billed.owner.get(&format!("/orgs/{}/billing", billed.org)).await.expect(200);
        assert!(page.body.contains("Not checked yet: VIES is unavailable."), "{}", page.body);

        // Not due yet: nothing is asked.
        world.clock.advance(DAY_MS - 1);
        assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().checked, 0);
        // A day later, still down: one more "down" row, the grace period unchanged.
        world.clock.advance(1);
        assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().checked, 1);
        let second = trail(&world, &billed.org).await;
        assert_eq!((second.len(), second[1].outcome), (2, CheckOutcome::Down));
        assert_eq!(second[..1], first[..], "earlier rows are never changed");
        let state = vat::find(&world.db, &billed.org).await.unwrap().unwrap();
        assert_eq!(state.grace_ends_at, Some(start + VAT_GRACE_DAYS * DAY_MS));

        // VIES is back: the next day's retry finds the id valid and gives it to Stripe.
        billed.vies.set_down(false);
        world.clock.advance(DAY_MS);
        assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().checked, 1);
        let third = trail(&world, &billed.org).await;
        assert_eq!(third.len(), 3);
        assert_eq!(third[..2], second[..], "earlier rows are never changed");
        assert_eq!(third[2].outcome, CheckOutcome::Valid);
        assert!(third[2].consultation_number.is_some());
        let state = vat::find(&world.db, &billed.org).await.unwrap().unwrap();
        assert_eq!((state.status, state.grace_ends_at, state.next_check_at), (VatStatus::Valid, None, None));
        assert_eq!(billed.stripe.tax_ids(CUSTOMER).len(), 1);
        assert_eq!(vat_audits(&world, &billed.org).await, ["vat.pending", "vat.stripe_tax_id", "vat.valid"]);
        world.clock.advance(DAY_MS);
        assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().checked, 0, "valid ids are not retried");
    }

    async fn an_id_vies_never_answers_for_becomes_unverified_after_the_grace_period(world: World) {
        let billed = billed(&world, true).await;
        billed.vies.set_down(true);
        set_vat(&billed, &billed.owner, VALID).await.expect(303);
        for _ in 0..VAT_GRACE_DAYS {
            world.clock.advance(DAY_MS);
            assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().checked, 1);
        }
        let state = vat::find(&world.db, &billed.org).await.unwrap().unwrap();
        assert_eq!((state.status, state.next_check_at), (VatStatus::Unverified, None));
        assert_eq!(trail(&world, &billed.org).await.len() as i64, VAT_GRACE_DAYS + 1);
        world.clock.advance(DAY_MS);
        assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().checked, 0, "retries stop");
        assert_eq!(vat_audits(&world, &billed.org).await, ["vat.pending", "vat.unverified"]);
        // A month on, the session has expired.
        billed.owner.sign_in("owner@example.com", PASSWORD).await.expect(303);
        let page = billed.owner.get(&format!("/orgs/{}/billing", billed.org)).await.expect(200);
        assert!(page.body.contains("Not verified: VIES was unavailable for too long."), "{}", page.body);
        // The member checks again once VIES is back.
        billed.vies.set_down(false);
        set_vat(&billed, &billed.owner, VALID).await.expect(303);
        assert_eq!(vat::find(&world.db, &billed.org).await.unwrap().unwrap().status, VatStatus::Valid);
        assert!(billed.stripe.tax_ids(CUSTOMER).len() == 1);
    }

    async fn a_valid_id_reaches_stripe_once_the_organisation_has_a_customer(world: World) {
        let billed = billed(&world, false).await;
        set_vat(&billed, &billed.owner, VALID).await.expect(303);
        assert_eq!(vat::find(&world.db, &billed.org).await.unwrap().unwrap().stripe_tax_id, None);
        assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().passed_to_stripe, 0);
        link_customer(&world, &billed.org).await;
        assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().passed_to_stripe, 1);
        assert_eq!(billed.stripe.tax_ids(CUSTOMER).len(), 1);
        assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().passed_to_stripe, 0, "once");
        assert_eq!(trail(&world, &billed.org).await.len(), 1, "Stripe's copy needs no new check");
    }

    async fn a_valid_id_reaches_the_customer_a_checkout_makes_at_once(world: World) {
        let billed = billed(&world, false).await;
        billed.stripe.deliver_webhooks_to(&format!("{}/billing/stripe/webhook", billed.base), "whsec_test");
        set_vat(&billed, &billed.owner, VALID).await.expect(303);
        let checkout = billed.owner
            .post(&format!("/orgs/{}/billing/checkout", billed.org), &[("plan", "pro"), ("interval", "month")])
            .await.expect(303).location.unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        assert_eq!(http.post(&checkout).send().await.unwrap().status().as_u16(), 303);
        let customer = billing::stripe_link(&world.db, &billed.org).await.unwrap().unwrap().customer_id;
        let tax_ids = billed.stripe.tax_ids(&customer);
        assert_eq!(tax_ids.iter().map(|t| (t.kind.as_str(), t.value.as_str())).collect::<Vec<_>>(), [("eu_vat", VALID)]);
        assert_eq!(retry_pending_vat_checks(&billed.state).await.unwrap().passed_to_stripe, 0, "nothing left for the job");
    }

    async fn answers_are_kept_ten_years_and_down_rows_ninety_days(world: World) {
        let billed = billed(&world, true).await;
        set_vat(&billed, &billed.owner, VALID).await.expect(303);
        world.clock.advance(1000);
        set_vat(&billed, &billed.owner, "FR12345678901").await.expect(303);
        world.clock.advance(1000);
        billed.vies.set_down(true);
        set_vat(&billed, &billed.owner, VALID).await.expect(303);
        let last = world.clock.now_ms();
        let rows = trail(&world, &billed.org).await;
        let outcomes: Vec<CheckOutcome> = rows.iter().map(|row| row.outcome).collect();
        assert_eq!(outcomes, [CheckOutcome::Valid, CheckOutcome::Invalid, CheckOutcome::Down]);

        world.clock.advance(last + VAT_DOWN_CHECK_TTL_MS - world.clock.now_ms());
        let report = retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!((report.vat_down_checks_deleted, report.vat_checks_deleted), (0, 0), "90 days are kept whole");
        world.clock.advance(1);
        let report = retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!((report.vat_down_checks_deleted, report.vat_checks_deleted), (1, 0));
        assert_eq!(trail(&world, &billed.org).await, rows[..2], "the answers stay, unchanged");

        // The valid row is two seconds older than the down one, the invalid one a second.
        let first = rows[0].checked_at;
        world.clock.advance(first + VAT_CHECK_TTL_MS - world.clock.now_ms());
        let report = retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!(report.vat_checks_deleted, 0, "ten years are kept whole");
        world.clock.advance(1);
        let report = retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!(report.vat_checks_deleted, 1, "the valid answer, ten years on");
        world.clock.advance(1000);
        let report = retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!(report.vat_checks_deleted, 1, "the invalid answer, ten years on");
        assert!(trail(&world, &billed.org).await.is_empty());
    }
}
