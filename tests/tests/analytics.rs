//! Daily statistics and retention, on SQLite and PostgreSQL with a controlled clock: the
//! roll-up counts what the edge and siteverify recorded, rolling a day up again gives the same
//! row, a late delivery is counted, each plan's events and statistics go when its windows end
//! while their receipts keep a redelivery from counting again, and sessions, claims, attempt
//! counters, passkey ceremonies and Stripe's events go when theirs do.

use humanproof_control_plane::db::projects::{self, BillingStatus};
use humanproof_control_plane::db::stats::{self, DAY_MS, DailyStats, day_of};
use humanproof_control_plane::db::{month_of, retention, telemetry};
use humanproof_tests::*;
use serde_json::json;

async fn day_row(world: &World, project_id: &str, at_ms: i64) -> Option<DailyStats> {
    let day = day_of(at_ms);
    stats::project_days(&world.db, project_id, &day, &day)
        .await
        .unwrap()
        .pop()
}

on_both_databases! {
    async fn a_day_is_rolled_up_from_its_events_and_again_to_the_same_row(world: World) {
        let site = world.create_project(quick_project("stats")).await;
        let other = world.create_project(quick_project("elsewhere")).await;
        // Two visitors earn tokens; the backend verifies one twice and a forged one once.
        let token = world.verification_token(site.site_key()).await;
        world.verification_token(site.site_key()).await;
        for response in [token.as_str(), token.as_str(), "forged"] {
            world.siteverify(&[("secret", &site.secret), ("response", response)]).await;
        }
        // The project is paused: a start is refused with its reason.
        projects::set_gates(&world.db, &site.project.id, false, BillingStatus::Active, None, world.clock.now_ms()).await.unwrap();
        world.publish().await;
        assert_eq!(world.start_challenge(site.site_key(), &json!({})).await.reason(), "project_paused");
        world.verification_token(other.site_key()).await;
        world.deliver_telemetry().await;

        let now = world.clock.now_ms();
        let since = now - DAY_MS;
        let plans = world.state().plans.clone();
        assert_eq!(stats::roll_up_since(&world.db, &plans, since, now).await.unwrap(), 2, "one row per project with events");
        let row = day_row(&world, &site.project.id, now).await.unwrap();
        assert_eq!(
            (row.starts, row.solved, row.failed, row.refused, row.blocked),
            (3, 2, 0, 1, 0),
            "{row:?}"
        );
        assert_eq!(row.refusal_reasons.get("project_paused"), Some(&1));
        assert_eq!((row.siteverify_calls, row.siteverify_success), (3, 1), "{row:?}");
        assert_eq!(row.siteverify_errors.values().sum::<i64>(), 2, "{row:?}");
        assert_eq!(day_row(&world, &other.project.id, now).await.unwrap().solved, 1, "projects are apart");

        // Again: the same row.
        stats::roll_up_since(&world.db, &plans, since, now).await.unwrap();
        assert_eq!(day_row(&world, &site.project.id, now).await.unwrap(), row);

        // A delivery that arrives late is counted when its day is rolled up again.
        projects::set_gates(&world.db, &site.project.id, true, BillingStatus::Active, None, now).await.unwrap();
        world.publish().await;
        world.verification_token(site.site_key()).await;
        world.clock.advance(60 * 60 * 1000);
        world.deliver_telemetry().await;
        let later = world.clock.now_ms();
        stats::roll_up_since(&world.db, &plans, now, later).await.unwrap();
        let row = day_row(&world, &site.project.id, now).await.unwrap();
        assert_eq!((row.starts, row.solved), (4, 3), "{row:?}");
    }

    async fn each_plan_keeps_its_events_and_statistics_for_its_own_windows(world: World) {
        let mut pro = quick_project("pro");
        pro.plan = "pro".into();
        let free = world.create_project(quick_project("free")).await;
        let pro = world.create_project(pro).await;
        let start = world.clock.now_ms();
        for site in [&free, &pro] {
            let token = world.verification_token(site.site_key()).await;
            world.siteverify(&[("secret", &site.secret), ("response", &token)]).await;
        }
        world.deliver_telemetry().await;
        let plans = world.state().plans.clone();
        stats::roll_up_since(&world.db, &plans, start - DAY_MS, start).await.unwrap();
        let at_day = |days: i64| start.div_euclid(DAY_MS) * DAY_MS + days * DAY_MS + 1;
        let windows = async |at: i64| retention::apply_plan_windows(&world.db, &plans, at).await.unwrap();

        // Free keeps events 3 days, Pro 14.
        assert_eq!(windows(start + 3 * DAY_MS).await.telemetry_deleted, 0);
        let report = windows(start + 3 * DAY_MS + 1).await;
        assert_eq!((report.telemetry_deleted, report.verifications_deleted), (2, 1));
        assert_eq!(world.stored_events(&free.project.id).await, 0);
        assert_eq!(world.stored_events(&pro.project.id).await, 2);
        // Free's statistics stay 7 days (today and the six before), longer than its events.
        assert_eq!(windows(at_day(6)).await.daily_stats_deleted, 0);
        assert!(day_row(&world, &free.project.id, start).await.is_some());
        assert_eq!(windows(at_day(7)).await.daily_stats_deleted, 1);
        assert!(day_row(&world, &free.project.id, start).await.is_none());
        // Pro keeps its statistics 14 days and its events 14 days to the millisecond.
        assert_eq!(windows(at_day(13)).await.daily_stats_deleted, 0);
        assert_eq!(windows(at_day(14)).await.daily_stats_deleted, 1);
        assert_eq!(windows(start + 14 * DAY_MS).await.telemetry_deleted, 0);
        let report = windows(start + 14 * DAY_MS + 1).await;
        assert_eq!((report.telemetry_deleted, report.verifications_deleted), (2, 1));
        // And whatever a plan says, the general rule keeps no event over 14 days.
        assert_eq!(retention::EVENT_TTL_MS, 14 * DAY_MS);
    }

    async fn an_event_delivered_again_after_its_plan_deleted_it_counts_once(world: World) {
        // Free keeps events 3 days; after an outage the edge's queues may deliver an event
        // again days later (a lost acknowledgement, a re-driven dead-letter queue).
        let site = world.create_project(quick_project("late-again")).await;
        world.verification_token(site.site_key()).await;
        let received = world.clock.now_ms();
        let events = world.deliver_telemetry().await;
        let month = month_of(received);
        let counted = telemetry::usage(&world.db, &site.project.id, &month).await.unwrap();
        assert_eq!(counted.protected_attempts, 1);
        let plans = world.state().plans.clone();
        let days_later = received + 5 * DAY_MS;
        retention::apply_plan_windows(&world.db, &plans, days_later).await.unwrap();
        assert_eq!(world.stored_events(&site.project.id).await, 0, "the plan's window deleted the events");

        let again = telemetry::ingest(&world.db, &events, days_later).await.unwrap();
        assert_eq!((again.stored, again.duplicates), (0, events.len()));
        assert_eq!(world.stored_events(&site.project.id).await, 0, "nothing stored again");
        assert_eq!(telemetry::usage(&world.db, &site.project.id, &month).await.unwrap(), counted);

        // The receipts go 15 days after the first delivery, long after the queues gave up.
        assert_eq!(retention::RECEIPT_TTL_MS, 15 * DAY_MS);
        let report = retention::apply(&world.db, received + retention::RECEIPT_TTL_MS).await.unwrap();
        assert_eq!(report.receipts_deleted, 0);
        let report = retention::apply(&world.db, received + retention::RECEIPT_TTL_MS + 1).await.unwrap();
        assert_eq!(report.receipts_deleted, events.len() as u64);
    }

    async fn an_event_stored_without_a_receipt_counts_once(world: World) {
        // A replica from before receipts stored (and counted) the event; it comes again.
        let site = world.create_project(quick_project("no-receipt")).await;
        world.verification_token(site.site_key()).await;
        let events = world.deliver_telemetry().await;
        sqlx::query("DELETE FROM telemetry_receipts").execute(world.db.pool()).await.unwrap();
        let month = month_of(world.clock.now_ms());
        let counted = telemetry::usage(&world.db, &site.project.id, &month).await.unwrap();
        let again = telemetry::ingest(&world.db, &events, world.clock.now_ms()).await.unwrap();
        assert_eq!((again.stored, again.duplicates), (0, events.len()));
        assert_eq!(telemetry::usage(&world.db, &site.project.id, &month).await.unwrap(), counted);
        assert_eq!(world.stored_events(&site.project.id).await, events.len() as i64);
    }
}

