//! `POST /billing/stripe/webhook`: Stripe's events about subscriptions and invoices.
//!
//! A delivery is applied only when its `Stripe-Signature` verifies; a refused one gets 400
//! and changes nothing. Each event is applied once by its id, and applying reads the
//! subscription back from Stripe, so retries and out-of-order deliveries end in the same
//! state. A failure to apply answers 500, so that Stripe delivers the event again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::service::billing::{self, EventOutcome};
use crate::state::AppState;
use crate::stripe::WebhookError;

/// `POST /billing/stripe/webhook`.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(stripe) = state.stripe.clone() else {
        // Billing is off: there is no endpoint to deliver to.
        return Err(ApiError::NotFound);
    };
    let body = body?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let now_s = state.clock.now_ms().div_euclid(1000);
    let event = stripe
        .verify_webhook(&body, signature, now_s)
        .map_err(|err| match err {
            WebhookError::MissingSignature | WebhookError::BadSignature => {
                ApiError::BadRequest("the Stripe-Signature header does not sign this body")
            }
            WebhookError::NotAnEvent => ApiError::BadRequest("the body is not a Stripe event"),
        })?;
    match billing::apply_stripe_event(&state, &stripe, &event).await {
        Ok(outcome) => {
            let duplicate = outcome == EventOutcome::Duplicate;
            Ok((
                StatusCode::OK,
                Json(
                    json!({ "received": true, "outcome": outcome.as_str(), "duplicate": duplicate }),
                ),
            ))
        }
        Err(err) => {
            tracing::error!(error = %err, event = event.id, kind = event.kind, "Stripe event not applied; Stripe will deliver it again");
            Ok((
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "received": false })),
            ))
        }
    }
}
