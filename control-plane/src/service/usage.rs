//! What a project used and how risky its traffic looks: the monthly counters customers
//! are billed by, and the recent risk decisions to review before turning on enforce mode.

use humanproof_protocol::wire::Reason;
use humanproof_protocol::{TelemetryEvent, TelemetryKind};

use super::projects::{ProjectView, find_project};
use super::{Actor, billing};
use crate::db::siteverify::{self, VerificationRecord};
use crate::db::stats::{self, DailyStats, HourStats, Verification};
use crate::db::telemetry::{
    self, Dimension, IngestOutcome, LimitUse, NetworkStarts, RiskOverview, Usage,
};
use crate::db::{month_of, month_range_ms};
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

/// How many of the latest siteverify calls the analytics page lists.
pub const LATEST_VERIFICATIONS: i64 = 10;

/// Everything the analytics page shows about a project.
#[derive(Debug, Clone)]
pub struct ProjectAnalytics {
    /// The month the counters are for, and the months there are counters for.
    pub month: String,
    /// Every month with counters, newest first, the current one included.
    pub months: Vec<String>,
    /// That month's counters.
    pub usage: Usage,
    /// The plan's statistics window: every day, a day without traffic as zeros.
    pub days: Vec<DailyStats>,
    /// The last 24 hours, oldest first, an hour without traffic as zeros.
    pub hours: Vec<HourStats>,
    /// The window's refusals by reason, most first.
    pub refusal_reasons: Vec<(String, i64)>,
    /// The window's failed siteverify calls by error code, most first.
    pub siteverify_errors: Vec<(String, i64)>,
    /// The latest siteverify calls, newest first.
    pub latest_verifications: Vec<Verification>,
}

