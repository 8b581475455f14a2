//! Shared wiring for the cross-component tests: a fresh database (SQLite file or a new
//! PostgreSQL database), the control plane's app on a manual clock, and the edge logic with
//! in-memory stores, connected the way the local all-in-one server connects them.
//!
//! PostgreSQL tests need `HUMANPROOF_TEST_POSTGRES_URL` (an admin URL; `./dev test` starts a
//! throwaway cluster and sets it). Without it they fail, unless `HUMANPROOF_SKIP_POSTGRES=1`
//! says to skip them on purpose.

#![allow(missing_docs)]

pub mod crowds;
pub mod mmdb;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use humanproof_control_plane::clock::Clock;
use humanproof_control_plane::db::projects::{self, BillingStatus, Project, ProjectSettings};
use humanproof_control_plane::db::telemetry::Usage;
use humanproof_control_plane::db::{Db, billing};
use humanproof_control_plane::local::{ChannelSink, LocalEdge, publish_snapshot};
use humanproof_control_plane::mail::Mailer;
use humanproof_control_plane::publish::Publisher;
use humanproof_control_plane::state::WebConfig;
use humanproof_control_plane::{AppState, app, secrets};
use humanproof_edge::EdgeConfig;
use humanproof_edge::instrumentation;
use humanproof_edge::memory::{MemoryClaims, MemorySnapshots, MemoryVisitors};
use humanproof_edge::risk::ClientHeaders;
use humanproof_edge::time_locks::TimeLocks;
use humanproof_edge::{EdgeRequest, RequestBody};
use humanproof_protocol::snapshot::RiskMode;
use humanproof_protocol::{
    MasterSecret, Network, Preset, Protection, TelemetryEvent, VerificationClaims,
};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tower::ServiceExt as _;

pub const MASTER_SECRET: &str = "cross-component-test-master-secret-0123456789";
/// 2026-03-15T12:00:00Z: mid-month, so advancing the clock by minutes stays in one month.
pub const START_MS: i64 = 1_773_576_000_000;
pub const ORIGIN: &str = "http://localhost:3000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($(async fn $name:ident($world:ident: World) $body:block)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $world = World::new($crate::Backend::Sqlite).await;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($world) = World::new_postgres().await else { return };
                $body
            }
        }
    )*};
}

/// Opens a fresh, migrated database of the given kind.
pub async fn fresh_db(backend: Backend) -> Option<Db> {
    Some(fresh_db_url(backend).await?.0)
}

/// A fresh, migrated database of the given kind, and the URL another process reaches it at.
pub async fn fresh_db_url(backend: Backend) -> Option<(Db, String)> {
    let url = match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("humanproof-tests");
            std::fs::create_dir_all(&dir).unwrap();
            let path: PathBuf = dir.join(format!("{}.db", secrets::new_id()));
            format!("sqlite://{}?mode=rwc", path.display())
        }
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var("HUMANPROOF_TEST_POSTGRES_URL") else {
                if std::env::var("HUMANPROOF_SKIP_POSTGRES").as_deref() == Ok("1") {
                    eprintln!("skipping a PostgreSQL test: HUMANPROOF_SKIP_POSTGRES=1");
                    return None;
                }
                panic!(
                    "HUMANPROOF_TEST_POSTGRES_URL is not set; run the tests with `./dev test`, \
                     or set HUMANPROOF_SKIP_POSTGRES=1 to skip PostgreSQL on purpose"
                );
            };
            sqlx::any::install_default_drivers();
            let name = format!("hp_test_{}", secrets::new_id());
            let admin = sqlx::AnyPool::connect(&admin_url)
                .await
                .expect("PostgreSQL is reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let (base, _) = admin_url.rsplit_once('/').expect("URL names a database");
            format!("{base}/{name}")
        }
    };
    Some((
        Db::connect(&url)
            .await
            .expect("the test database opens and migrates"),
        url,
    ))
}

/// The claims of a verification token as the edge signs them after a redeem on `host`: for
/// `site_key`, issued at `now`, valid five minutes, with fresh random ids, for Custom work
/// of difficulty 1 and 3 sub-challenges.
pub fn verification_claims(site_key: &str, host: &str, now: i64) -> VerificationClaims {
    VerificationClaims {
        sk: site_key.to_owned(),
        jti: secrets::new_id(),
        cid: secrets::new_id(),
        iat: now,
        exp: now + 300_000,
        host: host.to_owned(),
        d: 1,
        c: 3,
        rsw: None,
        act: None,
        cd: None,
        risk: None,
    }
}

