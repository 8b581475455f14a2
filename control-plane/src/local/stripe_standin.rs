//! A local stand-in for the parts of Stripe's HTTP API HumanProof calls. Stripe cannot be
//! reached from the machines the tests run on, and no maintained mock covers what billing
//! uses, so this answers the same paths with the same JSON shapes (the fields
//! `async-stripe` requires to parse them), and the production client is pointed at it by
//! base URL. Local and test use only: it keeps state in memory and checks no card.
//!
//! It serves `POST /v1/checkout/sessions` (a session whose URL is the stand-in's own checkout
//! page), that page with a "Pay" button which creates the customer and the subscription and
//! sends Stripe's `checkout.session.completed` webhook, signed as Stripe signs it, to the
//! control plane; `POST /v1/billing_portal/sessions` and its page, whose "Cancel" button
//! cancels the customer's subscriptions and sends `customer.subscription.deleted`; and
//! `GET /v1/subscriptions/{id}`, the read-back every event leads to; and
//! `POST /v1/customers/{id}/tax_ids` and `DELETE /v1/customers/{id}/tax_ids/{tax_id}`, the
//! customer's VAT id, kept so tests can see what Stripe was given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, Redirect};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::plans::{Catalogue, Interval};
use crate::stripe::{ORGANISATION_METADATA, signature_header};

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

/// An open Checkout Session.
#[derive(Debug, Clone)]
struct Session {
    price: String,
    organisation_id: Option<String>,
    customer: Option<String>,
    success_url: String,
}

/// Where the stand-in sends webhooks, and the secret it signs them with.
#[derive(Debug, Clone)]
struct WebhookTarget {
    url: String,
    secret: String,
}

/// An open Customer Portal session.
#[derive(Debug, Clone)]
struct PortalSession {
    customer: String,
    return_url: String,
}

/// A tax id given to a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandInTaxId {
    /// `txi_…`.
    pub id: String,
    /// `cus_…`.
    pub customer: String,
    /// Its type, e.g. `eu_vat`.
    pub kind: String,
    /// The id itself, e.g. `DE123456789`.
    pub value: String,
}

#[derive(Debug, Default)]
struct Accounts {
    tax_ids: Vec<StandInTaxId>,
    subscriptions: HashMap<String, StandInSubscription>,
    sessions: HashMap<String, Session>,
    portals: HashMap<String, PortalSession>,
    webhook: Option<WebhookTarget>,
    created: u64,
}

/// The stand-in's state; clone it to share.
#[derive(Debug, Clone)]
pub struct StripeStandIn {
    accounts: Arc<Mutex<Accounts>>,
    clock: Clock,
    /// Each price's interval, from the plans it sells (Stripe knows its own prices).
    intervals: Arc<HashMap<String, Interval>>,
}

impl StripeStandIn {
    /// A stand-in that sells the catalogue's prices and tells time by `clock`.
    pub fn new(clock: Clock, plans: &Catalogue) -> Self {
        let intervals = plans
            .plans()
            .iter()
            .flat_map(|plan| {
                [Interval::Month, Interval::Year]
                    .into_iter()
                    .filter_map(|interval| {
                        plan.prices
                            .for_interval(interval)
                            .map(|price| (price.to_owned(), interval))
                    })
            })
            .collect();
        Self {
            accounts: Arc::default(),
            clock,
            intervals: Arc::new(intervals),
        }
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.accounts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Sends webhook events to `url` (the control plane's `/billing/stripe/webhook`), signed
    /// with `secret`.
    pub fn deliver_webhooks_to(&self, url: &str, secret: &str) {
        self.accounts().webhook = Some(WebhookTarget {
            url: url.to_owned(),
            secret: secret.to_owned(),
        });
    }

    /// Creates or replaces a subscription.
    pub fn put_subscription(&self, id: &str, subscription: StandInSubscription) {
        self.accounts()
            .subscriptions
            .insert(id.to_owned(), subscription);
    }

    /// The tax ids the customer has now, oldest first.
    pub fn tax_ids(&self, customer: &str) -> Vec<StandInTaxId> {
        self.accounts()
            .tax_ids
            .iter()
            .filter(|tax_id| tax_id.customer == customer)
            .cloned()
            .collect()
    }

    /// The stand-in's routes, under the base URL the client is given.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/subscriptions/{id}", get(retrieve_subscription))
            .route("/checkout/{id}", get(checkout_page).post(pay))
            .route("/v1/billing_portal/sessions", post(create_portal_session))
            .route("/portal/{id}", get(portal_page).post(cancel))
            .route("/v1/customers/{id}/tax_ids", post(create_tax_id))
            .route("/v1/customers/{id}/tax_ids/{tax_id}", delete(delete_tax_id))
            .with_state(self.clone())
    }

    /// Sends `event` to the control plane, signed as Stripe signs it; once, as a stand-in
    /// need not retry.
    async fn send_webhook(&self, event: &Value) {
        let Some(target) = self.accounts().webhook.clone() else {
            return;
        };
        let body = event.to_string();
        let now_s = self.clock.now_ms() / 1000;
        let delivered = crate::http::client()
            .post(&target.url)
            .header(
                "stripe-signature",
                signature_header(&target.secret, now_s, body.as_bytes()),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        if let Err(err) = delivered.and_then(|answer| answer.error_for_status()) {
            tracing::warn!(error = %err, "the stand-in's webhook was not accepted");
        }
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut accounts = self.accounts();
        accounts.created += 1;
        format!("{prefix}_standin{}", accounts.created)
    }
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "type": kind, "message": message } })),
    )
        .into_response()
}

