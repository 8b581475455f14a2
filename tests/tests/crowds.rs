//! The start-rate limits and the repeat rules hold a crowd behind one address apart from a
//! flood or a failing script (the simulation behind the README's table:
//! `humanproof_tests::crowds`).

use humanproof_protocol::Preset;
use humanproof_tests::crowds::{Scenario, simulate};

#[tokio::test]
async fn a_crowd_at_the_documented_rate_is_never_refused() {
    // The README's promise: 2 starts a second from one address on Balanced, enforce mode.
    let outcome = simulate(Scenario::crowd(Preset::Balanced, 2.0, 0)).await;
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
    assert_eq!(
        simulate(Scenario::crowd(Preset::Relaxed, 5.0, 0))
            .await
            .refused,
        0
    );
}

#[tokio::test]
async fn a_flood_is_refused_with_retry_after_and_pays_for_what_it_got() {
    for per_second in [20.0, 100.0] {
        let outcome = simulate(Scenario::flood(Preset::Balanced, per_second, 60_000)).await;
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
    let people = simulate(Scenario::crowd(Preset::Balanced, 2.0, 5)).await;
    assert!(
        people.percent(people.repeat_failures) < 1.0,
        "{} of {} starts scored repeat_failures",
        people.repeat_failures,
        people.starts
    );
    // ...while a script failing every redeem scores it from its third start, and keeps it.
    let script = simulate(Scenario::slow_failing_script()).await;
    assert_eq!(script.repeat_failures, script.starts - 2, "{script:?}");
    assert!(
        script.scores[2..].iter().all(|(_, score)| *score >= 2.0),
        "{:?}",
        script.scores
    );
}
