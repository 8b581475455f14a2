//! What one IP address may be, simulated against the edge logic with a controlled clock: a
//! crowd of people behind one address (carrier-grade NAT, a university, an office), a flood
//! from one script, or a slow script that keeps failing. The benchmark prints the tables the
//! README shows next to the rate-limit defaults (`cargo bench -p humanproof-tests --bench
//! crowds`); the tests in `tests/tests/crowds.rs` hold the rules to them.
//!
//! The project is the named preset's bundle with difficulty 1, so that solving costs the
//! simulation nothing; the work a client was given is reported at the preset's own difficulty.

use std::sync::Arc;

use humanproof_edge::instrumentation;
use humanproof_edge::memory::{MemoryClaims, MemorySnapshots, MemoryVisitors};
use humanproof_edge::{Edge, EdgeConfig, EdgeRequest, RequestBody, TelemetrySink};
use humanproof_protocol::snapshot::{BillingGate, RiskMode, WidgetPolicy};
use humanproof_protocol::token::peek_unverified;
use humanproof_protocol::{
    ChallengeClaims, Decision, MasterSecret, Network, Preset, Protection, RiskReason, SiteSnapshot,
    TelemetryEvent, pow,
};
use serde_json::{Value, json};

use crate::{Client, MASTER_SECRET, START_MS, human_start};

const SITE_KEY: &str = "hp_site_crowdsimulation";
const ORIGIN: &str = "https://shop.example";
/// Everyone behind the one address.
const ADDRESS: &str = "198.51.100.200";

/// Who is behind the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visitors {
    /// People using the widget: a person's signals and a desktop browser's headers; a share
    /// abandon their challenge (close the tab) and never redeem.
    Crowd,
    /// A script: no widget signals, an HTTP library's user agent, every challenge solved.
    Flood,
    /// A script that copies a person's signals and a browser's headers but cannot solve:
    /// every redeem is wrong.
    FailingScript,
}

/// One simulated stretch of traffic from the address.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The named preset (Relaxed, Balanced or Strict) whose rules apply.
    pub preset: Preset,
    /// Observe or enforce.
    pub mode: RiskMode,
    /// Who is behind the address.
    pub visitors: Visitors,
    /// Mean starts per second; arrivals are random (exponential gaps, fixed seed).
    pub starts_per_second: f64,
    /// How long, in ms.
    pub duration_ms: i64,
    /// Share of a crowd's challenges abandoned, in percent.
    pub abandoned_percent: u32,
    /// Share of a crowd's redeems that fail (a tab left open past the expiry, a flaky
    /// network), in percent.
    pub failed_percent: u32,
}

/// Ten minutes, the simulated stretch.
pub const TEN_MINUTES: i64 = 10 * 60 * 1000;

impl Scenario {
    /// People behind one address in enforce mode for ten minutes, 3 % of them abandoning
    /// their challenge and `failed_percent` % failing their redeem.
    pub fn crowd(preset: Preset, starts_per_second: f64, failed_percent: u32) -> Self {
        Self {
            preset,
            mode: RiskMode::Enforce,
            visitors: Visitors::Crowd,
            starts_per_second,
            duration_ms: TEN_MINUTES,
            abandoned_percent: 3,
            failed_percent,
        }
    }

    /// A script flooding in observe mode, so that only the rate limit stops it.
    pub fn flood(preset: Preset, starts_per_second: f64, duration_ms: i64) -> Self {
        Self {
            preset,
            mode: RiskMode::Observe,
            visitors: Visitors::Flood,
            starts_per_second,
            duration_ms,
            abandoned_percent: 0,
            failed_percent: 0,
        }
    }

    /// A script that fails every redeem, one start every 5 s for ten minutes on Balanced, in
    /// observe mode so that its score is seen on every start.
    pub fn slow_failing_script() -> Self {
        Self {
            preset: Preset::Balanced,
            mode: RiskMode::Observe,
            visitors: Visitors::FailingScript,
            starts_per_second: 0.2,
            duration_ms: TEN_MINUTES,
            abandoned_percent: 0,
            failed_percent: 0,
        }
    }
}

/// What the edge made of it.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Starts sent.
    pub starts: u32,
    /// Refused with `rate_limited`.
    pub refused: u32,
    /// Every `rate_limited` answer carried a `Retry-After` of at least a second.
    pub retry_after_always: bool,
    /// Refused with `risk_blocked` (enforce mode).
    pub blocked: u32,
    /// Issued with the decision "challenge" (a score from half the block threshold).
    pub challenged: u32,
    /// Issued with `high_request_rate` among their reasons: priced for the rate.
    pub priced: u32,
    /// Redeemed successfully.
    pub redeemed: u32,
    /// Issued with `repeat_failures` among their reasons.
    pub repeat_failures: u32,
    /// Expected hashes of the SHA-256 work the issued challenges asked for, at the preset's
    /// own difficulty.
    pub work_hashes: f64,
    /// The same, before the first refusal.
    pub work_before_first_refusal: f64,
    /// (ms since the start, risk score) of each issued challenge.
    pub scores: Vec<(i64, f64)>,
}

