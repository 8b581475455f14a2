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
//! `GET /v1/subscriptions/{id}`, the read-back every event leads to; `POST
//! /v1/subscriptions/{id}` (an upgrade), the subscription schedules a downgrade is made with
//! (create from a subscription, update phases, retrieve, release) and [`StripeStandIn::renew`]
//! that ends a period as Stripe would; `POST /v1/billing/meter_events`, one event per
//! identifier, replaying answers by idempotency key; and `POST /v1/customers/{id}/tax_ids` and
//! `DELETE /v1/customers/{id}/tax_ids/{tax_id}`, the customer's VAT id, kept so tests can see
//! what Stripe was given.

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// The metered price beside it, if any.
    pub overage_price: Option<String>,
    /// The schedule holding a change for a later period, if any.
    pub schedule: Option<String>,
}

/// One phase of a subscription schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Phase {
    start: i64,
    end: i64,
    prices: Vec<String>,
}

/// A subscription schedule: the subscription's phases, current first.
#[derive(Debug, Clone)]
struct Schedule {
    subscription: String,
    phases: Vec<Phase>,
    status: &'static str,
}

/// A Billing Meter event as the stand-in received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandInMeterEvent {
    /// The event name.
    pub event_name: String,
    /// `payload[stripe_customer_id]`.
    pub customer: String,
    /// `payload[value]`.
    pub value: u64,
    /// The event's identifier.
    pub identifier: String,
    /// When the usage happened, Unix seconds.
    pub timestamp: i64,
}

/// An open Checkout Session.
#[derive(Debug, Clone)]
struct Session {
    price: String,
    overage_price: Option<String>,
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
    schedules: HashMap<String, Schedule>,
    meter_events: Vec<StandInMeterEvent>,
    /// Answers already given, by idempotency key, as Stripe replays them.
    idempotent_answers: HashMap<String, Value>,
    /// Meter events to record and then answer with a 500, as if the answer were lost.
    lost_meter_answers: u32,
    /// Every `proration_behavior` a subscription update asked for, in order.
    prorations: Vec<String>,
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

    /// The subscription as the stand-in has it now.
    pub fn subscription(&self, id: &str) -> Option<StandInSubscription> {
        self.accounts().subscriptions.get(id).cloned()
    }

    /// The meter events recorded, each identifier once.
    pub fn meter_events(&self) -> Vec<StandInMeterEvent> {
        self.accounts().meter_events.clone()
    }

    /// The `proration_behavior` of every subscription update so far.
    pub fn prorations(&self) -> Vec<String> {
        self.accounts().prorations.clone()
    }

    /// Records the next `count` meter events but answers them with a 500, as when the
    /// answer is lost on the way: the client cannot tell whether Stripe has the event.
    pub fn lose_meter_answers(&self, count: u32) {
        self.accounts().lost_meter_answers = count;
    }

    /// Renews the subscription as Stripe does when its period ends: the schedule's next
    /// phase (a pending change) takes effect, the schedule is released after its last phase,
    /// a new period begins, and `customer.subscription.updated` is sent.
    pub async fn renew(&self, id: &str) {
        let now_s = self.clock.now_ms() / 1000;
        let renewed = {
            let mut accounts = self.accounts();
            let Some(mut subscription) = accounts.subscriptions.get(id).cloned() else {
                return;
            };
            let mut period_end = subscription.current_period_end;
            if let Some(schedule_id) = subscription.schedule.clone()
                && let Some(schedule) = accounts.schedules.get_mut(&schedule_id)
            {
                if let Some(next) = schedule
                    .phases
                    .iter()
                    .find(|phase| phase.start >= period_end)
                {
                    let (base, overage) = self.split_prices(&next.prices);
                    subscription.price = base;
                    subscription.overage_price = overage;
                    period_end = next.end;
                }
                if schedule
                    .phases
                    .last()
                    .is_none_or(|last| last.start <= subscription.current_period_end)
                {
                    schedule.status = "released";
                    subscription.schedule = None;
                }
            }
            let interval = self
                .intervals
                .get(&subscription.price)
                .copied()
                .unwrap_or(Interval::Month);
            subscription.interval = interval.as_str().into();
            subscription.current_period_end = if period_end > subscription.current_period_end {
                period_end
            } else {
                subscription.current_period_end.max(now_s) + period_s(interval)
            };
            accounts
                .subscriptions
                .insert(id.to_owned(), subscription.clone());
            subscription
        };
        let object = json!({ "id": id, "object": "subscription", "customer": renewed.customer });
        self.send_event("customer.subscription.updated", object)
            .await;
    }

