//! API keys: created with scopes, shown once, stored hashed, disabled and re-enabled.

use super::{Actor, Principal};
use crate::db::orgs::{self, ApiKey};
use crate::error::ApiError;
use crate::roles::{Permission, Scope};
use crate::secrets;
use crate::state::AppState;

/// Creates an API key; the key is returned this once.
pub async fn create_api_key(
    state: &AppState,
    actor: &Actor,
    name: &str,
    scopes: Vec<Scope>,
) -> Result<(ApiKey, String), ApiError> {
    actor.require(Permission::ApiKeysWrite)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "name",
            "Give the key a name of 1 to 100 characters.",
        ));
    }
    if scopes.is_empty() {
        return Err(ApiError::invalid("scopes", "Pick at least one scope."));
    }
    let key = format!("hp_key_{}", secrets::new_token());
    let prefix: String = key.chars().take(14).collect();
    // 256 random bits: a clash with an existing key's hash is not a case to handle.
    let stored = orgs::insert_api_key(
        &state.db,
        &actor.organisation_id,
        name,
        &secrets::hash_secret(&key),
        &prefix,
        &scopes,
        state.clock.now_ms(),
    )
    .await?;
    actor
        .audit(state, "api_key.created", Some(&stored.id))
        .await?;
    Ok((stored, key))
}

/// The actor a presented API key acts as, bound to the key's organisation; records that the
/// key was used. An unknown or disabled key is refused.
pub async fn authenticate(state: &AppState, presented: &str) -> Result<Actor, ApiError> {
    let key = orgs::use_api_key(
        &state.db,
        &secrets::hash_secret(presented),
        state.clock.now_ms(),
    )
    .await?
    .ok_or(ApiError::Unauthorized("invalid_api_key"))?;
    Ok(Actor {
        organisation_id: key.organisation_id.clone(),
        organisation_name: None,
        principal: Principal::ApiKey(key),
    })
}

/// The organisation's API keys (never the keys themselves).
pub async fn list_api_keys(state: &AppState, actor: &Actor) -> Result<Vec<ApiKey>, ApiError> {
    actor.require(Permission::ApiKeysWrite)?;
    Ok(orgs::list_api_keys(&state.db, &actor.organisation_id).await?)
}

/// Disables or re-enables a key.
pub async fn set_api_key_active(
    state: &AppState,
    actor: &Actor,
    key_id: &str,
    active: bool,
) -> Result<(), ApiError> {
    actor.require(Permission::ApiKeysWrite)?;
    if !orgs::set_api_key_active(&state.db, &actor.organisation_id, key_id, active).await? {
        return Err(ApiError::NotFound);
    }
    actor
        .audit(
            state,
            if active {
                "api_key.enabled"
            } else {
                "api_key.disabled"
            },
            Some(key_id),
        )
        .await
}

/// Deletes a key for good (its audit entries stay, under its id).
pub async fn delete_api_key(state: &AppState, actor: &Actor, key_id: &str) -> Result<(), ApiError> {
    actor.require(Permission::ApiKeysWrite)?;
    if !orgs::delete_api_key(&state.db, &actor.organisation_id, key_id).await? {
        return Err(ApiError::NotFound);
    }
    actor.audit(state, "api_key.deleted", Some(key_id)).await
}
