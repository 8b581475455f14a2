//! Routing, gates, risk, challenge issuing and redeeming.
//!
//! Every decision comes from the site's snapshot entry, the signed token and the visitor's
//! short-lived abuse state; nothing on the request path reaches the origin or a central
//! database. A start passes the gates, then the rate limit, then the risk score, which
//! either blocks it (enforce mode) or sets how much work its challenge costs.

use humanproof_protocol::pow;
use humanproof_protocol::privacy::{client_network, salted_hash};
use humanproof_protocol::snapshot::origin_host;
use humanproof_protocol::token::{ChallengeClaims, TokenError, VerificationClaims};
use humanproof_protocol::wire::{
    ChallengeRequest, ChallengeResponse, ErrorBody, Instrumentation, PUZZLE_FORMAT, Puzzle,
    RedeemRequest, RedeemResponse, SettingsResponse, Solutions, WidgetContext, Work,
};
use humanproof_protocol::{
    MasterSecret, Network, ProjectKey, PuzzleKind, Reason, RiskAssessment, SiteSnapshot,
    TelemetryEvent, TelemetryKind,
};
use serde::Serialize;
use std::sync::Arc;

use crate::instrumentation;
use crate::risk::{self, ClientHeaders, StartEvidence};
use crate::stores::{ClaimStore, SnapshotStore, TelemetrySink, VisitorStore};
use crate::time_locks::TimeLocks;
use crate::visitor::VisitorEvent;

/// Largest challenge-start body: widget context and signals fit in a few hundred bytes.
pub const MAX_CHALLENGE_BODY: usize = 16 * 1024;
/// Largest redeem body: 500 solutions of 20 digits plus a token stay well below this.
pub const MAX_REDEEM_BODY: usize = 64 * 1024;
/// The larger of the two; shells may refuse bigger bodies before reading them.
pub const MAX_BODY: usize = MAX_REDEEM_BODY;
/// How long browsers and caches keep a site's widget settings, in seconds: a dashboard change
/// shows on embedded widgets within a minute of reaching the edge.
pub const SETTINGS_MAX_AGE_S: u32 = 60;

/// Edge settings that do not come from the snapshot.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The operator's master secret (a Worker secret on Cloudflare).
    pub master: MasterSecret,
    /// How long a challenge may take to solve.
    pub challenge_ttl_ms: i64,
    /// How long a verification token stays valid for siteverify.
    pub verification_ttl_ms: i64,
    /// The operator's RSW key, for projects whose Custom preset asks for RSW puzzles.
    /// Without one (or with a secret that is not a key), those projects get their SHA-256
    /// work instead.
    pub time_locks: Option<Arc<TimeLocks>>,
}

impl EdgeConfig {
    /// Ten minutes to solve (Strict on a slow phone takes well under one), and the 300 s
    /// verification window siteverify promises.
    pub fn new(master: MasterSecret) -> Self {
        Self {
            master,
            challenge_ttl_ms: 10 * 60 * 1000,
            verification_ttl_ms: 300 * 1000,
            time_locks: None,
        }
    }

    /// The same, issuing RSW puzzles under `time_locks`.
    pub fn with_time_locks(self, time_locks: Arc<TimeLocks>) -> Self {
        Self {
            time_locks: Some(time_locks),
            ..self
        }
    }
}

/// A request as the edge sees it, whatever HTTP stack carried it.
#[derive(Debug, Clone, Copy)]
pub struct EdgeRequest<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// URL path, e.g. `/hp_site_…/challenge`.
    pub path: &'a str,
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// Client IP as the platform reports it; hashed before it goes anywhere.
    pub client_ip: Option<&'a str>,
    /// The headers the risk score reads; the user agent is hashed before it goes anywhere.
    pub headers: ClientHeaders<'a>,
    /// The client's country and network, when the platform knows them.
    pub network: &'a Network,
    /// The request body, or the fact that it was too large to read.
    pub body: RequestBody<'a>,
    /// Current time, Unix ms.
    pub now_ms: i64,
}

/// A body as the shell read it. Shells refuse to buffer more than [`MAX_BODY`] bytes and
/// say so, so every platform answers an oversized body with the same `body_too_large`.
#[derive(Debug, Clone, Copy)]
pub enum RequestBody<'a> {
    /// The bytes received.
    Read(&'a [u8]),
    /// More than [`MAX_BODY`] bytes were sent.
    TooLarge,
}

