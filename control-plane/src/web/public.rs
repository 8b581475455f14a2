//! Pages anyone may read: the privacy policy.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use minijinja::context;

use super::render::{Page, anonymous, render};
use super::security::CsrfToken;
use crate::privacy;
use crate::state::AppState;

/// `GET /privacy`: what HumanProof processes, why, and for how long, each retention promise
/// with the code that keeps it and the test that proves it (from the README's table), and
/// the operator's sub-processors.
pub async fn privacy_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Page {
    let promises: Vec<_> = privacy::promises()
        .iter()
        .map(|promise| {
            let cell = |text: &str| minijinja::Value::from_safe_string(privacy::cell_html(text));
            context! {
                data => cell(&promise.data), stored_in => cell(&promise.stored_in), kept => cell(&promise.kept),
                enforced_by => cell(&promise.enforced_by), proved_by => cell(&promise.proved_by),
            }
        })
        .collect();
    render(
        &state,
        StatusCode::OK,
        "privacy.html",
        &anonymous(&csrf),
        context! { promises => promises, subprocessors => state.web.subprocessors.clone() },
    )
}
