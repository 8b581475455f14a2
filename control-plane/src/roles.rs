//! Who may do what: organisation roles for people, scopes for API keys, and the permissions
//! both map onto. Every dashboard and API route checks one [`Permission`] through
//! [`crate::service::Actor::require`], so the matrix below is the whole policy.

use serde::{Deserialize, Serialize};

/// A member's role in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including billing and deleting the organisation.
    Owner,
    /// Everything but billing.
    Admin,
    /// Projects and their keys.
    Developer,
    /// Billing, and reading projects and usage.
    Billing,
    /// Reading only.
    Viewer,
}

/// One thing a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// List and read projects.
    ProjectsRead,
    /// Create, change, pause, delete projects and rotate their secrets.
    ProjectsWrite,
    /// Read usage.
    UsageRead,
    /// List members.
    MembersRead,
    /// Add, remove members and change roles.
    MembersWrite,
    /// Create and disable API keys.
    ApiKeysWrite,
    /// Read the audit log.
    AuditRead,
    /// See the plan, its usage and the billing status.
    BillingRead,
    /// Manage billing.
    BillingWrite,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Developer,
        Role::Billing,
        Role::Viewer,
    ];

    /// Whether this role grants `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Admin => permission != BillingWrite,
            Role::Developer => matches!(
                permission,
                ProjectsRead | ProjectsWrite | UsageRead | MembersRead | BillingRead
            ),
            Role::Billing => matches!(
                permission,
                ProjectsRead | UsageRead | MembersRead | BillingRead | BillingWrite
            ),
            Role::Viewer => matches!(
                permission,
                ProjectsRead | UsageRead | MembersRead | BillingRead
            ),
        }
    }

    /// Stable name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Billing => "billing",
            Role::Viewer => "viewer",
        }
    }

    /// The role with this name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// Read projects.
    #[serde(rename = "projects:read")]
    ProjectsRead,
    /// Create, change and delete projects.
    #[serde(rename = "projects:write")]
    ProjectsWrite,
    /// Read usage.
    #[serde(rename = "usage:read")]
    UsageRead,
    /// Read the plan, its usage and the billing status.
    #[serde(rename = "billing:read")]
    BillingRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Scope::ProjectsRead,
        Scope::ProjectsWrite,
        Scope::UsageRead,
        Scope::BillingRead,
    ];

    /// The permission this scope grants; keys get nothing else (no members, keys or billing
    /// changes).
    pub fn permission(self) -> Permission {
        match self {
            Scope::ProjectsRead => Permission::ProjectsRead,
            Scope::ProjectsWrite => Permission::ProjectsWrite,
            Scope::UsageRead => Permission::UsageRead,
            Scope::BillingRead => Permission::BillingRead,
        }
    }

    /// Stable name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ProjectsRead => "projects:read",
            Scope::ProjectsWrite => "projects:write",
            Scope::UsageRead => "usage:read",
            Scope::BillingRead => "billing:read",
        }
    }

    /// The scope with this name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_billing_manage_billing_owners_and_admins_manage_people_and_keys() {
        for role in Role::ALL {
            assert_eq!(
                role.allows(Permission::BillingWrite),
                matches!(role, Role::Owner | Role::Billing)
            );
            let manages = matches!(role, Role::Owner | Role::Admin);
            assert_eq!(role.allows(Permission::MembersWrite), manages, "{role:?}");
            assert_eq!(role.allows(Permission::ApiKeysWrite), manages, "{role:?}");
            assert!(role.allows(Permission::ProjectsRead));
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(!Role::Viewer.allows(Permission::ProjectsWrite));
        assert!(!Role::Billing.allows(Permission::ProjectsWrite));
        assert!(Role::Developer.allows(Permission::ProjectsWrite));
    }
}
