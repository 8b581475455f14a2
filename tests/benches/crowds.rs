//! Prints what one IP address may do under each preset's start-rate limits and risk rules:
//! a crowd of people behind it, a flood from one script, and a slow script that keeps
//! failing (see `humanproof_tests::crowds`). These tables justify the defaults in the README.
//!
//! Run with `cargo bench -p humanproof-tests --bench crowds`.

use humanproof_protocol::Preset;
use humanproof_tests::crowds::{Scenario, TEN_MINUTES, simulate};
const PRESETS: [Preset; 3] = [Preset::Relaxed, Preset::Balanced, Preset::Strict];

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(tables());
}

fn name(preset: Preset) -> &'static str {
    match preset {
        Preset::Relaxed => "Relaxed",
        Preset::Balanced => "Balanced",
        Preset::Strict => "Strict",
        Preset::Custom(_) => "Custom",
    }
}

async fn tables() {
    println!(
        "One IP address for 10 simulated minutes against the edge logic (enforce mode for crowds):"
    );
    println!();
    println!(
        "| preset (hard limit / 2 min, burst) | traffic | refused | blocked | scored \"challenge\" | priced (`high_request_rate`) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for preset in PRESETS {
        let limits = preset.protection().start_limits();
        for per_second in [1.0, 2.0, 5.0] {
            let outcome = simulate(Scenario::crowd(preset, per_second, 0)).await;
            println!(
                "| {} ({}, {}) | crowd, {per_second} starts/s, 3 % abandoned ({} starts) | {:.1} % | {:.1} % | {:.1} % | {:.1} % |",
                name(preset),
                limits.hard.per_window,
                limits.hard.burst,
                outcome.starts,
                outcome.percent(outcome.refused),
                outcome.percent(outcome.blocked),
                outcome.percent(outcome.challenged),
                outcome.percent(outcome.priced),
            );
        }
    }
    println!();
    println!(
        "A flood from one script (observe mode, so only the rate limit stops it; every challenge solved):"
    );
    println!();
    println!(
        "| preset | starts/s | starts | refused | Retry-After on each | work given before the first refusal | work given in all |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for preset in PRESETS {
        for per_second in [20.0, 100.0] {
            let outcome = simulate(Scenario::flood(preset, per_second, TEN_MINUTES)).await;
            println!(
                "| {} | {per_second} | {} | {:.1} % | {} | {:.2e} hashes | {:.2e} hashes |",
                name(preset),
                outcome.starts,
                outcome.percent(outcome.refused),
                if outcome.retry_after_always {
                    "yes"
                } else {
                    "no"
                },
                outcome.work_before_first_refusal,
                outcome.work_hashes,
            );
        }
    }
    println!();
    println!(
        "A slow script (a person's signals and headers made up, every redeem wrong), one start every 5 s, Balanced, observe mode:"
    );
    println!();
    let outcome = simulate(Scenario::slow_failing_script()).await;
    println!("| after | score |");
    println!("| --- | --- |");
    for second in [0, 10, 20, 30, 60, 120, 300, 590] {
        let score = outcome
            .scores
            .iter()
            .take_while(|(at, _)| *at <= second * 1000 + 5000)
            .last()
            .map_or(0.0, |(_, score)| *score);
        println!("| {second} s | {score:.1} |");
    }
}
