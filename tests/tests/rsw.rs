//! The second puzzle kind end to end through the edge logic and the control plane: a Custom
//! preset that asks for RSW time-lock puzzles gets Cap's format 2, the answer redeems once and
//! verifies, and every wrong, mixed-up or oversized answer is refused with a code.

use axum::http::StatusCode;
use humanproof_control_plane::db::projects::ProjectSettings;
use humanproof_protocol::{Preset, Protection, PuzzleKind, rsw};
use humanproof_tests::*;
use serde_json::{Value, json};

fn rsw_project(name: &str, squarings: u32) -> ProjectSettings {
    ProjectSettings {
        preset: Preset::Custom(Protection {
            puzzle: PuzzleKind::Rsw,
            squarings,
            ..Protection::BALANCED
        }),
        ..quick_project(name)
    }
}

/// The puzzle in a start's answer, solved by squaring as a client would.
fn solve_puzzle(started: &Answer) -> String {
    assert_eq!(started.status, 200, "start: {:?}", started.json);
    let puzzle = &started.json["challenges"][0]["payload"];
    let t = puzzle["t"].as_u64().unwrap() as u32;
    rsw::solve(
        puzzle["N"].as_str().unwrap(),
        puzzle["x"].as_str().unwrap(),
        t,
    )
    .unwrap()
}

fn token_of(started: &Answer) -> &str {
    started.json["token"].as_str().unwrap()
}

on_both_databases! {
    async fn an_rsw_project_gets_format_2_and_its_answer_redeems_once_and_verifies(world: World) {
        let site = world.create_project(rsw_project("time-lock", 20_000)).await;
        let started = world.start_challenge(site.site_key(), &human_start()).await;
        assert_status(&started, StatusCode::OK);
        assert_eq!(started.json["format"], 2);
        assert!(started.json.get("challenge").is_none(), "{:?}", started.json);
        let challenges = started.json["challenges"].as_array().unwrap();
        assert_eq!(challenges.len(), 1);
        assert_eq!(challenges[0]["protocol"], "rsw");
        let payload = &challenges[0]["payload"];
        assert_eq!(payload["N"], test_rsw_key().modulus_hex());
        assert_eq!(payload["x"].as_str().unwrap().len(), rsw::MODULUS_HEX_LEN);
        // A person's clean start pays half the preset's squarings, as it pays half the count.
        assert_eq!(payload["t"], 10_000);
        assert_eq!(peek_challenge(&started)["rsw"], 10_000);

        let y = solve_puzzle(&started);
        // Cap's widget sends `y.toString(16)`: no leading zeros.
        let answer = json!([{ "y": y.trim_start_matches('0') }]);
        let redeemed = world.redeem(site.site_key(), token_of(&started), &answer).await;
        assert_status(&redeemed, StatusCode::OK);
        let replay = world.redeem(site.site_key(), token_of(&started), &answer).await;
        assert_eq!(replay.reason(), "already_redeemed");

        let token = redeemed.json["token"].as_str().unwrap();
        let verified = world.siteverify(&[("secret", &site.secret), ("response", token)]).await;
        assert_eq!(verified.json["success"], true, "{:#?}", verified.json);
        // The work done is the puzzle's squarings; SHA-256's count and difficulty are absent.
        assert_eq!(verified.json["humanproof"]["squarings"], 10_000);
        assert!(verified.json["humanproof"].get("challenge_count").is_none());
        assert!(verified.json["humanproof"].get("difficulty").is_none());
        assert_eq!(verified.json["humanproof"]["risk"]["decision"], "allow");
    }
}

#[tokio::test]
async fn every_wrong_answer_is_refused_with_a_code_and_spends_the_challenge() {
    let world = World::new(Backend::Sqlite).await;
    let site = world.create_project(rsw_project("wrong", 10_000)).await;
    let right = {
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        solve_puzzle(&started)
    };
    let wrong_answers: Vec<(&str, Value)> = vec![
        ("another challenge's answer", json!([{ "y": right }])),
        ("nonces for a puzzle", json!([1, 2, 3])),
        ("no answer", json!([])),
        ("two answers", json!([{ "y": "1" }, { "y": "2" }])),
        ("not hex", json!([{ "y": "xyz" }])),
        ("longer than the modulus", json!([{ "y": "f".repeat(513) }])),
        ("a number", json!([{ "y": 5 }])),
    ];
    for (what, answer) in wrong_answers {
        let started = world.start_challenge(site.site_key(), &json!({})).await;
        let redeemed = world
            .redeem(site.site_key(), token_of(&started), &answer)
            .await;
        assert!(
            (400..500).contains(&redeemed.status),
            "{what}: {}",
            redeemed.status
        );
        let reason = redeemed.reason();
        assert!(
            reason == "invalid_solution" || reason == "bad_request",
            "{what}: {reason}"
        );
        // Whatever was sent, the challenge is spent: the right answer no longer redeems.
        if reason == "invalid_solution" {
            let y = solve_puzzle(&started);
            let again = world
                .redeem(site.site_key(), token_of(&started), &json!([{ "y": y }]))
                .await;
            assert_eq!(again.reason(), "already_redeemed", "{what}");
        }
    }
}

#[tokio::test]
async fn answers_do_not_cross_kinds() {
    let world = World::new(Backend::Sqlite).await;
    let sha = world.create_project(quick_project("sha")).await;
    let started = world.start_challenge(sha.site_key(), &json!({})).await;
    assert!(started.json.get("format").is_none());
    let redeemed = world
        .redeem(sha.site_key(), token_of(&started), &json!([{ "y": "1" }]))
        .await;
    assert_eq!(redeemed.reason(), "invalid_solution");
}