/// A project for [`World::crowd`]: cheap work (d=1, three sub-challenges), no rate limit in
/// reach, and risk in enforce mode, so scripts are blocked.
pub fn crowd_project(name: &str) -> ProjectSettings {
    ProjectSettings {
        risk_mode: RiskMode::Enforce,
        preset: Preset::Custom(Protection {
            difficulty: 1,
            challenge_count: 3,
            rate_limit: 1000,
            ..Protection::BALANCED
        }),
        ..quick_project(name)
    }
}

/// What a [`World::crowd`] did at the edge, by outcome.
#[derive(Debug, Default)]
pub struct Crowd {
    pub issued: u64,
    pub blocked: u64,
    pub refused: u64,
    pub solved: u64,
    pub failed: u64,
    /// The verification tokens the solved challenges were given.
    pub tokens: Vec<String>,
}

impl Crowd {
    /// The monthly counters this crowd must leave, with `verifications` siteverify answers.
    pub fn expected_usage(&self, verifications: u64) -> Usage {
        Usage {
            protected_attempts: self.solved + self.failed + self.blocked,
            challenges_issued: self.issued,
            refusals: self.refused,
            risk_blocked: self.blocked,
            verifications,
        }
    }
}

/// Everything wired together on one manual clock.
pub struct World {
    pub db: Db,
    pub clock: Clock,
    pub master: MasterSecret,
    pub edge: Arc<LocalEdge>,
    /// Where the dashboard's email lands.
    pub outbox: PathBuf,
    state: AppState,
    events: tokio::sync::Mutex<UnboundedReceiver<TelemetryEvent>>,
}

/// The RSW key of the shared test vectors (`tests/vectors/rsw.json`): for tests only.
pub fn test_rsw_key() -> humanproof_protocol::rsw::RswKey {
    let vectors: Value = serde_json::from_str(include_str!("../vectors/rsw.json")).unwrap();
    humanproof_protocol::rsw::RswKey::parse(vectors["key"].as_str().unwrap()).unwrap()
}

/// What the widget sends when a person filled in a sign-up form for nine seconds.
pub fn human_start() -> Value {
    serde_json::json!({
        "widget": { "variant": "checkbox", "trigger": "click", "branding": "full", "signal_version": 1 },
        "signals": { "elapsed_ms": 9000, "focus_count": 3, "blur_count": 2, "key_count": 41, "pointer_moves": 88,
                     "pointer_downs": 2, "interactions": 46, "visibility": "visible", "was_hidden": false },
        "form": { "page_path": "/signup", "method": "post", "action_path": "/signup", "email": "ada@example.com" },
    })
}

/// The claims of the challenge token in a start's answer, read without checking them: what
/// the edge decided about the start.
pub fn peek_challenge(started: &Answer) -> Value {
    let token = started.json["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge was issued: {:?}", started.json));
    let claims: humanproof_protocol::ChallengeClaims =
        humanproof_protocol::token::peek_unverified(token).unwrap();
    serde_json::to_value(claims).unwrap()
}

/// Who sends a request to the edge: an IP and the headers the risk score reads.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The client IP the platform reports.
    pub ip: &'static str,
    /// Its headers.
    pub headers: ClientHeaders<'static>,
}

impl Client {
    /// A page's `fetch()` from a desktop browser.
    pub const BROWSER: Client = Client {
        ip: "203.0.113.9",
        headers: ClientHeaders {
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
            ),
            accept_language: Some("en-GB,en;q=0.9"),
            sec_fetch_site: Some("cross-site"),
            sec_fetch_mode: Some("cors"),
            sec_fetch_dest: Some("empty"),
        },
    };
    /// A command-line HTTP client from another network.
    pub const SCRIPT: Client = Client {
        ip: "198.51.100.66",
        headers: ClientHeaders {
            user_agent: Some("curl/8.5.0"),
            accept_language: None,
            sec_fetch_site: None,
            sec_fetch_mode: None,
            sec_fetch_dest: None,
        },
    };
}

/// A parsed JSON answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub json: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn reason(&self) -> &str {
        self.json["reason"].as_str().unwrap_or_default()
    }
}

