//! The audit log page.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use minijinja::{Value, context};

use super::extract::OrgActor;
use super::render::{Page, PageError, format_time, org_frame, render};
use super::security::CsrfToken;
use crate::service::audit;
use crate::state::AppState;

/// `GET /orgs/{org}/audit`.
pub async fn audit(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    let entries: Vec<Value> = audit::named_audit_log(&state, &actor)
        .await?
        .iter()
        .map(|entry| context! { when => format_time(entry.at), who => entry.who, action => entry.action, target => entry.target })
        .collect();
    Ok(render(
        &state,
        StatusCode::OK,
        "audit.html",
        &org_frame(&csrf, &actor, "audit"),
        context! { entries => entries },
    ))
}
