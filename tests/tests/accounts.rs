//! Customer accounts through the real dashboard over HTTP, on SQLite and on PostgreSQL:
//! sign-up and email verification, wrong passwords and throttling, password reset links
//! (single use, superseded, expiring), CSRF, and sessions.

use humanproof_control_plane::accounts::{
    MAX_FAILURES_PER_EMAIL, MAX_RESET_REQUESTS_PER_EMAIL, MAX_SECOND_FACTOR_FAILURES,
    MAX_SIGN_UPS_PER_IP, RESET_LINK_TTL_MS, SECOND_FACTOR_TTL_MS, THROTTLE_WINDOW_MS,
};
use humanproof_control_plane::db::{accounts, passkeys};
use humanproof_control_plane::state::WebConfig;
use humanproof_control_plane::totp;
use humanproof_tests::*;

const PASSWORD: &str = "correct horse battery";

fn link_with(links: &[String], path: &str) -> String {
    links
        .iter()
        .find(|link| link.contains(path))
        .unwrap_or_else(|| panic!("no {path} link in {links:?}"))
        .clone()
}

/// The path and query of a link from an email (emails name the public URL, not the test server).
fn local(link: &str) -> String {
    let rest = link.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_owned()
}

on_both_databases! {
    async fn the_email_address_changes_once_the_new_one_confirms_and_the_old_one_is_told(world: World) {
        let base = world.serve().await;
        let browser = Browser::new(&base);
        let org = browser.sign_up("old@example.com", PASSWORD).await;
        browser.post(&format!("/orgs/{org}/clients"), &[("name", "Bakery")]).await.expect(303);
        Browser::new(&base).sign_up("taken@example.com", PASSWORD).await;
        let change = |to: &'static str, password: &'static str| {
            let browser = &browser;
            async move { browser.post("/account/email", &[("new_email", to), ("password", password)]).await }
        };
        change("new@example.com", "wrong password!").await.expect(401);
        change("OLD@example.com", PASSWORD).await.expect(400);
        change("not an address", PASSWORD).await.expect(400);
        // An address another account has: the same answer, and a note there without a link.
        change("taken@example.com", PASSWORD).await.expect(303);
        assert!(world.last_email("taken@example.com").contains("already uses"));
        assert!(world.email_links("taken@example.com").iter().all(|link| !link.contains("/account/email/confirm")));

        change("new@example.com", PASSWORD).await.expect(303);
        assert!(browser.get("/account").await.expect(200).body.contains("We sent a link to the new address."));
        let link = local(&link_with(&world.email_links("new@example.com"), "/account/email/confirm?token="));
        // Nothing changes until the link is opened (from any browser).
        Browser::new(&base).sign_in("old@example.com", PASSWORD).await.expect(303);
        Browser::new(&base).get(&link).await.expect(303);
        Browser::new(&base).get(&link).await.expect(400);
        assert!(world.last_email("old@example.com").contains("now signs in as new@example.com"));
        Browser::new(&base).sign_in("old@example.com", PASSWORD).await.expect(401);
        Browser::new(&base).sign_in("new@example.com", PASSWORD).await.expect(303);
        // The audit log follows the person to the new address, so export and deletion find it.
        let export = browser.get("/account/export").await.expect(200);
        assert!(export.body.contains("\"email\": \"new@example.com\"") && export.body.contains("client.created"), "{}", export.body);
        assert!(export.body.contains("account.email_changed"));
        assert!(!export.body.contains("old@example.com"), "{}", export.body);
    }

    async fn a_member_sees_their_sessions_ends_one_and_changes_the_password(world: World) {
        let base = world.serve().await;
        let here = Browser::new(&base);
        here.sign_up("moving@example.com", PASSWORD).await;
        let laptop = Browser::new(&base);
        laptop.sign_in("moving@example.com", PASSWORD).await.expect(303);
        let phone = Browser::new(&base);
        phone.sign_in("moving@example.com", PASSWORD).await.expect(303);

        // Three sessions, this one marked; ending the laptop's signs it out and only it.
        let page = here.get("/account").await.expect(200);
        assert_eq!(page.body.matches("Signed in ").count(), 3, "{}", page.body);
        assert_eq!(page.body.matches("(this browser)").count(), 1);
        let ends: Vec<String> = page.body.split("action=\"").skip(1).filter_map(|rest| rest.split('"').next())
            .map(|href| href.replace("&#x2f;", "/")).filter(|href| href.ends_with("/end")).collect();
        assert_eq!(ends.len(), 2, "no button ends this session");
        here.post(&ends[0], &[]).await.expect(303);
        let signed_in = async |browser: &Browser| browser.get("/account").await.status == 200;
        assert_eq!([signed_in(&laptop).await, signed_in(&phone).await].iter().filter(|s| **s).count(), 1);
        assert!(here.get("/account").await.expect(200).body.contains("That session is signed out."));
        here.post("/account/sessions/0000000000000000/end", &[]).await.expect(404);

        // The password: the current one is needed, the new one must be long enough.
        here.post("/account/password", &[("password", "wrong password!"), ("new_password", "another long passphrase")]).await.expect(401);
        here.post("/account/password", &[("password", PASSWORD), ("new_password", "short")]).await.expect(400);
        here.post("/account/password", &[("password", PASSWORD), ("new_password", "another long passphrase")]).await.expect(303);
        assert!(here.get("/account").await.expect(200).body.contains("Password changed."), "this session goes on");
        assert!(!signed_in(&laptop).await && !signed_in(&phone).await, "every other session ended");
        assert!(world.last_email("moving@example.com").contains("was changed"));
        Browser::new(&base).sign_in("moving@example.com", PASSWORD).await.expect(401);
        Browser::new(&base).sign_in("moving@example.com", "another long passphrase").await.expect(303);
        // The export lists sessions by time, without their handles.
        let export = here.get("/account/export").await.expect(200);
        assert!(export.body.contains("\"sessions\"") && !export.body.contains("handle"));
    }

    async fn sign_up_verify_email_then_create_a_project(world: World) {
        let browser = Browser::new(&world.serve().await);
        // Sign-up answers "check your email" and signs nobody in: the emailed link does.
        let fields = [("email", "Ada@Example.com "), ("password", PASSWORD), ("organisation", "Acme")];
        let sent = browser.post("/sign-up", &fields).await.expect(200);
        assert!(sent.body.contains("We sent a link to ada@example.com"), "{}", sent.body);
        assert!(browser.cookie("hp_session").is_none());

        // With the password alone, an unverified account signs in but cannot create projects.
        browser.sign_in("ada@example.com", PASSWORD).await.expect(303);
        let home = browser.get("/").await.expect(303);
        let org = home.location.unwrap().trim_start_matches("/orgs/").trim_end_matches("/projects").to_owned();
        let projects = browser.get(&format!("/orgs/{org}/projects")).await.expect(200);
        assert!(projects.body.contains("Confirm your email address"));
        let fields = [("name", "Shop"), ("testing_domains", "localhost"), ("preset", "balanced"), ("risk_mode", "observe"),
            ("widget_variant", "checkbox"), ("widget_theme", "auto"), ("widget_language", "auto"), ("widget_size", "normal"),
            ("widget_branding", "full"), ("active", "on")];
        browser.post(&format!("/orgs/{org}/projects/new"), &fields).await.expect(403);

        let link = link_with(&world.email_links("ada@example.com"), "/verify-email?token=");
        browser.get(&local(&link)).await.expect(200);
        // A verification link works once.
        assert!(browser.get(&local(&link)).await.expect(400).body.contains("invalid, already used or expired"));

        // In another browser, the link alone signs the new account in.
        let elsewhere = Browser::new(&browser_base(&browser));
        elsewhere.post("/sign-up", &[("email", "lin@example.com"), ("password", PASSWORD)]).await.expect(200);
        let link = link_with(&world.email_links("lin@example.com"), "/verify-email?token=");
        elsewhere.get(&local(&link)).await.expect(200);
        assert!(elsewhere.get("/").await.expect(303).location.unwrap().starts_with("/orgs/"));

        // Post/redirect/get: the new project's page shows the secret once; reloading it (or
        // going back) neither shows it again nor creates a second project.
        let created = browser.post(&format!("/orgs/{org}/projects/new"), &fields).await.expect(303);
        let project_page = created.location.unwrap();
        assert!(browser.get(&project_page).await.expect(200).body.contains("hp_secret_"), "the secret is shown once");
        assert!(!browser.get(&project_page).await.expect(200).body.contains("hp_secret_"));
        let listed = browser.get(&format!("/orgs/{org}/projects")).await.expect(200);
        assert!(listed.body.contains("Shop") && !listed.body.contains("hp_secret_"));

        // Signing up again with a taken address answers exactly as a new sign-up does (the
        // form does not tell who has an account); the owner is told by email instead.
        let again = Browser::new(&browser_base(&browser));
        let taken = again.post("/sign-up", &[("email", "ada@example.com"), ("password", "another password")]).await.expect(200);
        let fresh = again.post("/sign-up", &[("email", "new@example.com"), ("password", PASSWORD)]).await.expect(200);
        let strip = |body: &str, email: &str| body.replace(email, "EMAIL").replace(&again.cookie("hp_csrf").unwrap(), "CSRF");
        assert_eq!(strip(&taken.body, "ada@example.com"), strip(&fresh.body, "new@example.com"));
        assert!(again.cookie("hp_session").is_none());
        let warning = world.email_links("ada@example.com");
        assert!(warning.iter().any(|link| link.ends_with("/sign-in")), "the owner is told: {warning:?}");
        browser.sign_in("ada@example.com", "another password").await.expect(401);

        // Sign out ends the session.
        browser.post("/sign-out", &[]).await.expect(303);
        assert_eq!(browser.get(&format!("/orgs/{org}/projects")).await.expect(303).location.as_deref(), Some("/sign-in"));
    }

    async fn bad_sign_up_input_is_refused_with_a_reason(world: World) {
        let browser = Browser::new(&world.serve().await);
        let weak = browser.post("/sign-up", &[("email", "bob@example.com"), ("password", "short")]).await.expect(400);
        assert!(weak.body.contains("10 to 128 characters"));
        let bad = browser.post("/sign-up", &[("email", "not-an-email"), ("password", PASSWORD)]).await.expect(400);
        assert!(bad.body.contains("valid email"));
        // A form without the fields it needs is a 4xx, not a crash.
        let missing = browser.post("/sign-up", &[("email", "bob@example.com")]).await;
        assert!((400..500).contains(&missing.status), "{}", missing.status);
    }

    async fn wrong_passwords_are_throttled_per_account(world: World) {
        let base = world.serve().await;
        let browser = Browser::new(&base);
        browser.sign_up("grace@example.com", PASSWORD).await;
        browser.post("/sign-out", &[]).await.expect(303);

        // Unknown accounts and wrong passwords get the same answer.
        let unknown = browser.sign_in("nobody@example.com", PASSWORD).await.expect(401);
        let wrong = browser.sign_in("grace@example.com", "wrong password!").await.expect(401);
        assert!(unknown.body.contains("Wrong email or password") && wrong.body.contains("Wrong email or password"));

        for _ in 1..5 {
            browser.sign_in("grace@example.com", "wrong password!").await.expect(401);
        }
        // Five failures: even the right password is refused for a while.
        let throttled = browser.sign_in("grace@example.com", PASSWORD).await.expect(429);
        assert!(throttled.body.contains("Too many attempts"));

        world.clock.advance(THROTTLE_WINDOW_MS + 1);
        browser.sign_in("grace@example.com", PASSWORD).await.expect(303);
        assert!(browser.cookie("hp_session").is_some());
    }

    async fn password_reset_links_are_single_use_superseded_and_expire(world: World) {
        let browser = Browser::new(&world.serve().await);
        browser.sign_up("lin@example.com", PASSWORD).await;
        let other_session = Browser::new(&browser_base(&browser));
        other_session.sign_in("lin@example.com", PASSWORD).await.expect(303);

        // Unknown addresses get the same answer and no email.
        let unknown = browser.post("/forgot-password", &[("email", "ghost@example.com")]).await.expect(200);
        assert!(unknown.body.contains("If an account uses this address"));
        assert!(world.email_links("ghost@example.com").is_empty());

        browser.post("/forgot-password", &[("email", "lin@example.com")]).await.expect(200);
        let first = local(&link_with(&world.email_links("lin@example.com"), "/reset-password?token="));
        browser.post("/forgot-password", &[("email", "lin@example.com")]).await.expect(200);
        let second = local(&link_with(&world.email_links("lin@example.com"), "/reset-password?token="));
        assert_ne!(first, second);
        // Only the newest link works.
        browser.get(&first).await.expect(400);
        browser.get(&second).await.expect(200);

        let token = second.split("token=").nth(1).unwrap().to_owned();
        let weak = browser.post("/reset-password", &[("token", &token), ("password", "short")]).await.expect(400);
        assert!(weak.body.contains("10 to 128"));
        browser.post("/reset-password", &[("token", &token), ("password", "a brand new passphrase")]).await.expect(200);
        // Used once, never again.
        browser.post("/reset-password", &[("token", &token), ("password", "yet another passphrase")]).await.expect(400);
        // Every session ended; the old password is gone, the new one works.
        assert_eq!(other_session.get("/").await.location.as_deref(), Some("/sign-in"));
        browser.sign_in("lin@example.com", PASSWORD).await.expect(401);
        browser.sign_in("lin@example.com", "a brand new passphrase").await.expect(303);

        // Links expire after an hour, and retention then deletes them.
        browser.post("/forgot-password", &[("email", "lin@example.com")]).await.expect(200);
        let late = local(&link_with(&world.email_links("lin@example.com"), "/reset-password?token="));
        world.clock.advance(RESET_LINK_TTL_MS + 1);
        browser.get(&late).await.expect(400);
        let token = late.split("token=").nth(1).unwrap().to_owned();
        browser.post("/reset-password", &[("token", &token), ("password", "too late passphrase")]).await.expect(400);
        let report = humanproof_control_plane::db::retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert!(report.email_links_deleted >= 1, "{report:?}");
    }

    async fn every_form_needs_the_csrf_token(world: World) {
        let browser = Browser::new(&world.serve().await);
        let org = browser.sign_up("csrf@example.com", PASSWORD).await;
        for path in ["/sign-in".to_owned(), "/sign-out".to_owned(), format!("/orgs/{org}/members")] {
            browser.post_raw(&path, &[("email", "csrf@example.com")]).await.expect(403);
            browser.post_raw(&path, &[("email", "csrf@example.com"), ("csrf", &"0".repeat(64))]).await.expect(403);
        }
        // Still signed in: the forged sign-out did nothing.
        browser.get(&format!("/orgs/{org}/projects")).await.expect(200);
    }

    async fn totp_and_recovery_codes_guard_sign_in(world: World) {
        let base = world.serve().await;
        let browser = Browser::new(&base);
        let email = "mfa@example.com";
        browser.sign_up(email, PASSWORD).await;
        let setup = browser.post("/account/two-factor/setup", &[]).await.expect(200);
        assert!(setup.body.contains("HumanProof:mfa%40example.com?secret="), "{}", setup.body);
        let key = |body: &str| body.split("<code id=\"totp-secret\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
        let scanned = key(&setup.body);
        // A wrong code keeps the key the app scanned on screen, says nothing of recovery codes
        // (there are none yet), and "Set up" again shows the same key.
        let wrong = browser.post("/account/two-factor/confirm", &[("code", "000000")]).await.expect(401);
        assert_eq!(key(&wrong.body), scanned);
        assert!(wrong.body.contains("Enter the current code your app shows") && !wrong.body.contains("recovery code"), "{}", wrong.body);
        assert_eq!(key(&browser.get("/account").await.expect(200).body), scanned);
        assert_eq!(key(&browser.post("/account/two-factor/setup", &[]).await.expect(200).body), scanned);
        // Cancelling throws it away; the next setup has a new key.
        browser.post("/account/two-factor/cancel", &[]).await.expect(303);
        assert!(!browser.get("/account").await.expect(200).body.contains("totp-secret"));
        let setup = browser.post("/account/two-factor/setup", &[]).await.expect(200);
        assert_ne!(key(&setup.body), scanned);
        let code = current_code(&world, email).await;
        let enabled = browser.post("/account/two-factor/confirm", &[("code", &code)]).await.expect(200);
        let codes: Vec<String> = enabled.body.split("<pre id=\"recovery-codes\">").nth(1).unwrap().split("</pre>").next().unwrap()
            .lines().map(str::to_owned).collect();
        assert_eq!(codes.len(), 10);
        browser.post("/sign-out", &[]).await.expect(303);

        // The password alone opens nothing but the second-factor form.
        let step_one = browser.sign_in(email, PASSWORD).await.expect(303);
        assert_eq!(step_one.location.as_deref(), Some("/sign-in/second-factor"));
        assert_eq!(browser.get("/").await.location.as_deref(), Some("/sign-in"));
        browser.get("/sign-in/second-factor").await.expect(200);
        browser.post("/sign-in/second-factor", &[("code", "123456")]).await.expect(401);
        // The code that turned 2FA on was used: the same step does not work twice.
        browser.post("/sign-in/second-factor", &[("code", &code)]).await.expect(401);
        world.clock.advance(totp::STEP_SECONDS * 1000);
        let fresh = current_code(&world, email).await;
        browser.post("/sign-in/second-factor", &[("code", &fresh)]).await.expect(303);
        browser.get("/account").await.expect(200);
        browser.post("/sign-out", &[]).await.expect(303);

        // A recovery code works once.
        browser.sign_in(email, PASSWORD).await.expect(303);
        browser.post("/sign-in/second-factor", &[("code", &codes[0].to_uppercase())]).await.expect(303);
        browser.post("/sign-out", &[]).await.expect(303);
        browser.sign_in(email, PASSWORD).await.expect(303);
        browser.post("/sign-in/second-factor", &[("code", &codes[0])]).await.expect(401);

        // Wrong codes are throttled like wrong passwords (one failure so far).
        for _ in 0..4 {
            browser.post("/sign-in/second-factor", &[("code", "999999")]).await.expect(401);
        }
        browser.post("/sign-in/second-factor", &[("code", &codes[1])]).await.expect(429);
        world.clock.advance(THROTTLE_WINDOW_MS + 1);

        // The half-finished sign-in expires.
        browser.sign_in(email, PASSWORD).await.expect(303);
        world.clock.advance(SECOND_FACTOR_TTL_MS + 1);
        let expired = browser.post("/sign-in/second-factor", &[("code", &codes[1])]).await.expect(303);
        assert_eq!(expired.location.as_deref(), Some("/sign-in"));

        // Turning it off needs the password.
        browser.sign_in(email, PASSWORD).await.expect(303);
        browser.post("/sign-in/second-factor", &[("code", &codes[1])]).await.expect(303);
        browser.post("/account/two-factor/disable", &[("password", "not my password")]).await.expect(401);
        browser.post("/account/two-factor/disable", &[("password", PASSWORD)]).await.expect(303);
        assert!(browser.get("/account").await.expect(200).body.contains("Two-factor authentication is off."));
        browser.post("/sign-out", &[]).await.expect(303);
        assert_eq!(browser.sign_in(email, PASSWORD).await.expect(303).location.as_deref(), Some("/"));
    }

    async fn passkey_ceremonies_refuse_what_they_should(world: World) {
        let browser = Browser::new(&world.serve().await);
        let (status, answer) = browser.post_json("/account/passkeys/register/start", &serde_json::json!({}), true).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("sign_in")));

        browser.sign_up("keys@example.com", PASSWORD).await;
        let (status, _) = browser.post_json("/account/passkeys/register/start", &serde_json::json!({}), false).await;
        assert_eq!(status, 403, "JSON posts need the CSRF header too");
        browser.post("/account/confirm-identity", &[("password_or_code", PASSWORD)]).await.expect(200);
        let (status, started) = browser.post_json("/account/passkeys/register/start", &serde_json::json!({}), true).await;
        assert_eq!(status, 200, "{started}");
        let public_key = &started["options"]["publicKey"];
        assert_eq!(public_key["rp"]["id"], "localhost");
        assert_eq!(public_key["authenticatorSelection"]["residentKey"], "required");
        let ceremony = started["ceremony"].as_str().unwrap();

        // A forged credential is refused, and the ceremony is spent either way.
        let forged = serde_json::json!({ "ceremony": ceremony, "credential": { "id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": { "attestationObject": "AAAA", "clientDataJSON": "AAAA" } } });
        let (status, answer) = browser.post_json("/account/passkeys/register/finish", &forged, true).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("credential")));
        let (status, answer) = browser.post_json("/account/passkeys/register/finish", &forged, true).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("ceremony")));
        let (status, _) = browser.post_json("/account/passkeys/register/finish", &serde_json::json!("nonsense"), true).await;
        assert_eq!(status, 400);

        // Sign-in ceremonies: unknown ids and sessions without a pending second factor.
        let (status, started) = browser.post_json("/sign-in/passkey/start", &serde_json::json!({}), true).await;
        assert_eq!(status, 200);
        assert!(started["options"]["publicKey"]["challenge"].is_string());
        let unknown = serde_json::json!({ "ceremony": "nope", "credential": {} });
        assert_eq!(browser.post_json("/sign-in/passkey/finish", &unknown, true).await.0, 400);
        let (status, answer) = browser.post_json("/sign-in/second-factor/passkey/start", &serde_json::json!({}), true).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("sign_in_again")));

        // Passkeys need a domain name: on an IP address the dashboard says so.
        let state = world.state().with(|state| {
            state.web = WebConfig::new("http://127.0.0.1:8080", "http://127.0.0.1:8787", true);
        });
        let on_ip = Browser::new(&serve_control_plane(state).await);
        let (status, answer) = on_ip.post_json("/sign-in/passkey/start", &serde_json::json!({}), true).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("passkey")));
    }

    async fn an_account_marked_for_deletion_is_not_signed_in_but_offered_to_be_kept(world: World) {
        let browser = Browser::new(&world.serve().await);
        browser.sign_up("leaving@example.com", PASSWORD).await;
        browser.post("/account/delete", &[("password", "wrong password!")]).await.expect(401);
        browser.post("/account/delete", &[("password", PASSWORD)]).await.expect(303);
        let refused = browser.sign_in("leaving@example.com", PASSWORD).await.expect(403);
        assert!(refused.body.contains("scheduled for deletion") && refused.body.contains("Keep my account"));
        browser.get("/account").await.expect(303);
        // A wrong password learns nothing of it.
        let wrong = browser.sign_in("leaving@example.com", "wrong password!").await.expect(401);
        assert!(!wrong.body.contains("deletion"));
    }

    async fn fifty_parallel_wrong_passwords_get_no_more_than_the_limit_past_the_throttle(world: World) {
        let base = world.serve().await;
        Browser::new(&base).sign_up("target@example.com", PASSWORD).await;
        let attacker = std::sync::Arc::new(Browser::new(&base));
        attacker.get("/sign-in").await.expect(200);
        let mut guesses = tokio::task::JoinSet::new();
        for attempt in 0..50 {
            let attacker = attacker.clone();
            guesses.spawn(async move { attacker.sign_in("target@example.com", &format!("guess number {attempt}")).await.status });
        }
        let statuses = guesses.join_all().await;
        let checked = statuses.iter().filter(|status| **status == 401).count();
        let throttled = statuses.iter().filter(|status| **status == 429).count();
        assert_eq!(checked + throttled, 50, "{statuses:?}");
        assert!(checked <= MAX_FAILURES_PER_EMAIL as usize, "{checked} guesses were checked: {statuses:?}");
    }

    async fn fifty_parallel_wrong_codes_get_no_more_than_the_limit_past_the_throttle(world: World) {
        let browser = std::sync::Arc::new(Browser::new(&world.serve().await));
        let email = "codes@example.com";
        browser.sign_up(email, PASSWORD).await;
        browser.post("/account/two-factor/setup", &[]).await.expect(200);
        let code = current_code(&world, email).await;
        browser.post("/account/two-factor/confirm", &[("code", &code)]).await.expect(200);
        browser.post("/sign-out", &[]).await.expect(303);
        browser.sign_in(email, PASSWORD).await.expect(303);
        let mut guesses = tokio::task::JoinSet::new();
        for attempt in 0..50 {
            let browser = browser.clone();
            guesses.spawn(async move { browser.post("/sign-in/second-factor", &[("code", &format!("{attempt:06}"))]).await.status });
        }
        let statuses = guesses.join_all().await;
        // A guess may be right by chance (one in 20,000 for 50): then it signs in (303).
        let checked = statuses.iter().filter(|status| matches!(**status, 401 | 303)).count();
        assert_eq!(checked + statuses.iter().filter(|status| **status == 429).count(), 50, "{statuses:?}");
        assert!(checked <= MAX_SECOND_FACTOR_FAILURES as usize, "{checked} codes were checked: {statuses:?}");
    }

    async fn sign_ups_and_reset_requests_are_throttled_per_client_network(world: World) {
        let browser = Browser::new(&world.serve().await);
        for n in 0..MAX_SIGN_UPS_PER_IP {
            browser.post("/sign-up", &[("email", &format!("bulk{n}@example.com")), ("password", PASSWORD)]).await.expect(200);
        }
        let refused = browser.post("/sign-up", &[("email", "one-more@example.com"), ("password", PASSWORD)]).await.expect(429);
        assert!(refused.body.contains("Too many attempts"));
        assert!(accounts::find_user_by_email(&world.db, "one-more@example.com").await.unwrap().is_none());

        // Reset requests: three per address, whoever asks, so nobody floods a mailbox…
        for _ in 0..MAX_RESET_REQUESTS_PER_EMAIL {
            browser.post("/forgot-password", &[("email", "bulk0@example.com")]).await.expect(200);
        }
        browser.post("/forgot-password", &[("email", "bulk0@example.com")]).await.expect(429);
        // …and five per network, known address or not.
        browser.post("/forgot-password", &[("email", "unknown@example.com")]).await.expect(200);
        browser.post("/forgot-password", &[("email", "unknown2@example.com")]).await.expect(429);
        world.clock.advance(THROTTLE_WINDOW_MS + 1);
        browser.post("/forgot-password", &[("email", "unknown@example.com")]).await.expect(200);
    }

    async fn password_hashing_does_not_stall_siteverify(world: World) {
        let base = world.serve().await;
        let site = world.create_project(quick_project("busy")).await;
        let token = world.verification_token(site.site_key()).await;
        let browser = std::sync::Arc::new(Browser::new(&base));
        browser.get("/sign-in").await.expect(200);
        // Sixteen sign-ins at once (unknown addresses: each still costs an argon2 hash against
        // a dummy, or they would all be answered at once and this test would fail), on a
        // runtime of two worker threads. Were hashing on those threads, siteverify would wait
        // for all of them; on the bounded blocking pool it answers while they queue.
        let mut sign_ins = tokio::task::JoinSet::new();
        for n in 0..16 {
            let browser = browser.clone();
            sign_ins.spawn(async move { browser.sign_in(&format!("nobody{n}@example.com"), PASSWORD).await.status });
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let verified = reqwest_post_form(&format!("{base}/siteverify"), &[("secret", &site.secret), ("response", &token)]).await;
        assert_eq!(verified["success"], true, "{verified}");
        let mut finished = Vec::new();
        while let Some(status) = sign_ins.try_join_next() {
            finished.push(status.unwrap());
        }
        assert!(finished.len() < 16, "siteverify answered while sign-ins were still being hashed");
        finished.extend(sign_ins.join_all().await);
        assert!(finished.iter().all(|status| *status == 401), "{finished:?}");
    }

    async fn the_client_ip_comes_from_x_forwarded_for_only_behind_a_trusted_proxy(world: World) {
        // Without a trusted proxy, a forged X-Forwarded-For changes nothing: one client.
        let direct = world.serve().await;
        let forged = |n: i64| format!("198.51.100.{n}");
        for n in 0..MAX_SIGN_UPS_PER_IP {
            post_form_from(&direct, &forged(n), "/sign-up", &[("email", &format!("d{n}@example.com")), ("password", PASSWORD)]).await.expect(200);
        }
        post_form_from(&direct, &forged(99), "/sign-up", &[("email", "d99@example.com"), ("password", PASSWORD)]).await.expect(429);

        // Behind a trusted proxy (here the test itself, on 127.0.0.1), each forwarded client
        // is counted on its own.
        let state = world.state().with(|state| {
            state.web = state.web.clone().behind("127.0.0.1".parse().unwrap());
        });
        let proxied = serve_control_plane(state).await;
        for n in 0..=MAX_SIGN_UPS_PER_IP {
            post_form_from(&proxied, &forged(n), "/sign-up", &[("email", &format!("p{n}@example.com")), ("password", PASSWORD)]).await.expect(200);
        }
        // An IPv6 client is one client for its whole /64.
        for n in 0..MAX_SIGN_UPS_PER_IP {
            post_form_from(&proxied, &format!("2001:db8:7:7::{n:x}"), "/sign-up", &[("email", &format!("v{n}@example.com")), ("password", PASSWORD)])
                .await
                .expect(200);
        }
        post_form_from(&proxied, "2001:db8:7:7:ffff::1", "/sign-up", &[("email", "v-last@example.com"), ("password", PASSWORD)]).await.expect(429);
        post_form_from(&proxied, "2001:db8:7:8::1", "/sign-up", &[("email", "v-next@example.com"), ("password", PASSWORD)]).await.expect(200);
    }

    async fn adding_a_passkey_needs_a_confirmed_address_and_a_recent_password(world: World) {
        let browser = Browser::new(&world.serve().await);
        let empty = serde_json::json!({});
        let start = || browser.post_json("/account/passkeys/register/start", &empty, true);

        // Signed in with the password but the address not confirmed: no passkey yet.
        browser.post("/sign-up", &[("email", "pk@example.com"), ("password", PASSWORD)]).await.expect(200);
        browser.sign_in("pk@example.com", PASSWORD).await.expect(303);
        let (status, answer) = start().await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("passkey")), "{answer}");
        assert!(browser.get("/account").await.expect(200).body.contains("Confirm your email address before adding a passkey."));

        // The emailed link confirms the address and signs in, but proves no password: a
        // stolen inbox alone does not plant a passkey.
        let link = link_with(&world.email_links("pk@example.com"), "/verify-email?token=");
        let elsewhere = Browser::new(&browser_base(&browser));
        elsewhere.get(&local(&link)).await.expect(200);
        let (status, answer) = elsewhere.post_json("/account/passkeys/register/start", &serde_json::json!({}), true).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("password")), "{answer}");
        let account = elsewhere.get("/account").await.expect(200);
        assert!(account.body.contains("/account/confirm-identity") && !account.body.contains("data-passkey=\"register\""));
        elsewhere.post("/account/confirm-identity", &[("password_or_code", "not the password")]).await.expect(401);
        elsewhere.post("/account/confirm-identity", &[("password_or_code", PASSWORD)]).await.expect(200);
        assert_eq!(elsewhere.post_json("/account/passkeys/register/start", &serde_json::json!({}), true).await.0, 200);

        // The password sign-in counts as recent, for ten minutes.
        assert_eq!(start().await.0, 200);
        world.clock.advance(humanproof_control_plane::accounts::RECENT_AUTHENTICATION_MS + 1);
        assert_eq!(start().await.1["error"]["field"], "password");

        // Confirming is throttled like signing in: a stolen session cannot guess the password.
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            browser.post("/account/confirm-identity", &[("password_or_code", "a wrong guess!")]).await.expect(401);
        }
        browser.post("/account/confirm-identity", &[("password_or_code", PASSWORD)]).await.expect(429);
    }

    async fn a_password_reset_pauses_passkeys_added_since_and_new_factors_are_announced(world: World) {
        let browser = Browser::new(&world.serve().await);
        let email = "owner@example.com";
        browser.sign_up(email, PASSWORD).await;
        let (user, _) = accounts::find_user_by_email(&world.db, email).await.unwrap().unwrap();

        // Turning on TOTP is announced by email.
        browser.post("/account/two-factor/setup", &[]).await.expect(200);
        let code = current_code(&world, email).await;
        browser.post("/account/two-factor/confirm", &[("code", &code)]).await.expect(200);
        assert!(world.last_email(email).contains("two-factor authentication with an authenticator app"));
        browser.post("/account/two-factor/disable", &[("password", PASSWORD)]).await.expect(303);

        // An intruder's passkey, added after the password was set (stored as registration does).
        world.clock.advance(60_000);
        passkeys::insert(&world.db, "intruder-key", &user.id, "Intruder", "{}", world.clock.now_ms()).await.unwrap();
        assert!(passkeys::has_any(&world.db, &user.id).await.unwrap());
        world.clock.advance(1_000);

        // The owner resets the password: sessions end, the passkey is paused.
        Browser::new(&browser_base(&browser)).post("/forgot-password", &[("email", email)]).await.expect(200);
        let reset = link_with(&world.email_links(email), "/reset-password?token=");
        let token = reset.split("token=").nth(1).unwrap();
        let done = browser.post("/reset-password", &[("token", token), ("password", "a brand new password")]).await.expect(200);
        assert!(done.body.contains("Passkeys added since your previous password are paused"), "{}", done.body);
        assert!(!passkeys::has_any(&world.db, &user.id).await.unwrap(), "a paused passkey signs in to nothing");
        assert_eq!(browser.get("/account").await.expect(303).location.as_deref(), Some("/sign-in"));

        // Signed in again (the password alone: the paused passkey is no second factor), the
        // owner sees it and decides.
        browser.sign_in(email, "a brand new password").await.expect(303);
        let account = browser.get("/account").await.expect(200);
        assert!(account.body.contains("Paused after a password reset"), "{}", account.body);
        browser.post("/account/passkeys/intruder-key/confirm", &[]).await.expect(303);
        assert!(passkeys::has_any(&world.db, &user.id).await.unwrap());
        assert!(world.last_email(email).contains("Intruder"), "confirming is announced like adding");
        // A passkey older than the password is left alone by the next reset.
        world.clock.advance(60_000);
        Browser::new(&browser_base(&browser)).post("/forgot-password", &[("email", email)]).await.expect(200);
        let reset = link_with(&world.email_links(email), "/reset-password?token=");
        let token = reset.split("token=").nth(1).unwrap();
        let done = browser.post("/reset-password", &[("token", token), ("password", "yet another password")]).await.expect(200);
        assert!(!done.body.contains("paused"), "{}", done.body);
        assert!(passkeys::has_any(&world.db, &user.id).await.unwrap());
    }

    async fn pages_carry_security_headers_and_cookies_are_httponly(world: World) {
        let base = world.serve().await;
        let response = reqwest_get(&format!("{base}/sign-in")).await;
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(header("content-security-policy").contains("script-src 'self'"));
        assert_eq!(header("x-frame-options"), "DENY");
        let cookie = header("set-cookie");
        assert!(cookie.starts_with("hp_csrf=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");

        // Over https the CSRF cookie is `__Host-` prefixed, Secure, and still what forms check.
        let state = world.state().with(|state| {
            state.web = WebConfig::new("https://dashboard.example", "https://edge.example", true);
        });
        let https = serve_control_plane(state).await;
        let response = reqwest_get(&format!("{https}/sign-in")).await;
        let cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
        assert!(cookie.starts_with("__Host-hp_csrf=") && cookie.contains("; Secure") && cookie.contains("Path=/"), "{cookie}");
        assert!(!cookie.contains("Domain="), "{cookie}");
        let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
        let http = humanproof_control_plane::http::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let form = |cookie_name: &str| {
            http.post(format!("{https}/sign-in"))
                .header("cookie", format!("{cookie_name}={token}"))
                .form(&[("email", "x@example.com"), ("password", PASSWORD), ("csrf", token.as_str())])
                .send()
        };
        assert_eq!(form("__Host-hp_csrf").await.unwrap().status(), 401, "the prefixed cookie passes the CSRF check");
        assert_eq!(form("hp_csrf").await.unwrap().status(), 403, "an unprefixed one does not, over https");
    }
}

