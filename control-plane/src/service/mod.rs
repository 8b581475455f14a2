//! What customers do to their organisation, checked once for both front doors.
//!
//! The dashboard (a signed-in member) and the `/api/v1` API (an API key) both build an
//! [`Actor`] bound to one organisation and call the functions of these modules, one per
//! resource. Each function checks one [`Permission`](crate::roles::Permission), validates
//! its input and reaches projects, keys and members only through the actor's
//! organisation, so another organisation's ids find nothing (404, not 403, so ids do not
//! leak). Changes that matter to the edge are published before the function returns; if
//! publishing fails the change stays pending and the background publisher retries it.
//!
//! - [`projects`]: creating, changing, rotating and deleting projects, and their settings.
//! - [`usage`]: a project's monthly usage and its risk view.
//! - [`billing`]: the organisation's plan, its usage and billing status, and the plan's
//!   gates on project settings.
//! - [`vat`]: the organisation's EU VAT id, checked against VIES and passed to Stripe.
//! - [`siteverify`]: verifying a site backend's token, once.
//! - [`members`]: roles, invitations and the last-owner rule.
//! - [`api_keys`]: keys for the JSON API and their scopes.
//! - [`clients`]: the agency clients projects are filed under.
//! - [`audit`]: the audit log every change above writes to.

pub mod api_keys;
pub mod audit;
pub mod billing;
pub mod clients;
pub mod export;
pub mod members;
pub mod projects;
pub mod siteverify;
pub mod usage;
pub mod vat;

use crate::db::accounts::User;
use crate::db::orgs::{self, ApiKey};
use crate::error::ApiError;
use crate::roles::{Permission, Role};
use crate::state::AppState;

/// Who is acting, and for which organisation.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The organisation every operation is confined to.
    pub organisation_id: String,
    /// Its name, for display (members only).
    pub organisation_name: Option<String>,
    /// A member or an API key.
    pub principal: Principal,
}

/// The two kinds of actor.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A signed-in member with a role.
    Member {
        /// The user.
        user: User,
        /// Their role in the organisation.
        role: Role,
        /// Every organisation they belong to, this one included (id and name), for the
        /// dashboard's organisation switcher.
        organisations: Vec<(String, String)>,
    },
    /// An API key with scopes.
    ApiKey(ApiKey),
}

impl Actor {
    /// The member's actor for one of their organisations; `None` if not a member.
    pub async fn member(
        state: &AppState,
        user: User,
        organisation_id: &str,
    ) -> Result<Option<Actor>, ApiError> {
        let memberships = orgs::memberships(&state.db, &user.id).await?;
        let organisations = memberships
            .iter()
            .map(|m| (m.organisation_id.clone(), m.organisation_name.clone()))
            .collect();
        let membership = memberships
            .into_iter()
            .find(|m| m.organisation_id == organisation_id);
        Ok(membership.map(|m| Actor {
            organisation_id: m.organisation_id,
            organisation_name: Some(m.organisation_name),
            principal: Principal::Member {
                user,
                role: m.role,
                organisations,
            },
        }))
    }

    /// Refuses unless the role or the key's scopes grant `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        let allowed = match &self.principal {
            Principal::Member { role, .. } => role.allows(permission),
            Principal::ApiKey(key) => key
                .scopes
                .iter()
                .any(|scope| scope.permission() == permission),
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden("insufficient_permission"))
        }
    }

    /// Whether this is one of the organisation's owners: only owners appoint, change or
    /// remove owners.
    pub fn is_owner(&self) -> bool {
        matches!(
            self.principal,
            Principal::Member {
                role: Role::Owner,
                ..
            }
        )
    }

    /// How the audit log names this actor.
    pub fn audit_name(&self) -> String {
        match &self.principal {
            Principal::Member { user, .. } => format!("user:{}", user.email),
            Principal::ApiKey(key) => format!("api_key:{}", key.id),
        }
    }
}
