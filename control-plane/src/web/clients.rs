//! The clients page: names an agency files its projects under.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde::Deserialize;

use super::extract::{Form, OrgActor};
use super::flash::{self, Flash};
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
) -> Result<Response, PageError> {
    clients::create_client(&state, &actor, &form.name).await?;
    Ok(flash::redirect(
        &state,
        &format!("/orgs/{org}/clients"),
        &Flash::notice("Client added."),
    ))
}

/// `POST /orgs/{org}/clients/{client}/delete`.
pub async fn delete_client(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((org, client_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    clients::delete_client(&state, &actor, &client_id).await?;
    Ok(flash::redirect(
        &state,
        &format!("/orgs/{org}/clients"),
        &Flash::notice("Client deleted. Its projects are kept, filed under no client."),
    ))
}
