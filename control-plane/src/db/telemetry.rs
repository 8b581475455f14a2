//! Durable, idempotent storage of edge telemetry, and the monthly usage derived from it.
//!
//! An event is stored once, keyed by its id; usage counters move only when an event is
//! stored for the first time, in the same transaction, so redelivery never double-counts.
//! Whether an id was seen is read from its receipt (`telemetry_receipts`), which outlives
//! the event's row: a plan's log window may delete the row after 3 days, and the edge's
//! queues may deliver an event again for about a week after an outage.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use humanproof_protocol::risk::RiskFactor;
use humanproof_protocol::telemetry::MAX_BATCH_EVENTS;
use humanproof_protocol::{Decision, RiskReason, Score, TelemetryEvent, TelemetryKind};
use serde::Serialize;
use sqlx::Row as _;

use super::columns::{ColumnValues, InRange, JsonText, Named, rows_of_placeholders};
use super::{Backend, Db, month_of};

/// What happened to a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Events stored for the first time.
    pub stored: usize,
    /// Events already stored by an earlier delivery.
    pub duplicates: usize,
    /// Events for projects that no longer exist, dropped.
    pub unknown_project: usize,
}

/// One project's counters for one month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// What the plan limit counts: redeemed challenges (the edge records at most one redeem
    /// per challenge, solved or failed, and none before its token verified) plus starts
    /// blocked for their risk score.
    pub protected_attempts: u64,
    /// Challenges issued.
    pub challenges_issued: u64,
    /// Challenge starts refused by a gate.
    pub refusals: u64,
    /// Challenge starts blocked for their risk score (enforce mode); also protected attempts.
    pub risk_blocked: u64,
    /// Siteverify calls (analytics only).
    pub verifications: u64,
}

/// How much of a project's own monthly limit its protected attempts have used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitUse {
    /// Protected attempts this month.
    pub used: u64,
    /// The project's monthly limit.
    pub limit: u64,
    /// `used` as a whole percentage of `limit` (100 once reached, even for a limit of 0).
    pub percent: u64,
    /// Whether the limit is reached: the edge refuses new challenges until the month ends.
    pub reached: bool,
}

impl Usage {
    /// The counters as [`ADD_USAGE`] takes them.
    pub(crate) fn columns(&self) -> [i64; 5] {
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        [
            as_i64(self.protected_attempts),
            as_i64(self.challenges_issued),
            as_i64(self.refusals),
            as_i64(self.verifications),
            as_i64(self.risk_blocked),
        ]
    }

    /// This month's use of a project's monthly `limit`, if it has one.
    pub fn against_limit(&self, limit: Option<u64>) -> Option<LimitUse> {
        let limit = limit?;
        let used = self.protected_attempts;
        let reached = used >= limit;
        let percent = if reached {
            (used * 100).checked_div(limit).unwrap_or(100).max(100)
        } else {
            used * 100 / limit
        };
        Some(LimitUse {
            used,
            limit,
            percent,
            reached,
        })
    }

    fn record(&mut self, kind: TelemetryKind) {
        if kind.is_protected_attempt() {
            self.protected_attempts += 1;
        }
        match kind {
            TelemetryKind::ChallengeIssued => self.challenges_issued += 1,
            TelemetryKind::ChallengeRefused => self.refusals += 1,
            TelemetryKind::ChallengeBlocked => self.risk_blocked += 1,
            TelemetryKind::RedeemSucceeded | TelemetryKind::RedeemFailed => {}
        }
    }
}

