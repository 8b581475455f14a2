//! Project pages: the list, the settings form (create, change, rotate the secret, revoke
//! tokens, delete) and the integration page (snippet and siteverify samples).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use humanproof_protocol::wire::WidgetSettings;
use humanproof_protocol::{Protection, Score};
use minijinja::{Value, context};
use serde::Deserialize;

use super::charts;
use super::extract::{Form, OrgActor};
use super::flash::{self, Flash};
use super::render::{Confirm, Confirmation, Page, PageError, can, org_frame, render};
use super::security::CsrfToken;
use crate::error::ApiError;
use crate::i18n;
use crate::roles::Permission;
use crate::service::projects::{self, ProjectInput, ProjectView, WIDGET_LANGUAGES};
use crate::service::{Actor, billing, clients, usage};
use crate::state::AppState;

/// A project as templates see it.
pub(super) fn view(project: &ProjectView) -> Value {
    Value::from_serialize(project)
}

/// `POST /orgs/{org}/billing/cap-notice/dismiss`: hides the used-up allowance banner.
pub async fn dismiss_cap_notice(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path(org): Path<String>,
) -> Result<Redirect, PageError> {
    billing::dismiss_cap_notice(&state, &actor).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/projects")))
}

/// `GET /orgs/{org}/projects`.
pub async fn projects(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    let projects = projects::list_projects(&state, &actor).await?;
    let clients = clients::list_clients(&state, &actor).await?;
    let weeks = usage::organisation_week(&state, &actor).await?;
    let projects: Vec<Value> = projects
        .iter()
        .map(|project| {
            let client = project
                .client_id
                .as_ref()
                .and_then(|id| clients.iter().find(|c| &c.id == id))
                .map(|c| c.name.clone());
            let week = weeks.iter().find(|week| week.project_id == project.id);
            let starts = week.map(|week| week.daily_starts.clone()).unwrap_or_default();
            let label = i18n::fill(
                i18n::translate(i18n::request_language(), "Challenge starts, last 7 days: {starts}"),
                &[("starts", starts.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))],
            );
            context! {
                client => client, week => week.map(|week| Value::from_serialize(&week.totals)),
                limit => week.and_then(|week| week.limit).map(Value::from_serialize),
                sparkline => Value::from_safe_string(charts::sparkline(&label, &starts)), ..view(project)
            }
        })
        .collect();
    let can_write = can(&actor, Permission::ProjectsWrite);
    let billing = Value::from_serialize(billing::overview(&state, &actor).await?);
    Ok(render(
        &state,
        StatusCode::OK,
        "projects.html",
        &org_frame(&csrf, &actor, "projects"),
        context! { projects => projects, can_write => can_write, billing => billing },
    ))
}

fn blank_project() -> Value {
    let balanced = Protection::BALANCED;
    context! {
        name => "", production_domains => Vec::<String>::new(), testing_domains => Vec::<String>::new(),
        allow_subdomains => false, preset => "balanced",
        difficulty => balanced.difficulty, challenge_count => balanced.challenge_count, obfuscation => balanced.obfuscation.name(),
        rate_limit => balanced.rate_limit, block_threshold => balanced.block_threshold.to_string(),
        puzzle => balanced.puzzle.name(), squarings => balanced.squarings,
        risk_mode => "observe", monthly_limit => (), widget => Value::from_serialize(WidgetSettings::default()), active => true,
    }
}

async fn form_page(
    state: &AppState,
    csrf: &CsrfToken,
    actor: &Actor,
    status: StatusCode,
    project: Value,
    extra: Value,
) -> Page {
    let can_write = can(actor, Permission::ProjectsWrite);
    let clients = clients::list_clients(state, actor)
        .await
        .unwrap_or_default();
    // Options the plan lacks are shown disabled; if the plan cannot be read, Free's limits
    // are shown (the save is checked against the real plan either way).
    let plan = billing::current_plan(state, actor)
        .await
        .unwrap_or_else(|_| state.plans.free().clone());
    render(
        state,
        status,
        "project_form.html",
        &org_frame(csrf, actor, "projects"),
        context! {
            project => project, can_write => can_write, languages => WIDGET_LANGUAGES, clients => Value::from_serialize(clients),
            plan => Value::from_serialize(plan), ..extra
        },
    )
}

/// `GET /orgs/{org}/projects/new`.
pub async fn new_project_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    actor.require(Permission::ProjectsWrite)?;
    Ok(form_page(
        &state,
        &csrf,
        &actor,
        StatusCode::OK,
        blank_project(),
        context! {},
    )
    .await)
}

