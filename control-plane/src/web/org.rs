//! Organisation pages: projects (settings, integration, usage), members, API keys, audit.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use humanproof_protocol::snapshot::RiskMode;
use humanproof_protocol::{Decision, Protection};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{CsrfToken, Form, Frame, OrgActor, Page, PageError, render};
use crate::app::AppState;
use crate::db::projects::{LANGUAGES, WidgetOptions, enum_name};
use crate::error::ApiError;
use crate::manage::{self, Actor, Principal, ProjectInput, ProjectView};
use crate::roles::{Permission, Role, Scope};

fn frame<'a>(csrf: &'a CsrfToken, actor: &'a Actor, section: &'a str) -> Frame<'a> {
    let user = match &actor.principal {
        Principal::Member { user, .. } => Some(user),
        Principal::ApiKey(_) => None,
    };
    Frame {
        csrf,
        user,
        actor: Some(actor),
        section,
    }
}

fn view(project: &ProjectView) -> Value {
    Value::from_serialize(project)
}

fn can(actor: &Actor, permission: Permission) -> bool {
    actor.require(permission).is_ok()
}

/// `GET /orgs/{org}/projects`.
pub async fn projects(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    let projects = manage::list_projects(&state, &actor).await?;
    let clients = manage::list_clients(&state, &actor).await?;
    let projects: Vec<Value> = projects
        .iter()
        .map(|project| {
            let client = project
                .client_id
                .as_ref()
                .and_then(|id| clients.iter().find(|c| &c.id == id))
                .map(|c| c.name.clone());
            context! { client => client, ..view(project) }
        })
        .collect();
    let can_write = can(&actor, Permission::ProjectsWrite);
    Ok(render(
        &state,
        StatusCode::OK,
        "projects.html",
        &frame(&csrf, &actor, "projects"),
        context! { projects => projects, can_write => can_write },
    ))
}

