//! The vertical slice end to end (edge logic + control plane + database), on SQLite and on
//! PostgreSQL: solve → redeem → siteverify, replays, expiry, forgery, gates, bad input,
//! telemetry idempotency, usage and retention.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use humanproof_control_plane::db::projects::{self, BillingStatus};
use humanproof_control_plane::db::{month_of, retention, telemetry};
use humanproof_protocol::telemetry::sign_batch;
use humanproof_protocol::{TelemetryBatch, TelemetryKind};
use humanproof_tests::*;
use serde_json::json;

on_both_databases! {
    async fn solve_redeem_and_verify_round_trip(world: World) {
        let site = world.create_project(quick_project("shop")).await;
        let mut context = human_start();
        context["action"] = json!("checkout");
        context["cdata"] = json!("order-42");
        context["from_a_newer_widget"] = json!({ "ignored": true });
        let (_, redeemed) = world.solve(site.site_key(), &context).await;
        assert_status(&redeemed, StatusCode::OK);
        assert_eq!(redeemed.json["success"], true);
        assert_eq!(redeemed.header("access-control-allow-origin"), Some(ORIGIN));
        let token = redeemed.json["token"].as_str().unwrap();

        let verified = world.siteverify(&[("secret", &site.secret), ("response", token)]).await;
        assert_status(&verified, StatusCode::OK);
        assert_eq!(verified.json["success"], true, "{:#?}", verified.json);
        assert_eq!(verified.json["hostname"], "localhost");
        assert_eq!(verified.json["action"], "checkout");
        assert_eq!(verified.json["cdata"], "order-42");
        assert_eq!(verified.json["error-codes"], json!([]));
        assert_eq!(verified.json["challenge_ts"], "2026-03-15T12:00:00Z");
        assert_eq!(verified.json["humanproof"]["site_key"], site.site_key());
        assert_eq!(verified.json["humanproof"]["difficulty"], 1);
        // A clean start pays half the preset's work (3 sub-challenges, rounded down).
        assert_eq!(verified.json["humanproof"]["challenge_count"], 1);
        assert_eq!(
            verified.json["humanproof"]["risk"],
            json!({ "score": 0.0, "factors": [], "decision": "allow", "preset": "custom", "mode": "observe" })
        );
    }

    async fn siteverify_accepts_json_bodies(world: World) {
        let site = world.create_project(quick_project("json")).await;
        let token = world.verification_token(site.site_key()).await;
        let verified = world
            .control(
                Request::post("/siteverify")
                    .header("content-type", "application/json")
                    .body(Body::from(json!({ "secret": site.secret, "response": token, "remoteip": "198.51.100.1" }).to_string()))
                    .unwrap(),
            )
            .await;
        assert_eq!(verified.json["success"], true, "{:#?}", verified.json);
    }

    async fn a_challenge_is_redeemed_once(world: World) {
        let site = world.create_project(quick_project("replay")).await;
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let token = started.json["token"].as_str().unwrap();
        let params = serde_json::from_value(started.json["challenge"].clone()).unwrap();
        let solutions = humanproof_protocol::pow::solve(token, params);
        assert_status(&world.redeem(site.site_key(), token, &solutions).await, StatusCode::OK);
        let replay = world.redeem(site.site_key(), token, &solutions).await;
        assert_status(&replay, StatusCode::CONFLICT);
        assert_eq!(replay.reason(), "already_redeemed");
        assert_eq!(replay.json["success"], false);
    }

    async fn junk_at_the_redeem_endpoint_counts_nothing_and_stores_nothing(world: World) {
        let site = world.create_project(quick_project("junk")).await;
        let elsewhere = world.create_project(quick_project("junk-elsewhere")).await;
        let token_of = |started: Answer| started.json["token"].as_str().unwrap().to_owned();
        // Tokens that are genuine but no good here: expired, another project's, another page's.
        let expired = token_of(world.start_challenge(site.site_key(), &json!({})).await);
        world.clock.advance(10 * 60 * 1000);
        let foreign = token_of(world.start_challenge(elsewhere.site_key(), &json!({})).await);
        let challenge_path = format!("/{}/challenge", site.site_key());
        let other_page = token_of(world.edge("POST", &challenge_path, Some("https://example.com"), b"").await);
        let guessed_key = humanproof_protocol::MasterSecret::new("attacker-guess-attacker-guess-attacker")
            .unwrap()
            .project_key(&site.project.id, 1);
        let forged = guessed_key.sign(&humanproof_protocol::token::peek_unverified::<humanproof_protocol::ChallengeClaims>(&other_page).unwrap());
        // And a visitor's good token, which junk must not spend.
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let visitors = started.json["token"].as_str().unwrap().to_owned();
        let solutions = humanproof_protocol::pow::solve(&visitors, serde_json::from_value(started.json["challenge"].clone()).unwrap());
        world.deliver_telemetry().await;
        let stored_before = world.stored_events(&site.project.id).await;

        let redeem_body = |token: &str| json!({ "token": token, "solutions": [0, 0, 0] }).to_string();
        let junk = [
            (None, redeem_body(&visitors), "origin_not_allowed"),
            (Some("https://evil.example"), redeem_body(&visitors), "origin_not_allowed"),
            (Some(ORIGIN), "not json".to_owned(), "bad_request"),
            (Some(ORIGIN), json!({ "token": 1 }).to_string(), "bad_request"),
            (Some(ORIGIN), redeem_body(&forged), "invalid_token"),
            (Some(ORIGIN), redeem_body(&foreign), "invalid_token"),
            (Some(ORIGIN), redeem_body(&expired), "expired"),
            (Some(ORIGIN), redeem_body(&other_page), "scope_mismatch"),
        ];
        let redeem_path = format!("/{}/redeem", site.site_key());
        for _ in 0..10 {
            for (origin, body, reason) in &junk {
                let answer = world.edge("POST", &redeem_path, *origin, body.as_bytes()).await;
                assert_eq!(answer.reason(), *reason, "{origin:?} {body:.40}");
            }
        }
        let events = world.deliver_telemetry().await;
        assert!(events.is_empty(), "80 junk redeems emit no event: {events:?}");
        assert_eq!(world.stored_events(&site.project.id).await, stored_before);
        let month = month_of(world.clock.now_ms());
        assert_eq!(telemetry::usage(&world.db, &site.project.id, &month).await.unwrap().protected_attempts, 0);

        // The visitor's challenge was not spent by any of it.
        assert_status(&world.redeem(site.site_key(), &visitors, &solutions).await, StatusCode::OK);
        world.deliver_telemetry().await;
        assert_eq!(telemetry::usage(&world.db, &site.project.id, &month).await.unwrap().protected_attempts, 1);
    }

    async fn a_challenge_counts_once_however_often_its_token_is_replayed(world: World) {
        let site = world.create_project(quick_project("replayed")).await;
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let token = started.json["token"].as_str().unwrap();
        let solutions = humanproof_protocol::pow::solve(token, serde_json::from_value(started.json["challenge"].clone()).unwrap());
        let first = world.redeem(site.site_key(), token, &[0u64; 0]).await;
        assert_eq!((first.status, first.reason()), (400, "invalid_solution"));
        for _ in 0..9 {
            let replay = world.redeem(site.site_key(), token, &[0]).await;
            assert_eq!((replay.status, replay.reason()), (409, "already_redeemed"));
        }
        let right = world.redeem(site.site_key(), token, &solutions).await;
        assert_eq!((right.status, right.reason()), (409, "already_redeemed"), "the failed redeem spent the challenge");

        let events = world.deliver_telemetry().await;
        assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [TelemetryKind::ChallengeIssued, TelemetryKind::RedeemFailed]);
        let usage = telemetry::usage(&world.db, &site.project.id, &month_of(world.clock.now_ms())).await.unwrap();
        assert_eq!(usage.protected_attempts, 1, "{usage:?}");
        assert_eq!(world.stored_events(&site.project.id).await, 2);
    }

    async fn concurrent_redeems_of_one_challenge_yield_one_token(world: World) {
        let world = std::sync::Arc::new(world);
        let site = world.create_project(quick_project("race")).await;
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let token = started.json["token"].as_str().unwrap().to_owned();
        let params = serde_json::from_value(started.json["challenge"].clone()).unwrap();
        let solutions = humanproof_protocol::pow::solve(&token, params);
        let attempts: Vec<_> = (0..8)
            .map(|_| {
                let (world, site_key, token, solutions) =
                    (world.clone(), site.site_key().to_owned(), token.clone(), solutions.clone());
                tokio::spawn(async move { world.redeem(&site_key, &token, &solutions).await })
            })
            .collect();
        let mut answers = Vec::new();
        for attempt in attempts {
            answers.push(attempt.await.unwrap());
        }
        assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 1);
        assert!(answers.iter().filter(|a| a.status != 200).all(|a| a.reason() == "already_redeemed"));
    }

    async fn siteverify_accepts_a_token_once_but_repeats_idempotent_answers(world: World) {
        let site = world.create_project(quick_project("idem")).await;
        let token = world.verification_token(site.site_key()).await;
        let first = world.siteverify(&[("secret", &site.secret), ("response", &token), ("idempotency_key", "k-1")]).await;
        assert_eq!(first.json["success"], true);
        assert!(first.json["humanproof"].get("replayed").is_none(), "a first answer is not marked");
        let retry = world.siteverify(&[("secret", &site.secret), ("response", &token), ("idempotency_key", "k-1")]).await;
        // Same key, same answer, marked as a repeat so the backend can tell it from a first success.
        let mut expected = first.json.clone();
        expected["humanproof"]["replayed"] = json!(true);
        assert_eq!(retry.json, expected);
        let other_key = world.siteverify(&[("secret", &site.secret), ("response", &token), ("idempotency_key", "k-2")]).await;
        assert_eq!(other_key.json["success"], false);
        assert_eq!(other_key.json["error-codes"], json!(["timeout-or-duplicate"]));
        let no_key = world.siteverify(&[("secret", &site.secret), ("response", &token)]).await;
        assert_eq!(no_key.json["error-codes"], json!(["timeout-or-duplicate"]));
        assert_eq!(no_key.json["humanproof"]["reason"], "already_verified");
    }

    async fn a_burst_of_verifications_accepts_each_token_once_and_counts_every_answer(world: World) {
        let site = world.create_project(quick_project("burst")).await;
        let key = world.master.project_key(&site.project.id, site.project.key_version);
        let now = world.clock.now_ms();
        let tokens: Vec<String> = (0..100).map(|_| key.sign(&verification_claims(site.site_key(), "localhost", now))).collect();
        // Each token three times, all at once, with garbage between: the writer groups them.
        let world = std::sync::Arc::new(world);
        let calls: Vec<_> = tokens
            .iter()
            .flat_map(|token| [token.clone(), token.clone(), token.clone(), "hpv1.garbage.x".to_owned()])
            .map(|token| {
                let (world, secret) = (world.clone(), site.secret.clone());
                tokio::spawn(async move { world.siteverify(&[("secret", &secret), ("response", &token)]).await })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let failed: Vec<_> = answers.iter().filter(|answer| answer.status != 200).map(|answer| &answer.json).collect();
        assert!(failed.is_empty(), "no error under the burst: {} failed, first {:?}", failed.len(), failed.first());
        let accepted: Vec<&str> = answers.iter().filter(|answer| answer.json["success"] == true).map(|answer| answer.json["humanproof"]["challenge_id"].as_str().unwrap()).collect();
        assert_eq!(accepted.len(), 100);
        assert_eq!(accepted.iter().collect::<std::collections::HashSet<_>>().len(), 100, "each token once");
        let duplicates = answers.iter().filter(|answer| answer.json["error-codes"] == json!(["timeout-or-duplicate"])).count();
        assert_eq!(duplicates, 200);
        // Retries with the first call's key, all at once: each gets the one success, and
        // only one of them is the first answer.
        let retried: Vec<_> = (0..10)
            .flat_map(|n| {
                let token = key.sign(&verification_claims(site.site_key(), "localhost", now));
                [0, 1, 2].map(|_| (token.clone(), format!("key-{n}")))
            })
            .map(|(token, idempotency_key)| {
                let (world, secret) = (world.clone(), site.secret.clone());
                tokio::spawn(async move {
                    world.siteverify(&[("secret", &secret), ("response", &token), ("idempotency_key", &idempotency_key)]).await
                })
            })
            .collect();
        let mut retry_answers = Vec::new();
        for call in retried {
            retry_answers.push(call.await.unwrap());
        }
        assert!(retry_answers.iter().all(|answer| answer.json["success"] == true), "{retry_answers:?}");
        let first_answers = retry_answers.iter().filter(|answer| answer.json["humanproof"].get("replayed").is_none()).count();
        assert_eq!(first_answers, 10);
        // Every answer is counted, once it was given.
        let month = humanproof_control_plane::db::month_of(now);
        let usage = humanproof_control_plane::db::telemetry::usage(&world.db, &site.project.id, &month).await.unwrap();
        assert_eq!(usage.verifications, 430);
        assert_eq!(usage.protected_attempts, 0, "verifying is never a protected attempt");
        // The durability the README describes for SQLite: WAL, synced at checkpoints.
        if world.db.backend() == humanproof_control_plane::db::Backend::Sqlite {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(world.db.pool()).await.unwrap();
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(world.db.pool()).await.unwrap();
            assert_eq!((mode.as_str(), synchronous), ("wal", 1), "WAL with synchronous=NORMAL");
        }
    }

    async fn expired_challenges_and_tokens_are_refused(world: World) {
        let site = world.create_project(quick_project("expiry")).await;
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let token = started.json["token"].as_str().unwrap().to_owned();
        assert_eq!(started.json["expires"], START_MS + 10 * 60 * 1000);
        let params = serde_json::from_value(started.json["challenge"].clone()).unwrap();
        let solutions = humanproof_protocol::pow::solve(&token, params);
        world.clock.advance(10 * 60 * 1000);
        let late = world.redeem(site.site_key(), &token, &solutions).await;
        assert_status(&late, StatusCode::BAD_REQUEST);
        assert_eq!(late.reason(), "expired");

        let verification = world.verification_token(site.site_key()).await;
        world.clock.advance(300 * 1000);
        let stale = world.siteverify(&[("secret", &site.secret), ("response", &verification)]).await;
        assert_eq!(stale.json["success"], false);
        assert_eq!(stale.json["error-codes"], json!(["timeout-or-duplicate"]));
        assert_eq!(stale.json["humanproof"]["reason"], "expired");
    }

    async fn forged_and_tampered_tokens_are_refused(world: World) {
        let site = world.create_project(quick_project("forgery")).await;
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let token = started.json["token"].as_str().unwrap();
        let params: humanproof_protocol::ChallengeParams = serde_json::from_value(started.json["challenge"].clone()).unwrap();

        // A self-made token with easy parameters, signed with a guessed key.
        let guessed = humanproof_protocol::MasterSecret::new("attacker-guess-attacker-guess-attacker")
            .unwrap()
            .project_key(&site.project.id, 1);
        let mut claims: humanproof_protocol::ChallengeClaims =
            humanproof_protocol::token::peek_unverified(token).unwrap();
        claims.c = 1;
        let forged = guessed.sign(&claims);
        let forged_solutions = humanproof_protocol::pow::solve(&forged, humanproof_protocol::ChallengeParams { c: 1, ..params });
        let answer = world.redeem(site.site_key(), &forged, &forged_solutions).await;
        assert_eq!((answer.status, answer.reason()), (400, "invalid_token"));

        // One flipped character in the signature.
        let mut tampered = token.to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let solutions = humanproof_protocol::pow::solve(token, params);
        let answer = world.redeem(site.site_key(), &tampered, &solutions).await;
        assert_eq!((answer.status, answer.reason()), (400, "invalid_token"));

        // Refused before the genuine token's challenge was claimed: it still redeems.
        assert_status(&world.redeem(site.site_key(), token, &solutions).await, StatusCode::OK);

        // Wrong or too few solutions for a genuine token: refused, and that spends the challenge.
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let token = started.json["token"].as_str().unwrap();
        let params = serde_json::from_value(started.json["challenge"].clone()).unwrap();
        let solutions = humanproof_protocol::pow::solve(token, params);
        let (salt, target) = humanproof_protocol::pow::sub_challenge(token, 1, params);
        let mut wrong = solutions.clone();
        wrong[0] = (0..).find(|&n| !humanproof_protocol::pow::is_solution(&salt, &target, n)).unwrap();
        let answer = world.redeem(site.site_key(), token, &wrong).await;
        assert_eq!((answer.status, answer.reason()), (400, "invalid_solution"));
        let answer = world.redeem(site.site_key(), token, &solutions).await;
        assert_eq!((answer.status, answer.reason()), (409, "already_redeemed"));
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let token = started.json["token"].as_str().unwrap();
        let solutions = humanproof_protocol::pow::solve(token, serde_json::from_value(started.json["challenge"].clone()).unwrap());
        let answer = world.redeem(site.site_key(), token, &solutions[..solutions.len() - 1]).await;
        assert_eq!((answer.status, answer.reason()), (400, "invalid_solution"));

        // Verification tokens: tampered, or not a token at all.
        let verification = world.verification_token(site.site_key()).await;
        let mut tampered = verification.clone();
        tampered.insert(10, 'x');
        for bad in [tampered.as_str(), "not-a-token", &"a".repeat(5000)] {
            let answer = world.siteverify(&[("secret", &site.secret), ("response", bad)]).await;
            assert_status(&answer, StatusCode::OK);
            assert_eq!(answer.json["error-codes"], json!(["invalid-input-response"]), "{bad:.20}");
        }
        // A challenge token is not a verification token.
        let answer = world.siteverify(&[("secret", &site.secret), ("response", token)]).await;
        assert_eq!(answer.json["error-codes"], json!(["invalid-input-response"]));
    }

    async fn tokens_do_not_cross_projects(world: World) {
        let a = world.create_project(quick_project("a")).await;
        let b = world.create_project(quick_project("b")).await;
        let token_a = world.verification_token(a.site_key()).await;
        let answer = world.siteverify(&[("secret", &b.secret), ("response", &token_a)]).await;
        assert_eq!(answer.json["success"], false);
        assert_eq!(answer.json["error-codes"], json!(["invalid-input-response"]));
        assert_eq!(answer.json["humanproof"]["reason"], "scope_mismatch");
        // Still valid for its own project: the failed attempt did not consume it.
        let own = world.siteverify(&[("secret", &a.secret), ("response", &token_a)]).await;
        assert_eq!(own.json["success"], true);

        // A challenge of A redeemed under B's site key.
        let started = world.start_challenge(a.site_key(), &json!({})).await;
        let token = started.json["token"].as_str().unwrap();
        let solutions = humanproof_protocol::pow::solve(token, serde_json::from_value(started.json["challenge"].clone()).unwrap());
        let answer = world.redeem(b.site_key(), token, &solutions).await;
        assert_eq!((answer.status, answer.reason()), (400, "invalid_token"));
    }

    async fn a_token_is_bound_to_the_origin_it_was_issued_for(world: World) {
        let site = world.create_project(quick_project("origin-bound")).await;
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let token = started.json["token"].as_str().unwrap();
        let solutions = humanproof_protocol::pow::solve(token, serde_json::from_value(started.json["challenge"].clone()).unwrap());
        let body = json!({ "token": token, "solutions": solutions }).to_string();
        let path = format!("/{}/redeem", site.site_key());
        let answer = world.edge("POST", &path, Some("https://example.com"), body.as_bytes()).await;
        assert_eq!((answer.status, answer.reason()), (403, "scope_mismatch"));
    }

    async fn each_gate_refuses_with_its_code(world: World) {
        let world = &world;
        let open = world.create_project(quick_project("open")).await;
        let paused = world.create_project(projects::ProjectSettings { active: false, ..quick_project("paused") }).await;
        let unpaid = world
            .create_project(projects::ProjectSettings { billing_status: BillingStatus::PastDue, ..quick_project("unpaid") })
            .await;
        let spent = world.create_project(projects::ProjectSettings { monthly_limit: Some(0), ..quick_project("spent") }).await;

        let start = |site_key: String, origin: Option<&'static str>| {
            let path = format!("/{site_key}/challenge");
            async move { world.edge("POST", &path, origin, b"").await }
        };
        let unknown = start("hp_site_doesnotexist".into(), Some(ORIGIN)).await;
        assert_eq!((unknown.status, unknown.reason()), (404, "unknown_site_key"));
        let answer = start(paused.site_key().into(), Some(ORIGIN)).await;
        assert_eq!((answer.status, answer.reason()), (403, "project_paused"));
        let answer = start(unpaid.site_key().into(), Some(ORIGIN)).await;
        assert_eq!((answer.status, answer.reason()), (402, "billing_inactive"));
        let answer = start(spent.site_key().into(), Some(ORIGIN)).await;
        assert_eq!((answer.status, answer.reason()), (429, "usage_exhausted"));
        assert_eq!(answer.header("access-control-allow-origin"), Some(ORIGIN), "refusals are readable by allowed origins");

        for origin in [Some("https://evil.example"), Some("https://www.example.com"), Some("null"), None] {
            let answer = start(open.site_key().into(), origin).await;
            assert_eq!((answer.status, answer.reason()), (403, "origin_not_allowed"), "{origin:?}");
            assert_eq!(answer.header("access-control-allow-origin"), None);
        }
        for origin in ["https://example.com", "http://127.0.0.1:8000", "http://localhost"] {
            assert_eq!(start(open.site_key().into(), Some(origin)).await.status, 200, "{origin}");
        }

        // Subdomains only when the project allows them.
        let wide = world
            .create_project(projects::ProjectSettings { allow_subdomains: true, ..quick_project("wide") })
            .await;
        assert_eq!(start(wide.site_key().into(), Some("https://shop.example.com")).await.status, 200);
    }

    async fn the_plan_decides_which_widget_looks_are_allowed(world: World) {
        let free = world.create_project(quick_project("free")).await;
        let pro = world.create_project(projects::ProjectSettings { plan: "pro".into(), ..quick_project("pro") }).await;
        let unbranded = json!({ "widget": { "variant": "invisible", "branding": "none" } });
        let answer = world.start_challenge(free.site_key(), &unbranded).await;
        assert_eq!((answer.status, answer.reason()), (403, "branding_not_allowed"));
        assert_eq!(world.start_challenge(pro.site_key(), &unbranded).await.status, 200);
        // Floating is a paid variant; invisible with full branding is free.
        let floating = json!({ "widget": { "variant": "floating", "branding": "full" } });
        let answer = world.start_challenge(free.site_key(), &floating).await;
        assert_eq!((answer.status, answer.reason()), (403, "variant_not_allowed"));
        assert_eq!(world.start_challenge(pro.site_key(), &floating).await.status, 200);
        let branded = json!({ "widget": { "variant": "invisible", "branding": "full" } });
        assert_eq!(world.start_challenge(free.site_key(), &branded).await.status, 200);
        let unknown = world.start_challenge(free.site_key(), &json!({ "widget": { "variant": "popup" } })).await;
        assert_eq!((unknown.status, unknown.reason()), (400, "bad_request"));
    }

    async fn the_widget_reads_its_dashboard_settings_from_the_edge_and_a_change_after_publishing(world: World) {
        use humanproof_protocol::wire::{Branding, Theme, Variant, WidgetSettings, WidgetSize};
        let widget = WidgetSettings { variant: Variant::Invisible, theme: Theme::Dark, language: "de".into(), size: WidgetSize::Compact, branding: Branding::Full };
        let site = world.create_project(projects::ProjectSettings { widget, ..quick_project("looks") }).await;
        let path = format!("/{}/settings", site.site_key());
        // Any origin, or none, gets the same public answer that caches may share; nothing is
        // recorded for it.
        for origin in [Some(ORIGIN), Some("https://evil.example"), None] {
            let answer = world.edge("GET", &path, origin, b"").await;
            assert_eq!(answer.status, 200, "{origin:?}");
            assert_eq!(answer.json, json!({
                "active": true,
                "widget": { "variant": "invisible", "theme": "dark", "language": "de", "size": "compact", "branding": "full" },
                "allowed": { "variants": ["checkbox", "invisible"], "branding": ["full"] },
            }));
            assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
            assert_eq!(answer.header("cache-control"), Some("public, max-age=60"));
            assert_eq!(answer.header("vary"), None);
        }
        assert!(world.take_events().await.is_empty());

        // A pause and a new look reach it with the next publish.
        let mut settings = site.project.settings.clone();
        settings.active = false;
        settings.widget.theme = Theme::Light;
        projects::update_settings(&world.db, &site.project.id, &settings, world.clock.now_ms()).await.unwrap();
        world.publish().await;
        let answer = world.edge("GET", &path, None, b"").await;
        assert_eq!((answer.json["active"].as_bool(), answer.json["widget"]["theme"].as_str()), (Some(false), Some("light")));

        // Unknown keys and other methods get their codes, readable by any page.
        let unknown = world.edge("GET", "/hp_site_nobody/settings", Some(ORIGIN), b"").await;
        assert_eq!((unknown.status, unknown.reason()), (404, "unknown_site_key"));
        assert_eq!(unknown.header("access-control-allow-origin"), Some("*"));
        let posted = world.edge("POST", &path, Some(ORIGIN), b"{}").await;
        assert_eq!((posted.status, posted.reason()), (405, "method_not_allowed"));
    }

    async fn cors_preflight_answers_allowed_origins_only(world: World) {
        let site = world.create_project(quick_project("cors")).await;
        let path = format!("/{}/challenge", site.site_key());
        let allowed = world.edge("OPTIONS", &path, Some(ORIGIN), b"").await;
        assert_eq!(allowed.status, 204);
        assert_eq!(allowed.header("access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(allowed.header("access-control-allow-methods"), Some("POST, OPTIONS"));
        let refused = world.edge("OPTIONS", &path, Some("https://evil.example"), b"").await;
        assert_eq!(refused.status, 403);
        assert_eq!(refused.header("access-control-allow-origin"), None);
    }

    async fn malformed_and_oversized_bodies_get_4xx_codes(world: World) {
        let world = &world;
        let site = world.create_project(quick_project("bodies")).await;
        let challenge = format!("/{}/challenge", site.site_key());
        let redeem = format!("/{}/redeem", site.site_key());
        let huge = vec![b'{'; 70 * 1024];
        let cases: Vec<(&str, &str, &[u8], u16, &str)> = vec![
            ("POST", &challenge, b"{not json", 400, "bad_request"),
            ("POST", &challenge, br#"{"action": 7}"#, 400, "bad_request"),
            ("POST", &challenge, br#"{"action": "has space"}"#, 400, "invalid_action"),
            ("POST", &challenge, &huge, 413, "body_too_large"),
            ("POST", &redeem, b"", 400, "bad_request"),
            ("POST", &redeem, b"[]", 400, "bad_request"),
            ("POST", &redeem, br#"{"token": "x", "solutions": [-1]}"#, 400, "bad_request"),
            ("POST", &redeem, br#"{"token": "x", "solutions": [1]}"#, 400, "invalid_token"),
            ("POST", &redeem, &huge, 413, "body_too_large"),
            ("GET", &challenge, b"", 405, "method_not_allowed"),
            ("POST", "/", b"", 404, "not_found"),
            ("POST", "/../etc/passwd", b"", 404, "not_found"),
            ("POST", "/key/unknown-endpoint", b"", 404, "not_found"),
        ];
        for (method, path, body, status, reason) in cases {
            let answer = world.edge(method, path, Some(ORIGIN), body).await;
            assert_eq!((answer.status, answer.reason()), (status, reason), "{method} {path} {:.30}", String::from_utf8_lossy(body));
            assert_eq!(answer.json["success"], false);
        }

        let siteverify = |content_type: &'static str, body: Vec<u8>| {
            world.control(Request::post("/siteverify").header("content-type", content_type).body(Body::from(body)).unwrap())
        };
        let answer = siteverify("application/json", b"{oops".to_vec()).await;
        assert_eq!((answer.status, answer.json["error-codes"].clone()), (400, json!(["bad-request"])));
        let answer = siteverify("application/x-www-form-urlencoded", b"response=abc".to_vec()).await;
        assert_eq!((answer.status, answer.json["error-codes"].clone()), (400, json!(["missing-input-secret"])));
        let answer = siteverify("application/x-www-form-urlencoded", format!("secret={}", site.secret).into_bytes()).await;
        assert_eq!((answer.status, answer.json["error-codes"].clone()), (400, json!(["missing-input-response"])));
        let answer = siteverify("application/x-www-form-urlencoded", b"secret=hp_secret_wrong&response=abc".to_vec()).await;
        assert_eq!((answer.status, answer.json["error-codes"].clone()), (401, json!(["invalid-input-secret"])));
        let answer = siteverify("application/json", vec![b' '; 2 * 1024 * 1024]).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json["error-codes"], json!(["bad-request"]));

        let unknown = world.control(Request::get("/nope").body(Body::empty()).unwrap()).await;
        assert_eq!((unknown.status, unknown.json["error"]["code"].clone()), (404, json!("not_found")));
    }

    async fn telemetry_is_authenticated_and_stored_once(world: World) {
        let world = &world;
        let site = world.create_project(quick_project("telemetry")).await;
        world.verification_token(site.site_key()).await;
        let events = world.take_events().await;
        assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [TelemetryKind::ChallengeIssued, TelemetryKind::RedeemSucceeded]);

        let body = serde_json::to_vec(&TelemetryBatch { events }).unwrap();
        let post = |signature: Option<String>, body: Vec<u8>| {
            let mut request = Request::post("/internal/telemetry").header("content-type", "application/json");
            if let Some(signature) = signature {
                request = request.header("x-humanproof-signature", signature);
            }
            world.control(request.body(Body::from(body)).unwrap())
        };
        let now = world.clock.now_ms();
        let first = post(Some(sign_batch(&world.master, now, &body)), body.clone()).await;
        assert_eq!(first.status, 200, "{:#?}", first.json);
        assert_eq!(first.json["stored"], 2);
        let again = post(Some(sign_batch(&world.master, now, &body)), body.clone()).await;
        assert_eq!((again.json["stored"].clone(), again.json["duplicates"].clone()), (json!(0), json!(2)));

        let usage = telemetry::usage(&world.db, &site.project.id, &month_of(now)).await.unwrap();
        assert_eq!((usage.protected_attempts, usage.challenges_issued), (1, 1));

        let unsigned = post(None, body.clone()).await;
        assert_eq!((unsigned.status, unsigned.json["error"]["code"].clone()), (401, json!("missing_signature")));
        let other = humanproof_protocol::MasterSecret::new("someone-else-entirely-someone-else-entirely").unwrap();
        let forged = post(Some(sign_batch(&other, now, &body)), body.clone()).await;
        assert_eq!((forged.status, forged.json["error"]["code"].clone()), (401, json!("invalid_signature")));
        let stale = post(Some(sign_batch(&world.master, now - 10 * 60 * 1000, &body)), body.clone()).await;
        assert_eq!(stale.status, 401);
        let garbage = b"{\"events\": 3}".to_vec();
        let malformed = post(Some(sign_batch(&world.master, now, &garbage)), garbage).await;
        assert_eq!((malformed.status, malformed.json["error"]["code"].clone()), (400, json!("bad_request")));
    }

    async fn a_crowd_through_the_edge_is_counted_exactly_and_each_token_verifies_once(world: World) {
        // A bounded load: 30 visitors at once, each starting three challenges through the edge
        // (a script among every five, refused in enforce mode), solving them (one in four
        // redeemed wrong), and their backend verifying every token twice at the same moment
        // over HTTP, with garbage between. Then the queue delivers the telemetry, twice.
        let site = world.create_project(crowd_project("crowd")).await;
        let base = world.serve().await;
        let world = std::sync::Arc::new(world);
        let sent = world.crowd(site.site_key(), 30).await;

        let http = humanproof_control_plane::http::client();
        let mut calls = tokio::task::JoinSet::new();
        for (index, token) in sent.tokens.iter().enumerate() {
            let mut bodies = vec![token.clone(), token.clone()];
            if index % 4 == 0 {
                bodies.push(format!("{token}garbage"));
            }
            for response in bodies {
                let request = http
                    .post(format!("{base}/siteverify"))
                    .form(&[("secret", site.secret.as_str()), ("response", response.as_str())]);
                calls.spawn(async move {
                    let answer = request.send().await.unwrap();
                    (index, answer.status().as_u16(), answer.json::<serde_json::Value>().await.unwrap())
                });
            }
        }
        let mut accepted = vec![0; sent.tokens.len()];
        let mut answers = 0;
        while let Some(call) = calls.join_next().await {
            let (index, status, body) = call.unwrap();
            assert_eq!(status, 200, "{body}");
            answers += 1;
            if body["success"] == true {
                accepted[index] += 1;
            }
        }
        assert!(accepted.iter().all(|&count| count == 1), "each token verified once: {accepted:?}");

        let events = world.deliver_telemetry().await;
        let again = telemetry::ingest(&world.db, &events, world.clock.now_ms()).await.unwrap();
        assert_eq!(again.stored, 0, "a redelivery stores nothing");
        let usage = telemetry::usage(&world.db, &site.project.id, &month_of(world.clock.now_ms())).await.unwrap();
        assert_eq!(usage, sent.expected_usage(answers), "the counters are what was sent");
    }

    async fn a_batch_with_repeats_and_deleted_projects_stores_each_new_event_once(world: World) {
        let site = world.create_project(quick_project("repeats")).await;
        world.verification_token(site.site_key()).await;
        let events = world.take_events().await;
        assert_eq!(events.len(), 2);
        let mut gone = events[0].clone();
        gone.id = "0".repeat(32);
        gone.project_id = "a-project-deleted-since".into();
        // Each event twice in one batch, and one for a project that no longer exists.
        let batch = [events.clone(), events.clone(), vec![gone]].concat();
        let now = world.clock.now_ms();
        let first = telemetry::ingest(&world.db, &batch, now).await.unwrap();
        assert_eq!((first.stored, first.duplicates, first.unknown_project), (2, 2, 1));
        let again = telemetry::ingest(&world.db, &batch, now).await.unwrap();
        assert_eq!((again.stored, again.duplicates, again.unknown_project), (0, 4, 1));
        let usage = telemetry::usage(&world.db, &site.project.id, &month_of(now)).await.unwrap();
        assert_eq!((usage.protected_attempts, usage.challenges_issued), (1, 1));
        assert_eq!(telemetry::ingest(&world.db, &[], now).await.unwrap(), Default::default());
    }

    async fn usage_counts_protected_attempts_and_gates_the_edge(world: World) {
        let site = world
            .create_project(projects::ProjectSettings { monthly_limit: Some(3), ..quick_project("usage") })
            .await;
        let token = world.verification_token(site.site_key()).await;
        world.verification_token(site.site_key()).await;
        // A failed redeem of a genuine challenge counts; junk sent to the redeem endpoint, a
        // refused start and a siteverify call do not.
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let failed = world.redeem(site.site_key(), started.json["token"].as_str().unwrap(), &[0u64; 0]).await;
        assert_eq!(failed.reason(), "invalid_solution");
        let junk = world.redeem(site.site_key(), "garbage", &[1]).await;
        assert_eq!(junk.reason(), "invalid_token");
        let refused = world.edge("POST", &format!("/{}/challenge", site.site_key()), Some("https://evil.example"), b"").await;
        assert_eq!(refused.status, 403);
        world.siteverify(&[("secret", &site.secret), ("response", &token)]).await;
        world.deliver_telemetry().await;

        let usage = telemetry::usage(&world.db, &site.project.id, &month_of(world.clock.now_ms())).await.unwrap();
        assert_eq!(usage.protected_attempts, 3, "{usage:?}");
        assert_eq!(usage.challenges_issued, 3);
        assert_eq!(usage.refusals, 1);
        assert_eq!(usage.verifications, 1);

        // The limit is spent: the next snapshot stops new challenges.
        world.publish().await;
        let answer = world.start_challenge(site.site_key(), &json!({})).await;
        assert_eq!((answer.status, answer.reason()), (429, "usage_exhausted"));
    }

    async fn paused_projects_stop_at_the_edge_after_publishing(world: World) {
        let site = world.create_project(quick_project("pause")).await;
        assert_eq!(world.start_challenge(site.site_key(), &json!({})).await.status, 200);
        projects::set_gates(&world.db, &site.project.id, false, BillingStatus::Active, None, world.clock.now_ms()).await.unwrap();
        world.publish().await;
        let answer = world.start_challenge(site.site_key(), &json!({})).await;
        assert_eq!((answer.status, answer.reason()), (403, "project_paused"));
    }

    async fn retention_erases_hashes_and_old_rows_and_no_raw_ip_is_stored(world: World) {
        let site = world.create_project(quick_project("privacy")).await;
        world.verification_token(site.site_key()).await;
        world.deliver_telemetry().await;
        let rows: Vec<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT ip_hash, ua_hash FROM telemetry_events").fetch_all(world.db.pool()).await.unwrap();
        assert_eq!(rows.len(), 2);
        for (ip_hash, ua_hash) in &rows {
            let ip_hash = ip_hash.as_deref().unwrap();
            assert_eq!(ip_hash.len(), 64);
            assert!(!ip_hash.contains("203.0.113.9"));
            assert!(!ua_hash.as_deref().unwrap().contains("Mozilla"));
        }

        world.clock.advance(retention::HASH_TTL_MS + 1);
        let report = retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!(report.hashes_erased, 2);
        let remaining: Vec<(i64,)> =
            sqlx::query_as("SELECT COUNT(*) FROM telemetry_events WHERE ip_hash IS NOT NULL OR ua_hash IS NOT NULL")
                .fetch_all(world.db.pool())
                .await
                .unwrap();
        assert_eq!(remaining, [(0,)]);
        world.clock.advance(retention::EVENT_TTL_MS);
        assert_eq!(retention::apply(&world.db, world.clock.now_ms()).await.unwrap().telemetry_deleted, 2);
    }
}
