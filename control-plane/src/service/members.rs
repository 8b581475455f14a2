//! Members of an organisation: roles, invitations by email, and the last-owner rule.

use super::{Actor, Principal, billing};
use crate::db::accounts::{self, User};
use crate::db::orgs::{self, Member};
use crate::error::ApiError;
use crate::i18n;
use crate::roles::{Permission, Role};
use crate::secrets;
use crate::state::AppState;

/// The organisations `user` belongs to, the oldest organisation first.
pub async fn organisations_of(
    state: &AppState,
    user: &User,
) -> Result<Vec<orgs::Membership>, ApiError> {
    Ok(orgs::memberships(&state.db, &user.id).await?)
}

/// The organisation's members.
pub async fn list_members(state: &AppState, actor: &Actor) -> Result<Vec<Member>, ApiError> {
    actor.require(Permission::MembersRead)?;
    Ok(orgs::members(&state.db, &actor.organisation_id).await?)
}

/// How long an invitation link works.
pub const INVITATION_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Changes a member's role, or invites the address by email when it is not a member yet.
/// Returns whether an invitation was sent.
pub async fn put_member(
    state: &AppState,
    actor: &Actor,
    email: &str,
    role: Role,
) -> Result<bool, ApiError> {
    actor.require(Permission::MembersWrite)?;
    if role == Role::Owner && !actor.is_owner() {
        return Err(ApiError::Forbidden("only_owners_appoint_owners"));
    }
    let email = crate::accounts::normalize_email(email)
        .map_err(|_| ApiError::invalid("email", "Enter a valid email address."))?;
    let members = orgs::members(&state.db, &actor.organisation_id).await?;
    let Some(member) = members.iter().find(|m| m.email == email) else {
        let plan = billing::current_plan(state, actor).await?;
        if let Some(max) = plan.max_members {
            let pending =
                orgs::pending_invitations(&state.db, &actor.organisation_id, state.clock.now_ms())
                    .await?;
            let already_invited = pending.iter().any(|invitation| invitation.email == email);
            if !already_invited && members.len() + pending.len() >= max as usize {
                return Err(billing::not_in_plan(
                    &plan,
                    "email",
                    &format!("more than {max} members"),
                ));
            }
        }
        invite(state, actor, &email, role).await?;
        return Ok(true);
    };
    if member.role == Role::Owner && !actor.is_owner() {
        return Err(ApiError::Forbidden("only_owners_change_owners"));
    }
    change_membership(
        state,
        actor,
        &member.user_id,
        orgs::MembershipChange::SetRole(role),
    )
    .await?;
    actor
        .audit(
            state,
            &format!("member.role_set.{}", role.as_str()),
            Some(&email),
        )
        .await?;
    Ok(false)
}

async fn invite(state: &AppState, actor: &Actor, email: &str, role: Role) -> Result<(), ApiError> {
    let token = secrets::new_token();
    let now = state.clock.now_ms();
    let inviter = actor.audit_name();
    let invitation = orgs::Invitation {
        email: email.to_owned(),
        role,
        expires_at: now + INVITATION_TTL_MS,
    };
    orgs::insert_invitation(
        &state.db,
        &secrets::hash_secret(&token),
        &actor.organisation_id,
        &invitation,
        &inviter,
        now,
    )
    .await?;
    let organisation = actor.organisation_name.clone().unwrap_or_default();
    let link = format!("{}/invitations/accept?token={token}", state.web.public_url);
    let lang = invitation_language(state, actor, email).await?;
    let body = "You are invited to join {organisation} on HumanProof as {role}.\n\nAccept within 7 days (sign up with this address first if you have no account):\n\n{link}\n";
    let values = [
        ("organisation", organisation.as_str()),
        ("role", i18n::translate(&lang, role.as_str())),
        ("link", &link),
    ];
    let message = crate::mail::Email {
        to: email.to_owned(),
        subject: i18n::fill(
            i18n::translate(&lang, "You are invited to {organisation} on HumanProof"),
            &values,
        ),
        body: i18n::fill(i18n::translate(&lang, body), &values),
        reply_to: None,
    };
    if let Err(err) = state.mailer.send(&message).await {
        tracing::error!(error = %err, "could not send an invitation");
    }
    actor
        .audit(
            state,
            &format!("member.invited.{}", role.as_str()),
            Some(email),
        )
        .await
}

/// The language an invitation is written in: the invitee's, when they have an account;
/// otherwise the inviting member's, who likely shares it; English for API keys.
async fn invitation_language(
    state: &AppState,
    actor: &Actor,
    email: &str,
) -> Result<String, ApiError> {
    if let Some((invitee, _)) = accounts::find_user_by_email(&state.db, email).await? {
        return Ok(invitee.language);
    }
    Ok(match &actor.principal {
        Principal::Member { user, .. } => user.language.clone(),
        Principal::ApiKey(_) => i18n::DEFAULT.to_owned(),
    })
}

/// Pending invitations.
pub async fn list_invitations(
    state: &AppState,
    actor: &Actor,
) -> Result<Vec<orgs::Invitation>, ApiError> {
    actor.require(Permission::MembersRead)?;
    Ok(orgs::pending_invitations(&state.db, &actor.organisation_id, state.clock.now_ms()).await?)
}