fn blank_project() -> Value {
    let balanced = Protection::BALANCED;
    context! {
        name => "", production_domains => Vec::<String>::new(), testing_domains => Vec::<String>::new(),
        allow_subdomains => false, preset => "balanced",
        difficulty => balanced.difficulty, challenge_count => balanced.challenge_count, obfuscation => balanced.obfuscation.name(),
        rate_limit => balanced.rate_limit, block_threshold => balanced.block_threshold.to_string(),
        risk_mode => "observe", monthly_limit => (), widget => Value::from_serialize(WidgetOptions::default()), active => true,
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
    let clients = manage::list_clients(state, actor).await.unwrap_or_default();
    render(
        state,
        status,
        "project_form.html",
        &frame(csrf, actor, "projects"),
        context! {
            project => project, can_write => can_write, languages => LANGUAGES, clients => Value::from_serialize(clients), ..extra
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

fn invalid(field: &'static str, message: &str) -> ApiError {
    ApiError::Invalid {
        field,
        message: message.to_owned(),
    }
}

impl ProjectForm {
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
                Some(text) => text.parse().map(Some).map_err(|_| invalid(field, refusal)),
            }
        }
        let whole = |field, text| number::<u32>(field, text, "Enter a whole number.");
        let custom = self.preset == "custom";
        let monthly_limit = match self.monthly_limit.trim() {
            "" => None,
            text => Some(text.parse::<u64>().map_err(|_| {
                invalid(
                    "monthly_limit",
                    "Enter a whole number, or leave it empty for unlimited.",
                )
            })?),
        };
        let widget: WidgetOptions = serde_json::from_value(serde_json::json!({
            "variant": self.widget_variant,
            "theme": self.widget_theme,
            "language": self.widget_language,
            "size": self.widget_size,
            "branding": self.widget_branding,
        }))
        .map_err(|_| {
            invalid(
                "widget",
                "Pick a widget variant and branding from the lists.",
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
        ApiError::Invalid { .. } => form_page(
            state,
            csrf,
            actor,
            StatusCode::BAD_REQUEST,
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
        block_threshold => form.block_threshold, risk_mode => form.risk_mode, monthly_limit => form.monthly_limit,
        widget => context! { variant => form.widget_variant, theme => form.widget_theme, language => form.widget_language, size => form.widget_size, branding => form.widget_branding },
        active => form.active.is_some(), client_id => form.client_id,
    }
}

/// `POST /orgs/{org}/projects/new`: shows the new project with its secret, once.
pub async fn create_project(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Form(form): Form<ProjectForm>,
) -> Response {
    let typed = typed_back(&form);
    let result = async { manage::create_project(&state, &actor, form.into_input()?).await }.await;
    match result {
        Ok((project, secret)) => form_page(&state, &csrf, &actor, StatusCode::CREATED, view(&project), context! {
            secret => secret, notice => "Project created. Add the widget from the Integration tab.",
        })
        .await
        .into_response(),
        Err(err) => refused(&state, &csrf, &actor, err, typed).await,
    }
}

/// `GET /orgs/{org}/projects/{project}`.
pub async fn project_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    let project = manage::get_project(&state, &actor, &project_id).await?;
    Ok(form_page(
        &state,
        &csrf,
        &actor,
        StatusCode::OK,
        view(&project),
        context! {},
    )
    .await)
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
    let result =
        async { manage::update_project(&state, &actor, &project_id, form.into_input()?).await }
            .await;
    match result {
        Ok(project) => form_page(
            &state,
            &csrf,
            &actor,
            StatusCode::OK,
            view(&project),
            context! { notice => "Saved. The edge has the new settings." },
        )
        .await
        .into_response(),
        Err(err) => {
            typed = context! { id => project_id, ..typed };
            refused(&state, &csrf, &actor, err, typed).await
        }
    }
}

/// `POST /orgs/{org}/projects/{project}/delete`.
pub async fn delete_project(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((org, project_id)): Path<(String, String)>,
) -> Result<Redirect, PageError> {
    manage::delete_project(&state, &actor, &project_id).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/projects")))
}

/// `POST /orgs/{org}/projects/{project}/rotate-secret`: shows the new secret, once.
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    let rotated = manage::rotate_secret(&state, &actor, &project_id).await?;
    let project = manage::get_project(&state, &actor, &project_id).await?;
    Ok(form_page(&state, &csrf, &actor, StatusCode::OK, view(&project), context! {
        secret => rotated.secret, notice => "New secret issued. The previous one keeps working for 24 hours.",
    })
    .await)
}

/// `POST /orgs/{org}/projects/{project}/revoke-tokens`: every token issued so far stops working.
pub async fn revoke_tokens(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    manage::revoke_tokens(&state, &actor, &project_id).await?;
    let project = manage::get_project(&state, &actor, &project_id).await?;
    Ok(form_page(&state, &csrf, &actor, StatusCode::OK, view(&project), context! {
        notice => "Every token issued until now is revoked: unfinished challenges and unverified tokens are refused.",
    })
    .await)
}

/// The embed snippet for a project, with its widget options as data attributes.
pub fn snippet(edge_url: &str, project: &ProjectView) -> String {
    let widget = &project.widget;
    let mut attributes = format!("data-sitekey=\"{}\"", project.site_key);
    let variant = enum_name(&widget.variant);
    let branding = enum_name(&widget.branding);
    for (name, value, default) in [
        ("variant", variant.as_str(), "checkbox"),
        ("theme", widget.theme.as_str(), "auto"),
        ("language", widget.language.as_str(), "auto"),
        ("size", widget.size.as_str(), "normal"),
        ("branding", branding.as_str(), "full"),
    ] {
        if value != default {
            attributes.push_str(&format!(" data-{name}=\"{value}\""));
        }
    }
    format!(
        "<script src=\"{edge_url}/widget.js\" async defer></script>\n\n<form method=\"post\" action=\"/signup\">\n  <!-- your fields -->\n  <humanproof-widget {attributes}></humanproof-widget>\n  <button type=\"submit\">Send</button>\n</form>"
    )
}

fn siteverify_samples(siteverify: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "curl",
            format!(
                "curl -s {siteverify} \\\n  -d secret=\"$HUMANPROOF_SECRET\" \\\n  -d response=\"$TOKEN\""
            ),
        ),
        (
            "Node.js",
            format!(
                "const answer = await fetch(\"{siteverify}\", {{\n  method: \"POST\",\n  headers: {{ \"content-type\": \"application/json\" }},\n  body: JSON.stringify({{ secret: process.env.HUMANPROOF_SECRET, response: req.body[\"humanproof-token\"] }}),\n}}).then((r) => r.json());\nif (!answer.success) return res.status(400).send(\"Verification failed\");"
            ),
        ),
        (
            "Python",
            format!(
                "import os, requests\n\nanswer = requests.post(\"{siteverify}\", data={{\n    \"secret\": os.environ[\"HUMANPROOF_SECRET\"],\n    \"response\": request.form[\"humanproof-token\"],\n}}, timeout=10).json()\nif not answer[\"success\"]:\n    abort(400)"
            ),
        ),
        (
            "PHP",
            format!(
                "$answer = json_decode(file_get_contents(\"{siteverify}\", false, stream_context_create([\n  \"http\" => [\n    \"method\" => \"POST\",\n    \"header\" => \"Content-Type: application/x-www-form-urlencoded\",\n    \"content\" => http_build_query([\"secret\" => getenv(\"HUMANPROOF_SECRET\"), \"response\" => $_POST[\"humanproof-token\"] ?? \"\"]),\n  ],\n])), true);\nif (empty($answer[\"success\"])) {{ http_response_code(400); exit; }}"
            ),
        ),
        (
            "Rust",
            format!(
                "let answer: serde_json::Value = reqwest::Client::new()\n    .post(\"{siteverify}\")\n    .form(&[(\"secret\", std::env::var(\"HUMANPROOF_SECRET\")?), (\"response\", token)])\n    .send().await?\n    .json().await?;\nif answer[\"success\"] != true {{\n    return Err(\"verification failed\".into());\n}}"
            ),
        ),
    ]
}

/// `GET /orgs/{org}/projects/{project}/integration`.
pub async fn integration(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    let project = manage::get_project(&state, &actor, &project_id).await?;
    let siteverify = format!("{}/siteverify", state.web.public_url);
    let samples: Vec<Value> = siteverify_samples(&siteverify)
        .into_iter()
        .map(|(label, code)| context! { label => label, code => code })
        .collect();
    Ok(render(
        &state,
        StatusCode::OK,
        "integration.html",
        &frame(&csrf, &actor, "projects"),
        context! {
            project => view(&project), snippet => snippet(&state.web.edge_url, &project), edge_url => state.web.edge_url, samples => samples,
        },
    ))
}

/// `GET /orgs/{org}/projects/{project}/usage`.
pub async fn usage(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    let (month, usage) = manage::project_usage(&state, &actor, &project_id, None).await?;
    let project = manage::get_project(&state, &actor, &project_id).await?;
    Ok(render(
        &state,
        StatusCode::OK,
        "usage.html",
        &frame(&csrf, &actor, "projects"),
        context! {
            project => view(&project), month => month, usage => Value::from_serialize(usage),
        },
    ))
}

/// `GET /orgs/{org}/projects/{project}/risk`: what the edge decided about recent starts and
/// why, to review before switching the project from observe to enforce.
pub async fn risk(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Path((_, project_id)): Path<(String, String)>,
) -> Result<Page, PageError> {
    let manage::ProjectRisk {
        project,
        overview,
        month,
        countries,
        networks,
    } = manage::project_risk(&state, &actor, &project_id).await?;
    let busiest_band = overview
        .score_bands
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let bands: Vec<Value> = (0..10)
        .map(|band| context! { label => format!("{band}–{}", band + 1), count => overview.score_bands[band], max => busiest_band })
        .collect();
    let reasons: Vec<Value> = overview
        .top_reasons
        .iter()
        .map(|(reason, count)| context! { code => reason.as_str(), count => count, explanation => reason.explanation() })
        .collect();
    let recent: Vec<Value> = overview
        .recent
        .iter()
        .map(|start| {
            let factors: Vec<Value> = start
                .factors
                .iter()
                .map(|f| context! { code => f.reason.as_str(), points => f.points.to_string(), explanation => f.reason.explanation() })
                .collect();
            context! {
                at => format_time(start.at), score => start.score.to_string(), decision => start.decision.as_str(),
                blocked => start.blocked, outcome => outcome(start.decision, start.blocked), factors => factors,
            }
        })
        .collect();
    Ok(render(
        &state,
        StatusCode::OK,
        "risk.html",
        &frame(&csrf, &actor, "projects"),
        context! {
            project => view(&project), threshold => project.block_threshold.to_string(),
            starts => overview.starts, truncated => overview.truncated, block_decisions => overview.block_decisions,
            blocked => overview.blocked, bands => bands, days => Value::from_serialize(&overview.days), reasons => reasons,
            recent => recent, window_days => manage::RISK_VIEW_WINDOW_MS / (24 * 60 * 60 * 1000),
            can_write => can(&actor, Permission::ProjectsWrite), month => month,
            countries => Value::from_serialize(&countries), networks => Value::from_serialize(&networks),
        },
    ))
}

/// What a decision meant for the visitor, in plain words.
fn outcome(decision: Decision, blocked: bool) -> &'static str {
    match (decision, blocked) {
        (Decision::Allow, _) => "Low risk: the visitor got a lighter challenge than the preset's.",
        (Decision::Challenge, _) => {
            "Elevated risk: the visitor got a heavier challenge than the preset's."
        }
        (Decision::Block, true) => "High risk: enforce mode refused the check.",
        (Decision::Block, false) => {
            "High risk: enforce mode would have refused it; observe mode only recorded it."
        }
    }
}