/// The current TOTP code of a user, computed from the stored (sealed) secret as their
/// authenticator app would from the key it was shown.
async fn current_code(world: &World, email: &str) -> String {
    let (user, _) = accounts::find_user_by_email(&world.db, email)
        .await
        .unwrap()
        .unwrap();
    let (sealed, _) = accounts::totp_secret(&world.db, &user.id)
        .await
        .unwrap()
        .unwrap();
    let secret = totp::open(&world.master, &sealed).unwrap();
    totp::code(&secret, totp::step_at(world.clock.now_ms()))
}

fn browser_base(browser: &Browser) -> String {
    browser.base().to_owned()
}

async fn reqwest_post_form(url: &str, fields: &[(&str, &str)]) -> serde_json::Value {
    humanproof_control_plane::http::client()
        .post(url)
        .form(fields)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Posts a dashboard form as a client behind `X-Forwarded-For: forwarded_for`.
async fn post_form_from(
    base: &str,
    forwarded_for: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> Page {
    let browser = Browser::new(base);
    browser.get("/sign-in").await.expect(200);
    let mut fields = fields.to_vec();
    let csrf = browser.cookie("hp_csrf").unwrap();
    fields.push(("csrf", &csrf));
    browser
        .post_with_header(path, &fields, ("x-forwarded-for", forwarded_for))
        .await
}

async fn reqwest_get(url: &str) -> reqwest::Response {
    humanproof_control_plane::http::client()
        .get(url)
        .send()
        .await
        .unwrap()
}
