//! RSW time-lock puzzles: the second puzzle kind, in Cap's format 2.
//!
//! The client gets a 2048-bit modulus `N`, a base `x` and a count `t`, and must return
//! `y = x^(2^t) mod N`. Without `N`'s factors the only known way is `t` squarings one after
//! the other, so a GPU's thousands of cores do not make one answer come sooner, and a browser's
//! JavaScript `BigInt` costs about what native code does (README: the measured ratios).
//!
//! The issuer knows the factors `p` and `q`, and pays little:
//! - once per `t`, `h = g^(2^t) mod N` for a fixed base `g`, through the factors
//!   (`2^t` reduced mod `p - 1` and `q - 1`);
//! - per challenge, a secret 128-bit scalar `r`; the client gets `x = g^r` and the answer is
//!   `y = h^r`, each two 128-bit powers modulo the 1024-bit factors, of fixed bases whose
//!   powers are tabled (`FixedBase`): 32 multiplications each.
//!
//! Finding `r` from `x` is a discrete logarithm modulo `N`: with a 128-bit `r`, generic
//! methods need about 2^64 multiplications, far more than the `t` squarings it would save.
//! The edge derives `r` from the project key and the challenge id, so the challenge token
//! carries nothing secret and the redeem recomputes the answer (see `TimeLock`).

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{NonZero, Odd, U1024, U2048};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Bits of the modulus, as in Cap's format 2.
pub const MODULUS_BITS: u32 = 2048;
/// Hex digits of the modulus, of `x` and of the longest answer.
pub const MODULUS_HEX_LEN: usize = (MODULUS_BITS / 4) as usize;
/// Bits of the secret per-challenge scalar `r`.
pub const SCALAR_BITS: u32 = 128;
/// Squarings a Custom preset may ask for: below 10,000 a script answers in milliseconds;
/// above 5,000,000 a phone takes a minute.
pub const SQUARINGS_RANGE: RangeInclusive<u32> = 10_000..=5_000_000;

const FACTOR_LIMBS: usize = U1024::LIMBS;
type Factor = MontyForm<FACTOR_LIMBS>;

/// The issuer's RSW key: the two 1024-bit primes whose product is the public modulus.
/// Cheap to clone: the puzzle sizes made from it share it.
#[derive(Clone)]
pub struct RswKey(Arc<KeyParts>);

struct KeyParts {
    p: Odd<U1024>,
    q: Odd<U1024>,
    modulus: U2048,
    p_params: MontyParams<FACTOR_LIMBS>,
    /// q⁻¹ mod p, for the Chinese remainder step.
    q_inv: Factor,
    /// The fixed base `g`, modulo each factor.
    g_p: FixedBase,
    g_q: FixedBase,
}

/// Bits of the scalar taken at a time.
const WINDOW_BITS: usize = 4;
const WINDOWS: usize = SCALAR_BITS as usize / WINDOW_BITS;

/// `base^(j·16^i)` modulo one factor, for each 4-bit window `i` of a 128-bit scalar and each
/// digit `j`: a power of `base` is then 32 multiplications (a square-and-multiply takes
/// about 160). 512 entries kept as bare Montgomery integers beside one copy of the factor's
/// parameters: 64 KiB.
struct FixedBase {
    base: Factor,
    table: Vec<[U1024; 1 << WINDOW_BITS]>,
}

impl FixedBase {
    fn new(base: Factor) -> Self {
        let mut table = Vec::with_capacity(WINDOWS);
        // base^(16^i), for the window being filled in.
        let mut unit = base;
        for _ in 0..WINDOWS {
            let mut power = Factor::one(*base.params());
            let mut row = [*power.as_montgomery(); 1 << WINDOW_BITS];
            for entry in row.iter_mut().skip(1) {
                power *= unit;
                *entry = *power.as_montgomery();
            }
            unit = power * unit;
            table.push(row);
        }
        Self { base, table }
    }