    /// A phase's prices split into the plan's price and the metered one.
    fn split_prices(&self, prices: &[String]) -> (String, Option<String>) {
        let base = prices
            .iter()
            .find(|price| self.intervals.contains_key(*price))
            .cloned()
            .unwrap_or_default();
        let overage = prices.iter().find(|price| **price != base).cloned();
        (base, overage)
    }

    /// The stand-in's routes, under the base URL the client is given.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route(
                "/v1/subscriptions/{id}",
                get(retrieve_subscription).post(update_subscription),
            )
            .route("/v1/subscription_schedules", post(create_schedule))
            .route(
                "/v1/subscription_schedules/{id}",
                get(retrieve_schedule).post(update_schedule),
            )
            .route(
                "/v1/subscription_schedules/{id}/release",
                post(release_schedule),
            )
            .route("/v1/billing/meter_events", post(create_meter_event))
            .route("/v1/customers/{id}/tax_ids", post(create_tax_id))
            .route("/v1/customers/{id}/tax_ids/{tax_id}", delete(delete_tax_id))
            .route("/checkout/{id}", get(checkout_page).post(pay))
            .route("/v1/billing_portal/sessions", post(create_portal_session))
            .route("/portal/{id}", get(portal_page).post(cancel))
            .with_state(self.clone())
    }

    /// Sends an event of `kind` about `object` to the control plane, signed as Stripe signs
    /// it; once, as a stand-in need not retry.
    async fn send_event(&self, kind: &str, object: Value) {
        let Some(target) = self.accounts().webhook.clone() else {
            return;
        };
        let now_s = self.clock.now_ms() / 1000;
        let event = json!({
            "id": self.next_id("evt"), "object": "event", "type": kind, "created": now_s,
            "livemode": false, "pending_webhooks": 1, "data": { "object": object },
        });
        let body = event.to_string();
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

/// A period of the interval, in seconds (the stand-in's months are 30 days).
fn period_s(interval: Interval) -> i64 {
    match interval {
        Interval::Month => 30 * 86_400,
        Interval::Year => 365 * 86_400,
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
    let item = |item_id: String, price: Value, plan: Value| {
        json!({
            "id": item_id, "created": start, "current_period_start": start,
            "current_period_end": subscription.current_period_end, "discounts": [], "metadata": {},
            "quantity": 1, "subscription": id, "price": price, "plan": plan,
        })
    };
    let mut items = vec![item(format!("si_{id}"), price, plan)];
    if let Some(overage) = &subscription.overage_price {
        let price = json!({
            "id": overage, "active": true, "billing_scheme": "per_unit", "created": start,
            "currency": "eur", "livemode": false, "metadata": {}, "product": "prod_humanproof_overage",
            "type": "recurring",
        });
        let plan = json!({
            "id": overage, "active": true, "billing_scheme": "per_unit", "created": start,
            "currency": "eur", "interval": subscription.interval, "interval_count": 1,
            "livemode": false, "usage_type": "metered",
        });
        items.push(item(format!("si_{id}_overage"), price, plan));
    }
    json!({
        "id": id, "object": "subscription", "automatic_tax": { "enabled": false },
        "billing_cycle_anchor": start, "billing_mode": { "type": "classic" }, "billing_schedules": [],
        "cancel_at_period_end": false, "collection_method": "charge_automatically", "created": start,
        "currency": "eur", "customer": subscription.customer, "discounts": [],
        "invoice_settings": { "issuer": { "type": "self" } }, "livemode": false, "metadata": metadata,
        "start_date": start, "status": subscription.status, "schedule": subscription.schedule,
        "items": {
            "object": "list", "url": format!("/v1/subscription_items?subscription={id}"),
            "has_more": false, "data": items,
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
        overage_price: field("line_items[1][price]"),
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
    standin.put_subscription(
        &subscription_id,
        StandInSubscription {
            customer: customer.clone(),
            status: "active".into(),
            price: session.price.clone(),
            interval: interval.as_str().into(),
            current_period_end: now_s + period_s(interval),
            organisation_id: session.organisation_id.clone(),
            overage_price: session.overage_price.clone(),
            schedule: None,
        },
    );
    let object = json!({
        "id": id, "object": "checkout.session", "client_reference_id": session.organisation_id,
        "customer": customer, "subscription": subscription_id, "mode": "subscription",
        "payment_status": "paid", "status": "complete",
    });
    standin
        .send_event("checkout.session.completed", object)
        .await;
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
    for subscription_id in cancelled {
        let object = json!({
            "id": subscription_id, "object": "subscription", "customer": portal.customer,
            "status": "canceled",
        });
        standin
            .send_event("customer.subscription.deleted", object)
            .await;
    }
    Redirect::to(&portal.return_url).into_response()
}

fn no_such(kind: &str, id: &str) -> Response {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        &format!("No such {kind}: '{id}'"),
    )
}

/// The prices of a list parameter such as `items[0][price]`, `items[1][price]`… in order.
fn indexed(
    fields: &HashMap<String, String>,
    prefix: &str,
    index: usize,
    name: &str,
) -> Option<String> {
    fields.get(&format!("{prefix}[{index}][{name}]")).cloned()
}

/// `POST /v1/subscriptions/{id}`: moves items to other prices (or removes or adds them),
/// records the proration asked for, and sends `customer.subscription.updated`. A new interval
/// starts a new period now, as Stripe's billing cycle reset does.
async fn update_subscription(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(fields) = form_fields(&headers, &body) else {
        return no_api_key();
    };
    let now_s = standin.clock.now_ms() / 1000;
    let updated = {
        let mut accounts = standin.accounts();
        let Some(mut subscription) = accounts.subscriptions.get(&id).cloned() else {
            return no_such("subscription", &id);
        };
        if subscription.schedule.is_some() {
            // Stripe leaves a scheduled subscription's items to its schedule.
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "The subscription is managed by a subscription schedule.",
            );
        }
        for index in 0.. {
            let (item, price) = (
                indexed(&fields, "items", index, "id"),
                indexed(&fields, "items", index, "price"),
            );
            if item.is_none() && price.is_none() {
                break;
            }
            let deleted = indexed(&fields, "items", index, "deleted").as_deref() == Some("true");
            let overage_item = format!("si_{id}_overage");
            match (item.as_deref(), price) {
                (Some(item), _) if deleted && item == overage_item => {
                    subscription.overage_price = None
                }
                (Some(item), Some(price)) if item == overage_item => {
                    subscription.overage_price = Some(price)
                }
                (Some(_), Some(price)) => {
                    let Some(&interval) = standin.intervals.get(&price) else {
                        return no_such("price", &price);
                    };
                    if interval.as_str() != subscription.interval {
                        subscription.interval = interval.as_str().into();
                        subscription.current_period_end = now_s + period_s(interval);
                    }
                    subscription.price = price;
                }
                (None, Some(price)) => subscription.overage_price = Some(price),
                _ => {
                    return stripe_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "Invalid items.",
                    );
                }
            }
        }
        accounts.prorations.push(
            fields
                .get("proration_behavior")
                .cloned()
                .unwrap_or_default(),
        );
        accounts
            .subscriptions
            .insert(id.clone(), subscription.clone());
        subscription
    };
    let object = json!({ "id": id, "object": "subscription", "customer": updated.customer });
    standin
        .send_event("customer.subscription.updated", object)
        .await;
    Json(subscription_json(&id, &updated)).into_response()
}

/// A subscription schedule in the shape Stripe's API returns it.
fn schedule_json(id: &str, schedule: &Schedule, customer: &str, now_s: i64) -> Value {
    let phases: Vec<Value> = schedule
        .phases
        .iter()
        .map(|phase| {
            let items: Vec<Value> = phase
                .prices
                .iter()
                .map(|price| json!({ "discounts": [], "plan": price, "price": price, "quantity": 1 }))
                .collect();
            json!({
                "add_invoice_items": [], "currency": "eur", "discounts": [], "end_date": phase.end,
                "items": items, "proration_behavior": "create_prorations", "start_date": phase.start,
            })
        })
        .collect();
    let current = schedule
        .phases
        .iter()
        .find(|phase| phase.start <= now_s && now_s < phase.end)
        .map(|phase| json!({ "start_date": phase.start, "end_date": phase.end }));
    json!({
        "id": id, "object": "subscription_schedule", "billing_mode": { "type": "classic" },
        "created": now_s, "current_phase": current, "customer": customer,
        "default_settings": {
            "billing_cycle_anchor": "automatic", "invoice_settings": { "issuer": { "type": "self" } },
        },
        "end_behavior": "release", "livemode": false, "phases": phases, "status": schedule.status,
        "subscription": schedule.subscription,
    })
}

/// A schedule's answer: the schedule with its subscription's customer.
fn schedule_answer(standin: &StripeStandIn, id: &str) -> Response {
    let accounts = standin.accounts();
    let Some(schedule) = accounts.schedules.get(id) else {
        return no_such("subscription schedule", id);
    };
    let customer = accounts
        .subscriptions
        .get(&schedule.subscription)
        .map(|subscription| subscription.customer.clone())
        .unwrap_or_default();
    Json(schedule_json(
        id,
        schedule,
        &customer,
        standin.clock.now_ms() / 1000,
    ))
    .into_response()
}

/// `POST /v1/subscription_schedules` with `from_subscription`: a schedule whose one phase is
/// the subscription's current period.
async fn create_schedule(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = form_fields(&headers, &body) else {
        return no_api_key();
    };
    let Some(subscription_id) = fields.get("from_subscription").cloned() else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "from_subscription is required.",
        );
    };
    let id = standin.next_id("sub_sched");
    {
        let mut accounts = standin.accounts();
        let Some(subscription) = accounts.subscriptions.get_mut(&subscription_id) else {
            return no_such("subscription", &subscription_id);
        };
        if subscription.schedule.is_some() {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "The subscription already has a schedule.",
            );
        }
        subscription.schedule = Some(id.clone());
        let interval = standin
            .intervals
            .get(&subscription.price)
            .copied()
            .unwrap_or(Interval::Month);
        let end = subscription.current_period_end;
        let phase = Phase {
            start: end - period_s(interval),
            end,
            prices: std::iter::once(subscription.price.clone())
                .chain(subscription.overage_price.clone())
                .collect(),
        };
        accounts.schedules.insert(
            id.clone(),
            Schedule {
                subscription: subscription_id,
                phases: vec![phase],
                status: "active",
            },
        );
    }
    schedule_answer(&standin, &id)
}

