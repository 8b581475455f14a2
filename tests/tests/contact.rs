//! The public contact form, served as `serve` serves it, on SQLite and PostgreSQL: a message
//! with a token from HumanProof's own widget reaches its topic's inbox once and is
//! acknowledged without its text; hostile input is refused with a code and the form kept;
//! a message the mail server refused is kept and forwarded later; a signed-in sender sees
//! their messages and nobody else's; messages go after 90 days or with the sender's account.
//! And the public pages the footer links, the API reference among them.

use humanproof_control_plane::contact::{self, ContactForm, Topic};
use humanproof_control_plane::db::accounts;
use humanproof_control_plane::db::retention::{self, SUPPORT_MESSAGE_TTL_MS};
use humanproof_control_plane::db::support;
use humanproof_control_plane::mail::Mailer;
use humanproof_tests::*;

const DPA_INBOX: &str = "dpa@ops.example";
const SUPPORT_INBOX: &str = "help@ops.example";
const SENDER: &str = "dpo@customer.example";

/// A project of the service's own that protects its contact form, and the form's settings.
async fn contact_form(world: &World) -> (TestProject, ContactForm) {
    let project = world.create_project(quick_project("contact form")).await;
    let form = ContactForm {
        site_key: project.site_key().to_owned(),
        secret: project.secret.clone(),
        inboxes: ContactForm::parse_inboxes(&format!("dpa={DPA_INBOX},support={SUPPORT_INBOX}"))
            .unwrap(),
    };
    (project, form)
}

/// The control plane with the contact form, served through the production serve function.
async fn serve_with(world: &World, form: &ContactForm) -> Browser {
    let state = world
        .state()
        .with(|state| state.web.contact = Some(form.clone()));
    Browser::new(&serve_control_plane(state).await)
}

async fn stored(world: &World) -> Vec<support::SupportMessage> {
    support::list(&world.db, None, 0).await.unwrap()
}