/// The project settings form, as browsers send it.
#[derive(Debug, Deserialize)]
pub struct ProjectForm {
    name: String,
    #[serde(default)]
    production_domains: String,
    #[serde(default)]
    testing_domains: String,
    allow_subdomains: Option<String>,
    preset: String,
    difficulty: Option<String>,
    challenge_count: Option<String>,
    obfuscation: Option<String>,
    rate_limit: Option<String>,
    block_threshold: Option<String>,
    puzzle: Option<String>,
    squarings: Option<String>,
    risk_mode: String,
    #[serde(default)]
    monthly_limit: String,
    widget_variant: String,
    widget_theme: String,
    widget_language: String,
    widget_size: String,
    widget_branding: String,
    active: Option<String>,
    #[serde(default)]
    client_id: String,
}

impl ProjectForm {
    /// Whether the form carries custom protection values under a named preset that the
    /// save would ignore: values the member typed, since they are neither a named preset's
    /// (what the page shows under one) nor the project's `current` ones (what it showed
    /// before the member switched away from Custom).
    fn ignores_custom_values(&self, current: Option<&Protection>) -> bool {
        fn typed(field: &Option<String>) -> Option<&str> {
            field
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty())
        }
        if self.preset == "custom" {
            return false;
        }
        let shown = |protection: &Protection| {
            let number = |field: &Option<String>, value: u32| {
                typed(field).is_none_or(|text| text.parse::<u32>().ok() == Some(value))
            };
            number(&self.difficulty, protection.difficulty)
                && number(&self.challenge_count, protection.challenge_count)
                && number(&self.rate_limit, protection.rate_limit)
                && number(&self.squarings, protection.squarings)
                && typed(&self.obfuscation).is_none_or(|text| text == protection.obfuscation.name())
                && typed(&self.puzzle).is_none_or(|text| text == protection.puzzle.name())
                && typed(&self.block_threshold).is_none_or(|text| {
                    text.parse::<f64>().ok().and_then(Score::from_decimal)
                        == Some(protection.block_threshold)
                })
        };
        ![
            Protection::RELAXED,
            Protection::BALANCED,
            Protection::STRICT,
        ]
        .iter()
        .chain(current)
        .any(shown)
    }

    /// The same input the API takes, so both go through one set of rules.
    fn into_input(self) -> Result<ProjectInput, ApiError> {
        let lines = |text: &str| {
            text.split(['\n', ',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        fn number<T: std::str::FromStr>(
            field: &'static str,
            text: Option<String>,
            refusal: &str,
        ) -> Result<Option<T>, ApiError> {
            match text.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(text) => text
                    .parse()
                    .map(Some)
                    .map_err(|_| ApiError::invalid(field, refusal)),
            }
        }
        let whole = |field, text| number::<u32>(field, text, "Enter a whole number.");
        let custom = self.preset == "custom";
        let monthly_limit = match self.monthly_limit.trim() {
            "" => None,
            text => Some(text.parse::<u64>().map_err(|_| {
                ApiError::invalid(
                    "monthly_limit",
                    "Enter a whole number, or leave it empty for unlimited.",
                )
            })?),
        };
        let widget: WidgetSettings = serde_json::from_value(serde_json::json!({
            "variant": self.widget_variant,
            "theme": self.widget_theme,
            "language": self.widget_language,
            "size": self.widget_size,
            "branding": self.widget_branding,
        }))
        .map_err(|_| {
            ApiError::invalid(
                "widget",
                "Pick the widget's variant, theme, language, size and branding from the lists.",
            )
        })?;
        Ok(ProjectInput {
            name: Some(self.name),
            production_domains: Some(lines(&self.production_domains)),
            testing_domains: Some(lines(&self.testing_domains)),
            allow_subdomains: Some(self.allow_subdomains.is_some()),
            preset: Some(self.preset),
            difficulty: if custom {
                whole("difficulty", self.difficulty)?
            } else {
                None
            },
            challenge_count: if custom {
                whole("challenge_count", self.challenge_count)?
            } else {
                None
            },
            obfuscation: if custom { self.obfuscation } else { None },
            rate_limit: if custom {
                whole("rate_limit", self.rate_limit)?
            } else {
                None
            },
            block_threshold: if custom {
                number(
                    "block_threshold",
                    self.block_threshold,
                    "Enter a number such as 6 or 6.5.",
                )?
            } else {
                None
            },
            puzzle: if custom { self.puzzle } else { None },
            squarings: if custom {
                whole("squarings", self.squarings)?
            } else {
                None
            },
            risk_mode: Some(match self.risk_mode.as_str() {
                "enforce" => humanproof_protocol::snapshot::RiskMode::Enforce,
                _ => humanproof_protocol::snapshot::RiskMode::Observe,
            }),
            unlimited: monthly_limit.is_none(),
            monthly_limit,
            active: Some(self.active.is_some()),
            widget: Some(widget),
            client_id: Some(self.client_id),
        })
    }
}

