//! The account page: language, two-factor authentication, passkeys, re-authentication and
//! closing the account.

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::extract::{Form, SignedIn, clear_session_cookie};
use super::render::{
    Frame, Page, PageError, account_error_status, account_error_text, format_time, json_download,
    render, with_retry_after,
};
use super::security::CsrfToken;
use crate::accounts::{self, AccountError};
use crate::service::export;
use crate::state::AppState;

async fn account_page(
    state: &AppState,
    csrf: &CsrfToken,
    user: &crate::db::accounts::User,
    session_token: &str,
    status: StatusCode,
    extra: minijinja::Value,
) -> Page {
    let recently_authenticated = accounts::recently_authenticated(state, session_token)
        .await
        .unwrap_or(false);
    let frame = Frame {
        csrf,
        user: Some(user),
        actor: None,
        section: "account",
    };
    let languages = &crate::i18n::LANGUAGES;
    let passkeys: Vec<minijinja::Value> = crate::passkeys::list(state, user)
        .await
        .unwrap_or_default()
        .iter()
        .map(|p| {
            context! {
                id => p.id, name => p.name, added => format_time(p.created_at),
                last_used => p.last_used_at.map(format_time), paused => p.paused_at.is_some(),
            }
        })
        .collect();
    // A setup begun and not confirmed stays on the page, with the key the app scanned.
    let setup = accounts::pending_totp(state, user)
        .await
        .unwrap_or_default()
        .map(|pending| setup_view(&pending));
    let sessions: Vec<minijinja::Value> = match accounts::sessions(state, user, session_token).await
    {
        Ok((sessions, this)) => sessions
            .iter()
            .map(|s| {
                context! {
                    handle => s.handle, this => s.handle == this,
                    started => format_time(s.created_at), ends => format_time(s.expires_at),
                }
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    render(
        state,
        status,
        "account.html",
        &frame,
        context! {
            totp_enabled => user.totp_enabled, language => user.language, languages => languages, passkeys => passkeys,
            recently_authenticated => recently_authenticated, setup => setup, sessions => sessions, ..extra
        },
    )
}

/// `GET /account`: language, two-factor authentication, deletion.
pub async fn account(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, token }: SignedIn,
) -> Page {
    account_page(&state, &csrf, &user, &token, StatusCode::OK, context! {}).await
}

/// Forms of the account page that take one field.
#[derive(Debug, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    new_email: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

async fn account_result(
    state: &AppState,
    csrf: &CsrfToken,
    user: &crate::db::accounts::User,
    session_token: &str,
    result: Result<minijinja::Value, AccountError>,
) -> Page {
    match result {
        Ok(extra) => account_page(state, csrf, user, session_token, StatusCode::OK, extra).await,
        Err(err) => {
            account_page(
                state,
                csrf,
                user,
                session_token,
                account_error_status(&err),
                context! { error => account_error_text(&err) },
            )
            .await
        }
    }
}

/// The account page again, after a form that changed something, saying what.
fn back_to_account(state: &AppState, notice: &str) -> Response {
    super::flash::redirect(state, "/account", &super::flash::Flash::notice(notice))
}

/// `POST /account/language`: saves it, then shows the account page in it.
pub async fn set_language(
    State(state): State<AppState>,
    SignedIn { user, .. }: SignedIn,
    Form(form): Form<AccountForm>,
) -> Result<Response, PageError> {
    accounts::set_language(&state, &user, &form.language).await?;
    Ok(back_to_account(&state, "Language saved."))
}

/// A TOTP setup as the page shows it: the key, its URI, and the QR code of the URI.
fn setup_view(pending: &accounts::PendingTotp) -> minijinja::Value {
    // The SVG is built here from the URI alone, so it needs no escaping.
    let qr = minijinja::Value::from_safe_string(crate::totp::qr_code_svg(&pending.uri));
    context! { secret => pending.secret, uri => pending.uri, qr => qr }
}

/// `POST /account/two-factor/setup`: shows the secret to scan, unconfirmed (the same one
/// again for a setup already begun).
pub async fn begin_totp(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, token }: SignedIn,
) -> Page {
    let result = accounts::begin_totp_setup(&state, &user)
        .await
        .map(|pending| context! { setup => setup_view(&pending) });
    account_result(&state, &csrf, &user, &token, result).await
}

/// `POST /account/two-factor/cancel`: throws away a setup not confirmed.
pub async fn cancel_totp(
    State(state): State<AppState>,
    SignedIn { user, .. }: SignedIn,
) -> Result<Response, PageError> {
    accounts::cancel_totp_setup(&state, &user).await?;
    Ok(back_to_account(&state, "Two-factor setup cancelled."))
}

/// `POST /account/two-factor/confirm`: turns TOTP on and shows the recovery codes once.
pub async fn confirm_totp(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { mut user, token }: SignedIn,
    Form(form): Form<AccountForm>,
) -> Page {
    let result = accounts::confirm_totp(&state, &user, &form.code).await;
    if result.is_ok() {
        user.totp_enabled = true;
    }
    let result = result.map(
        |codes| context! { recovery_codes => codes, notice => "Two-factor authentication is on." },
    );
    account_result(&state, &csrf, &user, &token, result).await
}

/// `POST /account/two-factor/disable`: asks for the password; a wrong one is refused in the
/// form.
pub async fn disable_totp(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, token }: SignedIn,
    Form(form): Form<AccountForm>,
) -> Response {
    match accounts::disable_totp(&state, &user, &form.password).await {
        Ok(()) => back_to_account(&state, "Two-factor authentication is off."),
        Err(err) => account_result(&state, &csrf, &user, &token, Err(err))
            .await
            .into_response(),
    }
}