/// The answer, for the shell to turn into its platform's response type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers besides `Content-Type`.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body; empty for preflights.
    pub body: Vec<u8>,
}

impl EdgeResponse {
    fn json(status: u16, body: &impl Serialize) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: serde_json::to_vec(body).expect("wire types serialize"),
        }
    }

    fn refusal(reason: Reason) -> Self {
        Self::json(reason.status(), &ErrorBody::from(reason))
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Shared caches and browsers may keep the answer for [`SETTINGS_MAX_AGE_S`].
    fn cacheable(self) -> Self {
        self.with_header(
            "cache-control",
            &format!("public, max-age={SETTINGS_MAX_AGE_S}"),
        )
    }

    fn with_cors(mut self, origin: &str) -> Self {
        self.headers.extend([
            ("access-control-allow-origin", origin.to_owned()),
            ("access-control-allow-methods", "POST, OPTIONS".into()),
            ("access-control-allow-headers", "content-type".into()),
            ("access-control-max-age", "600".into()),
            // A rate-limited widget may read when to try again.
            ("access-control-expose-headers", "retry-after".into()),
            ("vary", "Origin".into()),
        ]);
        self
    }
}

/// What a path asks for, with its site key.
enum Route<'a> {
    /// A step of a protected attempt, answered only to the site's origins.
    Attempt(&'a str, Endpoint),
    /// The widget's settings, answered to anyone.
    Settings(&'a str),
}

/// The steps of a protected attempt.
enum Endpoint {
    Challenge,
    Redeem,
}

impl Endpoint {
    /// The telemetry event a refusal at this endpoint is recorded as, if any. Every refused
    /// start is. A refused redeem is only when it had claimed its challenge: the site key is
    /// public, so anyone can post junk to the redeem endpoint, and junk must neither spend
    /// the project's plan (failed redeems are protected attempts) nor store a row per request.
    fn refusal_event(&self, refusal: &Refusal) -> Option<TelemetryKind> {
        match self {
            Endpoint::Challenge if refusal.reason == Reason::RiskBlocked => {
                Some(TelemetryKind::ChallengeBlocked)
            }
            Endpoint::Challenge => Some(TelemetryKind::ChallengeRefused),
            Endpoint::Redeem => refusal
                .claimed_challenge
                .then_some(TelemetryKind::RedeemFailed),
        }
    }
}

/// What a request was refused for, with what telemetry needs to know about it.
struct Refusal {
    reason: Reason,
    challenge_id: Option<String>,
    risk: Option<RiskAssessment>,
    /// For `rate_limited`: when the visitor may start again, Unix ms.
    retry_at_ms: Option<i64>,
    /// For a redeem: it claimed the challenge before it was refused, so this refusal is the
    /// one outcome of that challenge, and the one that is recorded.
    claimed_challenge: bool,
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Self {
        Self {
            reason,
            challenge_id: None,
            risk: None,
            retry_at_ms: None,
            claimed_challenge: false,
        }
    }
}

/// The hashed identity of the client behind a request, computed once per request.
struct Visitor {
    /// Salted hash of the client's network ([`client_network`]: the IPv4 address, or the
    /// IPv6 /64): the key of the visitor's abuse state, and telemetry's `ip_hash`.
    ip_hash: Option<String>,
    ua_hash: Option<String>,
}

/// What an event says beyond its kind.
#[derive(Default)]
struct EventDetails {
    hostname: Option<String>,
    reason: Option<Reason>,
    challenge_id: Option<String>,
    difficulty: Option<u32>,
    risk: Option<RiskAssessment>,
}

/// The edge logic over its four stores.
pub struct Edge<S, C, V, T> {
    config: EdgeConfig,
    snapshots: S,
    claims: C,
    visitors: V,
    telemetry: T,
}

impl<S: SnapshotStore, C: ClaimStore, V: VisitorStore, T: TelemetrySink> Edge<S, C, V, T> {
    /// Wires the logic to its stores.
    pub fn new(config: EdgeConfig, snapshots: S, claims: C, visitors: V, telemetry: T) -> Self {
        Self {
            config,
            snapshots,
            claims,
            visitors,
            telemetry,
        }
    }

    /// The snapshot store, e.g. for the local server to publish into.
    pub fn snapshots(&self) -> &S {
        &self.snapshots
    }

    /// Answers one request. Never panics on client input; every refusal is a 4xx with a code.
    pub async fn handle(&self, req: EdgeRequest<'_>) -> EdgeResponse {
        let (site_key, endpoint) = match route(req.path) {
            Some(Route::Attempt(site_key, endpoint)) => (site_key, endpoint),
            Some(Route::Settings(site_key)) => return self.settings(&req, site_key).await,
            None => return EdgeResponse::refusal(Reason::NotFound),
        };
        let preflight = match req.method {
            "POST" => false,
            "OPTIONS" => true,
            _ => return EdgeResponse::refusal(Reason::MethodNotAllowed),
        };
        let site = match self.snapshots.site(site_key).await {
            Ok(Some(site)) => site,
            // Unknown keys emit no telemetry: there is no project to attribute it to, and
            // garbage keys must not be a way to flood the control plane.
            Ok(None) => return EdgeResponse::refusal(Reason::UnknownSiteKey),
            Err(_) => return EdgeResponse::refusal(Reason::Unavailable),
        };
        let host = req.origin.and_then(origin_host);
        let allowed_origin = match (req.origin, &host) {
            (Some(origin), Some(host)) if site.match_host(host).is_some() => origin,
            _ => {
                if !preflight
                    && let Some(kind) = endpoint.refusal_event(&Reason::OriginNotAllowed.into())
                {
                    let details = EventDetails {
                        hostname: host.clone(),
                        reason: Some(Reason::OriginNotAllowed),
                        ..EventDetails::default()
                    };
                    self.emit(&req, &site, &self.visitor(&req), kind, details)
                        .await;
                }
                return EdgeResponse::refusal(Reason::OriginNotAllowed);
            }
        };
        // From here on the origin is one of the site's, so it may read our answers.
        if preflight {
            return EdgeResponse {
                status: 204,
                headers: vec![],
                body: vec![],
            }
            .with_cors(allowed_origin);
        }
        let host = host.expect("an allowed origin has a host");
        // Hashed only here: preflights, the most common request, need no visitor.
        let visitor = self.visitor(&req);
        let outcome = match endpoint {
            Endpoint::Challenge => self.start_challenge(&req, &site, &visitor, &host).await,
            Endpoint::Redeem => self.redeem(&req, &site, &visitor, &host).await,
        };
        let response = match outcome {
            Ok(response) => response,
            Err(refusal) => {
                // The visitor's short-lived state remembers every failure that says something
                // about it, recorded or not: that is what raises its later scores.
                if matches!(endpoint, Endpoint::Redeem) && counts_against_visitor(refusal.reason) {
                    self.remember(&site, &visitor, VisitorEvent::FailedRedeem, req.now_ms)
                        .await;
                }
                let mut response = EdgeResponse::refusal(refusal.reason);
                if let Some(retry_at_ms) = refusal.retry_at_ms {
                    // Saturating: the window's end comes back from a store, not from this clock.
                    let seconds = retry_at_ms
                        .saturating_sub(req.now_ms)
                        .max(1)
                        .saturating_add(999)
                        / 1_000;
                    response.headers.push(("retry-after", seconds.to_string()));
                }
                if let Some(kind) = endpoint.refusal_event(&refusal) {
                    let details = EventDetails {
                        hostname: Some(host),
                        reason: Some(refusal.reason),
                        challenge_id: refusal.challenge_id,
                        risk: refusal.risk,
                        ..EventDetails::default()
                    };
                    self.emit(&req, &site, &visitor, kind, details).await;
                }
                response
            }
        };
        response.with_cors(allowed_origin)
    }

    /// `GET /{siteKey}/settings`: how the widget looks, from the snapshot. Answered to any
    /// origin and with no telemetry: it is what every visitor of the site sees anyway, not an
    /// attempt, and one answer for all lets browsers and shared caches keep it. A dashboard change
    /// reaches embedded widgets within the publishing delay plus [`SETTINGS_MAX_AGE_S`].
    async fn settings(&self, req: &EdgeRequest<'_>, site_key: &str) -> EdgeResponse {
        let response = if req.method != "GET" {
            EdgeResponse::refusal(Reason::MethodNotAllowed)
        } else {
            match self.snapshots.site(site_key).await {
                Ok(Some(site)) => EdgeResponse::json(
                    200,
                    &SettingsResponse {
                        active: site.active,
                        widget: site.widget_settings,
                        allowed: site.widget,
                    },
                )
                .cacheable(),
                Ok(None) => EdgeResponse::refusal(Reason::UnknownSiteKey).cacheable(),
                Err(_) => EdgeResponse::refusal(Reason::Unavailable),
            }
        };
        response.with_header("access-control-allow-origin", "*")
    }

    async fn start_challenge(
        &self,
        req: &EdgeRequest<'_>,
        site: &SiteSnapshot,
        visitor: &Visitor,
        host: &str,
    ) -> Result<EdgeResponse, Refusal> {
        if !site.active {
            return Err(Reason::ProjectPaused.into());
        }
        if !site.billing.traffic_allowed {
            return Err(Reason::BillingInactive.into());
        }
        if site.billing.usage_left == Some(0) {
            return Err(Reason::UsageExhausted.into());
        }
        // Cap clients send no body; our widget sends its context.
        let body: ChallengeRequest = match req.body {
            RequestBody::Read(bytes) if bytes.trim_ascii().is_empty() => {
                ChallengeRequest::default()
            }
            body => parse_body(body, MAX_CHALLENGE_BODY)?,
        };
        body.validate()?;
        // The widget states its looks; a plain Cap client states nothing and is not checked.
        if let Some(widget) = &body.widget {
            if widget
                .variant
                .is_some_and(|variant| !site.widget.variants.contains(&variant))
            {
                return Err(Reason::VariantNotAllowed.into());
            }
            if widget
                .branding
                .is_some_and(|branding| !site.widget.branding.contains(&branding))
            {
                return Err(Reason::BrandingNotAllowed.into());
            }
        }

        // A visitor store that does not answer must not take the site down: the start is
        // then scored without history and not rate limited.
        let limits = site.preset.protection().start_limits();
        let history = match &visitor.ip_hash {
            Some(ip_hash) => self
                .visitors
                .start(ip_hash, &site.project_id, limits, req.now_ms)
                .await
                .ok(),
            None => None,
        };
        if let Some(retry_at_ms) = history.and_then(|history| history.refused_until) {
            return Err(Refusal {
                retry_at_ms: Some(retry_at_ms),
                ..Reason::RateLimited.into()
            });
        }
        let evidence = StartEvidence {
            body: &body,
            headers: req.headers,
            history,
        };
        let assessment = risk::assess(&evidence, site.preset, site.risk_mode);
        if risk::is_high_risk(&assessment) {
            self.remember(site, visitor, VisitorEvent::HighRiskStart, req.now_ms)
                .await;
        }
        if assessment.blocks() {
            return Err(Refusal {
                risk: Some(assessment),
                ..Reason::RiskBlocked.into()
            });
        }

        let jti = random_id();
        let time_lock = match (&self.config.time_locks, site.preset.protection().puzzle) {
            (Some(locks), PuzzleKind::Rsw) => {
                Some(locks.of_size(risk::scaled_squarings(site.preset, &assessment)))
            }
            _ => None,
        };
        // An RSW challenge is one puzzle: `c` 1 and `d` 0 in the claims and on to siteverify.
        let params = match &time_lock {
            Some(_) => pow::ChallengeParams { c: 1, s: 0, d: 0 },
            None => risk::scaled_params(site.preset, &assessment),
        };
        // Whatever claims to be our widget runs the environment check; a plain Cap client,
        // which says nothing about itself, gets none (and was scored `no_signals` instead).
        let check_level = body
            .claims_widget()
            .then(|| site.preset.protection().obfuscation);
        let claims = ChallengeClaims {
            sk: site.site_key.clone(),
            jti,
            c: params.c,
            s: params.s,
            d: params.d,
            rsw: time_lock.as_ref().map(|lock| lock.squarings()),
            iat: req.now_ms,
            exp: req.now_ms + self.config.challenge_ttl_ms,
            host: host.to_owned(),
            act: body.action,
            cd: body.cdata,
            risk: Some(assessment),
            ins: check_level,
            ins_without_canvas: body
                .widget
                .as_ref()
                .is_some_and(WidgetContext::lacks_offscreen_canvas),
        };
        let project_key = self.project_key(site);
        let work = match &time_lock {
            Some(lock) => Work::Puzzles {
                format: PUZZLE_FORMAT,
                challenges: vec![Puzzle::Rsw {
                    n: lock.modulus_hex(),
                    x: lock.challenge(&project_key.rsw_scalar(&claims.jti)),
                    t: lock.squarings(),
                }],
            },
            None => Work::Sha256 { challenge: params },
        };
        let instrumentation =
            instrumentation::scene_for(&self.config.master, &claims).map(|scene| Instrumentation {
                script: scene.script(),
            });
        let token = project_key.sign(&claims);
        let details = EventDetails {
            hostname: Some(host.to_owned()),
            challenge_id: Some(claims.jti),
            difficulty: Some(params.d),
            risk: claims.risk,
            ..EventDetails::default()
        };
        self.emit(req, site, visitor, TelemetryKind::ChallengeIssued, details)
            .await;
        Ok(EdgeResponse::json(
            200,
            &ChallengeResponse {
                work,
                token,
                expires: claims.exp,
                instrumentation,
            },
        ))
    }

    async fn redeem(
        &self,
        req: &EdgeRequest<'_>,
        site: &SiteSnapshot,
        visitor: &Visitor,
        host: &str,
    ) -> Result<EdgeResponse, Refusal> {
        if !site.active {
            return Err(Reason::ProjectPaused.into());
        }
        let body: RedeemRequest = parse_body(req.body, MAX_REDEEM_BODY)?;
        let project_key = self.project_key(site);
        let challenge: ChallengeClaims =
            project_key
                .open(&body.token, req.now_ms)
                .map_err(|err| match err {
                    TokenError::Expired => Reason::Expired,
                    TokenError::Malformed | TokenError::BadSignature => Reason::InvalidToken,
                })?;
        if challenge.sk != site.site_key || challenge.host != host {
            return Err(Reason::ScopeMismatch.into());
        }
        // A genuine token for this site and page: claim its challenge before checking what the
        // client made of it, so the challenge has one outcome, recorded once, whatever happens
        // to it. Replaying the token with wrong solutions gets `already_redeemed`, not another
        // failed redeem on the plan; junk without the token cannot reach this point.
        match self
            .claims
            .claim(&challenge.jti, req.now_ms, challenge.exp)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(Reason::AlreadyRedeemed.into()),
            Err(_) => return Err(Reason::Unavailable.into()),
        }
        let refuse = |reason: Reason| Refusal {
            challenge_id: Some(challenge.jti.clone()),
            risk: challenge.risk.clone(),
            claimed_challenge: true,
            ..reason.into()
        };
        if !self.solves(&project_key, &challenge, &body) {
            return Err(refuse(Reason::InvalidSolution));
        }
        // Checked after the claim too, so each challenge buys one guess at the answer.
        if let Some(scene) = instrumentation::scene_for(&self.config.master, &challenge)
            && body.instrumentation.as_deref() != Some(scene.answer().as_str())
        {
            return Err(refuse(Reason::InstrumentationFailed));
        }

        let verification = VerificationClaims {
            sk: site.site_key.clone(),
            jti: random_id(),
            cid: challenge.jti.clone(),
            iat: req.now_ms,
            exp: req.now_ms + self.config.verification_ttl_ms,
            host: host.to_owned(),
            d: challenge.d,
            c: challenge.c,
            rsw: challenge.rsw,
            act: challenge.act,
            cd: challenge.cd,
            risk: challenge.risk,
        };
        // Successes count too: the repeat rules weigh failures as a share of redeems.
        self.remember(site, visitor, VisitorEvent::SolvedRedeem, req.now_ms)
            .await;
        let token = project_key.sign(&verification);
        let details = EventDetails {
            hostname: Some(host.to_owned()),
            challenge_id: Some(challenge.jti),
            difficulty: Some(challenge.d),
            risk: verification.risk,
            ..EventDetails::default()
        };
        self.emit(req, site, visitor, TelemetryKind::RedeemSucceeded, details)
            .await;
        Ok(EdgeResponse::json(
            200,
            &RedeemResponse {
                success: true,
                token,
                expires: verification.exp,
            },
        ))
    }

    /// Whether the redeem's answers solve the challenge's work, of whichever kind it was.
    fn solves(
        &self,
        project_key: &ProjectKey,
        challenge: &ChallengeClaims,
        body: &RedeemRequest,
    ) -> bool {
        match (challenge.rsw, &body.solutions) {
            (None, Solutions::Nonces(nonces)) => {
                pow::verify_solutions(&body.token, challenge.params(), nonces).is_ok()
            }
            (Some(squarings), Solutions::Answers(answers)) => {
                // A token is only issued for RSW where the edge has the key; a key removed
                // since leaves its challenges unanswerable, not unchecked.
                let (Some(locks), [answer]) = (&self.config.time_locks, answers.as_slice()) else {
                    return false;
                };
                let scalar = project_key.rsw_scalar(&challenge.jti);
                locks.of_size(squarings).is_answer(&scalar, &answer.y)
            }
            _ => false,
        }
    }

    fn project_key(&self, site: &SiteSnapshot) -> ProjectKey {
        self.config
            .master
            .project_key(&site.project_id, site.key_version)
    }

    fn visitor(&self, req: &EdgeRequest<'_>) -> Visitor {
        let hash =
            |label: &str, value: &str| salted_hash(&self.config.master, label, value, req.now_ms);
        Visitor {
            // The network, not the address: an IPv6 subscriber holds a whole /64 and could
            // otherwise start every request as a new visitor.
            ip_hash: req.client_ip.map(|ip| hash("ip", &client_network(ip))),
            ua_hash: req.headers.user_agent.map(|agent| hash("ua", agent)),
        }
    }

    /// Adds to the visitor's abuse state. A store that does not answer loses the event: it
    /// only sharpens later scores, and the request must not fail for it.
    async fn remember(
        &self,
        site: &SiteSnapshot,
        visitor: &Visitor,
        event: VisitorEvent,
        now_ms: i64,
    ) {
        if let Some(ip_hash) = &visitor.ip_hash {
            let _ = self
                .visitors
                .record(ip_hash, &site.project_id, event, now_ms)
                .await;
        }
    }

    async fn emit(
        &self,
        req: &EdgeRequest<'_>,
        site: &SiteSnapshot,
        visitor: &Visitor,
        kind: TelemetryKind,
        details: EventDetails,
    ) {
        self.telemetry
            .emit(TelemetryEvent {
                id: random_id(),
                kind,
                at: req.now_ms,
                project_id: site.project_id.clone(),
                site_key: site.site_key.clone(),
                reason: details.reason,
                challenge_id: details.challenge_id,
                hostname: details.hostname,
                difficulty: details.difficulty.or(Some(site.preset.params().d)),
                ip_hash: visitor.ip_hash.clone(),
                ua_hash: visitor.ua_hash.clone(),
                risk: details.risk,
                network: req.network.clone(),
            })
            .await;
    }
}