async fn retrieve_schedule(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorised(&headers) {
        return no_api_key();
    }
    schedule_answer(&standin, &id)
}

/// `POST /v1/subscription_schedules/{id}` with `phases`: the first must keep the current
/// phase's start, as Stripe requires; a phase without an end lasts its `duration`.
async fn update_schedule(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(fields) = form_fields(&headers, &body) else {
        return no_api_key();
    };
    let mut phases: Vec<Phase> = Vec::new();
    for index in 0.. {
        let prices: Vec<String> = (0..)
            .map_while(|item| {
                fields
                    .get(&format!("phases[{index}][items][{item}][price]"))
                    .cloned()
            })
            .collect();
        if prices.is_empty() {
            break;
        }
        let number = |name: &str| {
            indexed(&fields, "phases", index, name).and_then(|value| value.parse::<i64>().ok())
        };
        let start = number("start_date")
            .or(phases.last().map(|phase| phase.end))
            .unwrap_or_default();
        let end = number("end_date").unwrap_or_else(|| {
            match fields
                .get(&format!("phases[{index}][duration][interval]"))
                .map(String::as_str)
            {
                Some("year") => start + period_s(Interval::Year),
                _ => start + period_s(Interval::Month),
            }
        });
        phases.push(Phase { start, end, prices });
    }
    {
        let mut accounts = standin.accounts();
        let Some(schedule) = accounts.schedules.get_mut(&id) else {
            return no_such("subscription schedule", &id);
        };
        if phases.first().map(|phase| phase.start)
            != schedule.phases.first().map(|phase| phase.start)
        {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "You can not modify the start date of the current phase.",
            );
        }
        schedule.phases = phases;
    }
    schedule_answer(&standin, &id)
}

