//! The all-in-one development server: the control plane on SQLite, the edge logic served
//! natively on the Worker's paths, and a demo customer site on its own origin, so that
//! cross-origin calls from the demo page to the edge are real.
//!
//! What differs from production, and why:
//! - Snapshot publishing writes straight into the in-process edge's store instead of KV.
//! - Single-use claims and visitors' abuse state live in memory instead of Durable Objects.
//! - Country and network come from optional offline MaxMind-format databases
//!   (`--geoip-country-db`, `--geoip-asn-db`) instead of Cloudflare's `request.cf`.
//! - Stripe and VIES are local stand-ins (`stripe_standin`, `vies_standin`) speaking their
//!   HTTP APIs, reached by the production clients through their base URLs.
//! - The dashboard's contact form is protected by a project of the local service, and its
//!   topics' inboxes (`dpa@inbox.humanproof.localhost`…) are the outbox.
//! - Telemetry goes through an in-process channel to the database with retries, instead of a
//!   Cloudflare Queue and a signed HTTP batch.

mod demo;
mod edge_server;
mod geo;
mod stripe_standin;
mod telemetry_sink;
mod vies_standin;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use humanproof_edge::EdgeConfig;
use humanproof_edge::memory::{MemoryClaims, MemorySnapshots, MemoryVisitors};
use humanproof_edge::time_locks::TimeLocks;
use humanproof_protocol::Preset;
use humanproof_protocol::snapshot::RiskMode;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::{PlansArgs, RswKeyArgs, SecretArgs, write_private};
use crate::contact::{ContactForm, Topic};
use crate::db::Db;
use crate::db::projects::{self, BillingStatus, ProjectSettings};
use crate::mail::Mailer;
use crate::plans::Catalogue;
use crate::publish::{PublishError, Publisher};
use crate::secrets;
use crate::server::{self, bind, shutdown_signal};
use crate::state::{AppState, WebConfig};
use crate::stripe::Stripe;
use crate::vies::{VatId, Vies};

pub use edge_server::{LocalEdge, edge_router};
pub use geo::GeoLookup;
pub use stripe_standin::{StandInSubscription, StandInTaxId, StripeStandIn};
pub use telemetry_sink::{ChannelSink, deliver_telemetry};
pub use vies_standin::ViesStandIn;

/// Options of `humanproof dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Folder for the SQLite database, the generated master secret and the demo site's keys.
    #[arg(long, env = "HUMANPROOF_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    rsw_key: RswKeyArgs,
    #[command(flatten)]
    plans: PlansArgs,
    /// Control plane address.
    #[arg(
        long,
        env = "HUMANPROOF_CONTROL_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub control_listen: SocketAddr,
    /// Edge address (same paths as the Worker).
    #[arg(long, env = "HUMANPROOF_EDGE_LISTEN", default_value = "127.0.0.1:8787")]
    pub edge_listen: SocketAddr,
    /// Demo customer site address.
    #[arg(long, env = "HUMANPROOF_DEMO_LISTEN", default_value = "127.0.0.1:3000")]
    pub demo_listen: SocketAddr,
    /// Where the built widget (widget.js, solver.wasm) is served from.
    #[arg(long, env = "HUMANPROOF_WIDGET_DIR", default_value = "widget/dist")]
    pub widget_dir: PathBuf,
    /// Fixes the demo project's site key.
    #[arg(long, env = "HUMANPROOF_DEMO_SITE_KEY")]
    pub demo_site_key: Option<String>,
    /// Fixes the demo project's backend secret.
    #[arg(long, env = "HUMANPROOF_DEMO_SECRET", hide_env_values = true)]
    pub demo_secret: Option<String>,
    /// A MaxMind-format country database (e.g. GeoLite2-Country.mmdb), for per-project
    /// country counters.
    #[arg(long, env = "HUMANPROOF_GEOIP_COUNTRY_DB")]
    pub geoip_country_db: Option<PathBuf>,
    /// A MaxMind-format ASN database (e.g. GeoLite2-ASN.mmdb), for per-project network counters.
    #[arg(long, env = "HUMANPROOF_GEOIP_ASN_DB")]
    pub geoip_asn_db: Option<PathBuf>,
}

/// The one VAT id the development VIES stand-in knows as valid.
pub const DEV_VALID_VAT_ID: &str = "DE123456789";
/// The (made-up) requester the development server asks as, so that checks get consultation
/// numbers as they do in production with `HUMANPROOF_VIES_REQUESTER`.
const DEV_REQUESTER_VAT_ID: &str = "DE999999999";

/// The domain of the development contact form's inboxes (`dpa@…`, `support@…`).
pub const DEV_INBOX_DOMAIN: &str = "inbox.humanproof.localhost";

/// How often the local edge's snapshot is rebuilt even when nothing signalled a change.
const SNAPSHOT_REFRESH: Duration = Duration::from_secs(2);

