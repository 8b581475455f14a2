//! Signing up and in: sign-up, email verification, sign-in with a second factor, sign-out
//! and password reset.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::extract::{
    Form, SESSION_COOKIE, SignedIn, clear_session_cookie, cookie, session_cookie,
};
use super::render::{
    Page, PageError, account_error_status, account_error_text, anonymous, message, render,
    with_retry_after,
};
use super::security::CsrfToken;
use crate::accounts::{self, AccountError, SignIn};
use crate::client_ip::ClientIp;
use crate::db::stats;
use crate::error::ApiError;
use crate::service::members;
use crate::state::AppState;

/// `GET /`: the first organisation's projects, or sign-in.
pub async fn home(
    State(state): State<AppState>,
    signed_in: Option<SignedIn>,
) -> Result<Redirect, PageError> {
    let Some(SignedIn { user, .. }) = signed_in else {
        return Ok(Redirect::to("/sign-in"));
    };
    let memberships = members::organisations_of(&state, &user).await?;
    Ok(Redirect::to(&match memberships.first() {
        Some(first) => format!("/orgs/{}/projects", first.organisation_id),
        // Joined through an invitation and left, or removed: a place to start one's own.
        None => "/orgs/new".to_owned(),
    }))
}

/// What the sign-up page is opened with: an invitation's token, when someone follows
/// "Create an account" from one.
#[derive(Debug, Deserialize)]
pub struct SignUpQuery {
    #[serde(default)]
    invitation: String,
}

/// `GET /sign-up[?invitation=…]`: from an invitation, the form is for its address and has
/// no organisation to name.
pub async fn sign_up_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(query): Query<SignUpQuery>,
) -> Result<Page, PageError> {
    let invitation = invitation_context(&state, &query.invitation).await?;
    Ok(render(
        &state,
        StatusCode::OK,
        "sign_up.html",
        &anonymous(&csrf),
        context! { email => "", organisation => "", invitation => invitation },
    ))
}

/// What the sign-up page shows of an invitation: its token, organisation and address. An
/// unknown or used token shows the plain form.
async fn invitation_context(state: &AppState, token: &str) -> Result<Value, ApiError> {
    if token.is_empty() {
        return Ok(Value::UNDEFINED);
    }
    Ok(match members::find_invitation(state, token).await? {
        Some((organisation, invitation)) => {
            context! { token => token, organisation => organisation, email => invitation.email }
        }
        None => Value::UNDEFINED,
    })
}

/// The sign-up form.
#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    #[serde(default)]
    email: String,
    password: String,
    #[serde(default)]
    organisation: String,
    /// Set when the form was opened from an invitation.
    #[serde(default)]
    invitation: String,
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
    if !form.invitation.is_empty() {
        return sign_up_invited(&state, &csrf, client_ip, &form, language).await;
    }
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
                context! { error => account_error_text(&err), email => form.email, organisation => form.organisation },
            ),
            &err,
        ),
    }
}

/// Sign-up through an invitation: the account is created signed in, and the browser goes
/// back to the invitation to accept it.
async fn sign_up_invited(
    state: &AppState,
    csrf: &CsrfToken,
    client_ip: std::net::IpAddr,
    form: &SignUpForm,
    language: &str,
) -> Response {
    let signed_up =
        accounts::sign_up_invited(state, &form.invitation, &form.password, language, client_ip)
            .await;
    let err = match signed_up {
        Ok(signed_in) => {
            return continue_signed_in(state, signed_in, &invitation_path(&form.invitation));
        }
        Err(err) => err,
    };
    let invitation = match invitation_context(state, &form.invitation).await {
        Ok(invitation) => invitation,
        Err(err) => return PageError::from(err).into_response(),
    };
    with_retry_after(
        render(
            state,
            account_error_status(&err),
            "sign_up.html",
            &anonymous(csrf),
            context! { error => account_error_text(&err), invitation => invitation },
        ),
        &err,
    )
}

/// The page of the invitation with this token.
fn invitation_path(token: &str) -> String {
    format!(
        "/invitations/accept?{}",
        serde_urlencoded::to_string([("token", token)]).unwrap_or_default()
    )
}

/// Where to go once signed in: the page on this site that sent the visitor to sign in (an
/// invitation, say), never another site, so the parameter cannot be used to send someone
/// from our sign-in page to a look-alike.
fn return_path(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2048
        && !next.chars().any(char::is_control);
    if local { next } else { "/" }
}

