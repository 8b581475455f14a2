//! The two candidate kinds of work, as the widget's worker and a native attacker would run
//! them. Each returns a little of its result so that nothing is optimised away.

use argon2::{Algorithm, Argon2, Params, Version};
use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{NonZero, Odd, U1024, U2048};
#[cfg(feature = "edge")]
use humanproof_protocol::rsw::{RswKey, TimeLock};

/// One Argon2id hash with `m_kib` KiB of memory, `t` passes and one lane.
pub fn argon2id(m_kib: u32, t: u32, seed: u32) -> u8 {
    let params = Params::new(m_kib, t, 1, Some(32)).expect("valid Argon2 parameters");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(
            b"humanproof-challenge",
            &seed.to_le_bytes().repeat(4),
            &mut out,
        )
        .expect("Argon2 runs");
    out[0]
}

/// The solver's side of RSW: x^(2^t) mod n by t Montgomery squarings (2048-bit).
pub fn rsw(n_hex: &str, x_hex: &str, t: u32) -> u32 {
    let n = Odd::new(U2048::from_be_hex(n_hex)).expect("odd modulus");
    let mut y = MontyForm::new(&U2048::from_be_hex(x_hex), MontyParams::new_vartime(n));
    for _ in 0..t {
        y = y.square();
    }
    y.retrieve().as_words()[0] as u32
}

/// The issuer's side of RSW, who knows n's factors: x^(2^t mod (p-1)) mod p and the same
/// for q (`ep`, `eq`), two 1024-bit exponentiations.
pub fn rsw_issuer(p_hex: &str, q_hex: &str, x_hex: &str, ep_hex: &str, eq_hex: &str) -> u32 {
    let x = U2048::from_be_hex(x_hex);
    let mut low = 0;
    for (m_hex, e_hex) in [(p_hex, ep_hex), (q_hex, eq_hex)] {
        let m = U1024::from_be_hex(m_hex);
        let wide: U2048 = m.resize();
        let reduced: U1024 = x.rem_vartime(&NonZero::new(wide).expect("prime")).resize();
        let params = MontyParams::new_vartime(Odd::new(m).expect("odd prime"));
        let y = MontyForm::new(&reduced, params).pow(&U1024::from_be_hex(e_hex));
        low ^= y.retrieve().as_words()[0] as u32;
    }
    low
}

#[cfg(feature = "edge")]
thread_local! {
    /// The edge's key and one puzzle size, kept between calls as the edge keeps them.
    static EDGE: std::cell::RefCell<Option<(String, u32, RswKey, TimeLock)>> =
        const { std::cell::RefCell::new(None) };
}

/// One step of RSW as the edge runs it (`humanproof_protocol::rsw`), under the key
/// `<p hex>:<q hex>` and puzzles of `t` squarings: `size` precomputes a puzzle size, `start`
/// issues one puzzle (x = g^r), `redeem` checks one answer (against h^r).
#[cfg(feature = "edge")]
pub fn rsw_edge(step: &str, key: &str, t: u32, seed: u32) -> u32 {
    EDGE.with_borrow_mut(|kept| {
        if !kept
            .as_ref()
            .is_some_and(|(text, size, ..)| text == key && *size == t)
        {
            let parsed = RswKey::parse(key).expect("an RSW key");
            let lock = parsed.time_lock(t);
            *kept = Some((key.to_owned(), t, parsed, lock));
        }
        let (_, _, parsed, lock) = kept.as_ref().expect("kept above");
        let r = [seed as u8; 16];
        match step {
            "size" => u32::from(parsed.time_lock(t).squarings() == t),
            "start" => lock.challenge(&r).len() as u32,
            "redeem" => u32::from(lock.is_answer(&r, "1")),
            other => panic!("unknown step {other}"),
        }
    })
}

#[cfg(target_arch = "wasm32")]
mod web {
    use wasm_bindgen::prelude::wasm_bindgen;

    #[wasm_bindgen]
    pub fn argon2id(m_kib: u32, t: u32, seed: u32) -> u8 {
        super::argon2id(m_kib, t, seed)
    }

    #[wasm_bindgen]
    pub fn rsw(n: &str, x: &str, t: u32) -> u32 {
        super::rsw(n, x, t)
    }

    #[cfg(feature = "edge")]
    #[wasm_bindgen]
    pub fn rsw_edge(step: &str, key: &str, t: u32, seed: u32) -> u32 {
        super::rsw_edge(step, key, t, seed)
    }

    #[wasm_bindgen]
    pub fn rsw_issuer(p: &str, q: &str, x: &str, ep: &str, eq: &str) -> u32 {
        super::rsw_issuer(p, q, x, ep, eq)
    }
}
