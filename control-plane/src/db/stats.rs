//! Daily statistics: per project and UTC day, rolled up from the events.
//!
//! The events are the source; a day's row is computed from all of that day's events and
//! written whole, so rolling a day up again (the job runs every hour, and late deliveries
//! reach old days) gives the same row. Rows are kept for the plan's statistics window,
//! longer than Free keeps the events themselves, which is why a day is only rolled up while
//! its events are still there.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::FromRow;

use super::Db;
use super::columns::JsonText;
use crate::clock::Clock;
use crate::metrics::{Job, Metrics};
use crate::plans::Catalogue;

/// A day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// One project's day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DailyStats {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Challenge starts: issued, refused by a gate, or blocked for their risk.
    pub starts: i64,
    /// Redeems that earned a verification token.
    pub solved: i64,
    /// Redeems that failed after claiming the challenge (wrong solutions or check answer).
    pub failed: i64,
    /// Starts scored "challenge" or "block", in observe mode too (counted on the start: the
    /// events of its redeem carry the same assessment).
    pub suspicious: i64,
    /// Starts refused for their risk score (enforce mode).
    pub blocked: i64,
    /// Starts refused by a gate.
    pub refused: i64,
    /// Refused starts by reason code.
    pub refusal_reasons: BTreeMap<String, i64>,
    /// Siteverify calls.
    pub siteverify_calls: i64,
    /// Siteverify calls that succeeded.
    pub siteverify_success: i64,
    /// Failed siteverify calls by error code.
    pub siteverify_errors: BTreeMap<String, i64>,
}

/// A stored row: the counts by code are JSON objects.
#[derive(FromRow)]
struct DailyStatsRow {
    day: String,
    starts: i64,
    solved: i64,
    failed: i64,
    suspicious: i64,
    blocked: i64,
    refused: i64,
    refusal_reasons: JsonText<BTreeMap<String, i64>>,
    siteverify_calls: i64,
    siteverify_success: i64,
    siteverify_errors: JsonText<BTreeMap<String, i64>>,
}

impl From<DailyStatsRow> for DailyStats {
    fn from(row: DailyStatsRow) -> Self {
        Self {
            day: row.day,
            starts: row.starts,
            solved: row.solved,
            failed: row.failed,
            suspicious: row.suspicious,
            blocked: row.blocked,
            refused: row.refused,
            refusal_reasons: row.refusal_reasons.0,
            siteverify_calls: row.siteverify_calls,
            siteverify_success: row.siteverify_success,
            siteverify_errors: row.siteverify_errors.0,
        }
    }
}

