//! The audit log: who changed what in an organisation, written by every change.

use super::Actor;
use crate::db::orgs::{self, AuditEntry};
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

/// The newest audit entries.
pub async fn audit_log(state: &AppState, actor: &Actor) -> Result<Vec<AuditEntry>, ApiError> {
    actor.require(Permission::AuditRead)?;
    Ok(orgs::audit_log(&state.db, &actor.organisation_id, 200).await?)
}