    /// `base^r`. Each window's entry is selected by reading the whole row, so which entry
    /// was used (the secret digit) leaves no trace in the memory accesses.
    fn pow(&self, r: &Scalar) -> Factor {
        let params = *self.base.params();
        let mut result = Factor::one(params);
        for (window, row) in self.table.iter().enumerate() {
            let byte = r[r.len() - 1 - window / 2];
            let digit = if window % 2 == 0 {
                byte & 0x0f
            } else {
                byte >> 4
            };
            let mut entry = row[0];
            for (candidate, value) in row.iter().zip(0u8..).skip(1) {
                entry.conditional_assign(candidate, value.ct_eq(&digit));
            }
            result *= Factor::from_montgomery(entry, params);
        }
        result
    }
}

impl fmt::Debug for RswKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RswKey(..)")
    }
}

/// Why an RSW key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RswKeyError {
    /// Not `<p hex>:<q hex>` with two 1024-bit numbers.
    #[error("an RSW key is two 256-digit hex primes joined by ':' (humanproof rsw-key makes one)")]
    Malformed,
    /// The numbers are not two distinct odd 1024-bit numbers, or (checked by
    /// [`RswKey::parse`] only) not probable primes.
    #[error("the RSW key's factors are not two distinct 1024-bit primes")]
    NotPrimes,
}

impl RswKey {
    /// Parses `<p hex>:<q hex>` and checks that both are distinct 1024-bit primes.
    pub fn parse(text: &str) -> Result<Self, RswKeyError> {
        let (p, q) = parse_factors(text)?;
        if !is_probable_prime(&p) || !is_probable_prime(&q) {
            return Err(RswKeyError::NotPrimes);
        }
        Ok(Self::from_primes(p, q))
    }

    /// The same without the primality checks (16 full-size powers, tens of milliseconds of
    /// wasm): for the edge, which takes the key from the operator's secret as
    /// `humanproof rsw-key` printed it. Composite factors would only make every answer wrong.
    pub fn parse_unchecked(text: &str) -> Result<Self, RswKeyError> {
        let (p, q) = parse_factors(text)?;
        Ok(Self::from_primes(p, q))
    }

    /// Whether [`RswKey::parse_unchecked`] would take `text`, without building the key (a few
    /// milliseconds of wasm): microseconds, for checking a secret when it is first seen.
    pub fn check_unchecked(text: &str) -> Result<(), RswKeyError> {
        parse_factors(text).map(|_| ())
    }

    /// A new key from the operating system's randomness. Takes about a second natively.
    pub fn generate() -> Self {
        let p = random_prime();
        let mut q = random_prime();
        while q == p {
            q = random_prime();
        }
        Self::from_primes(p, q)
    }

    fn from_primes(p: U1024, q: U1024) -> Self {
        let p = Odd::new(p).expect("a prime above 2 is odd");
        let q = Odd::new(q).expect("a prime above 2 is odd");
        let modulus: U2048 = p.widening_mul(&q);
        let p_params = MontyParams::new_vartime(p);
        let q_params = MontyParams::new_vartime(q);
        let q_inv = Factor::new(&q, p_params).inv().unwrap(); // distinct primes are coprime
        // `g` comes from hashing the modulus: fixed by the key, with no structure to exploit.
        let mut g_bytes = [0u8; 256];
        for (i, chunk) in g_bytes.chunks_mut(32).enumerate() {
            let block = Sha256::new()
                .chain_update(b"humanproof/rsw/g/v1")
                .chain_update([i as u8])
                .chain_update(modulus.to_be_bytes())
                .finalize();
            chunk.copy_from_slice(&block);
        }
        let g = U2048::from_be_slice(&g_bytes);
        Self(Arc::new(KeyParts {
            g_p: FixedBase::new(Factor::new(&reduce(&g, &p), p_params)),
            g_q: FixedBase::new(Factor::new(&reduce(&g, &q), q_params)),
            p,
            q,
            modulus,
            p_params,
            q_inv,
        }))
    }

    /// `<p hex>:<q hex>`, what [`RswKey::parse`] reads: a secret.
    pub fn to_secret_string(&self) -> String {
        format!(
            "{}:{}",
            hex::encode(self.0.p.to_be_bytes()),
            hex::encode(self.0.q.to_be_bytes())
        )
    }

