//! The JSON endpoints, one file per audience: site backends (siteverify), the edge's
//! telemetry consumer, Stripe's webhooks, customers' automation (`/api/v1`) and operators'
//! health checks and metrics. Handlers extract and check the request, call [`crate::service`], and shape
//! the answer.

pub mod api;
pub mod health;
pub mod metrics;
pub mod siteverify;
pub mod stripe_webhook;
pub mod telemetry;
