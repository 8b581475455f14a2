//! Risk scoring and abuse defences end to end (edge logic + control plane + database), on
//! SQLite and on PostgreSQL: scripts are blocked in enforce mode and only recorded in observe
//! mode, people pass with less work, failures raise later scores, rate limits trigger and
//! recover, the assessment reaches telemetry and siteverify, and no raw IP or user agent is
//! ever stored.

use humanproof_control_plane::db::telemetry::{Dimension, NetworkStarts};
use humanproof_control_plane::db::{
    Backend as DbBackend, Db, accounts, month_of, projects, telemetry,
};
use humanproof_control_plane::local::{GeoLookup, edge_router};
use humanproof_control_plane::secrets;
use humanproof_protocol::preset::RATE_WINDOW_MS;
use humanproof_protocol::snapshot::RiskMode;
use humanproof_protocol::{
    Decision, Network, Obfuscation, Preset, Protection, RiskReason, TelemetryKind,
};
use humanproof_tests::*;
use serde_json::{Value, json};
use sqlx::Row;

fn enforced(name: &str) -> humanproof_control_plane::db::projects::ProjectSettings {
    humanproof_control_plane::db::projects::ProjectSettings {
        risk_mode: RiskMode::Enforce,
        ..quick_project(name)
    }
}

fn reasons(answer_risk: &Value) -> Vec<String> {
    answer_risk["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap().to_owned())
        .collect()
}

async fn start_from(world: &World, client: Client, site_key: &str, body: &Value) -> Answer {
    world
        .edge_from(
            client,
            "POST",
            &format!("/{site_key}/challenge"),
            Some(ORIGIN),
            body.to_string().as_bytes(),
        )
        .await
}

on_both_databases! {
    async fn a_script_is_blocked_in_enforce_mode_and_only_recorded_in_observe_mode(world: World) {
        let enforcing = world.create_project(enforced("enforcing")).await;
        let blocked = start_from(&world, Client::SCRIPT, enforcing.site_key(), &json!({})).await;
        assert_eq!((blocked.status, blocked.reason()), (403, "risk_blocked"), "{:?}", blocked.json);
        assert!(blocked.json.get("token").is_none(), "no challenge is issued");

        let observing = world.create_project(quick_project("observing")).await;
        let recorded = start_from(&world, Client::SCRIPT, observing.site_key(), &json!({})).await;
        assert_eq!(recorded.status, 200, "observe mode still starts the challenge");
        // ... but at twice the preset's work, as the score is at the block threshold.
        assert_eq!(recorded.json["challenge"]["c"], 6);

        let events = world.deliver_telemetry().await;
        let want_reasons =
            [RiskReason::NoSignals, RiskReason::AutomatedUserAgent, RiskReason::MissingAcceptLanguage, RiskReason::UnusualFetchContext];
        for (kind, mode) in [(TelemetryKind::ChallengeBlocked, RiskMode::Enforce), (TelemetryKind::ChallengeIssued, RiskMode::Observe)] {
            let event = events.iter().find(|e| e.kind == kind).unwrap_or_else(|| panic!("{kind:?} in {events:?}"));
            let risk = event.risk.as_ref().unwrap();
            assert_eq!((risk.score.to_string(), risk.decision, risk.mode), ("9.0".to_owned(), Decision::Block, mode));
            assert_eq!(risk.reasons().collect::<Vec<_>>(), want_reasons);
            assert_eq!(risk.preset, "custom");
        }

        // Stored with the event, and the blocked start counts as a protected attempt.
        let row = sqlx::query("SELECT risk_score, risk_factors, risk_decision, preset, risk_mode FROM telemetry_events WHERE kind = 'challenge_blocked'")
            .fetch_one(world.db.pool())
            .await
            .unwrap();
        assert_eq!(row.get::<i64, _>("risk_score"), 90);
        assert_eq!(row.get::<String, _>("risk_decision"), "block");
        assert_eq!((row.get::<String, _>("preset"), row.get::<String, _>("risk_mode")), ("custom".into(), "enforce".into()));
        let factors: Value = serde_json::from_str(&row.get::<String, _>("risk_factors")).unwrap();
        assert_eq!(factors[1], json!({ "reason": "automated_user_agent", "points": 4.0 }));
        let usage = telemetry::usage(&world.db, &enforcing.project.id, &month_of(world.clock.now_ms())).await.unwrap();
        assert_eq!((usage.risk_blocked, usage.protected_attempts, usage.challenges_issued), (1, 1, 0));
    }

    async fn a_person_scores_low_pays_less_and_siteverify_says_why(world: World) {
        let strict = Preset::Custom(Protection { difficulty: 1, challenge_count: 10, ..Protection::STRICT });
        let site = world.create_project(humanproof_control_plane::db::projects::ProjectSettings { preset: strict, ..enforced("people") }).await;
        let started = world.start_challenge(site.site_key(), &human_start()).await;
        assert_eq!(started.status, 200, "{:?}", started.json);
        assert_eq!(started.json["challenge"]["c"], 5, "a clean start pays half the preset's work");

        let token = started.json["token"].as_str().unwrap();
        let solutions = humanproof_protocol::pow::solve(token, serde_json::from_value(started.json["challenge"].clone()).unwrap());
        let redeemed = world.redeem(site.site_key(), token, &solutions).await;
        let verified = world.siteverify(&[("secret", &site.secret), ("response", redeemed.json["token"].as_str().unwrap())]).await;
        assert_eq!(verified.json["success"], true);
        let risk = &verified.json["humanproof"]["risk"];
        assert_eq!((risk["score"].as_f64(), risk["decision"].as_str()), (Some(0.0), Some("allow")), "{risk}");
        assert_eq!((risk["preset"].as_str(), risk["mode"].as_str()), (Some("custom"), Some("enforce")));

        // The same person with a throwaway address is still let through, with the reason.
        let mut throwaway = human_start();
        throwaway["form"]["email"] = json!("ada@yopmail.com");
        let started = world.start_challenge(site.site_key(), &throwaway).await;
        let risk = &peek_challenge(&started)["risk"];
        assert_eq!(reasons(risk), ["disposable_email"]);
        assert_eq!(risk["decision"], "challenge", "2.0 is half of Strict's 4.0");
    }

    async fn repeated_failures_raise_later_scores(world: World) {
        let site = world.create_project(quick_project("failures")).await;
        let score_now = || async {
            let started = world.start_challenge(site.site_key(), &human_start()).await;
            peek_challenge(&started)["risk"].clone()
        };
        assert_eq!(score_now().await["score"], 0.0);
        for _ in 0..2 {
            let started = world.start_challenge(site.site_key(), &human_start()).await;
            let token = started.json["token"].as_str().unwrap();
            let wrong = world.redeem(site.site_key(), token, &[0, 0, 0]).await;
            assert_eq!(wrong.reason(), "invalid_solution");
        }
        let after = score_now().await;
        assert_eq!(reasons(&after), ["repeat_failures"]);
        assert_eq!(after["score"], 2.0);

        // The visitor's failures follow it to other sites (after three), not other visitors.
        let other = world.create_project(quick_project("elsewhere")).await;
        let started = world.start_challenge(site.site_key(), &human_start()).await;
        world.redeem(site.site_key(), started.json["token"].as_str().unwrap(), &[0]).await;
        let elsewhere = world.start_challenge(other.site_key(), &human_start()).await;
        assert_eq!(reasons(&peek_challenge(&elsewhere)["risk"]), ["cross_site_failures"]);
        let neighbour = Client { ip: "203.0.113.10", ..Client::BROWSER };
        let clean = start_from(&world, neighbour, site.site_key(), &human_start()).await;
        assert_eq!(peek_challenge(&clean)["risk"]["score"], 0.0);

        // Ten minutes after the minute of the last failure, the site forgives.
        world.clock.advance(humanproof_edge::visitor::REPEAT_WINDOW_MS + 60_000);
        assert_eq!(score_now().await["score"], 0.0);
    }

    async fn rate_limits_refuse_past_the_bucket_and_refill_over_time(world: World) {
        let tight = Preset::Custom(Protection { difficulty: 1, challenge_count: 2, rate_limit: 3, ..Protection::BALANCED });
        let site = world.create_project(humanproof_control_plane::db::projects::ProjectSettings { preset: tight, ..quick_project("tight") }).await;
        for _ in 0..3 {
            assert_eq!(world.start_challenge(site.site_key(), &human_start()).await.status, 200);
        }
        // Three per two minutes, all three at once: the bucket refills one start per 40 s.
        world.clock.advance(30_000);
        let limited = world.start_challenge(site.site_key(), &human_start()).await;
        assert_eq!((limited.status, limited.reason()), (429, "rate_limited"));
        assert_eq!(limited.header("retry-after"), Some("10"));
        assert_eq!(limited.header("access-control-expose-headers"), Some("retry-after"), "the widget may read it");
        // Another visitor is not limited by this one.
        let neighbour = Client { ip: "203.0.113.10", ..Client::BROWSER };
        assert_eq!(start_from(&world, neighbour, site.site_key(), &human_start()).await.status, 200);

        // Refused starts take nothing from the bucket: asking again does not push it back.
        for _ in 0..5 {
            assert_eq!(world.start_challenge(site.site_key(), &human_start()).await.status, 429);
        }
        world.clock.advance(10_000);
        assert_eq!(world.start_challenge(site.site_key(), &human_start()).await.status, 200, "one start refilled");
        assert_eq!(world.start_challenge(site.site_key(), &human_start()).await.status, 429);
        world.clock.advance(RATE_WINDOW_MS);
        for _ in 0..3 {
            assert_eq!(world.start_challenge(site.site_key(), &human_start()).await.status, 200, "full again");
        }
        let refusals: Vec<_> = world.deliver_telemetry().await.into_iter().filter(|e| e.kind == TelemetryKind::ChallengeRefused).collect();
        assert_eq!(refusals.len(), 7);
        assert_eq!(refusals[0].reason.map(|r| r.as_str()), Some("rate_limited"));
    }

    async fn the_widget_must_answer_its_environment_check(world: World) {
        let strict = Preset::Custom(Protection { difficulty: 1, challenge_count: 2, ..Protection::STRICT });
        let site = world.create_project(humanproof_control_plane::db::projects::ProjectSettings { preset: strict, ..quick_project("checked") }).await;
        let start = || async {
            let started = world.start_challenge(site.site_key(), &human_start()).await;
            let token = started.json["token"].as_str().unwrap().to_owned();
            let solutions = humanproof_protocol::pow::solve(&token, serde_json::from_value(started.json["challenge"].clone()).unwrap());
            (started, token, solutions)
        };
        let (started, token, solutions) = start().await;
        let script = started.json["instrumentation"]["script"].as_str().unwrap();
        assert!(script.contains("switch(s)"), "Strict sends the stronger obfuscation");
        assert_eq!(peek_challenge(&started)["ins"], "stronger");

        // Missing, then wrong: refused, and the challenge is spent by the wrong guess.
        let missing = world.redeem_with(site.site_key(), &token, &solutions, None).await;
        assert_eq!((missing.status, missing.reason()), (400, "instrumentation_failed"));
        let (_, token, solutions) = start().await;
        let wrong = world.redeem_with(site.site_key(), &token, &solutions, Some("00000000")).await;
        assert_eq!(wrong.reason(), "instrumentation_failed");
        let retry = world.redeem(site.site_key(), &token, &solutions).await;
        assert_eq!(retry.reason(), "already_redeemed");
        // Each counted as a failure of this visitor.
        let (later, _, _) = start().await;
        assert_eq!(reasons(&peek_challenge(&later)["risk"]), ["repeat_failures"]);

        // The right answer passes; a plain Cap client gets no check and needs none.
        let (_, token, solutions) = start().await;
        assert_eq!(world.redeem(site.site_key(), &token, &solutions).await.status, 200);
        let cap = world.start_challenge(site.site_key(), &json!({})).await;
        assert!(cap.json.get("instrumentation").is_none());
        let token = cap.json["token"].as_str().unwrap();
        let solutions = humanproof_protocol::pow::solve(token, serde_json::from_value(cap.json["challenge"].clone()).unwrap());
        assert_eq!(world.redeem_with(site.site_key(), token, &solutions, None).await.status, 200);
    }

    async fn a_start_that_claims_only_part_of_the_widget_is_scored_as_no_widget_and_still_checked(world: World) {
        let site = world.create_project(quick_project("made-up")).await;
        let mut made_up_signals = human_start();
        made_up_signals.as_object_mut().unwrap().remove("widget");
        let mut bare_context = human_start();
        bare_context.as_object_mut().unwrap().remove("signals");
        for body in [made_up_signals, bare_context] {
            let started = world.start_challenge(site.site_key(), &body).await;
            let claims = peek_challenge(&started);
            assert_eq!(reasons(&claims["risk"]), ["no_signals"], "{body}");
            assert_eq!(claims["ins"], "default", "{body}");
            assert!(started.json["instrumentation"]["script"].is_string());
            let token = started.json["token"].as_str().unwrap();
            let solutions = humanproof_protocol::pow::solve(token, serde_json::from_value(started.json["challenge"].clone()).unwrap());
            let unanswered = world.redeem_with(site.site_key(), token, &solutions, None).await;
            assert_eq!((unanswered.status, unanswered.reason()), (400, "instrumentation_failed"), "{body}");
        }
    }

    async fn ipv6_visitors_are_one_visitor_per_64(world: World) {
        let tight = Preset::Custom(Protection { difficulty: 1, challenge_count: 2, rate_limit: 2, ..Protection::BALANCED });
        let site = world.create_project(humanproof_control_plane::db::projects::ProjectSettings { preset: tight, ..quick_project("ipv6") }).await;
        let from = |ip: &'static str| Client { ip, ..Client::BROWSER };
        // One subscriber's /64: a fresh address per request is still the same visitor.
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:9"] {
            assert_eq!(start_from(&world, from(ip), site.site_key(), &human_start()).await.status, 200, "{ip}");
        }
        let third = start_from(&world, from("2001:db8:1:2:abcd::7"), site.site_key(), &human_start()).await;
        assert_eq!((third.status, third.reason()), (429, "rate_limited"));
        // The next /64 is someone else.
        assert_eq!(start_from(&world, from("2001:db8:1:3::1"), site.site_key(), &human_start()).await.status, 200);

        let hashes: Vec<_> = world.take_events().await.into_iter().map(|event| event.ip_hash.unwrap()).collect();
        assert_eq!(hashes.len(), 4);
        assert!(hashes[..3].iter().all(|hash| *hash == hashes[0]), "telemetry's ip_hash is the /64's too");
        assert_ne!(hashes[3], hashes[0]);
    }

    async fn a_browser_without_offscreen_canvas_gets_the_check_without_a_canvas_and_a_reason(world: World) {
        let lighter = Preset::Custom(Protection { difficulty: 1, challenge_count: 2, obfuscation: Obfuscation::Lighter, ..Protection::BALANCED });
        let site = world.create_project(humanproof_control_plane::db::projects::ProjectSettings { preset: lighter, ..quick_project("older-safari") }).await;
        let mut older_safari = human_start();
        older_safari["widget"]["offscreen_canvas"] = json!(false);
        let started = world.start_challenge(site.site_key(), &older_safari).await;
        let claims = peek_challenge(&started);
        assert_eq!(claims["ins_without_canvas"], true);
        assert_eq!(reasons(&claims["risk"]), ["partial_environment_check"]);
        let script = started.json["instrumentation"]["script"].as_str().unwrap();
        assert!(!script.contains("OffscreenCanvas") && script.contains("FileReaderSync"), "the lighter level names what it uses: {script}");

        // The redeem carries the answer of the check without the canvas half, and passes.
        let token = started.json["token"].as_str().unwrap();
        let solutions = humanproof_protocol::pow::solve(token, serde_json::from_value(started.json["challenge"].clone()).unwrap());
        let redeemed = world.redeem(site.site_key(), token, &solutions).await;
        assert_eq!(redeemed.status, 200, "{:?}", redeemed.json);
        let verified = world.siteverify(&[("secret", &site.secret), ("response", redeemed.json["token"].as_str().unwrap())]).await;
        assert_eq!(reasons(&verified.json["humanproof"]["risk"]), ["partial_environment_check"], "{:?}", verified.json);
        // The full check's answer does not fit a challenge that sent the partial one.
        let again = world.start_challenge(site.site_key(), &older_safari).await;
        let token = again.json["token"].as_str().unwrap();
        let solutions = humanproof_protocol::pow::solve(token, serde_json::from_value(again.json["challenge"].clone()).unwrap());
        let mut claims: humanproof_protocol::ChallengeClaims = humanproof_protocol::token::peek_unverified(token).unwrap();
        claims.ins_without_canvas = false;
        let full_answer = humanproof_edge::instrumentation::scene_for(&world.master, &claims).unwrap().answer();
        assert_eq!(world.redeem_with(site.site_key(), token, &solutions, Some(&full_answer)).await.reason(), "instrumentation_failed");

        // A current browser says it has a canvas and gets the full check, unscored.
        let mut current = human_start();
        current["widget"]["offscreen_canvas"] = json!(true);
        let started = world.start_challenge(site.site_key(), &current).await;
        assert_eq!(peek_challenge(&started).get("ins_without_canvas"), None);
        assert!(reasons(&peek_challenge(&started)["risk"]).is_empty());
    }

    async fn the_dashboard_explains_decisions_and_switches_to_enforce(world: World) {
        let base = world.serve().await;
        let browser = Browser::new(&base);
        let org = browser.sign_up("reviewer@example.com", "correct horse battery").await;
        let (user, _) = accounts::find_user_by_email(&world.db, "reviewer@example.com").await.unwrap().unwrap();
        accounts::mark_email_verified(&world.db, &user.id, world.clock.now_ms()).await.unwrap();
        let site = projects::insert(&world.db, Some(&org), &quick_project("Reviewed"), &secrets::new_site_key(), &secrets::new_backend_secret(), world.clock.now_ms())
            .await
            .unwrap();
        world.publish().await;
        world.start_challenge(&site.site_key, &human_start()).await;
        world.start_challenge(&site.site_key, &human_start()).await;
        start_from(&world, Client::SCRIPT, &site.site_key, &json!({})).await;
        world.deliver_telemetry().await;

        let risk_page = format!("/orgs/{org}/projects/{}/risk", site.id);
        let page = browser.get(&risk_page).await.expect(200);
        assert!(page.body.contains(r#"id="would-block">1</strong> of 3 starts"#), "{}", page.body);
        assert!(page.body.contains("<code>automated_user_agent</code>"));
        assert!(page.body.contains(RiskReason::AutomatedUserAgent.explanation()));
        assert!(page.body.contains("enforce mode would have refused it; observe mode only recorded it"));
        assert!(page.body.contains("Nothing unusual was seen."), "the people's starts are explained too");
        assert!(page.body.contains("2026-03-15</td><td>2</td><td>0</td><td>1</td>"), "decisions per day");
        // In observe mode the header's figure is the table's block decisions, in total.
        assert!(page.body.contains(r#"id="block-decisions-total">1</td>"#), "{}", page.body);
        // Bands say their severity against the block threshold, in words and colour.
        assert!(page.body.contains(r#"<tr class="band band-low"><td>0–1</td><td>Low</td>"#), "{}", page.body);
        assert!(page.body.contains(r#"<tr class="band band-high"><td>9–10</td><td>Blocked in enforce mode</td>"#));

        browser.post(&format!("/orgs/{org}/projects/{}/risk-mode", site.id), &[("mode", "sideways")]).await.expect(400);
        browser.post(&format!("/orgs/{org}/projects/{}/risk-mode", site.id), &[("mode", "enforce")]).await.expect(303);
        assert_eq!(projects::find(&world.db, &site.id).await.unwrap().unwrap().settings.risk_mode, RiskMode::Enforce);
        let refused = start_from(&world, Client::SCRIPT, &site.site_key, &json!({})).await;
        assert_eq!(refused.reason(), "risk_blocked", "the edge has the new mode");
        world.deliver_telemetry().await;
        let page = browser.get(&risk_page).await.expect(200);
        assert!(page.body.contains(r#"id="blocked">1</strong> of 4 starts"#), "{}", page.body);
        assert!(page.body.contains("Switch back to observe"));
        assert!(page.body.contains("High risk: enforce mode refused the check."));
    }

    async fn countries_and_networks_are_counted_per_project_only(world: World) {
        // The local server's path: real MaxMind-format databases, a real HTTP request to the
        // local edge from 127.0.0.1.
        let dir = std::env::temp_dir().join("humanproof-tests").join(format!("geo-{}", secrets::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let loopback = std::net::Ipv4Addr::new(127, 0, 0, 0);
        let country = mmdb::write("GeoLite2-Country", &[(loopback, 8, mmdb::Value::map([("country", mmdb::Value::map([("iso_code", mmdb::Value::Text("NL".into()))]))]))]);
        let asn = mmdb::write("GeoLite2-ASN", &[(loopback, 8, mmdb::Value::map([("autonomous_system_number", mmdb::Value::U32(64500))]))]);
        std::fs::write(dir.join("country.mmdb"), country).unwrap();
        std::fs::write(dir.join("asn.mmdb"), asn).unwrap();
        let geo = GeoLookup::open(Some(&dir.join("country.mmdb")), Some(&dir.join("asn.mmdb"))).unwrap();
        assert_eq!(geo.lookup("127.0.0.1".parse().unwrap()), Network { country: Some("NL".into()), asn: Some(64500) });
        assert_eq!(geo.lookup("192.0.2.1".parse().unwrap()), Network::default());
        assert!(GeoLookup::open(Some(&dir.join("missing.mmdb")), None).is_err());

        let site = world.create_project(enforced("networks")).await;
        let edge = serve_app(edge_router(world.edge.clone(), dir.clone(), std::sync::Arc::new(geo))).await;
        let http = humanproof_control_plane::http::client();
        for (client, body) in [(Client::BROWSER, human_start().to_string()), (Client::SCRIPT, "{}".to_owned())] {
            let mut request = http.post(format!("{edge}/{}/challenge", site.site_key())).header("origin", ORIGIN).body(body);
            let headers = client.headers;
            for (name, value) in [
                ("user-agent", headers.user_agent),
                ("accept-language", headers.accept_language),
                ("sec-fetch-site", headers.sec_fetch_site),
                ("sec-fetch-mode", headers.sec_fetch_mode),
                ("sec-fetch-dest", headers.sec_fetch_dest),
            ] {
                if let Some(value) = value {
                    request = request.header(name, value);
                }
            }
            request.send().await.unwrap();
        }
        let events = world.deliver_telemetry().await;
        assert_eq!(events.len(), 2);
        // The local edge runs on the system clock, not the test's manual one.
        let month = month_of(events[0].at);
        let countries = telemetry::top_networks(&world.db, &site.project.id, &month, Dimension::Country, 10).await.unwrap();
        let networks = telemetry::top_networks(&world.db, &site.project.id, &month, Dimension::Asn, 10).await.unwrap();
        let counted = |value: &str, starts, blocked| vec![NetworkStarts { value: value.into(), starts, blocked }];
        assert_eq!((countries, networks), (counted("NL", 2, 1), counted("64500", 2, 1)));
        // Never stored with the events themselves.
        let columns = every_stored_value(&world.db).await;
        assert!(!columns.iter().any(|value| value.contains("\"country\"") || value.contains("64500") && value.contains('{')));
    }

    async fn no_raw_ip_or_user_agent_is_stored(world: World) {
        let observing = world.create_project(quick_project("privacy-observe")).await;
        let enforcing = world.create_project(enforced("privacy-enforce")).await;
        for site in [&observing, &enforcing] {
            for client in [Client::BROWSER, Client::SCRIPT] {
                let started = start_from(&world, client, site.site_key(), &human_start()).await;
                if let Some(token) = started.json["token"].as_str() {
                    world.redeem(site.site_key(), token, &[0]).await;
                }
            }
        }
        let token = world.verification_token(observing.site_key()).await;
        let remote_ip = Client::SCRIPT.ip;
        world.siteverify(&[("secret", &observing.secret), ("response", &token), ("remoteip", remote_ip)]).await;
        world.deliver_telemetry().await;

        let stored = every_stored_value(&world.db).await;
        assert!(stored.iter().any(|value| value == "privacy-observe"), "the scan reads what is stored");
        for raw in [Client::BROWSER.ip, Client::SCRIPT.ip, Client::BROWSER.headers.user_agent.unwrap(), Client::SCRIPT.headers.user_agent.unwrap(), "curl/"] {
            let found: Vec<_> = stored.iter().filter(|value| value.contains(raw)).collect();
            assert!(found.is_empty(), "{raw:?} is stored: {found:?}");
        }
    }
}

/// Every value in every table, as text.
async fn every_stored_value(db: &Db) -> Vec<String> {
    let tables_sql = match db.backend() {
        DbBackend::Sqlite => "SELECT name AS t FROM sqlite_master WHERE type = 'table'",
        DbBackend::Postgres => {
            "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'"
        }
    };
    let tables: Vec<String> = sqlx::query(tables_sql)
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("t"))
        .collect();
    let mut values = Vec::new();
    for table in tables {
        let columns_sql = match db.backend() {
            DbBackend::Sqlite => format!("SELECT name AS c FROM pragma_table_info('{table}')"),
            DbBackend::Postgres => format!(
                "SELECT column_name::text AS c FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}'"
            ),
        };
        let columns: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(columns_sql))
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("c"))
            .collect();
        for column in columns {
            // SQLite keeps some values as blobs that are not UTF-8 (migration checksums):
            // read bytes there, text elsewhere.
            let cast = match db.backend() {
                DbBackend::Sqlite => "BLOB",
                DbBackend::Postgres => "TEXT",
            };
            let sql = format!("SELECT CAST(\"{column}\" AS {cast}) AS v FROM \"{table}\"");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(db.pool())
                .await
                .unwrap();
            values.extend(rows.iter().filter_map(|row| {
                match db.backend() {
                    DbBackend::Sqlite => row
                        .get::<Option<Vec<u8>>, _>("v")
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
                    DbBackend::Postgres => row.get::<Option<String>, _>("v"),
                }
            }));
        }
    }
    values
}