/// Withdraws a pending invitation.
pub async fn revoke_invitation(
    state: &AppState,
    actor: &Actor,
    email: &str,
) -> Result<(), ApiError> {
    actor.require(Permission::MembersWrite)?;
    if !orgs::revoke_invitation(&state.db, &actor.organisation_id, email).await? {
        return Err(ApiError::NotFound);
    }
    actor
        .audit(state, "member.invitation_revoked", Some(email))
        .await
}

/// The pending invitation a link's token names: the organisation's name and the invitation.
pub async fn find_invitation(
    state: &AppState,
    token: &str,
) -> Result<Option<(String, orgs::Invitation)>, ApiError> {
    let found = orgs::find_invitation(
        &state.db,
        &secrets::hash_secret(token),
        state.clock.now_ms(),
    )
    .await?;
    Ok(found.map(|(_, organisation, invitation)| (organisation, invitation)))
}

/// Accepts an invitation as `user`, whose address must be the invited one. Returns the
/// organisation joined.
pub async fn accept_invitation(
    state: &AppState,
    user: &User,
    token: &str,
) -> Result<String, ApiError> {
    let now = state.clock.now_ms();
    let token_hash = secrets::hash_secret(token);
    let (_, _, invitation) = orgs::find_invitation(&state.db, &token_hash, now)
        .await?
        .ok_or(ApiError::NotFound)?;
    if invitation.email != user.email {
        return Err(ApiError::Forbidden("invitation_for_another_address"));
    }
    let organisation_id = orgs::accept_invitation(&state.db, &token_hash, &user.id, now)
        .await?
        .ok_or(ApiError::NotFound)?;
    orgs::audit(
        &state.db,
        Some(&organisation_id),
        &format!("user:{}", user.email),
        "member.joined",
        Some(&user.email),
        now,
    )
    .await?;
    Ok(organisation_id)
}

/// Removes a member; the last owner stays.
pub async fn remove_member(state: &AppState, actor: &Actor, user_id: &str) -> Result<(), ApiError> {
    actor.require(Permission::MembersWrite)?;
    let members = orgs::members(&state.db, &actor.organisation_id).await?;
    let member = members
        .iter()
        .find(|m| m.user_id == user_id)
        .ok_or(ApiError::NotFound)?;
    if member.role == Role::Owner && !actor.is_owner() {
        return Err(ApiError::Forbidden("only_owners_remove_owners"));
    }
    change_membership(state, actor, user_id, orgs::MembershipChange::Remove).await?;
    actor
        .audit(state, "member.removed", Some(&member.email))
        .await
}

/// Renames the organisation (owners only).
pub async fn rename_organisation(
    state: &AppState,
    actor: &Actor,
    name: &str,
) -> Result<(), ApiError> {
    if !actor.is_owner() {
        return Err(ApiError::Forbidden("owners_only"));
    }
    let name = organisation_name(name)?;
    orgs::rename_organisation(&state.db, &actor.organisation_id, name).await?;
    actor.audit(state, "organisation.renamed", Some(name)).await
}

/// Most organisations one account may own: more than anyone needs, and a bound on what a
/// script can create through one account.
pub const MAX_OWNED_ORGANISATIONS: usize = 10;

/// Creates an organisation with `user` as its owner (on the free plan, as every new one is),
/// e.g. for someone who joined through an invitation and now wants one of their own. Returns
/// its id.
pub async fn create_organisation(
    state: &AppState,
    user: &User,
    name: &str,
) -> Result<String, ApiError> {
    let name = organisation_name(name)?;
    let owned = orgs::memberships(&state.db, &user.id)
        .await?
        .iter()
        .filter(|membership| membership.role == Role::Owner)
        .count();
    if owned >= MAX_OWNED_ORGANISATIONS {
        return Err(ApiError::invalid(
            "name",
            "You own 10 organisations, the most one account may own.",
        ));
    }
    let now = state.clock.now_ms();
    let organisation_id = orgs::create_organisation(&state.db, name, &user.id, now).await?;
    orgs::audit(
        &state.db,
        Some(&organisation_id),
        &format!("user:{}", user.email),
        "organisation.created",
        Some(name),
        now,
    )
    .await?;
    Ok(organisation_id)
}

/// An organisation's name as given, trimmed, or why it cannot be one.
fn organisation_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "Give the organisation a name of 1 to 100 characters.",
        ));
    }
    Ok(name)
}

/// The signed-in member leaves the organisation; its last owner cannot.
pub async fn leave(state: &AppState, actor: &Actor) -> Result<(), ApiError> {
    let Principal::Member { user, .. } = &actor.principal else {
        return Err(ApiError::Forbidden("members_only"));
    };
    change_membership(state, actor, &user.id, orgs::MembershipChange::Remove).await?;
    actor.audit(state, "member.left", Some(&user.email)).await
}

/// Applies a membership change; the last owner rule is checked by the database layer in the
/// same transaction as the change, so parallel requests cannot both pass it.
async fn change_membership(
    state: &AppState,
    actor: &Actor,
    user_id: &str,
    change: orgs::MembershipChange,
) -> Result<(), ApiError> {
    orgs::change_membership(&state.db, &actor.organisation_id, user_id, change)
        .await
        .map_err(|err| match err {
            orgs::MembershipError::LastOwner => ApiError::Conflict("last_owner"),
            orgs::MembershipError::NotMember => ApiError::NotFound,
            orgs::MembershipError::Database(err) => err.into(),
        })
}
