//! The dashboard: server-rendered HTML (minijinja templates in `control-plane/templates/`),
//! one small stylesheet and one small script, no front-end framework.
//!
//! - Sessions: an HttpOnly, SameSite=Lax cookie holding a random token (Secure when the
//!   public URL is https); the database keeps only its hash.
//! - CSRF: every POST passes [`check_csrf`] before any handler runs: the form's `csrf` field
//!   must equal the `hp_csrf` cookie (a random double-submit token, SameSite=Strict; named
//!   `__Host-hp_csrf` over https), which another site can neither read nor set.
//! - Every page is sent with a strict CSP, `X-Frame-Options: DENY` and no-referrer.
//! - Language: a signed-in user's preference, otherwise the request's `Accept-Language`
//!   (see [`crate::i18n`]), held for the request by [`check_csrf`]; templates translate
//!   with `t("English text")`.
//! - Organisation pages live under `/orgs/{org}/…`; [`OrgActor`] resolves the signed-in
//!   member's role there and answers 404 to non-members, and the handlers go through
//!   [`crate::manage`] for every rule.

mod auth;
mod org;
mod passkeys;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, Value, context};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq as _;

use crate::app::AppState;
use crate::db::accounts::User;
use crate::error::ApiError;
use crate::i18n;
use crate::manage::{Actor, Principal};

use org::format_time;

pub(crate) const SESSION_COOKIE: &str = "hp_session";
/// Over https the CSRF cookie takes the `__Host-` prefix: browsers then refuse it unless it
/// is Secure, host-only and for `/`, so a sibling subdomain cannot plant one.
fn csrf_cookie(secure: bool) -> &'static str {
    if secure { "__Host-hp_csrf" } else { "hp_csrf" }
}
/// Largest dashboard form read.
const MAX_FORM: usize = 64 * 1024;
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The templates, parsed once at startup.
pub fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    macro_rules! add {
        ($($name:literal),*) => {$(
            env.add_template($name, include_str!(concat!("../../templates/", $name))).expect("templates parse");
        )*};
    }
    add!(
        "base.html",
        "sign_up.html",
        "sign_in.html",
        "message.html",
        "forgot_password.html",
        "reset_password.html",
        "projects.html",
        "project_form.html",
        "integration.html",
        "usage.html",
        "members.html",
        "api_keys.html",
        "audit.html",
        "outbox.html",
        "second_factor.html",
        "project_tabs.html",
        "invitation.html",
        "clients.html",
        "risk.html",
        "account.html"
    );
    i18n::register(&mut env);
    env
}

