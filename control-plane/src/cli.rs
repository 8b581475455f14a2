//! The `humanproof` command line: serving, local development and operator tasks.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use humanproof_edge::instrumentation::Scene;
use humanproof_protocol::Obfuscation;
use humanproof_protocol::rsw::RswKey;
use humanproof_protocol::snapshot::RiskMode;
use serde_json::json;

use crate::clock::Clock;
use crate::config::{DatabaseArgs, KvArgs, PlansArgs, SecretArgs, StripeArgs, ViesArgs, WebArgs};
use crate::db::projects::{BillingStatus, ProjectSettings};
use crate::db::telemetry::Dimension;
use crate::db::{self, Db, month_of, orgs, projects, retention, telemetry};
use crate::mail::Mailer;
use crate::publish::Publisher;
use crate::service::billing;
use crate::service::projects::ProjectInput;
use crate::state::AppState;
use crate::state::WebConfig;
use crate::{accounts, local, secrets, server, snapshot};

/// HumanProof control plane.
#[derive(Debug, Parser)]
#[command(name = "humanproof", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at startup: boxing serve's settings would save nothing worth having"
)]
enum Command {
    /// Serve the control plane (siteverify, telemetry ingestion) for production.
    Serve {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        secret: SecretArgs,
        #[command(flatten)]
        web: WebArgs,
        #[command(flatten)]
        kv: KvArgs,
        #[command(flatten)]
        plans: PlansArgs,
        #[command(flatten)]
        stripe: StripeArgs,
        #[command(flatten)]
        vies: ViesArgs,
        /// Address to listen on.
        #[arg(long, env = "HUMANPROOF_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Serve Prometheus metrics at `/metrics` on this address (e.g. 127.0.0.1:9464),
        /// apart from the public one; none by default.
        #[arg(long, env = "HUMANPROOF_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Write the log to one file per UTC day in this folder, deleting files older than
        /// 14 days, instead of to standard output.
        #[arg(long, env = "HUMANPROOF_LOG_DIR")]
        log_dir: Option<std::path::PathBuf>,
    },
    /// Run the whole platform locally: control plane, edge and a demo site, on SQLite.
    Dev(local::DevArgs),
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Print a sample environment check (the script the widget runs, and its answer), to
    /// inspect what browsers are sent at each obfuscation level.
    Instrumentation {
        /// lighter, default or stronger.
        #[arg(long, value_enum, default_value = "default")]
        level: ObfuscationName,
        /// The check sent to browsers without `OffscreenCanvas`: no canvas half.
        #[arg(long)]
        without_canvas: bool,
    },
    /// Print a new RSW key for the edge's `HUMANPROOF_RSW_KEY` secret (two 1024-bit primes),
    /// needed by projects whose Custom preset asks for RSW puzzles.
    RswKey,
    /// Print the KV snapshot as `wrangler kv bulk put` input.
    Snapshot {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        plans: PlansArgs,
    },
    /// Republish every project's snapshot entry to Cloudflare KV, and carry out pending
    /// deletions.
    Publish {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        kv: KvArgs,
        #[command(flatten)]
        plans: PlansArgs,
    },
    /// Print the plans on sale (the built-in catalogue with the plans file applied), as JSON.
    Plans {
        #[command(flatten)]
        plans: PlansArgs,
    },
    /// An organisation's billing.
    Billing {
        #[command(subcommand)]
        command: BillingCommand,
    },
    /// Manage operator accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print a project's usage for a month as JSON.
    Usage {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Project id.
        #[arg(long)]
        project_id: String,
        /// Month as YYYY-MM; defaults to the current one.
        #[arg(long)]
        month: Option<String>,
    },
    /// Print the messages sent through the contact form (oldest first), as a JSON array; each
    /// says whether its topic's inbox has accepted it (`forwarded_at`).
    Messages {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Only this topic's: support, sales, dpa, security or privacy.
        #[arg(long)]
        topic: Option<String>,
        /// Only those of the last this many days (messages are kept 90).
        #[arg(long, default_value_t = 90)]
        days: u32,
    },
    /// Apply the retention rules once and print what they touched.
    Retention {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        plans: PlansArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an operator account with a verified email and its own organisation; prints
    /// the generated password once, as JSON.
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Email address.
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Create a project and print its id, site key and backend secret (shown only now).
    Create(Box<CreateProjectArgs>),
    /// Change a project's gates: active flag, billing status, monthly limit.
    SetGates {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Project id.
        #[arg(long)]
        project_id: String,
        /// Pause the project.
        #[arg(long)]
        paused: bool,
        /// Billing status.
        #[arg(long, value_enum, default_value = "active")]
        billing_status: BillingStatusName,
        /// Monthly limit of protected attempts (omit for unlimited).
        #[arg(long)]
        monthly_limit: Option<u64>,
    },
    /// Invalidate every outstanding challenge and verification token of a project (its token
    /// key moves to the next version). Siteverify refuses them at once; the edge once the
    /// change is published (`humanproof serve` publishes it within seconds, or run
    /// `humanproof publish`).
    RevokeTokens {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Project id.
        #[arg(long)]
        project_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum BillingCommand {
    /// Print an organisation's plan, billing status and this month's usage as JSON.
    Show {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        plans: PlansArgs,
        /// Organisation id.
        #[arg(long)]
        organisation_id: String,
    },
    /// Put an organisation on a plan with a billing status, and republish its projects'
    /// gates (an operator's tool; Stripe's webhooks do this for paying customers).
    Set {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        secret: SecretArgs,
        #[command(flatten)]
        kv: KvArgs,
        #[command(flatten)]
        plans: PlansArgs,
        /// Organisation id.
        #[arg(long)]
        organisation_id: String,
        /// Plan id (see `humanproof plans`).
        #[arg(long)]
        plan: String,
        /// Billing status.
        #[arg(long, value_enum, default_value = "active")]
        billing_status: BillingStatusName,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PresetName {
    Relaxed,
    Balanced,
    Strict,
    Custom,
}

/// The billing states as the CLI spells them (the data layer knows nothing of the CLI).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum BillingStatusName {
    Active,
    Trialing,
    PastDue,
    Canceled,
}

impl From<BillingStatusName> for BillingStatus {
    fn from(name: BillingStatusName) -> Self {
        match name {
            BillingStatusName::Active => Self::Active,
            BillingStatusName::Trialing => Self::Trialing,
            BillingStatusName::PastDue => Self::PastDue,
            BillingStatusName::Canceled => Self::Canceled,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ObfuscationName {
    Lighter,
    Default,
    Stronger,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RiskModeName {
    Observe,
    Enforce,
}

impl PresetName {
    fn as_str(self) -> &'static str {
        match self {
            Self::Relaxed => "relaxed",
            Self::Balanced => "balanced",
            Self::Strict => "strict",
            Self::Custom => "custom",
        }
    }
}

#[derive(Debug, clap::Args)]
struct CreateProjectArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Display name.
    #[arg(long)]
    name: String,
    /// Production hostname (repeatable).
    #[arg(long = "production-domain")]
    production_domains: Vec<String>,
    /// Testing hostname (repeatable), e.g. localhost.
    #[arg(long = "testing-domain")]
    testing_domains: Vec<String>,
    /// Let subdomains of the configured domains match.
    #[arg(long)]
    allow_subdomains: bool,
    /// Protection preset.
    #[arg(long, value_enum, default_value = "balanced")]
    preset: PresetName,
    /// Difficulty for the custom preset (1-8; Balanced's when omitted).
    #[arg(long)]
    difficulty: Option<u32>,
    /// Sub-challenge count for the custom preset (1-500).
    #[arg(long)]
    challenge_count: Option<u32>,
    /// Obfuscation of the environment check for the custom preset (lighter, default, stronger).
    #[arg(long)]
    obfuscation: Option<String>,
    /// Hard rate limit for the custom preset: challenge starts per visitor in two minutes,
    /// sustained (1-10000).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Risk score (1.0-10.0) from which enforce mode blocks, for the custom preset.
    #[arg(long)]
    block_threshold: Option<f64>,
    /// Kind of work for the custom preset: sha256, or rsw (needs the edge's RSW key).
    #[arg(long)]
    puzzle: Option<String>,
    /// Squarings of an RSW puzzle for the custom preset (10000-5000000).
    #[arg(long)]
    squarings: Option<u32>,
    /// Whether risk decisions are only recorded (observe) or also block (enforce).
    #[arg(long, value_enum, default_value = "observe")]
    risk_mode: RiskModeName,
    /// Monthly limit of protected attempts (omit for unlimited).
    #[arg(long)]
    monthly_limit: Option<u64>,
    /// Organisation that owns the project (omit for an operator-managed project).
    #[arg(long)]
    organisation_id: Option<String>,
    /// Plan name: `free` requires full branding; others may reduce or remove it.
    #[arg(long, default_value = "free")]
    plan: String,
    /// Billing status.
    #[arg(long, value_enum, default_value = "active")]
    billing_status: BillingStatusName,
    /// Create the project paused.
    #[arg(long)]
    paused: bool,
    /// Widget variant: checkbox, invisible or floating.
    #[arg(long, default_value = "checkbox")]
    widget_variant: String,
    /// Widget theme: auto, light or dark.
    #[arg(long, default_value = "auto")]
    widget_theme: String,
    /// Widget language: auto or a language the widget speaks (en, de, fr…).
    #[arg(long, default_value = "auto")]
    widget_language: String,
    /// Widget size: normal or compact.
    #[arg(long, default_value = "normal")]
    widget_size: String,
    /// Widget branding: full, minimal or none, as far as the plan allows.
    #[arg(long, default_value = "full")]
    widget_branding: String,
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output: `serve`, whose output is its log.
    Stdout,
    /// Standard error: every other command, whose standard output is its answer.
    Stderr,
    /// Daily files in a folder ([`crate::logs::DailyLogFiles`]).
    Files(std::path::PathBuf),
}

impl Cli {
    /// Where this command's log goes.
    pub fn log_target(&self) -> LogTarget {
        match &self.command {
            Command::Serve {
                log_dir: Some(dir), ..
            } => LogTarget::Files(dir.clone()),
            Command::Serve { .. } => LogTarget::Stdout,
            _ => LogTarget::Stderr,
        }
    }

    /// Runs the chosen command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve {
                database,
                secret,
                web,
                kv,
                plans,
                stripe,
                vies,
                listen,
                metrics_listen,
                log_dir: _,
            } => {
                let catalogue = plans.catalogue()?;
                let vies = vies.vies()?;
                let stripe = stripe.stripe()?;
                if stripe.is_none() {
                    tracing::warn!(
                        "no Stripe configured: billing is off and organisations keep the plan an operator set"
                    );
                }
                let publisher = kv.publisher()?;
                if matches!(publisher, Publisher::Disabled) {
                    tracing::warn!(
                        "no Cloudflare KV configured: export changes with `humanproof snapshot`"
                    );
                }
                let state = AppState::new(
                    Db::connect(&database.database_url).await?,
                    secret.require()?,
                    Clock::system(),
                    publisher,
                    web.mailer()?,
                    WebConfig::new(&web.public_url, &web.edge_url, false)
                        .behind(web.trusted_proxies.clone())
                        .with_subprocessors(web.subprocessors())
                        .with_contact_form(web.contact_form()?),
                )
                .with(|state| {
                    state.plans = catalogue;
                    state.stripe = stripe;
                    state.vies = vies;
                });
                let metrics = match metrics_listen {
                    Some(address) => {
                        let listener = server::bind(address).await?;
                        println!("metrics on http://{}/metrics", listener.local_addr()?);
                        Some(tokio::spawn(server::serve_metrics(listener, state.clone())))
                    }
                    None => None,
                };
                let listener = server::bind(listen).await?;
                // Printed, not logged: scripts and tests read the real port from it.
                println!("listening on http://{}", listener.local_addr()?);
                server::serve(listener, state, server::shutdown_signal()).await;
                if let Some(metrics) = metrics {
                    metrics.abort();
                }
                Ok(())
            }
            Command::Dev(args) => local::run(args).await,
            Command::Migrate { database } => {
                database.with(async |_| Ok(())).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Project {
                command: ProjectCommand::Create(args),
            } => create_project(*args).await,
            Command::Project {
                command:
                    ProjectCommand::SetGates {
                        database,
                        project_id,
                        paused,
                        billing_status,
                        monthly_limit,
                    },
            } => {
                database.with(async |db| {
                    let now = Clock::system().now_ms();
                    projects::set_gates(
                        db,
                        &project_id,
                        !paused,
                        billing_status.into(),
                        monthly_limit,
                        now,
                    )
                    .await?;
                    println!("{}", json!({ "project_id": project_id, "updated": true }));
                    Ok(())
                })
                .await
            }
            Command::Project {
                command:
                    ProjectCommand::RevokeTokens {
                        database,
                        project_id,
                    },
            } => {
                database.with(async |db| {
                    let now = Clock::system().now_ms();
                    let project = projects::find(db, &project_id)
                        .await?
                        .with_context(|| format!("no project {project_id}"))?;
                    let key_version = projects::bump_key_version(db, &project.id, now).await?;
                    // In the project's organisation's log too, so its owners see who revoked.
                    db::orgs::audit(
                        db,
                        project.organisation_id.as_deref(),
                        "operator",
                        "project.tokens_revoked",
                        Some(&project.id),
                        now,
                    )
                    .await?;
                    println!(
                        "{}",
                        json!({ "project_id": project_id, "key_version": key_version })
                    );
                    Ok(())
                })
                .await
            }
            Command::Snapshot { database, plans } => {
                database.with(async |db| {
                    let entries =
                        snapshot::build_all(db, &plans.catalogue()?, Clock::system().now_ms()).await?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&snapshot::kv_pairs(&entries))?
                    );
                    Ok(())
                })
                .await
            }
            Command::RswKey => {
                println!("{}", RswKey::generate().to_secret_string());
                Ok(())
            }
            Command::Plans { plans } => {
                println!("{}", serde_json::to_string_pretty(&plans.catalogue()?)?);
                Ok(())
            }
            Command::Billing { command } => billing_command(command).await,
            Command::Publish {
                database,
                kv,
                plans,
            } => {
                let publisher = kv.publisher()?;
                anyhow::ensure!(
                    !matches!(publisher, Publisher::Disabled),
                    "configure Cloudflare KV (see --help)"
                );
                database.with(async |db| {
                    let report = publisher
                        .republish_all(db, &plans.catalogue()?, Clock::system().now_ms())
                        .await?;
                    println!("{}", serde_json::to_string(&report)?);
                    Ok(())
                })
                .await
            }
            Command::Admin {
                command: AdminCommand::Create { database, email },
            } => {
                database.with(async |db| {
                    let email = accounts::normalize_email(&email)?;
                    let password = secrets::new_token();
                    let now = Clock::system().now_ms();
                    let user = db::accounts::insert_user(
                        db,
                        &email,
                        &accounts::hash_password(&password).await,
                        true,
                        now,
                    )
                    .await?;
                    db::accounts::mark_email_verified(db, &user.id, now).await?;
                    let organisation_id =
                        db::orgs::create_organisation(db, "Operators", &user.id, now).await?;
                    db::orgs::audit(
                        db,
                        Some(&organisation_id),
                        "operator",
                        "admin.created",
                        Some(&email),
                        now,
                    )
                    .await?;
                    let output = json!({ "user_id": user.id, "email": email, "password": password, "organisation_id": organisation_id });
                    println!("{}", serde_json::to_string_pretty(&output)?);
                    Ok(())
                })
                .await
            }
            Command::Usage {
                database,
                project_id,
                month,
            } => {
                database.with(async |db| {
                    let month = month.unwrap_or_else(|| month_of(Clock::system().now_ms()));
                    let usage = telemetry::usage(db, &project_id, &month).await?;
                    let countries =
                        telemetry::top_networks(db, &project_id, &month, Dimension::Country, 20)
                            .await?;
                    let networks =
                        telemetry::top_networks(db, &project_id, &month, Dimension::Asn, 20).await?;
                    let output = json!({
                        "project_id": project_id, "month": month, "usage": usage,
                        "countries": countries, "networks": networks,
                    });
                    println!("{output}");
                    Ok(())
                })
                .await
            }
            Command::Messages {
                database,
                topic,
                days,
            } => {
                if let Some(topic) = &topic {
                    anyhow::ensure!(
                        crate::contact::Topic::parse(topic).is_some(),
                        "{topic:?} is not a topic: support, sales, dpa, security or privacy"
                    );
                }
                database.with(async |db| {
                    let since = Clock::system().now_ms() - i64::from(days) * crate::db::stats::DAY_MS;
                    let messages = crate::db::support::list(db, topic.as_deref(), since).await?;
                    println!("{}", serde_json::to_string_pretty(&messages)?);
                    Ok(())
                })
                .await
            }
            Command::Instrumentation {
                level,
                without_canvas,
            } => {
                let level = match level {
                    ObfuscationName::Lighter => Obfuscation::Lighter,
                    ObfuscationName::Default => Obfuscation::Default,
                    ObfuscationName::Stronger => Obfuscation::Stronger,
                };
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)
                    .map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
                let scene = Scene::new(seed, level);
                let scene = if without_canvas {
                    scene.without_canvas()
                } else {
                    scene
                };
                println!(
                    "{}",
                    json!({ "level": level, "script": scene.script(), "answer": scene.answer() })
                );
                Ok(())
            }
            Command::Retention { database, plans } => {
                database.with(async |db| {
                    let now_ms = Clock::system().now_ms();
                    let rules = retention::apply(db, now_ms).await?;
                    let windows =
                        retention::apply_plan_windows(db, &plans.catalogue()?, now_ms).await?;
                    println!(
                        "{}",
                        serde_json::json!({ "rules": rules, "plan_windows": windows })
                    );
                    Ok(())
                })
                .await
            }
        }
    }
}

async fn billing_command(command: BillingCommand) -> anyhow::Result<()> {
    match command {
        BillingCommand::Show {
            database,
            plans,
            organisation_id,
        } => {
            database
                .with(async |db| {
                    ensure_organisation(db, &organisation_id).await?;
                    let overview = billing::overview_of(
                        db,
                        &plans.catalogue()?,
                        &organisation_id,
                        Clock::system().now_ms(),
                    )
                    .await?;
                    println!("{}", serde_json::to_string_pretty(&overview)?);
                    Ok(())
                })
                .await?;
        }
        BillingCommand::Set {
            database,
            secret,
            kv,
            plans,
            organisation_id,
            plan,
            billing_status,
        } => {
            database
                .with(async |db| {
                    ensure_organisation(db, &organisation_id).await?;
                    let catalogue = plans.catalogue()?;
                    let state = AppState::new(
                        db.clone(),
                        secret.require()?,
                        Clock::system(),
                        kv.publisher()?,
                        Mailer::Outbox(std::env::temp_dir()),
                        WebConfig::new("http://localhost", "http://localhost", false),
                    )
                    .with(|state| state.plans = catalogue);
                    billing::set_plan(&state, &organisation_id, &plan, billing_status.into())
                        .await
                        .map_err(|err| anyhow::anyhow!("{err}"))?;
                    println!(
                        "{}",
                        json!({ "organisation_id": organisation_id, "plan": plan, "updated": true })
                    );
                    Ok(())
                })
                .await?;
        }
    }
    Ok(())
}

/// Fails unless an organisation `id` exists.
async fn ensure_organisation(db: &Db, id: &str) -> anyhow::Result<()> {
    let name = orgs::organisation_name(db, id).await?;
    anyhow::ensure!(name.is_some(), "no organisation {id}");
    Ok(())
}

async fn create_project(args: CreateProjectArgs) -> anyhow::Result<()> {
    // Operators get the same rules as customers: one ProjectInput, checked in one place.
    let defaults = ProjectSettings::new_project(&args.plan, args.billing_status.into());
    let input = ProjectInput {
        name: Some(args.name),
        production_domains: Some(args.production_domains),
        testing_domains: Some(args.testing_domains),
        allow_subdomains: Some(args.allow_subdomains),
        preset: Some(args.preset.as_str().to_owned()),
        risk_mode: Some(match args.risk_mode {
            RiskModeName::Observe => RiskMode::Observe,
            RiskModeName::Enforce => RiskMode::Enforce,
        }),
        difficulty: args.difficulty,
        challenge_count: args.challenge_count,
        obfuscation: args.obfuscation,
        rate_limit: args.rate_limit,
        block_threshold: args.block_threshold,
        puzzle: args.puzzle,
        squarings: args.squarings,
        monthly_limit: args.monthly_limit,
        active: Some(!args.paused),
        widget: Some(serde_json::from_value(json!({
            "variant": args.widget_variant, "theme": args.widget_theme,
            "language": args.widget_language, "size": args.widget_size,
            "branding": args.widget_branding,
        }))?),
        ..ProjectInput::default()
    };
    let new = input
        .apply(defaults)
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    args.database
        .with(async |db| {
            let site_key = secrets::new_site_key();
            let secret = secrets::new_backend_secret();
            let project = projects::insert(
                db,
                args.organisation_id.as_deref(),
                &new,
                &site_key,
                &secret,
                Clock::system().now_ms(),
            )
            .await?;
            let output =
                json!({ "project_id": project.id, "site_key": project.site_key, "secret": secret });
            println!("{}", serde_json::to_string_pretty(&output)?);
            Ok(())
        })
        .await
}
