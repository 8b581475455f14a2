//! The control plane's route table, grouped by audience, and its shared state.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use humanproof_protocol::MasterSecret;

use crate::clock::Clock;
use crate::db::Db;
use crate::error::ApiError;
use crate::routes::{health, siteverify, telemetry};

/// Largest body any control-plane endpoint reads.
pub const MAX_BODY: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The operator's master secret: derives token keys and the telemetry signing key.
    pub master: MasterSecret,
    /// Time source.
    pub clock: Clock,
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
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
