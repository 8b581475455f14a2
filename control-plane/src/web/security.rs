//! What every dashboard request passes before its handler: the CSRF check on POSTs, the
//! page's language, and the security headers on every response.
//!
//! CSRF: the form's `csrf` field (or the passkey script's `X-CSRF-Token` header) must equal
//! the `hp_csrf` cookie, a random double-submit token (SameSite=Strict; named
//! `__Host-hp_csrf` over https), which another site can neither read nor set.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use super::extract::{SESSION_COOKIE, cookie};
use super::flash::{self, Flash};
use super::render::{Refused, framed_refusal};
use crate::i18n;
use crate::state::AppState;

/// Over https the CSRF cookie takes the `__Host-` prefix: browsers then refuse it unless it
/// is Secure, host-only and for `/`, so a sibling subdomain cannot plant one.
fn csrf_cookie(secure: bool) -> &'static str {
    if secure { "__Host-hp_csrf" } else { "hp_csrf" }
}

/// What a page allows beyond the dashboard's own origin, set on its response as an
/// extension.
#[derive(Debug, Clone)]
pub enum CspAlso {
    /// Its form is answered with a redirect to this origin (billing's, to Stripe's
    /// checkout), which `form-action` also governs.
    FormAction(String),
    /// It embeds HumanProof's widget from this edge origin (the contact form): the widget's
    /// script, compiling its wasm solver, its workers (started from `blob:` URLs), and its
    /// calls to the edge — what the README tells customers to allow.
    Widget(String),
}

/// Largest dashboard form read.
const MAX_FORM: usize = 64 * 1024;

/// Pages load only their own stylesheet and scripts, and nothing may frame them.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// [`CSP`], with what `also` allows added.
fn content_security_policy(also: Option<&CspAlso>) -> HeaderValue {
    let (script, connect, worker, form) = match also {
        None => return HeaderValue::from_static(CSP),
        Some(CspAlso::FormAction(origin)) => {
            (String::new(), String::new(), "", format!(" {origin}"))
        }
        Some(CspAlso::Widget(edge)) => (
            format!(" {edge} 'wasm-unsafe-eval'"),
            format!(" {edge}"),
            " worker-src blob:;",
            String::new(),
        ),
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'{script}; style-src 'self'; img-src 'self'; \
         connect-src 'self'{connect};{worker} form-action 'self'{form}; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    // Origins come from configuration; one a header cannot carry leaves the strict policy.
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(CSP))
}

/// The page's CSRF token, from the cookie or minted for this response.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

/// Rejects POSTs whose `csrf` field does not match the cookie, gives every request a CSRF
/// token and its negotiated language, and adds the security headers.
pub async fn protect(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
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
    let sealed_flash = cookie(request.headers(), flash::COOKIE);
    let path = request.uri().path().to_owned();
    let session = cookie(request.headers(), SESSION_COOKIE);
    let shown = sealed_flash
        .as_deref()
        .and_then(|sealed| Flash::open(&state, sealed))
        .unwrap_or_default();
    let mut response =
        flash::scope(shown, i18n::with_request_language(lang, next.run(request))).await;
    if let Some(Refused(text)) = response.extensions().get::<Refused>().cloned() {
        let framed = i18n::with_request_language(
            lang,
            framed_refusal(
                &state,
                &CsrfToken(token.clone()),
                response.status(),
                &path,
                session.as_deref(),
                &text,
            ),
        )
        .await;
        let mut framed = framed.into_response();
        // Whatever else the refusal said (a `Retry-After`, a cookie) still holds.
        for (name, value) in response.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                framed.headers_mut().append(name, value.clone());
            }
        }
        response = framed;
    }
    // A flash is shown once: this answer cleared it, unless it brings the next one.
    let sets_flash = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|value| value.as_bytes().starts_with(flash::COOKIE.as_bytes()));
    if sealed_flash.is_some() && !sets_flash {
        response
            .headers_mut()
            .append(header::SET_COOKIE, flash::clear(secure));
    }
    let csp = content_security_policy(response.extensions().get::<CspAlso>());
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
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
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
