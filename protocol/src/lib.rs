//! The HumanProof protocol: everything the edge worker and the control plane must agree on.
//!
//! Nothing here does I/O, so both sides (and the wasm edge bundle) link the same code and
//! can never drift apart on a wire format or a check.
//!
//! Layout, in the order a request meets it:
//! - [`prng`]: Cap's deterministic FNV-1a + xorshift32 generator that expands a challenge token
//!   into per-sub-challenge salts and targets.
//! - [`pow`]: the challenge parameters, the proof-of-work check and a reference solver.
//! - [`rsw`]: the second puzzle kind, RSW time-lock puzzles in Cap's format 2.
//! - [`preset`]: protection presets: work, rate limit, obfuscation and block threshold.
//! - [`token`]: HMAC-signed, stateless challenge and verification tokens and the per-project
//!   key derivation from the operator's master secret.
//! - [`risk`]: reason codes, decisions and the assessment that rides in tokens and telemetry.
//! - [`snapshot`]: the per-site-key record the control plane publishes to KV and the edge
//!   decides from.
//! - [`telemetry`]: events the edge emits, the batch format, and the signature that
//!   authenticates a batch to the control plane.
//! - [`privacy`]: salted hashing of IPs and user agents.
//! - [`siteverify`]: the form or JSON body of a site backend's siteverify call.
//! - [`wire`]: request/response bodies and the stable machine-readable refusal codes.

#![deny(missing_docs)]

pub mod pow;
pub mod preset;
pub mod privacy;
pub mod prng;
pub mod risk;
pub mod rsw;
pub mod siteverify;
pub mod snapshot;
pub mod telemetry;
pub mod token;
pub mod wire;

pub use pow::ChallengeParams;
pub use preset::{Obfuscation, Preset, Protection, PuzzleKind, Score};
pub use risk::{Decision, RiskAssessment, RiskReason};
pub use snapshot::SiteSnapshot;
pub use telemetry::{Network, TelemetryBatch, TelemetryEvent, TelemetryKind};
pub use token::{ChallengeClaims, MasterSecret, ProjectKey, TokenError, VerificationClaims};
pub use wire::Reason;
