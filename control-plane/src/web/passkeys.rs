//! The passkey endpoints the dashboard's script calls: JSON in, JSON out, with the CSRF
//! token in the `X-CSRF-Token` header.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::{PageError, SignedIn, cookie, session_cookie, SESSION_COOKIE};
use crate::app::AppState;
use crate::error::ApiError;
use crate::passkeys::{self, Finish, Started};

fn finish_body(body: Result<Bytes, BytesRejection>) -> Result<Finish, ApiError> {
    serde_json::from_slice(&body?).map_err(|_| ApiError::Invalid { field: "body", message: "Expected {ceremony, credential}.".into() })
}

/// `POST /account/passkeys/register/start`.
pub async fn start_registration(State(state): State<AppState>, signed_in: Option<SignedIn>) -> Result<Json<Started>, ApiError> {
    let user = signed_in.ok_or(ApiError::Unauthorized("sign_in"))?.user;
    Ok(Json(passkeys::start_registration(&state, &user).await?))
}

/// `POST /account/passkeys/register/finish`.
pub async fn finish_registration(
    State(state): State<AppState>,
    signed_in: Option<SignedIn>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = signed_in.ok_or(ApiError::Unauthorized("sign_in"))?.user;
    passkeys::finish_registration(&state, &user, finish_body(body)?).await?;
    Ok(Json(json!({ "redirect": "/account" })))
}

/// `POST /account/passkeys/{id}/delete` (a form).
pub async fn delete(State(state): State<AppState>, SignedIn { user, .. }: SignedIn, Path(id): Path<String>) -> Result<Redirect, PageError> {
    passkeys::delete(&state, &user, &id).await?;
    Ok(Redirect::to("/account"))
}

/// `POST /sign-in/passkey/start`.
pub async fn start_sign_in(State(state): State<AppState>) -> Result<Json<Started>, ApiError> {
    Ok(Json(passkeys::start_sign_in(&state).await?))
}

/// `POST /sign-in/passkey/finish`: sets the session cookie.
pub async fn finish_sign_in(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let (_, token) = passkeys::finish_sign_in(&state, finish_body(body)?).await?;
    Ok(([(header::SET_COOKIE, session_cookie(&state, &token))], Json(json!({ "redirect": "/" }))).into_response())
}

/// `POST /sign-in/second-factor/passkey/start`.
pub async fn start_second_factor(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Started>, ApiError> {
    let token = cookie(&headers, SESSION_COOKIE).ok_or(ApiError::Unauthorized("sign_in_again"))?;
    Ok(Json(passkeys::start_second_factor(&state, &token).await?))
}

/// `POST /sign-in/second-factor/passkey/finish`.
pub async fn finish_second_factor(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let token = cookie(&headers, SESSION_COOKIE).ok_or(ApiError::Unauthorized("sign_in_again"))?;
    passkeys::finish_second_factor(&state, &token, finish_body(body)?).await?;
    Ok(Json(json!({ "redirect": "/" })))
}
