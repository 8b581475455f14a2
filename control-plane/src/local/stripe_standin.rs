//! A local stand-in for the parts of Stripe's HTTP API HumanProof calls. Stripe cannot be
//! reached from the machines the tests run on, and no maintained mock covers what billing
//! uses, so this answers the same paths with the same JSON shapes (the fields
//! `async-stripe` requires to parse them), and the production client is pointed at it by
//! base URL. Local and test use only: it keeps state in memory and checks no card.
//!
//! Today it serves `GET /v1/subscriptions/{id}`, the read-back every webhook event leads to;
//! subscriptions are set by the test (or, later, by the stand-in's checkout page).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// A subscription as the stand-in holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandInSubscription {
    /// `cus_…`.
    pub customer: String,
    /// Stripe's status name (`active`, `past_due`, `canceled`…).
    pub status: String,
    /// The one price subscribed to.
    pub price: String,
    /// `month` or `year`.
    pub interval: String,
    /// When the current period ends, Unix seconds.
    pub current_period_end: i64,
    /// The organisation recorded in the subscription's metadata.
    pub organisation_id: Option<String>,
}

/// The stand-in's state; clone it to share.
#[derive(Debug, Clone, Default)]
pub struct StripeStandIn {
    subscriptions: Arc<Mutex<HashMap<String, StandInSubscription>>>,
}

impl StripeStandIn {
    /// Creates or replaces a subscription.
    pub fn put_subscription(&self, id: &str, subscription: StandInSubscription) {
        self.subscriptions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(id.to_owned(), subscription);
    }

    /// The stand-in's routes, under the base URL the client is given.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/subscriptions/{id}", get(retrieve_subscription))
            .with_state(self.clone())
    }
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "type": kind, "message": message } })),
    )
        .into_response()
}

/// Stripe refuses a request without a secret key; so does the stand-in.
fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("Bearer sk_") || value.starts_with("Bearer rk_"))
}

async fn retrieve_subscription(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorised(&headers) {
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "No API key provided.",
        );
    }
    let found = standin
        .subscriptions
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .get(&id)
        .cloned();
    match found {
        Some(subscription) => Json(subscription_json(&id, &subscription)).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such subscription: '{id}'"),
        ),
    }
}

/// A subscription in the shape Stripe's API (version 2026-09-30) returns, with every field
/// `async-stripe` requires; the current period lives on the item in this version.
fn subscription_json(id: &str, subscription: &StandInSubscription) -> Value {
    let start = subscription.current_period_end - 30 * 24 * 60 * 60;
    let metadata = match &subscription.organisation_id {
        Some(organisation) => json!({ "organisation_id": organisation }),
        None => json!({}),
    };
    let price = json!({
        "id": subscription.price, "active": true, "billing_scheme": "per_unit", "created": start,
        "currency": "eur", "livemode": false, "metadata": {}, "product": "prod_humanproof",
        "type": "recurring",
    });
    let plan = json!({
        "id": subscription.price, "active": true, "billing_scheme": "per_unit", "created": start,
        "currency": "eur", "interval": subscription.interval, "interval_count": 1,
        "livemode": false, "usage_type": "licensed",
    });
    let item = json!({
        "id": format!("si_{id}"), "created": start, "current_period_start": start,
        "current_period_end": subscription.current_period_end, "discounts": [], "metadata": {},
        "quantity": 1, "subscription": id, "price": price, "plan": plan,
    });
    json!({
        "id": id, "object": "subscription", "automatic_tax": { "enabled": false },
        "billing_cycle_anchor": start, "billing_mode": { "type": "classic" }, "billing_schedules": [],
        "cancel_at_period_end": false, "collection_method": "charge_automatically", "created": start,
        "currency": "eur", "customer": subscription.customer, "discounts": [],
        "invoice_settings": { "issuer": { "type": "self" } }, "livemode": false, "metadata": metadata,
        "start_date": start, "status": subscription.status,
        "items": {
            "object": "list", "url": format!("/v1/subscription_items?subscription={id}"),
            "has_more": false, "data": [item],
        },
    })
}