/// Runs until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let master = args.secret.or_generate_in(&args.data_dir)?;
    let rsw_key = args.rsw_key.or_generate_in(&args.data_dir)?;
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        args.data_dir.join("humanproof.db").display()
    );
    let db = Db::connect(&database_url).await?;
    let clock = Clock::system();
    let demo = ensure_demo_project(&db, &args, clock.now_ms()).await?;
    let contact = ensure_contact_project(&db, &args, clock.now_ms()).await?;
    let geo = GeoLookup::open(
        args.geoip_country_db.as_deref(),
        args.geoip_asn_db.as_deref(),
    )
    .context("opening the GeoIP databases")?;

    let plans = args.plans.catalogue()?;
    let snapshot_changed = Arc::new(Notify::new());
    let (sink, events) = ChannelSink::new();
    let edge = Arc::new(LocalEdge::new(
        EdgeConfig::new(master.clone()).with_time_locks(Arc::new(TimeLocks::new(rsw_key))),
        MemorySnapshots::default(),
        MemoryClaims::default(),
        MemoryVisitors::default(),
        sink,
    ));
    publish_snapshot(&db, &edge, &plans, &clock).await?;
    tokio::spawn(refresh_snapshot(
        db.clone(),
        edge.clone(),
        plans.clone(),
        clock.clone(),
        snapshot_changed.clone(),
    ));

    let control = bind(args.control_listen).await?;
    let edge_listener = bind(args.edge_listen).await?;
    let demo_listener = bind(args.demo_listen).await?;
    // Stripe cannot be reached from a development machine without an account: the stand-in
    // answers the production client on a free port, and sends its webhooks back here.
    let stripe_listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let stripe_url = format!("http://{}", stripe_listener.local_addr()?);
    let stripe_standin = StripeStandIn::new(clock.clone(), &plans);
    let webhook_secret = format!("whsec_{}", secrets::new_token());
    let stripe = Stripe::new(
        "sk_test_local_standin",
        &webhook_secret,
        &format!("{stripe_url}/"),
    )
    .map_err(anyhow::Error::msg)?;
    // VIES is not reached from development either: its stand-in knows one valid id.
    let vies_listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let vies_url = format!("http://{}", vies_listener.local_addr()?);
    let vies_standin = ViesStandIn::new();
    vies_standin.register(
        DEV_VALID_VAT_ID,
        "Demo Kunde GmbH",
        "Musterstraße 1, 10115 Berlin",
    );
    let vies = Vies::new(&vies_url, VatId::parse(DEV_REQUESTER_VAT_ID));
    let control_url = format!("http://{}", control.local_addr()?);
    stripe_standin.deliver_webhooks_to(
        &format!("{control_url}/billing/stripe/webhook"),
        &webhook_secret,
    );
    // The dashboard is reached by name: passkeys (WebAuthn) refuse IP addresses.
    let dashboard_url = format!("http://localhost:{}", control.local_addr()?.port());
    let edge_url = format!("http://{}", edge_listener.local_addr()?);
    let demo_url = format!("http://{}", demo_listener.local_addr()?);
    let state = AppState::new(
        db,
        master,
        clock,
        Publisher::Local(edge.clone()),
        Mailer::Outbox(args.data_dir.join("outbox")),
        WebConfig::new(&dashboard_url, &edge_url, true).with_contact_form(Some(ContactForm {
            site_key: contact.site_key,
            secret: contact.secret,
            // Every topic, each to its own address, all of them landing in the outbox.
            inboxes: Topic::ALL
                .into_iter()
                .map(|topic| (topic, format!("{}@{DEV_INBOX_DOMAIN}", topic.as_str())))
                .collect(),
        })),
    )
    .with(|state| {
        state.plans = plans;
        state.stripe = Some(stripe);
        state.vies = vies;
    });
    // Telemetry goes through the same service as the production ingest endpoint, so usage
    // notices go out locally too.
    tokio::spawn(deliver_telemetry(events, state.clone(), snapshot_changed));

    println!("HumanProof is running locally.");
    println!("  demo site      {demo_url}");
    println!("  edge           {edge_url}");
    println!(
        "  dashboard      {dashboard_url}  (sign up there; email lands in {dashboard_url}/dev/outbox)"
    );
    println!("  siteverify     {control_url}/siteverify");
    println!("  demo site key  {}", demo.site_key);
    println!("  demo secret    {}", demo.secret);
    println!("  data           {}", args.data_dir.display());
    println!("  Stripe         {stripe_url} (a local stand-in, not Stripe: no card, no charge)");
    println!(
        "  VIES           {vies_url} (a local stand-in: {DEV_VALID_VAT_ID} is a valid VAT id, any other is not)"
    );
    println!("Press Ctrl-C to stop.");

    let demo_site = demo::router(demo::DemoSite {
        site_key: demo.site_key,
        secret: demo.secret,
        edge_url,
        siteverify_url: format!("{control_url}/siteverify"),
        http: crate::http::client(),
    });
    // The control plane is served exactly as in production; the edge and the demo site are
    // development stand-ins with no middleware of their own.
    let serve_plain = |listener, router| server::serve_router(listener, router, shutdown_signal());
    tokio::join!(
        server::serve(control, state, shutdown_signal()),
        serve_plain(
            edge_listener,
            edge_router(edge, args.widget_dir.clone(), Arc::new(geo))
        ),
        serve_plain(demo_listener, demo_site),
        serve_plain(stripe_listener, stripe_standin.router()),
        serve_plain(vies_listener, vies_standin.router()),
    );
    Ok(())
}

