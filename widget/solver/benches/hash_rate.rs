//! Native hash rates on this machine: the `sha2` crate one nonce at a time (formatting the
//! nonce, as a naive solver does) versus this solver's lane kernel. Figures only.
//!
//! Run with `cargo bench -p humanproof-solver`. The browser figures come from
//! `widget/bench/` (hashes per second per worker in Chromium, and solve times).

use std::time::{Duration, Instant};

use humanproof_solver::Plan;
use sha2::{Digest, Sha256};

const SALT: &str = "0123456789abcdef0123456789abcdef";

fn main() {
    let budget = Duration::from_secs(2);

    let started = Instant::now();
    let mut hashed = 0u64;
    let mut sink = 0u8;
    while started.elapsed() < budget {
        for n in hashed..hashed + 10_000 {
            let digest = Sha256::digest(format!("{SALT}{n}").as_bytes());
            sink ^= digest[0];
        }
        hashed += 10_000;
    }
    let scalar = hashed as f64 / started.elapsed().as_secs_f64();
    println!(
        "native scalar sha2 (format + hash per nonce): {:>6.2} MH/s (checksum {sink})",
        scalar / 1e6
    );

    // A target that never matches makes the search hash every nonce it is given.
    let plan = Plan::new(SALT.as_bytes(), "ffffffff");
    let started = Instant::now();
    let mut hashed = 0u64;
    while started.elapsed() < budget {
        assert_eq!(plan.search(hashed, 1 << 20), None);
        hashed += 1 << 20;
    }
    let lanes = hashed as f64 / started.elapsed().as_secs_f64();
    println!(
        "native solver kernel ({} lanes, portable):     {:>6.2} MH/s",
        humanproof_solver::LANES,
        lanes / 1e6
    );
}