/// A project with its secret, as `create_project` returns it.
pub struct TestProject {
    pub project: Project,
    pub secret: String,
}

impl TestProject {
    pub fn site_key(&self) -> &str {
        &self.project.site_key
    }
}

/// A cheap custom preset so tests spend no time solving.
pub fn quick_project(name: &str) -> ProjectSettings {
    ProjectSettings {
        name: name.into(),
        production_domains: vec!["example.com".into()],
        testing_domains: vec!["localhost".into(), "127.0.0.1".into()],
        allow_subdomains: false,
        preset: Preset::Custom(Protection {
            difficulty: 1,
            challenge_count: 3,
            ..Protection::BALANCED
        }),
        risk_mode: RiskMode::Observe,
        plan: "free".into(),
        billing_status: BillingStatus::Active,
        monthly_limit: None,
        active: true,
        widget: Default::default(),
    }
}

impl World {
    pub async fn new(backend: Backend) -> Self {
        Self::with_db(fresh_db(backend).await.expect("SQLite is always available"))
    }

    pub async fn new_postgres() -> Option<Self> {
        Some(Self::with_db(fresh_db(Backend::Postgres).await?))
    }

    /// Wires a database the caller opened.
    pub fn with_db(db: Db) -> Self {
        let master = MasterSecret::new(MASTER_SECRET).unwrap();
        let (sink, events) = ChannelSink::new();
        let edge = Arc::new(LocalEdge::new(
            EdgeConfig::new(master.clone())
                .with_time_locks(Arc::new(TimeLocks::new(test_rsw_key()))),
            MemorySnapshots::default(),
            MemoryClaims::default(),
            MemoryVisitors::default(),
            sink,
        ));
        let clock = Clock::manual(START_MS);
        let outbox = std::env::temp_dir()
            .join("humanproof-tests")
            .join(format!("outbox-{}", secrets::new_id()));
        let state = AppState::new(
            db.clone(),
            master.clone(),
            clock.clone(),
            Publisher::Local(edge.clone()),
            Mailer::Outbox(outbox.clone()),
            WebConfig::new("http://localhost:8080", "http://127.0.0.1:8787", true),
        );
        Self {
            db,
            clock,
            master,
            edge,
            outbox,
            state,
            events: events.into(),
        }
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The control plane's app with another publisher (e.g. Cloudflare KV against a fake).
    pub fn state_with_publisher(&self, publisher: Publisher) -> AppState {
        self.state.with(|state| state.publisher = publisher)
    }

    /// Serves the control plane on 127.0.0.1 the way `humanproof serve` does; its base URL.
    /// Stops with the test's runtime.
    pub async fn serve(&self) -> String {
        serve_control_plane(self.state()).await
    }

    /// The email sent last to `to`, whole (headers and body).
    pub fn last_email(&self, to: &str) -> String {
        last_email_in(&self.outbox, to).unwrap_or_else(|| panic!("no email to {to}"))
    }

    /// Links in the email sent last to `to`.
    pub fn email_links(&self, to: &str) -> Vec<String> {
        let text = last_email_in(&self.outbox, to).unwrap_or_default();
        text.split_whitespace()
            .filter(|word| word.starts_with("http"))
            .map(str::to_owned)
            .collect()
    }

    /// Creates a project and publishes the snapshot to the edge.
    pub async fn create_project(&self, new: ProjectSettings) -> TestProject {
        let secret = secrets::new_backend_secret();
        let project = projects::insert(
            &self.db,
            None,
            &new,
            &secrets::new_site_key(),
            &secret,
            self.clock.now_ms(),
        )
        .await
        .unwrap();
        self.publish().await;
        TestProject { project, secret }
    }

    /// Rebuilds the snapshot from the database into the edge, as publishing does.
    /// Puts an organisation on a plan, paid up (as a subscription would).
    pub async fn on_plan(&self, organisation_id: &str, plan: &str) {
        let account = billing::OrganisationBilling {
            plan: plan.into(),
            ..Default::default()
        };
        billing::set(&self.db, organisation_id, &account, self.clock.now_ms())
            .await
            .unwrap();
    }

    pub async fn publish(&self) {
        publish_snapshot(&self.db, &self.edge, &self.state.plans, &self.clock)
            .await
            .unwrap();
    }

    /// How many telemetry events the control plane stored for a project.
    pub async fn stored_events(&self, project_id: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM telemetry_events WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }

    /// What the edge emitted since the last call.
    pub async fn take_events(&self) -> Vec<TelemetryEvent> {
        let mut receiver = self.events.lock().await;
        let mut events = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            events.push(event);
        }
        events
    }

