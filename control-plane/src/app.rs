//! The control plane's route table, grouped by audience, and its shared state.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use humanproof_protocol::MasterSecret;
use tokio::sync::Notify;

use crate::client_ip::TrustedProxies;
use crate::clock::Clock;
use crate::db::Db;
use crate::error::ApiError;
use crate::mail::Mailer;
use crate::publish::Publisher;
use crate::routes::{api, health, siteverify, telemetry};

/// Largest body any control-plane endpoint reads.
pub const MAX_BODY: usize = 1024 * 1024;

/// Where the dashboard lives and what it links to.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The control plane's public URL (links in emails, siteverify in code samples).
    pub public_url: String,
    /// The edge's public URL (the widget script in snippets).
    pub edge_url: String,
    /// Cookies get `Secure` (set when the public URL is https).
    pub secure_cookies: bool,
    /// Serve `/dev/outbox` (local mode only).
    pub show_outbox: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: TrustedProxies,
}

impl WebConfig {
    /// Settings for a public URL; `Secure` cookies follow from https.
    pub fn new(public_url: &str, edge_url: &str, show_outbox: bool) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Self {
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            edge_url: edge_url.trim_end_matches('/').to_owned(),
            show_outbox,
            trusted_proxies: TrustedProxies::none(),
        }
    }

    /// The same, behind these reverse proxies.
    pub fn behind(self, trusted_proxies: TrustedProxies) -> Self {
        Self {
            trusted_proxies,
            ..self
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The operator's master secret: derives token keys and the telemetry signing key.
    pub master: MasterSecret,
    /// Time source.
    pub clock: Clock,
    /// Where snapshot changes go.
    pub publisher: Publisher,
    /// Wakes the background publisher when an inline publish failed.
    pub publish_wake: Arc<Notify>,
    /// Outgoing email.
    pub mailer: Mailer,
    /// Dashboard settings.
    pub web: WebConfig,
    /// Dashboard templates.
    pub templates: Arc<minijinja::Environment<'static>>,
}

impl AppState {
    /// Wires the state; the templates are parsed here, once.
    pub fn new(
        db: Db,
        master: MasterSecret,
        clock: Clock,
        publisher: Publisher,
        mailer: Mailer,
        web: WebConfig,
    ) -> Self {
        Self {
            db,
            master,
            clock,
            publisher,
            publish_wake: Arc::new(Notify::new()),
            mailer,
            web,
            templates: Arc::new(crate::web::templates()),
        }
    }
}

/// The control plane's HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        // Operators and load balancers.
        .route("/healthz", get(health::check_health))
        // Site backends.
        .route("/siteverify", post(siteverify::verify_token))
        // The edge's telemetry consumer.
        .route("/internal/telemetry", post(telemetry::ingest_batch))
        // Customers' automation.
        .route("/api/v1/openapi.json", get(api::openapi))
        .route(
            "/api/v1/projects",
            get(api::list_projects).post(api::create_project),
        )
        .route(
            "/api/v1/projects/{id}",
            get(api::get_project)
                .patch(api::update_project)
                .delete(api::delete_project),
        )
        .route(
            "/api/v1/projects/{id}/rotate-secret",
            post(api::rotate_secret),
        )
        .route(
            "/api/v1/projects/{id}/revoke-tokens",
            post(api::revoke_tokens),
        )
        .route("/api/v1/projects/{id}/usage", get(api::project_usage))
        // Customers, in a browser.
        .merge(crate::web::router(&state))
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
