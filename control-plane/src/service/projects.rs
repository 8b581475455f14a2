//! Projects: what a customer creates, configures and deletes, and the rules on their input.

use humanproof_protocol::preset::{
    BLOCK_THRESHOLD_RANGE, COUNT_RANGE, DIFFICULTY_RANGE, RATE_LIMIT_RANGE,
};
use humanproof_protocol::rsw::SQUARINGS_RANGE;
use humanproof_protocol::snapshot::RiskMode;
use humanproof_protocol::wire::WidgetSettings;
use humanproof_protocol::{Obfuscation, Preset, Protection, PuzzleKind, Score};
use serde::{Deserialize, Serialize};

use super::clients::checked_client;
use super::{Actor, Principal, billing};
use crate::db::projects::{self, BillingStatus, Project, ProjectSettings};
use crate::error::ApiError;
use crate::i18n;
use crate::plans::{self, Plan};
use crate::roles::Permission;
use crate::secrets;
use crate::state::AppState;

/// After a rotation the previous backend secret keeps working this long, so site backends
/// can be redeployed with the new one without failing verifications.
pub const SECRET_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;

/// Languages the widget ships (the dashboard's), after `auto` (the page's language).
pub const WIDGET_LANGUAGES: [&str; i18n::LANGUAGES.len() + 1] = {
    let mut languages = ["auto"; i18n::LANGUAGES.len() + 1];
    let mut i = 0;
    while i < i18n::LANGUAGES.len() {
        languages[i + 1] = i18n::LANGUAGES[i];
        i += 1;
    }
    languages
};

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
    /// The preset's kind of work: sha256 or rsw.
    pub puzzle: PuzzleKind,
    /// The preset's RSW squarings, read when the puzzle is rsw.
    pub squarings: u32,
    /// observe or enforce.
    pub risk_mode: RiskMode,
    /// Protected attempts per month; `null` for unlimited.
    pub monthly_limit: Option<u64>,
    /// The organisation's plan.
    pub plan: String,
    /// Widget defaults.
    pub widget: WidgetSettings,
    /// Unix ms until which the previous secret still verifies, after a rotation.
    pub previous_secret_valid_until: Option<i64>,
    /// The agency client it is filed under.
    pub client_id: Option<String>,
}

impl ProjectView {
    /// What its preset decides, as the view shows it.
    pub fn protection(&self) -> Protection {
        Protection {
            difficulty: self.difficulty,
            challenge_count: self.challenge_count,
            obfuscation: self.obfuscation,
            rate_limit: self.rate_limit,
            block_threshold: self.block_threshold,
            puzzle: self.puzzle,
            squarings: self.squarings,
        }
    }

