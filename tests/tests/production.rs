//! The production binary, as an operator runs it: `humanproof serve` is spawned as its own
//! process on SQLite and on PostgreSQL, and driven over HTTP the way a customer and their
//! backend would: sign up, confirm the address, sign in with a password and then a TOTP
//! code, make an API key and a project, verify a token, revoke outstanding tokens with the
//! CLI, pay for a plan through Stripe's stand-in and its webhook, check a VAT id against
//! VIES's stand-in, send a DPA request through the contact form and list it with the CLI,
//! and shut down on SIGTERM. Nothing here goes through an in-process router.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use humanproof_control_plane::clock::Clock;
use humanproof_control_plane::local::{StripeStandIn, ViesStandIn};
use humanproof_control_plane::plans::Catalogue;
use humanproof_control_plane::stripe::signature_header;
use humanproof_control_plane::{secrets, totp};
use humanproof_protocol::{MasterSecret, VerificationClaims};
use humanproof_tests::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const PASSWORD: &str = "correct horse battery";
const WEBHOOK_SECRET: &str = "whsec_production";
/// The keys of the project that protects `serve`'s own contact form, and its DPA inbox.
const CONTACT_SITE_KEY: &str = "hp_site_0c0ac7f00c0ac7f00c0ac7f0";
const CONTACT_SECRET: &str =
    "hp_secret_c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
const DPA_INBOX: &str = "legal@ops.example";

/// `target/debug/humanproof`, built once per test run by the same cargo that runs the tests.
fn humanproof_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = std::process::Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "humanproof-control-plane",
                "--bin",
                "humanproof",
            ])
            .status()
            .expect("cargo runs");
        assert!(built.success(), "building humanproof failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("debug/humanproof")
    })
}

/// A running `humanproof serve`.
struct Server {
    child: Child,
    base: String,
    /// `/metrics` on the operator's own address.
    metrics: String,
    database_url: String,
    outbox: PathBuf,
    log: tokio::task::JoinHandle<String>,
}

