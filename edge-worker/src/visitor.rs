//! Short-lived abuse state of one visitor (the salted hash of its network, which may be one
//! person or a crowd behind a NAT): per project, two token buckets for its start rate and
//! per-minute counts of its starts, failed redeems and high-risk starts; across projects, a
//! reputation of failures that lives a day from the last one.
//!
//! The rules weigh shares, not counts: failures among the redeems the address attempted (a
//! start costs nothing, so starts would let a script dilute its failures), high-risk starts
//! among its starts. A crowd with a normal failure rate stays clean while one script failing
//! again and again does not.
//!
//! One plain value, so the same rules run in the local server's memory map and inside the
//! Cloudflare Durable Object that holds one visitor's state. Nothing here is ever written to
//! the durable database: every part forgets itself when its window passes.

use std::collections::BTreeMap;

use humanproof_protocol::preset::{Bucket, RATE_WINDOW_MS, StartLimits};
use serde::{Deserialize, Serialize};

/// How far back the failure and high-risk shares on one site look.
pub const REPEAT_WINDOW_MS: i64 = 10 * 60 * 1000;
/// How long the cross-site reputation lives after the visitor's last failure.
pub const REPUTATION_TTL_MS: i64 = 24 * 60 * 60 * 1000;
const MINUTE_MS: i64 = 60 * 1000;
/// Minutes of counts kept per project: the repeat window.
/// Sites remembered in the reputation, and projects with live state: a bound on the state a
/// hostile visitor can make the edge hold (a Durable Object value has a size limit).
const MAX_REPUTATION_SITES: usize = 64;
const MAX_PROJECTS: usize = 256;
/// A token, in the buckets' thousandths.
const TOKEN: i64 = 1000;

/// What the edge knows of a visitor when it scores a start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorHistory {
    /// The start came faster than the soft limit allows: it is allowed, and priced.
    pub over_soft_rate: bool,
    /// The start came faster than the hard limit allows: it is refused until then, Unix ms.
    pub refused_until: Option<i64>,
    /// Starts on this project within [`REPEAT_WINDOW_MS`], this one included (refused ones
    /// are not).
    pub recent_starts: u32,
    /// Successful redeems on this project within [`REPEAT_WINDOW_MS`].
    pub recent_solved: u32,
    /// Failed redeems on this project within [`REPEAT_WINDOW_MS`].
    pub recent_failures: u32,
    /// High-risk starts on this project within [`REPEAT_WINDOW_MS`].
    pub recent_high_risk: u32,
    /// Failed redeems on other projects within the reputation's lifetime.
    pub failures_elsewhere: u32,
    /// Successful redeems on other projects since the reputation began (its first failure).
    pub solved_elsewhere: u32,
}

/// Something to remember about a visitor after the fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitorEvent {
    /// A redeem failed (wrong solution, forged or replayed token).
    FailedRedeem,
    /// A redeem succeeded.
    SolvedRedeem,
    /// A start scored at or above half the block threshold.
    HighRiskStart,
}

/// One visitor's state across projects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorState {
    projects: BTreeMap<String, ProjectActivity>,
    reputation: Reputation,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ProjectActivity {
    soft: BucketLevel,
    hard: BucketLevel,
    /// When both buckets are full again, Unix ms: from then on they may be forgotten.
    full_at: i64,
    /// Counts per minute, oldest first, none older than the repeat window.
    minutes: Vec<MinuteCounts>,
}

