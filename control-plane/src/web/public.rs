//! Pages anyone may read: how HumanProof works, the privacy policy, and how to ask for a data
//! processing agreement.

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

/// `GET /how-it-works`: what the widget, the edge and the control plane each do with a
/// visitor's request, for customers deciding and for their data protection officers.
pub async fn how_it_works_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Page {
    let frame = anonymous(&csrf);
    render(
        &state,
        StatusCode::OK,
        "how_it_works.html",
        &frame,
        context! {},
    )
}

/// `GET /dpa`: what a data processing agreement with this service covers and how to ask for
/// one (through the contact form's DPA topic, when it is offered).
pub async fn dpa_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Page {
    let dpa_inbox = state
        .web
        .contact
        .as_ref()
        .is_some_and(|form| form.inbox(crate::contact::Topic::Dpa).is_some());
    render(
        &state,
        StatusCode::OK,
        "dpa.html",
        &anonymous(&csrf),
        context! { dpa_form => dpa_inbox, subprocessors => state.web.subprocessors.clone() },
    )
}
