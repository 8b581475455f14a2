//! A project's usage and risk pages, and the observe/enforce switch the risk review leads to.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use humanproof_protocol::Decision;
use humanproof_protocol::snapshot::RiskMode;
use minijinja::{Value, context};
use serde::Deserialize;

use super::charts::{self, Bar};
use super::extract::{Form, OrgActor};
use super::projects::view;
use super::render::{Page, PageError, can, format_time, org_frame, render};
use super::security::CsrfToken;
use crate::db::month_of;
use crate::error::ApiError;
use crate::i18n;
use crate::roles::Permission;
use crate::service::projects::{self, ProjectInput};
use crate::service::usage;
use crate::state::AppState;

/// The month the analytics page shows counters for.
#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    #[serde(default)]
    month: Option<String>,
}

/// The stacked series of the traffic charts, bottom first: what became of the starts.
const SERIES: [&str; 5] = [
    "chart-solved",
    "chart-failed",
    "chart-open",
    "chart-blocked",
    "chart-refused",
];

/// A bar's stacked values in [`SERIES`] order: solved, failed, issued and not redeemed (yet),
/// blocked, refused.
fn outcome_values(starts: i64, solved: i64, failed: i64, blocked: i64, refused: i64) -> Vec<i64> {
    let open = (starts - solved - failed - blocked - refused).max(0);
    vec![solved, failed, open, blocked, refused]
}

/// A bar's title: when, and its numbers.
fn outcome_title(
    when: &str,
    starts: i64,
    solved: i64,
    failed: i64,
    blocked: i64,
    refused: i64,
) -> String {
    i18n::fill(
        i18n::translate(
            i18n::request_language(),
            "{when}: {starts} starts, {solved} solved, {failed} failed, {blocked} blocked, {refused} refused",
        ),
        &[
            ("when", when.to_owned()),
            ("starts", starts.to_string()),
            ("solved", solved.to_string()),
            ("failed", failed.to_string()),
            ("blocked", blocked.to_string()),
            ("refused", refused.to_string()),
        ],
    )
}

/// `GET /orgs/{org}/projects/{project}/usage`: the project's analytics.
pub async fn usage(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
    Query(query): Query<UsageQuery>,
) -> Result<Page, PageError> {
    let analytics =
        usage::project_analytics(&state, &actor, &project_id, query.month.as_deref()).await?;
    let project = projects::get_project(&state, &actor, &project_id).await?;
    let lang = i18n::request_language();
    let day_bars: Vec<Bar> = analytics
        .days
        .iter()
        .enumerate()
        .map(|(index, day)| Bar {
            label: if index % 2 == 0 {
                day.day[8..].to_owned()
            } else {
                String::new()
            },
            values: outcome_values(day.starts, day.solved, day.failed, day.blocked, day.refused),
            title: outcome_title(
                &day.day,
                day.starts,
                day.solved,
                day.failed,
                day.blocked,
                day.refused,
            ),
        })
        .collect();
    let hour_bars: Vec<Bar> = analytics
        .hours
        .iter()
        .enumerate()
        .map(|(index, hour)| {
            let when = format_time(hour.hour);
            Bar {
                label: if index % 6 == 0 {
                    when[11..].to_owned()
                } else {
                    String::new()
                },
                values: outcome_values(
                    hour.starts,
                    hour.solved,
                    hour.failed,
                    hour.blocked,
                    hour.refused,
                ),
                title: outcome_title(
                    &when,
                    hour.starts,
                    hour.solved,
                    hour.failed,
                    hour.blocked,
                    hour.refused,
                ),
            }
        })
        .collect();
    let daily_chart = charts::stacked_bars(
        i18n::translate(lang, "Challenge starts per day, by outcome"),
        &SERIES,
        &day_bars,
    );
    let hourly_chart = charts::stacked_bars(
        i18n::translate(lang, "Challenge starts per hour, by outcome"),
        &SERIES,
        &hour_bars,
    );
    let verifications: Vec<Value> = analytics
        .latest_verifications
        .iter()
        .map(|verification| context! {
            at => format_time(verification.at), success => verification.success == 1, error => verification.error_code,
        })
        .collect();
    Ok(render(
        &state,
        StatusCode::OK,
        "usage.html",
        &org_frame(&csrf, &actor, "projects"),
        context! {
            limit => (analytics.month == month_of(state.clock.now_ms())).then(|| analytics.usage.against_limit(project.monthly_limit)).flatten().map(Value::from_serialize),
            project => view(&project), month => analytics.month, months => analytics.months,
            usage => Value::from_serialize(analytics.usage), days => Value::from_serialize(&analytics.days),
            daily_chart => Value::from_safe_string(daily_chart), hourly_chart => Value::from_safe_string(hourly_chart),
            refusal_reasons => analytics.refusal_reasons, siteverify_errors => analytics.siteverify_errors,
            verifications => verifications, sample_traffic => state.web.show_outbox && can(&actor, Permission::ProjectsWrite),
        },
    ))
}

/// `GET /orgs/{org}/projects/{project}/stats.csv`: the plan's window of daily statistics as
/// CSV, one row per day; the counts by code as `code=count` lists.
pub async fn stats_csv(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let days = usage::window_days(&state, &actor, &project_id).await?;
    let mut csv = String::from(
        "day,starts,solved,failed,suspicious,blocked,refused,refusal_reasons,siteverify_calls,siteverify_success,siteverify_errors\r\n",
    );
    let codes = |counts: &std::collections::BTreeMap<String, i64>| {
        counts
            .iter()
            .map(|(code, count)| format!("{code}={count}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for day in &days {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\r\n",
            day.day,
            day.starts,
            day.solved,
            day.failed,
            day.suspicious,
            day.blocked,
            day.refused,
            codes(&day.refusal_reasons),
            day.siteverify_calls,
            day.siteverify_success,
            codes(&day.siteverify_errors),
        ));
    }
    let file = format!("humanproof-{project_id}-daily.csv");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        csv,
    )
        .into_response())
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
    // A band's severity by where it lies against the block threshold: from half of it up the
    // score is raised; a band that reaches it holds starts enforce mode blocks.
    let threshold = project.block_threshold.as_decimal();
    let bands: Vec<Value> = (0..10)
        .map(|band| {
            let top = (band + 1) as f64;
            let (severity, label) = if top > threshold {
                ("high", "Blocked in enforce mode")
            } else if top > threshold / 2.0 {
                ("raised", "Raised")
            } else {
                ("low", "Low")
            };
            context! {
                label => format!("{band}–{}", band + 1), count => overview.score_bands[band], max => busiest_band,
                severity => severity, severity_label => label,
            }
        })
        .collect();
    let day_totals = overview
        .days
        .iter()
        .fold((0, 0, 0), |(allow, challenge, block), day| {
            (
                allow + day.allow,
                challenge + day.challenge,
                block + day.block,
            )
        });
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
            totals => context! { allow => day_totals.0, challenge => day_totals.1, block => day_totals.2 },
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