/// Redeem failures that say something about the visitor: a wrong solution or check answer,
/// a forged or replayed token. An expired challenge or a paused project does not.
fn counts_against_visitor(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::InvalidSolution
            | Reason::InvalidToken
            | Reason::AlreadyRedeemed
            | Reason::ScopeMismatch
            | Reason::InstrumentationFailed
    )
}

fn route(path: &str) -> Option<Route<'_>> {
    let (site_key, action) = path.strip_prefix('/')?.split_once('/')?;
    let well_formed = !site_key.is_empty()
        && site_key.len() <= 64
        && site_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !well_formed {
        return None;
    }
    match action {
        "challenge" => Some(Route::Attempt(site_key, Endpoint::Challenge)),
        "redeem" => Some(Route::Attempt(site_key, Endpoint::Redeem)),
        "settings" => Some(Route::Settings(site_key)),
        _ => None,
    }
}

fn parse_body<B: serde::de::DeserializeOwned>(
    body: RequestBody<'_>,
    limit: usize,
) -> Result<B, Refusal> {
    match body {
        RequestBody::Read(bytes) if bytes.len() <= limit => {
            serde_json::from_slice(bytes).map_err(|_| Reason::BadRequest.into())
        }
        _ => Err(Reason::BodyTooLarge.into()),
    }
}

/// 128 random bits as 32 hex digits.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the platform provides randomness");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_accept_only_well_formed_site_keys_and_known_endpoints() {
        assert!(matches!(
            route("/hp_site_a-1/challenge"),
            Some(Route::Attempt("hp_site_a-1", Endpoint::Challenge))
        ));
        assert!(matches!(
            route("/k/redeem"),
            Some(Route::Attempt("k", Endpoint::Redeem))
        ));
        assert!(matches!(route("/k/settings"), Some(Route::Settings("k"))));
        for path in [
            "",
            "/",
            "/k",
            "/k/",
            "/k/challenge/",
            "//challenge",
            "/a.b/redeem",
            "/k/other",
        ] {
            assert!(route(path).is_none(), "{path:?}");
        }
        assert!(route(&format!("/{}/challenge", "k".repeat(65))).is_none());
    }
}