/// The confirm-identity form.
#[derive(Debug, Deserialize)]
pub struct ConfirmIdentityForm {
    #[serde(default)]
    password_or_code: String,
}

/// `POST /account/confirm-identity`: the password (or an authenticator code) again, which
/// adding or confirming a passkey in the next minutes needs.
pub async fn confirm_identity(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, token }: SignedIn,
    Form(form): Form<ConfirmIdentityForm>,
) -> Response {
    match accounts::confirm_identity(&state, &user, &token, &form.password_or_code).await {
        Ok(()) => {
            let notice = context! { notice => "Confirmed. You can add or confirm a passkey in the next 10 minutes." };
            account_page(&state, &csrf, &user, &token, StatusCode::OK, notice)
                .await
                .into_response()
        }
        Err(err) => {
            let page = account_page(
                &state,
                &csrf,
                &user,
                &token,
                account_error_status(&err),
                context! { error => account_error_text(&err) },
            )
            .await;
            with_retry_after(page, &err)
        }
    }
}

/// `POST /account/delete`: marks the account for deletion and signs out.
pub async fn delete_account(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, token }: SignedIn,
    Form(form): Form<AccountForm>,
) -> Response {
    match accounts::mark_for_deletion(&state, &user, &form.password).await {
        Ok(()) => (
            [(header::SET_COOKIE, clear_session_cookie())],
            Redirect::to("/sign-in"),
        )
            .into_response(),
        Err(err) => account_page(
            &state,
            &csrf,
            &user,
            &token,
            account_error_status(&err),
            context! { error => account_error_text(&err) },
        )
        .await
        .into_response(),
    }
}

/// `GET /account/export`: everything HumanProof holds about the signed-in person, as JSON.
pub async fn export_account(
    State(state): State<AppState>,
    SignedIn { user, .. }: SignedIn,
) -> Result<Response, PageError> {
    let data = export::account_data(&state, &user).await?;
    Ok(json_download("humanproof-account.json", &data))
}

/// `POST /account/password`: a new password, given the current one.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, token }: SignedIn,
    Form(form): Form<AccountForm>,
) -> Response {
    match accounts::change_password(&state, &user, &token, &form.password, &form.new_password).await
    {
        Ok(()) => back_to_account(
            &state,
            "Password changed. Your other sessions were signed out.",
        ),
        Err(err) => account_result(&state, &csrf, &user, &token, Err(err))
            .await
            .into_response(),
    }
}

/// `POST /account/sessions/{handle}/end`: signs out one of the user's other sessions.
pub async fn end_session(
    State(state): State<AppState>,
    SignedIn { user, token }: SignedIn,
    axum::extract::Path(handle): axum::extract::Path<String>,
) -> Result<Response, PageError> {
    if !accounts::end_session(&state, &user, &token, &handle).await? {
        return Err(crate::error::ApiError::NotFound.into());
    }
    Ok(back_to_account(&state, "That session is signed out."))
}

/// `POST /account/email`: a link to the new address, which moves the account when opened.
pub async fn change_email(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, token }: SignedIn,
    Form(form): Form<AccountForm>,
) -> Response {
    match accounts::request_email_change(&state, &user, &form.password, &form.new_email).await {
        Ok(_) => back_to_account(
            &state,
            "We sent a link to the new address. Your address changes when you open it.",
        ),
        Err(err) => account_result(&state, &csrf, &user, &token, Err(err))
            .await
            .into_response(),
    }
}

/// `GET /account/email/confirm?token=…`: the emailed link that moves the account.
pub async fn confirm_email_change(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    axum::extract::Query(query): axum::extract::Query<super::auth::TokenQuery>,
) -> Response {
    match accounts::confirm_email_change(&state, &query.token).await {
        Ok(_) => back_to_account(&state, "Your address is changed."),
        Err(err) => super::render::message(
            &state,
            &csrf,
            account_error_status(&err),
            "Link not valid",
            &account_error_text(&err),
            Some(("/", "Go to your dashboard")),
        )
        .into_response(),
    }
}
