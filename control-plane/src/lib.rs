//! The HumanProof control plane: projects, `siteverify` for site backends, durable
//! telemetry and usage accounting, and the snapshot the edge decides from.
//!
//! Every module, one line each, in five layers from the outside in. A module uses modules of
//! its own layer or of the layers below it, never one above, and there is no cycle between
//! modules; `tests::layers` reads the sources and fails when either stops being true.
//!
//! Entry points
//! - [`cli`]: the `humanproof` command (serve, dev, migrate, project, snapshot, usage…).
//! - [`config`]: settings from flags and the environment.
//! - [`local`]: the all-in-one development server (control plane, edge, demo site).
//! - [`server`]: the one function that serves the control plane (production, dev, tests).
//!
//! HTTP
//! - [`router`]: the whole route table, grouped by audience.
//! - [`routes`]: the JSON endpoints: siteverify, telemetry ingestion, `/api/v1`, health,
//!   and `/metrics`.
//! - [`web`]: the dashboard: extractors, CSRF and headers, rendering, one file per area.
//!
//! Services: the rules, each checking its own permissions and input
//! - [`service`]: what members and API keys do to an organisation (projects, usage,
//!   members, API keys, clients, audit), checked once for both front doors.
//! - [`accounts`]: sign-up, sign-in, throttles, sessions, TOTP, password reset.
//! - [`passkeys`]: WebAuthn registration, sign-in and second factor.
//!
//! State
//! - [`state`]: [`AppState`], what every handler and service reaches.
//! - [`publish`]: getting snapshot changes to the edge (in process or Cloudflare KV).
//! - [`snapshot`]: turning database state into the per-site-key entries the edge reads.
//!
//! Foundations
//! - [`db`]: the pool (SQLite or PostgreSQL through one code path) and the queries.
//! - [`error`]: the one error type of the services and the JSON API, and its response.
//! - [`roles`]: roles, API key scopes and the permissions they grant.
//! - [`plans`]: the plans sold, what each includes, and when billing lets traffic through.
//! - [`client_ip`]: who sent a request, believing `X-Forwarded-For` only from trusted proxies.
//! - [`mail`]: outgoing email (SMTP, or the dev outbox).
//! - [`templates`]: the dashboard's templates, parsed once.
//! - [`i18n`]: the dashboard's and emails' translations, keyed by their English text.
//! - [`totp`]: one-time codes and how their secrets are sealed at rest.
//! - [`secrets`]: site keys, backend secrets, tokens, and how secrets are stored (hashed).
//! - [`http`]: outbound HTTP clients and the TLS provider.
//! - [`stripe`]: Stripe's webhook signatures, the subscriptions billing reads back and changes,
//!   schedules, meter events, tax ids.
//! - [`vies`]: EU VAT ids, and the EU's VIES service that checks them.
//! - [`logs`]: where `serve` writes its log, and log files kept 14 days.
//! - [`metrics`]: the counters operators scrape, in Prometheus' text format.
//! - [`contact`]: the contact form's topics, their inboxes, and storing and forwarding its
//!   messages.
//! - [`privacy`]: the README, and the retention promises read from its table for the privacy
//!   page.
//! - [`clock`]: the time source, swappable in tests.

#![deny(missing_docs)]

pub mod accounts;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod contact;
pub mod db;
pub mod error;
pub mod http;
pub mod i18n;
pub mod local;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod passkeys;
pub mod plans;
pub mod privacy;
pub mod publish;
pub mod roles;
pub mod router;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod stripe;
pub mod templates;
pub mod totp;
pub mod vies;
pub mod web;

pub use router::app;
pub use state::AppState;
