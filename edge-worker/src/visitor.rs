//! Short-lived abuse state of one visitor (the salted hash of its network): its challenge
//! starts per project in the rate-limit window, its recent failed redeems and high-risk
//! starts, and a cross-site reputation of failures that lives a day from the last one.
//!
//! One plain value, so the same rules run in the local server's memory map and inside the
//! Cloudflare Durable Object that holds one visitor's state. Nothing here is ever written to
//! the durable database: every part forgets itself when its window passes.

use std::collections::BTreeMap;

use humanproof_protocol::preset::RATE_WINDOW_MS;
use serde::{Deserialize, Serialize};

/// How long failed redeems and high-risk starts count as "repeat" behaviour on one site.
pub const REPEAT_WINDOW_MS: i64 = 10 * 60 * 1000;
/// How long the cross-site reputation lives after the visitor's last failure.
pub const REPUTATION_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// Events kept per kind and site: enough to score repetition, and a bound on the state a
/// hostile visitor can make the edge hold.
const MAX_RECENT: usize = 32;
/// Sites remembered in the reputation, for the same reason.
const MAX_REPUTATION_SITES: usize = 64;

/// What the edge knows of a visitor when it scores a start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorHistory {
    /// Starts on this project in the current window, this one included.
    pub starts_in_window: u32,
    /// When the current window ends, Unix ms.
    pub window_ends_at: i64,
    /// Failed redeems on this project within [`REPEAT_WINDOW_MS`].
    pub recent_failures: u32,
    /// High-risk starts on this project within [`REPEAT_WINDOW_MS`].
    pub recent_high_risk: u32,
    /// Failed redeems on other projects within the reputation's lifetime.
    pub failures_elsewhere: u32,
}

/// Something to remember about a visitor after the fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitorEvent {
    /// A redeem failed (wrong solution, forged or replayed token).
    FailedRedeem,
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
    window_started_at: i64,
    starts: u32,
    failures: Vec<i64>,
    high_risk: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Reputation {
    /// Failures per project id.
    failures: BTreeMap<String, u32>,
    /// The last failure: the reputation lives [`REPUTATION_TTL_MS`] from it.
    refreshed_at: i64,
}

impl VisitorState {
    /// Counts a start on `project` and says what is known of the visitor. Starts refused
    /// for the rate limit count too; the window restarts with the first start after it ends.
    pub fn start(&mut self, project: &str, now_ms: i64) -> VisitorHistory {
        self.forget_expired(now_ms);
        let activity = self.projects.entry(project.to_owned()).or_default();
        if now_ms - activity.window_started_at >= RATE_WINDOW_MS {
            activity.window_started_at = now_ms;
            activity.starts = 0;
        }
        activity.starts = activity.starts.saturating_add(1);
        let activity = &self.projects[project];
        VisitorHistory {
            starts_in_window: activity.starts,
            window_ends_at: activity.window_started_at + RATE_WINDOW_MS,
            recent_failures: count(&activity.failures),
            recent_high_risk: count(&activity.high_risk),
            failures_elsewhere: self
                .reputation
                .failures
                .iter()
                .filter(|(id, _)| id.as_str() != project)
                .map(|(_, failures)| *failures)
                .sum(),
        }
    }

    /// Remembers `event` on `project`.
    pub fn record(&mut self, project: &str, event: VisitorEvent, now_ms: i64) {
        self.forget_expired(now_ms);
        let activity = self.projects.entry(project.to_owned()).or_default();
        let list = match event {
            VisitorEvent::FailedRedeem => &mut activity.failures,
            VisitorEvent::HighRiskStart => &mut activity.high_risk,
        };
        if list.len() == MAX_RECENT {
            list.remove(0);
        }
        list.push(now_ms);
        if event == VisitorEvent::FailedRedeem {
            let known = self.reputation.failures.contains_key(project);
            if known || self.reputation.failures.len() < MAX_REPUTATION_SITES {
                *self
                    .reputation
                    .failures
                    .entry(project.to_owned())
                    .or_default() += 1;
            }
            self.reputation.refreshed_at = now_ms;
        }
    }