/// Every day of the plan's statistics window up to today, oldest first, a day without
/// traffic as zeros: what the analytics page draws and its CSV download holds.
pub async fn window_days(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<Vec<DailyStats>, ApiError> {
    let (from, to, stored) = project_stats(state, actor, project_id, None, None).await?;
    let (first_day, last_day) = (
        stats::day_start_ms(&from).unwrap_or_default(),
        stats::day_start_ms(&to).unwrap_or_default(),
    );
    Ok((0..=(last_day - first_day) / stats::DAY_MS)
        .map(|offset| {
            let day = stats::day_of(first_day + offset * stats::DAY_MS);
            stored
                .iter()
                .find(|row| row.day == day)
                .cloned()
                .unwrap_or(DailyStats {
                    day,
                    ..DailyStats::default()
                })
        })
        .collect())
}

/// A project's analytics: the month's counters (`month`, default the current one), the
/// plan's window of daily statistics, the last 24 hours, and the latest verifications.
pub async fn project_analytics(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
    month: Option<&str>,
) -> Result<ProjectAnalytics, ApiError> {
    let (month, usage) = project_usage(state, actor, project_id, month).await?;
    let days = window_days(state, actor, project_id).await?;
    let project = find_project(state, actor, project_id).await?;
    let mut months = stats::usage_months(&state.db, &project.id).await?;
    let current = month_of(state.clock.now_ms());
    if !months.contains(&current) {
        months.insert(0, current);
    }
    let now = state.clock.now_ms();
    let first_hour = now.div_euclid(stats::HOUR_MS) * stats::HOUR_MS - 23 * stats::HOUR_MS;
    let stored_hours = stats::project_hours(&state.db, &project.id, first_hour).await?;
    let hours = (0..24)
        .map(|offset| {
            let hour = first_hour + offset * stats::HOUR_MS;
            stored_hours
                .iter()
                .find(|row| row.hour == hour)
                .cloned()
                .unwrap_or(HourStats {
                    hour,
                    ..HourStats::default()
                })
        })
        .collect();
    let totals = |pick: fn(&DailyStats) -> &std::collections::BTreeMap<String, i64>| {
        let mut totals = std::collections::BTreeMap::<String, i64>::new();
        for day in &days {
            for (code, count) in pick(day) {
                *totals.entry(code.clone()).or_default() += count;
            }
        }
        let mut totals: Vec<(String, i64)> = totals.into_iter().collect();
        totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        totals
    };
    Ok(ProjectAnalytics {
        refusal_reasons: totals(|day| &day.refusal_reasons),
        siteverify_errors: totals(|day| &day.siteverify_errors),
        latest_verifications: stats::latest_verifications(
            &state.db,
            &project.id,
            LATEST_VERIFICATIONS,
        )
        .await?,
        month,
        months,
        usage,
        days,
        hours,
    })
}

/// How many days the organisation overview sums up.
pub const OVERVIEW_DAYS: i64 = 7;

/// One project's last [`OVERVIEW_DAYS`] days, for the organisation overview.
#[derive(Debug, Clone)]
pub struct ProjectWeek {
    /// The project.
    pub project_id: String,
    /// Challenge starts per day, oldest first (a day without traffic as 0).
    pub daily_starts: Vec<i64>,
    /// The days' totals.
    pub totals: DailyStats,
    /// This month's use of the project's own monthly limit, if it has one.
    pub limit: Option<LimitUse>,
}

/// The last [`OVERVIEW_DAYS`] days of every project of the actor's organisation, from the
/// daily statistics (so within the plan's window).
pub async fn organisation_week(
    state: &AppState,
    actor: &Actor,
) -> Result<Vec<ProjectWeek>, ApiError> {
    actor.require(Permission::UsageRead)?;
    let now = state.clock.now_ms();
    let first = now.div_euclid(stats::DAY_MS) * stats::DAY_MS - (OVERVIEW_DAYS - 1) * stats::DAY_MS;
    let (from, to) = (stats::day_of(first), stats::day_of(now));
    let month = month_of(now);
    let mut weeks = Vec::new();
    for project in
        crate::db::projects::list_for_organisation(&state.db, &actor.organisation_id).await?
    {
        let days = stats::project_days(&state.db, &project.id, &from, &to).await?;
        let daily_starts = (0..OVERVIEW_DAYS)
            .map(|offset| {
                let day = stats::day_of(first + offset * stats::DAY_MS);
                days.iter()
                    .find(|row| row.day == day)
                    .map_or(0, |row| row.starts)
            })
            .collect();
        let mut totals = DailyStats::default();
        for day in &days {
            totals.starts += day.starts;
            totals.solved += day.solved;
            totals.failed += day.failed;
            totals.blocked += day.blocked;
            totals.refused += day.refused;
            totals.siteverify_calls += day.siteverify_calls;
        }
        let limit = match project.settings.monthly_limit {
            Some(_) => telemetry::usage(&state.db, &project.id, &month)
                .await?
                .against_limit(project.settings.monthly_limit),
            None => None,
        };
        weeks.push(ProjectWeek {
            project_id: project.id,
            daily_starts,
            totals,
            limit,
        });
    }
    Ok(weeks)
}

/// Days of made-up traffic [`add_sample_traffic`] writes.
pub const SAMPLE_DAYS: i64 = 7;

/// Writes a week of made-up traffic for a project, hour by hour (starts, most of them
/// solved, some failed, refused or blocked, and siteverify calls), then rolls those days up:
/// so the analytics page of a project without visitors yet has something to draw. For the
/// local all-in-one server only; the handler refuses it elsewhere. The numbers follow a
/// fixed pattern, so two runs write the same shape.
pub async fn add_sample_traffic(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<(), ApiError> {
    actor.require(Permission::ProjectsWrite)?;
    let project = find_project(state, actor, project_id).await?;
    let now = state.clock.now_ms();
    let first_hour =
        now.div_euclid(stats::HOUR_MS) * stats::HOUR_MS - SAMPLE_DAYS * 24 * stats::HOUR_MS;
    let mut events = Vec::new();
    let mut verifications = Vec::new();
    for hour in 0..SAMPLE_DAYS * 24 {
        let at = first_hour + hour * stats::HOUR_MS;
        // Busier in the day than at night, and a little different every hour.
        let daytime = (8..20).contains(&((hour + 2) % 24));
        let starts = if daytime { 6 } else { 2 } + (hour * 7) % 5;
        let event = |kind: TelemetryKind, reason: Option<Reason>| TelemetryEvent {
            id: crate::secrets::new_id(),
            kind,
            at,
            project_id: project.id.clone(),
            site_key: project.site_key.clone(),
            reason,
            challenge_id: None,
            hostname: None,
            difficulty: None,
            ip_hash: None,
            ua_hash: None,
            risk: None,
            network: Default::default(),
        };
        let refused = i64::from(hour % 9 == 0);
        let blocked = i64::from(hour % 13 == 0);
        let failed = i64::from(hour % 5 == 0);
        let issued = starts - refused - blocked;
        let solved = (issued - failed).max(0) * 9 / 10;
        for _ in 0..issued {
            events.push(event(TelemetryKind::ChallengeIssued, None));
        }
        for _ in 0..refused {
            events.push(event(
                TelemetryKind::ChallengeRefused,
                Some(Reason::OriginNotAllowed),
            ));
        }
        for _ in 0..blocked {
            events.push(event(TelemetryKind::ChallengeBlocked, None));
        }
        for _ in 0..failed {
            events.push(event(
                TelemetryKind::RedeemFailed,
                Some(Reason::InvalidSolution),
            ));
        }
        for index in 0..solved {
            events.push(event(TelemetryKind::RedeemSucceeded, None));
            verifications.push(VerificationRecord {
                project_id: project.id.clone(),
                at,
                error_code: (index == 0 && hour % 7 == 0).then(|| siteverify::DUPLICATE.into()),
            });
        }
    }
    for batch in events.chunks(500) {
        telemetry::ingest(&state.db, batch, now).await?;
    }
    siteverify::record_verifications(&state.db, &verifications).await?;
    for day in 0..=SAMPLE_DAYS {
        let day_start = first_hour.div_euclid(stats::DAY_MS) * stats::DAY_MS + day * stats::DAY_MS;
        stats::roll_up_day(&state.db, day_start, now).await?;
    }
    Ok(())
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
    text.len() == 7 && month_range_ms(text).is_some()
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
