//! The dashboard's static files, compiled into the binary.

use axum::http::header;
use axum::response::{IntoResponse, Response};

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

/// `GET /static/favicon.svg`.
pub async fn favicon() -> Response {
    static_file("image/svg+xml", include_str!("../../static/favicon.svg")).await
}

/// `GET /static/dashboard.css`.
pub async fn stylesheet() -> Response {
    static_file("text/css", include_str!("../../static/dashboard.css")).await
}

/// `GET /static/dashboard.js`: copy buttons and other small conveniences.
pub async fn dashboard_script() -> Response {
    static_file("text/javascript", include_str!("../../static/dashboard.js")).await
}

/// `GET /static/passkeys.js`: the WebAuthn calls of the account and sign-in pages.
pub async fn passkeys_script() -> Response {
    static_file("text/javascript", include_str!("../../static/passkeys.js")).await
}
