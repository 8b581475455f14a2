//! `POST /siteverify`: Turnstile-shaped token verification for site backends.
//!
//! Accepts form-encoded or JSON bodies with `secret`, `response`, optional `remoteip` and
//! `idempotency_key`. A token is accepted once; a retry that repeats the first call's
//! `idempotency_key` gets the first answer again, marked `"humanproof": {"replayed": true}`
//! so a backend can tell a retry from a first success. Malformed requests and unknown secrets
//! get a 4xx; a well-formed request about a bad or used token gets 200 with
//! `success: false`, as Turnstile does, so existing Turnstile client code keeps working.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};

use crate::service::siteverify::{self, Answer, failure};
use crate::state::AppState;

/// Longest idempotency key accepted (Turnstile uses UUIDs).
const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// `POST /siteverify`, counted by outcome for `/metrics`.
pub async fn verify_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let answer = answer(&state, &headers, body).await;
    let response = &answer.1;
    let outcome = match response.error_codes.first() {
        Some(code) => code.as_str(),
        None if response
            .humanproof
            .as_ref()
            .is_some_and(|extras| extras.replayed) =>
        {
            "replayed"
        }
        None => "success",
    };
    state.metrics.siteverify(outcome);
    answer
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let Ok(body) = body else {
        return failure(
            StatusCode::BAD_REQUEST,
            "bad-request",
            Some("body_unreadable"),
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let Some(request) = humanproof_protocol::siteverify::parse(content_type, &body) else {
        return failure(StatusCode::BAD_REQUEST, "bad-request", None);
    };
    let Some(secret) = request.secret.filter(|secret| !secret.is_empty()) else {
        return failure(StatusCode::BAD_REQUEST, "missing-input-secret", None);
    };
    let Some(token) = request.response.filter(|token| !token.is_empty()) else {
        return failure(StatusCode::BAD_REQUEST, "missing-input-response", None);
    };
    let idempotency_key = request.idempotency_key.filter(|key| !key.is_empty());
    if idempotency_key
        .as_ref()
        .is_some_and(|key| key.len() > MAX_IDEMPOTENCY_KEY_LEN)
    {
        return failure(
            StatusCode::BAD_REQUEST,
            "bad-request",
            Some("idempotency_key_too_long"),
        );
    }
    siteverify::verify(state, &secret, &token, idempotency_key.as_deref()).await
}