on_both_databases! {
    async fn a_dpa_request_reaches_the_dpa_inbox_once_and_is_acknowledged_without_its_text(world: World) {
        let (site, form) = contact_form(&world).await;
        let browser = serve_with(&world, &form).await;

        // The page offers the configured topics, embeds the widget for the form's project,
        // and its policy lets the widget's script, wasm, workers and edge calls in.
        let page = reqwest::get(format!("{}/contact?topic=dpa", browser.base())).await.unwrap();
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        let body = page.text().await.unwrap();
        assert!(csp.contains("script-src 'self' http://127.0.0.1:8787 'wasm-unsafe-eval'"), "{csp}");
        assert!(csp.contains("connect-src 'self' http://127.0.0.1:8787; worker-src blob:;"), "{csp}");
        assert!(body.contains(&format!("data-sitekey=\"{}\"", site.site_key())), "{body}");
        assert!(body.contains("<option value=\"dpa\" selected>"), "{body}");
        assert!(!body.contains("value=\"sales\""), "a topic without an inbox is not offered");
        // Other pages keep the strict policy.
        let privacy = reqwest::get(format!("{}/privacy", browser.base())).await.unwrap();
        assert!(!privacy.headers()["content-security-policy"].to_str().unwrap().contains("wasm"));

        let token = world.verification_token(site.site_key()).await;
        let text = "Please send us your DPA.\nWe are Customer GmbH, Berlin.";
        let fields = [
            ("topic", "dpa"), ("email", SENDER), ("name", "Dana Protection"),
            ("message", text), ("humanproof-token", token.as_str()),
        ];
        let sent = browser.post("/contact", &fields).await.expect(303);
        let location = sent.location.unwrap();
        let reference = location.strip_prefix("/contact/sent?reference=").unwrap().to_owned();
        let confirmation = browser.get(&location).await.expect(200);
        assert!(confirmation.body.contains(&reference));

        let messages = stored(&world).await;
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(
            (message.id.as_str(), message.topic.as_str(), message.email.as_str(), message.body.as_str()),
            (reference.as_str(), "dpa", SENDER, text)
        );
        assert!(message.forwarded_at.is_some() && message.user_id.is_none());

        // The DPA inbox has it, with the sender to reply to; the support inbox has nothing.
        let forwarded = world.last_email(DPA_INBOX);
        assert!(forwarded.contains(&format!("Reply-To: {SENDER}")), "{forwarded}");
        assert!(forwarded.contains("We are Customer GmbH, Berlin.") && forwarded.contains(&reference));
        assert!(last_email_in(&world.outbox, SUPPORT_INBOX).is_none());
        // The sender's acknowledgement names the topic and reference, and never the text.
        let acknowledgement = world.last_email(SENDER);
        assert!(acknowledgement.contains(&reference) && acknowledgement.contains("DPA request"));
        assert!(!acknowledgement.contains("Customer GmbH"), "{acknowledgement}");

        // The token was used: sending it again is refused, with what was typed kept.
        let again = browser.post("/contact", &fields).await.expect(400);
        assert!(again.body.contains("data-code=\"verification_failed\""), "{}", again.body);
        assert!(again.body.contains("We are Customer GmbH, Berlin.") && again.body.contains(SENDER));
        assert_eq!(stored(&world).await.len(), 1);
        assert_eq!(emails_in(&world.outbox, DPA_INBOX).len(), 1);
    }

    async fn hostile_submissions_are_refused_with_a_code_and_store_and_send_nothing(world: World) {
        let (site, form) = contact_form(&world).await;
        let browser = serve_with(&world, &form).await;
        let token = world.verification_token(site.site_key()).await;
        let other = world.create_project(quick_project("someone else's site")).await;
        let foreign = world.verification_token(other.site_key()).await;
        let long = "m".repeat(10_001);
        let valid = |name: &'static str, value: &'static str| -> Vec<(&'static str, String)> {
            let mut fields = vec![
                ("topic", "dpa".to_owned()), ("email", SENDER.to_owned()), ("name", String::new()),
                ("message", "Hello".to_owned()), ("humanproof-token", "placeholder".to_owned()),
            ];
            fields.retain(|(field, _)| *field != name);
            if !value.is_empty() {
                fields.push((name, value.to_owned()));
            }
            fields
        };
        let with_token = |mut fields: Vec<(&'static str, String)>, token: &str| {
            for field in &mut fields {
                if field.0 == "humanproof-token" && field.1 == "placeholder" {
                    field.1 = token.to_owned();
                }
            }
            fields
        };
        let cases = [
            (valid("humanproof-token", ""), "verification_failed"),
            (valid("humanproof-token", "forged.token"), "verification_failed"),
            (with_token(valid("topic", "sales"), &token), "unknown_topic"),
            (with_token(valid("topic", "../etc"), &token), "unknown_topic"),
            (with_token(valid("email", "dpo@customer.example\r\nBcc: all@example.com"), &token), "invalid_email"),
            (with_token(valid("name", "a\nBcc: x"), &token), "name_too_long"),
            (with_token(valid("message", ""), &token), "empty_message"),
            (with_token(vec![("message", long.clone()), ("topic", "dpa".into()), ("email", SENDER.into())], &token), "message_too_long"),
            // A genuine token of another project is not one for this form.
            (with_token(valid("humanproof-token", "placeholder"), &foreign), "verification_failed"),
        ];
        for (fields, code) in cases {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = browser.post("/contact", &fields).await.expect(400);
            assert!(page.body.contains(&format!("data-code=\"{code}\"")), "{code}: {}", page.body);
        }
        // Without the CSRF token, or with nothing at all, nothing gets past the door.
        browser.post_raw("/contact", &[("topic", "dpa")]).await.expect(403);
        browser.post("/contact", &[]).await.expect(400);
        assert!(stored(&world).await.is_empty());
        assert!(emails_in(&world.outbox, DPA_INBOX).is_empty());
        assert!(emails_in(&world.outbox, SENDER).is_empty());
        // The refusals did not use the token up: it still sends one message.
        let fields = [("topic", "dpa"), ("email", SENDER), ("message", "Hello"), ("humanproof-token", token.as_str())];
        browser.post("/contact", &fields).await.expect(303);
        assert_eq!(stored(&world).await.len(), 1);
    }

    async fn a_message_the_mail_server_refused_is_kept_and_forwarded_later(world: World) {
        let (_, form) = contact_form(&world).await;
        let now = world.clock.now_ms();
        let down = Mailer::smtp("smtp://127.0.0.1:9", "no-reply@humanproof.example").unwrap();
        let message = contact::check(&form, "support", SENDER, "", "Is anyone there?").unwrap();
        let kept = contact::receive(&world.db, &down, &form, message, None, "en", now).await.unwrap();
        assert_eq!(kept.forwarded_at, None);
        assert_eq!(support::unforwarded(&world.db).await.unwrap(), [kept]);

        let up = Mailer::Outbox(world.outbox.clone());
        assert_eq!(contact::forward_pending(&world.db, &up, &form, now + 1).await.unwrap(), 1);
        assert!(world.last_email(SUPPORT_INBOX).contains("Is anyone there?"));
        // Forwarded once: the next run finds nothing to send.
        assert_eq!(contact::forward_pending(&world.db, &up, &form, now + 2).await.unwrap(), 0);
        assert_eq!(emails_in(&world.outbox, SUPPORT_INBOX).len(), 1);
        assert_eq!(stored(&world).await[0].forwarded_at, Some(now + 1));
    }

    async fn a_signed_in_sender_sees_their_messages_and_nobody_else_does(world: World) {
        let (site, form) = contact_form(&world).await;
        let ada = serve_with(&world, &form).await;
        ada.sign_up("ada@customer.example", "a long enough passphrase").await;
        // The form knows who is writing.
        assert!(ada.get("/contact").await.expect(200).body.contains("value=\"ada@customer.example\""));
        let token = world.verification_token(site.site_key()).await;
        let fields = [
            ("topic", "support"), ("email", "ada@customer.example"),
            ("message", "Where is the invoice?"), ("humanproof-token", token.as_str()),
        ];
        ada.post("/contact", &fields).await.expect(303);
        let page = ada.get("/contact").await.expect(200);
        assert!(page.body.contains("id=\"sent-messages\"") && page.body.contains("Where is the invoice?"));

        let grace = Browser::new(ada.base());
        grace.sign_up("grace@other.example", "a long enough passphrase").await;
        let page = grace.get("/contact").await.expect(200);
        assert!(!page.body.contains("Where is the invoice?") && !page.body.contains("sent-messages"));
        assert!(!Browser::new(ada.base()).get("/contact").await.expect(200).body.contains("Where is the invoice?"));

        // The account's export carries it, and the account's deletion takes it along.
        let export = ada.get("/account/export").await.expect(200);
        assert!(export.body.contains("Where is the invoice?"), "{}", export.body);
        let (user, _) = accounts::find_user_by_email(&world.db, "ada@customer.example").await.unwrap().unwrap();
        accounts::delete_account(&world.db, &user, world.clock.now_ms()).await.unwrap();
        assert!(stored(&world).await.is_empty());
    }

    async fn contact_messages_go_ninety_days_after_they_arrive(world: World) {
        let (_, form) = contact_form(&world).await;
        let mailer = Mailer::Outbox(world.outbox.clone());
        let now = world.clock.now_ms();
        for (at, text) in [(now, "old"), (now + 1000, "newer")] {
            let message = contact::check(&form, "dpa", SENDER, "", text).unwrap();
            contact::receive(&world.db, &mailer, &form, message, None, "en", at).await.unwrap();
        }
        let report = retention::apply(&world.db, now + SUPPORT_MESSAGE_TTL_MS).await.unwrap();
        assert_eq!(report.support_messages_deleted, 0);
        let report = retention::apply(&world.db, now + SUPPORT_MESSAGE_TTL_MS + 1).await.unwrap();
        assert_eq!(report.support_messages_deleted, 1);
        let left: Vec<String> = stored(&world).await.into_iter().map(|m| m.body).collect();
        assert_eq!(left, ["newer"]);
    }
}

