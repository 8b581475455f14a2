//! Members and invitations: the members page, roles, inviting, removing, and accepting an
//! invitation from its emailed link.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::auth::TokenQuery;
use super::extract::{Form, OrgActor, SignedIn};
use super::flash::{self, Flash};
use super::render::{
    Confirm, Confirmation, Page, PageError, can, error_text, format_time, json_download, message,
    org_frame, outside_organisations, render,
};
use super::security::CsrfToken;
use crate::db::accounts::User;
use crate::error::ApiError;
use crate::roles::{Permission, Role};
use crate::service::{Actor, export, members};
use crate::state::AppState;

/// `GET /orgs/{org}/members`.
pub async fn members(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    members_page(&state, &csrf, &actor, StatusCode::OK, context! {}).await
}

/// Every permission, as the members page explains roles with it.
const PERMISSION_LABELS: [(Permission, &str); 9] = [
    (Permission::ProjectsRead, "See projects and their settings"),
    (
        Permission::ProjectsWrite,
        "Create, change and delete projects",
    ),
    (Permission::UsageRead, "See usage and analytics"),
    (Permission::MembersRead, "See members"),
    (
        Permission::MembersWrite,
        "Invite and remove members, change roles",
    ),
    (Permission::ApiKeysWrite, "Manage API keys"),
    (Permission::AuditRead, "Read the audit log"),
    (Permission::BillingRead, "See the plan and billing"),
    (Permission::BillingWrite, "Buy, change and cancel the plan"),
];

/// The members page, with `extra` for the template (a refusal and what was typed).
async fn members_page(
    state: &AppState,
    csrf: &CsrfToken,
    actor: &Actor,
    status: StatusCode,
    extra: Value,
) -> Result<Page, PageError> {
    let members = members::list_members(state, actor).await?;
    let invitations: Vec<Value> = members::list_invitations(state, actor)
        .await?
        .iter()
        .map(|i| context! { email => i.email, role => i.role.as_str(), expires => format_time(i.expires_at) })
        .collect();
    let roles: Vec<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
    // What each role can do, row by permission, for the page's explanation.
    let permissions: Vec<Value> = PERMISSION_LABELS
        .iter()
        .map(|(permission, label)| {
            let allowed: Vec<bool> = Role::ALL
                .iter()
                .map(|role| role.allows(*permission))
                .collect();
            context! { label => label, allowed => allowed }
        })
        .collect();
    Ok(render(
        state,
        status,
        "members.html",
        &org_frame(csrf, actor, "members"),
        context! {
            members => Value::from_serialize(members), invitations => invitations, roles => roles, permissions => permissions, can_write => can(actor, Permission::MembersWrite), is_owner => actor.is_owner(),
            ..extra
        },
    ))
}

/// A refusal of the members page's forms, shown on the page with what was typed; anything
/// else (not found, a database failure) as an error page.
async fn refused_on_members_page(
    state: &AppState,
    csrf: &CsrfToken,
    actor: &Actor,
    err: ApiError,
    typed: Value,
) -> Result<Response, PageError> {
    match err {
        ApiError::Invalid { .. } | ApiError::Conflict(_) | ApiError::Forbidden(_) => {
            let extra = context! { error => error_text(&err), ..typed };
            Ok(members_page(state, csrf, actor, err.status_code(), extra)
                .await?
                .into_response())
        }
        other => Err(other.into()),
    }
}

/// The member form.
#[derive(Debug, Deserialize)]
pub struct MemberForm {
    email: String,
    role: String,
}

/// `POST /orgs/{org}/members`: invites, or changes a member's role.
pub async fn put_member(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path(org): Path<String>,
    Form(form): Form<MemberForm>,
) -> Result<Response, PageError> {
    let result = async {
        let role = Role::parse(&form.role)
            .ok_or_else(|| ApiError::invalid("role", "Pick a role from the list."))?;
        members::put_member(&state, &actor, &form.email, role).await
    }
    .await;
    match result {
        Ok(_) => Ok(flash::redirect(
            &state,
            &format!("/orgs/{org}/members"),
            &Flash::notice("Saved."),
        )),
        Err(err) => {
            let typed = context! { typed_email => form.email, typed_role => form.role };
            refused_on_members_page(&state, &csrf, &actor, err, typed).await
        }
    }
}

/// The revoke form.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    email: String,
}