/// The dashboard's routes.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(auth::home))
        .route("/sign-up", get(auth::sign_up_page).post(auth::sign_up))
        .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route(
            "/sign-in/second-factor",
            get(auth::second_factor_page).post(auth::second_factor),
        )
        .route("/sign-out", post(auth::sign_out))
        .route("/account", get(auth::account))
        .route("/account/language", post(auth::set_language))
        .route("/account/two-factor/setup", post(auth::begin_totp))
        .route("/account/two-factor/confirm", post(auth::confirm_totp))
        .route("/account/two-factor/disable", post(auth::disable_totp))
        .route("/account/delete", post(auth::delete_account))
        .route(
            "/account/passkeys/register/start",
            post(passkeys::start_registration),
        )
        .route(
            "/account/passkeys/register/finish",
            post(passkeys::finish_registration),
        )
        .route("/account/passkeys/{id}/delete", post(passkeys::delete))
        .route("/account/passkeys/{id}/confirm", post(passkeys::confirm))
        .route("/account/confirm-identity", post(auth::confirm_identity))
        .route("/sign-in/passkey/start", post(passkeys::start_sign_in))
        .route("/sign-in/passkey/finish", post(passkeys::finish_sign_in))
        .route(
            "/sign-in/second-factor/passkey/start",
            post(passkeys::start_second_factor),
        )
        .route(
            "/sign-in/second-factor/passkey/finish",
            post(passkeys::finish_second_factor),
        )
        .route("/verify-email", get(auth::verify_email))
        .route("/verify-email/resend", post(auth::resend_verification))
        .route(
            "/forgot-password",
            get(auth::forgot_password_page).post(auth::forgot_password),
        )
        .route(
            "/reset-password",
            get(auth::reset_password_page).post(auth::reset_password),
        )
        .route("/dev/outbox", get(auth::outbox))
        .route("/orgs/{org}/projects", get(org::projects))
        .route(
            "/orgs/{org}/projects/new",
            get(org::new_project_page).post(org::create_project),
        )
        .route(
            "/orgs/{org}/projects/{project}",
            get(org::project_page).post(org::update_project),
        )
        .route(
            "/orgs/{org}/projects/{project}/delete",
            post(org::delete_project),
        )
        .route(
            "/orgs/{org}/projects/{project}/rotate-secret",
            post(org::rotate_secret),
        )
        .route(
            "/orgs/{org}/projects/{project}/revoke-tokens",
            post(org::revoke_tokens),
        )
        .route(
            "/orgs/{org}/projects/{project}/integration",
            get(org::integration),
        )
        .route("/orgs/{org}/projects/{project}/usage", get(org::usage))
        .route("/orgs/{org}/projects/{project}/risk", get(org::risk))
        .route(
            "/orgs/{org}/projects/{project}/risk-mode",
            post(org::set_risk_mode),
        )
        .route(
            "/orgs/{org}/members",
            get(org::members).post(org::put_member),
        )
        .route(
            "/orgs/{org}/members/{user}/remove",
            post(org::remove_member),
        )
        .route(
            "/orgs/{org}/invitations/revoke",
            post(org::revoke_invitation),
        )
        .route(
            "/invitations/accept",
            get(auth::invitation_page).post(auth::accept_invitation),
        )
        .route(
            "/orgs/{org}/clients",
            get(org::clients).post(org::create_client),
        )
        .route(
            "/orgs/{org}/clients/{client}/delete",
            post(org::delete_client),
        )
        .route(
            "/orgs/{org}/api-keys",
            get(org::api_keys).post(org::create_api_key),
        )
        .route(
            "/orgs/{org}/api-keys/{key}/{action}",
            post(org::set_api_key_active),
        )
        .route("/orgs/{org}/audit", get(org::audit))
        .route(
            "/static/favicon.svg",
            get(|| static_file("image/svg+xml", include_str!("../../static/favicon.svg"))),
        )
        .route(
            "/static/dashboard.css",
            get(|| static_file("text/css", include_str!("../../static/dashboard.css"))),
        )
        .route(
            "/static/dashboard.js",
            get(|| static_file("text/javascript", include_str!("../../static/dashboard.js"))),
        )
        .route(
            "/static/passkeys.js",
            get(|| static_file("text/javascript", include_str!("../../static/passkeys.js"))),
        )
        .layer(middleware::from_fn_with_state(state.clone(), check_csrf))
}

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

pub(crate) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The page's CSRF token, from the cookie or minted for this response.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

/// Rejects POSTs whose `csrf` field does not match the cookie, gives every request a CSRF
/// token and its negotiated language, and adds the security headers.
async fn check_csrf(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let lang = i18n::negotiate(
        request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok()),
    );
    let secure = state.web.secure_cookies;
    let existing = cookie(request.headers(), csrf_cookie(secure)).filter(|token| token.len() == 64);
    let token = existing.clone().unwrap_or_else(crate::secrets::new_token);
    if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                i18n::translate(lang, "The form is too large."),
            )
                .into_response();
        };
        // Forms send the token as a field; the passkey script, which posts JSON, as a header.
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .or_else(|| form_urlencoded_field(&bytes, "csrf"));
        let valid = match (&existing, &sent) {
            (Some(cookie), Some(sent)) => bool::from(cookie.as_bytes().ct_eq(sent.as_bytes())),
            _ => false,
        };
        if !valid {
            let html = format!(
                "<!doctype html><html lang=\"{lang}\"><meta charset=\"utf-8\"><title>{}</title><p>{}</p>",
                minijinja::HtmlEscape(i18n::translate(lang, "Forbidden")),
                minijinja::HtmlEscape(i18n::translate(
                    lang,
                    "This form expired or came from another site. Go back, reload the page and try again."
                )),
            );
            return (StatusCode::FORBIDDEN, Html(html)).into_response();
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = i18n::with_request_language(lang, next.run(request)).await;
    let headers = response.headers_mut();
    if existing.is_none() {
        let value = format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict{}",
            csrf_cookie(secure),
            if secure { "; Secure" } else { "" }
        );
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&value).expect("hex is a valid header"),
        );
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// A page to render: the template, its context, and the status.
pub struct Page {
    status: StatusCode,
    html: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Html(self.html),
        )
            .into_response()
    }
}

