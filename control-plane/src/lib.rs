//! The HumanProof control plane: projects, `siteverify` for site backends, durable
//! telemetry and usage accounting, and the snapshot the edge decides from.
//!
//! Layout, from the outside in:
//! - [`cli`]: the `humanproof` command (serve, dev, migrate, project, snapshot, usage).
//! - [`config`]: settings from the environment.
//! - [`server`]: the one function that serves the control plane (production, dev, tests).
//! - [`app`]: the route table; [`routes`] holds one file per resource.
//! - [`client_ip`]: who sent a request, believing `X-Forwarded-For` only from trusted proxies.
//! - [`error`]: the one error type of the JSON API and its response shape.
//! - [`db`]: the pool (SQLite or PostgreSQL through one code path) and the queries.
//! - [`snapshot`]: builds the per-site-key entries the edge reads from KV.
//! - [`local`]: the all-in-one development server (control plane, edge, demo site).
//! - [`clock`]: the time source, swappable in tests.
//! - [`secrets`]: site keys, backend secrets and how secrets are stored (hashed).
//! - [`i18n`]: the dashboard's and emails' translations, keyed by their English text.

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
