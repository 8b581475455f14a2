//! The start-rate limits and the repeat rules hold a crowd behind one address apart from a
//! flood or a failing script (the simulation behind the README's table:
//! `humanproof_tests::crowds`).

use humanproof_protocol::Preset;
use humanproof_protocol::snapshot::RiskMode;
use humanproof_tests::crowds::{Scenario, Visitors, simulate};

const TEN_MINUTES: i64 = 10 * 60 * 1000;

fn crowd(preset: Preset, starts_per_second: f64, failed_percent: u32) -> Scenario {
    Scenario {
        preset,
        mode: RiskMode::Enforce,
        visitors: Visitors::Crowd,
        starts_per_second,
        duration_ms: TEN_MINUTES,
        abandoned_percent: 3,
        failed_percent,
    }
}

#[tokio::test]
async fn a_crowd_at_the_documented_rate_is_never_refused() {
    // The README's promise: 2 starts a second from one address on Balanced, enforce mode.
    let outcome = simulate(crowd(Preset::Balanced, 2.0, 0)).await;
    assert!(outcome.starts > 1000, "{outcome:?}");
    assert_eq!(
        outcome.refused,
        0,
        "{:?}",
        (outcome.starts, outcome.refused)
    );
    assert!(
        outcome.percent(outcome.blocked) <= 1.0,
        "blocked {}",
        outcome.blocked
    );
    // And Relaxed takes 5 a second without refusing anyone.
    assert_eq!(simulate(crowd(Preset::Relaxed, 5.0, 0)).await.refused, 0);
}

#[tokio::test]
async fn a_flood_is_refused_with_retry_after_and_pays_for_what_it_got() {
    for per_second in [20.0, 100.0] {
        let outcome = simulate(Scenario {
            preset: Preset::Balanced,
            mode: RiskMode::Observe,
            visitors: Visitors::Flood,
            starts_per_second: per_second,
            duration_ms: 60_000,
            abandoned_percent: 0,
            failed_percent: 0,
        })
        .await;
        assert!(
            outcome.percent(outcome.refused) > 50.0,
            "{per_second}/s: {outcome:?}"
        );
        assert!(
            outcome.retry_after_always,
            "every refusal says when to come back"
        );
        // What it was let through is priced: past the soft rate, and a script's score.
        assert!(outcome.priced > 0);
    }
}

#[tokio::test]
async fn failures_count_as_a_share_of_the_address_starts() {
    // A crowd where one redeem in twenty fails stays clean...
    let people = simulate(crowd(Preset::Balanced, 2.0, 5)).await;
    assert!(
        people.percent(people.repeat_failures) < 1.0,
        "{} of {} starts scored repeat_failures",
        people.repeat_failures,
        people.starts
    );
    // ...while a script failing every redeem scores it from its third start, and keeps it.
    let script = simulate(Scenario {
        preset: Preset::Balanced,
        mode: RiskMode::Observe,
        visitors: Visitors::FailingScript,
        starts_per_second: 0.2,
        duration_ms: TEN_MINUTES,
        abandoned_percent: 0,
        failed_percent: 0,
    })
    .await;
    assert_eq!(script.repeat_failures, script.starts - 2, "{script:?}");
    assert!(
        script.scores[2..].iter().all(|(_, score)| *score >= 2.0),
        "{:?}",
        script.scores
    );
}
