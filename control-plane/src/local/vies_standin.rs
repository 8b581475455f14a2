//! A local stand-in for VIES's REST API, for tests and `humanproof dev`: the European
//! Commission's service cannot be reached from the machines the tests run on, and its own
//! test service answers only fixed numbers. This serves `POST /check-vat-number` with VIES's
//! JSON shapes, and the production client is pointed at it by base URL
//! (`HUMANPROOF_VIES_API_BASE`). Local and test use only: it asks no register.
//!
//! It is told which ids are registered ([`ViesStandIn::register`]); every other well-formed id
//! is not. [`ViesStandIn::set_down`] makes it answer as VIES does when a member state's
//! register is unavailable (`MS_UNAVAILABLE`), and it counts the questions it got.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::vies::PREFIXES;

/// A registered trader, as VIES returns it.
#[derive(Debug, Clone)]
struct Trader {
    name: String,
    address: String,
}

/// The stand-in's state; clone it to share.
#[derive(Debug, Clone, Default)]
pub struct ViesStandIn {
    registered: Arc<Mutex<HashMap<String, Trader>>>,
    down: Arc<AtomicBool>,
    questions: Arc<AtomicU64>,
}

/// The body VIES takes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckRequest {
    country_code: String,
    vat_number: String,
    requester_member_state_code: Option<String>,
    requester_number: Option<String>,
}

impl ViesStandIn {
    /// A stand-in that knows no registered id and is up.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `vat_id` (prefix and number, e.g. `DE123456789`) for a trader.
    pub fn register(&self, vat_id: &str, name: &str, address: &str) {
        self.registered
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(
                vat_id.to_owned(),
                Trader {
                    name: name.to_owned(),
                    address: address.to_owned(),
                },
            );
    }

    /// Makes every answer `MS_UNAVAILABLE` (down), or normal again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// How many questions it was asked.
    pub fn questions(&self) -> u64 {
        self.questions.load(Ordering::SeqCst)
    }

    /// The stand-in's routes, under the base URL the client is given.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/check-vat-number", post(check_vat_number))
            .with_state(self.clone())
    }
}

fn vies_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({ "actionSucceed": false, "errorWrappers": [{ "error": code }] })),
    )
        .into_response()
}

/// `POST /check-vat-number`: VIES's answer, with a consultation number only when a
/// requester is named, as VIES gives one.
async fn check_vat_number(
    State(standin): State<ViesStandIn>,
    request: Result<Json<CheckRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let count = standin.questions.fetch_add(1, Ordering::SeqCst) + 1;
    let Ok(Json(request)) = request else {
        return vies_error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
    };
    if !PREFIXES.contains(&request.country_code.as_str()) || request.vat_number.is_empty() {
        return vies_error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
    }
    if standin.down.load(Ordering::SeqCst) {
        // VIES sends this with status 200.
        return vies_error(StatusCode::OK, "MS_UNAVAILABLE");
    }
    let vat_id = format!("{}{}", request.country_code, request.vat_number);
    let trader = standin
        .registered
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .get(&vat_id)
        .cloned();
    let valid = trader.is_some();
    let consultation = request
        .requester_member_state_code
        .zip(request.requester_number)
        .map(|_| format!("WAPISTANDIN{count:08}"));
    let (name, address) = trader.map_or(("---".to_owned(), "---".to_owned()), |trader| {
        (trader.name, trader.address)
    });
    Json(json!({
        "countryCode": request.country_code, "vatNumber": request.vat_number,
        "requestDate": time::OffsetDateTime::now_utc().date().to_string(), "valid": valid,
        "requestIdentifier": consultation.unwrap_or_default(), "name": name, "address": address,
    }))
    .into_response()
}
