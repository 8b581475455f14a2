//! Request and response bodies of the edge endpoints, and the stable refusal codes.
//!
//! The shapes follow Cap's so existing Cap clients work unchanged; our additions are
//! optional fields a Cap client simply does not send.

use serde::{Deserialize, Serialize};

use crate::pow::ChallengeParams;
use crate::snapshot::WidgetPolicy;

/// Longest `action` a widget may send (Turnstile's limit).
pub const MAX_ACTION_LEN: usize = 32;
/// Longest `cdata` a widget may send (Turnstile's limit).
pub const MAX_CDATA_LEN: usize = 255;

/// How the widget is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// A visible checkbox the visitor clicks.
    Checkbox,
    /// Nothing visible; runs on submit or `execute()`.
    Invisible,
    /// A small badge that appears while work runs.
    Floating,
}

/// How much HumanProof branding the widget shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Branding {
    /// "Protected by HumanProof".
    Full,
    /// The name only.
    Minimal,
    /// No branding.
    None,
}

/// The widget's colours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    /// Follows the visitor's system (`prefers-color-scheme`).
    #[default]
    Auto,
    /// Light.
    Light,
    /// Dark.
    Dark,
}

/// The widget's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WidgetSize {
    /// The standard box.
    #[default]
    Normal,
    /// A narrower box for tight forms.
    Compact,
}

/// How a project's widget looks, as set in the dashboard. Every embedded widget reads it
/// from the edge, so a change reaches pages without touching their snippet; attributes on
/// the page override it where the plan allows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WidgetSettings {
    /// How the widget is shown.
    pub variant: Variant,
    /// Its colours.
    pub theme: Theme,
    /// `auto` (the page's language, then the browser's) or a language the widget speaks.
    pub language: String,
    /// Its size.
    pub size: WidgetSize,
    /// How much HumanProof branding it shows.
    pub branding: Branding,
}

impl Default for WidgetSettings {
    fn default() -> Self {
        Self {
            variant: Variant::Checkbox,
            theme: Theme::Auto,
            language: "auto".into(),
            size: WidgetSize::Normal,
            branding: Branding::Full,
        }
    }
}

/// Answer to `GET /{siteKey}/settings`: the widget's settings from the site's snapshot entry,
/// the same for every page (so caches may share it) and never secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SettingsResponse {
    /// False while the project is paused: the widget tells visitors verification is paused
    /// instead of offering a check that would be refused.
    pub active: bool,
    /// The dashboard's settings.
    pub widget: WidgetSettings,
    /// What the plan includes: page attributes asking for more are ignored.
    pub allowed: WidgetPolicy,
}

/// What the widget says about itself with a challenge start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct WidgetContext {
    /// Shown variant.
    #[serde(default)]
    pub variant: Option<Variant>,
    /// Branding mode.
    #[serde(default)]
    pub branding: Option<Branding>,
    /// What started the check: `click`, `submit`, `load` or `execute`.
    #[serde(default)]
    pub trigger: Option<String>,
    /// Whether the browser has `OffscreenCanvas`, which the environment check paints on.
    /// `Some(false)` (Safari before 16.4) gets the check without its canvas half, and the
    /// `partial_environment_check` reason.
    #[serde(default)]
    pub offscreen_canvas: Option<bool>,
}

impl WidgetContext {
    /// Whether the widget said its browser has no `OffscreenCanvas` (saying nothing is not
    /// saying that).
    pub fn lacks_offscreen_canvas(&self) -> bool {
        self.offscreen_canvas == Some(false)
    }
}

/// The widget's interaction counters, taken from when it connected to when the check
/// started. Counts and timings only: the edge scores them and keeps none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Signals {
    /// Milliseconds from the widget connecting to the start.
    pub elapsed_ms: u64,
    /// Focus events inside the form.
    pub focus_count: u32,
    /// Blur events inside the form.
    pub blur_count: u32,
    /// Key presses inside the form.
    pub key_count: u32,
    /// Pointer moves inside the form.
    pub pointer_moves: u32,
    /// Pointer presses inside the form.
    pub pointer_downs: u32,
    /// Focus, key and pointer-press events together.
    pub interactions: u32,
    /// `visible` or `hidden` at the start.
    pub visibility: String,
    /// Whether the page was hidden at any time before the start.
    pub was_hidden: bool,
}

