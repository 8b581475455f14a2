//! Sign-up, sign-in, sign-out, email verification, password reset and the dev outbox.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::{
    CsrfToken, Form, Frame, Page, PageError, SignedIn, clear_session_cookie, render, session_cookie,
};
use crate::accounts::{self, AccountError, SignIn};
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::db::orgs;
use crate::error::ApiError;

fn anonymous(csrf: &CsrfToken) -> Frame<'_> {
    Frame {
        csrf,
        user: None,
        actor: None,
        section: "",
    }
}

fn message(
    state: &AppState,
    csrf: &CsrfToken,
    status: StatusCode,
    heading: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Page {
    let link = link.map(|(href, label)| context! { href => href, label => label });
    render(
        state,
        status,
        "message.html",
        &anonymous(csrf),
        context! { heading => heading, text => text, link => link },
    )
}

fn account_error_status(err: &AccountError) -> StatusCode {
    match err {
        AccountError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AccountError::WrongCredentials | AccountError::AccountClosed | AccountError::WrongCode => {
            StatusCode::UNAUTHORIZED
        }
        AccountError::AlreadyEnabled => StatusCode::CONFLICT,
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
pub async fn home(
    State(state): State<AppState>,
    signed_in: Option<SignedIn>,
) -> Result<Redirect, PageError> {
    let Some(SignedIn { user, .. }) = signed_in else {
        return Ok(Redirect::to("/sign-in"));
    };
    let memberships = orgs::memberships(&state.db, &user.id).await?;
    let first = memberships.first().ok_or(ApiError::NotFound)?;
    Ok(Redirect::to(&format!(
        "/orgs/{}/projects",
        first.organisation_id
    )))
}

/// `GET /sign-up`.
pub async fn sign_up_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Page {
    render(
        &state,
        StatusCode::OK,
        "sign_up.html",
        &anonymous(&csrf),
        context! { email => "", organisation => "" },
    )
}

/// The sign-up form.
#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    email: String,
    password: String,
    #[serde(default)]
    organisation: String,
}

/// `POST /sign-up`: creates the account in the language the browser asked for and sends the
/// link that confirms the address and signs in. The answer is the same whether or not the
/// address already had an account.
pub async fn sign_up(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    ClientIp(client_ip): ClientIp,
    Form(form): Form<SignUpForm>,
) -> Response {
    let language = crate::i18n::request_language();
    match accounts::sign_up(
        &state,
        &form.email,
        &form.password,
        &form.organisation,
        language,
        client_ip,
    )
    .await
    {
        Ok(()) => {
            let email = accounts::normalize_email(&form.email).unwrap_or_default();
            let text = crate::i18n::fill(
                crate::i18n::translate(
                    language,
                    "We sent a link to {email}. Open it within 24 hours to confirm your address and sign in.",
                ),
                &[("email", &email)],
            );
            message(
                &state,
                &csrf,
                StatusCode::OK,
                "Check your email",
                &text,
                None,
            )
            .into_response()
        }
        Err(err) => with_retry_after(
            render(
                &state,
                account_error_status(&err),
                "sign_up.html",
                &anonymous(&csrf),
                context! { error => error_text(&err), email => form.email, organisation => form.organisation },
            ),
            &err,
        ),
    }
}

/// A refusal page, with `Retry-After` when the refusal was a throttle.
fn with_retry_after(page: Page, err: &AccountError) -> Response {
    let mut response = page.into_response();
    if let AccountError::Throttled { retry_after_s } = err {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, (*retry_after_s).into());
    }
    response
}

/// `GET /sign-in`.
pub async fn sign_in_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Page {
    render(
        &state,
        StatusCode::OK,
        "sign_in.html",
        &anonymous(&csrf),
        context! { email => "" },
    )
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
    ClientIp(client_ip): ClientIp,
    Form(form): Form<SignInForm>,
) -> Response {
    match accounts::sign_in(&state, &form.email, &form.password, client_ip).await {
        Ok((_, SignIn::Done(token))) => (
            [(header::SET_COOKIE, session_cookie(&state, &token))],
            Redirect::to("/"),
        )
            .into_response(),
        Ok((_, SignIn::SecondFactorDue(token))) => (
            [(header::SET_COOKIE, session_cookie(&state, &token))],
            Redirect::to("/sign-in/second-factor"),
        )
            .into_response(),
        Err(err) => with_retry_after(
            render(
                &state,
                account_error_status(&err),
                "sign_in.html",
                &anonymous(&csrf),
                context! { error => error_text(&err), email => form.email },
            ),
            &err,
        ),
    }
}

/// `POST /sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    signed_in: Option<SignedIn>,
) -> Result<Response, PageError> {
    if let Some(SignedIn { token, .. }) = signed_in {
        accounts::sign_out(&state, &token).await?;
    }
    Ok((
        [(header::SET_COOKIE, clear_session_cookie())],
        Redirect::to("/sign-in"),
    )
        .into_response())
}