    /// When every part of the state has expired; `None` when there is nothing to keep.
    pub fn expires_at(&self) -> Option<i64> {
        let projects = self.projects.values().map(|activity| {
            let last_event = activity
                .failures
                .iter()
                .chain(&activity.high_risk)
                .max()
                .copied()
                .unwrap_or(i64::MIN);
            (activity.window_started_at + RATE_WINDOW_MS)
                .max(last_event.saturating_add(REPEAT_WINDOW_MS))
        });
        let reputation = (!self.reputation.failures.is_empty())
            .then(|| self.reputation.refreshed_at + REPUTATION_TTL_MS);
        projects.chain(reputation).max()
    }

    fn forget_expired(&mut self, now_ms: i64) {
        self.projects.retain(|_, activity| {
            activity
                .failures
                .retain(|&at| now_ms - at < REPEAT_WINDOW_MS);
            activity
                .high_risk
                .retain(|&at| now_ms - at < REPEAT_WINDOW_MS);
            now_ms - activity.window_started_at < RATE_WINDOW_MS
                || !activity.failures.is_empty()
                || !activity.high_risk.is_empty()
        });
        if now_ms - self.reputation.refreshed_at >= REPUTATION_TTL_MS {
            self.reputation = Reputation::default();
        }
    }
}

fn count(list: &[i64]) -> u32 {
    u32::try_from(list.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_counted_per_project_and_window() {
        let mut state = VisitorState::default();
        assert_eq!(state.start("a", 0).starts_in_window, 1);
        assert_eq!(state.start("a", 1_000).starts_in_window, 2);
        assert_eq!(state.start("b", 1_000).starts_in_window, 1);
        let later = state.start("a", RATE_WINDOW_MS);
        assert_eq!(
            (later.starts_in_window, later.window_ends_at),
            (1, 2 * RATE_WINDOW_MS)
        );
    }

    #[test]
    fn failures_repeat_on_one_site_and_follow_the_visitor_elsewhere() {
        let mut state = VisitorState::default();
        state.record("a", VisitorEvent::FailedRedeem, 0);
        state.record("a", VisitorEvent::FailedRedeem, 10);
        state.record("a", VisitorEvent::HighRiskStart, 10);
        let on_a = state.start("a", 20);
        assert_eq!(
            (
                on_a.recent_failures,
                on_a.recent_high_risk,
                on_a.failures_elsewhere
            ),
            (2, 1, 0)
        );
        let on_b = state.start("b", 20);
        assert_eq!((on_b.recent_failures, on_b.failures_elsewhere), (0, 2));

        // Repeats fade after ten minutes; the reputation lasts a day from the last failure.
        let later = state.start("a", REPEAT_WINDOW_MS + 10);
        assert_eq!((later.recent_failures, later.recent_high_risk), (0, 0));
        assert_eq!(
            state.start("b", REPUTATION_TTL_MS - 1).failures_elsewhere,
            2
        );
        state.record("c", VisitorEvent::FailedRedeem, REPUTATION_TTL_MS - 1);
        assert_eq!(
            state.start("b", REPUTATION_TTL_MS + 100).failures_elsewhere,
            3,
            "refreshed by the new failure"
        );
        assert_eq!(
            state.start("b", 2 * REPUTATION_TTL_MS).failures_elsewhere,
            0
        );
    }

    #[test]
    fn state_is_bounded_and_expires_whole() {
        let mut state = VisitorState::default();
        assert_eq!(state.expires_at(), None);
        for at in 0..100 {
            state.record("a", VisitorEvent::HighRiskStart, at);
        }
        assert_eq!(state.start("a", 100).recent_high_risk, MAX_RECENT as u32);
        assert_eq!(state.expires_at(), Some(99 + REPEAT_WINDOW_MS));
        state.record("a", VisitorEvent::FailedRedeem, 200);
        assert_eq!(state.expires_at(), Some(200 + REPUTATION_TTL_MS));
        state.start("z", 2 * REPUTATION_TTL_MS);
        assert_eq!(
            state.projects.len(),
            1,
            "everything but the new start is forgotten"
        );
    }
}
