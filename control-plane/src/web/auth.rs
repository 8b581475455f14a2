//! Sign-up, sign-in, sign-out, email verification, password reset and the dev outbox.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use minijinja::context;
use serde::Deserialize;

use super::{CsrfToken, Frame, Page, PageError, SignedIn, clear_session_cookie, render, session_cookie};
use crate::accounts::{self, AccountError};
use crate::app::AppState;
use crate::db::orgs;
use crate::error::ApiError;

fn anonymous(csrf: &CsrfToken) -> Frame<'_> {
    Frame { csrf, user: None, actor: None, section: "" }
}

fn message(state: &AppState, csrf: &CsrfToken, status: StatusCode, heading: &str, text: &str, link: Option<(&str, &str)>) -> Page {
    let link = link.map(|(href, label)| context! { href => href, label => label });
    render(state, status, "message.html", &anonymous(csrf), context! { heading => heading, text => text, link => link })
}

fn account_error_status(err: &AccountError) -> StatusCode {
    match err {
        AccountError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AccountError::WrongCredentials | AccountError::AccountClosed => StatusCode::UNAUTHORIZED,
        AccountError::EmailTaken => StatusCode::CONFLICT,
        AccountError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn error_text(err: &AccountError) -> String {
    if let AccountError::Database(db) = err {
        tracing::error!(error = %db, "database error");
        return "Something went wrong on our side. Try again.".into();
    }
    err.to_string()
}

/// `GET /`: the first organisation's projects, or sign-in.
pub async fn home(State(state): State<AppState>, signed_in: Option<SignedIn>) -> Result<Redirect, PageError> {
    let Some(SignedIn { user, .. }) = signed_in else { return Ok(Redirect::to("/sign-in")) };
    let memberships = orgs::memberships(&state.db, &user.id).await?;
    let first = memberships.first().ok_or(ApiError::NotFound)?;
    Ok(Redirect::to(&format!("/orgs/{}/projects", first.organisation_id)))
}

/// `GET /sign-up`.
pub async fn sign_up_page(State(state): State<AppState>, Extension(csrf): Extension<CsrfToken>) -> Page {
    render(&state, StatusCode::OK, "sign_up.html", &anonymous(&csrf), context! { email => "", organisation => "" })
}

/// The sign-up form.
#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    email: String,
    password: String,
    #[serde(default)]
    organisation: String,
}

/// `POST /sign-up`: creates the account, sends the verification link and signs in.
pub async fn sign_up(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Form(form): Form<SignUpForm>,
) -> Response {
    match accounts::sign_up(&state, &form.email, &form.password, &form.organisation).await {
        Ok(user) => match accounts::start_session(&state, &user).await {
            Ok(token) => (
                [(header::SET_COOKIE, session_cookie(&state, &token))],
                Redirect::to("/"),
            )
                .into_response(),
            Err(err) => PageError::from(err).into_response(),
        },
        Err(err) => render(
            &state,
            account_error_status(&err),
            "sign_up.html",
            &anonymous(&csrf),
            context! { error => error_text(&err), email => form.email, organisation => form.organisation },
        )
        .into_response(),
    }
}

/// `GET /sign-in`.
pub async fn sign_in_page(State(state): State<AppState>, Extension(csrf): Extension<CsrfToken>) -> Page {
    render(&state, StatusCode::OK, "sign_in.html", &anonymous(&csrf), context! { email => "" })
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
}

/// `POST /sign-in`.
pub async fn sign_in(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<SignInForm>,
) -> Response {
    match accounts::sign_in(&state, &form.email, &form.password, &peer.ip().to_string()).await {
        Ok((_, token)) => ([(header::SET_COOKIE, session_cookie(&state, &token))], Redirect::to("/")).into_response(),
        Err(err) => {
            let mut response = render(
                &state,
                account_error_status(&err),
                "sign_in.html",
                &anonymous(&csrf),
                context! { error => error_text(&err), email => form.email },
            )
            .into_response();
            if let AccountError::Throttled { retry_after_s } = err {
                response.headers_mut().insert(header::RETRY_AFTER, retry_after_s.into());
            }
            response
        }
    }
}

/// `POST /sign-out`.
pub async fn sign_out(State(state): State<AppState>, signed_in: Option<SignedIn>) -> Result<Response, PageError> {
    if let Some(SignedIn { token, .. }) = signed_in {
        accounts::sign_out(&state, &token).await?;
    }
    Ok(([(header::SET_COOKIE, clear_session_cookie())], Redirect::to("/sign-in")).into_response())
}

/// A query carrying a one-time token.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `GET /verify-email?token=…`.
pub async fn verify_email(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(query): Query<TokenQuery>,
) -> Page {
    match accounts::verify_email(&state, &query.token).await {
        Ok(()) => message(&state, &csrf, StatusCode::OK, "Email confirmed", "Your email address is confirmed. You can create projects now.", Some(("/", "Go to your dashboard"))),
        Err(err) => message(&state, &csrf, account_error_status(&err), "Link not valid", &error_text(&err), Some(("/", "Go to your dashboard"))),
    }
}

/// `POST /verify-email/resend`.
pub async fn resend_verification(State(state): State<AppState>, SignedIn { user, .. }: SignedIn) -> Result<Redirect, PageError> {
    if !user.email_verified {
        accounts::send_verification(&state, &user).await?;
    }
    Ok(Redirect::to("/"))
}

/// `GET /forgot-password`.
pub async fn forgot_password_page(State(state): State<AppState>, Extension(csrf): Extension<CsrfToken>) -> Page {
    render(&state, StatusCode::OK, "forgot_password.html", &anonymous(&csrf), context! {})
}

/// The reset request form.
#[derive(Debug, Deserialize)]
pub struct ForgotForm {
    email: String,
}

/// `POST /forgot-password`: the same answer whether or not the address has an account.
pub async fn forgot_password(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Form(form): Form<ForgotForm>,
) -> Page {
    match accounts::request_password_reset(&state, &form.email).await {
        Ok(()) => message(&state, &csrf, StatusCode::OK, "Check your email", "If an account uses this address, we sent it a link to set a new password. The link works once, for one hour.", None),
        Err(err) => message(&state, &csrf, account_error_status(&err), "Try again", &error_text(&err), None),
    }
}

/// `GET /reset-password?token=…`.
pub async fn reset_password_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(query): Query<TokenQuery>,
) -> Result<Page, PageError> {
    if !accounts::reset_link_usable(&state, &query.token).await? {
        let err = AccountError::InvalidLink;
        return Ok(message(&state, &csrf, StatusCode::BAD_REQUEST, "Link not valid", &err.to_string(), Some(("/forgot-password", "Ask for a new link"))));
    }
    Ok(render(&state, StatusCode::OK, "reset_password.html", &anonymous(&csrf), context! { token => query.token }))
}