    /// Drains what the edge emitted into the database, as the queue consumer does.
    pub async fn deliver_telemetry(&self) -> Vec<TelemetryEvent> {
        let events = self.take_events().await;
        humanproof_control_plane::service::usage::record_telemetry(&self.state, &events)
            .await
            .unwrap();
        events
    }

    /// Sends a request to the edge logic from a browser ([`Client::BROWSER`]).
    pub async fn edge(
        &self,
        method: &str,
        path: &str,
        origin: Option<&str>,
        body: &[u8],
    ) -> Answer {
        self.edge_from(Client::BROWSER, method, path, origin, body)
            .await
    }

    /// Sends a request to the edge logic from `client`.
    pub async fn edge_from(
        &self,
        client: Client,
        method: &str,
        path: &str,
        origin: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let response = self
            .edge
            .handle(EdgeRequest {
                method,
                path,
                origin,
                client_ip: Some(client.ip),
                headers: client.headers,
                network: &Network::default(),
                body: RequestBody::Read(body),
                now_ms: self.clock.now_ms(),
            })
            .await;
        Answer {
            status: response.status,
            headers: response
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
            json: serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        }
    }

    pub async fn start_challenge(&self, site_key: &str, body: &Value) -> Answer {
        self.edge(
            "POST",
            &format!("/{site_key}/challenge"),
            Some(ORIGIN),
            body.to_string().as_bytes(),
        )
        .await
    }

    /// Redeems as our widget does: with the environment check's answer when the challenge
    /// carried a check (computed here from the master secret, as a browser would by running
    /// the script; the browser tests run the real scripts).
    pub async fn redeem(
        &self,
        site_key: &str,
        token: &str,
        solutions: &(impl serde::Serialize + ?Sized),
    ) -> Answer {
        let answer = self.instrumentation_answer(token);
        self.redeem_with(site_key, token, solutions, answer.as_deref())
            .await
    }

    /// Redeems with the given environment-check answer, or none.
    pub async fn redeem_with(
        &self,
        site_key: &str,
        token: &str,
        solutions: &(impl serde::Serialize + ?Sized),
        instrumentation: Option<&str>,
    ) -> Answer {
        let body = serde_json::json!({ "token": token, "solutions": solutions, "instrumentation": instrumentation });
        self.edge(
            "POST",
            &format!("/{site_key}/redeem"),
            Some(ORIGIN),
            body.to_string().as_bytes(),
        )
        .await
    }

    /// The right answer to the environment check a challenge token carries, if any.
    pub fn instrumentation_answer(&self, token: &str) -> Option<String> {
        let claims: humanproof_protocol::ChallengeClaims =
            humanproof_protocol::token::peek_unverified(token).ok()?;
        Some(instrumentation::scene_for(&self.master, &claims)?.answer())
    }

    /// Starts, solves and redeems a challenge; returns the challenge token and the answer.
    pub async fn solve(&self, site_key: &str, body: &Value) -> (String, Answer) {
        let started = self.start_challenge(site_key, body).await;
        assert_eq!(started.status, 200, "challenge start: {:?}", started.json);
        let token = started.json["token"].as_str().unwrap().to_owned();
        let params = serde_json::from_value(started.json["challenge"].clone()).unwrap();
        let solutions = humanproof_protocol::pow::solve(&token, params);
        let redeemed = self.redeem(site_key, &token, &solutions).await;
        (token, redeemed)
    }

