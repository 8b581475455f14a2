//! Risk assessments as they travel: reason codes, the decision, and the summary that rides in
//! challenge and verification tokens and in telemetry, so a site backend and the dashboard
//! see exactly what the edge decided and why. The scoring itself is the edge's.

use serde::{Deserialize, Serialize};

use crate::preset::{Preset, Score};
use crate::snapshot::RiskMode;

/// Why a challenge start's score went up. Stable codes: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskReason {
    /// The widget asked for a challenge less than a second after the page showed it.
    VeryFastStart,
    /// The widget asked for a challenge within a few seconds of the page showing it.
    FastStart,
    /// No pointer, key or focus activity at all before the start.
    NoObservedInteraction,
    /// The widget sits in a form nobody focused or typed into.
    NoFormInteraction,
    /// The page was hidden (a background tab or a headless page) when the challenge started.
    BackgroundOrHiddenPage,
    /// The user agent names a command-line tool, an HTTP library or a browser-automation tool.
    AutomatedUserAgent,
    /// No user agent, or one too short to come from a browser.
    MissingUserAgent,
    /// No `Accept-Language` header, which every browser sends.
    MissingAcceptLanguage,
    /// No `Sec-Fetch-*` headers, or ones that do not fit a script's `fetch()` from a page.
    UnusualFetchContext,
    /// The start carried no signals, or signals without the widget's context (which are not
    /// scored, see [`crate::wire::ChallengeRequest::scored_signals`]): not our widget.
    NoSignals,
    /// The form's email address is at a disposable-mail domain.
    DisposableEmail,
    /// The form context's paths are not plain URL paths.
    MalformedFormContext,
    /// The same visitor failed redeems on this site recently.
    RepeatFailures,
    /// The same visitor made several high-risk starts on this site recently.
    RepeatHighRiskPattern,
    /// The same visitor failed redeems on other sites within the last day.
    CrossSiteFailures,
    /// The widget's browser has no `OffscreenCanvas`, so its environment check leaves out
    /// the canvas half.
    PartialEnvironmentCheck,
    /// The visitor's network started challenges on this site faster than one visitor does
    /// (above the preset's soft rate): allowed, at a higher price, since many people may
    /// share the address.
    HighRequestRate,
}

impl RiskReason {
    /// Every code, for documentation and tests.
    pub const ALL: [RiskReason; 17] = [
        Self::VeryFastStart,
        Self::FastStart,
        Self::NoObservedInteraction,
        Self::NoFormInteraction,
        Self::BackgroundOrHiddenPage,
        Self::AutomatedUserAgent,
        Self::MissingUserAgent,
        Self::MissingAcceptLanguage,
        Self::UnusualFetchContext,
        Self::NoSignals,
        Self::DisposableEmail,
        Self::MalformedFormContext,
        Self::RepeatFailures,
        Self::RepeatHighRiskPattern,
        Self::CrossSiteFailures,
        Self::PartialEnvironmentCheck,
        Self::HighRequestRate,
    ];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VeryFastStart => "very_fast_start",
            Self::FastStart => "fast_start",
            Self::NoObservedInteraction => "no_observed_interaction",
            Self::NoFormInteraction => "no_form_interaction",
            Self::BackgroundOrHiddenPage => "background_or_hidden_page",
            Self::AutomatedUserAgent => "automated_user_agent",
            Self::MissingUserAgent => "missing_user_agent",
            Self::MissingAcceptLanguage => "missing_accept_language",
            Self::UnusualFetchContext => "unusual_fetch_context",
            Self::NoSignals => "no_signals",
            Self::DisposableEmail => "disposable_email",
            Self::MalformedFormContext => "malformed_form_context",
            Self::RepeatFailures => "repeat_failures",
            Self::RepeatHighRiskPattern => "repeat_high_risk_pattern",
            Self::CrossSiteFailures => "cross_site_failures",
            Self::PartialEnvironmentCheck => "partial_environment_check",
            Self::HighRequestRate => "high_request_rate",
        }
    }

    /// The code with this name.
    pub fn from_name(name: &str) -> Option<RiskReason> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == name)
    }

    /// What it means, in plain words, for the dashboard's per-event explanation.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::VeryFastStart => {
                "The check started less than a second after the page showed the widget."
            }
            Self::FastStart => {
                "The check started within a few seconds of the page showing the widget."
            }
            Self::NoObservedInteraction => {
                "Nobody moved a pointer, pressed a key or focused anything first."
            }
            Self::NoFormInteraction => "Nobody focused or typed into the form the widget protects.",
            Self::BackgroundOrHiddenPage => {
                "The page was hidden, as in a background tab or a headless browser."
            }
            Self::AutomatedUserAgent => {
                "The browser named itself as a script, an HTTP library or an automation tool."
            }
            Self::MissingUserAgent => "The request named no browser, or one too short to be real.",
            Self::MissingAcceptLanguage => {
                "The request did not say which languages it accepts, as browsers do."
            }
            Self::UnusualFetchContext => {
                "The request lacked the fetch metadata a page's script sends, or had other values."
            }
            Self::NoSignals => {
                "The request carried none of the widget's signals, so no HumanProof widget sent it."
            }
            Self::DisposableEmail => "The form's email address is at a disposable-mail provider.",
            Self::MalformedFormContext => {
                "The form details the widget reported were not plain page paths."
            }
            Self::RepeatFailures => {
                "The same visitor failed checks on this site in the last few minutes."
            }
            Self::RepeatHighRiskPattern => {
                "The same visitor started several high-risk checks on this site in the last few minutes."
            }
            Self::CrossSiteFailures => {
                "The same visitor failed checks on other HumanProof sites in the last day."
            }
            Self::PartialEnvironmentCheck => {
                "The browser could only run part of the environment check (it has no OffscreenCanvas)."
            }
            Self::HighRequestRate => {
                "The visitor's network started checks on this site faster than one person does."
            }
        }
    }
}