/// A form-encoded API request's fields, as Stripe's client sends them (keys such as
/// `line_items[0][price]` kept whole); `None` without a secret key ([`no_api_key`]).
fn form_fields(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, String>> {
    authorised(headers).then(|| {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .unwrap_or_default()
            .into_iter()
            .collect()
    })
}

/// Stripe's answer to a request without a secret key.
fn no_api_key() -> Response {
    stripe_error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "No API key provided.",
    )
}

/// A URL of the stand-in's own pages, on the address the client reached it at.
fn own_url(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get("host")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}{path}")
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
        return no_api_key();
    }
    let found = standin.accounts().subscriptions.get(&id).cloned();
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

/// `POST /v1/checkout/sessions`: a session for one price, whose URL is the stand-in's page.
async fn create_session(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = form_fields(&headers, &body) else {
        return no_api_key();
    };
    let field = |name: &str| fields.get(name).cloned();
    let (Some(price), Some(success_url)) = (field("line_items[0][price]"), field("success_url"))
    else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "A price and a success_url are required.",
        );
    };
    if field("mode").as_deref() != Some("subscription") || !standin.intervals.contains_key(&price) {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("No such price: '{price}'"),
        );
    }
    let id = standin.next_id("cs");
    let organisation_id = field(&format!(
        "subscription_data[metadata][{ORGANISATION_METADATA}]"
    ));
    let session = Session {
        price,
        organisation_id: organisation_id.clone(),
        customer: field("customer"),
        success_url,
    };
    standin
        .accounts()
        .sessions
        .insert(id.clone(), session.clone());
    let now_s = standin.clock.now_ms() / 1000;
    Json(json!({
        "id": id, "object": "checkout.session", "created": now_s, "expires_at": now_s + 86_400,
        "livemode": false, "mode": "subscription", "payment_status": "unpaid", "status": "open",
        "url": own_url(&headers, &format!("/checkout/{id}")), "client_reference_id": field("client_reference_id"),
        "customer": session.customer, "metadata": {}, "automatic_tax": { "enabled": false },
        "custom_fields": [], "custom_text": {}, "payment_method_types": ["card"], "shipping_options": [],
    }))
    .into_response()
}

/// `GET /checkout/{id}`: the stand-in's checkout page, plainly not Stripe's.
async fn checkout_page(State(standin): State<StripeStandIn>, Path(id): Path<String>) -> Response {
    let Some(session) = standin.accounts().sessions.get(&id).cloned() else {
        return (StatusCode::NOT_FOUND, "No such checkout session.").into_response();
    };
    let price = minijinja::HtmlEscape(&session.price);
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Local Stripe stand-in</title>\
         <main><h1>Local Stripe stand-in</h1><p>This is not Stripe: HumanProof's local stand-in \
         takes no card and charges nothing.</p><p>Subscribe to <code>{price}</code>.</p>\
         <form method=\"post\"><button type=\"submit\">Pay</button></form></main>"
    ))
    .into_response()
}

/// `POST /checkout/{id}`: "pays": creates the customer and the subscription, sends the
/// signed `checkout.session.completed` webhook, and returns the buyer to the success URL.
async fn pay(State(standin): State<StripeStandIn>, Path(id): Path<String>) -> Response {
    let Some(session) = standin.accounts().sessions.remove(&id) else {
        return (StatusCode::NOT_FOUND, "No such checkout session.").into_response();
    };
    let customer = session
        .customer
        .clone()
        .unwrap_or_else(|| standin.next_id("cus"));
    let subscription_id = standin.next_id("sub");
    let now_s = standin.clock.now_ms() / 1000;
    let interval = standin.intervals[&session.price];
    let period_s = match interval {
        Interval::Month => 30 * 86_400,
        Interval::Year => 365 * 86_400,
    };
    standin.put_subscription(
        &subscription_id,
        StandInSubscription {
            customer: customer.clone(),
            status: "active".into(),
            price: session.price.clone(),
            interval: interval.as_str().into(),
            current_period_end: now_s + period_s,
            organisation_id: session.organisation_id.clone(),
        },
    );
    let event = json!({
        "id": standin.next_id("evt"), "object": "event", "type": "checkout.session.completed",
        "created": now_s, "livemode": false, "pending_webhooks": 1,
        "data": { "object": {
            "id": id, "object": "checkout.session", "client_reference_id": session.organisation_id,
            "customer": customer, "subscription": subscription_id, "mode": "subscription",
            "payment_status": "paid", "status": "complete",
        }},
    });
    standin.send_webhook(&event).await;
    Redirect::to(&session.success_url).into_response()
}