/// A project's keys, as its site's backend would keep them.
struct ProjectKeys {
    site_key: String,
    secret: String,
}

/// Creates the demo project on first start (testing domains `localhost` and `127.0.0.1`)
/// and keeps its keys in `data/demo-site.json`; the environment can fix both keys.
async fn ensure_demo_project(db: &Db, args: &DevArgs, now: i64) -> anyhow::Result<ProjectKeys> {
    let fixed = ProjectKeys {
        site_key: args.demo_site_key.clone().unwrap_or_default(),
        secret: args.demo_secret.clone().unwrap_or_default(),
    };
    // Relaxed keeps the demo page's plain-JavaScript solver quick.
    let demo = local_project("Demo site", Preset::Relaxed);
    ensure_project(db, &args.data_dir.join("demo-site.json"), fixed, &demo, now).await
}

/// Creates the project that protects the dashboard's own contact form on first start, as an
/// operator does in production, and keeps its keys in `data/contact-form.json`.
async fn ensure_contact_project(db: &Db, args: &DevArgs, now: i64) -> anyhow::Result<ProjectKeys> {
    let contact = local_project("HumanProof contact form", Preset::Relaxed);
    let none = ProjectKeys {
        site_key: String::new(),
        secret: String::new(),
    };
    ensure_project(
        db,
        &args.data_dir.join("contact-form.json"),
        none,
        &contact,
        now,
    )
    .await
}

/// A project of the operator's for pages served on this machine.
fn local_project(name: &str, preset: Preset) -> ProjectSettings {
    ProjectSettings {
        name: name.into(),
        production_domains: vec![],
        testing_domains: vec!["localhost".into(), "127.0.0.1".into()],
        allow_subdomains: false,
        preset,
        risk_mode: RiskMode::Observe,
        // The demo shows every widget look, which the Business plan includes.
        plan: "business".into(),
        billing_status: BillingStatus::Active,
        monthly_limit: None,
        active: true,
        widget: Default::default(),
    }
}

/// Creates the project on first start and keeps its keys in `keys_file`; a non-empty key in
/// `fixed` overrides the saved one.
async fn ensure_project(
    db: &Db,
    keys_file: &std::path::Path,
    fixed: ProjectKeys,
    settings: &ProjectSettings,
    now: i64,
) -> anyhow::Result<ProjectKeys> {
    let saved: Option<serde_json::Value> = std::fs::read_to_string(keys_file)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let saved_field = |name: &str| {
        saved
            .as_ref()
            .and_then(|v| v[name].as_str())
            .map(str::to_owned)
    };
    let site_key = Some(fixed.site_key)
        .filter(|key| !key.is_empty())
        .or_else(|| saved_field("site_key"))
        .unwrap_or_else(secrets::new_site_key);
    let secret = Some(fixed.secret)
        .filter(|secret| !secret.is_empty())
        .or_else(|| saved_field("secret"))
        .unwrap_or_else(secrets::new_backend_secret);

    match projects::find_by_site_key(db, &site_key).await? {
        Some(project) => projects::set_secret(db, &project.id, &secret, now).await?,
        None => {
            projects::insert(db, None, settings, &site_key, &secret, now).await?;
        }
    }
    let keys = serde_json::json!({ "site_key": site_key, "secret": secret });
    write_private(keys_file, &keys.to_string())?;
    Ok(ProjectKeys { site_key, secret })
}

/// Rebuilds every entry and hands it to the in-process edge: the local "KV publish".
pub async fn publish_snapshot(
    db: &Db,
    edge: &Arc<LocalEdge>,
    plans: &Catalogue,
    clock: &Clock,
) -> Result<(), PublishError> {
    Publisher::Local(edge.clone())
        .republish_all(db, plans, clock.now_ms())
        .await
        .map(drop)
}

async fn refresh_snapshot(
    db: Db,
    edge: Arc<LocalEdge>,
    plans: Catalogue,
    clock: Clock,
    changed: Arc<Notify>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(SNAPSHOT_REFRESH) => {}
            () = changed.notified() => {}
        }
        if let Err(err) = publish_snapshot(&db, &edge, &plans, &clock).await {
            tracing::warn!(error = %err, "snapshot refresh failed; the edge keeps the previous one");
        }
    }
}