    /// A bounded crowd through the edge logic: `visitors` at once, each starting three
    /// challenges on `site_key` (a script among every five, which enforce mode blocks),
    /// solving them (one in four redeemed wrong); what each outcome counted, and the
    /// verification tokens the good redeems got.
    pub async fn crowd(self: &Arc<Self>, site_key: &str, visitors: usize) -> Crowd {
        let mut running = tokio::task::JoinSet::new();
        for visitor in 0..visitors {
            let (world, site_key) = (self.clone(), site_key.to_owned());
            running.spawn(async move {
                let mut sent = Crowd::default();
                let client = if visitor % 5 == 0 {
                    Client::SCRIPT
                } else {
                    Client::BROWSER
                };
                for round in 0..3 {
                    let path = format!("/{site_key}/challenge");
                    let started = world
                        .edge_from(client, "POST", &path, Some(ORIGIN), b"{}")
                        .await;
                    match (started.status, started.reason()) {
                        (200, _) => sent.issued += 1,
                        (403, "risk_blocked") => {
                            sent.blocked += 1;
                            continue;
                        }
                        (429, _) => {
                            sent.refused += 1;
                            continue;
                        }
                        other => panic!("start: {other:?} {:?}", started.json),
                    }
                    let token = started.json["token"].as_str().unwrap().to_owned();
                    let params = serde_json::from_value(started.json["challenge"].clone()).unwrap();
                    let wrong = (visitor + round) % 4 == 0;
                    let solutions = if wrong {
                        vec![]
                    } else {
                        humanproof_protocol::pow::solve(&token, params)
                    };
                    let redeemed = world.redeem(&site_key, &token, &solutions).await;
                    match (redeemed.status, wrong) {
                        (200, false) => {
                            sent.solved += 1;
                            let verification = redeemed.json["token"].as_str().unwrap();
                            sent.tokens.push(verification.to_owned());
                        }
                        (400, true) => {
                            assert_eq!(redeemed.reason(), "invalid_solution");
                            sent.failed += 1;
                        }
                        other => panic!("redeem: {other:?} {:?}", redeemed.json),
                    }
                }
                sent
            });
        }
        let mut crowd = Crowd::default();
        while let Some(visitor) = running.join_next().await {
            let visitor = visitor.unwrap();
            crowd.issued += visitor.issued;
            crowd.blocked += visitor.blocked;
            crowd.refused += visitor.refused;
            crowd.solved += visitor.solved;
            crowd.failed += visitor.failed;
            crowd.tokens.extend(visitor.tokens);
        }
        assert!(
            crowd.blocked > 0 && crowd.failed > 0 && crowd.solved > 0,
            "every kind of outcome happened"
        );
        crowd
    }

    /// A verification token for `site_key`, ready for siteverify.
    pub async fn verification_token(&self, site_key: &str) -> String {
        let (_, redeemed) = self.solve(site_key, &serde_json::json!({})).await;
        assert_eq!(redeemed.status, 200, "redeem: {:?}", redeemed.json);
        redeemed.json["token"].as_str().unwrap().to_owned()
    }

    /// Calls the control plane's app with a raw request.
    pub async fn control(&self, request: Request<Body>) -> Answer {
        let response = app(self.state()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status: status.as_u16(),
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `POST /siteverify` as a form, the way most backends call Turnstile.
    pub async fn siteverify(&self, fields: &[(&str, &str)]) -> Answer {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.control(
            Request::post("/siteverify")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }
}

/// The newest email to `to` filed in an outbox folder, whole (headers and body).
pub fn last_email_in(outbox: &std::path::Path, to: &str) -> Option<String> {
    emails_in(outbox, to).pop()
}

/// Every email to `to` in an outbox folder, whole, oldest first.
pub fn emails_in(outbox: &std::path::Path, to: &str) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(outbox)
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .filter(|text| text.starts_with(&format!("To: {to}\r\n")))
        .collect()
}

/// The API key a dashboard page shows, once, after creating it.
pub fn api_key_on_page(body: &str) -> String {
    let start = body.find("hp_key_").expect("the page shows the new key");
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asserts a status, showing the body when it differs.
pub fn assert_status(answer: &Answer, status: StatusCode) {
    assert_eq!(
        answer.status,
        status.as_u16(),
        "unexpected answer: {:#?}",
        answer.json
    );
}

/// Serves the control plane with this state on 127.0.0.1 through the production serve
/// function (peer addresses, middleware, background jobs); its base URL.
pub async fn serve_control_plane(state: AppState) -> String {
    let (listener, base) = loopback_listener().await;
    tokio::spawn(humanproof_control_plane::server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    base
}

/// A listener on a free 127.0.0.1 port, and its base URL.
async fn loopback_listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Serves another router (the local edge, a stand-in) on 127.0.0.1 with peer addresses.
pub async fn serve_app(router: axum::Router) -> String {
    let (listener, base) = loopback_listener().await;
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    base
}

/// A page as a browser received it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// Asserts a status, showing the page when it differs.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected page: {} {:?}\n{}",
            self.status, self.location, self.body
        );
        self
    }
}

/// A cookie-keeping HTTP client for the dashboard that fills in the CSRF field of its forms.
pub struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: Mutex<HashMap<String, String>>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let http = humanproof_control_plane::http::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            base: base.to_owned(),
            http,
            cookies: Mutex::default(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let cookies: Vec<String> = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let response = request
            .header("cookie", cookies.join("; "))
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.send(self.http.get(url)).await
    }

