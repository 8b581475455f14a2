//! Scores a challenge start from 0 to 10 and says why, then scales the work with the score.
//!
//! The browser never decides: the widget only reports counters, and the edge weighs them
//! together with the request's headers and the visitor's recent history. Each signal adds a
//! fixed number of points under one reason code (the table in the README), so every score
//! explains itself. The score is a heuristic: it raises the cost for scripts and blocks the
//! obvious ones, it does not prove anyone human.

use std::collections::HashSet;
use std::sync::LazyLock;

use humanproof_protocol::preset::COUNT_RANGE;
use humanproof_protocol::risk::RiskFactor;
use humanproof_protocol::rsw::SQUARINGS_RANGE;
use humanproof_protocol::snapshot::RiskMode;
use humanproof_protocol::wire::{ChallengeRequest, FormContext, Signals, WidgetContext};
use humanproof_protocol::{ChallengeParams, Decision, Preset, RiskAssessment, RiskReason, Score};

use crate::visitor::VisitorHistory;

/// A start this soon after the widget appeared is faster than people read a form.
const VERY_FAST_START_MS: u64 = 1_000;
/// A start this soon is fast, but people who know the form do manage it.
const FAST_START_MS: u64 = 3_000;
/// Shorter user agents do not come from browsers (every browser's is over 60 characters).
const MIN_USER_AGENT_LEN: usize = 20;
/// Repeat failures on one site: at least this many failed redeems within the repeat window,
/// and at least [`REPEAT_FAILURE_SHARE`] of the visitor's redeems there. A crowd behind one
/// address fails now and then; a script that cannot solve fails nearly every time. Redeems,
/// not starts: starts cost nothing, so a script could pad them to dilute its failures.
const REPEAT_FAILURES: u32 = 2;
/// The share of a visitor's recent redeems on a site that failed, in percent.
const REPEAT_FAILURE_SHARE: u32 = 25;
/// Repeat high-risk starts on one site: at least this many, and at least
/// [`REPEAT_HIGH_RISK_SHARE`] of the visitor's recent starts there.
const REPEAT_HIGH_RISK: u32 = 2;
/// The share of a visitor's recent starts on a site that scored high, in percent.
const REPEAT_HIGH_RISK_SHARE: u32 = 50;
/// Cross-site failures: at least this many failed redeems on other sites within a day, and
/// at least [`REPEAT_FAILURE_SHARE`] of the visitor's redeems there since the first.
const CROSS_SITE_FAILURES: u32 = 3;
/// Longest page or action path taken as plain.
const MAX_PATH_LEN: usize = 1024;

/// Lower-case fragments of user agents sent by scripts, HTTP libraries and automation tools.
const AUTOMATED_USER_AGENTS: &[&str] = &[
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "libwww-perl",
    "node-fetch",
    "axios/",
    "undici",
    "got (",
    "headlesschrome",
    "phantomjs",
    "selenium",
    "webdriver",
    "puppeteer",
    "playwright",
    "scrapy",
    "httpie",
    "powershell",
    "postmanruntime",
    "insomnia",
    "bot/",
    "spider",
    "crawler",
];

/// The bundled disposable-mail domains (`edge-worker/data/disposable-email-domains.txt`).
static DISPOSABLE_DOMAINS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/disposable-email-domains.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// The request headers the score reads; none of them is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientHeaders<'a> {
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// `Accept-Language`.
    pub accept_language: Option<&'a str>,
    /// `Sec-Fetch-Site`.
    pub sec_fetch_site: Option<&'a str>,
    /// `Sec-Fetch-Mode`.
    pub sec_fetch_mode: Option<&'a str>,
    /// `Sec-Fetch-Dest`.
    pub sec_fetch_dest: Option<&'a str>,
}