/// Re-shows a refused form with what was typed and the reason.
async fn refused(
    state: &AppState,
    csrf: &CsrfToken,
    actor: &Actor,
    err: ApiError,
    typed: Value,
) -> Response {
    match err {
        ApiError::Invalid { .. } | ApiError::NotInPlan { .. } => form_page(
            state,
            csrf,
            actor,
            err.status_code(),
            typed,
            context! { error => err.to_string() },
        )
        .await
        .into_response(),
        other => PageError::from(other).into_response(),
    }
}

fn typed_back(form: &ProjectForm) -> Value {
    let lines = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
    context! {
        name => form.name, production_domains => lines(&form.production_domains), testing_domains => lines(&form.testing_domains),
        allow_subdomains => form.allow_subdomains.is_some(), preset => form.preset, difficulty => form.difficulty,
        challenge_count => form.challenge_count, obfuscation => form.obfuscation, rate_limit => form.rate_limit,
        block_threshold => form.block_threshold, puzzle => form.puzzle, squarings => form.squarings, risk_mode => form.risk_mode, monthly_limit => form.monthly_limit,
        widget => context! { variant => form.widget_variant, theme => form.widget_theme, language => form.widget_language, size => form.widget_size, branding => form.widget_branding },
        active => form.active.is_some(), client_id => form.client_id,
    }
}

/// `POST /orgs/{org}/projects/new`: on to the new project's page, which shows its secret
/// once.
pub async fn create_project(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Form(form): Form<ProjectForm>,
) -> Response {
    let typed = typed_back(&form);
    if form.ignores_custom_values(None) {
        return refused(&state, &csrf, &actor, custom_values_refusal(), typed).await;
    }
    let result = async { projects::create_project(&state, &actor, form.into_input()?).await }.await;
    match result {
        Ok((project, secret)) => flash::redirect(
            &state,
            &project_path(&actor, &project.id),
            &Flash::secret(
                "Project created. Add the widget from the Integration tab.",
                secret,
            ),
        ),
        Err(err) => refused(&state, &csrf, &actor, err, typed).await,
    }
}

/// The refusal of custom values typed under a named preset.
fn custom_values_refusal() -> ApiError {
    ApiError::invalid(
        "preset",
        "Custom difficulty, challenge count, obfuscation, rate limit and threshold apply only to the Custom preset. Choose Custom to use them, or keep the preset's values.",
    )
}

/// A project's settings page.
fn project_path(actor: &Actor, project_id: &str) -> String {
    format!("/orgs/{}/projects/{project_id}", actor.organisation_id)
}

/// `GET /orgs/{org}/projects/{project}`.
pub async fn project_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    settings_page(&state, &csrf, &actor, &project_id, context! {}).await
}

/// A project's settings as stored, with `extra` for the template (a notice, a secret shown
/// once).
async fn settings_page(
    state: &AppState,
    csrf: &CsrfToken,
    actor: &Actor,
    project_id: &str,
    extra: Value,
) -> Result<Page, PageError> {
    let project = projects::get_project(state, actor, project_id).await?;
    Ok(form_page(state, csrf, actor, StatusCode::OK, view(&project), extra).await)
}

/// `POST /orgs/{org}/projects/{project}`.
pub async fn update_project(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
    Form(form): Form<ProjectForm>,
) -> Response {
    let mut typed = typed_back(&form);
    let result = async {
        let current = projects::get_project(&state, &actor, &project_id).await?;
        if form.ignores_custom_values(Some(&current.protection())) {
            return Err(custom_values_refusal());
        }
        projects::update_project(&state, &actor, &project_id, form.into_input()?).await
    }
    .await;
    match result {
        Ok(project) => flash::redirect(
            &state,
            &project_path(&actor, &project.id),
            &Flash::notice("Saved. The edge has the new settings."),
        ),
        Err(err) => {
            typed = context! { id => project_id, ..typed };
            refused(&state, &csrf, &actor, err, typed).await
        }
    }
}

/// Asks before a destructive action on a project (once the member may take it on this
/// project); `None` once the member said yes.
async fn confirm_first(
    state: &AppState,
    csrf: &CsrfToken,
    actor: &Actor,
    project_id: &str,
    confirmation: &Confirmation,
    ask: impl FnOnce(String) -> Confirm<'static>,
) -> Result<Option<Response>, PageError> {
    if confirmation.given() {
        return Ok(None);
    }
    actor.require(Permission::ProjectsWrite)?;
    let project = projects::get_project(state, actor, project_id).await?;
    let confirm = ask(project_path(actor, project_id));
    Ok(Some(
        Confirm {
            subject: &project.name,
            ..confirm
        }
        .page(state, csrf, actor, "projects")
        .into_response(),
    ))
}

