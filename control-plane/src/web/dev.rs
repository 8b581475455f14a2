//! What only the local all-in-one server shows: the outbox of emails it did not send.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use minijinja::context;

use super::render::{Page, PageError, anonymous, render};
use super::security::CsrfToken;
use crate::error::ApiError;
use crate::state::AppState;

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