/// What every template sees: the user, the organisation, the CSRF token and the language.
pub struct Frame<'a> {
    /// The CSRF token for the page's forms.
    pub csrf: &'a CsrfToken,
    /// The signed-in user, if any.
    pub user: Option<&'a User>,
    /// The organisation actor, on organisation pages.
    pub actor: Option<&'a Actor>,
    /// Which organisation tab is current.
    pub section: &'a str,
}

/// Renders `template` with the frame and `page` context.
pub fn render(
    state: &AppState,
    status: StatusCode,
    template: &str,
    frame: &Frame<'_>,
    page: Value,
) -> Page {
    let org = frame.actor.map(|actor| {
        let role = match &actor.principal {
            Principal::Member { role, .. } => role.as_str(),
            Principal::ApiKey(_) => "api key",
        };
        context! { id => actor.organisation_id, name => actor.organisation_name, role => role }
    });
    let user = frame
        .user
        .map(|user| context! { email => user.email, email_verified => user.email_verified });
    // The frame's user first: it carries a preference saved by this very request.
    let lang = frame
        .user
        .and_then(|user| i18n::supported(&user.language))
        .unwrap_or_else(i18n::request_language);
    let ctx = context! { csrf => frame.csrf.0, user => user, org => org, section => frame.section, lang => lang, ..page };
    let html = state
        .templates
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, template, "template failed");
            format!(
                "<!doctype html><title>Error</title><p>{}</p>",
                minijinja::HtmlEscape(i18n::translate(lang, "Something went wrong."))
            )
        });
    Page { status, html }
}

/// Dashboard errors: a page for the user, a redirect to sign in, or an [`ApiError`].
pub enum PageError {
    /// Not signed in.
    SignIn,
    /// Anything the rules refused.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> Self {
        Self::Api(err)
    }
}

impl From<crate::accounts::AccountError> for PageError {
    fn from(err: crate::accounts::AccountError) -> Self {
        match err {
            crate::accounts::AccountError::Database(db) => Self::Api(db.into()),
            other => Self::Api(ApiError::Invalid {
                field: "form",
                message: other.to_string(),
            }),
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(err: sqlx::Error) -> Self {
        Self::Api(err.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/sign-in").into_response(),
            Self::Api(err) => {
                let status = err.status_code();
                let lang = i18n::request_language();
                let text = match &err {
                    ApiError::NotFound => i18n::translate(
                        lang,
                        "There is nothing here, or it belongs to another organisation.",
                    )
                    .to_owned(),
                    ApiError::Forbidden(code) => i18n::fill(
                        i18n::translate(lang, "Your role does not allow this ({code})."),
                        &[("code", code)],
                    ),
                    ApiError::Conflict("last_owner") => {
                        i18n::translate(lang, "An organisation keeps at least one owner.")
                            .to_owned()
                    }
                    ApiError::Database(_) => {
                        i18n::translate(lang, "Something went wrong on our side. Try again.")
                            .to_owned()
                    }
                    other => i18n::translate(lang, &other.to_string()).to_owned(),
                };
                if let ApiError::Database(db) = &err {
                    tracing::error!(error = %db, "database error");
                }
                let html = format!(
                    "<!doctype html><html lang=\"{lang}\"><meta charset=\"utf-8\"><title>{status}</title><link rel=\"stylesheet\" href=\"/static/dashboard.css\"><main><h1>{status}</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">{}</a></p></main>",
                    minijinja::HtmlEscape(&text),
                    minijinja::HtmlEscape(i18n::translate(lang, "Back to the dashboard")),
                );
                (status, Html(html)).into_response()
            }
        }
    }
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