impl Outcome {
    /// `part` as a percentage of the starts.
    pub fn percent(&self, part: u32) -> f64 {
        f64::from(part) * 100.0 / f64::from(self.starts.max(1))
    }
}

struct Discard;

impl TelemetrySink for Discard {
    async fn emit(&self, _event: TelemetryEvent) {}
}

/// A deterministic xorshift generator: the same arrivals and abandons every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn site(scenario: &Scenario) -> SiteSnapshot {
    SiteSnapshot {
        project_id: "crowd-simulation".into(),
        site_key: SITE_KEY.into(),
        active: true,
        production_domains: vec!["shop.example".into()],
        testing_domains: vec![],
        allow_subdomains: false,
        key_version: 1,
        preset: Preset::Custom(Protection {
            difficulty: 1,
            ..scenario.preset.protection()
        }),
        risk_mode: scenario.mode,
        billing: BillingGate {
            plan: "business".into(),
            traffic_allowed: true,
            monthly_limit: None,
            usage_left: None,
        },
        widget: WidgetPolicy::default(),
        widget_settings: Default::default(),
        published_at: START_MS,
    }
}

/// Runs `scenario` against a fresh edge.
pub async fn simulate(scenario: Scenario) -> Outcome {
    let master = MasterSecret::new(MASTER_SECRET).unwrap();
    let snapshots = MemorySnapshots::default();
    snapshots.put(site(&scenario));
    let edge = Arc::new(Edge::new(
        EdgeConfig::new(master.clone()),
        snapshots,
        MemoryClaims::default(),
        MemoryVisitors::default(),
        Discard,
    ));
    let (headers, body) = match scenario.visitors {
        Visitors::Flood => (Client::SCRIPT.headers, Value::Null),
        Visitors::Crowd | Visitors::FailingScript => (Client::BROWSER.headers, human_start()),
    };
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let real_difficulty = scenario.preset.protection().difficulty;
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut outcome = Outcome {
        retry_after_always: true,
        ..Outcome::default()
    };
    let mut at = 0.0f64;
    loop {
        // Exponential gaps: people do not arrive on a metronome.
        at += -(1.0 - random.next()).ln() * 1000.0 / scenario.starts_per_second;
        let elapsed = at as i64;
        if elapsed >= scenario.duration_ms {
            break;
        }
        let now_ms = START_MS + elapsed;
        let request = |method: &'static str, path: String, body: Vec<u8>| {
            let edge = edge.clone();
            async move {
                edge.handle(EdgeRequest {
                    method,
                    path: &path,
                    origin: Some(ORIGIN),
                    client_ip: Some(ADDRESS),
                    headers,
                    network: &Network::default(),
                    body: RequestBody::Read(&body),
                    now_ms,
                })
                .await
            }
        };
        outcome.starts += 1;
        let started = request("POST", format!("/{SITE_KEY}/challenge"), body.clone()).await;
        let answer: Value = serde_json::from_slice(&started.body).unwrap_or(Value::Null);
        match (started.status, answer["reason"].as_str()) {
            (200, _) => {}
            (429, Some("rate_limited")) => {
                outcome.refused += 1;
                let retry_after = started
                    .headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
                    .and_then(|(_, value)| value.parse::<u64>().ok());
                outcome.retry_after_always &= retry_after.is_some_and(|seconds| seconds >= 1);
                continue;
            }
            (403, Some("risk_blocked")) => {
                outcome.blocked += 1;
                continue;
            }
            other => panic!("unexpected answer to a start: {other:?} {answer}"),
        }
        let token = answer["token"].as_str().unwrap();
        let claims: ChallengeClaims = peek_unverified(token).unwrap();
        let risk = claims.risk.clone().unwrap();
        outcome.scores.push((elapsed, risk.score.as_decimal()));
        if risk.decision == Decision::Challenge {
            outcome.challenged += 1;
        }
        let scored = |reason| risk.factors.iter().any(|f| f.reason == reason);
        outcome.priced += u32::from(scored(RiskReason::HighRequestRate));
        outcome.repeat_failures += u32::from(scored(RiskReason::RepeatFailures));
        let work = f64::from(claims.c) * 16f64.powi(real_difficulty as i32);
        outcome.work_hashes += work;
        if outcome.refused == 0 {
            outcome.work_before_first_refusal += work;
        }
        let abandons = scenario.visitors == Visitors::Crowd
            && random.next() * 100.0 < f64::from(scenario.abandoned_percent);
        if abandons {
            continue;
        }
        let mut solutions = pow::solve(token, claims.params());
        let fails = scenario.visitors == Visitors::FailingScript
            || (scenario.visitors == Visitors::Crowd
                && random.next() * 100.0 < f64::from(scenario.failed_percent));
        if fails {
            // One nonce too many: wrong whatever the nonces are.
            solutions.push(0);
        }
        let check = instrumentation::scene_for(&master, &claims).map(|scene| scene.answer());
        let redeem = json!({ "token": token, "solutions": solutions, "instrumentation": check });
        let redeemed = request(
            "POST",
            format!("/{SITE_KEY}/redeem"),
            redeem.to_string().into_bytes(),
        )
        .await;
        if redeemed.status == 200 {
            outcome.redeemed += 1;
        }
    }
    outcome
}