/// The answer to a first factor passed: the session cookie, and on to `next` (a local path),
/// or first to the second factor when the account has one.
fn continue_signed_in(state: &AppState, signed_in: SignIn, next: &str) -> Response {
    let (token, to) = match signed_in {
        SignIn::Done(token) => (token, return_path(next).to_owned()),
        SignIn::SecondFactorDue(token) => (token, second_factor_path(next)),
    };
    (
        [(header::SET_COOKIE, session_cookie(state, &token))],
        Redirect::to(&to),
    )
        .into_response()
}

/// The second-factor step, coming back to `next` after it.
fn second_factor_path(next: &str) -> String {
    match return_path(next) {
        "/" => "/sign-in/second-factor".to_owned(),
        next => format!(
            "/sign-in/second-factor?{}",
            serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
        ),
    }
}

/// Where a sign-in page was sent from, to go back to afterwards.
#[derive(Debug, Default, Deserialize)]
pub struct ReturnTo {
    #[serde(default)]
    next: String,
}

/// `GET /sign-in[?next=…]`.
pub async fn sign_in_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(ReturnTo { next }): Query<ReturnTo>,
) -> Page {
    render(
        &state,
        StatusCode::OK,
        "sign_in.html",
        &anonymous(&csrf),
        context! { email => "", next => return_path(&next) },
    )
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /sign-in`.
pub async fn sign_in(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    ClientIp(client_ip): ClientIp,
    Form(form): Form<SignInForm>,
) -> Response {
    match accounts::sign_in(&state, &form.email, &form.password, client_ip).await {
        Ok((_, signed_in)) => continue_signed_in(&state, signed_in, &form.next),
        Err(AccountError::DeletionPending {
            restore_token,
            deletion_at,
        }) => render(
            &state,
            StatusCode::FORBIDDEN,
            "sign_in.html",
            &anonymous(&csrf),
            context! {
                email => form.email, restore_token => restore_token,
                deletion_date => stats::day_of(deletion_at), next => return_path(&form.next),
            },
        )
        .into_response(),
        Err(err) => with_retry_after(
            render(
                &state,
                account_error_status(&err),
                "sign_in.html",
                &anonymous(&csrf),
                context! { error => account_error_text(&err), email => form.email, next => return_path(&form.next) },
            ),
            &err,
        ),
    }
}

/// The "keep my account" button's form.
#[derive(Debug, Deserialize)]
pub struct RestoreForm {
    token: String,
}

/// `POST /account/restore`: keeps an account marked for deletion; its owner signs in again.
pub async fn restore_account(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Form(form): Form<RestoreForm>,
) -> Response {
    match accounts::restore_account(&state, &form.token).await {
        Ok(()) => render(
            &state,
            StatusCode::OK,
            "sign_in.html",
            &anonymous(&csrf),
            context! { email => "", kept => true },
        )
        .into_response(),
        Err(err) => render(
            &state,
            account_error_status(&err),
            "sign_in.html",
            &anonymous(&csrf),
            context! { error => account_error_text(&err), email => "" },
        )
        .into_response(),
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
    pub(super) token: String,
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
                &account_error_text(&err),
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
        Err(err) => with_retry_after(message(&state, &csrf, account_error_status(&err), "Try again", &account_error_text(&err), None), &err),
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
            context! { token => form.token, error => account_error_text(&err) },
        ),
        Err(err) => message(
            &state,
            &csrf,
            account_error_status(&err),
            "Link not valid",
            &account_error_text(&err),
            Some(("/forgot-password", "Ask for a new link")),
        ),
    }
}

/// `GET /sign-in/second-factor`.
pub async fn second_factor_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: axum::http::HeaderMap,
    Query(ReturnTo { next }): Query<ReturnTo>,
) -> Result<Response, PageError> {
    let pending = match cookie(&headers, SESSION_COOKIE) {
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
        context! { next => return_path(&next) },
    )
    .into_response())
}

/// The second-factor form.
#[derive(Debug, Deserialize)]
pub struct SecondFactorForm {
    code: String,
    #[serde(default)]
    next: String,
}

/// `POST /sign-in/second-factor`: a TOTP code or a recovery code.
pub async fn second_factor(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: axum::http::HeaderMap,
    Form(form): Form<SecondFactorForm>,
) -> Response {
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    match accounts::complete_second_factor(&state, &token, &form.code).await {
        Ok(_) => Redirect::to(return_path(&form.next)).into_response(),
        Err(AccountError::SignInAgain) => Redirect::to("/sign-in").into_response(),
        Err(err) => with_retry_after(
            render(
                &state,
                account_error_status(&err),
                "second_factor.html",
                &anonymous(&csrf),
                context! { error => account_error_text(&err), next => return_path(&form.next) },
            ),
            &err,
        ),
    }
}