impl<'a> ClientHeaders<'a> {
    /// Reads the headers through the platform's own lookup (names are lower case).
    pub fn from_lookup(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            user_agent: get("user-agent"),
            accept_language: get("accept-language"),
            sec_fetch_site: get("sec-fetch-site"),
            sec_fetch_mode: get("sec-fetch-mode"),
            sec_fetch_dest: get("sec-fetch-dest"),
        }
    }
}

/// Everything a start is scored on.
#[derive(Debug, Clone, Copy)]
pub struct StartEvidence<'a> {
    /// The widget's payload.
    pub body: &'a ChallengeRequest,
    /// The request's headers.
    pub headers: ClientHeaders<'a>,
    /// The visitor's recent history; `None` when the platform gave no IP or the store was
    /// unreachable (the start is then scored on the rest).
    pub history: Option<VisitorHistory>,
}

/// Scores `evidence` and decides under `preset` and `mode`.
pub fn assess(evidence: &StartEvidence<'_>, preset: Preset, mode: RiskMode) -> RiskAssessment {
    let mut factors = Vec::new();
    let mut add = |reason: RiskReason| {
        factors.push(RiskFactor {
            reason,
            points: points(reason),
        })
    };
    let body = evidence.body;
    let load_triggered = body.widget.as_ref().and_then(|w| w.trigger.as_deref()) == Some("load");
    let signals = body.scored_signals();
    match signals {
        None => add(RiskReason::NoSignals),
        // A widget that starts itself on page load measures no reading time and expects no
        // interaction, so only its headers and history are scored.
        Some(_) if load_triggered => {}
        Some(signals) => score_signals(signals, body.form.as_ref(), &mut add),
    }
    if signals.is_some_and(|signals| signals.visibility == "hidden") {
        add(RiskReason::BackgroundOrHiddenPage);
    }
    if body
        .widget
        .as_ref()
        .is_some_and(WidgetContext::lacks_offscreen_canvas)
    {
        add(RiskReason::PartialEnvironmentCheck);
    }
    score_headers(&evidence.headers, &mut add);
    if let Some(form) = &body.form {
        if form.email.as_deref().is_some_and(is_disposable_email) {
            add(RiskReason::DisposableEmail);
        }
        if !is_plain_form_context(form) {
            add(RiskReason::MalformedFormContext);
        }
    }
    if let Some(history) = evidence.history {
        if history.over_soft_rate {
            add(RiskReason::HighRequestRate);
        }
        let redeems = history
            .recent_failures
            .saturating_add(history.recent_solved);
        if history.recent_failures >= REPEAT_FAILURES
            && is_share(history.recent_failures, redeems, REPEAT_FAILURE_SHARE)
        {
            add(RiskReason::RepeatFailures);
        }
        // Earlier starts only: this one has not been scored yet.
        let earlier_starts = history.recent_starts.saturating_sub(1);
        if history.recent_high_risk >= REPEAT_HIGH_RISK
            && is_share(
                history.recent_high_risk,
                earlier_starts,
                REPEAT_HIGH_RISK_SHARE,
            )
        {
            add(RiskReason::RepeatHighRiskPattern);
        }
        if history.failures_elsewhere >= CROSS_SITE_FAILURES
            && is_share(
                history.failures_elsewhere,
                history
                    .failures_elsewhere
                    .saturating_add(history.solved_elsewhere),
                REPEAT_FAILURE_SHARE,
            )
        {
            add(RiskReason::CrossSiteFailures);
        }
    }
    RiskAssessment::new(factors, preset, mode)
}

/// Whether `part` is at least `percent` % of `whole` (all of it when `whole` is smaller,
/// as when starts have fallen out of the window before their failures).
fn is_share(part: u32, whole: u32, percent: u32) -> bool {
    u64::from(part) * 100 >= u64::from(whole) * u64::from(percent)
}

