//! The data a person or an organisation can take with them: everything HumanProof holds
//! about them, as JSON, on request, without waiting for an operator.

use serde_json::{Value, json};

use super::Actor;
use super::projects::ProjectView;
use crate::db::accounts::{self, User};
use crate::db::{orgs, passkeys, projects, stats, support, telemetry};
use crate::error::ApiError;
use crate::state::AppState;

/// How many audit entries an export carries (the log's newest).
const AUDIT_ENTRIES: i64 = 1000;

/// Everything about a person's account: profile, memberships, sign-in factors (what they
/// are, never their secrets), sessions (when, never their tokens), and the audit entries of
/// what they did or what was done to their account, in every organisation, and the messages
/// they sent through the contact form while signed in.
pub async fn account_data(state: &AppState, user: &User) -> Result<Value, ApiError> {
    let memberships = orgs::memberships(&state.db, &user.id).await?;
    let passkeys = passkeys::list(&state.db, &user.id).await?;
    let sessions = accounts::sessions(&state.db, &user.id).await?;
    let audit = orgs::audit_about_user(&state.db, &user.email, &user.id, AUDIT_ENTRIES).await?;
    let messages = support::sent_by(&state.db, &user.id).await?;
    Ok(json!({
        "exported_at": state.clock.now_ms(),
        "account": {
            "id": user.id, "email": user.email, "email_verified": user.email_verified,
            "language": user.language,
            "marked_for_deletion": user.status == accounts::UserStatus::MarkedForDeletion,
            "two_factor": { "totp": user.totp_enabled, "passkeys": passkeys },
        },
        "memberships": memberships,
        "sessions": sessions,
        "contact_messages": messages,
        "audit": audit,
    }))
}

/// Everything about the actor's organisation (owners only): its members, clients, projects
/// (settings; secrets are stored hashed and not included), API keys (what they are, not the
/// keys), monthly usage, the daily statistics still kept, billing, and the audit log.
pub async fn organisation_data(state: &AppState, actor: &Actor) -> Result<Value, ApiError> {
    if !actor.is_owner() {
        return Err(ApiError::Forbidden("owners_only"));
    }
    let organisation_id = &actor.organisation_id;
    let name = orgs::organisation_name(&state.db, organisation_id).await?;
    let plan = super::billing::current_plan(state, actor).await?;
    let mut project_data = Vec::new();
    for project in projects::list_for_organisation(&state.db, organisation_id).await? {
        let mut usage = Vec::new();
        for month in stats::usage_months(&state.db, &project.id).await? {
            let counters = telemetry::usage(&state.db, &project.id, &month).await?;
            usage.push(json!({ "month": month, "usage": counters }));
        }
        let days = stats::project_days(&state.db, &project.id, "0000-01-01", "9999-12-31").await?;
        project_data.push(json!({
            "project": ProjectView::new(&project, &plan), "usage": usage, "daily_statistics": days,
        }));
    }
    let billing = super::billing::overview_of(
        &state.db,
        &state.plans,
        organisation_id,
        state.clock.now_ms(),
    )
    .await?;
    Ok(json!({
        "exported_at": state.clock.now_ms(),
        "organisation": { "id": organisation_id, "name": name },
        "members": orgs::members(&state.db, organisation_id).await?,
        "clients": orgs::clients(&state.db, organisation_id).await?,
        "projects": project_data,
        "api_keys": orgs::list_api_keys(&state.db, organisation_id).await?,
        "billing": billing,
        "audit": orgs::audit_log(&state.db, organisation_id, AUDIT_ENTRIES).await?,
    }))
}