/// What the widget says about the form it protects; never a field's value but the email's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct FormContext {
    /// The page's path.
    pub page_path: Option<String>,
    /// The form's method, lower case.
    pub method: Option<String>,
    /// Where the form posts, when that is the page's own origin.
    pub action_path: Option<String>,
    /// The value of the form's email field, scored for disposable domains and then dropped.
    pub email: Option<String>,
}

/// Optional body of `POST /{siteKey}/challenge`. Unknown fields are ignored so newer widgets
/// keep working against older edges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChallengeRequest {
    /// The widget's variant and branding; absent from plain Cap clients.
    #[serde(default)]
    pub widget: Option<WidgetContext>,
    /// Interaction counters; absent from plain Cap clients and scripts.
    #[serde(default)]
    pub signals: Option<Signals>,
    /// The protected form.
    #[serde(default)]
    pub form: Option<FormContext>,
    /// Action name (`[A-Za-z0-9_-]`, at most 32 characters), echoed by siteverify.
    #[serde(default)]
    pub action: Option<String>,
    /// Customer data (`[A-Za-z0-9_-]`, at most 255 characters), echoed by siteverify.
    #[serde(default)]
    pub cdata: Option<String>,
}

impl ChallengeRequest {
    /// Whether the start claims to come from our widget: it sent the widget's context or its
    /// signals. Such a start gets the environment check and must answer it to redeem, so
    /// sending part of what the widget sends skips nothing. Only a start that claims nothing
    /// (a plain Cap client) goes without the check, and scores `no_signals` for it.
    pub fn claims_widget(&self) -> bool {
        self.widget.is_some() || self.signals.is_some()
    }

    /// The signals the risk score reads: only those sent with the widget's context, as our
    /// widget always sends them. Counters without it come from something else and cost
    /// nothing to make up, so they are not scored: the start scores `no_signals`.
    pub fn scored_signals(&self) -> Option<&Signals> {
        self.widget.as_ref().and(self.signals.as_ref())
    }

    /// Checks `action` and `cdata` against Turnstile's rules.
    pub fn validate(&self) -> Result<(), Reason> {
        let well_formed = |value: &str, max: usize| {
            value.len() <= max
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if self
            .action
            .as_deref()
            .is_some_and(|a| !well_formed(a, MAX_ACTION_LEN))
        {
            return Err(Reason::InvalidAction);
        }
        if self
            .cdata
            .as_deref()
            .is_some_and(|c| !well_formed(c, MAX_CDATA_LEN))
        {
            return Err(Reason::InvalidCdata);
        }
        Ok(())
    }
}

/// Answer to a challenge start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// What to solve, in the format the client's project asks for.
    #[serde(flatten)]
    pub work: Work,
    /// Signed challenge token; also the PRNG seed.
    pub token: String,
    /// When the challenge expires, Unix ms.
    pub expires: i64,
    /// The environment check, for starts from our widget; plain Cap clients get none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrumentation: Option<Instrumentation>,
}

/// The work in a challenge response. Both shapes are Cap's, so Cap's own widget solves
/// either, and a client that only knows the first keeps working on SHA-256 projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Work {
    /// Cap's format 2: `{"format": 2, "challenges": [...]}`, typed puzzles solved in order.
    Puzzles {
        /// Always [`PUZZLE_FORMAT`].
        format: u8,
        /// One puzzle per entry; the redeem answers each, in order.
        challenges: Vec<Puzzle>,
    },
    /// Cap's first format: `{"challenge": {"c", "s", "d"}}`, SHA-256 searches whose salts
    /// and targets come from the token.
    Sha256 {
        /// The sub-challenge count, salt length and difficulty.
        challenge: ChallengeParams,
    },
}

/// The `format` of [`Work::Puzzles`].
pub const PUZZLE_FORMAT: u8 = 2;

/// One puzzle of Cap's format 2: `{"protocol": "rsw", "payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", content = "payload", rename_all = "snake_case")]
pub enum Puzzle {
    /// Square `x` `t` times modulo `N` ([`crate::rsw`]).
    Rsw {
        /// The 2048-bit modulus, 512 hex digits.
        #[serde(rename = "N")]
        n: String,
        /// The base, 512 hex digits.
        x: String,
        /// Squarings.
        t: u32,
    },
}

/// The environment check that comes with a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrumentation {
    /// A script for a dedicated worker; it posts `{"answer": "<8 hex digits>"}`.
    pub script: String,
}

/// Body of `POST /{siteKey}/redeem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemRequest {
    /// The challenge token from the challenge response.
    pub token: String,
    /// The answers, in the shape of the challenge's work.
    pub solutions: Solutions,
    /// The environment check's answer, when the challenge carried one.
    #[serde(default)]
    pub instrumentation: Option<String>,
}

