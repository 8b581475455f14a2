//! The audit log: who changed what in an organisation, written by every change.

use std::collections::HashMap;

use serde::Serialize;

use super::Actor;
use crate::db::orgs;
use crate::db::projects;
use crate::error::ApiError;
use crate::roles::Permission;
use crate::state::AppState;

impl Actor {
    /// Records `action` on `target` by this actor.
    pub(super) async fn audit(
        &self,
        state: &AppState,
        action: &str,
        target: Option<&str>,
    ) -> Result<(), ApiError> {
        orgs::audit(
            &state.db,
            Some(&self.organisation_id),
            &self.audit_name(),
            action,
            target,
            state.clock.now_ms(),
        )
        .await?;
        Ok(())
    }
}

/// How many of the newest entries the audit log page shows.
const AUDIT_PAGE: i64 = 200;

/// An audit entry as people read it: who and what by name, not by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedEntry {
    /// When, Unix ms.
    pub at: i64,
    /// Who: a member's address, an API key's name, or the operator.
    pub who: String,
    /// What was done (`project.updated`…).
    pub action: String,
    /// To what: a project's, key's or client's name, or a member's address; the raw id of
    /// something since deleted.
    pub target: Option<String>,
}

/// The newest audit entries (at most [`AUDIT_PAGE`]) with names for the ids they hold, as the organisation knows
/// them now.
pub async fn named_audit_log(state: &AppState, actor: &Actor) -> Result<Vec<NamedEntry>, ApiError> {
    actor.require(Permission::AuditRead)?;
    let organisation_id = &actor.organisation_id;
    let entries = orgs::audit_log(&state.db, organisation_id, AUDIT_PAGE).await?;
    let mut names: HashMap<String, String> = HashMap::new();
    for project in projects::list_for_organisation(&state.db, organisation_id).await? {
        names.insert(project.id, project.settings.name);
    }
    for key in orgs::list_api_keys(&state.db, organisation_id).await? {
        names.insert(key.id, key.name);
    }
    for client in orgs::clients(&state.db, organisation_id).await? {
        names.insert(client.id, client.name);
    }
    for member in orgs::members(&state.db, organisation_id).await? {
        names.insert(member.user_id, member.email);
    }
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    Ok(entries
        .into_iter()
        .map(|entry| NamedEntry {
            at: entry.at,
            who: match entry.actor.split_once(':') {
                Some(("user", email)) => email.to_owned(),
                Some(("api_key", id)) => format!("API key {}", name(id)),
                _ => entry.actor.clone(),
            },
            target: entry.target.as_deref().map(name),
            action: entry.action,
        })
        .collect())
}
