//! The clients page: names an agency files its projects under.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use minijinja::{Value, context};
use serde::Deserialize;

use super::extract::{Form, OrgActor};
use super::render::{Page, PageError, can, org_frame, render};
use super::security::CsrfToken;
use crate::roles::Permission;
use crate::service::clients;
use crate::state::AppState;

/// `GET /orgs/{org}/clients`.
pub async fn clients(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    let clients = clients::list_clients(&state, &actor).await?;
    Ok(render(
        &state,
        StatusCode::OK,
        "clients.html",
        &org_frame(&csrf, &actor, "clients"),
        context! {
            clients => Value::from_serialize(clients), can_write => can(&actor, Permission::ProjectsWrite),
        },
    ))
}

/// The new-client form.
#[derive(Debug, Deserialize)]
pub struct ClientForm {
    name: String,
}

/// `POST /orgs/{org}/clients`.
pub async fn create_client(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path(org): Path<String>,
    Form(form): Form<ClientForm>,
) -> Result<Redirect, PageError> {
    clients::create_client(&state, &actor, &form.name).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/clients")))
}

/// `POST /orgs/{org}/clients/{client}/delete`.
pub async fn delete_client(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((org, client_id)): Path<(String, String)>,
) -> Result<Redirect, PageError> {
    clients::delete_client(&state, &actor, &client_id).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/clients")))
}
