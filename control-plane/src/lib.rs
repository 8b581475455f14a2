//! The HumanProof control plane: projects, `siteverify` for site backends, durable
//! telemetry and usage accounting, and the snapshot the edge decides from.
//!
//! Every module, one line each, from the outside in. A layer uses the ones below it, never
//! one above (issue 12 tracks the last places where that does not hold yet).
//!
//! Entry points
//! - [`cli`]: the `humanproof` command (serve, dev, migrate, project, snapshot, usage…).
//! - [`local`]: the all-in-one development server (control plane, edge, demo site).
//! - [`server`]: the one function that serves the control plane (production, dev, tests).
//! - [`config`]: settings from flags and the environment.
//!
//! HTTP
//! - [`app`]: the route table and the state every handler reaches.
//! - [`routes`]: the JSON endpoints: siteverify, telemetry ingestion, `/api/v1`, health.
//! - [`web`]: the dashboard: pages, forms, CSRF, sessions, passkey endpoints.
//! - [`client_ip`]: who sent a request, believing `X-Forwarded-For` only from trusted proxies.
//! - [`error`]: the JSON API's one error type and its response shape.
//!
//! Rules
//! - [`accounts`]: sign-up, sign-in, throttles, sessions, TOTP, password reset.
//! - [`passkeys`]: WebAuthn registration, sign-in and second factor.
//! - [`manage`]: what members and API keys do to an organisation, checked once for both.
//! - [`roles`]: roles, API key scopes and the permissions they grant.
//! - [`publish`]: getting snapshot changes to the edge (in process or Cloudflare KV).
//! - [`snapshot`]: turning database state into the per-site-key entries the edge reads.
//!
//! Foundations
//! - [`db`]: the pool (SQLite or PostgreSQL through one code path) and the queries.
//! - [`mail`]: outgoing email (SMTP, or the dev outbox).
//! - [`i18n`]: the dashboard's and emails' translations, keyed by their English text.
//! - [`totp`]: one-time codes and how their secrets are sealed at rest.
//! - [`secrets`]: site keys, backend secrets, tokens, and how secrets are stored (hashed).
//! - [`http`]: outbound HTTP clients and the TLS provider.
//! - [`clock`]: the time source, swappable in tests.

#![deny(missing_docs)]

pub mod accounts;
pub mod app;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod i18n;
pub mod local;
pub mod mail;
pub mod manage;
pub mod passkeys;
pub mod publish;
pub mod roles;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod snapshot;
pub mod totp;
pub mod web;

pub use app::{AppState, app};