/// A query carrying a one-time token.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `GET /verify-email?token=…`: confirms the address and, unless this browser is already
/// signed in, signs the account in: the link is what a new account signs in with.
pub async fn verify_email(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    signed_in: Option<SignedIn>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let user = match accounts::verify_email(&state, &query.token).await {
        Ok(user) => user,
        Err(err) => {
            let page = message(
                &state,
                &csrf,
                account_error_status(&err),
                "Link not valid",
                &error_text(&err),
                Some(("/", "Go to your dashboard")),
            );
            return page.into_response();
        }
    };
    let confirmed = message(
        &state,
        &csrf,
        StatusCode::OK,
        "Email confirmed",
        "Your email address is confirmed. You can create projects now.",
        Some(("/", "Go to your dashboard")),
    );
    if signed_in.is_some() {
        return confirmed.into_response();
    }
    // An account with a second factor still owes it: the link stands in for the password only.
    match accounts::after_first_factor(&state, &user, accounts::FirstFactor::EmailLink).await {
        Ok(SignIn::Done(token)) => (
            [(header::SET_COOKIE, session_cookie(&state, &token))],
            confirmed,
        )
            .into_response(),
        Ok(SignIn::SecondFactorDue(token)) => (
            [(header::SET_COOKIE, session_cookie(&state, &token))],
            Redirect::to("/sign-in/second-factor"),
        )
            .into_response(),
        Err(err) => PageError::from(err).into_response(),
    }
}

/// `POST /verify-email/resend`.
pub async fn resend_verification(
    State(state): State<AppState>,
    SignedIn { user, .. }: SignedIn,
) -> Result<Redirect, PageError> {
    if !user.email_verified {
        accounts::send_verification(&state, &user).await?;
    }
    Ok(Redirect::to("/"))
}

/// `GET /forgot-password`.
pub async fn forgot_password_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Page {
    render(
        &state,
        StatusCode::OK,
        "forgot_password.html",
        &anonymous(&csrf),
        context! {},
    )
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
    ClientIp(client_ip): ClientIp,
    Form(form): Form<ForgotForm>,
) -> Response {
    match accounts::request_password_reset(&state, &form.email, client_ip).await {
        Ok(()) => message(&state, &csrf, StatusCode::OK, "Check your email", "If an account uses this address, we sent it a link to set a new password. The link works once, for one hour.", None).into_response(),
        Err(err) => with_retry_after(message(&state, &csrf, account_error_status(&err), "Try again", &error_text(&err), None), &err),
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
        return Ok(message(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            "Link not valid",
            &err.to_string(),
            Some(("/forgot-password", "Ask for a new link")),
        ));
    }
    Ok(render(
        &state,
        StatusCode::OK,
        "reset_password.html",
        &anonymous(&csrf),
        context! { token => query.token },
    ))
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
        Ok(0) => message(
            &state,
            &csrf,
            StatusCode::OK,
            "Password changed",
            "Your password is set, and every other session was signed out.",
            Some(("/sign-in", "Sign in")),
        ),
        Ok(_) => message(
            &state,
            &csrf,
            StatusCode::OK,
            "Password changed",
            "Your password is set, and every other session was signed out. Passkeys added since your previous password are paused: sign in, then confirm or remove them on your account page.",
            Some(("/sign-in", "Sign in")),
        ),
        Err(err @ AccountError::WeakPassword) => render(
            &state,
            StatusCode::BAD_REQUEST,
            "reset_password.html",
            &anonymous(&csrf),
            context! { token => form.token, error => error_text(&err) },
        ),
        Err(err) => message(
            &state,
            &csrf,
            account_error_status(&err),
            "Link not valid",
            &error_text(&err),
            Some(("/forgot-password", "Ask for a new link")),
        ),
    }
}

/// `GET /dev/outbox`: local mode only.
pub async fn outbox(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Result<Page, PageError> {
    if !state.web.show_outbox {
        return Err(ApiError::NotFound.into());
    }
    let messages = state.mailer.outbox().await.unwrap_or_default();
    let messages: Vec<_> = messages
        .iter()
        .map(|text| {
            let links: Vec<&str> = text
                .split_whitespace()
                .filter(|word| word.starts_with("http"))
                .collect();
            context! { text => text, links => links }
        })
        .collect();
    Ok(render(
        &state,
        StatusCode::OK,
        "outbox.html",
        &anonymous(&csrf),
        context! { messages => messages },
    ))
}

/// `GET /sign-in/second-factor`.
pub async fn second_factor_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: axum::http::HeaderMap,
) -> Result<Response, PageError> {
    let pending = match super::cookie(&headers, super::SESSION_COOKIE) {
        Some(token) => accounts::second_factor_user(&state, &token).await?,
        None => None,
    };
    if pending.is_none() {
        return Ok(Redirect::to("/sign-in").into_response());
    }
    Ok(render(
        &state,
        StatusCode::OK,
        "second_factor.html",
        &anonymous(&csrf),
        context! {},
    )
    .into_response())
}

/// The second-factor form.
#[derive(Debug, Deserialize)]
pub struct SecondFactorForm {
    code: String,
}