/// Points each reason adds, in tenths. One table, documented in the README.
pub fn points(reason: RiskReason) -> Score {
    Score::from_tenths(match reason {
        RiskReason::AutomatedUserAgent => 40,
        RiskReason::NoSignals | RiskReason::MissingUserAgent => 30,
        RiskReason::VeryFastStart => 25,
        RiskReason::NoObservedInteraction
        | RiskReason::DisposableEmail
        | RiskReason::RepeatFailures
        | RiskReason::RepeatHighRiskPattern => 20,
        RiskReason::BackgroundOrHiddenPage
        | RiskReason::MalformedFormContext
        | RiskReason::CrossSiteFailures
        | RiskReason::HighRequestRate => 15,
        RiskReason::FastStart
        | RiskReason::NoFormInteraction
        | RiskReason::MissingAcceptLanguage
        | RiskReason::UnusualFetchContext
        | RiskReason::PartialEnvironmentCheck => 10,
    })
}

fn score_signals(signals: &Signals, form: Option<&FormContext>, add: &mut impl FnMut(RiskReason)) {
    if signals.elapsed_ms < VERY_FAST_START_MS {
        add(RiskReason::VeryFastStart);
    } else if signals.elapsed_ms < FAST_START_MS {
        add(RiskReason::FastStart);
    }
    let idle = signals.interactions == 0 && signals.pointer_moves == 0;
    if idle {
        add(RiskReason::NoObservedInteraction);
    } else if form.is_some_and(|form| form.method.is_some())
        && signals.focus_count == 0
        && signals.key_count == 0
    {
        // Some pointer activity, but nobody focused or typed into the form it protects.
        add(RiskReason::NoFormInteraction);
    }
}

fn score_headers(headers: &ClientHeaders<'_>, add: &mut impl FnMut(RiskReason)) {
    match headers.user_agent.map(str::trim) {
        Some(agent) if is_automated_user_agent(agent) => add(RiskReason::AutomatedUserAgent),
        Some(agent) if agent.len() >= MIN_USER_AGENT_LEN => {}
        _ => add(RiskReason::MissingUserAgent),
    }
    // `*` (what HTTP libraries such as Node's fetch send) names no language either.
    if headers
        .accept_language
        .is_none_or(|value| matches!(value.trim(), "" | "*"))
    {
        add(RiskReason::MissingAcceptLanguage);
    }
    // A page's `fetch()` to the edge is a CORS request for no document; browsers say so in
    // the fetch metadata, which scripts rarely bother to forge.
    let from_a_page = headers.sec_fetch_mode == Some("cors")
        && headers.sec_fetch_dest.is_none_or(|dest| dest == "empty")
        && headers.sec_fetch_site.is_some_and(|site| site != "none");
    if !from_a_page {
        add(RiskReason::UnusualFetchContext);
    }
}

fn is_automated_user_agent(agent: &str) -> bool {
    let agent = agent.to_ascii_lowercase();
    AUTOMATED_USER_AGENTS
        .iter()
        .any(|fragment| agent.contains(fragment))
}