/// The UTC day (`YYYY-MM-DD`) of a Unix-ms time.
pub fn day_of(at_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The first millisecond of a `YYYY-MM-DD` day (UTC); `None` for anything else.
pub fn day_start_ms(day: &str) -> Option<i64> {
    let mut parts = day.splitn(3, '-');
    let (year, month, date) = (parts.next()?, parts.next()?, parts.next()?);
    if (year.len(), month.len(), date.len()) != (4, 2, 2) {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(year.parse().ok()?, month, date.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// What became of the starts, as SQL columns over `telemetry_events`: `starts` (issued,
/// refused or blocked), `solved`, `failed`, `blocked`, `refused`. One text for the daily
/// roll-up and the hourly view, so they count alike.
macro_rules! outcome_columns {
    () => {
        "CAST(SUM(CASE WHEN kind IN ('challenge_issued', 'challenge_refused', 'challenge_blocked') THEN 1 ELSE 0 END) AS BIGINT) AS starts, \
         CAST(SUM(CASE WHEN kind = 'redeem_succeeded' THEN 1 ELSE 0 END) AS BIGINT) AS solved, \
         CAST(SUM(CASE WHEN kind = 'redeem_failed' THEN 1 ELSE 0 END) AS BIGINT) AS failed, \
         CAST(SUM(CASE WHEN kind = 'challenge_blocked' THEN 1 ELSE 0 END) AS BIGINT) AS blocked, \
         CAST(SUM(CASE WHEN kind = 'challenge_refused' THEN 1 ELSE 0 END) AS BIGINT) AS refused"
    };
}

/// The project's row of the day being rolled up, made on its first count.
fn day_row<'a>(
    rows: &'a mut BTreeMap<String, DailyStats>,
    project_id: String,
    day: &str,
) -> &'a mut DailyStats {
    rows.entry(project_id).or_insert_with(|| DailyStats {
        day: day.to_owned(),
        ..DailyStats::default()
    })
}

#[derive(FromRow)]
struct EventCounts {
    project_id: String,
    starts: i64,
    solved: i64,
    failed: i64,
    suspicious: i64,
    blocked: i64,
    refused: i64,
}

#[derive(FromRow)]
struct CodeCount {
    project_id: String,
    code: Option<String>,
    count: i64,
}

#[derive(FromRow)]
struct VerificationCounts {
    project_id: String,
    calls: i64,
    success: i64,
}

/// Rolls up the day that starts at `day_start` (Unix ms, midnight UTC) for every project
/// with events that day, writing each project's row whole; the number of rows written.
pub async fn roll_up_day(db: &Db, day_start: i64, now_ms: i64) -> Result<usize, sqlx::Error> {
    let range = (day_start, day_start + DAY_MS);
    let day = day_of(day_start);
    let mut rows: BTreeMap<String, DailyStats> = BTreeMap::new();
    let counts: Vec<EventCounts> = sqlx::query_as(concat!(
        "SELECT project_id, ",
        outcome_columns!(),
        ", CAST(SUM(CASE WHEN kind IN ('challenge_issued', 'challenge_blocked') \
         AND risk_decision IN ('challenge', 'block') THEN 1 ELSE 0 END) AS BIGINT) AS suspicious \
         FROM telemetry_events WHERE at >= $1 AND at < $2 GROUP BY project_id",
    ))
    .bind(range.0)
    .bind(range.1)
    .fetch_all(db.pool())
    .await?;
    for counts in counts {
        let stats = day_row(&mut rows, counts.project_id, &day);
        stats.starts = counts.starts;
        stats.solved = counts.solved;
        stats.failed = counts.failed;
        stats.suspicious = counts.suspicious;
        stats.blocked = counts.blocked;
        stats.refused = counts.refused;
    }
    let reasons: Vec<CodeCount> = sqlx::query_as(
        "SELECT project_id, reason AS code, COUNT(*) AS count FROM telemetry_events \
         WHERE kind = 'challenge_refused' AND at >= $1 AND at < $2 GROUP BY project_id, reason",
    )
    .bind(range.0)
    .bind(range.1)
    .fetch_all(db.pool())
    .await?;
    for reason in reasons {
        day_row(&mut rows, reason.project_id, &day)
            .refusal_reasons
            .insert(
                reason.code.unwrap_or_else(|| "unknown".to_owned()),
                reason.count,
            );
    }
    let verifications: Vec<VerificationCounts> = sqlx::query_as(
        "SELECT project_id, COUNT(*) AS calls, CAST(SUM(success) AS BIGINT) AS success \
         FROM verification_events WHERE at >= $1 AND at < $2 GROUP BY project_id",
    )
    .bind(range.0)
    .bind(range.1)
    .fetch_all(db.pool())
    .await?;
    for verification in verifications {
        let stats = day_row(&mut rows, verification.project_id, &day);
        stats.siteverify_calls = verification.calls;
        stats.siteverify_success = verification.success;
    }
    let errors: Vec<CodeCount> = sqlx::query_as(
        "SELECT project_id, error_code AS code, COUNT(*) AS count FROM verification_events \
         WHERE success = 0 AND at >= $1 AND at < $2 GROUP BY project_id, error_code",
    )
    .bind(range.0)
    .bind(range.1)
    .fetch_all(db.pool())
    .await?;
    for error in errors {
        day_row(&mut rows, error.project_id, &day)
            .siteverify_errors
            .insert(
                error.code.unwrap_or_else(|| "unknown".to_owned()),
                error.count,
            );
    }
    let written = rows.len();
    let mut tx = db.begin_write().await?;
    for (project_id, stats) in rows {
        sqlx::query(
            "INSERT INTO daily_stats (project_id, day, starts, solved, failed, suspicious, blocked, \
             refused, refusal_reasons, siteverify_calls, siteverify_success, siteverify_errors, rolled_up_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (project_id, day) DO UPDATE SET starts = excluded.starts, \
             solved = excluded.solved, failed = excluded.failed, suspicious = excluded.suspicious, \
             blocked = excluded.blocked, refused = excluded.refused, \
             refusal_reasons = excluded.refusal_reasons, siteverify_calls = excluded.siteverify_calls, \
             siteverify_success = excluded.siteverify_success, \
             siteverify_errors = excluded.siteverify_errors, rolled_up_at = excluded.rolled_up_at",
        )
        .bind(project_id)
        .bind(stats.day.as_str())
        .bind(stats.starts)
        .bind(stats.solved)
        .bind(stats.failed)
        .bind(stats.suspicious)
        .bind(stats.blocked)
        .bind(stats.refused)
        .bind(serde_json::to_string(&stats.refusal_reasons).unwrap_or_default())
        .bind(stats.siteverify_calls)
        .bind(stats.siteverify_success)
        .bind(serde_json::to_string(&stats.siteverify_errors).unwrap_or_default())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(written)
}

/// The days (their first millisecond) that have events received since `since_ms`: the days a
/// roll-up run must redo.
pub async fn days_with_events_since(db: &Db, since_ms: i64) -> Result<Vec<i64>, sqlx::Error> {
    let days: Vec<i64> = sqlx::query_scalar(
        "SELECT CAST(at / $2 AS BIGINT) AS day FROM telemetry_events WHERE received_at >= $1 \
         UNION SELECT CAST(at / $2 AS BIGINT) AS day FROM verification_events WHERE at >= $1 \
         ORDER BY day",
    )
    .bind(since_ms)
    .bind(DAY_MS)
    .fetch_all(db.pool())
    .await?;
    Ok(days.into_iter().map(|day| day * DAY_MS).collect())
}

/// A project's rows from `from` to `to` (`YYYY-MM-DD`, both included), oldest first.
pub async fn project_days(
    db: &Db,
    project_id: &str,
    from: &str,
    to: &str,
) -> Result<Vec<DailyStats>, sqlx::Error> {
    let rows: Vec<DailyStatsRow> = sqlx::query_as(
        "SELECT day, starts, solved, failed, suspicious, blocked, refused, refusal_reasons, \
         siteverify_calls, siteverify_success, siteverify_errors FROM daily_stats \
         WHERE project_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
    )
    .bind(project_id)
    .bind(from)
    .bind(to)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(DailyStats::from).collect())
}

/// Rolls up every day with events received since `since_ms`, back to the oldest day whose
/// events every plan still keeps (the shortest log window): an older day's events may be
/// partly deleted, and rolling it up again would shrink its row. Events delivered later than
/// that still count in the monthly usage, not in the daily statistics. The rows written.
pub async fn roll_up_since(
    db: &Db,
    plans: &Catalogue,
    since_ms: i64,
    now_ms: i64,
) -> Result<usize, sqlx::Error> {
    let shortest_log_days = plans
        .plans()
        .iter()
        .map(|plan| plan.log_days)
        .min()
        .unwrap_or(1);
    let oldest_day =
        (now_ms - i64::from(shortest_log_days) * DAY_MS).div_euclid(DAY_MS) * DAY_MS + DAY_MS;
    let mut written = 0;
    for day in days_with_events_since(db, since_ms).await? {
        if day >= oldest_day {
            written += roll_up_day(db, day, now_ms).await?;
        }
    }
    Ok(written)
}

/// How often `serve` rolls up the statistics.
pub const ROLL_UP_PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

/// Rolls up now and every [`ROLL_UP_PERIOD`] after, each run redoing the days of the events
/// received since the previous run began (a day back on the first).
pub async fn roll_up_hourly(db: Db, plans: Catalogue, clock: Clock, metrics: Metrics) {
    let mut every = tokio::time::interval(ROLL_UP_PERIOD);
    let mut since = clock.now_ms() - DAY_MS;
    loop {
        every.tick().await;
        let started = clock.now_ms();
        let rolled_up = roll_up_since(&db, &plans, since, started).await;
        metrics.job_run(Job::RollUp, rolled_up.is_ok(), started);
        match rolled_up {
            Ok(rows) => {
                tracing::info!(rows, "daily statistics rolled up");
                since = started;
            }
            Err(err) => tracing::warn!(error = %err, "roll-up failed; will retry next hour"),
        }
    }
}

/// An hour's starts and their outcomes, straight from the events (they are kept longer than
/// the 24 hours the hourly view shows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, FromRow)]
pub struct HourStats {
    /// The hour's first millisecond.
    pub hour: i64,
    /// Challenge starts: issued, refused or blocked.
    pub starts: i64,
    /// Redeems that earned a token.
    pub solved: i64,
    /// Redeems that failed.
    pub failed: i64,
    /// Starts blocked for their risk.
    pub blocked: i64,
    /// Starts refused by a gate.
    pub refused: i64,
}

/// An hour in milliseconds.
pub const HOUR_MS: i64 = 60 * 60 * 1000;

/// A project's hours from `from_ms` on that had events, oldest first.
pub async fn project_hours(
    db: &Db,
    project_id: &str,
    from_ms: i64,
) -> Result<Vec<HourStats>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT CAST(at / $3 AS BIGINT) * $3 AS hour, ",
        outcome_columns!(),
        " FROM telemetry_events WHERE project_id = $1 AND at >= $2 \
             GROUP BY CAST(at / $3 AS BIGINT) ORDER BY hour",
    ))
    .bind(project_id)
    .bind(from_ms)
    .bind(HOUR_MS)
    .fetch_all(db.pool())
    .await
}

/// One siteverify call, as the latest-verifications list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct Verification {
    /// When, Unix ms.
    pub at: i64,
    /// 1 if the token verified.
    pub success: i64,
    /// Why not, if it did not.
    pub error_code: Option<String>,
}

/// A project's latest siteverify calls, newest first.
pub async fn latest_verifications(
    db: &Db,
    project_id: &str,
    limit: i64,
) -> Result<Vec<Verification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, success, error_code FROM verification_events WHERE project_id = $1 \
         ORDER BY at DESC LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// The months a project has usage counters for, newest first.
pub async fn usage_months(db: &Db, project_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT month FROM usage_months WHERE project_id = $1 ORDER BY month DESC")
        .bind(project_id)
        .fetch_all(db.pool())
        .await
}