/// A redeem's answers: nonces for SHA-256 (`[12, 907, ...]`), objects for format 2
/// (`[{"y": "..."}]`, as Cap's widget sends them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Solutions {
    /// One nonce per SHA-256 sub-challenge, in order.
    Nonces(Vec<u64>),
    /// One answer per format-2 puzzle, in order.
    Answers(Vec<PuzzleAnswer>),
}

/// The answer to one RSW puzzle: `y = x^(2^t) mod N` in hex, leading zeros optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PuzzleAnswer {
    /// The answer.
    pub y: String,
}

/// Answer to a successful redeem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemResponse {
    /// Always true.
    pub success: bool,
    /// Verification token for the site backend's siteverify call.
    pub token: String,
    /// When the verification token expires, Unix ms.
    pub expires: i64,
}

/// Error body of every edge refusal: `{"success":false,"error":"…","reason":"<code>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// Human-readable message.
    pub error: String,
    /// Stable machine-readable code.
    pub reason: Reason,
}

impl From<Reason> for ErrorBody {
    fn from(reason: Reason) -> Self {
        Self {
            success: false,
            error: reason.message().into(),
            reason,
        }
    }
}

/// Stable machine-readable refusal codes. Clients may match on them; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The body is not valid JSON of the expected shape.
    BadRequest,
    /// The body is larger than the endpoint accepts.
    BodyTooLarge,
    /// No such endpoint.
    NotFound,
    /// The endpoint exists but not for this method.
    MethodNotAllowed,
    /// No project has this site key.
    UnknownSiteKey,
    /// The project is paused.
    ProjectPaused,
    /// The request's `Origin` is not one of the project's domains.
    OriginNotAllowed,
    /// Billing does not allow traffic.
    BillingInactive,
    /// The monthly usage limit is spent.
    UsageExhausted,
    /// `action` is too long or has characters outside `[A-Za-z0-9_-]`.
    InvalidAction,
    /// `cdata` is too long or has characters outside `[A-Za-z0-9_-]`.
    InvalidCdata,
    /// The project's plan does not include this widget variant.
    VariantNotAllowed,
    /// The project's plan does not include this branding mode.
    BrandingNotAllowed,
    /// The challenge token has expired.
    Expired,
    /// The challenge token is malformed, forged or signed for another key.
    InvalidToken,
    /// This challenge was redeemed before.
    AlreadyRedeemed,
    /// A solution is wrong or missing.
    InvalidSolution,
    /// The token belongs to another site key or another origin.
    ScopeMismatch,
    /// The edge could not reach one of its own stores; retrying may help.
    Unavailable,
    /// The start's risk score reached the project's block threshold in enforce mode.
    RiskBlocked,
    /// The visitor started more challenges than the project's preset allows in two minutes.
    RateLimited,
    /// The environment check's answer is missing or wrong.
    InstrumentationFailed,
}

impl Reason {
    /// Every code, for documentation and tests.
    pub const ALL: [Reason; 22] = [
        Self::BadRequest,
        Self::BodyTooLarge,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::UnknownSiteKey,
        Self::ProjectPaused,
        Self::OriginNotAllowed,
        Self::BillingInactive,
        Self::UsageExhausted,
        Self::InvalidAction,
        Self::InvalidCdata,
        Self::VariantNotAllowed,
        Self::BrandingNotAllowed,
        Self::Expired,
        Self::InvalidToken,
        Self::AlreadyRedeemed,
        Self::InvalidSolution,
        Self::ScopeMismatch,
        Self::Unavailable,
        Self::RiskBlocked,
        Self::RateLimited,
        Self::InstrumentationFailed,
    ];