/// `POST /orgs/{org}/invitations/revoke`.
pub async fn revoke_invitation(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path(org): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Redirect, PageError> {
    members::revoke_invitation(&state, &actor, &form.email).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/members")))
}

/// `POST /orgs/{org}/members/{user}/remove`: asks first, then removes.
pub async fn remove_member(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((org, user_id)): Path<(String, String)>,
    Form(confirmation): Form<Confirmation>,
) -> Result<Response, PageError> {
    let members_page = format!("/orgs/{org}/members");
    if !confirmation.given() {
        actor.require(Permission::MembersWrite)?;
        let member = members::list_members(&state, &actor)
            .await?
            .into_iter()
            .find(|member| member.user_id == user_id)
            .ok_or(ApiError::NotFound)?;
        let confirm = Confirm {
            question: "Remove this member?",
            consequence: "They lose access to this organisation at once. You can invite them again.",
            subject: &member.email,
            button: "Remove member",
            action: format!("{members_page}/{user_id}/remove"),
            cancel: members_page,
        };
        return Ok(confirm
            .page(&state, &csrf, &actor, "members")
            .into_response());
    }
    match members::remove_member(&state, &actor, &user_id).await {
        Ok(()) => Ok(flash::redirect(
            &state,
            &members_page,
            &Flash::notice("Member removed."),
        )),
        Err(err) => refused_on_members_page(&state, &csrf, &actor, err, context! {}).await,
    }
}

/// The rename form.
#[derive(Debug, Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

/// `POST /orgs/{org}/rename` (owners).
pub async fn rename_organisation(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path(org): Path<String>,
    Form(form): Form<RenameForm>,
) -> Result<Response, PageError> {
    match members::rename_organisation(&state, &actor, &form.name).await {
        Ok(()) => Ok(flash::redirect(
            &state,
            &format!("/orgs/{org}/members"),
            &Flash::notice("Organisation renamed."),
        )),
        Err(err) => {
            refused_on_members_page(
                &state,
                &csrf,
                &actor,
                err,
                context! { typed_name => form.name },
            )
            .await
        }
    }
}

/// `GET /orgs/new`: a form to create an organisation, which is also the start page of an
/// account that belongs to none (it joined through an invitation and left, say).
pub async fn new_organisation_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, .. }: SignedIn,
) -> Result<Page, PageError> {
    new_organisation_form(&state, &csrf, &user, StatusCode::OK, context! {}).await
}

/// `POST /orgs`: creates an organisation the signed-in account owns.
pub async fn create_organisation(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    SignedIn { user, .. }: SignedIn,
    Form(form): Form<RenameForm>,
) -> Result<Response, PageError> {
    match members::create_organisation(&state, &user, &form.name).await {
        Ok(organisation_id) => Ok(flash::redirect(
            &state,
            &format!("/orgs/{organisation_id}/projects"),
            &Flash::notice("Organisation created. Create its first project."),
        )),
        Err(err @ ApiError::Invalid { .. }) => {
            let refused = context! { error => error_text(&err), typed_name => form.name };
            let status = err.status_code();
            Ok(new_organisation_form(&state, &csrf, &user, status, refused)
                .await?
                .into_response())
        }
        Err(err) => Err(err.into()),
    }
}

async fn new_organisation_form(
    state: &AppState,
    csrf: &CsrfToken,
    user: &User,
    status: StatusCode,
    refused: Value,
) -> Result<Page, PageError> {
    let memberships = members::organisations_of(state, user).await?;
    let frame = outside_organisations(csrf, Some(user));
    let organisations: Vec<Value> = memberships
        .iter()
        .map(|m| context! { id => m.organisation_id, name => m.organisation_name })
        .collect();
    let page = context! { organisations => organisations, ..refused };
    Ok(render(state, status, "new_organisation.html", &frame, page))
}

/// `POST /orgs/{org}/leave`: asks first, then the member leaves.
pub async fn leave_organisation(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path(org): Path<String>,
    Form(confirmation): Form<Confirmation>,
) -> Result<Response, PageError> {
    if !confirmation.given() {
        let confirm = Confirm {
            question: "Leave this organisation?",
            consequence: "You lose access to its projects at once. A member who may invite can invite you again.",
            subject: actor.organisation_name.as_deref().unwrap_or_default(),
            button: "Leave",
            action: format!("/orgs/{org}/leave"),
            cancel: format!("/orgs/{org}/members"),
        };
        return Ok(confirm
            .page(&state, &csrf, &actor, "members")
            .into_response());
    }
    match members::leave(&state, &actor).await {
        Ok(()) => Ok(flash::redirect(
            &state,
            "/",
            &Flash::notice("You left the organisation."),
        )),
        Err(err) => refused_on_members_page(&state, &csrf, &actor, err, context! {}).await,
    }
}

/// `GET /invitations/accept?token=…`: says whose invitation it is and how to accept it.
pub async fn invitation_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    signed_in: Option<SignedIn>,
    Query(query): Query<TokenQuery>,
) -> Result<Page, PageError> {
    let found = members::find_invitation(&state, &query.token).await?;
    let Some((organisation, invitation)) = found else {
        return Ok(message(
            &state,
            &csrf,
            StatusCode::NOT_FOUND,
            "Invitation not valid",
            "This invitation was withdrawn, already accepted or has expired. Ask for a new one.",
            Some(("/", "Go to HumanProof")),
        ));
    };
    let user = signed_in.map(|s| s.user);
    let frame = outside_organisations(&csrf, user.as_ref());
    Ok(render(
        &state,
        StatusCode::OK,
        "invitation.html",
        &frame,
        context! {
            token => query.token, organisation => organisation, email => invitation.email, role => invitation.role.as_str(),
            matches => user.as_ref().is_some_and(|u| u.email == invitation.email),
        },
    ))
}

/// `POST /invitations/accept`.
pub async fn accept_invitation(
    State(state): State<AppState>,
    SignedIn { user, .. }: SignedIn,
    Form(form): Form<TokenQuery>,
) -> Result<Redirect, PageError> {
    let organisation_id = members::accept_invitation(&state, &user, &form.token).await?;
    Ok(Redirect::to(&format!("/orgs/{organisation_id}/projects")))
}

/// `GET /orgs/{org}/export`: everything HumanProof holds about the organisation, as JSON
/// (owners only).
pub async fn export_organisation(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
) -> Result<axum::response::Response, PageError> {
    let data = export::organisation_data(&state, &actor).await?;
    Ok(json_download(
        &format!("humanproof-organisation-{}.json", actor.organisation_id),
        &data,
    ))
}
