//! The API keys page: create (shown once), disable, enable.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};

use super::extract::{Form, OrgActor};
use super::flash::{self, Flash};
use super::render::{
    Confirm, Confirmation, Page, PageError, error_text, format_time, org_frame, render,
};
use super::security::CsrfToken;
use crate::db::orgs::ApiKey;
use crate::error::ApiError;
use crate::roles::Scope;
use crate::service::{Actor, api_keys};
use crate::state::AppState;

fn keys_page(
    state: &AppState,
    csrf: &CsrfToken,
    actor: &Actor,
    status: StatusCode,
    keys: Vec<ApiKey>,
    extra: Value,
) -> Page {
    let keys: Vec<Value> = keys
        .iter()
        .map(|key| {
            let scopes: Vec<&str> = key.scopes.iter().map(|scope| scope.as_str()).collect();
            context! { id => key.id, name => key.name, prefix => key.prefix, scopes => scopes, active => key.active, last_used => key.last_used_at.map(format_time) }
        })
        .collect();
    let scopes: Vec<&str> = Scope::ALL.iter().map(|scope| scope.as_str()).collect();
    render(
        state,
        status,
        "api_keys.html",
        &org_frame(csrf, actor, "keys"),
        context! { keys => keys, scopes => scopes, ..extra },
    )
}

/// `GET /orgs/{org}/api-keys`.
pub async fn api_keys(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    let keys = api_keys::list_api_keys(&state, &actor).await?;
    Ok(keys_page(
        &state,
        &csrf,
        &actor,
        StatusCode::OK,
        keys,
        context! {},
    ))
}

/// `POST /orgs/{org}/api-keys`: on to the keys page, which shows the new key once; a
/// refusal shows the form again with what was typed. Scopes arrive as repeated `scope`
/// fields, which axum's `Form` cannot collect, so the body is parsed as pairs.
pub async fn create_api_key(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let name = pairs
        .iter()
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    let chosen: Vec<&str> = pairs
        .iter()
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.as_str())
        .collect();
    let created = async {
        let scopes = chosen
            .iter()
            .map(|value| {
                Scope::parse(value).ok_or_else(|| ApiError::invalid("scopes", "Unknown scope."))
            })
            .collect::<Result<Vec<_>, _>>()?;
        api_keys::create_api_key(&state, &actor, name, scopes).await
    }
    .await;
    match created {
        Ok((_, key)) => Ok(flash::redirect(
            &state,
            &format!("/orgs/{}/api-keys", actor.organisation_id),
            &Flash::secret("API key created.", key),
        )),
        Err(err @ (ApiError::Invalid { .. } | ApiError::Conflict(_))) => {
            let keys = api_keys::list_api_keys(&state, &actor).await?;
            let typed =
                context! { error => error_text(&err), typed_name => name, typed_scopes => chosen };
            Ok(keys_page(&state, &csrf, &actor, err.status_code(), keys, typed).into_response())
        }
        Err(err) => Err(err.into()),
    }
}

/// What the keys page's buttons do to a key.
enum KeyAction {
    Enable,
    Disable,
    Delete,
}

/// `POST /orgs/{org}/api-keys/{key}/enable`, `/disable` or `/delete` (the last two asked
/// first).
pub async fn api_key_action(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((org, key_id, action)): Path<(String, String, String)>,
    Form(confirmation): Form<Confirmation>,
) -> Result<Response, PageError> {
    let keys_page = format!("/orgs/{org}/api-keys");
    let action = match action.as_str() {
        "enable" => KeyAction::Enable,
        "disable" => KeyAction::Disable,
        "delete" => KeyAction::Delete,
        _ => return Err(ApiError::NotFound.into()),
    };
    let ask = match action {
        KeyAction::Enable => None,
        KeyAction::Disable => Some((
            "Disable this API key?",
            "Requests with it are refused at once. You can enable it again.",
            "Disable key",
            "disable",
        )),
        KeyAction::Delete => Some((
            "Delete this API key?",
            "Requests with it are refused at once, and it cannot be enabled again. The audit log keeps what it did.",
            "Delete key",
            "delete",
        )),
    };
    if let Some((question, consequence, button, path)) = ask.filter(|_| !confirmation.given()) {
        let key = api_keys::list_api_keys(&state, &actor)
            .await?
            .into_iter()
            .find(|key| key.id == key_id)
            .ok_or(ApiError::NotFound)?;
        let confirm = Confirm {
            question,
            consequence,
            subject: &key.name,
            button,
            action: format!("{keys_page}/{key_id}/{path}"),
            cancel: keys_page,
        };
        return Ok(confirm.page(&state, &csrf, &actor, "keys").into_response());
    }
    let notice = match action {
        KeyAction::Enable => {
            api_keys::set_api_key_active(&state, &actor, &key_id, true).await?;
            "API key enabled."
        }
        KeyAction::Disable => {
            api_keys::set_api_key_active(&state, &actor, &key_id, false).await?;
            "API key disabled. Requests with it are refused."
        }
        KeyAction::Delete => {
            api_keys::delete_api_key(&state, &actor, &key_id).await?;
            "API key deleted."
        }
    };
    Ok(flash::redirect(&state, &keys_page, &Flash::notice(notice)))
}
