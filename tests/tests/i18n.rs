//! The dashboard in the visitor's language, on SQLite and on PostgreSQL: a signed-in user's
//! preference wins, signed-out visitors get the best match for their `Accept-Language`, and
//! sign-up keeps that language for the account and its first email.

use humanproof_control_plane::db::accounts;
use humanproof_tests::*;

const PASSWORD: &str = "correct horse battery";

/// A client that sends `Accept-Language` on every request, as a browser does.
fn browser_speaking(accept_language: &'static str) -> reqwest::Client {
    let headers = reqwest::header::HeaderMap::from_iter([(
        reqwest::header::ACCEPT_LANGUAGE,
        reqwest::header::HeaderValue::from_static(accept_language),
    )]);
    humanproof_control_plane::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

on_both_databases! {
    async fn a_user_who_prefers_german_gets_german_pages(world: World) {
        let browser = Browser::new(&world.serve().await);
        let org = browser.sign_up("ada@example.com", PASSWORD).await;
        let english = browser.get(&format!("/orgs/{org}/projects")).await.expect(200);
        assert!(english.body.contains(r#"<html lang="en">"#) && english.body.contains("<h1>Projects</h1>"), "{}", english.body);

        // Saved, then the account page (after the redirect) in the new language.
        browser.post("/account/language", &[("language", "de")]).await.expect(303);
        let saved = browser.get("/account").await.expect(200);
        assert!(saved.body.contains(r#"<html lang="de">"#), "{}", saved.body);
        assert!(saved.body.contains("Sprache gespeichert."), "the notice is translated too: {}", saved.body);
        assert!(saved.body.contains(r#"<option value="de" selected>Deutsch</option>"#), "{}", saved.body);

        let projects = browser.get(&format!("/orgs/{org}/projects")).await.expect(200);
        assert!(projects.body.contains(r#"<html lang="de">"#), "{}", projects.body);
        assert!(projects.body.contains("<h1>Projekte</h1>"), "{}", projects.body);
        assert!(projects.body.contains("(Inhaber)"), "role names are translated: {}", projects.body);

        browser.post("/account/confirm-identity", &[("password_or_code", PASSWORD)]).await.expect(200);
        // The passkey script shows its refusals as they come: in German too.
        let (status, answer) = browser.post_json("/account/passkeys/register/finish", &serde_json::json!({ "ceremony": "spent", "credential": {} }), true).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("ceremony")), "{answer}");
        assert_eq!(answer["error"]["message"], "Diese Passkey-Abfrage ist abgelaufen. Versuchen Sie es erneut.");

        // A refusal that Rust hands to the template arrives in German as well, values and all.
        let refused = browser.post(&format!("/orgs/{org}/clients"), &[("name", "")]).await.expect(400);
        assert!(refused.body.contains("mit 1 bis 100 Zeichen"), "{}", refused.body);
        let bad_domain = [("name", "Shop"), ("production_domains", "https://shop.example/"), ("preset", "balanced"), ("risk_mode", "observe"),
            ("widget_variant", "checkbox"), ("widget_theme", "auto"), ("widget_language", "auto"), ("widget_size", "normal"),
            ("widget_branding", "full"), ("active", "on")];
        let refused = browser.post(&format!("/orgs/{org}/projects/new"), &bad_domain).await.expect(400);
        assert!(refused.body.contains("Kein Hostname: &quot;https:&#x2f;&#x2f;shop.example&#x2f;&quot;"), "{}", refused.body);
    }

    async fn signed_out_visitors_get_their_browser_language(world: World) {
        let base = world.serve().await;
        let french = browser_speaking("fr-CA,fr;q=0.9,en;q=0.5");
        let page = french.get(format!("{base}/sign-in")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(r#"<html lang="fr">"#), "{page}");
        assert!(page.contains("<h1>Se connecter</h1>"), "{page}");
        assert!(page.contains("Mot de passe oublié ?"), "{page}");

        let unsupported = browser_speaking("ja-JP,ja;q=0.9");
        let page = unsupported.get(format!("{base}/sign-in")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(r#"<html lang="en">"#) && page.contains("<h1>Sign in</h1>"), "English is the fallback: {page}");

        // Pages built outside the templates follow the header too.
        let forged = french.post(format!("{base}/sign-in")).form(&[("email", "a@example.com")]).send().await.unwrap();
        assert_eq!(forged.status(), 403);
        assert!(forged.text().await.unwrap().contains("Ce formulaire a expiré"));
    }

    async fn sign_up_keeps_the_browser_language_for_the_account_and_its_email(world: World) {
        let base = world.serve().await;
        let german = browser_speaking("de-AT,de;q=0.9");
        let first = german.get(format!("{base}/sign-up")).send().await.unwrap();
        let csrf = first
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok()?.split(';').next()?.strip_prefix("hp_csrf="))
            .next()
            .unwrap()
            .to_owned();
        let signed_up = german
            .post(format!("{base}/sign-up"))
            .header("cookie", format!("hp_csrf={csrf}"))
            .form(&[("email", "lena@example.com"), ("password", PASSWORD), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_up.status(), 200);

        let (user, _) = accounts::find_user_by_email(&world.db, "lena@example.com").await.unwrap().unwrap();
        assert_eq!(user.language, "de");
        let email = world.last_email("lena@example.com");
        assert!(email.contains("Subject: Bestätigen Sie Ihr HumanProof-Konto"), "{email}");
        assert!(email.contains("innerhalb von 24 Stunden diesen Link"), "{email}");
        assert!(email.contains("/verify-email?token="), "the link survives translation: {email}");
    }

    async fn invitations_speak_the_invitee_s_language_else_the_inviter_s(world: World) {
        let base = world.serve().await;
        let owner = Browser::new(&base);
        let org = owner.sign_up("ada@example.com", PASSWORD).await;
        world.on_plan(&org, "business").await;
        owner.post("/account/language", &[("language", "de")]).await.expect(303);
        let french = Browser::new(&base);
        french.sign_up("marie@example.com", PASSWORD).await;
        french.post("/account/language", &[("language", "fr")]).await.expect(303);

        owner.post(&format!("/orgs/{org}/members"), &[("email", "marie@example.com"), ("role", "viewer")]).await.expect(303);
        let to_marie = world.last_email("marie@example.com");
        assert!(to_marie.contains("Vous êtes invité à rejoindre") && to_marie.contains("en tant que lecteur"), "the invitee's own language: {to_marie}");

        owner.post(&format!("/orgs/{org}/members"), &[("email", "new@example.com"), ("role", "developer")]).await.expect(303);
        let to_new = world.last_email("new@example.com");
        assert!(to_new.contains("Sie sind eingeladen") && to_new.contains("als Entwickler beizutreten"), "no account: the inviter's language: {to_new}");
        assert!(to_new.contains("/invitations/accept?token="), "{to_new}");
    }
}