/// `POST /v1/subscription_schedules/{id}/release`: the subscription keeps its current prices
/// and no longer has a schedule.
async fn release_schedule(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorised(&headers) {
        return no_api_key();
    }
    {
        let mut accounts = standin.accounts();
        let Some(schedule) = accounts.schedules.get_mut(&id) else {
            return no_such("subscription schedule", &id);
        };
        schedule.status = "released";
        let subscription_id = schedule.subscription.clone();
        if let Some(subscription) = accounts.subscriptions.get_mut(&subscription_id) {
            subscription.schedule = None;
        }
    }
    schedule_answer(&standin, &id)
}

/// `POST /v1/billing/meter_events`: records the event once per identifier. A request whose
/// idempotency key was seen gets the first answer back, as Stripe replays it; one with a
/// new key but a known identifier is refused, as Stripe refuses it.
async fn create_meter_event(
    State(standin): State<StripeStandIn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = form_fields(&headers, &body) else {
        return no_api_key();
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut accounts = standin.accounts();
    if let Some(answer) = key
        .as_ref()
        .and_then(|key| accounts.idempotent_answers.get(key))
    {
        return Json(answer.clone()).into_response();
    }
    let field = |name: &str| fields.get(name).cloned();
    let (Some(event_name), Some(customer), Some(value), Some(identifier), Some(timestamp)) = (
        field("event_name"),
        field("payload[stripe_customer_id]"),
        field("payload[value]").and_then(|value| value.parse::<u64>().ok()),
        field("identifier"),
        field("timestamp").and_then(|value| value.parse::<i64>().ok()),
    ) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing meter event fields.",
        );
    };
    if accounts
        .meter_events
        .iter()
        .any(|event| event.identifier == identifier)
    {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("An event with identifier {identifier} already exists."),
        );
    }
    let answer = json!({
        "object": "billing.meter_event", "created": standin.clock.now_ms() / 1000,
        "event_name": event_name, "identifier": identifier, "livemode": false,
        "payload": { "stripe_customer_id": customer, "value": value.to_string() }, "timestamp": timestamp,
    });
    accounts.meter_events.push(StandInMeterEvent {
        event_name,
        customer,
        value,
        identifier,
        timestamp,
    });
    if let Some(key) = key {
        accounts.idempotent_answers.insert(key, answer.clone());
    }
    if accounts.lost_meter_answers > 0 {
        accounts.lost_meter_answers -= 1;
        return stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "The answer was lost.",
        );
    }
    Json(answer).into_response()
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
        return no_such("tax id", &id);
    }
    Json(json!({ "id": id, "object": "tax_id", "deleted": true })).into_response()
}