    /// HTTP status the edge answers with.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest
            | Self::InvalidAction
            | Self::InvalidCdata
            | Self::Expired
            | Self::InvalidToken
            | Self::InvalidSolution
            | Self::InstrumentationFailed => 400,
            Self::BillingInactive => 402,
            Self::ProjectPaused
            | Self::OriginNotAllowed
            | Self::ScopeMismatch
            | Self::VariantNotAllowed
            | Self::BrandingNotAllowed
            | Self::RiskBlocked => 403,
            Self::NotFound | Self::UnknownSiteKey => 404,
            Self::MethodNotAllowed => 405,
            Self::AlreadyRedeemed => 409,
            Self::BodyTooLarge => 413,
            Self::UsageExhausted | Self::RateLimited => 429,
            Self::Unavailable => 503,
        }
    }

    /// Human-readable message for the error body.
    pub fn message(self) -> &'static str {
        match self {
            Self::BadRequest => "The request body is not valid.",
            Self::BodyTooLarge => "The request body is too large.",
            Self::NotFound => "No such endpoint.",
            Self::MethodNotAllowed => "Method not allowed.",
            Self::UnknownSiteKey => "Unknown site key.",
            Self::ProjectPaused => "This site's protection is paused.",
            Self::OriginNotAllowed => "This origin is not allowed for the site key.",
            Self::BillingInactive => "This site's plan does not allow traffic right now.",
            Self::UsageExhausted => "This site's monthly usage limit is reached.",
            Self::InvalidAction => {
                "The action must be at most 32 characters of A-Z, a-z, 0-9, _ and -."
            }
            Self::InvalidCdata => {
                "The cdata must be at most 255 characters of A-Z, a-z, 0-9, _ and -."
            }
            Self::VariantNotAllowed => "This site's plan does not include this widget variant.",
            Self::BrandingNotAllowed => "This site's plan does not include this branding mode.",
            Self::Expired => "The challenge has expired.",
            Self::InvalidToken => "The challenge token is invalid.",
            Self::AlreadyRedeemed => "The challenge was already redeemed.",
            Self::InvalidSolution => "The solution is invalid.",
            Self::ScopeMismatch => "The token does not belong to this site key or origin.",
            Self::Unavailable => "The service is temporarily unavailable.",
            Self::RiskBlocked => "This request looks automated and was blocked.",
            Self::RateLimited => "Too many checks from this network; try again in a few minutes.",
            Self::InstrumentationFailed => "The browser check did not run or gave a wrong answer.",
        }
    }

    /// The code as it appears on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        // Kept in step with serde's snake_case names by the test below.
        match self {
            Self::BadRequest => "bad_request",
            Self::BodyTooLarge => "body_too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnknownSiteKey => "unknown_site_key",
            Self::ProjectPaused => "project_paused",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::BillingInactive => "billing_inactive",
            Self::UsageExhausted => "usage_exhausted",
            Self::InvalidAction => "invalid_action",
            Self::InvalidCdata => "invalid_cdata",
            Self::VariantNotAllowed => "variant_not_allowed",
            Self::BrandingNotAllowed => "branding_not_allowed",
            Self::Expired => "expired",
            Self::InvalidToken => "invalid_token",
            Self::AlreadyRedeemed => "already_redeemed",
            Self::InvalidSolution => "invalid_solution",
            Self::ScopeMismatch => "scope_mismatch",
            Self::Unavailable => "unavailable",
            Self::RiskBlocked => "risk_blocked",
            Self::RateLimited => "rate_limited",
            Self::InstrumentationFailed => "instrumentation_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_serialized_names() {
        for reason in Reason::ALL {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
            assert!((400..600).contains(&reason.status()));
        }
    }

    #[test]
    fn action_and_cdata_follow_turnstile_rules() {
        let ok = ChallengeRequest {
            action: Some("login-form_2".into()),
            cdata: Some("x".repeat(255)),
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let long_action = ChallengeRequest {
            action: Some("a".repeat(33)),
            ..Default::default()
        };
        assert_eq!(long_action.validate(), Err(Reason::InvalidAction));
        let odd_cdata = ChallengeRequest {
            cdata: Some("a b".into()),
            ..Default::default()
        };
        assert_eq!(odd_cdata.validate(), Err(Reason::InvalidCdata));
    }

    #[test]
    fn only_signals_with_the_widgets_context_are_scored_and_any_claim_gets_the_check() {
        let parse = |body: &str| serde_json::from_str::<ChallengeRequest>(body).unwrap();
        let cap = parse("{}");
        assert_eq!((cap.claims_widget(), cap.scored_signals()), (false, None));
        let bare_signals = parse(r#"{"signals": {"elapsed_ms": 9000, "interactions": 40}}"#);
        assert_eq!(
            (bare_signals.claims_widget(), bare_signals.scored_signals()),
            (true, None)
        );
        let bare_context = parse(r#"{"widget": {"trigger": "click"}}"#);
        assert_eq!(
            (bare_context.claims_widget(), bare_context.scored_signals()),
            (true, None)
        );
        let widget = parse(r#"{"widget": {}, "signals": {"elapsed_ms": 9000}}"#);
        assert!(widget.claims_widget());
        assert_eq!(
            widget.scored_signals().map(|signals| signals.elapsed_ms),
            Some(9000)
        );
    }
}
