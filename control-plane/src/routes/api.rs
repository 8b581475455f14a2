//! `/api/v1`: the JSON API for automation, authenticated by organisation API keys
//! (`Authorization: Bearer hp_key_…`) with scopes. Every handler goes through
//! [`crate::service`], which checks the scope and confines ids to the key's organisation.
//! The OpenAPI document at `/api/v1/openapi.json` describes every route here.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::service::billing::{self, BillingOverview};
use crate::service::projects::{self, ProjectInput, ProjectView};
use crate::service::{Actor, api_keys, usage};
use crate::state::AppState;

/// The OpenAPI 3.1 document, kept next to the handlers it describes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// An API key's actor, from the `Authorization` header.
pub struct ApiActor(pub Actor);

impl FromRequestParts<AppState> for ApiActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or(ApiError::Unauthorized("missing_api_key"))?;
        let key = header
            .strip_prefix("Bearer ")
            .ok_or(ApiError::Unauthorized("missing_api_key"))?
            .trim();
        Ok(Self(api_keys::authenticate(state, key).await?))
    }
}

/// A project body's fields, as [`ApiError::Invalid`] names one whose value has the wrong type
/// or is not one of its names; anything else wrong (an unknown field, broken JSON) is the
/// body's. A test sends each field the OpenAPI document lists a value of the wrong type and
/// reads its name back, and checks the document lists exactly the fields the body takes.
const INPUT_FIELDS: [&str; 23] = [
    "name",
    "production_domains",
    "testing_domains",
    "allow_subdomains",
    "preset",
    "difficulty",
    "challenge_count",
    "obfuscation",
    "rate_limit",
    "block_threshold",
    "puzzle",
    "squarings",
    "risk_mode",
    "monthly_limit",
    "unlimited",
    "active",
    "widget",
    "widget.variant",
    "widget.theme",
    "widget.language",
    "widget.size",
    "widget.branding",
    "client_id",
];

fn parse_input(body: Result<Bytes, BytesRejection>) -> Result<ProjectInput, ApiError> {
    let body = body?;
    let mut json = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut json).map_err(|err| {
        let path = err.path().to_string();
        ApiError::Invalid {
            field: INPUT_FIELDS
                .into_iter()
                .find(|field| *field == path)
                .unwrap_or("body"),
            message: format!("Not a project object: {}", err.into_inner()),
        }
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// `GET /api/v1/projects`.
pub async fn list_projects(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "projects": projects::list_projects(&state, &actor).await? }),
    ))
}

/// `POST /api/v1/projects`: 201 with the project and its backend secret, shown this once.
pub async fn create_project(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (project, secret) = projects::create_project(&state, &actor, parse_input(body)?).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "project": project, "secret": secret })),
    ))
}

/// `GET /api/v1/projects/{id}`.
pub async fn get_project(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(Json(projects::get_project(&state, &actor, &id).await?))
}

/// `PATCH /api/v1/projects/{id}`.
pub async fn update_project(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(Json(
        projects::update_project(&state, &actor, &id, parse_input(body)?).await?,
    ))
}

/// `DELETE /api/v1/projects/{id}`.
pub async fn delete_project(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    projects::delete_project(&state, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/projects/{id}/rotate-secret`.
pub async fn rotate_secret(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rotated = projects::rotate_secret(&state, &actor, &id).await?;
    Ok(Json(
        json!({ "secret": rotated.secret, "previous_secret_valid_until": rotated.previous_secret_valid_until }),
    ))
}

/// `POST /api/v1/projects/{id}/revoke-tokens`: invalidates every outstanding token.
pub async fn revoke_tokens(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key_version = projects::revoke_tokens(&state, &actor, &id).await?;
    Ok(Json(
        json!({ "project_id": id, "key_version": key_version }),
    ))
}

/// Query of the usage route.
#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    month: Option<String>,
}

/// The days a statistics request asks for.
#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/projects/{id}/stats?from=YYYY-MM-DD&to=YYYY-MM-DD`.
pub async fn project_stats(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
    Query(query): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let (from, to, days) = usage::project_stats(
        &state,
        &actor,
        &id,
        query.from.as_deref(),
        query.to.as_deref(),
    )
    .await?;
    Ok(Json(
        json!({ "project_id": id, "from": from, "to": to, "days": days }),
    ))
}

/// `GET /api/v1/billing`: the organisation's plan, billing status and this month's usage.
pub async fn billing(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
) -> Result<Json<BillingOverview>, ApiError> {
    Ok(Json(billing::overview(&state, &actor).await?))
}

/// `GET /api/v1/projects/{id}/usage?month=YYYY-MM`.
pub async fn project_usage(
    State(state): State<AppState>,
    ApiActor(actor): ApiActor,
    Path(id): Path<String>,
    Query(query): Query<UsageQuery>,
) -> Result<Json<Value>, ApiError> {
    let (month, usage) = usage::project_usage(&state, &actor, &id, query.month.as_deref()).await?;
    Ok(Json(
        json!({ "project_id": id, "month": month, "usage": usage }),
    ))
}