    /// The public modulus as Cap's format 2 sends it: 512 lowercase hex digits.
    pub fn modulus_hex(&self) -> String {
        hex::encode(self.0.modulus.to_be_bytes())
    }

    /// The precomputation for puzzles of `t` squarings: two 1024-bit exponentiations and the
    /// tables of `h`, a few milliseconds. Callers keep it for as long as they issue puzzles of
    /// that size.
    pub fn time_lock(&self, t: u32) -> TimeLock {
        let key = &self.0;
        let h = |g: &FixedBase, prime: &Odd<U1024>| {
            let order = NonZero::new(prime.wrapping_sub(&U1024::ONE)).expect("p - 1 > 0");
            FixedBase::new(g.base.pow(&pow_mod(&U1024::from_u8(2), t, &order)))
        };
        TimeLock {
            key: self.clone(),
            t,
            h_p: h(&key.g_p, &key.p),
            h_q: h(&key.g_q, &key.q),
        }
    }

    /// The integer below `N` whose residues are `a` mod p and `b` mod q.
    fn combine(&self, a: &Factor, b: &Factor) -> U2048 {
        let key = &self.0;
        let b_int = b.retrieve();
        let b_mod_p = Factor::new(&b_int, key.p_params);
        let s = ((*a - b_mod_p) * key.q_inv).retrieve();
        let q_s: U2048 = key.q.widening_mul(&s);
        q_s.wrapping_add(&b_int.resize())
    }
}

/// Puzzles of one size `t` under one key.
pub struct TimeLock {
    key: RswKey,
    t: u32,
    /// `h = g^(2^t)`, modulo each factor.
    h_p: FixedBase,
    h_q: FixedBase,
}

impl fmt::Debug for TimeLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeLock(t = {})", self.t)
    }
}

/// A challenge's secret scalar `r`: 128 bits, derived from the project key and challenge id.
pub type Scalar = [u8; 16];

impl TimeLock {
    /// Squarings this puzzle asks for.
    pub fn squarings(&self) -> u32 {
        self.t
    }

    /// The public modulus, as puzzles carry it.
    pub fn modulus_hex(&self) -> String {
        self.key.modulus_hex()
    }

    /// The base the client squares, `x = g^r mod N`, as 512 lowercase hex digits.
    pub fn challenge(&self, r: &Scalar) -> String {
        let x = self.power(&self.key.0.g_p, &self.key.0.g_q, r);
        hex::encode(x.to_be_bytes())
    }

    /// Whether `claimed` (hex, any case, leading zeros optional, as Cap's widget sends
    /// `y.toString(16)`) is `x^(2^t) mod N`. Compared in constant time.
    pub fn is_answer(&self, r: &Scalar, claimed: &str) -> bool {
        let Some(claimed) = parse_residue(claimed) else {
            return false;
        };
        let expected = self.power(&self.h_p, &self.h_q, r);
        bool::from(expected.ct_eq(&claimed))
    }

    /// The answer itself, for test vectors and reference clients.
    pub fn answer(&self, r: &Scalar) -> String {
        hex::encode(self.power(&self.h_p, &self.h_q, r).to_be_bytes())
    }

    fn power(&self, base_p: &FixedBase, base_q: &FixedBase, r: &Scalar) -> U2048 {
        self.key.combine(&base_p.pow(r), &base_q.pow(r))
    }
}

/// The reference solver: `t` squarings of `x` modulo `n`, both hex. For test vectors and
/// benchmarks; the widget solves with JavaScript's `BigInt`.
pub fn solve(n_hex: &str, x_hex: &str, t: u32) -> Option<String> {
    let n = Odd::new(parse_residue(n_hex)?).into_option()?;
    let mut y = MontyForm::new(&parse_residue(x_hex)?, MontyParams::new_vartime(n));
    for _ in 0..t {
        y = y.square();
    }
    Some(hex::encode(y.retrieve().to_be_bytes()))
}