/// A token bucket's level in thousandths of a token, as of `at`; full when never used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BucketLevel {
    /// Tokens taken out so far, in thousandths, as of `at` (0: full).
    used: i64,
    at: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct MinuteCounts {
    minute: i64,
    starts: u32,
    solved: u32,
    failures: u32,
    high_risk: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Reputation {
    /// Failed and successful redeems per project id, since the reputation began.
    sites: BTreeMap<String, SiteRecord>,
    /// The last failure: the reputation lives [`REPUTATION_TTL_MS`] from it.
    refreshed_at: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SiteRecord {
    failures: u32,
    solved: u32,
}

impl BucketLevel {
    /// Takes a token if there is one; otherwise says when there will be, Unix ms.
    fn take(&mut self, bucket: Bucket, now_ms: i64) -> Result<(), i64> {
        let per_window = i64::from(bucket.per_window.max(1));
        let refilled =
            (now_ms - self.at).max(0).saturating_mul(per_window * TOKEN) / RATE_WINDOW_MS;
        let used = (self.used - refilled).max(0);
        // Never backwards: edge locations' clocks differ, and going back would refill the
        // same time twice.
        self.at = self.at.max(now_ms);
        if used + TOKEN <= i64::from(bucket.burst.max(1)) * TOKEN {
            self.used = used + TOKEN;
            Ok(())
        } else {
            self.used = used;
            let missing = used + TOKEN - i64::from(bucket.burst.max(1)) * TOKEN;
            Err(now_ms + ceil_div(missing * RATE_WINDOW_MS, per_window * TOKEN))
        }
    }

    /// When the bucket is full again, Unix ms.
    fn full_at(&self, bucket: Bucket) -> i64 {
        let per_window = i64::from(bucket.per_window.max(1));
        self.at + ceil_div(self.used * RATE_WINDOW_MS, per_window * TOKEN)
    }
}

/// `a / b` rounded up, for non-negative `a` and positive `b` (`i64::div_ceil` is unstable).
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

impl ProjectActivity {
    fn this_minute(&mut self, now_ms: i64) -> &mut MinuteCounts {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if self.minutes.last().is_none_or(|last| last.minute != minute) {
            self.minutes.push(MinuteCounts {
                minute,
                ..MinuteCounts::default()
            });
        }
        self.minutes.last_mut().expect("pushed above")
    }

    /// Drops the minutes wholly older than the repeat window, so the counts always cover at
    /// least its ten minutes.
    fn forget_before(&mut self, now_ms: i64) {
        let oldest = (now_ms - REPEAT_WINDOW_MS).div_euclid(MINUTE_MS);
        self.minutes.retain(|counts| counts.minute >= oldest);
    }

    /// When nothing of it is left: its buckets are full and its minutes out of the window.
    fn expires_at(&self) -> i64 {
        let counts = self.minutes.last().map_or(i64::MIN, |last| {
            (last.minute + 1) * MINUTE_MS + REPEAT_WINDOW_MS
        });
        self.full_at.max(counts)
    }

    fn sum(&self, count: impl Fn(&MinuteCounts) -> u32) -> u32 {
        self.minutes.iter().map(count).fold(0, u32::saturating_add)
    }
}

impl VisitorState {
    /// Decides a start on `project` under `limits` and says what is known of the visitor.
    /// A refused start takes no token and counts nowhere, so a flood's refused starts do not
    /// push back the time it may start again.
    pub fn start(&mut self, project: &str, limits: StartLimits, now_ms: i64) -> VisitorHistory {
        self.forget_expired(now_ms);
        let activity = self.activity(project);
        let mut history = VisitorHistory::default();
        let before = (activity.soft, activity.hard);
        match activity.hard.take(limits.hard, now_ms) {
            Err(retry_at) => {
                (activity.soft, activity.hard) = before;
                history.refused_until = Some(retry_at);
            }
            Ok(()) => {
                history.over_soft_rate = activity.soft.take(limits.soft, now_ms).is_err();
                activity.full_at =
                    (activity.soft.full_at(limits.soft)).max(activity.hard.full_at(limits.hard));
                let minute = activity.this_minute(now_ms);
                minute.starts = minute.starts.saturating_add(1);
            }
        }
        let activity = &self.projects[project];
        history.recent_starts = activity.sum(|counts| counts.starts);
        history.recent_solved = activity.sum(|counts| counts.solved);
        history.recent_failures = activity.sum(|counts| counts.failures);
        history.recent_high_risk = activity.sum(|counts| counts.high_risk);
        for (id, record) in &self.reputation.sites {
            if id != project {
                history.failures_elsewhere =
                    history.failures_elsewhere.saturating_add(record.failures);
                history.solved_elsewhere = history.solved_elsewhere.saturating_add(record.solved);
            }
        }
        history
    }

    /// Remembers `event` on `project`.
    pub fn record(&mut self, project: &str, event: VisitorEvent, now_ms: i64) {
        self.forget_expired(now_ms);
        let minute = self.activity(project).this_minute(now_ms);
        let count = match event {
            VisitorEvent::FailedRedeem => &mut minute.failures,
            VisitorEvent::SolvedRedeem => &mut minute.solved,
            VisitorEvent::HighRiskStart => &mut minute.high_risk,
        };
        *count = count.saturating_add(1);
        // The reputation begins with a failure; from then on it counts redeems either way.
        let redeem = matches!(
            event,
            VisitorEvent::FailedRedeem | VisitorEvent::SolvedRedeem
        );
        let begun = !self.reputation.sites.is_empty() || event == VisitorEvent::FailedRedeem;
        if redeem && begun {
            let known = self.reputation.sites.contains_key(project);
            if known || self.reputation.sites.len() < MAX_REPUTATION_SITES {
                let record = self.reputation.sites.entry(project.to_owned()).or_default();
                if event == VisitorEvent::FailedRedeem {
                    record.failures = record.failures.saturating_add(1);
                } else {
                    record.solved = record.solved.saturating_add(1);
                }
            }
        }
        if event == VisitorEvent::FailedRedeem {
            self.reputation.refreshed_at = now_ms;
        }
    }

    /// When every part of the state has expired; `None` when there is nothing to keep. The
    /// buckets are full again by then, so forgetting them changes nothing.
    pub fn expires_at(&self) -> Option<i64> {
        let projects = self.projects.values().map(ProjectActivity::expires_at);
        let reputation = (!self.reputation.sites.is_empty())
            .then(|| self.reputation.refreshed_at + REPUTATION_TTL_MS);
        projects.chain(reputation).max()
    }

    /// The project's activity, made room for: past [`MAX_PROJECTS`] the one that would
    /// expire first goes.
    fn activity(&mut self, project: &str) -> &mut ProjectActivity {
        if !self.projects.contains_key(project) && self.projects.len() >= MAX_PROJECTS {
            let first_to_go = self
                .projects
                .iter()
                .min_by_key(|(_, activity)| activity.expires_at())
                .map(|(id, _)| id.clone());
            if let Some(id) = first_to_go {
                self.projects.remove(&id);
            }
        }
        self.projects.entry(project.to_owned()).or_default()
    }

    fn forget_expired(&mut self, now_ms: i64) {
        self.projects.retain(|_, activity| {
            activity.forget_before(now_ms);
            activity.full_at > now_ms || !activity.minutes.is_empty()
        });
        if now_ms - self.reputation.refreshed_at >= REPUTATION_TTL_MS {
            self.reputation = Reputation::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hard: 4 at once, 4 per window (one per 30 s); soft: 2 at once, 2 per window.
    const LIMITS: StartLimits = StartLimits {
        soft: Bucket {
            burst: 2,
            per_window: 2,
        },
        hard: Bucket {
            burst: 4,
            per_window: 4,
        },
    };

    #[test]
    fn starts_past_the_soft_bucket_are_priced_and_past_the_hard_one_refused() {
        let mut state = VisitorState::default();
        let starts: Vec<_> = (0..5).map(|_| state.start("a", LIMITS, 0)).collect();
        assert_eq!(
            starts.iter().map(|h| h.over_soft_rate).collect::<Vec<_>>(),
            [false, false, true, true, false]
        );
        assert_eq!(starts[3].refused_until, None);
        // The fifth waits for one token: a quarter of the window.
        assert_eq!(starts[4].refused_until, Some(RATE_WINDOW_MS / 4));
        // Refused starts take nothing and count nowhere: hammering does not push it back.
        for _ in 0..100 {
            state.start("a", LIMITS, 1_000);
        }
        let retried = state.start("a", LIMITS, RATE_WINDOW_MS / 4);
        assert_eq!((retried.refused_until, retried.recent_starts), (None, 5));
        // Other projects have buckets of their own.
        assert_eq!(state.start("b", LIMITS, 1_000).refused_until, None);
    }

    #[test]
    fn a_steady_rate_under_the_limit_is_never_refused() {
        let mut state = VisitorState::default();
        // One start every 31 s (the hard rate is one per 30 s) for an hour.
        for i in 0..120 {
            let history = state.start("a", LIMITS, i * 31_000);
            assert_eq!(history.refused_until, None, "start {i}");
        }
    }

    #[test]
    fn shares_count_starts_failures_and_high_risk_starts_of_the_last_ten_minutes() {
        let mut state = VisitorState::default();
        let wide = StartLimits {
            soft: LIMITS.soft,
            hard: Bucket {
                burst: 1000,
                per_window: 1000,
            },
        };
        for minute in 0..12 {
            state.start("a", wide, minute * MINUTE_MS);
            state.record("a", VisitorEvent::FailedRedeem, minute * MINUTE_MS + 1);
        }
        state.record("a", VisitorEvent::HighRiskStart, 11 * MINUTE_MS + 2);
        let history = state.start("a", wide, 11 * MINUTE_MS + 3);
        // Minutes 1 to 11, the ten before now and the current one: one start and one failure
        // each, plus this start.
        assert_eq!(
            (
                history.recent_starts,
                history.recent_failures,
                history.recent_high_risk
            ),
            (12, 11, 1)
        );
        let later = state.start("a", wide, 30 * MINUTE_MS);
        assert_eq!((later.recent_starts, later.recent_failures), (1, 0));
    }

    #[test]
    fn the_reputation_counts_failures_and_later_redeems_elsewhere_for_a_day() {
        let mut state = VisitorState::default();
        state.record("a", VisitorEvent::SolvedRedeem, 0);
        assert!(
            state.reputation.sites.is_empty(),
            "no failure, no reputation"
        );
        state.record("a", VisitorEvent::FailedRedeem, 10);
        // Redeems elsewhere after the first failure count towards the share there.
        state.record("b", VisitorEvent::SolvedRedeem, 20);
        state.record("b", VisitorEvent::SolvedRedeem, 30);
        state.record("c", VisitorEvent::FailedRedeem, 35);
        let on_c = state.start("c", LIMITS, 40);
        assert_eq!((on_c.failures_elsewhere, on_c.solved_elsewhere), (1, 2));
        assert_eq!((on_c.recent_failures, on_c.recent_solved), (1, 0));
        let on_a = state.start("a", LIMITS, 50);
        assert_eq!((on_a.failures_elsewhere, on_a.solved_elsewhere), (1, 2));
        assert_eq!((on_a.recent_failures, on_a.recent_solved), (1, 1));
        assert_eq!(
            state
                .start("b", LIMITS, REPUTATION_TTL_MS + 35)
                .failures_elsewhere,
            0,
            "a day after the last failure"
        );
    }

    #[test]
    fn state_is_bounded_and_expires_whole() {
        let mut state = VisitorState::default();
        assert_eq!(state.expires_at(), None);
        for at in 0..100 {
            state.record("a", VisitorEvent::HighRiskStart, at);
        }
        assert_eq!(state.projects["a"].minutes.len(), 1);
        assert_eq!(state.expires_at(), Some(MINUTE_MS + REPEAT_WINDOW_MS));
        for site in 0..300 {
            state.record(&format!("s{site}"), VisitorEvent::FailedRedeem, 200);
        }
        assert_eq!(state.reputation.sites.len(), MAX_REPUTATION_SITES);
        assert_eq!(
            state.projects.len(),
            MAX_PROJECTS,
            "the earliest to expire made room"
        );
        assert!(state.projects.contains_key("s299"), "the newest stays");
        assert_eq!(state.expires_at(), Some(200 + REPUTATION_TTL_MS));
        state.start("z", LIMITS, 2 * REPUTATION_TTL_MS);
        assert_eq!(
            state.projects.keys().collect::<Vec<_>>(),
            ["z"],
            "everything but the new start is forgotten"
        );
        // Its counts leave the window ten minutes after their minute ends.
        assert_eq!(
            state.expires_at(),
            Some(2 * REPUTATION_TTL_MS + MINUTE_MS + REPEAT_WINDOW_MS)
        );
    }
}
