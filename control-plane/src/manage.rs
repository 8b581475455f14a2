//! What customers do to their organisation, checked once for both front doors.
//!
//! The dashboard (a signed-in member) and the `/api/v1` API (an API key) both build an
//! [`Actor`] bound to one organisation and call these functions. Each function checks one
//! [`Permission`] and reaches projects, keys and members only through the actor's
//! organisation, so another organisation's ids find nothing (404, not 403, so ids do not
//! leak). Changes that matter to the edge are published before the function returns; if
//! publishing fails the change stays pending and the background publisher retries it.

use humanproof_protocol::preset::{
    BLOCK_THRESHOLD_RANGE, COUNT_RANGE, DIFFICULTY_RANGE, RATE_LIMIT_RANGE,
};
use humanproof_protocol::snapshot::RiskMode;
use humanproof_protocol::{Obfuscation, Preset, Protection, Score};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::db::accounts::{self, User};
use crate::db::month_of;
use crate::db::orgs::{self, ApiKey, AuditEntry, Member};
use crate::db::projects::{
    self, BillingStatus, LANGUAGES, Project, ProjectSettings, SIZES, THEMES, WidgetOptions,
};
use crate::db::telemetry::{self, Dimension, NetworkStarts, RiskOverview, Usage};
use crate::error::ApiError;
use crate::i18n;
use crate::roles::{Permission, Role, Scope};
use crate::secrets;

