//! Liveness and readiness, for load balancers and orchestrators.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// Longest a readiness check waits for the database: a probe that hangs is as bad as a
/// failed one, and load balancers give up after a few seconds.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /livez`: 200 while the process answers requests. It reads nothing, so a database
/// outage does not get a healthy process restarted (it recovers on its own when the database
/// is back).
pub async fn check_liveness() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the database answers within two seconds, else 503
/// `database_unavailable`: send no traffic here meanwhile (siteverify would answer
/// `internal-error`).
pub async fn check_readiness(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let query = sqlx::query("SELECT 1").execute(state.db.pool());
    match tokio::time::timeout(READINESS_TIMEOUT, query).await {
        Ok(Ok(_)) => Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "not ready: the database refused");
            Err(ApiError::Unavailable("database_unavailable"))
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer in time");
            Err(ApiError::Unavailable("database_unavailable"))
        }
    }
}