/// The two factors of `<p hex>:<q hex>`: distinct, odd, each of exactly 1024 bits.
fn parse_factors(text: &str) -> Result<(U1024, U1024), RswKeyError> {
    let (p, q) = text.trim().split_once(':').ok_or(RswKeyError::Malformed)?;
    let factor = |hex: &str| -> Result<U1024, RswKeyError> {
        let bytes = hex::decode(hex).map_err(|_| RswKeyError::Malformed)?;
        let bytes: [u8; 128] = bytes.try_into().map_err(|_| RswKeyError::Malformed)?;
        Ok(U1024::from_be_slice(&bytes))
    };
    let (p, q) = (factor(p)?, factor(q)?);
    let shaped = |n: &U1024| n.bits() == MODULUS_BITS / 2 && n.as_words()[0] & 1 == 1;
    if p == q || !shaped(&p) || !shaped(&q) {
        return Err(RswKeyError::NotPrimes);
    }
    Ok((p, q))
}

/// 1 to 512 hex digits as a number below 2^2048.
fn parse_residue(hex_digits: &str) -> Option<U2048> {
    let digits = hex_digits.as_bytes();
    if digits.is_empty() || digits.len() > MODULUS_HEX_LEN {
        return None;
    }
    let mut padded = [b'0'; MODULUS_HEX_LEN];
    padded[MODULUS_HEX_LEN - digits.len()..].copy_from_slice(digits);
    let mut bytes = [0u8; MODULUS_HEX_LEN / 2];
    hex::decode_to_slice(padded, &mut bytes).ok()?;
    Some(U2048::from_be_slice(&bytes))
}

fn reduce(value: &U2048, modulus: &Odd<U1024>) -> U1024 {
    let wide: U2048 = modulus.resize();
    value
        .rem_vartime(&NonZero::new(wide).expect("a prime is not zero"))
        .resize()
}

/// `base^exponent mod modulus` for an even modulus (`p - 1`), where Montgomery form does not
/// apply; `exponent` is the public `t`, so square-and-multiply may branch on it.
fn pow_mod(base: &U1024, exponent: u32, modulus: &NonZero<U1024>) -> U1024 {
    let mut result = U1024::ONE;
    for bit in (0..u32::BITS - exponent.leading_zeros()).rev() {
        result = result.mul_mod_vartime(&result, modulus);
        if exponent >> bit & 1 == 1 {
            result = result.mul_mod_vartime(base, modulus);
        }
    }
    result
}

/// Small primes for trial division before the Miller–Rabin rounds.
const SMALL_PRIMES: [u32; 24] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
];
/// Miller–Rabin rounds with random bases: for random 1024-bit candidates the chance of a
/// composite passing is far below 2^-80 (Damgård, Landrock and Pomerance); for a composite
/// chosen on purpose, at most 4^-8.
const MILLER_RABIN_ROUNDS: usize = 8;

fn random_prime() -> U1024 {
    loop {
        let mut bytes = [0u8; 128];
        getrandom::fill(&mut bytes).expect("the operating system has randomness");
        // Top two bits set so that p·q has exactly 2048 bits; odd.
        bytes[0] |= 0xc0;
        bytes[127] |= 1;
        let candidate = U1024::from_be_slice(&bytes);
        if is_probable_prime(&candidate) {
            return candidate;
        }
    }
}

