//! Prints what the hot paths cost: redeem verification and risk scoring at the edge and
//! siteverify throughput at the control plane (SQLite, and PostgreSQL when
//! `HUMANPROOF_TEST_POSTGRES_URL` is set). Figures only; nothing here asserts a speed.
//!
//! Run with `cargo bench -p humanproof-tests --bench platform`.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use humanproof_control_plane::app;
use humanproof_edge::instrumentation::{self, Scene};
use humanproof_edge::risk::{self, StartEvidence};
use humanproof_edge::visitor::VisitorHistory;
use humanproof_protocol::pow;
use humanproof_protocol::preset::RATE_WINDOW_MS;
use humanproof_protocol::snapshot::RiskMode;
use humanproof_protocol::wire::ChallengeRequest;
use humanproof_protocol::{ChallengeClaims, Obfuscation, Preset, VerificationClaims};
use humanproof_tests::{
    Backend, Client, MASTER_SECRET, ORIGIN, World, fresh_db, quick_project, verification_claims,
};
use serde_json::json;
use tower::ServiceExt as _;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "HumanProof benchmarks ({} logical CPUs)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    redeem_verification();
    risk_scoring();
    runtime.block_on(edge_round_trip());
    runtime.block_on(siteverify_throughput(Backend::Sqlite));
    if std::env::var("HUMANPROOF_TEST_POSTGRES_URL").is_ok() {
        runtime.block_on(siteverify_throughput(Backend::Postgres));
    } else {
        println!("siteverify on PostgreSQL: skipped (set HUMANPROOF_TEST_POSTGRES_URL)");
    }
}

/// Repeats `work` for about `budget` and returns the mean time per call.
fn time_per_call(budget: Duration, mut work: impl FnMut()) -> Duration {
    let started = Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < budget {
        work();
        calls += 1;
    }
    started.elapsed() / calls
}

/// What the edge spends checking one redeem: token signature plus the proof of work.
fn redeem_verification() {
    let key = humanproof_protocol::MasterSecret::new(MASTER_SECRET)
        .unwrap()
        .project_key("bench", 1);
    for preset in [Preset::Relaxed, Preset::Balanced] {
        let params = preset.params();
        let claims = ChallengeClaims {
            sk: "hp_site_bench".into(),
            jti: "0".repeat(32),
            c: params.c,
            s: params.s,
            d: params.d,
            rsw: None,
            iat: 0,
            exp: i64::MAX,
            host: "example.com".into(),
            act: None,
            cd: None,
            risk: None,
            ins: None,
            ins_without_canvas: false,
        };
        let token = key.sign(&claims);
        let solve_started = Instant::now();
        let solutions = pow::solve(&token, params);
        let solve_time = solve_started.elapsed();
        let per_redeem = time_per_call(Duration::from_secs(1), || {
            let opened: ChallengeClaims = key.open(&token, 1).unwrap();
            pow::verify_solutions(&token, opened.params(), &solutions).unwrap();
        });
        println!(
            "redeem verification, {:<8} (c={}, d={}): {:>7.1} µs per redeem (native; reference solve took {:.2} s)",
            preset.name(),
            params.c,
            params.d,
            per_redeem.as_secs_f64() * 1e6,
            solve_time.as_secs_f64(),
        );
    }
}