/// Stores a batch in one transaction and bumps usage for the events that are new: one read
/// of which projects exist, then one multi-row INSERT of receipts and one of events,
/// whatever the batch's size (to 500).
pub async fn ingest(
    db: &Db,
    events: &[TelemetryEvent],
    received_at: i64,
) -> Result<IngestOutcome, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let mut outcome = IngestOutcome::default();
    // Counters are added in key order, the order siteverify's writers take usage rows in:
    // transactions that lock rows in one order never wait on each other in a cycle.
    let mut usage: BTreeMap<(String, String), Usage> = BTreeMap::new();
    let mut networks: BTreeMap<NetworkKey, NetworkCount> = BTreeMap::new();

    let known_projects = existing_projects(&mut tx, db.backend(), events).await?;
    let mut seen = HashSet::new();
    let mut candidates = Vec::with_capacity(events.len());
    for event in events {
        if !known_projects.contains(&event.project_id) {
            outcome.unknown_project += 1;
        } else if !seen.insert(event.id.as_str()) {
            // Repeated within the batch: the first occurrence is the one that may be new.
            outcome.duplicates += 1;
        } else {
            candidates.push(event);
        }
    }
    // In id order, so that two transactions with overlapping batches (a redelivery racing
    // the first delivery on another replica) take the rows' locks in one order.
    candidates.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    // Per chunk, one statement of receipts and one of events; an event is new, stored and
    // counted, when both are. Its row without a receipt was stored (and counted) by a
    // replica that predates receipts.
    let mut stored = HashSet::new();
    for chunk in candidates.chunks(MAX_EVENTS_PER_INSERT) {
        let receipts = chunk
            .iter()
            .map(|event| {
                ColumnValues::default()
                    .set("id", event.id.as_str())
                    .set("received_at", received_at)
            })
            .collect();
        let unseen = insert_new(&mut tx, db.backend(), "telemetry_receipts", receipts).await?;
        let rows = chunk
            .iter()
            .filter(|event| unseen.contains(&event.id))
            .map(|event| event_row(event, received_at))
            .collect();
        stored.extend(insert_new(&mut tx, db.backend(), "telemetry_events", rows).await?);
    }
    for event in candidates {
        if stored.contains(&event.id) {
            outcome.stored += 1;
            usage
                .entry((event.project_id.clone(), month_of(event.at)))
                .or_default()
                .record(event.kind);
            count_network(&mut networks, event);
        } else {
            outcome.duplicates += 1;
        }
    }

    for ((project_id, month), counts) in usage {
        add_usage(&mut tx, &project_id, &month, counts).await?;
    }
    for ((project_id, month, dimension, value), count) in networks {
        sqlx::query(
            "INSERT INTO network_usage (project_id, month, dimension, value, starts, blocked) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (project_id, month, dimension, value) DO UPDATE SET \
             starts = network_usage.starts + excluded.starts, blocked = network_usage.blocked + excluded.blocked",
        )
        .bind(project_id)
        .bind(month)
        .bind(dimension.as_str())
        .bind(value)
        .bind(i64::try_from(count.starts).unwrap_or(i64::MAX))
        .bind(i64::try_from(count.blocked).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Inserts `rows` into `table` (keyed by `id`), skipping ids already there; the ids inserted.
async fn insert_new(
    tx: &mut sqlx::AnyConnection,
    backend: Backend,
    table: &'static str,
    rows: Vec<ColumnValues>,
) -> Result<HashSet<String>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    ColumnValues::insert_rows_into(
        backend,
        rows,
        table,
        "ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| row.try_get::<String, _>(0))
    .collect()
}

/// Most events one INSERT takes: sixteen values each, well under either database's limit on
/// bound values, and a whole batch of the edge's ([`MAX_BATCH_EVENTS`]).
const MAX_EVENTS_PER_INSERT: usize = MAX_BATCH_EVENTS;

/// The ids, among the events' projects, of those that still exist.
async fn existing_projects(
    tx: &mut sqlx::AnyConnection,
    backend: Backend,
    events: &[TelemetryEvent],
) -> Result<HashSet<String>, sqlx::Error> {
    let asked: BTreeSet<&str> = events
        .iter()
        .map(|event| event.project_id.as_str())
        .collect();
    if asked.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "SELECT id FROM projects WHERE id IN {}",
        rows_of_placeholders(backend, 1, asked.len())
    );
    let select = asked.into_iter().fold(
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).persistent(false),
        |select, id| select.bind(id),
    );
    Ok(select.fetch_all(&mut *tx).await?.into_iter().collect())
}