fn is_probable_prime(n: &U1024) -> bool {
    let Some(odd) = Odd::new(*n).into_option() else {
        return false;
    };
    for small in SMALL_PRIMES {
        let divisor = NonZero::new(crypto_bigint::Limb::from(small)).expect("not zero");
        if n.rem_limb(divisor).0 == 0 {
            return *n == U1024::from_u32(small);
        }
    }
    let minus_one = n.wrapping_sub(&U1024::ONE);
    let twos = minus_one.trailing_zeros();
    let d = minus_one.shr_vartime(twos);
    let params = MontyParams::new_vartime(odd);
    let one = Factor::one(params);
    let minus_one_m = Factor::new(&minus_one, params);
    'rounds: for _ in 0..MILLER_RABIN_ROUNDS {
        let mut bytes = [0u8; 128];
        getrandom::fill(&mut bytes).expect("the operating system has randomness");
        let base = Factor::new(&U1024::from_be_slice(&bytes), params);
        let mut x = base.pow(&d);
        if x == one || x == minus_one_m {
            continue;
        }
        for _ in 1..twos {
            x = x.square();
            if x == minus_one_m {
                continue 'rounds;
            }
        }
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors the widget's JavaScript solver and the edge share
    /// (`tests/vectors/rsw.json`), from a test-only key that protects nothing.
    const VECTORS: &str = include_str!("../../tests/vectors/rsw.json");

    fn vectors() -> serde_json::Value {
        serde_json::from_str(VECTORS).unwrap()
    }

    fn test_key() -> RswKey {
        RswKey::parse(vectors()["key"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn the_issuer_and_the_squaring_solver_agree_on_the_shared_vectors() {
        let vectors = vectors();
        let key = test_key();
        assert_eq!(key.modulus_hex(), vectors["N"].as_str().unwrap());
        for case in vectors["cases"].as_array().unwrap() {
            let t = case["t"].as_u64().unwrap() as u32;
            let r: Scalar = hex::decode(case["r"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let lock = key.time_lock(t);
            let x = lock.challenge(&r);
            let y = case["y"].as_str().unwrap();
            assert_eq!(x, case["x"].as_str().unwrap(), "x for t={t}");
            assert_eq!(lock.answer(&r), y, "y for t={t}");
            assert_eq!(solve(&key.modulus_hex(), &x, t).unwrap(), y);
            assert!(lock.is_answer(&r, y));
        }
    }

    #[test]
    fn answers_are_read_as_numbers_in_any_case_and_padding_but_nothing_else() {
        let key = test_key();
        let lock = key.time_lock(1_000);
        let r = [7u8; 16];
        let y = lock.answer(&r);
        let unpadded = y.trim_start_matches('0');
        assert!(lock.is_answer(&r, unpadded));
        assert!(lock.is_answer(&r, &y.to_uppercase()));
        for wrong in [
            "",
            "0x1",
            &format!("0{y}"),
            &format!("{y} "),
            "zz",
            &lock.answer(&[8u8; 16]),
            &hex::encode((parse_residue(&y).unwrap().wrapping_add(&key.0.modulus)).to_be_bytes()),
        ] {
            assert!(!lock.is_answer(&r, wrong), "{wrong:?} passed");
        }
    }

    #[test]
    fn keys_round_trip_and_refuse_what_is_not_two_primes() {
        let key = test_key();
        let again = RswKey::parse(&key.to_secret_string()).unwrap();
        assert_eq!(again.modulus_hex(), key.modulus_hex());
        let (p, q) = key
            .to_secret_string()
            .split_once(':')
            .map(|(p, q)| (p.to_owned(), q.to_owned()))
            .unwrap();
        assert_eq!(
            RswKey::parse("nonsense").unwrap_err(),
            RswKeyError::Malformed
        );
        assert_eq!(
            RswKey::parse(&format!("{p}:{}", &q[2..])).unwrap_err(),
            RswKeyError::Malformed
        );
        assert_eq!(
            RswKey::parse(&format!("{p}:{p}")).unwrap_err(),
            RswKeyError::NotPrimes
        );
        let mut composite = hex::decode(&q).unwrap();
        composite[127] = composite[127].wrapping_add(2);
        let composite = format!("{p}:{}", hex::encode(composite));
        assert_eq!(
            RswKey::parse(&composite).unwrap_err(),
            RswKeyError::NotPrimes
        );
        // The edge's cheap check takes what parse_unchecked takes: the shape, not primality.
        assert_eq!(RswKey::check_unchecked(&key.to_secret_string()), Ok(()));
        assert_eq!(RswKey::check_unchecked(&composite), Ok(()));
        assert_eq!(
            RswKey::check_unchecked(&format!("{p}:{p}")),
            Err(RswKeyError::NotPrimes)
        );
        assert_eq!(
            RswKey::check_unchecked("nonsense"),
            Err(RswKeyError::Malformed)
        );
    }

    #[test]
    fn generated_keys_have_2048_bit_moduli() {
        let key = RswKey::generate();
        assert_eq!(key.0.modulus.bits(), MODULUS_BITS);
        let again = RswKey::parse(&key.to_secret_string()).unwrap();
        assert_eq!(again.modulus_hex(), key.modulus_hex());
    }
}
