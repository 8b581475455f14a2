//! An agency's clients: names to file projects under.

use super::Actor;
use crate::db::orgs;
use crate::error::ApiError;
use crate::roles::Permission;
use crate::state::AppState;

/// The client a project should be filed under: `None` to leave it, `Some(None)` for no
/// client, `Some(Some(id))` for one of the actor's organisation's clients (another
/// organisation's client id is refused like an unknown one).
pub(super) async fn checked_client(
    state: &AppState,
    actor: &Actor,
    client_id: Option<String>,
) -> Result<Option<Option<String>>, ApiError> {
    match client_id.as_deref() {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(id) => {
            let clients = orgs::clients(&state.db, &actor.organisation_id).await?;
            if clients.iter().any(|client| client.id == id) {
                Ok(Some(Some(id.to_owned())))
            } else {
                Err(ApiError::invalid(
                    "client_id",
                    "No such client in this organisation.",
                ))
            }
        }
    }
}

/// The organisation's clients.
pub async fn list_clients(state: &AppState, actor: &Actor) -> Result<Vec<orgs::Client>, ApiError> {
    actor.require(Permission::ProjectsRead)?;
    Ok(orgs::clients(&state.db, &actor.organisation_id).await?)
}

/// Adds a client to file projects under.
pub async fn create_client(
    state: &AppState,
    actor: &Actor,
    name: &str,
) -> Result<orgs::Client, ApiError> {
    actor.require(Permission::ProjectsWrite)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "name",
            "Give the client a name of 1 to 100 characters.",
        ));
    }
    let client = orgs::insert_client(
        &state.db,
        &actor.organisation_id,
        name,
        state.clock.now_ms(),
    )
    .await?;
    actor
        .audit(state, "client.created", Some(&client.id))
        .await?;
    Ok(client)
}

/// Removes a client; its projects stay, unfiled.
pub async fn delete_client(
    state: &AppState,
    actor: &Actor,
    client_id: &str,
) -> Result<(), ApiError> {
    actor.require(Permission::ProjectsWrite)?;
    if !orgs::delete_client(&state.db, &actor.organisation_id, client_id).await? {
        return Err(ApiError::NotFound);
    }
    actor.audit(state, "client.deleted", Some(client_id)).await
}
