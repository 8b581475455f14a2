//! A project's usage and risk pages, and the observe/enforce switch the risk review leads to.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use humanproof_protocol::Decision;
use humanproof_protocol::snapshot::RiskMode;
use minijinja::{Value, context};
use serde::Deserialize;

use super::extract::{Form, OrgActor};
use super::projects::view;
use super::render::{Page, PageError, can, format_time, org_frame, render};
use super::security::CsrfToken;
use crate::error::ApiError;
use crate::roles::Permission;
use crate::service::projects::{self, ProjectInput};
use crate::service::usage;
use crate::state::AppState;

/// `GET /orgs/{org}/projects/{project}/usage`.
pub async fn usage(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    let (month, usage) = usage::project_usage(&state, &actor, &project_id, None).await?;
    let project = projects::get_project(&state, &actor, &project_id).await?;
    Ok(render(
        &state,
        StatusCode::OK,
        "usage.html",
        &org_frame(&csrf, &actor, "projects"),
        context! {
            project => view(&project), month => month, usage => Value::from_serialize(usage),
        },
    ))
}

/// `GET /orgs/{org}/projects/{project}/risk`: what the edge decided about recent starts and
/// why, to review before switching the project from observe to enforce.
pub async fn risk(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    let usage::ProjectRisk {
        project,
        overview,
        month,
        countries,
        networks,
    } = usage::project_risk(&state, &actor, &project_id).await?;
    let busiest_band = overview
        .score_bands
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let bands: Vec<Value> = (0..10)
        .map(|band| context! { label => format!("{band}–{}", band + 1), count => overview.score_bands[band], max => busiest_band })
        .collect();
    let reasons: Vec<Value> = overview
        .top_reasons
        .iter()
        .map(|(reason, count)| context! { code => reason.as_str(), count => count, explanation => reason.explanation() })
        .collect();
    let recent: Vec<Value> = overview
        .recent
        .iter()
        .map(|start| {
            let factors: Vec<Value> = start
                .factors
                .iter()
                .map(|f| context! { code => f.reason.as_str(), points => f.points.to_string(), explanation => f.reason.explanation() })
                .collect();
            context! {
                at => format_time(start.at), score => start.score.to_string(), decision => start.decision.as_str(),
                blocked => start.blocked, outcome => outcome(start.decision, start.blocked), factors => factors,
            }
        })
        .collect();
    Ok(render(
        &state,
        StatusCode::OK,
        "risk.html",
        &org_frame(&csrf, &actor, "projects"),
        context! {
            project => view(&project), threshold => project.block_threshold.to_string(),
            starts => overview.starts, truncated => overview.truncated, block_decisions => overview.block_decisions,
            blocked => overview.blocked, bands => bands, days => Value::from_serialize(&overview.days), reasons => reasons,
            recent => recent, window_days => usage::RISK_VIEW_WINDOW_MS / (24 * 60 * 60 * 1000),
            can_write => can(&actor, Permission::ProjectsWrite), month => month,
            countries => Value::from_serialize(&countries), networks => Value::from_serialize(&networks),
        },
    ))
}

/// What a decision meant for the visitor, in plain words.
fn outcome(decision: Decision, blocked: bool) -> &'static str {
    match (decision, blocked) {
        (Decision::Allow, _) => "Low risk: the visitor got a lighter challenge than the preset's.",
        (Decision::Challenge, _) => {
            "Elevated risk: the visitor got a heavier challenge than the preset's."
        }
        (Decision::Block, true) => "High risk: enforce mode refused the check.",
        (Decision::Block, false) => {
            "High risk: enforce mode would have refused it; observe mode only recorded it."
        }
    }
}

/// The risk mode switch, as browsers send it.
#[derive(Debug, Deserialize)]
pub struct RiskModeForm {
    mode: String,
}

/// `POST /orgs/{org}/projects/{project}/risk-mode`: observe or enforce.
pub async fn set_risk_mode(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((org, project_id)): Path<(String, String)>,
    Form(form): Form<RiskModeForm>,
) -> Result<Redirect, PageError> {
    let mode = match form.mode.as_str() {
        "observe" => RiskMode::Observe,
        "enforce" => RiskMode::Enforce,
        _ => return Err(ApiError::invalid("mode", "Pick observe or enforce.").into()),
    };
    projects::update_project(
        &state,
        &actor,
        &project_id,
        ProjectInput {
            risk_mode: Some(mode),
            ..ProjectInput::default()
        },
    )
    .await?;
    Ok(Redirect::to(&format!(
        "/orgs/{org}/projects/{project_id}/risk"
    )))
}
