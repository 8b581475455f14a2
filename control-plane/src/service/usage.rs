//! What a project used and how risky its traffic looks: the monthly counters customers
//! are billed by, and the recent risk decisions to review before turning on enforce mode.

use humanproof_protocol::TelemetryEvent;

use super::projects::{ProjectView, find_project};
use super::{Actor, billing};
use crate::db::month_of;
use crate::db::stats::{self, DailyStats};
use crate::db::telemetry::{self, Dimension, IngestOutcome, NetworkStarts, RiskOverview, Usage};
use crate::error::ApiError;
use crate::roles::Permission;
use crate::state::AppState;

/// A project's usage for a month (`YYYY-MM`, default the current one).
pub async fn project_usage(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
    month: Option<&str>,
) -> Result<(String, Usage), ApiError> {
    actor.require(Permission::UsageRead)?;
    let project = find_project(state, actor, project_id).await?;
    let month = match month {
        Some(month) if is_month(month) => month.to_owned(),
        Some(_) => return Err(ApiError::invalid("month", "Give the month as YYYY-MM.")),
        None => month_of(state.clock.now_ms()),
    };
    let usage = telemetry::usage(&state.db, &project.id, &month).await?;
    Ok((month, usage))
}

/// The longest range of days one statistics request may ask for (the rows are kept 14 days
/// at the most; a longer range only costs a scan).
pub const MAX_STATS_DAYS: i64 = 31;

/// A project's daily statistics from `from` to `to` (`YYYY-MM-DD`, UTC, both included); by
/// default the plan's statistics window up to today.
pub async fn project_stats(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(String, String, Vec<DailyStats>), ApiError> {
    actor.require(Permission::UsageRead)?;
    let project = find_project(state, actor, project_id).await?;
    let now = state.clock.now_ms();
    let day = |name: &'static str, value: Option<&str>, default: i64| match value {
        Some(value) => stats::day_start_ms(value)
            .ok_or_else(|| ApiError::invalid(name, "Give the day as YYYY-MM-DD.")),
        None => Ok(default),
    };
    let window = i64::from(billing::current_plan(state, actor).await?.stats_days.max(1));
    let to_ms = day("to", to, now.div_euclid(stats::DAY_MS) * stats::DAY_MS)?;
    let from_ms = day("from", from, to_ms - (window - 1) * stats::DAY_MS)?;
    if from_ms > to_ms {
        return Err(ApiError::invalid("from", "from is after to."));
    }
    if to_ms - from_ms >= MAX_STATS_DAYS * stats::DAY_MS {
        return Err(ApiError::invalid("from", "Ask for 31 days at the most."));
    }
    let (from, to) = (stats::day_of(from_ms), stats::day_of(to_ms));
    let days = stats::project_days(&state.db, &project.id, &from, &to).await?;
    Ok((from, to, days))
}

/// How far back the risk view looks.
pub const RISK_VIEW_WINDOW_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Countries and networks the risk view lists.
const TOP_NETWORKS: i64 = 10;

/// What the risk view shows about a project.
#[derive(Debug, Clone)]
pub struct ProjectRisk {
    /// The project.
    pub project: ProjectView,
    /// Its recent starts.
    pub overview: RiskOverview,
    /// The month the country and network counts are for.
    pub month: String,
    /// This month's busiest countries.
    pub countries: Vec<NetworkStarts>,
    /// This month's busiest networks (AS numbers).
    pub networks: Vec<NetworkStarts>,
}

/// A project's recent risk decisions, for reviewing before switching observe to enforce.
pub async fn project_risk(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<ProjectRisk, ApiError> {
    actor.require(Permission::UsageRead)?;
    let project = find_project(state, actor, project_id).await?;
    let now = state.clock.now_ms();
    let month = month_of(now);
    Ok(ProjectRisk {
        overview: telemetry::risk_overview(&state.db, &project.id, now - RISK_VIEW_WINDOW_MS)
            .await?,
        countries: telemetry::top_networks(
            &state.db,
            &project.id,
            &month,
            Dimension::Country,
            TOP_NETWORKS,
        )
        .await?,
        networks: telemetry::top_networks(
            &state.db,
            &project.id,
            &month,
            Dimension::Asn,
            TOP_NETWORKS,
        )
        .await?,
        project: ProjectView::new(&project, &billing::current_plan(state, actor).await?),
        month,
    })
}

fn is_month(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 7
        && bytes[4] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit())
}

/// Stores telemetry from the edge (each event once, by its id) and sends the usage notices it
/// brings about. A notice that cannot go out now is not recorded as sent, so the next batch
/// tries again; the events are stored either way.
pub async fn record_telemetry(
    state: &AppState,
    events: &[TelemetryEvent],
) -> Result<IngestOutcome, sqlx::Error> {
    let outcome = telemetry::ingest(&state.db, events, state.clock.now_ms()).await?;
    if let Err(err) = billing::send_usage_notices(state, events).await {
        tracing::warn!(error = %err, "usage notices not sent; the next batch retries");
    }
    Ok(outcome)
}
