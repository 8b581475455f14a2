//! What only the local all-in-one server shows: the outbox of emails it did not send, and a
//! button that gives a project a week of made-up traffic to look at.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use minijinja::context;

use super::extract::OrgActor;
use super::render::{Page, PageError, anonymous, render};
use super::security::CsrfToken;
use crate::error::ApiError;
use crate::service::usage;
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

/// `POST /orgs/{org}/projects/{project}/sample-traffic`: local mode only. A week of made-up
/// traffic, then back to the analytics page.
pub async fn sample_traffic(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Redirect, PageError> {
    if !state.web.show_outbox {
        return Err(ApiError::NotFound.into());
    }
    usage::add_sample_traffic(&state, &actor, &project_id).await?;
    Ok(Redirect::to(&format!(
        "/orgs/{}/projects/{project_id}/usage",
        actor.organisation_id
    )))
}
