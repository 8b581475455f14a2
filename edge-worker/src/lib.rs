//! The HumanProof edge: issues proof-of-work challenges and redeems solutions, close to
//! users, without ever calling the origin on the request path.
//!
//! The logic is plain Rust, generic over three small stores, so the same code runs in the
//! Cloudflare Worker (wasm32), in the local all-in-one server, and in native tests.
//!
//! Layout:
//! - [`stores`]: the traits the logic needs: snapshot lookup, single-use claims, telemetry.
//! - [`edge`]: routing, gates, challenge issuing and redeeming ([`Edge::handle`]).
//! - [`memory`]: in-process stores for the local server and tests (native only).
//! - `cloudflare` (wasm32 only): the `#[event]` entry points and the KV, Durable Object and
//!   Queue bindings behind the store traits.

#![deny(missing_docs)]

pub mod edge;
#[cfg(not(target_arch = "wasm32"))]
pub mod memory;
pub mod stores;

#[cfg(target_arch = "wasm32")]
mod cloudflare;

pub use edge::{Edge, EdgeConfig, EdgeRequest, EdgeResponse, RequestBody};
pub use stores::{ClaimStore, SnapshotStore, StoreError, TelemetrySink};
