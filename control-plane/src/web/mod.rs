//! The dashboard: server-rendered HTML (minijinja templates in `control-plane/templates/`),
//! one small stylesheet and two small scripts, no front-end framework. Its routes are in
//! [`crate::router`]; every one passes [`security::protect`] (CSRF, language, headers).
//!
//! - Language: a signed-in user's preference, otherwise the request's `Accept-Language`
//!   (see [`crate::i18n`]); templates translate with `t("English text")`.
//! - Organisation pages live under `/orgs/{org}/…`; [`extract::OrgActor`] resolves the
//!   signed-in member's role there and answers 404 to non-members, and the handlers go
//!   through [`crate::service`] for every rule.
//!
//! Plumbing: [`extract`] (form, session, organisation actor), [`security`] (CSRF and
//! headers), [`flash`] (what a form says after its redirect), [`render`] (pages and error
//! pages), [`assets`] (static files). Handlers, one
//! file per area: [`auth`], [`account`], [`passkeys`], [`projects`], [`usage`], [`members`],
//! [`clients`], [`api_keys`], [`audit`], [`billing`], [`public`] (privacy, how it works, DPA), [`api_reference`],
//! [`docs`] (the README), [`contact`], [`dev`].

pub mod account;
pub mod api_keys;
pub mod api_reference;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod charts;
pub mod clients;
pub mod contact;
pub mod dev;
pub mod docs;
pub mod extract;
pub mod flash;
pub mod members;
pub mod passkeys;
pub mod projects;
pub mod public;
pub mod render;
pub mod security;
pub mod usage;