/// The form is off until configured, and says so instead of accepting what it cannot deliver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_the_form_is_off() {
    let world = World::new(Backend::Sqlite).await;
    let browser = Browser::new(&world.serve().await);
    let page = browser.get("/contact").await.expect(200);
    assert!(page.body.contains("id=\"contact-off\"") && !page.body.contains("humanproof-widget"));
    let fields = [("topic", "dpa"), ("email", SENDER), ("message", "Hello")];
    browser.post("/contact", &fields).await.expect(404);
    assert!(stored(&world).await.is_empty());
    assert!(ContactForm::parse_inboxes("dpa=legal@example.com").unwrap()[0].0 == Topic::Dpa);
}

/// Every page's footer links the public pages, and each of them answers, the API reference
/// with every operation of the OpenAPI document, under the dashboard's strict policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_pages_are_linked_from_every_page_and_answer() {
    let world = World::new(Backend::Sqlite).await;
    let base = world.serve().await;
    let sign_in = reqwest::get(format!("{base}/sign-in"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for path in [
        "/docs",
        "/how-it-works",
        "/privacy",
        "/dpa",
        "/api-reference",
        "/contact",
    ] {
        assert!(
            sign_in.contains(&format!("href=\"{path}\"")),
            "the footer links {path}"
        );
        let page = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self';"),
            "{path}: {csp}"
        );
    }
    // The docs are the README, each section where the dashboard's links expect it.
    let docs = reqwest::get(format!("{base}/docs"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for anchor in ["embedding-the-widget", "siteverify-your-backend", "plans"] {
        assert!(docs.contains(&format!(" id=\"{anchor}\"")), "{anchor}");
    }
    assert!(
        docs.contains("href=\"#siteverify-your-backend\""),
        "the contents list"
    );
    // minijinja escapes `/` in text.
    let reference = reqwest::get(format!("{base}/api-reference"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .replace("&#x2f;", "/");
    for operation in [
        "GET /projects",
        "POST /projects",
        "PATCH /projects/{id}",
        "GET /projects/{id}/stats",
        "GET /billing",
    ] {
        assert!(
            reference.contains(&format!("<code>{operation}</code>")),
            "{operation}"
        );
    }
    assert!(reference.contains("id=\"schema-ProjectInput\""));
}
