//! The passkey endpoints the dashboard's script calls: JSON in, JSON out, with the CSRF
//! token in the `X-CSRF-Token` header. Refusals keep the API's JSON shape, but their message
//! is the one the script shows, so it is written for people and in the page's language.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::extract::{SESSION_COOKIE, SignedIn, cookie, session_cookie};
use super::render::PageError;
use crate::error::ApiError;
use crate::i18n;
use crate::passkeys::{self, Finish, Started};
use crate::state::AppState;

/// An [`ApiError`] whose message the passkey script shows to the person.
pub struct PasskeyRefusal(ApiError);

impl From<ApiError> for PasskeyRefusal {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl IntoResponse for PasskeyRefusal {
    fn into_response(self) -> Response {
        let message = match &self.0 {
            ApiError::Invalid { message, .. } => message.as_str(),
            ApiError::Unauthorized(_) => "Your sign-in has expired. Sign in again.",
            ApiError::Forbidden("account_closed") => {
                "Your account is marked for deletion and can no longer sign in."
            }
            _ => return self.0.into_response(),
        };
        self.0
            .response_with_message(i18n::translate(i18n::request_language(), message))
    }
}

fn finish_body(body: Result<Bytes, BytesRejection>) -> Result<Finish, ApiError> {
    serde_json::from_slice(&body?).map_err(|_| ApiError::Invalid {
        field: "body",
        message: "Expected {ceremony, credential}.".into(),
    })
}

/// `POST /account/passkeys/register/start`.
pub async fn start_registration(
    State(state): State<AppState>,
    signed_in: Option<SignedIn>,
) -> Result<Json<Started>, PasskeyRefusal> {
    let SignedIn { user, token } = signed_in.ok_or(ApiError::Unauthorized("sign_in"))?;
    Ok(Json(
        passkeys::start_registration(&state, &user, &token).await?,
    ))
}

/// `POST /account/passkeys/register/finish`.
pub async fn finish_registration(
    State(state): State<AppState>,
    signed_in: Option<SignedIn>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, PasskeyRefusal> {
    let SignedIn { user, token } = signed_in.ok_or(ApiError::Unauthorized("sign_in"))?;
    passkeys::finish_registration(&state, &user, &token, finish_body(body)?).await?;
    Ok(Json(json!({ "redirect": "/account" })))
}

/// `POST /account/passkeys/{id}/delete` (a form).
pub async fn delete(
    State(state): State<AppState>,
    SignedIn { user, .. }: SignedIn,
    Path(id): Path<String>,
) -> Result<Redirect, PageError> {
    passkeys::delete(&state, &user, &id).await?;
    Ok(Redirect::to("/account"))
}

/// `POST /account/passkeys/{id}/confirm` (a form): a paused passkey may sign in again.
pub async fn confirm(
    State(state): State<AppState>,
    SignedIn { user, token }: SignedIn,
    Path(id): Path<String>,
) -> Result<Redirect, PageError> {
    passkeys::confirm(&state, &user, &token, &id).await?;
    Ok(Redirect::to("/account"))
}

/// `POST /sign-in/passkey/start`.
pub async fn start_sign_in(State(state): State<AppState>) -> Result<Json<Started>, PasskeyRefusal> {
    Ok(Json(passkeys::start_sign_in(&state).await?))
}

/// `POST /sign-in/passkey/finish`: sets the session cookie.
pub async fn finish_sign_in(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, PasskeyRefusal> {
    let (_, token) = passkeys::finish_sign_in(&state, finish_body(body)?).await?;
    Ok((
        [(header::SET_COOKIE, session_cookie(&state, &token))],
        Json(json!({ "redirect": "/" })),
    )
        .into_response())
}

/// `POST /sign-in/second-factor/passkey/start`.
pub async fn start_second_factor(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Started>, PasskeyRefusal> {
    let token = cookie(&headers, SESSION_COOKIE).ok_or(ApiError::Unauthorized("sign_in_again"))?;
    Ok(Json(passkeys::start_second_factor(&state, &token).await?))
}

/// `POST /sign-in/second-factor/passkey/finish`.
pub async fn finish_second_factor(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, PasskeyRefusal> {
    let token = cookie(&headers, SESSION_COOKIE).ok_or(ApiError::Unauthorized("sign_in_again"))?;
    passkeys::finish_second_factor(&state, &token, finish_body(body)?).await?;
    Ok(Json(json!({ "redirect": "/" })))
}