/// The row an event is stored as.
fn event_row(event: &TelemetryEvent, received_at: i64) -> ColumnValues {
    let risk = event.risk.as_ref();
    ColumnValues::default()
        .set("id", event.id.as_str())
        .set("project_id", event.project_id.as_str())
        .set("kind", event.kind.as_str())
        .set("reason", event.reason.map(|reason| reason.as_str()))
        .set("at", event.at)
        .set("challenge_id", event.challenge_id.as_deref())
        .set("hostname", event.hostname.as_deref())
        .set("difficulty", event.difficulty.map(i64::from))
        .set("ip_hash", event.ip_hash.as_deref())
        .set("ua_hash", event.ua_hash.as_deref())
        .set("received_at", received_at)
        .set(
            "risk_score",
            risk.map(|risk| i64::from(risk.score.tenths())),
        )
        .set(
            "risk_factors",
            risk.map(|risk| serde_json::to_string(&risk.factors).expect("factors serialize")),
        )
        .set("risk_decision", risk.map(|risk| risk.decision.as_str()))
        .set("preset", risk.map(|risk| risk.preset.as_str()))
        .set("risk_mode", risk.map(|risk| risk.mode.as_str()))
}

/// Which counter a start's country or network goes to: project, month, dimension, value.
type NetworkKey = (String, String, Dimension, String);

/// A country or a network (autonomous system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dimension {
    /// ISO 3166-1 alpha-2 code.
    Country,
    /// Autonomous system number.
    Asn,
}

impl Dimension {
    fn as_str(self) -> &'static str {
        match self {
            Self::Country => "country",
            Self::Asn => "asn",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct NetworkCount {
    starts: u64,
    blocked: u64,
}

/// Counts an assessed start under its country and network, the only place they are kept.
fn count_network(networks: &mut BTreeMap<NetworkKey, NetworkCount>, event: &TelemetryEvent) {
    let blocked = match event.kind {
        TelemetryKind::ChallengeIssued => false,
        TelemetryKind::ChallengeBlocked => true,
        _ => return,
    };
    let values = [
        (Dimension::Country, event.network.country.clone()),
        (Dimension::Asn, event.network.asn.map(|asn| asn.to_string())),
    ];
    for (dimension, value) in values {
        let Some(value) = value else { continue };
        let count = networks
            .entry((
                event.project_id.clone(),
                month_of(event.at),
                dimension,
                value,
            ))
            .or_default();
        count.starts += 1;
        count.blocked += u64::from(blocked);
    }
}

/// Starts from one country or network in a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkStarts {
    /// Country code or AS number.
    pub value: String,
    /// Assessed starts.
    pub starts: u64,
    /// Of which blocked for their risk.
    pub blocked: u64,
}

/// A `network_usage` row's value and counts.
#[derive(sqlx::FromRow)]
struct NetworkStartsRow {
    value: String,
    starts: InRange<u64>,
    blocked: InRange<u64>,
}

/// A project's busiest countries or networks in `month`, at most `limit`.
pub async fn top_networks(
    db: &Db,
    project_id: &str,
    month: &str,
    dimension: Dimension,
    limit: i64,
) -> Result<Vec<NetworkStarts>, sqlx::Error> {
    let rows: Vec<NetworkStartsRow> = sqlx::query_as(
        "SELECT value, starts, blocked FROM network_usage WHERE project_id = $1 AND month = $2 \
         AND dimension = $3 ORDER BY starts DESC, value LIMIT $4",
    )
    .bind(project_id)
    .bind(month)
    .bind(dimension.as_str())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| NetworkStarts {
            value: row.value,
            starts: row.starts.0,
            blocked: row.blocked.0,
        })
        .collect())
}

/// Adds `counts` to a project's month, creating the row on first use.
pub(crate) async fn add_usage(
    conn: &mut sqlx::AnyConnection,
    project_id: &str,
    month: &str,
    counts: Usage,
) -> Result<(), sqlx::Error> {
    let mut query = sqlx::query(ADD_USAGE).bind(project_id).bind(month);
    for count in counts.columns() {
        query = query.bind(count);
    }
    query.execute(conn).await?;
    Ok(())
}