/// After a rotation the previous backend secret keeps working this long, so site backends
/// can be redeployed with the new one without failing verifications.
pub const SECRET_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;

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
        let membership = orgs::membership(&state.db, organisation_id, &user.id).await?;
        Ok(membership.map(|m| Actor {
            organisation_id: m.organisation_id,
            organisation_name: Some(m.organisation_name),
            principal: Principal::Member { user, role: m.role },
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

    async fn audit(
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

/// A project as the API returns it and the dashboard shows it. Never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectView {
    /// Id.
    pub id: String,
    /// Public site key.
    pub site_key: String,
    /// Name.
    pub name: String,
    /// Not paused.
    pub active: bool,
    /// Production hostnames.
    pub production_domains: Vec<String>,
    /// Testing hostnames.
    pub testing_domains: Vec<String>,
    /// Whether subdomains match.
    pub allow_subdomains: bool,
    /// relaxed, balanced, strict or custom.
    pub preset: String,
    /// The preset's difficulty.
    pub difficulty: u32,
    /// The preset's sub-challenge count.
    pub challenge_count: u32,
    /// The preset's obfuscation of the environment check: lighter, default or stronger.
    pub obfuscation: Obfuscation,
    /// The preset's challenge starts per visitor (hashed IP) in two minutes.
    pub rate_limit: u32,
    /// The preset's risk score (0–10) from which enforce mode blocks.
    pub block_threshold: Score,
    /// observe or enforce.
    pub risk_mode: RiskMode,
    /// Protected attempts per month; `null` for unlimited.
    pub monthly_limit: Option<u64>,
    /// Plan (set by billing).
    pub plan: String,
    /// Widget defaults.
    pub widget: WidgetOptions,
    /// Unix ms until which the previous secret still verifies, after a rotation.
    pub previous_secret_valid_until: Option<i64>,
    /// The agency client it is filed under.
    pub client_id: Option<String>,
}

impl From<&Project> for ProjectView {
    fn from(project: &Project) -> Self {
        let settings = &project.settings;
        let protection = settings.preset.protection();
        Self {
            id: project.id.clone(),
            site_key: project.site_key.clone(),
            name: settings.name.clone(),
            active: settings.active,
            production_domains: settings.production_domains.clone(),
            testing_domains: settings.testing_domains.clone(),
            allow_subdomains: settings.allow_subdomains,
            preset: settings.preset.name().to_owned(),
            difficulty: protection.difficulty,
            challenge_count: protection.challenge_count,
            obfuscation: protection.obfuscation,
            rate_limit: protection.rate_limit,
            block_threshold: protection.block_threshold,
            risk_mode: settings.risk_mode,
            monthly_limit: settings.monthly_limit,
            plan: settings.plan.clone(),
            widget: settings.widget.clone(),
            previous_secret_valid_until: project.previous_secret_expires_at,
            client_id: project.client_id.clone(),
        }
    }
}

/// What a customer sends to create or change a project. Missing fields keep their current
/// value (or the default, on creation).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectInput {
    /// 1–100 characters.
    pub name: Option<String>,
    /// Hostnames, e.g. `example.com`.
    pub production_domains: Option<Vec<String>>,
    /// Hostnames, e.g. `localhost`.
    pub testing_domains: Option<Vec<String>>,
    /// Let subdomains match.
    pub allow_subdomains: Option<bool>,
    /// relaxed, balanced, strict or custom.
    pub preset: Option<String>,
    /// Custom preset difficulty, 1–8.
    pub difficulty: Option<u32>,
    /// Custom preset sub-challenge count, 1–500.
    pub challenge_count: Option<u32>,
    /// Custom preset obfuscation: lighter, default or stronger.
    pub obfuscation: Option<String>,
    /// Custom preset challenge starts per visitor in two minutes, 1–1000.
    pub rate_limit: Option<u32>,
    /// Custom preset block threshold, a risk score from 1.0 to 10.0.
    pub block_threshold: Option<f64>,
    /// observe or enforce.
    pub risk_mode: Option<RiskMode>,
    /// Protected attempts allowed per month.
    pub monthly_limit: Option<u64>,
    /// Remove the monthly limit.
    #[serde(default)]
    pub unlimited: bool,
    /// false pauses the project.
    pub active: Option<bool>,
    /// Widget defaults.
    pub widget: Option<WidgetOptions>,
    /// File under this client of the organisation; `""` files under none.
    pub client_id: Option<String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        field,
        message: message.into(),
    }
}

impl ProjectInput {
    /// A Custom preset from the given numbers; the ones not given keep `current`'s, so
    /// switching to custom starts from what the project had.
    fn custom_protection(&self, current: Protection) -> Result<Protection, ApiError> {
        let difficulty = self.difficulty.unwrap_or(current.difficulty);
        if !DIFFICULTY_RANGE.contains(&difficulty) {
            return Err(invalid("difficulty", "A custom difficulty is 1 to 8."));
        }
        let challenge_count = self.challenge_count.unwrap_or(current.challenge_count);
        if !COUNT_RANGE.contains(&challenge_count) {
            return Err(invalid(
                "challenge_count",
                "A custom challenge count is 1 to 500.",
            ));
        }
        let obfuscation = match self.obfuscation.as_deref() {
            None => current.obfuscation,
            Some(name) => Obfuscation::from_name(name)
                .ok_or_else(|| invalid("obfuscation", "Use lighter, default or stronger."))?,
        };
        let rate_limit = self.rate_limit.unwrap_or(current.rate_limit);
        if !RATE_LIMIT_RANGE.contains(&rate_limit) {
            return Err(invalid(
                "rate_limit",
                "A custom rate limit is 1 to 1000 challenges per visitor in two minutes.",
            ));
        }
        let block_threshold = match self.block_threshold {
            None => current.block_threshold,
            Some(value) => Score::from_decimal(value)
                .filter(|score| BLOCK_THRESHOLD_RANGE.contains(score))
                .ok_or_else(|| {
                    invalid(
                        "block_threshold",
                        "A custom block threshold is a risk score from 1.0 to 10.0.",
                    )
                })?,
        };
        Ok(Protection {
            difficulty,
            challenge_count,
            obfuscation,
            rate_limit,
            block_threshold,
        })
    }

    /// Applies the input to `settings`, refusing anything out of range. The client is
    /// applied separately ([`file_under_client`]), as it is not an edge setting.
    pub fn apply(self, mut settings: ProjectSettings) -> Result<ProjectSettings, ApiError> {
        let custom_fields_given = self.difficulty.is_some()
            || self.challenge_count.is_some()
            || self.obfuscation.is_some()
            || self.rate_limit.is_some()
            || self.block_threshold.is_some();
        if self.preset.is_some() || custom_fields_given {
            settings.preset = match self.preset.as_deref().unwrap_or(settings.preset.name()) {
                "custom" => Preset::Custom(self.custom_protection(settings.preset.protection())?),
                "relaxed" | "balanced" | "strict" if custom_fields_given => {
                    return Err(invalid(
                        "preset",
                        "Only the custom preset takes its own difficulty, challenge count, obfuscation, rate limit and block threshold.",
                    ));
                }
                "relaxed" => Preset::Relaxed,
                "balanced" => Preset::Balanced,
                "strict" => Preset::Strict,
                _ => {
                    return Err(invalid(
                        "preset",
                        "Use relaxed, balanced, strict or custom.",
                    ));
                }
            };
        }
        if let Some(name) = self.name {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(invalid(
                    "name",
                    "Give the project a name of 1 to 100 characters.",
                ));
            }
            settings.name = name;
        }
        if let Some(domains) = self.production_domains {
            settings.production_domains =
                normalize_domains(domains).map_err(|m| invalid("production_domains", m))?;
        }
        if let Some(domains) = self.testing_domains {
            settings.testing_domains =
                normalize_domains(domains).map_err(|m| invalid("testing_domains", m))?;
        }
        if let Some(allow) = self.allow_subdomains {
            settings.allow_subdomains = allow;
        }
        if let Some(mode) = self.risk_mode {
            settings.risk_mode = mode;
        }
        if self.unlimited {
            settings.monthly_limit = None;
        } else if let Some(limit) = self.monthly_limit {
            settings.monthly_limit = Some(limit);
        }
        if let Some(active) = self.active {
            settings.active = active;
        }
        if let Some(widget) = self.widget {
            if !THEMES.contains(&widget.theme.as_str()) {
                return Err(invalid("widget.theme", "Use auto, light or dark."));
            }
            if !SIZES.contains(&widget.size.as_str()) {
                return Err(invalid("widget.size", "Use normal or compact."));
            }
            if !LANGUAGES.contains(&widget.language.as_str()) {
                return Err(invalid(
                    "widget.language",
                    format!("Use one of {}.", LANGUAGES.join(", ")),
                ));
            }
            settings.widget = widget;
        }
        if settings.production_domains.is_empty() && settings.testing_domains.is_empty() {
            return Err(invalid(
                "production_domains",
                "List at least one domain the widget will run on.",
            ));
        }
        Ok(settings)
    }
}

