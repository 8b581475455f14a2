//! HTTP handlers, one file per resource. Handlers extract, validate, call the database
//! layer and shape the answer; the rules live in `db` and `humanproof_protocol`.

pub mod api;
pub mod health;
pub mod siteverify;
pub mod telemetry;