/// What the edge spends scoring one start (signals, headers, history) and sizing its work.
fn risk_scoring() {
    let body: ChallengeRequest = serde_json::from_value(json!({
        "widget": {"variant": "checkbox", "trigger": "click"},
        "signals": {"elapsed_ms": 5230, "focus_count": 3, "blur_count": 2, "key_count": 41, "pointer_moves": 88,
                    "pointer_downs": 2, "interactions": 46, "visibility": "visible", "was_hidden": false},
        "form": {"page_path": "/signup", "method": "post", "action_path": "/signup", "email": "ada@mail.example.com"},
    }))
    .unwrap();
    let evidence = StartEvidence {
        body: &body,
        headers: Client::BROWSER.headers,
        history: Some(VisitorHistory::default()),
    };
    let per_start = time_per_call(Duration::from_secs(1), || {
        let assessment = risk::assess(&evidence, Preset::Balanced, RiskMode::Enforce);
        std::hint::black_box(risk::scaled_params(Preset::Balanced, &assessment));
    });
    println!(
        "risk score + work scaling per start (native): {:>7.2} µs",
        per_start.as_secs_f64() * 1e6
    );
    let master = humanproof_protocol::MasterSecret::new(MASTER_SECRET).unwrap();
    for level in Obfuscation::ALL {
        let mut n = 0u64;
        let mut size = 0;
        let per_check = time_per_call(Duration::from_millis(500), || {
            n += 1;
            let scene = Scene::new(instrumentation::seed(&master, &format!("{n:032x}")), level);
            size = std::hint::black_box(scene.script()).len();
            std::hint::black_box(scene.answer());
        });
        println!(
            "environment check, {:<8}: {:>7.2} µs to generate and answer (native), script {size} bytes",
            level.name(),
            per_check.as_secs_f64() * 1e6
        );
    }
}

/// A whole challenge → redeem through the edge logic with in-memory stores, minus solving.
async fn edge_round_trip() {
    let world = World::new(Backend::Sqlite).await;
    let site = world.create_project(quick_project("bench-edge")).await;
    let started = Instant::now();
    let mut rounds = 0u32;
    let rate_limit = site.project.settings.preset.protection().rate_limit;
    while started.elapsed() < Duration::from_secs(1) {
        // One visitor sends them all: move the manual clock on before the rate limit bites.
        if rounds % rate_limit == rate_limit - 1 {
            world.clock.advance(RATE_WINDOW_MS);
        }
        let challenge = world.start_challenge(site.site_key(), &json!({})).await;
        let token = challenge.json["token"].as_str().unwrap();
        let solutions = pow::solve(
            token,
            serde_json::from_value(challenge.json["challenge"].clone()).unwrap(),
        );
        assert_eq!(
            world
                .redeem(site.site_key(), token, &solutions)
                .await
                .status,
            200
        );
        rounds += 1;
    }
    let per_round = started.elapsed() / rounds;
    println!(
        "edge start (gates, rate limit, risk score) + solve (c≈3, d=1) + redeem, in-memory stores: {:>7.1} µs per round trip (origin {ORIGIN})",
        per_round.as_secs_f64() * 1e6
    );
}

/// Sequential and concurrent siteverify calls through the control plane's router.
async fn siteverify_throughput(backend: Backend) {
    let db = fresh_db(backend).await.unwrap();
    let world = World::with_db(db);
    let site = world
        .create_project(quick_project("bench-siteverify"))
        .await;
    let key = world
        .master
        .project_key(&site.project.id, site.project.key_version);
    let now = world.clock.now_ms();
    let token = |n: usize| {
        key.sign(&VerificationClaims {
            jti: format!("{n:032x}"),
            cid: format!("{n:032x}"),
            ..verification_claims(site.site_key(), "localhost", now)
        })
    };
    let router = app(world.state());
    let request = |token: String| {
        Request::post("/siteverify")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "secret={}&response={token}",
                site.secret
            )))
            .unwrap()
    };

    const SEQUENTIAL: usize = 300;
    let started = Instant::now();
    for n in 0..SEQUENTIAL {
        let response = router.clone().oneshot(request(token(n))).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let sequential = SEQUENTIAL as f64 / started.elapsed().as_secs_f64();

    const CONCURRENT: usize = 1000;
    const IN_FLIGHT: usize = 16;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in SEQUENTIAL..SEQUENTIAL + CONCURRENT {
        if tasks.len() >= IN_FLIGHT {
            assert_eq!(tasks.join_next().await.unwrap().unwrap(), 200);
        }
        let (router, request) = (router.clone(), request(token(n)));
        tasks.spawn(async move { router.oneshot(request).await.unwrap().status() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let concurrent = CONCURRENT as f64 / started.elapsed().as_secs_f64();
    println!(
        "siteverify on {backend:?}: {sequential:>7.0} verifications/s one at a time, {concurrent:>7.0}/s with {IN_FLIGHT} in flight"
    );
}