/// `POST /v1/billing_portal/sessions`: a portal session whose URL is the stand-in's page.
async fn create_portal_session(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = form_fields(&headers, &body) else {
        return no_api_key();
    };
    let (Some(customer), Some(return_url)) = (fields.get("customer"), fields.get("return_url"))
    else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "A customer and a return_url are required.",
        );
    };
    let id = standin.next_id("bps");
    standin.accounts().portals.insert(
        id.clone(),
        PortalSession {
            customer: customer.clone(),
            return_url: return_url.clone(),
        },
    );
    Json(json!({
        "id": id, "object": "billing_portal.session", "configuration": "bpc_standin",
        "created": standin.clock.now_ms() / 1000, "customer": customer, "livemode": false,
        "return_url": return_url, "url": own_url(&headers, &format!("/portal/{id}")),
    }))
    .into_response()
}

/// `GET /portal/{id}`: the stand-in's customer portal, plainly not Stripe's.
async fn portal_page(State(standin): State<StripeStandIn>, Path(id): Path<String>) -> Response {
    if !standin.accounts().portals.contains_key(&id) {
        return (StatusCode::NOT_FOUND, "No such portal session.").into_response();
    }
    Html(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Local Stripe stand-in</title>\
         <main><h1>Local Stripe stand-in</h1><p>This is not Stripe: HumanProof's local stand-in \
         keeps no card and no invoices.</p><form method=\"post\"><button type=\"submit\">Cancel \
         the subscription</button></form></main>",
    )
    .into_response()
}

/// `POST /portal/{id}`: cancels the customer's subscriptions at once, sends
/// `customer.subscription.deleted` for each, and returns to the return URL.
async fn cancel(State(standin): State<StripeStandIn>, Path(id): Path<String>) -> Response {
    let Some(portal) = standin.accounts().portals.remove(&id) else {
        return (StatusCode::NOT_FOUND, "No such portal session.").into_response();
    };
    let cancelled: Vec<String> = {
        let mut accounts = standin.accounts();
        accounts
            .subscriptions
            .iter_mut()
            .filter(|(_, subscription)| {
                subscription.customer == portal.customer && subscription.status != "canceled"
            })
            .map(|(id, subscription)| {
                subscription.status = "canceled".into();
                id.clone()
            })
            .collect()
    };
    let now_s = standin.clock.now_ms() / 1000;
    for subscription_id in cancelled {
        let event = json!({
            "id": standin.next_id("evt"), "object": "event", "type": "customer.subscription.deleted",
            "created": now_s, "livemode": false, "pending_webhooks": 1,
            "data": { "object": { "id": subscription_id, "object": "subscription", "customer": portal.customer, "status": "canceled" } },
        });
        standin.send_webhook(&event).await;
    }
    Redirect::to(&portal.return_url).into_response()
}

/// `POST /v1/customers/{id}/tax_ids`: records the tax id; Stripe's own VIES verification is
/// left `pending`, as Stripe leaves it until its check completes.
async fn create_tax_id(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    Path(customer): Path<String>,
    body: Bytes,
) -> Response {
    let Some(fields) = form_fields(&headers, &body) else {
        return no_api_key();
    };
    let (Some(kind), Some(value)) = (fields.get("type"), fields.get("value")) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "A type and a value are required.",
        );
    };
    let tax_id = StandInTaxId {
        id: standin.next_id("txi"),
        customer: customer.clone(),
        kind: kind.clone(),
        value: value.clone(),
    };
    standin.accounts().tax_ids.push(tax_id.clone());
    Json(json!({
        "id": tax_id.id, "object": "tax_id", "country": value.get(..2), "created": standin.clock.now_ms() / 1000,
        "customer": customer, "livemode": false, "type": kind, "value": value,
        "owner": { "type": "customer", "customer": customer },
        "verification": { "status": "pending", "verified_address": null, "verified_name": null },
    }))
    .into_response()
}

/// `DELETE /v1/customers/{id}/tax_ids/{tax_id}`.
async fn delete_tax_id(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    Path((customer, id)): Path<(String, String)>,
) -> Response {
    if !authorised(&headers) {
        return no_api_key();
    }
    let mut accounts = standin.accounts();
    let before = accounts.tax_ids.len();
    accounts
        .tax_ids
        .retain(|tax_id| !(tax_id.id == id && tax_id.customer == customer));
    if accounts.tax_ids.len() == before {
        return stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such tax id: '{id}'"),
        );
    }
    Json(json!({ "id": id, "object": "tax_id", "deleted": true })).into_response()
}
