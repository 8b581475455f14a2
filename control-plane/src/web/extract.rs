//! Extractors and cookies: the dashboard's `Form`, the signed-in user, the member acting in
//! an organisation, and the session cookie.
//!
//! Sessions: an HttpOnly, SameSite=Lax cookie holding a random token (Secure when the public
//! URL is https); the database keeps only its hash.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use serde::de::DeserializeOwned;

use super::render::PageError;
use crate::db::accounts::User;
use crate::error::ApiError;
use crate::i18n;
use crate::service::Actor;
use crate::state::AppState;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "hp_session";

/// The value of the cookie `name`, if the request sent it.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// axum's `Form`, but a body that lacks a field or has one that does not parse is refused
/// with a dashboard page in the visitor's language, not axum's plain-text 422.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, PageError> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => {
                tracing::debug!(%rejection, "form refused");
                Err(PageError::Api(ApiError::BadRequest(
                    "This form is missing a field, or one of its fields cannot be read. Reload the page and try again.",
                )))
            }
        }
    }
}

/// The signed-in user and their session token.
pub struct SignedIn {
    /// The user.
    pub user: User,
    /// The raw session token from the cookie.
    pub token: String,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(PageError::SignIn)?;
        let user = crate::accounts::session_user(state, &token)
            .await?
            .ok_or(PageError::SignIn)?;
        i18n::prefer_for_request(&user.language);
        Ok(Self { user, token })
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, PageError> {
        match <SignedIn as FromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(signed_in) => Ok(Some(signed_in)),
            Err(PageError::SignIn) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// The signed-in member acting in the organisation named by the path's `{org}`.
pub struct OrgActor(pub Actor);

impl FromRequestParts<AppState> for OrgActor {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let SignedIn { user, .. } = SignedIn::from_request_parts(parts, state).await?;
        let Path(params): Path<Vec<(String, String)>> = Path::from_request_parts(parts, state)
            .await
            .map_err(|_| PageError::Api(ApiError::NotFound))?;
        let org = params
            .iter()
            .find(|(name, _)| name == "org")
            .map(|(_, value)| value.clone())
            .ok_or(ApiError::NotFound)?;
        let actor = Actor::member(state, user, &org)
            .await?
            .ok_or(ApiError::NotFound)?;
        Ok(Self(actor))
    }
}

/// The session cookie for `token`.
pub fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    let secure = if state.web.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let max_age = crate::accounts::SESSION_TTL_MS / 1000;
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("hex is a valid header")
}

/// A cookie that clears the session.
pub fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static("hp_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}