/// Adds counters to a project's month: project, month, then the counters in the order of
/// [`Usage::columns`].
pub(crate) const ADD_USAGE: &str = "INSERT INTO usage_months (project_id, month, \
     protected_attempts, challenges_issued, refusals, verifications, risk_blocked) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (project_id, month) DO UPDATE SET \
     protected_attempts = usage_months.protected_attempts + excluded.protected_attempts, \
     challenges_issued = usage_months.challenges_issued + excluded.challenges_issued, \
     refusals = usage_months.refusals + excluded.refusals, \
     verifications = usage_months.verifications + excluded.verifications, \
     risk_blocked = usage_months.risk_blocked + excluded.risk_blocked";

/// A `usage_months` row's counters.
#[derive(sqlx::FromRow)]
struct UsageRow {
    protected_attempts: InRange<u64>,
    challenges_issued: InRange<u64>,
    refusals: InRange<u64>,
    verifications: InRange<u64>,
    risk_blocked: InRange<u64>,
}

/// A project's counters for `month` (`YYYY-MM`); zero when nothing happened.
pub async fn usage(db: &Db, project_id: &str, month: &str) -> Result<Usage, sqlx::Error> {
    let row: Option<UsageRow> = sqlx::query_as(
        "SELECT protected_attempts, challenges_issued, refusals, verifications, risk_blocked \
         FROM usage_months WHERE project_id = $1 AND month = $2",
    )
    .bind(project_id)
    .bind(month)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map_or_else(Usage::default, |row| Usage {
        protected_attempts: row.protected_attempts.0,
        challenges_issued: row.challenges_issued.0,
        refusals: row.refusals.0,
        verifications: row.verifications.0,
        risk_blocked: row.risk_blocked.0,
    }))
}

/// Most assessed starts the risk view reads; a busier project's view covers its latest ones.
pub const RISK_VIEW_MAX_STARTS: i64 = 10_000;

/// What the dashboard's risk view shows about a project's recent challenge starts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RiskOverview {
    /// Assessed starts read (issued or blocked).
    pub starts: u64,
    /// Whether [`RISK_VIEW_MAX_STARTS`] cut the window short.
    pub truncated: bool,
    /// Starts whose decision was block, in either mode: what enforce mode blocks.
    pub block_decisions: u64,
    /// Starts actually refused (enforce mode).
    pub blocked: u64,
    /// Starts per score band: `[0, 1)`, `[1, 2)`, … `[9, 10]`.
    pub score_bands: [u64; 10],
    /// Decisions per UTC day, oldest first.
    pub days: Vec<DayDecisions>,
    /// Reason codes by how many starts they raised, most first.
    pub top_reasons: Vec<(RiskReason, u64)>,
    /// The latest starts, newest first.
    pub recent: Vec<AssessedStart>,
}

/// One day's decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayDecisions {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Allowed starts.
    pub allow: u64,
    /// Starts that got more work.
    pub challenge: u64,
    /// Starts decided block (refused in enforce mode).
    pub block: u64,
}

/// One assessed start.
#[derive(Debug, Clone, Serialize)]
pub struct AssessedStart {
    /// When, Unix ms.
    pub at: i64,
    /// Whether it was refused.
    pub blocked: bool,
    /// The score.
    pub score: Score,
    /// The decision.
    pub decision: Decision,
    /// The reasons with their points.
    pub factors: Vec<RiskFactor>,
}

/// A `telemetry_events` row of an assessed start, as the risk view reads it.
#[derive(sqlx::FromRow)]
struct AssessedStartRow {
    at: i64,
    kind: String,
    risk_score: InRange<u8>,
    risk_factors: Option<JsonText<Vec<RiskFactor>>>,
    risk_decision: Named<Decision>,
}

/// How many recent starts the view lists one by one.
const RECENT_STARTS: usize = 50;

