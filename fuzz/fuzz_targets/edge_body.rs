//! Arbitrary bytes as the body of a browser's challenge start and of its redeem, through the
//! edge's own request handling (routing, gates, JSON parsing, risk, token checks, the proof
//! of work and the single-use claim), with the in-memory stores of the local server.

#![no_main]

use humanproof_fuzz::{ORIGIN, SITE_KEY, check, edge, post, site};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let edge = edge(site());
    for endpoint in ["challenge", "redeem"] {
        check(&post(
            &edge,
            &format!("/{SITE_KEY}/{endpoint}"),
            ORIGIN,
            body,
        ));
    }
});