    /// Posts a form with the page's CSRF token, as the dashboard's own forms do.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        if self.cookie("hp_csrf").is_none() {
            self.get("/sign-in").await;
        }
        let csrf = self.cookie("hp_csrf").unwrap();
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        fields.push(("csrf", &csrf));
        self.post_raw(path, &fields).await
    }

    /// Posts JSON with the CSRF token in its header, as the dashboard's passkey script does;
    /// the status and the JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value, with_csrf: bool) -> (u16, Value) {
        if self.cookie("hp_csrf").is_none() {
            self.get("/sign-in").await;
        }
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if with_csrf {
            request = request.header("x-csrf-token", self.cookie("hp_csrf").unwrap());
        }
        let page = self.send(request).await;
        (
            page.status,
            serde_json::from_str(&page.body).unwrap_or(Value::Null),
        )
    }

    /// Posts exactly these fields (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(self.http.post(format!("{}{path}", self.base)).form(fields))
            .await
    }

    /// Posts exactly these fields with one extra header (e.g. a proxy's `X-Forwarded-For`).
    pub async fn post_with_header(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        (name, value): (&str, &str),
    ) -> Page {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header(name, value)
                .form(fields),
        )
        .await
    }

    /// Signs up, follows the emailed link (from the dev outbox) that confirms the address and
    /// signs in, and returns the new organisation's id.
    pub async fn sign_up(&self, email: &str, password: &str) -> String {
        self.sign_up_with(email, password, async || {
            self.outbox_link(email, "/verify-email?token=")
                .await
                .expect("a confirmation link was sent")
        })
        .await
    }

    /// [`Browser::sign_up`], with the confirmation link (a path) read by `confirmation_link`:
    /// for a server without the dev outbox page, from its outbox folder.
    pub async fn sign_up_with(
        &self,
        email: &str,
        password: &str,
        confirmation_link: impl AsyncFnOnce() -> String,
    ) -> String {
        self.post(
            "/sign-up",
            &[
                ("email", email),
                ("password", password),
                ("organisation", "Acme"),
            ],
        )
        .await
        .expect(200);
        self.get(&confirmation_link().await).await.expect(200);
        let home = self.get("/").await.expect(303);
        home.location
            .unwrap()
            .trim_start_matches("/orgs/")
            .trim_end_matches("/projects")
            .to_owned()
    }

    /// The path and query of the newest link containing `marker` in an email to `to`, read
    /// from the dev outbox page (emails name the public URL, not this test server).
    pub async fn outbox_link(&self, to: &str, marker: &str) -> Option<String> {
        let page = self.get("/dev/outbox").await.expect(200);
        let to_line = format!("To: {}", to.trim().to_lowercase());
        let addressed = |message: &&str| {
            message
                .find(&to_line)
                .is_some_and(|at| message[at + to_line.len()..].starts_with(['\r', '\n']))
        };
        // Newest first; each message is one <article>, its text starting with the To: line.
        page.body
            .split("<article")
            .filter(addressed)
            .find_map(|message| {
                // minijinja escapes `/` and `&` in attributes.
                let hrefs = message
                    .split("href=\"")
                    .skip(1)
                    .filter_map(|rest| rest.split('"').next());
                hrefs
                    .map(|href| href.replace("&#x2f;", "/").replace("&amp;", "&"))
                    .find(|href| href.contains(marker))
                    .map(|href| {
                        let after_scheme = href
                            .split_once("://")
                            .map_or(href.as_str(), |(_, rest)| rest);
                        after_scheme[after_scheme.find('/').unwrap_or(0)..].to_owned()
                    })
            })
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Page {
        self.post("/sign-in", &[("email", email), ("password", password)])
            .await
    }
}