    /// The view of a project of an organisation on `plan`.
    pub fn new(project: &Project, plan: &Plan) -> Self {
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
            puzzle: protection.puzzle,
            squarings: protection.squarings,
            risk_mode: settings.risk_mode,
            monthly_limit: settings.monthly_limit,
            plan: plan.id.clone(),
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
    /// Custom preset hard rate limit: challenge starts per visitor in two minutes, sustained,
    /// 1–10000.
    pub rate_limit: Option<u32>,
    /// Custom preset block threshold, a risk score from 1.0 to 10.0.
    pub block_threshold: Option<f64>,
    /// Custom preset kind of work: sha256 or rsw.
    pub puzzle: Option<String>,
    /// Custom preset RSW squarings, 10,000–5,000,000.
    pub squarings: Option<u32>,
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
    pub widget: Option<WidgetSettings>,
    /// File under this client of the organisation; `""` files under none.
    pub client_id: Option<String>,
}

impl ProjectInput {
    /// A Custom preset from the given numbers; the ones not given keep `current`'s, so
    /// switching to custom starts from what the project had.
    fn custom_protection(&self, current: Protection) -> Result<Protection, ApiError> {
        let difficulty = self.difficulty.unwrap_or(current.difficulty);
        if !DIFFICULTY_RANGE.contains(&difficulty) {
            return Err(ApiError::invalid(
                "difficulty",
                "A custom difficulty is 1 to 8.",
            ));
        }
        let challenge_count = self.challenge_count.unwrap_or(current.challenge_count);
        if !COUNT_RANGE.contains(&challenge_count) {
            return Err(ApiError::invalid(
                "challenge_count",
                "A custom challenge count is 1 to 500.",
            ));
        }
        let obfuscation = match self.obfuscation.as_deref() {
            None => current.obfuscation,
            Some(name) => Obfuscation::from_name(name).ok_or_else(|| {
                ApiError::invalid("obfuscation", "Use lighter, default or stronger.")
            })?,
        };
        let rate_limit = self.rate_limit.unwrap_or(current.rate_limit);
        if !RATE_LIMIT_RANGE.contains(&rate_limit) {
            return Err(ApiError::invalid(
                "rate_limit",
                "A custom rate limit is 1 to 10000 challenges per visitor in two minutes.",
            ));
        }
        let block_threshold = match self.block_threshold {
            None => current.block_threshold,
            Some(value) => Score::from_decimal(value)
                .filter(|score| BLOCK_THRESHOLD_RANGE.contains(score))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "block_threshold",
                        "A custom block threshold is a risk score from 1.0 to 10.0.",
                    )
                })?,
        };
        let puzzle = match self.puzzle.as_deref() {
            None => current.puzzle,
            Some(name) => PuzzleKind::from_name(name)
                .ok_or_else(|| ApiError::invalid("puzzle", "Use sha256 or rsw."))?,
        };
        let squarings = self.squarings.unwrap_or(current.squarings);
        if !SQUARINGS_RANGE.contains(&squarings) {
            return Err(ApiError::invalid(
                "squarings",
                "An RSW puzzle takes 10,000 to 5,000,000 squarings.",
            ));
        }
        Ok(Protection {
            difficulty,
            challenge_count,
            obfuscation,
            rate_limit,
            block_threshold,
            puzzle,
            squarings,
        })
    }

    /// Applies the input to `settings`, refusing anything out of range. The client is
    /// applied separately ([`super::clients`]), as it is not an edge setting.
    pub fn apply(self, mut settings: ProjectSettings) -> Result<ProjectSettings, ApiError> {
        let custom_fields_given = self.difficulty.is_some()
            || self.challenge_count.is_some()
            || self.obfuscation.is_some()
            || self.rate_limit.is_some()
            || self.block_threshold.is_some()
            || self.puzzle.is_some()
            || self.squarings.is_some();
        if self.preset.is_some() || custom_fields_given {
            settings.preset = match self.preset.as_deref().unwrap_or(settings.preset.name()) {
                "custom" => Preset::Custom(self.custom_protection(settings.preset.protection())?),
                "relaxed" | "balanced" | "strict" if custom_fields_given => {
                    return Err(ApiError::invalid(
                        "preset",
                        "Only the custom preset takes its own difficulty, challenge count, obfuscation, rate limit, block threshold, puzzle and squarings.",
                    ));
                }
                "relaxed" => Preset::Relaxed,
                "balanced" => Preset::Balanced,
                "strict" => Preset::Strict,
                _ => {
                    return Err(ApiError::invalid(
                        "preset",
                        "Use relaxed, balanced, strict or custom.",
                    ));
                }
            };
        }
        if let Some(name) = self.name {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(ApiError::invalid(
                    "name",
                    "Give the project a name of 1 to 100 characters.",
                ));
            }
            settings.name = name;
        }
        if let Some(domains) = self.production_domains {
            settings.production_domains = normalize_domains(domains)
                .map_err(|m| ApiError::invalid("production_domains", m))?;
        }
        if let Some(domains) = self.testing_domains {
            settings.testing_domains =
                normalize_domains(domains).map_err(|m| ApiError::invalid("testing_domains", m))?;
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
            if !WIDGET_LANGUAGES.contains(&widget.language.as_str()) {
                return Err(ApiError::invalid(
                    "widget.language",
                    format!("Use one of {}.", WIDGET_LANGUAGES.join(", ")),
                ));
            }
            settings.widget = widget;
        }
        if settings.production_domains.is_empty() && settings.testing_domains.is_empty() {
            return Err(ApiError::invalid(
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

/// The organisation's projects.
pub async fn list_projects(state: &AppState, actor: &Actor) -> Result<Vec<ProjectView>, ApiError> {
    actor.require(Permission::ProjectsRead)?;
    let plan = billing::current_plan(state, actor).await?;
    Ok(
        projects::list_for_organisation(&state.db, &actor.organisation_id)
            .await?
            .iter()
            .map(|project| ProjectView::new(project, &plan))
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
    let project = find_project(state, actor, project_id).await?;
    let plan = billing::current_plan(state, actor).await?;
    Ok(ProjectView::new(&project, &plan))
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
        return Err(ApiError::invalid("name", "Give the project a name."));
    }
    // The project's own plan and status are for operators' projects without an
    // organisation; this one is served on its organisation's (see `snapshot`).
    let defaults = ProjectSettings::new_project(plans::FREE, BillingStatus::Active);
    let client = input.client_id.clone();
    let settings = input.apply(defaults)?;
    let plan = billing::current_plan(state, actor).await?;
    check_plan(&plan, None, &settings)?;
    if let Some(max) = plan.max_projects {
        let existing = projects::list_for_organisation(&state.db, &actor.organisation_id).await?;
        if existing.len() >= max as usize {
            return Err(billing::not_in_plan(
                &plan,
                "name",
                &format!("more than {max} projects"),
            ));
        }
    }
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
    state.publish_changes().await;
    Ok((ProjectView::new(&project, &plan), secret))
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
    let plan = billing::current_plan(state, actor).await?;
    check_plan(&plan, Some(&project.settings), &settings)?;
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
    state.publish_changes().await;
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
    state.publish_changes().await;
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
    state.publish_changes().await;
    Ok(key_version)
}

/// Refuses settings the plan does not include. A widget look the plan lacks is refused
/// whenever it would be saved, since the edge would refuse every visitor of the project (so a
/// project left over from a bigger plan must be brought within this one by its next change);
/// a Custom preset only when the change sets it, since the edge serves it on any plan.
fn check_plan(
    plan: &Plan,
    before: Option<&ProjectSettings>,
    settings: &ProjectSettings,
) -> Result<(), ApiError> {
    billing::check_widget(plan, settings.widget.variant, settings.widget.branding)?;
    let sets_custom = matches!(settings.preset, Preset::Custom(_))
        && before.is_none_or(|before| before.preset != settings.preset);
    if sets_custom && !plan.custom_presets {
        return Err(billing::not_in_plan(plan, "preset", "the custom preset"));
    }
    Ok(())
}

/// One of the actor's organisation's projects; another organisation's id is not found (404).
pub(super) async fn find_project(
    state: &AppState,
    actor: &Actor,
    project_id: &str,
) -> Result<Project, ApiError> {
    projects::find_in_organisation(&state.db, &actor.organisation_id, project_id)
        .await?
        .ok_or(ApiError::NotFound)
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