/// The risk mode switch, as browsers send it.
#[derive(Debug, Deserialize)]
pub struct RiskModeForm {
    mode: String,
}

/// `POST /orgs/{org}/projects/{project}/risk-mode`: observe or enforce.
pub async fn set_risk_mode(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((org, project_id)): Path<(String, String)>,
    Form(form): Form<RiskModeForm>,
) -> Result<Redirect, PageError> {
    let mode = match form.mode.as_str() {
        "observe" => RiskMode::Observe,
        "enforce" => RiskMode::Enforce,
        _ => return Err(invalid("mode", "Pick observe or enforce.").into()),
    };
    manage::update_project(
        &state,
        &actor,
        &project_id,
        ProjectInput {
            risk_mode: Some(mode),
            ..ProjectInput::default()
        },
    )
    .await?;
    Ok(Redirect::to(&format!(
        "/orgs/{org}/projects/{project_id}/risk"
    )))
}

/// `GET /orgs/{org}/members`.
pub async fn members(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    let members = manage::list_members(&state, &actor).await?;
    let invitations: Vec<Value> = manage::list_invitations(&state, &actor)
        .await?
        .iter()
        .map(|i| context! { email => i.email, role => i.role.as_str(), expires => format_time(i.expires_at) })
        .collect();
    let roles: Vec<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
    Ok(render(
        &state,
        StatusCode::OK,
        "members.html",
        &frame(&csrf, &actor, "members"),
        context! {
            members => Value::from_serialize(members), invitations => invitations, roles => roles, can_write => can(&actor, Permission::MembersWrite),
        },
    ))
}

