//! What a form says after it redirects: forms that change something answer with a redirect
//! (post/redirect/get, so reloading the next page repeats nothing), and what they have to say
//! (a notice, a secret shown once) travels to that page in a short-lived cookie, sealed with
//! a key derived from the master secret so that neither the browser nor anything between can
//! read or forge it. [`super::security::protect`] opens it for the next page, which shows it
//! through [`current`], and clears it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use crate::state::AppState;

/// The cookie's name.
pub const COOKIE: &str = "hp_flash";
/// What the flash is sealed for.
const SEALED_FOR: &str = "humanproof/dashboard-flash/v1";
/// How long a flash waits for the page it is meant for.
const MAX_AGE_S: u32 = 120;

/// What the next page shows once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// A notice in English (the page translates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// A secret to show once (a new project's or a rotated backend secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Flash {
    /// A notice.
    pub fn notice(notice: &str) -> Self {
        Self {
            notice: Some(notice.to_owned()),
            secret: None,
        }
    }

    /// A notice and a secret shown with it.
    pub fn secret(notice: &str, secret: String) -> Self {
        Self {
            notice: Some(notice.to_owned()),
            secret: Some(secret),
        }
    }

    /// The flash's values for a template: `notice` and `secret`.
    pub fn context(&self) -> minijinja::Value {
        minijinja::context! { notice => self.notice, secret => self.secret }
    }

    /// The flash a request's cookie carries, if it opens.
    pub(super) fn open(state: &AppState, cookie: &str) -> Option<Self> {
        let plain = crate::secrets::open(&state.master, SEALED_FOR, cookie)?;
        serde_json::from_slice(&plain).ok()
    }
}

tokio::task_local! {
    /// The flash of the request being answered.
    static CURRENT: Flash;
}

/// The flash of the request being answered (empty outside one, or when it has none).
pub fn current() -> Flash {
    CURRENT.try_with(Flash::clone).unwrap_or_default()
}

/// Runs `answer` with `flash` as the request's.
pub(super) async fn scope<T>(flash: Flash, answer: impl Future<Output = T>) -> T {
    CURRENT.scope(flash, answer).await
}

/// A 303 to `to` that carries `flash` to it.
pub fn redirect(state: &AppState, to: &str, flash: &Flash) -> Response {
    let sealed = crate::secrets::seal(
        &state.master,
        SEALED_FOR,
        &serde_json::to_vec(flash).expect("a flash serialises"),
    );
    let cookie = format!(
        "{COOKIE}={sealed}; Path=/; Max-Age={MAX_AGE_S}; HttpOnly; SameSite=Strict{}",
        if state.web.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("base64 is a valid header"),
    );
    response
}

/// The `Set-Cookie` that clears a flash once its page has shown it.
pub(super) fn clear(secure: bool) -> HeaderValue {
    let value = format!(
        "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).expect("a valid header")
}