/// Lowercase hostnames without scheme, path or port.
pub fn normalize_domains(domains: Vec<String>) -> Result<Vec<String>, String> {
    let mut normalized: Vec<String> = Vec::new();
    for domain in domains {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            continue;
        }
        let valid = domain.len() <= 253
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !domain.starts_with(['.', '-']);
        if !valid {
            let message =
                "Not a hostname: {domain}. Give e.g. example.com, without scheme, path or port.";
            return Err(i18n::fill(
                i18n::translate(i18n::request_language(), message),
                &[("domain", format!("{domain:?}"))],
            ));
        }
        if !normalized.contains(&domain) {
            normalized.push(domain);
        }
    }
    Ok(normalized)
}

async fn publish(state: &AppState) {
    if let Err(err) = state
        .publisher
        .publish_pending(&state.db, state.clock.now_ms())
        .await
    {
        tracing::warn!(error = %err, "publishing the snapshot failed; the background publisher will retry");
        state.publish_wake.notify_one();
    }
}

async fn find_project(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<Project, ApiError> {
    projects::find_in_organisation(&state.db, &actor.organisation_id, project_id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// The client a project should be filed under: `None` to leave it, `Some(None)` for no
/// client, `Some(Some(id))` for one of the actor's organisation's clients (another
/// organisation's client id is refused like an unknown one).
async fn checked_client(
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
                Err(invalid("client_id", "No such client in this organisation."))
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
        return Err(invalid(
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

/// The organisation's projects.
pub async fn list_projects(state: &AppState, actor: &Actor) -> Result<Vec<ProjectView>, ApiError> {
    actor.require(Permission::ProjectsRead)?;
    Ok(
        projects::list_for_organisation(&state.db, &actor.organisation_id)
            .await?
            .iter()
            .map(ProjectView::from)
            .collect(),
    )
}

/// One project.
pub async fn get_project(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<ProjectView, ApiError> {
    actor.require(Permission::ProjectsRead)?;
    Ok(ProjectView::from(
        &find_project(state, actor, project_id).await?,
    ))
}

/// Creates a project on the free plan; the backend secret is returned this once.
pub async fn create_project(
    state: &AppState,
    actor: &Actor,
    input: ProjectInput,
) -> Result<(ProjectView, String), ApiError> {
    actor.require(Permission::ProjectsWrite)?;
    require_verified(actor)?;
    if input.name.is_none() {
        return Err(invalid("name", "Give the project a name."));
    }
    let defaults = ProjectSettings::new_project("free", BillingStatus::Active);
    let client = input.client_id.clone();
    let settings = input.apply(defaults)?;
    let client = checked_client(state, actor, client).await?;
    let secret = secrets::new_backend_secret();
    let project = projects::insert(
        &state.db,
        Some(&actor.organisation_id),
        &settings,
        &secrets::new_site_key(),
        &secret,
        state.clock.now_ms(),
    )
    .await?;
    if let Some(client) = client {
        projects::set_client(&state.db, &project.id, client.as_deref()).await?;
    }
    actor
        .audit(state, "project.created", Some(&project.id))
        .await?;
    publish(state).await;
    Ok((ProjectView::from(&project), secret))
}

/// Changes a project.
pub async fn update_project(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
    input: ProjectInput,
) -> Result<ProjectView, ApiError> {
    actor.require(Permission::ProjectsWrite)?;
    let project = find_project(state, actor, project_id).await?;
    let was_active = project.settings.active;
    let client = input.client_id.clone();
    let settings = input.apply(project.settings.clone())?;
    let client = checked_client(state, actor, client).await?;
    projects::update_settings(&state.db, &project.id, &settings, state.clock.now_ms()).await?;
    if let Some(client) = client {
        projects::set_client(&state.db, &project.id, client.as_deref()).await?;
    }
    let action = match (was_active, settings.active) {
        (true, false) => "project.paused",
        (false, true) => "project.resumed",
        _ => "project.updated",
    };
    actor.audit(state, action, Some(&project.id)).await?;
    publish(state).await;
    get_project(state, actor, project_id).await
}

/// Deletes a project; the edge stops serving its site key.
pub async fn delete_project(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<(), ApiError> {
    actor.require(Permission::ProjectsWrite)?;
    let project = find_project(state, actor, project_id).await?;
    projects::delete(&state.db, &project, state.clock.now_ms()).await?;
    actor
        .audit(state, "project.deleted", Some(&project.id))
        .await?;
    publish(state).await;
    Ok(())
}

/// A new backend secret, shown this once, and until when the one it replaced still works.
#[derive(Debug, Clone)]
pub struct RotatedSecret {
    /// The new secret.
    pub secret: String,
    /// Until when the previous secret is still accepted, Unix ms.
    pub previous_secret_valid_until: i64,
}

/// Replaces a project's backend secret; the old one keeps working for an overlap so
/// backends can switch without downtime. Needs only `projects:write`: the answer is built
/// from what this call wrote, not from a second read a write-only key could not make.
pub async fn rotate_secret(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<RotatedSecret, ApiError> {
    actor.require(Permission::ProjectsWrite)?;
    let project = find_project(state, actor, project_id).await?;
    let secret = secrets::new_backend_secret();
    let now = state.clock.now_ms();
    let previous_secret_valid_until = now + SECRET_OVERLAP_MS;
    projects::rotate_secret(
        &state.db,
        &project.id,
        &secret,
        previous_secret_valid_until,
        now,
    )
    .await?;
    actor
        .audit(state, "project.secret_rotated", Some(&project.id))
        .await?;
    Ok(RotatedSecret {
        secret,
        previous_secret_valid_until,
    })
}

/// Invalidates every outstanding challenge and verification token of a project: its token
/// key moves to the next version, at once for siteverify and, once published, at the edge.
/// Returns the new key version.
pub async fn revoke_tokens(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<u32, ApiError> {
    actor.require(Permission::ProjectsWrite)?;
    let project = find_project(state, actor, project_id).await?;
    let key_version =
        projects::bump_key_version(&state.db, &project.id, state.clock.now_ms()).await?;
    actor
        .audit(state, "project.tokens_revoked", Some(&project.id))
        .await?;
    publish(state).await;
    Ok(key_version)
}

/// A project's usage for a month (`YYYY-MM`, default the current one).
pub async fn project_usage(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
    month: Option<&str>,
) -> Result<(String, Usage), ApiError> {
    actor.require(Permission::UsageRead)?;
    let project = find_project(state, actor, project_id).await?;
    let month = match month {
        Some(month) if is_month(month) => month.to_owned(),
        Some(_) => return Err(invalid("month", "Give the month as YYYY-MM.")),
        None => month_of(state.clock.now_ms()),
    };
    let usage = telemetry::usage(&state.db, &project.id, &month).await?;
    Ok((month, usage))
}

/// How far back the risk view looks.
pub const RISK_VIEW_WINDOW_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Countries and networks the risk view lists.
const TOP_NETWORKS: i64 = 10;

/// What the risk view shows about a project.
#[derive(Debug, Clone)]
pub struct ProjectRisk {
    /// The project.
    pub project: ProjectView,
    /// Its recent starts.
    pub overview: RiskOverview,
    /// The month the country and network counts are for.
    pub month: String,
    /// This month's busiest countries.
    pub countries: Vec<NetworkStarts>,
    /// This month's busiest networks (AS numbers).
    pub networks: Vec<NetworkStarts>,
}

/// A project's recent risk decisions, for reviewing before switching observe to enforce.
pub async fn project_risk(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<ProjectRisk, ApiError> {
    actor.require(Permission::UsageRead)?;
    let project = find_project(state, actor, project_id).await?;
    let now = state.clock.now_ms();
    let month = month_of(now);
    Ok(ProjectRisk {
        overview: telemetry::risk_overview(&state.db, &project.id, now - RISK_VIEW_WINDOW_MS)
            .await?,
        countries: telemetry::top_networks(
            &state.db,
            &project.id,
            &month,
            Dimension::Country,
            TOP_NETWORKS,
        )
        .await?,
        networks: telemetry::top_networks(
            &state.db,
            &project.id,
            &month,
            Dimension::Asn,
            TOP_NETWORKS,
        )
        .await?,
        project: ProjectView::from(&project),
        month,
    })
}

fn is_month(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 7
        && bytes[4] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit())
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
        .map_err(|_| invalid("email", "Enter a valid email address."))?;
    let members = orgs::members(&state.db, &actor.organisation_id).await?;
    let Some(member) = members.iter().find(|m| m.email == email) else {
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
        return Err(invalid(
            "name",
            "Give the key a name of 1 to 100 characters.",
        ));
    }
    if scopes.is_empty() {
        return Err(invalid("scopes", "Pick at least one scope."));
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

/// The newest audit entries.
pub async fn audit_log(state: &AppState, actor: &Actor) -> Result<Vec<AuditEntry>, ApiError> {
    actor.require(Permission::AuditRead)?;
    Ok(orgs::audit_log(&state.db, &actor.organisation_id, 200).await?)
}

/// Creating projects needs a confirmed address, so sign-ups cannot mass-produce site keys.
fn require_verified(actor: &Actor) -> Result<(), ApiError> {
    match &actor.principal {
        Principal::Member { user, .. } if !user.email_verified => {
            Err(ApiError::Forbidden("email_not_verified"))
        }
        _ => Ok(()),
    }
}