on_both_databases! {
    async fn sessions_claims_failed_sign_ins_ceremonies_stripe_events_and_audit_entries_go_when_they_expire(world: World) {
        let base = world.serve().await;
        let browser = Browser::new(&base);
        browser.sign_up("kept@example.com", "correct horse battery").await;
        // A failed sign-in leaves an attempt counter (keyed hashes of the email and address).
        Browser::new(&base).sign_in("kept@example.com", "wrong horse battery").await;
        let site = world.create_project(quick_project("claims")).await;
        let token = world.verification_token(site.site_key()).await;
        assert_eq!(world.siteverify(&[("secret", &site.secret), ("response", &token)]).await.status, 200);
        let now = world.clock.now_ms();
        sqlx::query("INSERT INTO webauthn_ceremonies (id, user_id, kind, state, expires_at) VALUES ('c1', NULL, 'authentication', '{}', $1)")
            .bind(now + humanproof_control_plane::passkeys::CEREMONY_TTL_MS)
            .execute(world.db.pool())
            .await
            .unwrap();
        humanproof_control_plane::db::billing::record_stripe_event(&world.db, "evt_kept", "invoice.paid", "applied", now).await.unwrap();
        let audit_entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log").fetch_one(world.db.pool()).await.unwrap();
        assert!(audit_entries >= 1, "signing up is audited");

        // Nothing is due yet.
        let report = retention::apply(&world.db, now).await.unwrap();
        assert_eq!(
            (report.sessions_deleted, report.claims_deleted, report.throttles_deleted, report.ceremonies_deleted, report.stripe_events_deleted),
            (0, 0, 0, 0, 0)
        );
        // A ceremony after its 5 minutes, a claim once its token expired (5 minutes too),
        // attempt counters a day after their window, a session after its 7 days, Stripe's
        // events after 30.
        let at = |after: i64| now + after;
        let report = retention::apply(&world.db, at(humanproof_control_plane::passkeys::CEREMONY_TTL_MS + 1)).await.unwrap();
        assert_eq!((report.ceremonies_deleted, report.claims_deleted), (1, 1));
        assert!(retention::apply(&world.db, at(retention::HASH_TTL_MS + humanproof_control_plane::accounts::THROTTLE_WINDOW_MS)).await.unwrap().throttles_deleted >= 1);
        assert!(retention::apply(&world.db, at(humanproof_control_plane::accounts::SESSION_TTL_MS + 1)).await.unwrap().sessions_deleted >= 1);
        assert_eq!(retention::apply(&world.db, at(retention::STRIPE_EVENT_TTL_MS + 1)).await.unwrap().stripe_events_deleted, 1);
        assert_eq!(retention::apply(&world.db, at(retention::AUDIT_TTL_MS)).await.unwrap().audit_entries_deleted, 0);
        let report = retention::apply(&world.db, at(retention::AUDIT_TTL_MS + 1)).await.unwrap();
        assert_eq!(u64::try_from(audit_entries).unwrap(), report.audit_entries_deleted);
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM sessions) + (SELECT COUNT(*) FROM siteverify_claims) + (SELECT COUNT(*) FROM throttles) \
             + (SELECT COUNT(*) FROM webauthn_ceremonies) + (SELECT COUNT(*) FROM stripe_events)",
        )
        .fetch_one(world.db.pool())
        .await
        .unwrap();
        assert_eq!(left, 0);
    }
}

on_both_databases! {
    async fn the_privacy_page_shows_every_retention_promise_and_the_sub_processors(world: World) {
        let base = serve_control_plane(world.state().with(|state| {
            state.web.subprocessors = vec!["Cloudflare, Inc. — the edge".into(), "Stripe <payments>".into()];
        }))
        .await;
        let page = Browser::new(&base).get("/privacy").await.expect(200);
        let promises = humanproof_control_plane::privacy::promises();
        assert_eq!(page.body.matches("<th scope=\"row\">").count(), promises.len(), "{}", page.body);
        assert!(page.body.contains("<th scope=\"row\">telemetry events</th>"), "{}", page.body);
        assert!(page.body.contains("<code>platform::retention_erases_hashes_and_old_rows_and_no_raw_ip_is_stored</code>"));
        assert!(page.body.contains("<li>Stripe &lt;payments&gt;</li>"), "escaped");
        let plain = Browser::new(&world.serve().await).get("/privacy").await.expect(200);
        assert!(plain.body.contains("The operator of this service has named none."));
    }
}