/// What the edge does with a challenge start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Low risk: the challenge costs less work than the preset's.
    Allow,
    /// Elevated risk: the challenge costs more work, up to twice the preset's.
    Challenge,
    /// At or above the preset's block threshold: refused in enforce mode, recorded in observe mode.
    Block,
}

impl Decision {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Challenge => "challenge",
            Self::Block => "block",
        }
    }
}

/// One reason and what it added to the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskFactor {
    /// The reason code.
    pub reason: RiskReason,
    /// Points it added.
    pub points: Score,
}

/// The edge's assessment of one challenge start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskAssessment {
    /// 0 (clean) to 10; the sum of the factors' points, capped at 10.
    pub score: Score,
    /// Every reason that raised the score, in the order they were found.
    pub factors: Vec<RiskFactor>,
    /// What the score means under the preset.
    pub decision: Decision,
    /// The preset's name (`relaxed`, `balanced`, `strict` or `custom`).
    pub preset: String,
    /// Whether a block was acted on (enforce) or only recorded (observe).
    pub mode: RiskMode,
}

impl RiskAssessment {
    /// Sums `factors` into a score and decides against the preset's block threshold: at or
    /// above it, block; at or above half of it, challenge harder; below, allow.
    pub fn new(factors: Vec<RiskFactor>, preset: Preset, mode: RiskMode) -> RiskAssessment {
        let tenths: u32 = factors
            .iter()
            .map(|factor| u32::from(factor.points.tenths()))
            .sum();
        let score = Score::from_tenths(u8::try_from(tenths).unwrap_or(u8::MAX));
        let threshold = preset.protection().block_threshold;
        let decision = if score >= threshold {
            Decision::Block
        } else if u16::from(score.tenths()) * 2 >= u16::from(threshold.tenths()) {
            Decision::Challenge
        } else {
            Decision::Allow
        };
        RiskAssessment {
            score,
            factors,
            decision,
            preset: preset.name().to_owned(),
            mode,
        }
    }

    /// Whether the start is refused: a block in enforce mode.
    pub fn blocks(&self) -> bool {
        self.decision == Decision::Block && self.mode == RiskMode::Enforce
    }

    /// The reason codes alone.
    pub fn reasons(&self) -> impl Iterator<Item = RiskReason> + '_ {
        self.factors.iter().map(|factor| factor.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factors(points: &[u8]) -> Vec<RiskFactor> {
        points
            .iter()
            .map(|&tenths| RiskFactor {
                reason: RiskReason::FastStart,
                points: Score::from_tenths(tenths),
            })
            .collect()
    }

    #[test]
    fn decisions_follow_each_presets_threshold() {
        // (preset, score in tenths, decision): block at 8.0, 6.0, 4.0; challenge from half that.
        let cases = [
            (Preset::Relaxed, 79, Decision::Challenge),
            (Preset::Relaxed, 80, Decision::Block),
            (Preset::Relaxed, 39, Decision::Allow),
            (Preset::Balanced, 59, Decision::Challenge),
            (Preset::Balanced, 60, Decision::Block),
            (Preset::Balanced, 29, Decision::Allow),
            (Preset::Balanced, 30, Decision::Challenge),
            (Preset::Strict, 40, Decision::Block),
            (Preset::Strict, 19, Decision::Allow),
            (Preset::Strict, 20, Decision::Challenge),
        ];
        for (preset, tenths, decision) in cases {
            let assessment = RiskAssessment::new(factors(&[tenths]), preset, RiskMode::Enforce);
            assert_eq!(assessment.decision, decision, "{preset:?} at {tenths}");
        }
        let custom = Preset::Custom(crate::preset::Protection {
            block_threshold: Score::from_tenths(95),
            ..crate::preset::Protection::BALANCED
        });
        assert_eq!(
            RiskAssessment::new(factors(&[90]), custom, RiskMode::Enforce).decision,
            Decision::Challenge
        );
        assert_eq!(
            RiskAssessment::new(factors(&[95]), custom, RiskMode::Enforce).decision,
            Decision::Block
        );
    }

    #[test]
    fn only_enforce_mode_blocks_and_scores_cap_at_ten() {
        let observed = RiskAssessment::new(factors(&[60, 60]), Preset::Balanced, RiskMode::Observe);
        assert_eq!(
            (observed.score, observed.decision, observed.blocks()),
            (Score::MAX, Decision::Block, false)
        );
        let enforced = RiskAssessment::new(factors(&[60]), Preset::Balanced, RiskMode::Enforce);
        assert!(enforced.blocks());
        let clean = RiskAssessment::new(vec![], Preset::Strict, RiskMode::Enforce);
        assert_eq!(
            (clean.score, clean.decision),
            (Score::default(), Decision::Allow)
        );
    }

    #[test]
    fn reason_codes_are_stable_and_explained() {
        for reason in RiskReason::ALL {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, reason.as_str());
            assert_eq!(RiskReason::from_name(reason.as_str()), Some(reason));
            assert!(reason.explanation().ends_with('.'));
        }
    }
}
