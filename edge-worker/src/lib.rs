//! The HumanProof edge: issues proof-of-work challenges and redeems solutions, close to
//! users, without ever calling the origin on the request path.
//!
//! The logic is plain Rust, generic over four small stores, so the same code runs in the
//! Cloudflare Worker (wasm32), in the local all-in-one server, and in native tests.
//!
//! Layout:
//! - [`stores`]: the traits the logic needs: snapshot lookup, single-use claims, visitor
//!   abuse state, telemetry.
//! - [`delivery`]: how telemetry outlasts a long control-plane outage: a spill queue when
//!   the queue refuses an event, and retries that back off to an hour.
//! - [`edge`]: routing, gates, challenge issuing and redeeming ([`Edge::handle`]).
//! - [`risk`]: scores a challenge start from the widget's signals, the request's headers and
//!   the visitor's history, and scales the work with the score.
//! - [`time_locks`]: the operator's RSW key and the puzzle sizes precomputed under it.
//! - [`instrumentation`]: the per-challenge environment check the widget runs in a worker.
//! - [`visitor`]: the short-lived per-visitor state behind rate limits and repeat offences.
//! - [`memory`]: in-process stores for the local server and tests (native only).
//! - `cloudflare` (wasm32 only): the `#[event]` entry points and the KV, Durable Object and
//!   Queue bindings behind the store traits.

#![deny(missing_docs)]

pub mod delivery;
pub mod edge;
pub mod instrumentation;
#[cfg(not(target_arch = "wasm32"))]
pub mod memory;
pub mod risk;
pub mod stores;
pub mod time_locks;
pub mod visitor;

#[cfg(target_arch = "wasm32")]
mod cloudflare;

pub use edge::{Edge, EdgeConfig, EdgeRequest, EdgeResponse, RequestBody};
pub use stores::{ClaimStore, SnapshotStore, StoreError, TelemetrySink, VisitorStore};