/// `POST /orgs/{org}/projects/{project}/delete`: asks first, then deletes.
pub async fn delete_project(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((org, project_id)): Path<(String, String)>,
    Form(confirmation): Form<Confirmation>,
) -> Result<Response, PageError> {
    let ask = |path: String| Confirm {
        question: "Delete this project?",
        consequence: "Its site key stops working at once on every page that embeds it, and its settings, statistics and usage are deleted. This cannot be undone.",
        subject: "",
        button: "Delete project",
        action: format!("{path}/delete"),
        cancel: path,
    };
    if let Some(asked) =
        confirm_first(&state, &csrf, &actor, &project_id, &confirmation, ask).await?
    {
        return Ok(asked);
    }
    projects::delete_project(&state, &actor, &project_id).await?;
    Ok(flash::redirect(
        &state,
        &format!("/orgs/{org}/projects"),
        &Flash::notice("Project deleted."),
    ))
}

/// `POST /orgs/{org}/projects/{project}/rotate-secret`: asks first, then shows the new
/// secret once.
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
    Form(confirmation): Form<Confirmation>,
) -> Result<Response, PageError> {
    let ask = |path: String| Confirm {
        question: "Rotate the backend secret?",
        consequence: "A new secret is issued and shown once. The current one keeps working for 24 hours, time to put the new one in your backend.",
        subject: "",
        button: "Rotate secret",
        action: format!("{path}/rotate-secret"),
        cancel: path,
    };
    if let Some(asked) =
        confirm_first(&state, &csrf, &actor, &project_id, &confirmation, ask).await?
    {
        return Ok(asked);
    }
    let rotated = projects::rotate_secret(&state, &actor, &project_id).await?;
    let flash = Flash::secret(
        "New secret issued. The previous one keeps working for 24 hours.",
        rotated.secret,
    );
    Ok(flash::redirect(
        &state,
        &project_path(&actor, &project_id),
        &flash,
    ))
}

/// `POST /orgs/{org}/projects/{project}/revoke-tokens`: asks first, then every token issued
/// so far stops working.
pub async fn revoke_tokens(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
    Form(confirmation): Form<Confirmation>,
) -> Result<Response, PageError> {
    let ask = |path: String| Confirm {
        question: "Revoke every token issued so far?",
        consequence: "Unfinished challenges and tokens your backend has not verified yet are refused, including those of visitors filling in a form right now. New ones work as before.",
        subject: "",
        button: "Revoke outstanding tokens",
        action: format!("{path}/revoke-tokens"),
        cancel: path,
    };
    if let Some(asked) =
        confirm_first(&state, &csrf, &actor, &project_id, &confirmation, ask).await?
    {
        return Ok(asked);
    }
    projects::revoke_tokens(&state, &actor, &project_id).await?;
    let flash = Flash::notice(
        "Every token issued until now is revoked: unfinished challenges and unverified tokens are refused.",
    );
    Ok(flash::redirect(
        &state,
        &project_path(&actor, &project_id),
        &flash,
    ))
}

/// The siteverify samples of the integration page: a label and the template (in
/// `templates/`) that writes the sample for this control plane's URL.
const SITEVERIFY_SAMPLES: [(&str, &str); 5] = [
    ("curl", "siteverify_curl.txt"),
    ("Node.js", "siteverify_node.txt"),
    ("Python", "siteverify_python.txt"),
    ("PHP", "siteverify_php.txt"),
    ("Rust", "siteverify_rust.txt"),
];

/// Renders a plain-text template (a code sample) to a string, which the page then escapes.
/// The templates are compiled in and rendered by the tests, so a failure is a bug: logged,
/// and the page says the sample is missing rather than failing whole.
fn code_sample(state: &AppState, template: &str, values: Value) -> String {
    state
        .templates
        .get_template(template)
        .and_then(|sample| sample.render(values))
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, template, "code sample failed");
            "This sample could not be shown.".to_owned()
        })
}

/// `GET /orgs/{org}/projects/{project}/integration`.
pub async fn integration(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    let project = projects::get_project(&state, &actor, &project_id).await?;
    let siteverify = format!("{}/siteverify", state.web.public_url);
    let samples = SITEVERIFY_SAMPLES
        .iter()
        .map(|(label, template)| {
            let code = code_sample(&state, template, context! { siteverify => siteverify });
            context! { label => label, code => code }
        })
        .collect::<Vec<Value>>();
    let snippet = code_sample(
        &state,
        "snippet.txt",
        context! {
            edge_url => state.web.edge_url, site_key => project.site_key,
        },
    );
    Ok(render(
        &state,
        StatusCode::OK,
        "integration.html",
        &org_frame(&csrf, &actor, "projects"),
        context! {
            project => view(&project), snippet => snippet, edge_url => state.web.edge_url, samples => samples,
        },
    ))
}