/// The member form.
#[derive(Debug, Deserialize)]
pub struct MemberForm {
    email: String,
    role: String,
}

/// `POST /orgs/{org}/members`.
pub async fn put_member(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path(org): Path<String>,
    Form(form): Form<MemberForm>,
) -> Result<Redirect, PageError> {
    let role =
        Role::parse(&form.role).ok_or_else(|| invalid("role", "Pick a role from the list."))?;
    manage::put_member(&state, &actor, &form.email, role).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/members")))
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
    manage::revoke_invitation(&state, &actor, &form.email).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/members")))
}

/// `GET /orgs/{org}/clients`.
pub async fn clients(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    let clients = manage::list_clients(&state, &actor).await?;
    Ok(render(
        &state,
        StatusCode::OK,
        "clients.html",
        &frame(&csrf, &actor, "clients"),
        context! {
            clients => Value::from_serialize(clients), can_write => can(&actor, Permission::ProjectsWrite),
        },
    ))
}

/// The new-client form.
#[derive(Debug, Deserialize)]
pub struct ClientForm {
    name: String,
}

/// `POST /orgs/{org}/clients`.
pub async fn create_client(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path(org): Path<String>,
    Form(form): Form<ClientForm>,
) -> Result<Redirect, PageError> {
    manage::create_client(&state, &actor, &form.name).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/clients")))
}

