//! `POST /internal/telemetry`: batches from the edge's queue consumer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use humanproof_protocol::TelemetryBatch;
use humanproof_protocol::telemetry::{MAX_BATCH_EVENTS, SIGNATURE_HEADER, verify_batch};

use crate::db::telemetry::IngestOutcome;
use crate::error::ApiError;
use crate::metrics::BatchResult;
use crate::service::usage;
use crate::state::AppState;

/// Checks the batch signature, then stores the events idempotently; counts the batch, its
/// events and their lag for `/metrics`.
pub async fn ingest_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestOutcome>, ApiError> {
    let batch = match read_batch(&state, &headers, body) {
        Ok(batch) => batch,
        Err(err) => {
            state.metrics.telemetry_batch(BatchResult::Refused);
            return Err(err);
        }
    };
    match usage::record_telemetry(&state, &batch.events).await {
        Ok(outcome) => {
            state.metrics.telemetry_batch(BatchResult::Stored {
                stored: outcome.stored,
                duplicates: outcome.duplicates,
                unknown_project: outcome.unknown_project,
                events: &batch.events,
                now_ms: state.clock.now_ms(),
            });
            Ok(Json(outcome))
        }
        Err(err) => {
            state.metrics.telemetry_batch(BatchResult::Failed);
            Err(err.into())
        }
    }
}

/// The batch, once its signature, shape and size are checked.
fn read_batch(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<TelemetryBatch, ApiError> {
    let body = body?;
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .ok_or(ApiError::Unauthorized("missing_signature"))?;
    let now = state.clock.now_ms();
    verify_batch(&state.master, signature, &body, now)
        .map_err(|_| ApiError::Unauthorized("invalid_signature"))?;
    let batch: TelemetryBatch = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("the body is not a telemetry batch"))?;
    if batch.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(batch)
}