impl Server {
    /// Starts `serve` on the database, with Stripe's API and VIES at `stripe_api` and
    /// `vies_api` (their local stand-ins: neither can be reached from here).
    async fn start(database_url: String, stripe_api: &str, vies_api: &str) -> Self {
        let outbox = std::env::temp_dir()
            .join("humanproof-tests")
            .join(format!("serve-outbox-{}", secrets::new_id()));
        let mut child = Command::new(humanproof_binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .env("HUMANPROOF_DATABASE_URL", &database_url)
            .env("HUMANPROOF_MASTER_SECRET", MASTER_SECRET)
            .env("HUMANPROOF_OUTBOX_DIR", &outbox)
            .env("HUMANPROOF_PUBLIC_URL", "http://localhost:8080")
            .env("HUMANPROOF_STRIPE_SECRET_KEY", "sk_test_production")
            .env("HUMANPROOF_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("HUMANPROOF_STRIPE_API_BASE", format!("{stripe_api}/"))
            .env("HUMANPROOF_VIES_API_BASE", vies_api)
            .env("HUMANPROOF_CONTACT_SITE_KEY", CONTACT_SITE_KEY)
            .env("HUMANPROOF_CONTACT_SECRET", CONTACT_SECRET)
            .env(
                "HUMANPROOF_CONTACT_INBOXES",
                format!("dpa={DPA_INBOX},support=help@ops.example"),
            )
            // Request spans and responses, to check what a trace would reveal.
            .env("RUST_LOG", "info,tower_http=debug,sqlx=warn")
            .env_remove("HUMANPROOF_TRUSTED_PROXIES")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("humanproof serve starts");
        // `serve` logs to standard output; the line that says where it listens is among them.
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut early = String::new();
        let mut metrics = None;
        let base = loop {
            let line = stdout
                .next_line()
                .await
                .unwrap()
                .expect("serve prints where it listens");
            if let Some(base) = line.strip_prefix("listening on ") {
                break base.to_owned();
            }
            // Like the line above, printed rather than logged.
            if let Some(url) = line.strip_prefix("metrics on ") {
                metrics = Some(url.to_owned());
                continue;
            }
            early.push_str(&line);
            early.push('\n');
        };
        let metrics = metrics.expect("serve prints where its metrics are, before the rest");
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = tokio::spawn(async move {
            let mut log = early;
            while let Ok(Some(line)) = stdout.next_line().await {
                log.push_str(&line);
                log.push('\n');
            }
            // Nothing is expected here; whatever came is checked with the rest.
            while let Ok(Some(line)) = stderr.next_line().await {
                log.push_str(&line);
                log.push('\n');
            }
            log
        });
        Self {
            child,
            base,
            metrics,
            database_url,
            outbox,
            log,
        }
    }

    /// Links in the newest email to `to`, as paths on this server.
    fn email_links(&self, to: &str) -> Vec<String> {
        let text = last_email_in(&self.outbox, to).unwrap_or_else(|| panic!("no email to {to}"));
        text.split_whitespace()
            .filter_map(|word| word.strip_prefix("http://localhost:8080"))
            .map(str::to_owned)
            .collect()
    }

    /// The `humanproof` CLI against the same database.
    async fn cli(&self, args: &[&str]) -> Value {
        let output = Command::new(humanproof_binary())
            .args(args)
            .env("HUMANPROOF_DATABASE_URL", &self.database_url)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// A project for shop.example made with the CLI: its id, site key and backend secret.
    async fn create_project(&self, name: &str) -> (String, String, String) {
        let created = self
            .cli(&[
                "project",
                "create",
                "--name",
                name,
                "--production-domain",
                "shop.example",
            ])
            .await;
        let field = |name: &str| created[name].as_str().unwrap().to_owned();
        (field("project_id"), field("site_key"), field("secret"))
    }

    /// Sends SIGTERM, as an orchestrator does before it stops a replica.
    async fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(signalled.success());
    }

    /// SIGTERM, then the exit status and everything it logged.
    async fn stop(self) -> (std::process::ExitStatus, String) {
        self.terminate().await;
        self.stop_after_terminate().await
    }

    /// The exit status and everything it logged, once [`Self::terminate`] was sent.
    async fn stop_after_terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = tokio::time::timeout(std::time::Duration::from_secs(20), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        (status, self.log.await.unwrap())
    }
}

/// The database URL a fresh test database of this kind is reached at.
/// Closed here, so that the server is the only process with it open.
async fn fresh_database_url(backend: Backend) -> Option<String> {
    let (db, url) = fresh_db_url(backend).await?;
    db.close().await;
    Some(url)
}

/// RFC 4648 base32 (no padding), as an authenticator app reads the key it is shown.
fn base32_decode(text: &str) -> Vec<u8> {
    let (mut bits, mut buffer, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim().chars() {
        let value = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".find(c).expect("base32") as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// `POST /siteverify` on `base` as a site backend sends it: the status and the JSON answer.
async fn siteverify(base: &str, secret: &str, token: &str) -> (u16, Value) {
    let answer = humanproof_control_plane::http::client()
        .post(format!("{base}/siteverify"))
        .form(&[("secret", secret), ("response", token)])
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn the_production_binary_serves_customers_and_backends(backend: Backend) {
    let Some(database_url) = fresh_database_url(backend).await else {
        return;
    };
    let stripe = StripeStandIn::new(Clock::system(), &Catalogue::builtin());
    let stripe_api = serve_app(stripe.router()).await;
    let vies = ViesStandIn::new();
    vies.register("DE123456789", "Kunde GmbH", "Musterstraße 1, 10115 Berlin");
    let vies_api = serve_app(vies.router()).await;
    let server = Server::start(database_url, &stripe_api, &vies_api).await;
    stripe.deliver_webhooks_to(
        &format!("{}/billing/stripe/webhook", server.base),
        WEBHOOK_SECRET,
    );
    let browser = Browser::new(&server.base);

    // Sign up; the emailed link confirms the address and signs in.
    let email = "operator-test@example.com";
    let org = browser
        .sign_up_with(email, PASSWORD, async || {
            server
                .email_links(email)
                .into_iter()
                .find(|link| link.starts_with("/verify-email"))
                .unwrap()
        })
        .await;

    // The operator's view of plans and of this organisation's billing.
    let plans = server.cli(&["plans"]).await;
    let ids: Vec<&str> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|plan| plan["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["free", "starter", "pro", "business"]);
    let billing = server
        .cli(&["billing", "show", "--organisation-id", &org])
        .await;
    assert_eq!(
        (
            billing["plan"]["id"].as_str(),
            billing["status"].as_str(),
            billing["used_attempts"].as_u64()
        ),
        (Some("free"), Some("active"), Some(0))
    );

    // Billing through Stripe: checkout on the stand-in's page, its signed webhook back to
    // `serve`, and the plan in `billing show`; a forged delivery changes nothing; a downgrade
    // waits for the end of the period; a VAT id is checked against VIES.
    let billing_page = format!("/orgs/{org}/billing");
    let checkout = browser
        .post(
            &format!("{billing_page}/checkout"),
            &[("plan", "pro"), ("interval", "month")],
        )
        .await
        .expect(303)
        .location
        .unwrap();
    let stand_in = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let paid = stand_in.post(&checkout).send().await.unwrap();
    assert_eq!(paid.status().as_u16(), 303);
    let billing = server
        .cli(&["billing", "show", "--organisation-id", &org])
        .await;
    assert_eq!(
        (billing["plan"]["id"].as_str(), billing["interval"].as_str()),
        (Some("pro"), Some("month")),
        "{billing}"
    );
    let forged = json!({ "id": "evt_forged", "type": "customer.subscription.deleted", "created": now_ms() / 1000,
        "data": { "object": { "id": "sub_x", "object": "subscription" } } })
    .to_string();
    let refused = stand_in
        .post(format!("{}/billing/stripe/webhook", server.base))
        .header(
            "stripe-signature",
            signature_header("whsec_attacker", now_ms() / 1000, forged.as_bytes()),
        )
        .body(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    browser
        .post(
            &format!("{billing_page}/change"),
            &[("plan", "starter"), ("interval", "month")],
        )
        .await
        .expect(303);
    let billing = server
        .cli(&["billing", "show", "--organisation-id", &org])
        .await;
    assert_eq!(
        (
            billing["plan"]["id"].as_str(),
            billing["pending_change"]["plan"].as_str()
        ),
        (Some("pro"), Some("starter")),
        "{billing}"
    );
    browser
        .post(
            &format!("{billing_page}/vat"),
            &[("vat_id", "de 123.456.789")],
        )
        .await
        .expect(303);
    let page = browser.get(&billing_page).await.expect(200);
    assert!(
        page.body.contains("DE123456789") && page.body.contains("Kunde GmbH"),
        "{}",
        page.body
    );

    // Two-factor on, with the key the page shows.
    let setup = browser
        .post("/account/two-factor/setup", &[])
        .await
        .expect(200);
    let shown = setup
        .body
        .split("<code id=\"totp-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    let secret = base32_decode(shown);
    let step = totp::step_at(now_ms());
    browser
        .post(
            "/account/two-factor/confirm",
            &[("code", &totp::code(&secret, step - 1))],
        )
        .await
        .expect(200);
    browser.post("/sign-out", &[]).await.expect(303);

    // Password, then the code: the production wiring of sign-in (peer address and all).
    let first = browser.sign_in(email, PASSWORD).await.expect(303);
    assert_eq!(first.location.as_deref(), Some("/sign-in/second-factor"));
    browser
        .post(
            "/sign-in/second-factor",
            &[("code", &totp::code(&secret, step + 1))],
        )
        .await
        .expect(303);
    browser.get("/account").await.expect(200);

    // An API key from the dashboard, then a project through the API.
    let page = browser
        .post(
            &format!("/orgs/{org}/api-keys"),
            &[
                ("name", "deploy"),
                ("scope", "projects:read"),
                ("scope", "projects:write"),
            ],
        )
        .await
        .expect(303);
    let page = browser.get(&page.location.unwrap()).await.expect(200);
    let key = api_key_on_page(&page.body);
    let http = humanproof_control_plane::http::client();
    let created: Value = http
        .post(format!("{}/api/v1/projects", server.base))
        .bearer_auth(&key)
        .json(&json!({ "name": "Shop", "production_domains": ["shop.example"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project_id = created["project"]["id"].as_str().unwrap().to_owned();
    let site_key = created["project"]["site_key"].as_str().unwrap().to_owned();
    let backend_secret = created["secret"].as_str().unwrap().to_owned();

    // A verification token as the edge signs it, verified once by the backend.
    let mint = |key_version: u32| {
        let claims = VerificationClaims {
            d: 4,
            c: 80,
            ..verification_claims(&site_key, "shop.example", now_ms())
        };
        MasterSecret::new(MASTER_SECRET)
            .unwrap()
            .project_key(&project_id, key_version)
            .sign(&claims)
    };
    let siteverify = |token: String| {
        let (http, url, secret) = (
            http.clone(),
            format!("{}/siteverify", server.base),
            backend_secret.clone(),
        );
        async move {
            let answer = http
                .post(url)
                .form(&[("secret", secret.as_str()), ("response", token.as_str())])
                .send()
                .await
                .unwrap();
            let request_id = answer
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_owned());
            assert!(
                request_id.is_some_and(|id| id.len() == 32),
                "every answer carries a request id"
            );
            answer.json::<Value>().await.unwrap()
        }
    };
    let token = mint(1);
    assert_eq!(siteverify(token.clone()).await["success"], true);
    assert_eq!(
        siteverify(token.clone()).await["humanproof"]["reason"],
        "already_verified"
    );

    // The operator revokes outstanding tokens with the CLI, another process: old ones are
    // refused once the server's second-long memory of the project is up.
    let outstanding = mint(1);
    let revoked = server
        .cli(&["project", "revoke-tokens", "--project-id", &project_id])
        .await;
    assert_eq!(revoked["key_version"], 2);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        siteverify(outstanding).await["humanproof"]["reason"],
        "invalid_token"
    );
    assert_eq!(siteverify(mint(2)).await["success"], true);

    // The contact form, protected by a project of this very service (created as an operator
    // would, before the first message): a DPA request with that project's token reaches the
    // DPA inbox, and the operators' CLI lists it.
    let db = humanproof_control_plane::db::Db::connect(&server.database_url)
        .await
        .unwrap();
    let contact = humanproof_control_plane::db::projects::insert(
        &db,
        None,
        &quick_project("contact form"),
        CONTACT_SITE_KEY,
        CONTACT_SECRET,
        now_ms(),
    )
    .await
    .unwrap();
    db.pool().close().await;
    let contact_token = MasterSecret::new(MASTER_SECRET)
        .unwrap()
        .project_key(&contact.id, contact.key_version)
        .sign(&verification_claims(
            CONTACT_SITE_KEY,
            "localhost",
            now_ms(),
        ));
    let sender = "dpo@customer-of-production.example";
    Browser::new(&server.base)
        .post(
            "/contact",
            &[
                ("topic", "dpa"),
                ("email", sender),
                ("message", "Please send us your DPA."),
                ("humanproof-token", &contact_token),
            ],
        )
        .await
        .expect(303);
    let forwarded = last_email_in(&server.outbox, DPA_INBOX).expect("the DPA inbox has it");
    assert!(forwarded.contains("Please send us your DPA.") && forwarded.contains(sender));
    let listed = server.cli(&["messages", "--topic", "dpa"]).await;
    assert_eq!(
        (listed[0]["email"].as_str(), listed[0]["body"].as_str()),
        (Some(sender), Some("Please send us your DPA."))
    );
    assert!(listed[0]["forwarded_at"].is_i64(), "{listed}");
    assert_eq!(
        server.cli(&["messages", "--topic", "support"]).await,
        json!([])
    );

    // Dashboard pages are compressed for clients that ask.
    let page = http
        .get(format!("{}/sign-in", server.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );

    // SIGTERM ends it cleanly; what it logged names no address, secret, token or person.
    let (status, log) = server.stop().await;
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.contains("request"),
        "request spans are logged at debug: {log}"
    );
    for secret in [
        PASSWORD,
        email,
        sender,
        CONTACT_SECRET,
        &contact_token,
        &backend_secret,
        &key,
        &token,
        "127.0.0.1",
        shown,
    ] {
        assert!(!log.contains(secret), "the log reveals {secret:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_binary_on_sqlite() {
    the_production_binary_serves_customers_and_backends(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_binary_on_postgres() {
    the_production_binary_serves_customers_and_backends(Backend::Postgres).await;
}

/// PostgreSQL goes away under `serve` (it refuses connections and drops the ones open) and
/// comes back: meanwhile the process stays live, is not ready, and siteverify answers
/// `internal-error`, never a success it could not record; afterwards it recovers without a
/// restart, the tokens refused during the outage verify once, and none verifies twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_rides_out_a_postgresql_outage() {
    let Some(database_url) = fresh_database_url(Backend::Postgres).await else {
        return;
    };
    let admin_url = std::env::var("HUMANPROOF_TEST_POSTGRES_URL").unwrap();
    let database = database_url.rsplit_once('/').unwrap().1.to_owned();
    let unused = "http://127.0.0.1:9";
    let server = Server::start(database_url, unused, unused).await;
    let (project_id, site_key, secret) = server.create_project("outage").await;
    let http = humanproof_control_plane::http::client();
    let get = |path: &str| {
        let request = http.get(format!("{}{path}", server.base));
        async move {
            let answer = request.send().await.unwrap();
            (
                answer.status().as_u16(),
                answer.json::<Value>().await.unwrap(),
            )
        }
    };
    let key = MasterSecret::new(MASTER_SECRET)
        .unwrap()
        .project_key(&project_id, 1);
    let mint = || key.sign(&verification_claims(&site_key, "shop.example", now_ms()));

    assert_eq!(get("/livez").await, (200, json!({"status": "ok"})));
    assert_eq!(get("/readyz").await, (200, json!({"status": "ready"})));
    let before = mint();
    assert_eq!(
        siteverify(&server.base, &secret, &before).await.1["success"],
        true
    );

    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
    let allow_connections = |allow: bool| {
        let statement = format!("ALTER DATABASE {database} WITH ALLOW_CONNECTIONS {allow}");
        let admin = admin.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&admin)
                .await
                .unwrap();
        }
    };
    allow_connections(false).await;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&admin)
        .await
        .unwrap();

    assert_eq!(
        get("/livez").await.0,
        200,
        "an outage does not make the process look dead"
    );
    let (status, body) = get("/readyz").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    let during = mint();
    let (first, second, spent) = tokio::join!(
        siteverify(&server.base, &secret, &during),
        siteverify(&server.base, &secret, &during),
        siteverify(&server.base, &secret, &before)
    );
    for (status, body) in [&first, &second, &spent] {
        assert_eq!(
            (*status, &body["error-codes"]),
            (500, &json!(["internal-error"])),
            "{body}"
        );
        assert_eq!(body["success"], false);
    }

    allow_connections(true).await;
    let mut ready = false;
    for _ in 0..50 {
        if get("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        ready,
        "ready again once PostgreSQL is back, without a restart"
    );
    // Nothing was claimed during the outage: the token refused then verifies now, once.
    assert_eq!(
        siteverify(&server.base, &secret, &during).await.1["success"],
        true
    );
    for token in [&during, &before] {
        let (status, body) = siteverify(&server.base, &secret, token).await;
        assert_eq!(
            (status, &body["error-codes"]),
            (200, &json!(["timeout-or-duplicate"])),
            "{body}"
        );
    }
    let usage = server.cli(&["usage", "--project-id", &project_id]).await;
    assert_eq!(
        usage["usage"]["verifications"], 4,
        "the answers given, each counted once: {usage}"
    );
    admin.close().await;
    let (status, _) = server.stop().await;
    assert!(status.success());
}

/// `/metrics`, scraped from the operator's address the way Prometheus does, after a backend,
/// the edge's queue consumer and a hostile script have used the public one: every answer
/// counted by outcome, every batch and event, the routes by template (never a raw path), and
/// the database's figures. Then SIGTERM with a siteverify request half sent: it is answered
/// and recorded, new connections are refused, and the process exits cleanly, leaving the
/// SQLite database as one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exposes_metrics_and_finishes_requests_in_flight_on_sigterm() {
    use humanproof_protocol::telemetry::{SIGNATURE_HEADER, sign_batch};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let database_url = fresh_database_url(Backend::Sqlite).await.unwrap();
    let unused = "http://127.0.0.1:9";
    let server = Server::start(database_url, unused, unused).await;
    let (project_id, site_key, secret) = server.create_project("metrics").await;
    let master = MasterSecret::new(MASTER_SECRET).unwrap();
    let key = master.project_key(&project_id, 1);
    let mint = || key.sign(&verification_claims(&site_key, "shop.example", now_ms()));
    let http = humanproof_control_plane::http::client();
    let token = mint();
    assert_eq!(siteverify(&server.base, &secret, &token).await.0, 200);
    assert_eq!(
        siteverify(&server.base, &secret, &token).await.0,
        200,
        "a duplicate"
    );
    assert_eq!(
        siteverify(&server.base, &secret, "forged").await.0,
        200,
        "garbage"
    );
    assert_eq!(
        siteverify(&server.base, "hp_secret_made_up", &token)
            .await
            .0,
        401
    );

    let events: Vec<Value> = ["challenge_issued", "redeem_succeeded"]
        .iter()
        .map(|kind| {
            json!({
                "id": secrets::new_id(),
                "kind": kind,
                "at": now_ms() - 90_000,
                "project_id": project_id,
                "site_key": site_key,
            })
        })
        .collect();
    let batch = serde_json::to_vec(&json!({ "events": events })).unwrap();
    let post_batch = |signature: Option<String>| {
        let mut request = http
            .post(format!("{}/internal/telemetry", server.base))
            .header("content-type", "application/json")
            .body(batch.clone());
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for _ in 0..2 {
        assert_eq!(
            post_batch(Some(sign_batch(&master, now_ms(), &batch))).await,
            200
        );
    }
    assert_eq!(post_batch(None).await, 401);

    // What a script sends: a path with a secret in it, a made-up method.
    let probe = format!(
        "{}/reset-password/leaked-token-in-path?token=leaked",
        server.base
    );
    assert_eq!(http.get(&probe).send().await.unwrap().status(), 404);
    let brew = http
        .request(reqwest::Method::from_bytes(b"BREW").unwrap(), &server.base)
        .send()
        .await
        .unwrap();
    assert_eq!(brew.status(), 405);
    let public = http.get(format!("{}/metrics", server.base)).send().await;
    assert_eq!(
        public.unwrap().status(),
        404,
        "metrics are not served on the public address"
    );

    // Retention runs when serve starts; wait for its first run to be counted.
    let mut scrape = String::new();
    for _ in 0..50 {
        let answer = http.get(&server.metrics).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        scrape = answer.text().await.unwrap();
        if scrape.contains("humanproof_job_runs_total{job=\"retention\",result=\"ok\"} 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Every sample is `name{labels} value`, and its family has HELP and TYPE lines.
    for line in scrape.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let family = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                family
                    .strip_suffix(suffix)
                    .filter(|base| scrape.contains(&format!("# TYPE {base} histogram")))
            })
            .unwrap_or(family);
        assert!(scrape.contains(&format!("# HELP {family} ")), "{line}");
        assert!(scrape.contains(&format!("# TYPE {family} ")), "{line}");
    }
    for sample in [
        r#"humanproof_siteverify_total{outcome="success"} 1"#,
        r#"humanproof_siteverify_total{outcome="timeout-or-duplicate"} 1"#,
        r#"humanproof_siteverify_total{outcome="invalid-input-response"} 1"#,
        r#"humanproof_siteverify_total{outcome="invalid-input-secret"} 1"#,
        r#"humanproof_http_requests_total{route="/siteverify",method="POST",status="200"} 3"#,
        r#"humanproof_http_requests_total{route="/siteverify",method="POST",status="401"} 1"#,
        r#"humanproof_http_request_duration_seconds_count{route="/siteverify"} 4"#,
        // The probe and `/metrics` on the public address.
        r#"humanproof_http_requests_total{route="unmatched",method="GET",status="404"} 2"#,
        r#"humanproof_http_requests_total{route="/",method="other",status="405"} 1"#,
        r#"humanproof_telemetry_batches_total{result="stored"} 2"#,
        r#"humanproof_telemetry_batches_total{result="refused"} 1"#,
        r#"humanproof_telemetry_events_total{result="stored"} 2"#,
        r#"humanproof_telemetry_events_total{result="duplicate"} 2"#,
        r#"humanproof_telemetry_lag_seconds_bucket{le="60"} 0"#,
        r#"humanproof_telemetry_lag_seconds_bucket{le="300"} 4"#,
        r#"humanproof_job_runs_total{job="retention",result="ok"} 1"#,
        "humanproof_database_up 1",
        // No KV is configured here: the new project waits for `humanproof snapshot`.
        r#"humanproof_publisher_backlog{change="project"} 1"#,
        r#"humanproof_publisher_backlog{change="deletion"} 0"#,
    ] {
        assert!(
            scrape.lines().any(|line| line == sample),
            "{sample} in\n{scrape}"
        );
    }
    for family in [
        // SQLite: reads on `main`, writes queued for the one `writer` connection.
        "humanproof_db_pool_connections{pool=\"main\",state=\"idle\"}",
        "humanproof_db_pool_connections{pool=\"main\",state=\"in_use\"}",
        "humanproof_db_pool_connections{pool=\"writer\",state=\"idle\"}",
        "humanproof_db_pool_max_connections{pool=\"main\"} 8",
        "humanproof_db_pool_max_connections{pool=\"writer\"} 1",
        "humanproof_job_last_success_timestamp_seconds{job=\"retention\"}",
    ] {
        assert!(scrape.contains(family), "{family} in\n{scrape}");
    }
    for secret_thing in ["leaked", &secret, &token] {
        assert!(
            !scrape.contains(secret_thing),
            "{secret_thing} in\n{scrape}"
        );
    }

    // A siteverify request whose body is half sent when SIGTERM arrives.
    let last = mint();
    // Both are URL-safe (hex, base64url and dots): no form encoding needed.
    let body = format!("secret={secret}&response={last}");
    let address = server.base.strip_prefix("http://").unwrap().to_owned();
    let mut in_flight = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let head = format!(
        "POST /siteverify HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first_half.as_bytes()).await.unwrap();
    let path = server.database_url.trim_start_matches("sqlite://");
    let path = path.split('?').next().unwrap().to_owned();
    assert!(
        Path::new(&format!("{path}-wal")).exists(),
        "while serving, the last commits are in the log beside {path}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.terminate().await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        tokio::net::TcpStream::connect(&address).await.is_err(),
        "no new connections once shutting down"
    );
    in_flight.write_all(second_half.as_bytes()).await.unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains(r#""success":true"#), "{answer}");

    let database_url = server.database_url.clone();
    let (status, _) = server.stop_after_terminate().await;
    assert!(status.success(), "{status}");
    // The database was closed: SQLite copied its log into the file and removed it, so the
    // file alone holds everything (read next) and a plain copy of it is a whole backup.
    let one_file = || {
        assert!(Path::new(&path).exists(), "{path}");
        for log in ["-wal", "-shm"] {
            assert!(
                !Path::new(&format!("{path}{log}")).exists(),
                "{path}{log} is left"
            );
        }
    };
    one_file();
    let usage = Command::new(humanproof_binary())
        .args(["usage", "--project-id", &project_id])
        .env("HUMANPROOF_DATABASE_URL", &database_url)
        .output()
        .await
        .unwrap();
    one_file();
    let usage: Value = serde_json::from_slice(&usage.stdout).unwrap();
    assert_eq!(
        usage["usage"]["verifications"], 4,
        "the request in flight was recorded before the exit: {usage}"
    );
}

/// What a slowloris script does to `serve`: connections that send nothing, or trickle their
/// headers in a line at a time, or sit idle after an answer, are each closed once the header
/// deadline passes, while other visitors are served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_cuts_off_connections_that_do_not_send_their_headers() {
    use humanproof_control_plane::server::HEADER_READ_TIMEOUT;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    let database_url = fresh_database_url(Backend::Sqlite).await.unwrap();
    let unused = "http://127.0.0.1:9";
    let server = Server::start(database_url, unused, unused).await;
    let address = server.base.strip_prefix("http://").unwrap().to_owned();
    let opened = Instant::now();

    // What each connection reads until the server closes it, and when it was closed.
    let read_until_closed = |mut stream: tokio::io::ReadHalf<TcpStream>| async move {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await; // a reset ends it too
        (
            String::from_utf8_lossy(&answer).into_owned(),
            opened.elapsed(),
        )
    };
    let silent = TcpStream::connect(&address).await.unwrap();
    let trickling = TcpStream::connect(&address).await.unwrap();
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(format!("GET /livez HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (silent, _keep_open) = tokio::io::split(silent);
    let (idle, _idle_writer) = tokio::io::split(idle);
    let (trickled, mut trickle) = tokio::io::split(trickling);
    let silent = tokio::spawn(read_until_closed(silent));
    let idle = tokio::spawn(read_until_closed(idle));
    let trickled = tokio::spawn(read_until_closed(trickled));
    // The request line, then a header line every two seconds, for as long as the server
    // takes them (a minute at most).
    let trickler = tokio::spawn(async move {
        let mut line = format!("GET /livez HTTP/1.1\r\nHost: {address}\r\n");
        let mut lines = 0;
        while lines < 30 && trickle.write_all(line.as_bytes()).await.is_ok() {
            lines += 1;
            line = format!("X-Slow-{lines}: 1\r\n");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        lines
    });

    // Everyone else is served meanwhile.
    let http = humanproof_control_plane::http::client();
    for _ in 0..3 {
        let page = http
            .get(format!("{}/sign-in", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let at_most = HEADER_READ_TIMEOUT + Duration::from_secs(10);
    for (name, closed) in [("silent", silent), ("trickling", trickled), ("idle", idle)] {
        let (answer, at) = tokio::time::timeout(at_most, closed)
            .await
            .expect(name)
            .unwrap();
        assert!(
            at >= HEADER_READ_TIMEOUT - Duration::from_secs(1),
            "{name} closed after {at:?}"
        );
        assert!(at < at_most, "{name} closed after {at:?}");
        if name == "idle" {
            assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        } else {
            // Closed without an answer: no request was handled.
            assert!(answer.is_empty(), "{name}: {answer}");
        }
    }
    assert!(
        trickler.await.unwrap() < 30,
        "the trickled headers were taken to the end"
    );
    let (status, _) = server.stop().await;
    assert!(status.success(), "{status}");
}

/// Two `serve` replicas on one PostgreSQL, the way operators scale the control plane out,
/// under the traffic an edge makes: a crowd of visitors through the edge logic (published to
/// from the same database) starts, solves, fails and gets blocked; their backends send every
/// verification token to both replicas at the same moment, a third of them as idempotent
/// retries, with garbage in between; and the edge's queue delivers every telemetry batch the
/// crowd caused to both. Afterwards each token was accepted by one replica only, nothing
/// answered a 5xx, the monthly counters equal exactly what the edge saw, and the background
/// jobs that ran in both at start succeeded in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgresql_count_everything_once() {
    use humanproof_control_plane::db::Db;
    use humanproof_protocol::telemetry::{SIGNATURE_HEADER, sign_batch};

    const IN_FLIGHT: usize = 16;
    let Some(database_url) = fresh_database_url(Backend::Postgres).await else {
        return;
    };
    let unused = "http://127.0.0.1:9";
    let (first, second) = tokio::join!(
        Server::start(database_url.clone(), unused, unused),
        Server::start(database_url.clone(), unused, unused)
    );
    let replicas = [first.base.clone(), second.base.clone()];
    // The edge logic on the replicas' database, its clock at the replicas' time.
    let world = std::sync::Arc::new(World::with_db(Db::connect(&database_url).await.unwrap()));
    world.clock.advance(now_ms() - START_MS);
    let site = world.create_project(crowd_project("replicas")).await;
    let crowd = world.crowd(site.site_key(), 30).await;
    let tokens = &crowd.tokens;
    let http = humanproof_control_plane::http::client();
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));

    // (token index, answer) for every siteverify call, in whatever order they finish.
    let mut calls = tokio::task::JoinSet::new();
    for (index, token) in tokens.iter().enumerate() {
        let idempotency_key = (index % 3 == 0).then(|| format!("retry-{index}"));
        let garbage = (index % 10 == 0).then(|| format!("{token}x"));
        for (replica, token) in replicas
            .iter()
            .map(|replica| (replica, token.clone()))
            .chain(garbage.map(|garbage| (&replicas[index % 2], garbage)))
        {
            let mut form = vec![("secret", site.secret.clone()), ("response", token)];
            if let Some(idempotency_key) = &idempotency_key {
                form.push(("idempotency_key", idempotency_key.clone()));
            }
            let request = http.post(format!("{replica}/siteverify")).form(&form);
            let limit = limit.clone();
            calls.spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                let answer = request.send().await.unwrap();
                let status = answer.status().as_u16();
                (index, status, answer.json::<Value>().await.unwrap())
            });
        }
    }
    let mut accepted = vec![0; tokens.len()];
    let mut answers = 0;
    while let Some(call) = calls.join_next().await {
        let (index, status, body) = call.unwrap();
        assert_eq!(status, 200, "{body}");
        answers += 1;
        if body["success"] == true && body["humanproof"]["replayed"] != true {
            accepted[index] += 1;
        } else if body["success"] == true {
            assert!(index % 3 == 0, "only a retry is replayed: {body}");
        } else {
            let code = body["error-codes"][0].as_str().unwrap();
            assert!(
                ["timeout-or-duplicate", "invalid-input-response"].contains(&code),
                "{body}"
            );
        }
    }
    assert!(
        accepted.iter().all(|&count| count == 1),
        "each token accepted once, by one replica: {accepted:?}"
    );

    // What the edge's queue sends: the crowd's starts, solves, failed redeems and blocks, in
    // batches of 25, each delivered to both replicas at once (a redelivery racing the first).
    let events = world.take_events().await;
    let master = MasterSecret::new(MASTER_SECRET).unwrap();
    let mut deliveries = tokio::task::JoinSet::new();
    for batch in events.chunks(25) {
        let body = serde_json::to_vec(&json!({ "events": batch })).unwrap();
        for replica in &replicas {
            let request = http
                .post(format!("{replica}/internal/telemetry"))
                .header("content-type", "application/json")
                .header(SIGNATURE_HEADER, sign_batch(&master, now_ms(), &body))
                .body(body.clone());
            let limit = limit.clone();
            deliveries.spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                let answer = request.send().await.unwrap();
                (
                    answer.status().as_u16(),
                    answer.json::<Value>().await.unwrap(),
                )
            });
        }
    }
    let mut stored = 0;
    while let Some(delivery) = deliveries.join_next().await {
        let (status, outcome) = delivery.unwrap();
        assert_eq!(status, 200, "{outcome}");
        stored += outcome["stored"].as_u64().unwrap();
    }
    assert_eq!(
        stored,
        events.len() as u64,
        "each event stored by one delivery only"
    );

    let usage = first
        .cli(&["usage", "--project-id", &site.project.id])
        .await;
    assert_eq!(
        usage["usage"],
        serde_json::to_value(crowd.expected_usage(answers)).unwrap(),
        "{usage}"
    );

    // Each replica counted its own share; together, one success per token. Retention and
    // roll-ups ran in both at start, at the same time, and succeeded in both.
    let mut successes = 0;
    for server in [&first, &second] {
        let scrape = http
            .get(&server.metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        successes += scrape
            .lines()
            .find_map(|line| {
                line.strip_prefix(r#"humanproof_siteverify_total{outcome="success"} "#)
            })
            .map_or(0, |count| count.parse::<usize>().unwrap());
        for job in ["retention", "plan_windows", "roll_up"] {
            let ok = format!("humanproof_job_runs_total{{job=\"{job}\",result=\"ok\"}} 1");
            assert!(scrape.contains(&ok), "{ok} in\n{scrape}");
            assert!(!scrape.contains(&format!("job=\"{job}\",result=\"failed\"")));
        }
    }
    assert!(
        successes >= tokens.len(),
        "first answers and replays: {successes}"
    );
    for server in [first, second] {
        let (status, log) = server.stop().await;
        assert!(status.success(), "{log}");
    }
}

/// The SQLite file's disk fills up under `serve`: siteverify answers `internal-error` (never a
/// success it could not record) and the log says why. Then `serve` starts on the disk mounted
/// read-only: the same answer, the same clear log. When space and writes come back, every token
/// answered `success` stays spent, the token refused meanwhile verifies once, and the file
/// passes SQLite's integrity check. The disk is a 4 MiB tmpfs, which takes root to mount:
/// without root this test says so and checks nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_full_or_read_only_disk_fails_clearly_and_loses_nothing() {
    let disk = std::env::temp_dir().join(format!("humanproof-disk-{}", secrets::new_id()));
    std::fs::create_dir_all(&disk).unwrap();
    let mount = |options: &str| {
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&disk)
            .status()
            .is_ok_and(|status| status.success())
    };
    if !mount("size=4m") {
        eprintln!(
            "skipping: cannot mount a tmpfs at {} (needs root)",
            disk.display()
        );
        return;
    }
    let _unmount = Unmount(disk.clone());
    let remount = |options: &str| {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&disk)
            .status()
            .unwrap();
        assert!(status.success(), "mount -o remount,{options}");
    };
    let database_url = format!("sqlite://{}?mode=rwc", disk.join("humanproof.db").display());
    let unused = "http://127.0.0.1:9";
    let server = Server::start(database_url.clone(), unused, unused).await;
    let (project_id, site_key, secret) = server.create_project("disk").await;
    let key = MasterSecret::new(MASTER_SECRET)
        .unwrap()
        .project_key(&project_id, 1);
    let mint = || key.sign(&verification_claims(&site_key, "shop.example", now_ms()));

    // Fill the disk, then verify until SQLite has no room left for what a claim writes.
    let filler = disk.join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).unwrap();
        while file.write_all(&[0; 64 * 1024]).is_ok() {}
    }
    let mut spent = Vec::new();
    let mut refused = None;
    for _ in 0..2000 {
        let token = mint();
        let (status, body) = siteverify(&server.base, &secret, &token).await;
        if status == 500 {
            assert_eq!(body["error-codes"], json!(["internal-error"]), "{body}");
            refused = Some(token);
            break;
        }
        assert_eq!((status, &body["success"]), (200, &json!(true)), "{body}");
        spent.push(token);
    }
    let refused = refused.expect("a full disk refuses a claim at last");
    let (status, log) = server.stop().await;
    assert!(status.success(), "{log}");
    assert!(
        log.contains("database or disk is full"),
        "the log says why:\n{log}"
    );
    std::fs::remove_file(&filler).unwrap();

    // A read-only disk: `serve` starts and reads, but every write fails, saying why.
    remount("ro");
    let server = Server::start(database_url.clone(), unused, unused).await;
    let (status, body) = siteverify(&server.base, &secret, &refused).await;
    assert_eq!(
        (status, &body["error-codes"]),
        (500, &json!(["internal-error"])),
        "{body}"
    );
    let (status, log) = server.stop().await;
    assert!(status.success(), "{log}");
    assert!(
        log.contains("readonly database"),
        "the log says why:\n{log}"
    );
    remount("rw");

    // Space and writes are back: the refused token verifies once, the spent ones never again.
    let server = Server::start(database_url.clone(), unused, unused).await;
    let (status, body) = siteverify(&server.base, &secret, &refused).await;
    assert_eq!((status, &body["success"]), (200, &json!(true)), "{body}");
    for token in spent.iter().chain([&refused]) {
        let (status, body) = siteverify(&server.base, &secret, token).await;
        assert_eq!(
            (status, &body["error-codes"]),
            (200, &json!(["timeout-or-duplicate"])),
            "{body}"
        );
    }
    let (status, log) = server.stop().await;
    assert!(status.success(), "{log}");
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&database_url).await.unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    db.close().await;
}

/// Unmounts a test's disk when the test ends, passed or failed.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}