/// `POST /orgs/{org}/clients/{client}/delete`.
pub async fn delete_client(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((org, client_id)): Path<(String, String)>,
) -> Result<Redirect, PageError> {
    manage::delete_client(&state, &actor, &client_id).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/clients")))
}

/// `POST /orgs/{org}/members/{user}/remove`.
pub async fn remove_member(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((org, user_id)): Path<(String, String)>,
) -> Result<Redirect, PageError> {
    manage::remove_member(&state, &actor, &user_id).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/members")))
}

fn keys_page(
    state: &AppState,
    csrf: &CsrfToken,
    actor: &Actor,
    keys: Vec<crate::db::orgs::ApiKey>,
    new_key: Option<String>,
) -> Page {
    let keys: Vec<Value> = keys
        .iter()
        .map(|key| {
            let scopes: Vec<&str> = key.scopes.iter().map(|scope| scope.as_str()).collect();
            context! { id => key.id, name => key.name, prefix => key.prefix, scopes => scopes, active => key.active, last_used => key.last_used_at.map(format_time) }
        })
        .collect();
    let scopes: Vec<&str> = Scope::ALL.iter().map(|scope| scope.as_str()).collect();
    render(
        state,
        StatusCode::OK,
        "api_keys.html",
        &frame(csrf, actor, "keys"),
        context! { keys => keys, scopes => scopes, new_key => new_key },
    )
}

/// `GET /orgs/{org}/api-keys`.
pub async fn api_keys(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    let keys = manage::list_api_keys(&state, &actor).await?;
    Ok(keys_page(&state, &csrf, &actor, keys, None))
}

/// `POST /orgs/{org}/api-keys`: shows the new key, once. Scopes arrive as repeated `scope`
/// fields, which axum's `Form` cannot collect, so the body is parsed as pairs.
pub async fn create_api_key(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Page, PageError> {
    let name = pairs
        .iter()
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    let scopes = pairs
        .iter()
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| Scope::parse(value).ok_or_else(|| invalid("scopes", "Unknown scope.")))
        .collect::<Result<Vec<_>, _>>()?;
    let (_, key) = manage::create_api_key(&state, &actor, name, scopes).await?;
    let keys = manage::list_api_keys(&state, &actor).await?;
    Ok(keys_page(&state, &csrf, &actor, keys, Some(key)))
}

/// `POST /orgs/{org}/api-keys/{key}/disable` or `/enable`.
pub async fn set_api_key_active(
    State(state): State<AppState>,
    OrgActor(actor): OrgActor,
    Path((org, key_id, action)): Path<(String, String, String)>,
) -> Result<Redirect, PageError> {
    let active = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return Err(ApiError::NotFound.into()),
    };
    manage::set_api_key_active(&state, &actor, &key_id, active).await?;
    Ok(Redirect::to(&format!("/orgs/{org}/api-keys")))
}

/// `GET /orgs/{org}/audit`.
pub async fn audit(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    OrgActor(actor): OrgActor,
) -> Result<Page, PageError> {
    let entries: Vec<Value> = manage::audit_log(&state, &actor)
        .await?
        .iter()
        .map(|entry| context! { when => format_time(entry.at), actor => entry.actor, action => entry.action, target => entry.target })
        .collect();
    Ok(render(
        &state,
        StatusCode::OK,
        "audit.html",
        &frame(&csrf, &actor, "audit"),
        context! { entries => entries },
    ))
}

pub(super) fn format_time(at_ms: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute()
    )
}
