//! What the fuzz targets share: the edge wired to in-memory stores as the local server wires
//! it, one published site, a way to run its futures, and the rule every answer must follow.
//!
//! Each input gets a fresh edge, so one input's challenges, claims and rate-limit counts
//! never change how the next one is answered, and every crash replays from its input alone.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use humanproof_edge::memory::{MemoryClaims, MemorySnapshots, MemoryVisitors};
use humanproof_edge::risk::ClientHeaders;
use humanproof_edge::{Edge, EdgeConfig, EdgeRequest, EdgeResponse, RequestBody, TelemetrySink};
use humanproof_protocol::snapshot::{BillingGate, RiskMode, WidgetPolicy};
use humanproof_protocol::wire::WidgetSettings;
use humanproof_protocol::{
    MasterSecret, Network, Preset, Protection, SiteSnapshot, TelemetryEvent,
};

/// The operator's master secret for every target; seeds carry tokens signed under it.
pub const MASTER_SECRET: &str = "humanproof-fuzz-master-secret-0123456789";
/// The edge's clock, fixed so the seeds' tokens never expire: 2026-03-15T12:00:00Z.
pub const NOW_MS: i64 = 1_773_576_000_000;
/// The published site's key.
pub const SITE_KEY: &str = "hp_site_fuzz";
/// An origin the published site allows.
pub const ORIGIN: &str = "https://example.com";

/// A desktop browser's `fetch()` from a page, so risk scoring does not block every start.
pub const BROWSER: ClientHeaders<'static> = ClientHeaders {
    user_agent: Some(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
    ),
    accept_language: Some("en-GB,en;q=0.9"),
    sec_fetch_site: Some("cross-site"),
    sec_fetch_mode: Some("cors"),
    sec_fetch_dest: Some("empty"),
};

/// The edge as the targets run it.
pub type FuzzEdge = Edge<MemorySnapshots, MemoryClaims, MemoryVisitors, DropTelemetry>;

/// Telemetry goes nowhere: delivery is not what is under test.
pub struct DropTelemetry;

impl TelemetrySink for DropTelemetry {
    async fn emit(&self, _event: TelemetryEvent) {}
}

/// The master secret.
pub fn master() -> MasterSecret {
    MasterSecret::new(MASTER_SECRET).expect("the fuzz master secret is long enough")
}

/// A site with a tiny Custom preset (difficulty 1, 3 sub-challenges), so a seed can carry a
/// solved redeem and the fuzzer reaches the success path.
pub fn site() -> SiteSnapshot {
    SiteSnapshot {
        project_id: "fuzz-project".into(),
        site_key: SITE_KEY.into(),
        active: true,
        production_domains: vec!["example.com".into()],
        testing_domains: vec!["localhost".into()],
        allow_subdomains: true,
        key_version: 1,
        preset: Preset::Custom(Protection {
            difficulty: 1,
            challenge_count: 3,
            ..Protection::BALANCED
        }),
        risk_mode: RiskMode::Enforce,
        billing: BillingGate {
            plan: "free".into(),
            traffic_allowed: true,
            monthly_limit: None,
            usage_left: None,
        },
        widget: WidgetPolicy::default(),
        widget_settings: WidgetSettings::default(),
        published_at: NOW_MS,
    }
}

/// A fresh edge with `site` published.
pub fn edge(site: SiteSnapshot) -> FuzzEdge {
    let snapshots = MemorySnapshots::default();
    snapshots.put(site);
    Edge::new(
        EdgeConfig::new(master()),
        snapshots,
        MemoryClaims::default(),
        MemoryVisitors::default(),
        DropTelemetry,
    )
}

/// Runs a future of the edge over in-memory stores, which never wait: one poll finishes it.
pub fn block_on<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => {
            panic!("the in-memory stores never wait, so the edge finished in one poll")
        }
    }
}

/// A browser's POST of `body` to `path` from `origin`, answered by `edge`.
pub fn post(edge: &FuzzEdge, path: &str, origin: &str, body: &[u8]) -> EdgeResponse {
    let network = Network::default();
    block_on(edge.handle(EdgeRequest {
        method: "POST",
        path,
        origin: Some(origin),
        client_ip: Some("203.0.113.9"),
        headers: BROWSER,
        network: &network,
        body: RequestBody::Read(body),
        now_ms: NOW_MS,
    }))
}

/// The edge's promise: every answer is a success, a preflight or a refusal with a code; the
/// only server error is `unavailable` (a store did not answer), and every body is JSON.
pub fn check(response: &EdgeResponse) {
    let status = response.status;
    assert!(
        (200..300).contains(&status) || (400..500).contains(&status) || status == 503,
        "status {status}: {}",
        String::from_utf8_lossy(&response.body),
    );
    if !response.body.is_empty() {
        let json: Result<serde_json::Value, _> = serde_json::from_slice(&response.body);
        assert!(
            json.is_ok(),
            "a body that is not JSON: {:?}",
            String::from_utf8_lossy(&response.body)
        );
    }
}