/// The new-password form.
#[derive(Debug, Deserialize)]
pub struct ResetForm {
    token: String,
    password: String,
}

/// `POST /reset-password`.
pub async fn reset_password(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Form(form): Form<ResetForm>,
) -> Page {
    match accounts::reset_password(&state, &form.token, &form.password).await {
        Ok(()) => message(&state, &csrf, StatusCode::OK, "Password changed", "Your password is set, and every other session was signed out.", Some(("/sign-in", "Sign in"))),
        Err(err @ AccountError::WeakPassword) => render(
            &state,
            StatusCode::BAD_REQUEST,
            "reset_password.html",
            &anonymous(&csrf),
            context! { token => form.token, error => error_text(&err) },
        ),
        Err(err) => message(&state, &csrf, account_error_status(&err), "Link not valid", &error_text(&err), Some(("/forgot-password", "Ask for a new link"))),
    }
}

/// `GET /dev/outbox`: local mode only.
pub async fn outbox(State(state): State<AppState>, Extension(csrf): Extension<CsrfToken>) -> Result<Page, PageError> {
    if !state.web.show_outbox {
        return Err(ApiError::NotFound.into());
    }
    let messages = state.mailer.outbox().await.unwrap_or_default();
    let messages: Vec<_> = messages
        .iter()
        .map(|text| {
            let links: Vec<&str> = text.split_whitespace().filter(|word| word.starts_with("http")).collect();
            context! { text => text, links => links }
        })
        .collect();
    Ok(render(&state, StatusCode::OK, "outbox.html", &anonymous(&csrf), context! { messages => messages }))
}