/// The risk overview of a project's starts since `since_ms`.
pub async fn risk_overview(
    db: &Db,
    project_id: &str,
    since_ms: i64,
) -> Result<RiskOverview, sqlx::Error> {
    let rows: Vec<AssessedStartRow> = sqlx::query_as(
        "SELECT at, kind, risk_score, risk_factors, risk_decision FROM telemetry_events \
         WHERE project_id = $1 AND at >= $2 AND risk_score IS NOT NULL \
         AND kind IN ('challenge_issued', 'challenge_blocked') ORDER BY at DESC LIMIT $3",
    )
    .bind(project_id)
    .bind(since_ms)
    .bind(RISK_VIEW_MAX_STARTS)
    .fetch_all(db.pool())
    .await?;
    let mut overview = RiskOverview {
        truncated: rows.len() as i64 == RISK_VIEW_MAX_STARTS,
        ..RiskOverview::default()
    };
    let mut days: std::collections::BTreeMap<String, DayDecisions> =
        std::collections::BTreeMap::new();
    let mut reasons: HashMap<RiskReason, u64> = HashMap::new();
    for row in rows {
        let at = row.at;
        let blocked = row.kind == TelemetryKind::ChallengeBlocked.as_str();
        let score = Score::from_tenths(row.risk_score.0);
        let Named(decision) = row.risk_decision;
        let factors = row.risk_factors.map(|json| json.0).unwrap_or_default();

        overview.starts += 1;
        overview.blocked += u64::from(blocked);
        overview.block_decisions += u64::from(decision == Decision::Block);
        overview.score_bands[usize::from(score.tenths() / 10).min(9)] += 1;
        let day = days.entry(day_of(at)).or_default();
        match decision {
            Decision::Allow => day.allow += 1,
            Decision::Challenge => day.challenge += 1,
            Decision::Block => day.block += 1,
        }
        // A reason counts once per start, however many points it brought.
        let mut seen = HashSet::new();
        for factor in &factors {
            if seen.insert(factor.reason) {
                *reasons.entry(factor.reason).or_default() += 1;
            }
        }
        if overview.recent.len() < RECENT_STARTS {
            overview.recent.push(AssessedStart {
                at,
                blocked,
                score,
                decision,
                factors,
            });
        }
    }
    overview.days = days
        .into_iter()
        .map(|(day, counts)| DayDecisions { day, ..counts })
        .collect();
    overview.top_reasons = reasons.into_iter().collect();
    overview
        .top_reasons
        .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
    Ok(overview)
}

fn day_of(at_ms: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}",
        time.year(),
        u8::from(time.month()),
        time.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::projects::{self, BillingStatus, ProjectSettings};
    use crate::db::testing::{assert_unknown, fresh_databases};

    /// Stores an assessed start directly, with the given decision and factors.
    async fn store_start(db: &Db, project_id: &str, decision: &str, factors: &str) {
        ColumnValues::default()
            .set("id", crate::secrets::new_id())
            .set("project_id", project_id)
            .set("kind", TelemetryKind::ChallengeIssued.as_str())
            .set("at", 10_i64)
            .set("received_at", 10_i64)
            .set("risk_score", 35_i64)
            .set("risk_factors", factors)
            .set("risk_decision", decision)
            .insert_into(db.backend(), "telemetry_events", "")
            .execute(db.pool())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_unknown_decision_or_risk_reason_is_an_error_not_a_default() {
        for db in fresh_databases().await {
            let settings = ProjectSettings::new_project("free", BillingStatus::Active);
            let project = projects::insert(&db, None, &settings, "site-key", "secret", 1)
                .await
                .unwrap();
            store_start(&db, &project.id, "challenge", "[]").await;
            assert_eq!(risk_overview(&db, &project.id, 0).await.unwrap().starts, 1);

            store_start(&db, &project.id, "shrug", "[]").await;
            assert_unknown(
                risk_overview(&db, &project.id, 0).await,
                "risk_decision",
                "shrug",
            );

            sqlx::query("DELETE FROM telemetry_events WHERE risk_decision = 'shrug'")
                .execute(db.pool())
                .await
                .unwrap();
            let factors = r#"[{"reason":"moon_phase","points":5}]"#;
            store_start(&db, &project.id, "allow", factors).await;
            assert_unknown(
                risk_overview(&db, &project.id, 0).await,
                "risk_factors",
                "moon_phase",
            );
        }
    }
}