/// `POST /sign-in/second-factor`: a TOTP code or a recovery code.
pub async fn second_factor(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: axum::http::HeaderMap,
    Form(form): Form<SecondFactorForm>,
) -> Response {
    let token = super::cookie(&headers, super::SESSION_COOKIE).unwrap_or_default();
    match accounts::complete_second_factor(&state, &token, &form.code).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(AccountError::SignInAgain) => Redirect::to("/sign-in").into_response(),
        Err(err) => with_retry_after(
            render(
                &state,
                account_error_status(&err),
                "second_factor.html",
                &anonymous(&csrf),
                context! { error => error_text(&err) },
            ),
            &err,
        ),
    }
}

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
    let languages = &crate::db::projects::LANGUAGES[1..];
    let passkeys: Vec<minijinja::Value> = crate::db::passkeys::list(&state.db, &user.id)
        .await
        .unwrap_or_default()
        .iter()
        .map(|p| context! {
            id => p.id, name => p.name, added => super::format_time(p.created_at),
            last_used => p.last_used_at.map(super::format_time), paused => p.paused_at.is_some(),
        })
        .collect();
    render(
        state,
        status,
        "account.html",
        &frame,
        context! {
            totp_enabled => user.totp_enabled, language => user.language, languages => languages, passkeys => passkeys,
            recently_authenticated => recently_authenticated, ..extra
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
                context! { error => error_text(&err) },
            )
            .await
        }
    }
}

/// `POST /account/language`.
pub async fn set_language(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { mut user, token }: SignedIn,
    Form(form): Form<AccountForm>,
) -> Result<Page, PageError> {
    if !crate::db::projects::LANGUAGES[1..].contains(&form.language.as_str()) {
        return Err(ApiError::Invalid {
            field: "language",
            message: "Pick a language from the list.".into(),
        }
        .into());
    }
    crate::db::accounts::set_language(&state.db, &user.id, &form.language, state.clock.now_ms())
        .await?;
    user.language = form.language;
    Ok(account_page(
        &state,
        &csrf,
        &user,
        &token,
        StatusCode::OK,
        context! { notice => "Language saved." },
    )
    .await)
}

/// `POST /account/two-factor/setup`: shows a new secret to scan, unconfirmed.
pub async fn begin_totp(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, token }: SignedIn,
) -> Page {
    let result = accounts::begin_totp_setup(&state, &user)
        .await
        .map(|(secret, uri)| {
            // The SVG is built here from the URI alone, so it needs no escaping.
            let qr = minijinja::Value::from_safe_string(crate::totp::qr_code_svg(&uri));
            context! { setup => context! { secret => secret, uri => uri, qr => qr } }
        });
    account_result(&state, &csrf, &user, &token, result).await
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

/// `POST /account/two-factor/disable`.
pub async fn disable_totp(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { mut user, token }: SignedIn,
    Form(form): Form<AccountForm>,
) -> Page {
    let result = accounts::disable_totp(&state, &user, &form.password).await;
    if result.is_ok() {
        user.totp_enabled = false;
    }
    account_result(
        &state,
        &csrf,
        &user,
        &token,
        result.map(|()| context! { notice => "Two-factor authentication is off." }),
    )
    .await
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
                context! { error => error_text(&err) },
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
            context! { error => error_text(&err) },
        )
        .await
        .into_response(),
    }
}

/// `GET /invitations/accept?token=…`: says whose invitation it is and how to accept it.
pub async fn invitation_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    signed_in: Option<SignedIn>,
    Query(query): Query<TokenQuery>,
) -> Result<Page, PageError> {
    let found = crate::db::orgs::find_invitation(
        &state.db,
        &crate::secrets::hash_secret(&query.token),
        state.clock.now_ms(),
    )
    .await?;
    let Some((_, organisation, invitation)) = found else {
        return Ok(message(
            &state,
            &csrf,
            StatusCode::NOT_FOUND,
            "Invitation not valid",
            "This invitation was withdrawn, already accepted or has expired. Ask for a new one.",
            Some(("/", "Go to HumanProof")),
        ));
    };
    let user = signed_in.map(|s| s.user);
    let frame = Frame {
        csrf: &csrf,
        user: user.as_ref(),
        actor: None,
        section: "",
    };
    Ok(render(
        &state,
        StatusCode::OK,
        "invitation.html",
        &frame,
        context! {
            token => query.token, organisation => organisation, email => invitation.email, role => invitation.role.as_str(),
            matches => user.as_ref().is_some_and(|u| u.email == invitation.email),
        },
    ))
}

/// `POST /invitations/accept`.
pub async fn accept_invitation(
    State(state): State<AppState>,
    SignedIn { user, .. }: SignedIn,
    Form(form): Form<TokenQuery>,
) -> Result<Redirect, PageError> {
    let organisation_id = crate::manage::accept_invitation(&state, &user, &form.token).await?;
    Ok(Redirect::to(&format!("/orgs/{organisation_id}/projects")))
}