/// Whether the address's domain, or a parent of it, is on the disposable list.
pub fn is_disposable_email(email: &str) -> bool {
    let Some((_, domain)) = email.trim().rsplit_once('@') else {
        return false;
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut candidate = domain.as_str();
    loop {
        if DISPOSABLE_DOMAINS.contains(candidate) {
            return true;
        }
        match candidate.split_once('.') {
            Some((_, parent)) if parent.contains('.') => candidate = parent,
            _ => return false,
        }
    }
}

fn is_plain_form_context(form: &FormContext) -> bool {
    let plain_path = |path: &str| {
        path.starts_with('/')
            && path.len() <= MAX_PATH_LEN
            && !path.chars().any(|c| c.is_control() || c.is_whitespace())
    };
    form.page_path.as_deref().is_none_or(plain_path)
        && form.action_path.as_deref().is_none_or(plain_path)
        && form
            .method
            .as_deref()
            .is_none_or(|method| matches!(method, "get" | "post" | "dialog"))
}

/// The challenge for a start: the preset's difficulty, and its sub-challenge count scaled
/// by the score ([`work_factor`]). The work moves in small steps (one sub-challenge each)
/// where the difficulty would move it sixteen-fold.
pub fn scaled_params(preset: Preset, assessment: &RiskAssessment) -> ChallengeParams {
    let base = preset.params();
    let count = u32::try_from(work_factor(preset, assessment).of(base.c))
        .unwrap_or(u32::MAX)
        .clamp(*COUNT_RANGE.start(), *COUNT_RANGE.end());
    ChallengeParams { c: count, ..base }
}

/// The squarings of an RSW puzzle for a start: the preset's, scaled by the score like the
/// SHA-256 count, rounded up to a quarter of the preset's (in whole thousands). The edge
/// precomputes each size it issues (a few milliseconds), so a project has at most seven.
pub fn scaled_squarings(preset: Preset, assessment: &RiskAssessment) -> u32 {
    let base = preset.protection().squarings;
    let step = u64::from(base / 4).div_ceil(1000).max(1) * 1000;
    let scaled = work_factor(preset, assessment).of(base);
    let rounded = u32::try_from(scaled.div_ceil(step) * step).unwrap_or(u32::MAX);
    rounded.clamp(*SQUARINGS_RANGE.start(), *SQUARINGS_RANGE.end())
}

/// How much of the preset's work a start gets: from half for a clean start to twice at the
/// block threshold, `0.5 + 1.5 × score / threshold`, kept as a fraction of integers.
fn work_factor(preset: Preset, assessment: &RiskAssessment) -> WorkFactor {
    let threshold = u64::from(preset.protection().block_threshold.tenths().max(1));
    let score = u64::from(assessment.score.tenths()).min(threshold);
    WorkFactor {
        numerator: threshold + 3 * score,
        denominator: 2 * threshold,
    }
}

struct WorkFactor {
    numerator: u64,
    denominator: u64,
}

impl WorkFactor {
    fn of(&self, base: u32) -> u64 {
        u64::from(base) * self.numerator / self.denominator
    }
}

/// Whether a start is remembered as high-risk for the repeat pattern.
pub fn is_high_risk(assessment: &RiskAssessment) -> bool {
    assessment.decision != Decision::Allow
}

#[cfg(test)]
mod tests {
    use humanproof_protocol::Protection;

    use super::*;

    const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

    fn browser_headers() -> ClientHeaders<'static> {
        ClientHeaders {
            user_agent: Some(BROWSER),
            accept_language: Some("en-GB,en;q=0.9"),
            sec_fetch_site: Some("cross-site"),
            sec_fetch_mode: Some("cors"),
            sec_fetch_dest: Some("empty"),
        }
    }

    fn person() -> ChallengeRequest {
        ChallengeRequest {
            widget: Some(WidgetContext {
                trigger: Some("click".into()),
                ..Default::default()
            }),
            signals: Some(Signals {
                elapsed_ms: 9_000,
                focus_count: 3,
                blur_count: 2,
                key_count: 40,
                pointer_moves: 120,
                pointer_downs: 2,
                interactions: 45,
                visibility: "visible".into(),
                was_hidden: false,
            }),
            form: Some(FormContext {
                page_path: Some("/signup".into()),
                method: Some("post".into()),
                action_path: Some("/signup".into()),
                email: Some("ada@example.com".into()),
            }),
            ..Default::default()
        }
    }

    fn reasons_of(
        body: &ChallengeRequest,
        headers: ClientHeaders<'_>,
        history: Option<VisitorHistory>,
    ) -> Vec<RiskReason> {
        let evidence = StartEvidence {
            body,
            headers,
            history,
        };
        assess(&evidence, Preset::Balanced, RiskMode::Enforce)
            .reasons()
            .collect()
    }

    /// The reasons a change to a clean start adds, alone.
    fn reasons_after(
        change: impl FnOnce(&mut ChallengeRequest, &mut ClientHeaders<'static>, &mut VisitorHistory),
    ) -> Vec<RiskReason> {
        let (mut body, mut headers, mut history) =
            (person(), browser_headers(), VisitorHistory::default());
        change(&mut body, &mut headers, &mut history);
        reasons_of(&body, headers, Some(history))
    }

    #[test]
    fn a_person_in_a_browser_scores_zero_and_is_allowed() {
        let evidence = StartEvidence {
            body: &person(),
            headers: browser_headers(),
            history: Some(VisitorHistory::default()),
        };
        let assessment = assess(&evidence, Preset::Strict, RiskMode::Enforce);
        assert_eq!(
            (assessment.score, assessment.decision),
            (Score::default(), Decision::Allow)
        );
    }

    #[test]
    fn each_signal_adds_its_own_reason() {
        fn signals(body: &mut ChallengeRequest) -> &mut Signals {
            body.signals.as_mut().unwrap()
        }
        let cases: Vec<(Vec<RiskReason>, Vec<RiskReason>)> = vec![
            (
                reasons_after(|b, _, _| signals(b).elapsed_ms = 400),
                vec![RiskReason::VeryFastStart],
            ),
            (
                reasons_after(|b, _, _| signals(b).elapsed_ms = 2_000),
                vec![RiskReason::FastStart],
            ),
            (
                reasons_after(|b, _, _| {
                    let s = signals(b);
                    (
                        s.interactions,
                        s.pointer_moves,
                        s.focus_count,
                        s.key_count,
                        s.pointer_downs,
                    ) = (0, 0, 0, 0, 0);
                }),
                vec![RiskReason::NoObservedInteraction],
            ),
            (
                reasons_after(|b, _, _| {
                    let s = signals(b);
                    (s.focus_count, s.key_count, s.interactions) = (0, 0, 2);
                }),
                vec![RiskReason::NoFormInteraction],
            ),
            (
                reasons_after(|b, _, _| signals(b).visibility = "hidden".into()),
                vec![RiskReason::BackgroundOrHiddenPage],
            ),
            (
                reasons_after(|b, _, _| b.signals = None),
                vec![RiskReason::NoSignals],
            ),
            (
                reasons_after(|b, _, _| b.widget = None),
                vec![RiskReason::NoSignals],
            ),
            (
                reasons_after(|_, h, _| h.user_agent = Some("curl/8.5.0")),
                vec![RiskReason::AutomatedUserAgent],
            ),
            (
                reasons_after(|_, h, _| {
                    h.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/156.0.0.0")
                }),
                vec![RiskReason::AutomatedUserAgent],
            ),
            (
                reasons_after(|_, h, _| h.user_agent = None),
                vec![RiskReason::MissingUserAgent],
            ),
            (
                reasons_after(|_, h, _| h.user_agent = Some("Mozilla/5.0")),
                vec![RiskReason::MissingUserAgent],
            ),
            (
                reasons_after(|_, h, _| h.accept_language = None),
                vec![RiskReason::MissingAcceptLanguage],
            ),
            (
                reasons_after(|_, h, _| h.accept_language = Some("*")),
                vec![RiskReason::MissingAcceptLanguage],
            ),
            (
                reasons_after(|_, h, _| h.sec_fetch_mode = None),
                vec![RiskReason::UnusualFetchContext],
            ),
            (
                reasons_after(|_, h, _| h.sec_fetch_site = Some("none")),
                vec![RiskReason::UnusualFetchContext],
            ),
            (
                reasons_after(|_, h, _| h.sec_fetch_dest = Some("document")),
                vec![RiskReason::UnusualFetchContext],
            ),
            (
                reasons_after(|b, _, _| {
                    b.form.as_mut().unwrap().email = Some("x@Sub.Mailinator.com".into())
                }),
                vec![RiskReason::DisposableEmail],
            ),
            (
                reasons_after(|b, _, _| {
                    b.form.as_mut().unwrap().action_path = Some("https://evil.example/x".into())
                }),
                vec![RiskReason::MalformedFormContext],
            ),
            (
                reasons_after(|_, _, h| h.recent_failures = 2),
                vec![RiskReason::RepeatFailures],
            ),
            (
                reasons_after(|_, _, h| h.recent_high_risk = 2),
                vec![RiskReason::RepeatHighRiskPattern],
            ),
            (
                reasons_after(|_, _, h| h.failures_elsewhere = 3),
                vec![RiskReason::CrossSiteFailures],
            ),
            (
                reasons_after(|b, _, _| b.widget.as_mut().unwrap().offscreen_canvas = Some(false)),
                vec![RiskReason::PartialEnvironmentCheck],
            ),
            (
                reasons_after(|b, _, _| b.widget.as_mut().unwrap().offscreen_canvas = Some(true)),
                vec![],
            ),
            // Below their thresholds, history and timing add nothing.
            (
                reasons_after(|_, _, h| {
                    (h.recent_failures, h.recent_high_risk, h.failures_elsewhere) = (1, 1, 2)
                }),
                vec![],
            ),
            (
                reasons_after(|_, _, h| h.over_soft_rate = true),
                vec![RiskReason::HighRequestRate],
            ),
            // Shares, not counts: a crowd of 100 starts with 10 failures (10 %), 20 high-risk
            // starts (20 %) and 9 failures in 100 starts elsewhere is clean...
            (
                reasons_after(|_, _, h| {
                    (h.recent_starts, h.recent_high_risk) = (101, 20);
                    (h.recent_solved, h.recent_failures) = (90, 10);
                    (h.failures_elsewhere, h.solved_elsewhere) = (9, 91);
                }),
                vec![],
            ),
            // ...while a script whose starts fail a quarter of the time or more is not.
            (
                reasons_after(|_, _, h| {
                    // Padding starts does not dilute failures: they count among redeems.
                    (h.recent_starts, h.recent_high_risk) = (100, 50);
                    (h.recent_solved, h.recent_failures) = (6, 2);
                    (h.failures_elsewhere, h.solved_elsewhere) = (3, 9);
                }),
                vec![
                    RiskReason::RepeatFailures,
                    RiskReason::RepeatHighRiskPattern,
                    RiskReason::CrossSiteFailures,
                ],
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn every_reason_has_points() {
        for reason in RiskReason::ALL {
            assert!(points(reason) > Score::default(), "{reason:?}");
        }
    }

    #[test]
    fn a_script_scores_high_and_is_blocked_only_in_enforce_mode() {
        let script = ClientHeaders {
            user_agent: Some("python-requests/2.32"),
            ..Default::default()
        };
        let body = ChallengeRequest::default();
        let evidence = StartEvidence {
            body: &body,
            headers: script,
            history: None,
        };
        let enforced = assess(&evidence, Preset::Balanced, RiskMode::Enforce);
        assert_eq!(
            enforced.reasons().collect::<Vec<_>>(),
            [
                RiskReason::NoSignals,
                RiskReason::AutomatedUserAgent,
                RiskReason::MissingAcceptLanguage,
                RiskReason::UnusualFetchContext
            ]
        );
        assert_eq!(
            (
                enforced.score.to_string(),
                enforced.decision,
                enforced.blocks()
            ),
            ("9.0".into(), Decision::Block, true)
        );
        let observed = assess(&evidence, Preset::Balanced, RiskMode::Observe);
        assert_eq!(
            (observed.decision, observed.blocks()),
            (Decision::Block, false)
        );
    }

    #[test]
    fn signals_without_the_widgets_context_are_not_scored() {
        // A script's made-up counters, clean or not, weigh nothing without the widget's
        // context: the start scores as one without signals either way.
        let mut made_up = person();
        made_up.widget = None;
        let mut careless = made_up.clone();
        let signals = careless.signals.as_mut().unwrap();
        (
            signals.elapsed_ms,
            signals.interactions,
            signals.pointer_moves,
        ) = (10, 0, 0);
        signals.visibility = "hidden".into();
        for body in [&made_up, &careless] {
            assert_eq!(
                reasons_of(body, browser_headers(), None),
                [RiskReason::NoSignals]
            );
        }
        let evidence = StartEvidence {
            body: &made_up,
            headers: browser_headers(),
            history: None,
        };
        let assessment = assess(&evidence, Preset::Balanced, RiskMode::Enforce);
        let decided = (assessment.score.to_string(), assessment.decision);
        assert_eq!(decided, ("3.0".into(), Decision::Challenge));
    }

    #[test]
    fn load_triggered_widgets_are_not_scored_on_timing_or_interaction() {
        let mut body = person();
        body.widget.as_mut().unwrap().trigger = Some("load".into());
        let signals = body.signals.as_mut().unwrap();
        (
            signals.elapsed_ms,
            signals.interactions,
            signals.pointer_moves,
            signals.focus_count,
            signals.key_count,
        ) = (50, 0, 0, 0, 0);
        assert_eq!(reasons_of(&body, browser_headers(), None), []);
    }

    #[test]
    fn work_scales_with_the_score_within_the_presets_bounds() {
        let count = |preset: Preset, tenths: u8| {
            let factors = vec![RiskFactor {
                reason: RiskReason::FastStart,
                points: Score::from_tenths(tenths),
            }];
            scaled_params(
                preset,
                &RiskAssessment::new(factors, preset, RiskMode::Observe),
            )
        };
        let base = Preset::Balanced.params();
        assert_eq!(
            count(Preset::Balanced, 0),
            ChallengeParams { c: 40, ..base }
        );
        assert_eq!(count(Preset::Balanced, 30).c, 100);
        assert_eq!(count(Preset::Balanced, 60).c, 160);
        assert_eq!(
            count(Preset::Balanced, 100).c,
            160,
            "capped at twice the preset's work"
        );
        let big = Preset::Custom(Protection {
            challenge_count: 400,
            ..Protection::BALANCED
        });
        assert_eq!(count(big, 100).c, 500, "and within the protocol's range");
        let tiny = Preset::Custom(Protection {
            challenge_count: 1,
            ..Protection::BALANCED
        });
        assert_eq!(count(tiny, 0).c, 1);
    }

    #[test]
    fn rsw_squarings_scale_like_the_count_in_quarters_of_the_preset() {
        let squarings = |squarings: u32, tenths: u8| {
            let preset = Preset::Custom(Protection {
                puzzle: humanproof_protocol::PuzzleKind::Rsw,
                squarings,
                ..Protection::BALANCED
            });
            let factors = vec![RiskFactor {
                reason: RiskReason::FastStart,
                points: Score::from_tenths(tenths),
            }];
            scaled_squarings(
                preset,
                &RiskAssessment::new(factors, preset, RiskMode::Observe),
            )
        };
        assert_eq!(squarings(100_000, 0), 50_000);
        assert_eq!(
            squarings(100_000, 5),
            75_000,
            "62,500 rounded up to a quarter"
        );
        assert_eq!(squarings(100_000, 30), 125_000);
        assert_eq!(squarings(100_000, 60), 200_000);
        assert_eq!(squarings(100_000, 100), 200_000);
        let sizes: std::collections::BTreeSet<u32> =
            (0..=60).map(|tenths| squarings(100_000, tenths)).collect();
        assert_eq!(sizes.len(), 7, "{sizes:?}");
        assert_eq!(squarings(150_000, 30), 190_000, "quarters of 38,000");
        assert_eq!(squarings(10_000, 0), 10_000, "within the protocol's range");
        assert_eq!(squarings(5_000_000, 60), 5_000_000);
    }

    #[test]
    fn disposable_domains_match_with_their_subdomains_only() {
        assert!(is_disposable_email("someone@yopmail.com"));
        assert!(is_disposable_email("someone@mx.YOPMAIL.com."));
        assert!(!is_disposable_email("someone@notyopmail.com"));
        assert!(!is_disposable_email("someone@example.com"));
        assert!(!is_disposable_email("no-at-sign"));
    }
}
