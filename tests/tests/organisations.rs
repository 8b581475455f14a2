//! Organisations, roles, tenant isolation, the `/api/v1` API, and snapshot publishing, on
//! SQLite and on PostgreSQL. Every organisation route is tried with every role, and with
//! another organisation's ids.

use humanproof_control_plane::accounts as accounts_service;
use humanproof_control_plane::db::projects::BillingStatus;
use humanproof_control_plane::db::{accounts, billing, orgs, projects, stats};
use humanproof_control_plane::local::{StandInSubscription, StripeStandIn};
use humanproof_control_plane::plans::Catalogue;
use humanproof_control_plane::roles::{Permission, Role, Scope};
use humanproof_control_plane::routes::api::OPENAPI;
use humanproof_control_plane::secrets;
use humanproof_control_plane::service::billing as billing_service;
use humanproof_control_plane::service::projects::{SECRET_OVERLAP_MS, WIDGET_LANGUAGES};
use humanproof_control_plane::state::AppState;
use humanproof_control_plane::stripe::Stripe;
use humanproof_edge::stores::SnapshotStore as _;
use humanproof_protocol::preset::{
    BLOCK_THRESHOLD_RANGE, COUNT_RANGE, DIFFICULTY_RANGE, RATE_LIMIT_RANGE,
};
use humanproof_protocol::rsw::SQUARINGS_RANGE;
use humanproof_protocol::{Obfuscation, Preset, Protection, PuzzleKind, Score};
use humanproof_tests::*;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// A signed-in, verified member of a fresh organisation on the Business plan (these tests are
/// about roles and isolation, not plan limits), with one project in it.
struct Tenant {
    browser: Browser,
    org: String,
    user_id: String,
    project: String,
}

async fn tenant(world: &World, base: &str, email: &str) -> Tenant {
    let browser = Browser::new(base);
    let org = browser.sign_up(email, PASSWORD).await;
    let (user, _) = accounts::find_user_by_email(&world.db, email)
        .await
        .unwrap()
        .unwrap();
    accounts::mark_email_verified(&world.db, &user.id, world.clock.now_ms())
        .await
        .unwrap();
    world.on_plan(&org, "business").await;
    let project = insert_project(world, &org).await;
    Tenant {
        browser,
        org,
        user_id: user.id,
        project,
    }
}

async fn insert_org(world: &World) -> String {
    let email = format!("{}@example.com", secrets::new_id());
    let user = accounts::insert_user(&world.db, &email, "x", false, 0)
        .await
        .unwrap();
    orgs::create_organisation(&world.db, "Elsewhere", &user.id, 0)
        .await
        .unwrap()
}

async fn insert_project(world: &World, org: &str) -> String {
    let settings = quick_project("fixture");
    projects::insert(
        &world.db,
        Some(org),
        &settings,
        &secrets::new_site_key(),
        &secrets::new_backend_secret(),
        world.clock.now_ms(),
    )
    .await
    .unwrap()
    .id
}

/// The control plane served with Stripe pointed at a fresh stand-in, which sends its
/// webhooks back signed with `whsec_test`.
struct Billed {
    standin: StripeStandIn,
    standin_url: String,
    /// The control plane's base URL.
    base: String,
    /// The control plane's state, with Stripe.
    state: AppState,
}

async fn with_stripe(state: &AppState) -> Billed {
    let standin = StripeStandIn::new(state.clock.clone(), &state.plans);
    let standin_url = serve_app(standin.router()).await;
    let stripe = Stripe::new(
        "sk_test_humanproof",
        "whsec_test",
        &format!("{standin_url}/"),
    )
    .unwrap();
    let state = state.with(|state| state.stripe = Some(stripe));
    let base = serve_control_plane(state.clone()).await;
    standin.deliver_webhooks_to(&format!("{base}/billing/stripe/webhook"), "whsec_test");
    Billed {
        standin,
        standin_url,
        base,
        state,
    }
}

/// Sets a project's protected attempts this month.
async fn set_usage(world: &World, project: &str, attempts: i64) {
    let month = humanproof_control_plane::db::month_of(world.clock.now_ms());
    sqlx::query("DELETE FROM usage_months WHERE project_id = $1")
        .bind(project)
        .execute(world.db.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO usage_months (project_id, month, protected_attempts) VALUES ($1, $2, $3)",
    )
    .bind(project)
    .bind(&month)
    .bind(attempts)
    .execute(world.db.pool())
    .await
    .unwrap();
}

/// Adds a new, verified user to `org` with `role`; returns a browser signed in as them.
/// (Created in the database: sign-ups from one address are throttled, and these tests make
/// many members.)
async fn member(
    world: &World,
    base: &str,
    org: &str,
    email: &str,
    role: Role,
) -> (Browser, String) {
    let now = world.clock.now_ms();
    let password_hash = humanproof_control_plane::accounts::hash_password(PASSWORD).await;
    let user = accounts::insert_user(&world.db, email, &password_hash, false, now)
        .await
        .unwrap();
    accounts::mark_email_verified(&world.db, &user.id, now)
        .await
        .unwrap();
    orgs::put_member(&world.db, org, &user.id, role, now)
        .await
        .unwrap();
    let browser = Browser::new(base);
    browser.sign_in(email, PASSWORD).await.expect(303);
    (browser, user.id)
}

const PROJECT_FORM: [(&str, &str); 10] = [
    ("name", "Form project"),
    ("testing_domains", "localhost"),
    ("preset", "relaxed"),
    ("risk_mode", "observe"),
    ("widget_variant", "checkbox"),
    ("widget_theme", "auto"),
    ("widget_language", "auto"),
    ("widget_size", "normal"),
    ("widget_branding", "full"),
    ("active", "on"),
];

/// One request a route takes; fresh targets come from `world` for routes that destroy them.
#[derive(Debug, Clone, Copy)]
enum Route {
    Projects,
    NewProjectPage,
    CreateProject,
    ProjectPage,
    UpdateProject,
    DeleteProject,
    RotateSecret,
    Integration,
    Usage,
    Risk,
    SetRiskMode,
    Members,
    PutMember,
    RemoveMember,
    RevokeInvitation,
    ApiKeys,
    CreateApiKey,
    DisableApiKey,
    Audit,
    Clients,
    CreateClient,
    DeleteClient,
}

const ROUTES: [Route; 22] = [
    Route::Projects,
    Route::NewProjectPage,
    Route::CreateProject,
    Route::ProjectPage,
    Route::UpdateProject,
    Route::DeleteProject,
    Route::RotateSecret,
    Route::Integration,
    Route::Usage,
    Route::Risk,
    Route::SetRiskMode,
    Route::Members,
    Route::PutMember,
    Route::RemoveMember,
    Route::RevokeInvitation,
    Route::ApiKeys,
    Route::CreateApiKey,
    Route::DisableApiKey,
    Route::Audit,
    Route::Clients,
    Route::CreateClient,
    Route::DeleteClient,
];

impl Route {
    /// Whether `role` may use the route, per the documented matrix.
    fn allowed(self, role: Role) -> bool {
        use Role::*;
        match self {
            Route::Projects
            | Route::ProjectPage
            | Route::Integration
            | Route::Usage
            | Route::Risk
            | Route::Members
            | Route::Clients => true,
            Route::NewProjectPage
            | Route::CreateProject
            | Route::UpdateProject
            | Route::DeleteProject
            | Route::RotateSecret
            | Route::SetRiskMode
            | Route::CreateClient
            | Route::DeleteClient => matches!(role, Owner | Admin | Developer),
            Route::PutMember
            | Route::RemoveMember
            | Route::RevokeInvitation
            | Route::ApiKeys
            | Route::CreateApiKey
            | Route::DisableApiKey
            | Route::Audit => matches!(role, Owner | Admin),
        }
    }

    /// Sends the request as `browser` in `org`, about `project` (another org's ids make the
    /// isolation test). Fresh victims for destructive routes are made in `home`.
    async fn call(
        self,
        world: &World,
        base: &str,
        browser: &Browser,
        org: &str,
        project: &str,
        home: &str,
    ) -> Page {
        let p = |suffix: &str| format!("/orgs/{org}/projects/{project}{suffix}");
        match self {
            Route::Projects => browser.get(&format!("/orgs/{org}/projects")).await,
            Route::NewProjectPage => browser.get(&format!("/orgs/{org}/projects/new")).await,
            Route::CreateProject => {
                browser
                    .post(&format!("/orgs/{org}/projects/new"), &PROJECT_FORM)
                    .await
            }
            Route::ProjectPage => browser.get(&p("")).await,
            Route::UpdateProject => browser.post(&p(""), &PROJECT_FORM).await,
            Route::DeleteProject => {
                let victim = if org == home {
                    insert_project(world, home).await
                } else {
                    project.to_owned()
                };
                browser
                    .post(
                        &format!("/orgs/{org}/projects/{victim}/delete"),
                        &[("confirmed", "yes")],
                    )
                    .await
            }
            Route::RotateSecret => {
                browser
                    .post(&p("/rotate-secret"), &[("confirmed", "yes")])
                    .await
            }
            Route::Integration => browser.get(&p("/integration")).await,
            Route::Usage => browser.get(&p("/usage")).await,
            Route::Risk => browser.get(&p("/risk")).await,
            Route::SetRiskMode => browser.post(&p("/risk-mode"), &[("mode", "enforce")]).await,
            Route::Members => browser.get(&format!("/orgs/{org}/members")).await,
            Route::PutMember => {
                let email = format!("{}@example.com", secrets::new_id());
                Browser::new(base).sign_up(&email, PASSWORD).await;
                browser
                    .post(
                        &format!("/orgs/{org}/members"),
                        &[("email", &email), ("role", "viewer")],
                    )
                    .await
            }
            Route::RemoveMember => {
                let email = format!("{}@example.com", secrets::new_id());
                let (_, user_id) = member(world, base, home, &email, Role::Viewer).await;
                browser
                    .post(
                        &format!("/orgs/{org}/members/{user_id}/remove"),
                        &[("confirmed", "yes")],
                    )
                    .await
            }
            Route::RevokeInvitation => {
                let email = format!("{}@example.com", secrets::new_id());
                let invitation = orgs::Invitation {
                    email: email.clone(),
                    role: Role::Viewer,
                    expires_at: i64::MAX,
                };
                orgs::insert_invitation(
                    &world.db,
                    &secrets::new_id(),
                    home,
                    &invitation,
                    "test",
                    0,
                )
                .await
                .unwrap();
                browser
                    .post(
                        &format!("/orgs/{org}/invitations/revoke"),
                        &[("email", &email)],
                    )
                    .await
            }
            Route::Clients => browser.get(&format!("/orgs/{org}/clients")).await,
            Route::CreateClient => {
                browser
                    .post(&format!("/orgs/{org}/clients"), &[("name", "Bakery")])
                    .await
            }
            Route::DeleteClient => {
                let client = orgs::insert_client(&world.db, home, "Victim", 0)
                    .await
                    .unwrap();
                browser
                    .post(&format!("/orgs/{org}/clients/{}/delete", client.id), &[])
                    .await
            }
            Route::ApiKeys => browser.get(&format!("/orgs/{org}/api-keys")).await,
            Route::CreateApiKey => {
                browser
                    .post(
                        &format!("/orgs/{org}/api-keys"),
                        &[("name", "ci"), ("scope", "projects:read")],
                    )
                    .await
            }
            Route::DisableApiKey => {
                let key = orgs::insert_api_key(
                    &world.db,
                    home,
                    "victim",
                    &secrets::new_id(),
                    "hp_key_x",
                    &[Scope::ProjectsRead],
                    0,
                )
                .await
                .unwrap();
                browser
                    .post(
                        &format!("/orgs/{org}/api-keys/{}/disable", key.id),
                        &[("confirmed", "yes")],
                    )
                    .await
            }
            Route::Audit => browser.get(&format!("/orgs/{org}/audit")).await,
        }
    }
}

on_both_databases! {
    async fn members_switch_rename_and_leave_organisations(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "founder@example.com").await;
        let other = tenant(&world, &base, "partner@example.com").await;
        // A member of two organisations gets a switcher naming both; one of one does not.
        let (both, _) = member(&world, &base, &other.org, "founder-too@example.com", Role::Admin).await;
        orgs::put_member(&world.db, &owner.org, &accounts::find_user_by_email(&world.db, "founder-too@example.com").await.unwrap().unwrap().0.id, Role::Developer, 0).await.unwrap();
        let page = both.get(&format!("/orgs/{}/projects", owner.org)).await.expect(200);
        assert!(page.body.contains("id=\"organisation-switcher\""));
        for org in [&owner.org, &other.org] {
            assert!(page.body.contains(&format!("href=\"/orgs/{org}/projects\"")), "{org}");
        }
        assert!(!owner.browser.get(&format!("/orgs/{}/projects", owner.org)).await.expect(200).body.contains("organisation-switcher"));

        // The members page explains the roles, and invitations default to viewer.
        let members = owner.browser.get(&format!("/orgs/{}/members", owner.org)).await.expect(200);
        assert!(members.body.contains("id=\"roles\"") && members.body.contains("<option value=\"viewer\" selected>"));

        // Owners rename; others are refused on the page.
        owner.browser.post(&format!("/orgs/{}/rename", owner.org), &[("name", "  Founders GmbH ")]).await.expect(303);
        assert_eq!(orgs::organisation_name(&world.db, &owner.org).await.unwrap().as_deref(), Some("Founders GmbH"));
        both.post(&format!("/orgs/{}/rename", owner.org), &[("name", "Mine now")]).await.expect(403);
        owner.browser.post(&format!("/orgs/{}/rename", owner.org), &[("name", "")]).await.expect(400);

        // Leaving asks first; the last owner cannot; a developer can.
        let leave = format!("/orgs/{}/leave", owner.org);
        assert!(both.post(&leave, &[]).await.expect(200).body.contains("Leave this organisation?"));
        owner.browser.post(&leave, &[("confirmed", "yes")]).await.expect(409);
        both.post(&leave, &[("confirmed", "yes")]).await.expect(303);
        both.get(&format!("/orgs/{}/projects", owner.org)).await.expect(404);
        both.get(&format!("/orgs/{}/projects", other.org)).await.expect(200);
        let audit = orgs::audit_log(&world.db, &owner.org, 50).await.unwrap();
        assert!(audit.iter().any(|entry| entry.action == "member.left") && audit.iter().any(|entry| entry.action == "organisation.renamed"));
    }

    async fn the_audit_log_names_people_projects_and_keys(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "auditor@example.com").await;
        let (api, key_id) = api_key(&world, &base, &owner, &["projects:read", "projects:write"]).await;
        let (_, created) = api.call("POST", "/api/v1/projects", Some(json!({ "name": "Named shop", "testing_domains": ["localhost"] }))).await;
        let project_id = created["project"]["id"].as_str().unwrap().to_owned();
        let (_, viewer_id) = member(&world, &base, &owner.org, "seen@example.com", Role::Viewer).await;
        owner.browser.post(&format!("/orgs/{}/members/{viewer_id}/remove", owner.org), &[("confirmed", "yes")]).await.expect(303);
        let page = owner.browser.get(&format!("/orgs/{}/audit", owner.org)).await.expect(200);
        let row = |action: &str| page.body.split("<tr>").find(|row| row.contains(&format!("<code>{action}</code>"))).unwrap_or_default().to_owned();
        let created_row = row("project.created");
        assert!(created_row.contains("<td>API key automation</td>") && created_row.contains("<td>Named shop</td>"), "{created_row}");
        assert!(!page.body.contains(&project_id) && !page.body.contains(&key_id), "no raw ids: {}", page.body);
        assert!(row("api_key.created").contains("<td>auditor@example.com</td>"));
        assert!(row("member.removed").contains("<td>seen@example.com</td>"), "{}", row("member.removed"));
        assert!(page.body.contains(r#"<td class="when">"#) && page.body.contains(r#"tabindex="0" role="region""#));
    }

    async fn a_project_near_its_monthly_limit_warns_on_the_pages_and_emails_its_admins_once(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "limits@example.com").await;
        member(&world, &base, &owner.org, "deputy@example.com", Role::Admin).await;
        member(&world, &base, &owner.org, "looker@example.com", Role::Viewer).await;
        projects::set_gates(&world.db, &owner.project, true, BillingStatus::Active, Some(10), world.clock.now_ms()).await.unwrap();
        let site_key = projects::find(&world.db, &owner.project).await.unwrap().unwrap().site_key;
        world.publish().await;
        let attempt = async || {
            world.verification_token(&site_key).await;
            world.deliver_telemetry().await;
        };
        let notices = |to: &str, percent: &str| {
            emails_in(&world.outbox, to).iter().filter(|email| email.contains(&format!("used {percent} % of its monthly limit"))).count()
        };
        let projects_page = format!("/orgs/{}/projects", owner.org);
        let usage_page = format!("/orgs/{}/projects/{}/usage", owner.org, owner.project);

        set_usage(&world, &owner.project, 6).await;
        attempt().await;
        assert_eq!(notices("limits@example.com", "80"), 0, "7 of 10 is under 80 %");
        assert!(!owner.browser.get(&usage_page).await.expect(200).body.contains("limit-warning"));
        attempt().await;
        attempt().await;
        // 9 of 10: one notice (from when it crossed 8) to each owner and admin, none to the
        // viewer, and the pages say so.
        for admin in ["limits@example.com", "deputy@example.com"] {
            assert_eq!(notices(admin, "80"), 1, "{admin}");
        }
        assert!(emails_in(&world.outbox, "looker@example.com").iter().all(|email| !email.contains("monthly limit")));
        assert!(world.last_email("limits@example.com").contains("has used 8 of its monthly limit of 10 protected attempts"), "sent when it crossed 80 %");
        assert!(owner.browser.get(&projects_page).await.expect(200).body.contains("90 % of its monthly limit used"));
        assert!(owner.browser.get(&usage_page).await.expect(200).body.contains("used 9 of its monthly limit of 10 protected attempts (90 %)"));

        attempt().await;
        assert_eq!((notices("limits@example.com", "80"), notices("limits@example.com", "100")), (1, 1));
        assert!(owner.browser.get(&projects_page).await.expect(200).body.contains("Monthly limit reached: new challenges are refused"));
        assert!(owner.browser.get(&usage_page).await.expect(200).body.contains("reached its monthly limit of 10 protected attempts"));
        // At the limit the edge refuses: no more attempts, and no second notice.
        world.publish().await;
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.reason(), "usage_exhausted");
        world.deliver_telemetry().await;
        assert_eq!(notices("limits@example.com", "100"), 1);
        world.clock.advance(humanproof_control_plane::db::retention::USAGE_NOTICE_TTL_MS + 1);
        let report = humanproof_control_plane::db::retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!(report.project_limit_notices_deleted, 2);
    }

    async fn each_role_sees_only_the_tabs_and_buttons_it_may_use(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "boss@example.com").await;
        let org = &owner.org;
        let tab = |path: &str| format!("href=\"/orgs/{org}/{path}\"");
        let project_page = format!("/orgs/{org}/projects/{}", owner.project);
        let page = owner.browser.get(&project_page).await.expect(200);
        for path in ["projects", "clients", "members", "api-keys", "audit", "billing"] {
            assert!(page.body.contains(&tab(path)), "the owner sees {path}");
        }
        assert!(page.body.contains(">Save</button>") && !page.body.contains("id=\"read-only\""));
        for (role, hidden, shown) in [
            (Role::Viewer, &["api-keys", "audit"][..], &["projects", "members", "billing"][..]),
            (Role::Developer, &["api-keys", "audit"], &["projects", "members", "billing"]),
            (Role::Billing, &["api-keys", "audit"], &["billing", "members"]),
            (Role::Admin, &[], &["api-keys", "audit", "members"]),
        ] {
            let (browser, _) = member(&world, &base, org, &format!("{}@example.com", role.as_str()), role).await;
            let page = browser.get(&project_page).await.expect(200);
            for path in hidden {
                assert!(!page.body.contains(&tab(path)), "{role:?} does not see {path}");
            }
            for path in shown {
                assert!(page.body.contains(&tab(path)), "{role:?} sees {path}");
            }
            let writes = role.allows(Permission::ProjectsWrite);
            assert_eq!(page.body.contains(">Save</button>"), writes, "{role:?}");
            assert_eq!(page.body.contains("id=\"read-only\""), !writes, "{role:?}");
            assert_eq!(page.body.contains("/rotate-secret"), writes, "{role:?}");
        }
    }

    async fn refused_forms_say_why_in_the_form_with_what_was_typed_and_the_navigation(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "typist@example.com").await;
        let org = &owner.org;
        // An API key without a scope: the form again, with the name and the error.
        let page = owner.browser.post(&format!("/orgs/{org}/api-keys"), &[("name", "nightly deploys")]).await.expect(400);
        assert!(page.body.contains("at least one scope") && page.body.contains("value=\"nightly deploys\""), "{}", page.body);
        assert!(page.body.contains(&format!("href=\"/orgs/{org}/projects\"")), "the navigation is there");
        // A bad scope keeps the scopes that were ticked.
        let page = owner.browser.post(&format!("/orgs/{org}/api-keys"), &[("name", "x"), ("scope", "projects:read"), ("scope", "nope")]).await.expect(400);
        assert!(page.body.contains("value=\"projects:read\" checked"), "{}", page.body);
        // Demoting the only owner: the members page, with the address and role typed.
        let page = owner.browser.post(&format!("/orgs/{org}/members"), &[("email", "typist@example.com"), ("role", "viewer")]).await.expect(409);
        assert!(page.body.contains("keeps at least one owner") && page.body.contains("value=\"typist@example.com\""));
        assert!(page.body.contains("<option value=\"viewer\" selected>"), "{}", page.body);
        // Removing the only owner, confirmed: the members page says why.
        let page = owner.browser.post(&format!("/orgs/{org}/members/{}/remove", owner.user_id), &[("confirmed", "yes")]).await.expect(409);
        assert!(page.body.contains("keeps at least one owner") && page.body.contains("<h1>Members</h1>"), "{}", page.body);
        // A forbidden action gets the dashboard's frame and a way back, not a bare page.
        let (viewer, _) = member(&world, &base, org, "looker@example.com", Role::Viewer).await;
        let page = viewer.post(&format!("/orgs/{org}/clients"), &[("name", "Bakery")]).await.expect(403);
        assert!(page.body.contains("Your role does not allow this"), "{}", page.body);
        assert!(page.body.contains(&format!("href=\"/orgs/{org}/projects\"")) && page.body.contains(&format!("href=\"/orgs/{org}/clients\"")), "{}", page.body);
        assert!(page.body.contains("looker@example.com"), "signed in as whom");
    }

    async fn custom_values_typed_under_a_named_preset_are_refused_not_silently_dropped(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "presets@example.com").await;
        let path = format!("/orgs/{}/projects/{}", owner.org, owner.project);
        let with = |preset: &'static str, extra: &[(&'static str, String)]| {
            let mut form: Vec<(&str, String)> = PROJECT_FORM.iter().map(|(k, v)| (*k, v.to_string())).collect();
            form.retain(|(name, _)| *name != "preset");
            form.push(("preset", preset.to_owned()));
            form.extend(extra.iter().cloned());
            form
        };
        let post = async |path: &str, form: Vec<(&str, String)>| {
            let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            owner.browser.post(path, &fields).await
        };
        let values = |p: Protection| -> Vec<(&'static str, String)> {
            vec![
                ("difficulty", p.difficulty.to_string()), ("challenge_count", p.challenge_count.to_string()),
                ("obfuscation", p.obfuscation.name().to_owned()), ("rate_limit", p.rate_limit.to_string()),
                ("block_threshold", p.block_threshold.as_decimal().to_string()),
            ]
        };
        // Leaving Custom: the page still carries the custom values it showed, which is fine.
        let current = projects::find(&world.db, &owner.project).await.unwrap().unwrap().settings.preset.protection();
        post(&path, with("relaxed", &values(current))).await.expect(303);
        // Under a named preset, the page shows that preset's values: saving them is fine too.
        post(&path, with("balanced", &values(Protection::BALANCED))).await.expect(303);
        // A value typed under a named preset would be ignored: refused, nothing saved.
        let typed = [("difficulty", "7".to_owned()), ("challenge_count", "77".to_owned())];
        let refused = post(&path, with("strict", &typed)).await.expect(400);
        assert!(refused.body.contains("apply only to the Custom preset"), "{}", refused.body);
        assert!(refused.body.contains("value=\"77\""), "what was typed is kept");
        assert_eq!(projects::find(&world.db, &owner.project).await.unwrap().unwrap().settings.preset, Preset::Balanced);
        let new_project = format!("/orgs/{}/projects/new", owner.org);
        post(&new_project, with("relaxed", &typed)).await.expect(400);
        post(&new_project, with("strict", &values(Protection::BALANCED))).await.expect(303);
        // With Custom chosen they are the point.
        post(&path, with("custom", &typed)).await.expect(303);
        let stored = projects::find(&world.db, &owner.project).await.unwrap().unwrap().settings.preset.protection();
        assert_eq!((stored.difficulty, stored.challenge_count), (7, 77));
    }

    async fn destructive_actions_ask_first_change_nothing_until_confirmed_and_then_say_what_happened(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "careful@example.com").await;
        let (_, viewer_id) = member(&world, &base, &owner.org, "leaving@example.com", Role::Viewer).await;
        let project_page = format!("/orgs/{}/projects/{}", owner.org, owner.project);
        let members_page = format!("/orgs/{}/members", owner.org);
        let asks = [
            (format!("{project_page}/delete"), "Delete this project?"),
            (format!("{project_page}/rotate-secret"), "Rotate the backend secret?"),
            (format!("{project_page}/revoke-tokens"), "Revoke every token issued so far?"),
            (format!("{members_page}/{viewer_id}/remove"), "Remove this member?"),
        ];
        let stored = async || projects::find(&world.db, &owner.project).await.unwrap();
        let before = stored().await.unwrap();
        for (action, question) in &asks {
            // The first post only asks, naming what it acts on, with a form that confirms.
            let asked = owner.browser.post(action, &[]).await.expect(200);
            assert!(asked.body.contains(question), "{action}: {}", asked.body);
            assert!(asked.body.contains("name=\"confirmed\" value=\"yes\""));
            assert!(asked.body.contains(&format!("action=\"{}\"", action.replace('/', "&#x2f;"))), "{}", asked.body);
        }
        // Nothing happened: the project is there, with its secret and its tokens' key.
        let after = stored().await.unwrap();
        assert_eq!((after.previous_secret_expires_at, after.key_version), (before.previous_secret_expires_at, before.key_version));
        assert!(owner.browser.get(&members_page).await.expect(200).body.contains("leaving@example.com"));

        // Confirmed, each happens and the next page says so, once.
        let rotated = owner.browser.post(&asks[1].0, &[("confirmed", "yes")]).await.expect(303);
        assert_eq!(rotated.location.as_deref(), Some(project_page.as_str()));
        let shown = owner.browser.get(&project_page).await.expect(200);
        assert!(shown.body.contains("New secret issued") && shown.body.contains("hp_secret_"));
        let again = owner.browser.get(&project_page).await.expect(200);
        assert!(!again.body.contains("New secret issued") && !again.body.contains("hp_secret_"));
        owner.browser.post(&asks[3].0, &[("confirmed", "yes")]).await.expect(303);
        let members = owner.browser.get(&members_page).await.expect(200);
        assert!(members.body.contains("Member removed.") && !members.body.contains("leaving@example.com"));
        let deleted = owner.browser.post(&asks[0].0, &[("confirmed", "yes")]).await.expect(303);
        let list = owner.browser.get(&deleted.location.unwrap()).await.expect(200);
        assert!(list.body.contains("Project deleted."));
        assert!(stored().await.is_none());
    }

    async fn every_organisation_route_checks_the_role(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "owner@example.com").await;
        for role in Role::ALL {
            let (browser, _) = member(&world, &base, &owner.org, &format!("role-{}@example.com", role.as_str()), role).await;
            for route in ROUTES {
                let page = route.call(&world, &base, &browser, &owner.org, &owner.project, &owner.org).await;
                if route.allowed(role) {
                    assert!(matches!(page.status, 200 | 201 | 303), "{role:?} {route:?}: {} {}", page.status, page.body);
                } else {
                    assert_eq!(page.status, 403, "{role:?} {route:?} must be refused: {}", page.body);
                }
            }
        }
    }

    async fn another_organisations_ids_are_refused_everywhere(world: World) {
        let base = world.serve().await;
        let ours = tenant(&world, &base, "ours@example.com").await;
        let theirs = tenant(&world, &base, "theirs@example.com").await;
        let their_key = orgs::insert_api_key(&world.db, &theirs.org, "theirs", &secrets::new_id(), "hp_key_t", &[Scope::ProjectsRead], 0).await.unwrap();

        for route in ROUTES {
            // Their organisation in the path: we are not members.
            let page = route.call(&world, &base, &ours.browser, &theirs.org, &theirs.project, &theirs.org).await;
            assert_eq!(page.status, 404, "{route:?} in their organisation: {}", page.body);
            // Our organisation in the path, their project id.
            if matches!(
                route,
                Route::ProjectPage | Route::UpdateProject | Route::DeleteProject | Route::RotateSecret | Route::Integration
                    | Route::Usage | Route::Risk | Route::SetRiskMode
            ) {
                let page = route.call(&world, &base, &ours.browser, &ours.org, &theirs.project, &theirs.org).await;
                assert_eq!(page.status, 404, "{route:?} with their project: {}", page.body);
            }
        }
        // Their member and their key, through our organisation.
        ours.browser.post(&format!("/orgs/{}/members/{}/remove", ours.org, theirs.user_id), &[]).await.expect(404);
        ours.browser.post(&format!("/orgs/{}/api-keys/{}/disable", ours.org, their_key.id), &[]).await.expect(404);

        // Their client cannot be used for our project.
        let their_client = orgs::insert_client(&world.db, &theirs.org, "Theirs", 0).await.unwrap();
        let mut form = PROJECT_FORM.to_vec();
        form.push(("client_id", &their_client.id));
        let refused = ours.browser.post(&format!("/orgs/{}/projects/{}", ours.org, ours.project), &form).await.expect(400);
        assert!(refused.body.contains("No such client"));

        // Their project, keys, members, invitations and clients are untouched (the route
        // fixtures added a victim of each to their organisation; all still there).
        assert_eq!(orgs::clients(&world.db, &theirs.org).await.unwrap().len(), 2);
        assert_eq!(orgs::pending_invitations(&world.db, &theirs.org, 0).await.unwrap().len(), 1);
        assert!(projects::find(&world.db, &theirs.project).await.unwrap().is_some());
        assert_eq!(projects::list_for_organisation(&world.db, &theirs.org).await.unwrap().len(), 2);
        assert!(orgs::list_api_keys(&world.db, &theirs.org).await.unwrap().iter().all(|key| key.active));
        assert_eq!(orgs::members(&world.db, &theirs.org).await.unwrap().len(), 2);

        // The API: our key, their project.
        let (api, _) = api_key(&world, &base, &ours, &["projects:read", "projects:write", "usage:read"]).await;
        for (method, path) in [
            ("GET", format!("/api/v1/projects/{}", theirs.project)),
            ("PATCH", format!("/api/v1/projects/{}", theirs.project)),
            ("DELETE", format!("/api/v1/projects/{}", theirs.project)),
            ("POST", format!("/api/v1/projects/{}/rotate-secret", theirs.project)),
            ("GET", format!("/api/v1/projects/{}/usage", theirs.project)),
        ] {
            let (status, body) = api.call(method, &path, Some(json!({ "name": "stolen" }))).await;
            assert_eq!(status, 404, "{method} {path}: {body}");
        }
        let (_, listed) = api.call("GET", "/api/v1/projects", None).await;
        let ids: Vec<&str> = listed["projects"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [ours.project.as_str()]);
    }

    async fn members_are_invited_by_email(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "boss@example.com").await;
        owner.browser.post(&format!("/orgs/{}/members", owner.org), &[("email", "New.Hire@example.com"), ("role", "developer")]).await.expect(303);
        let members_page = owner.browser.get(&format!("/orgs/{}/members", owner.org)).await.expect(200);
        assert!(members_page.body.contains("new.hire@example.com"));
        let link = world.email_links("new.hire@example.com").into_iter().find(|l| l.contains("/invitations/accept?token=")).unwrap();
        let path = &link[link.find("/invitations").unwrap()..];
        let token = path.split("token=").nth(1).unwrap().to_owned();

        // Someone else signed in cannot take it.
        let (stranger, _) = member(&world, &base, &insert_org(&world).await, "stranger@example.com", Role::Owner).await;
        assert!(stranger.get(path).await.expect(200).body.contains("You are signed in as stranger@example.com"));
        stranger.post("/invitations/accept", &[("token", &token)]).await.expect(403);

        // The invited address signs up and accepts, once.
        let hire = Browser::new(&base);
        hire.sign_up("new.hire@example.com", PASSWORD).await;
        hire.get(path).await.expect(200);
        let joined = hire.post("/invitations/accept", &[("token", &token)]).await.expect(303);
        assert_eq!(joined.location, Some(format!("/orgs/{}/projects", owner.org)));
        let members = orgs::members(&world.db, &owner.org).await.unwrap();
        assert_eq!(members.iter().find(|m| m.email == "new.hire@example.com").unwrap().role, Role::Developer);
        hire.post("/invitations/accept", &[("token", &token)]).await.expect(404);

        // Withdrawn and expired invitations do not work.
        owner.browser.post(&format!("/orgs/{}/members", owner.org), &[("email", "late@example.com"), ("role", "viewer")]).await.expect(303);
        owner.browser.post(&format!("/orgs/{}/invitations/revoke", owner.org), &[("email", "late@example.com")]).await.expect(303);
        let late = world.email_links("late@example.com").into_iter().find(|l| l.contains("/invitations/accept")).unwrap();
        hire.get(&late[late.find("/invitations").unwrap()..]).await.expect(404);
        owner.browser.post(&format!("/orgs/{}/members", owner.org), &[("email", "later@example.com"), ("role", "viewer")]).await.expect(303);
        world.clock.advance(humanproof_control_plane::service::members::INVITATION_TTL_MS + 1);
        let later = world.email_links("later@example.com").into_iter().find(|l| l.contains("/invitations/accept")).unwrap();
        hire.get(&later[later.find("/invitations").unwrap()..]).await.expect(404);
    }

    async fn signing_up_through_an_invitation_joins_without_an_organisation_of_ones_own(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "lead@example.com").await;
        owner.browser.post(&format!("/orgs/{}/members", owner.org), &[("email", "joiner@example.com"), ("role", "developer")]).await.expect(303);
        let link = world.email_links("joiner@example.com").into_iter().find(|l| l.contains("/invitations/accept?token=")).unwrap();
        let invitation = link[link.find("/invitations").unwrap()..].to_owned();
        let token = invitation.split("token=").nth(1).unwrap().to_owned();

        // The invitation offers sign-in and sign-up, both coming back to it.
        let joiner = Browser::new(&base);
        let page = joiner.get(&invitation).await.expect(200).body;
        assert!(page.contains(&format!("href=\"/sign-up?invitation={token}\"")), "{page}");
        assert!(page.contains(&format!("href=\"/sign-in?next=&#x2f;invitations&#x2f;accept%3Ftoken%3D{token}\"")), "{page}");

        // The sign-up form is for the invited address, with no organisation to name.
        let form = joiner.get(&format!("/sign-up?invitation={token}")).await.expect(200).body;
        assert!(form.contains("value=\"joiner@example.com\" readonly") || form.contains("readonly value=\"joiner@example.com\""), "{form}");
        assert!(!form.contains("name=\"organisation\""));

        // Signing up (whatever address the form is made to send) signs in at once, as the
        // invited address, confirmed, in no organisation, and goes back to the invitation.
        let signed_up = joiner.post("/sign-up", &[("invitation", &token), ("email", "someone.else@example.com"), ("password", PASSWORD)]).await.expect(303);
        assert_eq!(signed_up.location.as_deref(), Some(invitation.as_str()));
        let (user, _) = accounts::find_user_by_email(&world.db, "joiner@example.com").await.unwrap().unwrap();
        assert!(user.email_verified);
        assert!(accounts::find_user_by_email(&world.db, "someone.else@example.com").await.unwrap().is_none());
        assert!(orgs::memberships(&world.db, &user.id).await.unwrap().is_empty());
        assert!(joiner.get(&invitation).await.expect(200).body.contains("Accept and join"));
        joiner.post("/invitations/accept", &[("token", &token)]).await.expect(303);
        let memberships = orgs::memberships(&world.db, &user.id).await.unwrap();
        assert_eq!(memberships.len(), 1);
        assert_eq!((memberships[0].organisation_id.as_str(), memberships[0].role), (owner.org.as_str(), Role::Developer));

        // A used invitation signs no one up; a new one to an address with an account says to
        // sign in (the invitation reached that mailbox, so this tells no one anything).
        let again = Browser::new(&base);
        assert!(again.post("/sign-up", &[("invitation", &token), ("password", PASSWORD)]).await.expect(400).body.contains("invalid, already used or expired"));
        Browser::new(&base).sign_up("boss@example.com", PASSWORD).await;
        owner.browser.post(&format!("/orgs/{}/members", owner.org), &[("email", "boss@example.com"), ("role", "viewer")]).await.expect(303);
        let link = world.email_links("boss@example.com").into_iter().find(|l| l.contains("/invitations/accept?token=")).unwrap();
        let other_token = link.split("token=").nth(1).unwrap();
        let refused = Browser::new(&base).post("/sign-up", &[("invitation", other_token), ("password", PASSWORD)]).await.expect(400).body;
        assert!(refused.contains("already has an account"), "{refused}");

        // Sign-in comes back to where it was sent from, and only to a page of this site.
        let back = format!("/invitations/accept?token={other_token}");
        for (next, expected) in [(back.as_str(), back.as_str()), ("https://evil.example/x", "/"), ("//evil.example", "/"), ("/\\evil.example", "/")] {
            let browser = Browser::new(&base);
            browser.get("/sign-in").await;
            let signed_in = browser.post("/sign-in", &[("email", "boss@example.com"), ("password", PASSWORD), ("next", next)]).await.expect(303);
            assert_eq!(signed_in.location.as_deref(), Some(expected), "{next}");
        }

        // Someone who leaves their only organisation starts from a page that creates one.
        joiner.post(&format!("/orgs/{}/leave", owner.org), &[("confirmed", "yes")]).await.expect(303);
        assert_eq!(joiner.get("/").await.expect(303).location.as_deref(), Some("/orgs/new"));
        assert!(joiner.get("/orgs/new").await.expect(200).body.contains("You are not a member of any organisation"));
        assert!(joiner.post("/orgs", &[("name", "  ")]).await.expect(400).body.contains("1 to 100 characters"));
        let created = joiner.post("/orgs", &[("name", "Joiner Ltd")]).await.expect(303);
        let org = created.location.unwrap().trim_start_matches("/orgs/").trim_end_matches("/projects").to_owned();
        assert_eq!(orgs::organisation_name(&world.db, &org).await.unwrap().as_deref(), Some("Joiner Ltd"));
        assert_eq!(orgs::memberships(&world.db, &user.id).await.unwrap()[0].role, Role::Owner);
    }

    async fn projects_are_filed_under_clients(world: World) {
        let base = world.serve().await;
        let agency = tenant(&world, &base, "agency@example.com").await;
        agency.browser.post(&format!("/orgs/{}/clients", agency.org), &[("name", "Bakery")]).await.expect(303);
        let bakery = orgs::clients(&world.db, &agency.org).await.unwrap().remove(0);
        let mut form = PROJECT_FORM.to_vec();
        form.push(("client_id", &bakery.id));
        agency.browser.post(&format!("/orgs/{}/projects/{}", agency.org, agency.project), &form).await.expect(303);
        let listed = agency.browser.get(&format!("/orgs/{}/projects", agency.org)).await.expect(200);
        assert!(listed.body.contains("<td>Bakery</td>"));
        // Removing the client keeps the project, unfiled.
        agency.browser.post(&format!("/orgs/{}/clients/{}/delete", agency.org, bakery.id), &[]).await.expect(303);
        assert_eq!(projects::find(&world.db, &agency.project).await.unwrap().unwrap().client_id, None);
    }

    async fn the_integration_page_writes_the_snippet_and_samples_for_the_project(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "integrator@example.com").await;
        let project = projects::find(&world.db, &owner.project).await.unwrap().unwrap();
        let mut settings = project.settings.clone();
        settings.widget.variant = humanproof_protocol::wire::Variant::Invisible;
        settings.widget.language = "de".into();
        projects::update_settings(&world.db, &project.id, &settings, world.clock.now_ms()).await.unwrap();
        let page = owner.browser.get(&format!("/orgs/{}/projects/{}/integration", owner.org, project.id)).await.expect(200);
        // The snippet names the site key only: the widget reads its look from the edge, so
        // a later change in the dashboard needs no new snippet.
        // The page shows code as escaped text; read it as a person copying it would.
        let shown = page.body.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#x2f;", "/").replace("&#x27;", "'").replace("&amp;", "&");
        let snippet = format!(
            "<script src=\"http://127.0.0.1:8787/widget.js\" async defer></script>\n\n<form method=\"post\" action=\"/signup\">\n  <!-- your fields -->\n  <humanproof-widget data-sitekey=\"{}\"></humanproof-widget>\n  <button type=\"submit\">Send</button>\n</form></code>",
            project.site_key
        );
        assert!(shown.contains(&snippet), "{shown}");
        for sample in [
            "curl -s http://localhost:8080/siteverify \\\n",
            "await fetch(\"http://localhost:8080/siteverify\", {",
            "requests.post(\"http://localhost:8080/siteverify\", data={",
            "file_get_contents(\"http://localhost:8080/siteverify\", false",
            ".post(\"http://localhost:8080/siteverify\")",
        ] {
            assert!(shown.contains(sample), "missing {sample:?} in {shown}");
        }
        assert!(!shown.contains("could not be shown"));
    }

    async fn nothing_the_plan_lacks_is_saved(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "frugal@example.com").await;
        world.on_plan(&owner.org, "free").await;
        let (api, _) = api_key(&world, &base, &owner, &["projects:read", "projects:write"]).await;
        let base_project = json!({ "name": "Extra", "testing_domains": ["localhost"] });
        for (extra, field) in [
            (json!({ "widget": { "variant": "floating", "theme": "auto", "language": "auto", "size": "normal", "branding": "full" } }), "widget.variant"),
            (json!({ "widget": { "variant": "checkbox", "theme": "auto", "language": "auto", "size": "normal", "branding": "none" } }), "widget.branding"),
            (json!({ "preset": "custom", "difficulty": 2 }), "preset"),
        ] {
            let mut body = base_project.clone();
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let (status, answer) = api.call("POST", "/api/v1/projects", Some(body)).await;
            assert_eq!((status, answer["error"]["code"].as_str(), answer["error"]["field"].as_str()), (402, Some("not_in_plan"), Some(field)), "{answer}");
            assert!(answer["error"]["message"].as_str().unwrap().contains("Free plan"));
        }
        // A change to an existing project is refused whole: the edge would refuse every visitor.
        let (status, _) = api.call("PATCH", &format!("/api/v1/projects/{}", owner.project), Some(json!({
            "name": "Renamed", "widget": { "variant": "checkbox", "theme": "auto", "language": "auto", "size": "normal", "branding": "none" },
        }))).await;
        assert_eq!(status, 402);
        let stored = projects::find(&world.db, &owner.project).await.unwrap().unwrap();
        assert_eq!((stored.settings.name.as_str(), stored.settings.widget.branding), ("fixture", humanproof_protocol::wire::Branding::Full));
        // The dashboard says why, in the form.
        let mut form = PROJECT_FORM.to_vec();
        form.retain(|(name, _)| *name != "widget_branding");
        form.push(("widget_branding", "none"));
        let page = owner.browser.post(&format!("/orgs/{}/projects/{}", owner.org, owner.project), &form).await.expect(402);
        assert!(page.body.contains("The Free plan does not include none branding."), "{}", page.body);
        // The form offers only what the plan includes, and the plan is shown.
        let form_page = owner.browser.get(&format!("/orgs/{}/projects/{}", owner.org, owner.project)).await.expect(200);
        assert!(form_page.body.contains("<option value=\"floating\"  disabled>Floating (not in your plan)</option>"), "{}", form_page.body);
        assert!(form_page.body.contains("<option value=\"invisible\" >Invisible</option>"));
        let listed = owner.browser.get(&format!("/orgs/{}/projects", owner.org)).await.expect(200);
        assert!(listed.body.contains("Plan: Free. 0 of 10000 protected attempts used this month."), "{}", listed.body);
        // Free has two projects: the fixture and one more.
        let (status, _) = api.call("POST", "/api/v1/projects", Some(base_project.clone())).await;
        assert_eq!(status, 201);
        let (status, answer) = api.call("POST", "/api/v1/projects", Some(base_project)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (402, Some("not_in_plan")), "{answer}");
        assert_eq!(projects::list_for_organisation(&world.db, &owner.org).await.unwrap().len(), 2);
        // And two members, invitations included; inviting the same address again is no new seat.
        let members = format!("/orgs/{}/members", owner.org);
        owner.browser.post(&members, &[("email", "second@example.com"), ("role", "viewer")]).await.expect(303);
        owner.browser.post(&members, &[("email", "second@example.com"), ("role", "viewer")]).await.expect(303);
        let refused = owner.browser.post(&members, &[("email", "third@example.com"), ("role", "viewer")]).await.expect(402);
        assert!(refused.body.contains("The Free plan does not include more than 2 members."), "{}", refused.body);
    }

    async fn a_plan_change_reaches_every_project_at_the_edge(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "grower@example.com").await;
        world.on_plan(&owner.org, "free").await;
        world.publish().await;
        let site_key = projects::find(&world.db, &owner.project).await.unwrap().unwrap().site_key;
        let floating = json!({ "widget": { "variant": "floating", "branding": "full" } });
        let answer = world.start_challenge(&site_key, &floating).await;
        assert_eq!((answer.status, answer.reason()), (403, "variant_not_allowed"));

        billing_service::set_plan(&world.state(), &owner.org, "starter", BillingStatus::Active).await.unwrap();
        assert_eq!(world.start_challenge(&site_key, &floating).await.status, 200, "published at once");
        let audit = orgs::audit_log(&world.db, &owner.org, 10).await.unwrap();
        assert!(audit.iter().any(|entry| entry.action == "billing.set.starter.active"));

        // The API reports it to keys with billing:read, and to no other.
        let (reader, _) = api_key(&world, &base, &owner, &["billing:read"]).await;
        let (status, overview) = reader.call("GET", "/api/v1/billing", None).await;
        assert_eq!(status, 200, "{overview}");
        assert_eq!((overview["plan"]["id"].as_str(), overview["status"].as_str(), overview["traffic_allowed"].as_bool()), (Some("starter"), Some("active"), Some(true)));
        let (projects_only, _) = api_key(&world, &base, &owner, &["projects:read"]).await;
        assert_eq!(projects_only.call("GET", "/api/v1/billing", None).await.0, 403);
        let (_, listed) = projects_only.call("GET", "/api/v1/projects", None).await;
        assert_eq!(listed["projects"][0]["plan"], "starter", "a project shows its organisation's plan");
    }

    async fn free_stops_at_its_included_attempts_and_a_lapsed_payment_after_its_grace(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "capped@example.com").await;
        world.on_plan(&owner.org, "free").await;
        let site_key = projects::find(&world.db, &owner.project).await.unwrap().unwrap().site_key;
        // A second project used the organisation's whole allowance this month.
        let other = insert_project(&world, &owner.org).await;
        let month = humanproof_control_plane::db::month_of(world.clock.now_ms());
        sqlx::query("INSERT INTO usage_months (project_id, month, protected_attempts) VALUES ($1, $2, $3)")
            .bind(&other).bind(&month).bind(10_000_i64)
            .execute(world.db.pool()).await.unwrap();
        world.publish().await;
        let answer = world.start_challenge(&site_key, &json!({})).await;
        assert_eq!((answer.status, answer.reason()), (429, "usage_exhausted"), "the cap is the organisation's");
        // Paid plans are not cut off at their included attempts.
        billing_service::set_plan(&world.state(), &owner.org, "starter", BillingStatus::Active).await.unwrap();
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.status, 200);

        // A failed payment: traffic goes on through the grace period, then stops; paying
        // restores it at once.
        billing_service::set_plan(&world.state(), &owner.org, "starter", BillingStatus::PastDue).await.unwrap();
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.status, 200);
        world.clock.advance(world.state().plans.grace_ends_at(0) + 1);
        world.publish().await;
        let answer = world.start_challenge(&site_key, &json!({})).await;
        assert_eq!((answer.status, answer.reason()), (402, "billing_inactive"));
        let overview = billing_service::overview_of(&world.db, &world.state().plans, &owner.org, world.clock.now_ms()).await.unwrap();
        assert!(!overview.traffic_allowed && overview.grace_ends_at.is_some());
        billing_service::set_plan(&world.state(), &owner.org, "starter", BillingStatus::Active).await.unwrap();
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.status, 200);
    }

    async fn free_usage_notices_go_out_once_at_80_and_100_percent(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "watcher@example.com").await;
        world.on_plan(&owner.org, "free").await;
        let (viewer, _) = member(&world, &base, &owner.org, "onlooker@example.com", Role::Viewer).await;
        let site_key = projects::find(&world.db, &owner.project).await.unwrap().unwrap().site_key;
        let set_usage = async |attempts: i64| set_usage(&world, &owner.project, attempts).await;
        let notices = |percent: &str| {
            emails_in(&world.outbox, "watcher@example.com").iter().filter(|email| email.contains(&format!("used {percent} % of its protected attempts"))).count()
        };
        world.publish().await;
        set_usage(7_998).await;
        world.verification_token(&site_key).await;
        world.deliver_telemetry().await;
        assert_eq!(notices("80"), 0, "7,999 is under 80 %");
        for _ in 0..2 {
            world.verification_token(&site_key).await;
            world.deliver_telemetry().await;
        }
        assert_eq!(notices("80"), 1, "sent once, at 8,000");
        assert!(world.last_email("watcher@example.com").contains("has used 8000 of the 10000 protected attempts the Free plan includes"));
        assert!(emails_in(&world.outbox, "onlooker@example.com").iter().all(|email| !email.contains("protected attempts")), "viewers manage no billing");
        let overview = billing_service::overview_of(&world.db, &world.state().plans, &owner.org, world.clock.now_ms()).await.unwrap();
        assert_eq!(overview.cap_reached_at, None);

        set_usage(9_999).await;
        world.verification_token(&site_key).await;
        world.deliver_telemetry().await;
        world.verification_token(&site_key).await;
        world.deliver_telemetry().await;
        assert_eq!((notices("80"), notices("100")), (1, 1));
        let overview = billing_service::overview_of(&world.db, &world.state().plans, &owner.org, world.clock.now_ms()).await.unwrap();
        assert_eq!(overview.cap_reached_at, Some(world.clock.now_ms()));
        // The banner shows until a member dismisses it.
        let projects_page = format!("/orgs/{}/projects", owner.org);
        let banner = "Your organisation used all protected attempts its Free plan includes this month";
        assert!(owner.browser.get(&projects_page).await.expect(200).body.contains(banner));
        viewer.post(&format!("/orgs/{}/billing/cap-notice/dismiss", owner.org), &[]).await.expect(303);
        assert!(!owner.browser.get(&projects_page).await.expect(200).body.contains(banner));
        // The record of what was sent goes once it can no longer stop a second notice.
        world.clock.advance(humanproof_control_plane::db::retention::USAGE_NOTICE_TTL_MS + 1);
        let report = humanproof_control_plane::db::retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!(report.usage_notices_deleted, 2);
    }

    async fn stripe_events_set_the_plan_once_in_any_order_and_only_when_signed(world: World) {
        let Billed { standin, base, .. } = with_stripe(&world.state()).await;
        let owner = tenant(&world, &base, "payer@example.com").await;
        world.on_plan(&owner.org, "free").await;
        world.publish().await;
        let site_key = projects::find(&world.db, &owner.project).await.unwrap().unwrap().site_key;
        let unbranded = json!({ "widget": { "variant": "checkbox", "branding": "none" } });
        assert_eq!(world.start_challenge(&site_key, &unbranded).await.reason(), "branding_not_allowed");

        let now_s = world.clock.now_ms() / 1000;
        let subscription = |status: &str, price: &str| StandInSubscription {
            customer: "cus_1".into(), status: status.into(), price: price.into(), interval: "month".into(),
            current_period_end: now_s + 30 * 86_400, ..StandInSubscription::default()
        };
        let deliver = async |body: &Value, secret: &str, at: i64| {
            let body = body.to_string();
            let answer = humanproof_control_plane::http::client()
                .post(format!("{base}/billing/stripe/webhook"))
                .header("stripe-signature", humanproof_control_plane::stripe::signature_header(secret, at, body.as_bytes()))
                .body(body)
                .send().await.unwrap();
            (answer.status().as_u16(), answer.json::<Value>().await.unwrap())
        };
        let event = |id: &str, kind: &str, object: Value| json!({ "id": id, "type": kind, "created": now_s, "data": { "object": object } });
        let billed = async || billing_service::overview_of(&world.db, &world.state().plans, &owner.org, world.clock.now_ms()).await.unwrap();
        let stripe_audits = async || orgs::audit_log(&world.db, &owner.org, 50).await.unwrap().iter().filter(|e| e.actor.starts_with("stripe:")).count();

        // Checkout completes: the organisation is on Pro, and the edge has its gates at once.
        standin.put_subscription("sub_1", subscription("active", "price_pro_month"));
        let completed = event("evt_1", "checkout.session.completed", json!({
            "id": "cs_1", "object": "checkout.session", "client_reference_id": owner.org, "customer": "cus_1", "subscription": "sub_1",
        }));
        let (status, answer) = deliver(&completed, "whsec_test", now_s).await;
        assert_eq!((status, answer["outcome"].as_str()), (200, Some("applied")), "{answer}");
        let overview = billed().await;
        assert_eq!((overview.plan.id.as_str(), overview.status), ("pro", BillingStatus::Active));
        assert_eq!(world.start_challenge(&site_key, &unbranded).await.status, 200);
        let link = billing::stripe_link(&world.db, &owner.org).await.unwrap().unwrap();
        assert_eq!((link.customer_id.as_str(), link.subscription_id.as_deref(), link.interval.as_deref()), ("cus_1", Some("sub_1"), Some("month")));

        // The customer's billing email comes with customer.updated; an older event delivered
        // late does not overwrite a newer address.
        let customer_updated = |id: &str, created: i64, email: &str| json!({
            "id": id, "type": "customer.updated", "created": created,
            "data": { "object": { "id": "cus_1", "object": "customer", "email": email } },
        });
        let (_, answer) = deliver(&customer_updated("evt_c2", now_s, "accounts@example.com"), "whsec_test", now_s).await;
        assert_eq!(answer["outcome"], "billing_email");
        let (_, answer) = deliver(&customer_updated("evt_c1", now_s - 60, "old@example.com"), "whsec_test", now_s).await;
        assert_eq!(answer["outcome"], "stale_or_unknown_customer");
        assert_eq!(billed().await.billing_email.as_deref(), Some("accounts@example.com"));

        // The same event again: one effect.
        let (status, answer) = deliver(&completed, "whsec_test", now_s).await;
        assert_eq!((status, answer["duplicate"].as_bool()), (200, Some(true)));
        assert_eq!(stripe_audits().await, 1);

        // Unsigned, wrongly signed, stale or tampered deliveries change nothing.
        standin.put_subscription("sub_1", subscription("canceled", "price_pro_month"));
        let forged = event("evt_forged", "customer.subscription.deleted", json!({ "id": "sub_1", "object": "subscription" }));
        assert_eq!(deliver(&forged, "whsec_attacker", now_s).await.0, 400);
        assert_eq!(deliver(&forged, "whsec_test", now_s - 301).await.0, 400);
        let unsigned = humanproof_control_plane::http::client().post(format!("{base}/billing/stripe/webhook")).body(forged.to_string()).send().await.unwrap();
        assert_eq!(unsigned.status().as_u16(), 400);
        assert_eq!(billed().await.plan.id, "pro");
        assert!(!billing::stripe_event_applied(&world.db, "evt_forged").await.unwrap());

        // Out of order: a payment fails, then an older "updated" event arrives after Stripe
        // already has the subscription paid again. Each reads Stripe's state back, so the
        // end state is Stripe's.
        standin.put_subscription("sub_1", subscription("past_due", "price_pro_month"));
        let failed = event("evt_3", "invoice.payment_failed", json!({ "id": "in_1", "object": "invoice", "customer": "cus_1", "subscription": "sub_1" }));
        assert_eq!(deliver(&failed, "whsec_test", now_s).await.0, 200);
        let overview = billed().await;
        assert_eq!(overview.status, BillingStatus::PastDue);
        assert!(overview.traffic_allowed, "the grace period has begun");
        standin.put_subscription("sub_1", subscription("active", "price_pro_month"));
        let stale = event("evt_2", "customer.subscription.updated", json!({ "id": "sub_1", "object": "subscription", "status": "past_due" }));
        assert_eq!(deliver(&stale, "whsec_test", now_s).await.0, 200);
        assert_eq!(billed().await.status, BillingStatus::Active);

        // A subscription to a price not in the catalogue changes nothing.
        standin.put_subscription("sub_1", subscription("active", "price_someone_elses"));
        let (_, answer) = deliver(&event("evt_5", "customer.subscription.updated", json!({ "id": "sub_1" })), "whsec_test", now_s).await;
        assert_eq!(answer["outcome"], "unknown_price");
        assert_eq!(billed().await.plan.id, "pro");

        // A failed payment that is not fixed: traffic goes on through the grace period, then
        // the edge stops it; Stripe's invoice.paid restores it at once.
        let invoice = json!({ "id": "in_2", "object": "invoice", "customer": "cus_1", "subscription": "sub_1" });
        standin.put_subscription("sub_1", subscription("past_due", "price_pro_month"));
        assert_eq!(deliver(&event("evt_6", "invoice.payment_failed", invoice.clone()), "whsec_test", now_s).await.0, 200);
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.status, 200);
        world.clock.advance(world.state().plans.grace_ends_at(0) + 1);
        world.publish().await;
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.reason(), "billing_inactive");
        standin.put_subscription("sub_1", subscription("active", "price_pro_month"));
        let later_s = world.clock.now_ms() / 1000;
        assert_eq!(deliver(&event("evt_7", "invoice.paid", invoice), "whsec_test", later_s).await.0, 200);
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.status, 200);

        // Cancelled: back to Free, and the edge refuses what Free lacks again.
        standin.put_subscription("sub_1", subscription("canceled", "price_pro_month"));
        let deleted = event("evt_4", "customer.subscription.deleted", json!({ "id": "sub_1", "object": "subscription" }));
        assert_eq!(deliver(&deleted, "whsec_test", later_s).await.0, 200);
        assert_eq!(billed().await.plan.id, "free");
        assert_eq!(world.start_challenge(&site_key, &unbranded).await.reason(), "branding_not_allowed");
        assert_eq!(stripe_audits().await, 6, "pro, past due, active again, past due, paid, free");

        // Without Stripe configured there is no webhook endpoint.
        let unbilled = world.serve().await;
        let answer = humanproof_control_plane::http::client().post(format!("{unbilled}/billing/stripe/webhook")).body("{}").send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 404);
    }

    async fn a_billing_member_upgrades_through_checkout_and_a_viewer_cannot(world: World) {
        let Billed { standin_url, base, .. } = with_stripe(&world.state()).await;
        let owner = tenant(&world, &base, "founder@example.com").await;
        world.on_plan(&owner.org, "free").await;
        let billing_page = format!("/orgs/{}/billing", owner.org);

        // A viewer sees the plans but no way to buy, and cannot start a checkout.
        let (viewer, _) = member(&world, &base, &owner.org, "looker@example.com", Role::Viewer).await;
        let page = viewer.get(&billing_page).await.expect(200);
        assert!(page.body.contains("Plan: Free.") && page.body.contains("Business"), "{}", page.body);
        assert!(!page.body.contains("/billing/checkout"));
        viewer.post(&format!("{billing_page}/checkout"), &[("plan", "pro"), ("interval", "month")]).await.expect(403);

        // A billing member buys Pro: on to the checkout page, "pay", back to the billing page.
        let (buyer, _) = member(&world, &base, &owner.org, "accounts@example.com", Role::Billing).await;
        let page = buyer.get(&billing_page).await.expect(200);
        assert!(page.body.contains("/billing/checkout"));
        buyer.post(&format!("{billing_page}/checkout"), &[("plan", "gold"), ("interval", "month")]).await.expect(400);
        let to_stripe = buyer.post(&format!("{billing_page}/checkout"), &[("plan", "pro"), ("interval", "month")]).await.expect(303);
        let checkout = to_stripe.location.unwrap();
        assert!(checkout.starts_with(&format!("{standin_url}/checkout/cs_")), "{checkout}");
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let page = http.get(&checkout).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("This is not Stripe") && page.contains("price_pro_month"));
        let paid = http.post(&checkout).send().await.unwrap();
        assert_eq!(paid.status().as_u16(), 303);
        let back = paid.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(back, format!("http://localhost:8080{billing_page}?checkout=done"));

        // Stripe's webhook has arrived: the plan is Pro, and the page says so.
        let page = buyer.get(&format!("{billing_page}?checkout=done")).await.expect(200);
        assert!(page.body.contains("Thank you.") && page.body.contains("Plan: Pro."), "{}", page.body);
        assert!(page.body.contains("The current period ends on"));
        assert!(!page.body.contains("/billing/checkout"), "a subscription is changed, not bought twice");
        let link = billing::stripe_link(&world.db, &owner.org).await.unwrap().unwrap();
        assert_eq!(link.interval.as_deref(), Some("month"));
        buyer.post(&format!("{billing_page}/checkout"), &[("plan", "business"), ("interval", "year")]).await.expect(409);

        // The portal: the viewer may not open it; the billing member cancels there, and the
        // organisation is back on Free.
        viewer.post(&format!("{billing_page}/portal"), &[]).await.expect(403);
        assert!(page.body.contains("Manage payment, invoices and cancellation"));
        let to_portal = buyer.post(&format!("{billing_page}/portal"), &[]).await.expect(303).location.unwrap();
        assert!(to_portal.starts_with(&format!("{standin_url}/portal/bps_")), "{to_portal}");
        let cancelled = http.post(&to_portal).send().await.unwrap();
        assert_eq!(cancelled.headers()["location"].to_str().unwrap(), format!("http://localhost:8080{billing_page}"));
        let page = buyer.get(&billing_page).await.expect(200);
        assert!(page.body.contains("Plan: Free."), "{}", page.body);
        assert!(page.body.contains("/billing/checkout"), "a new subscription may be bought again");
    }

    async fn a_subscription_upgrades_at_once_and_downgrades_when_the_period_ends(world: World) {
        let Billed { standin, base, .. } = with_stripe(&world.state()).await;
        let owner = tenant(&world, &base, "changer@example.com").await;
        world.on_plan(&owner.org, "free").await;
        let billing_page = format!("/orgs/{}/billing", owner.org);
        let change = |plan: &'static str, interval: &'static str| {
            let path = format!("{billing_page}/change");
            let browser = &owner.browser;
            async move { browser.post(&path, &[("plan", plan), ("interval", interval)]).await }
        };
        let site_key = projects::find(&world.db, &owner.project).await.unwrap().unwrap().site_key;
        let unbranded = json!({ "widget": { "variant": "checkbox", "branding": "none" } });
        let billed = async || billing_service::overview_of(&world.db, &world.state().plans, &owner.org, world.clock.now_ms()).await.unwrap();

        // Starter, monthly, through checkout; the meter's price comes with it.
        let checkout = owner.browser.post(&format!("{billing_page}/checkout"), &[("plan", "starter"), ("interval", "month")]).await.expect(303).location.unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        assert_eq!(http.post(&checkout).send().await.unwrap().status().as_u16(), 303);
        let subscription_id = billing::stripe_link(&world.db, &owner.org).await.unwrap().unwrap().subscription_id.unwrap();
        let overage_price = || standin.subscription(&subscription_id).unwrap().overage_price;
        assert_eq!(overage_price().as_deref(), Some("price_starter_overage"));
        assert_eq!(billed().await.plan.id, "starter");
        assert_eq!(world.start_challenge(&site_key, &unbranded).await.reason(), "branding_not_allowed");

        // An upgrade: at once, the difference invoiced now, Pro's gates at the edge.
        let page = owner.browser.get(&billing_page).await.expect(200);
        assert!(page.body.contains("/billing/change") && page.body.contains("Upgrades take effect at once"));
        let done = change("pro", "month").await.expect(303);
        assert_eq!(done.location.unwrap(), format!("{billing_page}?changed=now"));
        let overview = billed().await;
        assert_eq!((overview.plan.id.as_str(), overview.interval.as_deref(), overview.pending_change.as_ref()), ("pro", Some("month"), None));
        assert_eq!(standin.prorations(), ["always_invoice"]);
        assert_eq!(overage_price().as_deref(), Some("price_pro_overage"));
        assert_eq!(world.start_challenge(&site_key, &unbranded).await.status, 200);
        assert!(change("pro", "month").await.expect(409).body.contains("That is already your plan."));
        assert!(owner.browser.get(&billing_page).await.expect(200).body.contains("The subscription is paid up. Billed monthly."));
        change("gold", "month").await.expect(400);

        // A downgrade waits for the end of the period paid for, shown and cancellable; a
        // viewer sees it but can neither change nor cancel.
        let period_end = overview.current_period_end.unwrap();
        assert_eq!(change("starter", "month").await.expect(303).location.unwrap(), format!("{billing_page}?changed=later"));
        let overview = billed().await;
        assert_eq!(overview.plan.id, "pro", "paid for until the period ends");
        let pending = overview.pending_change.unwrap();
        assert_eq!((pending.plan.as_str(), pending.interval.as_str(), pending.at), ("starter", "month", period_end));
        let page = owner.browser.get(&billing_page).await.expect(200);
        assert!(page.body.contains("Scheduled change: Starter, billed monthly"), "{}", page.body);
        let (viewer, _) = member(&world, &base, &owner.org, "glancer@example.com", Role::Viewer).await;
        let seen = viewer.get(&billing_page).await.expect(200);
        assert!(seen.body.contains("Scheduled change: Starter"));
        assert!(!seen.body.contains("/billing/pending/cancel") && !seen.body.contains("/billing/change"));
        viewer.post(&format!("{billing_page}/pending/cancel"), &[]).await.expect(403);
        viewer.post(&format!("{billing_page}/change"), &[("plan", "business"), ("interval", "month")]).await.expect(403);
        owner.browser.post(&format!("{billing_page}/pending/cancel"), &[]).await.expect(303);
        assert_eq!(billed().await.pending_change, None);
        assert_eq!(standin.subscription(&subscription_id).unwrap().schedule, None);
        owner.browser.post(&format!("{billing_page}/pending/cancel"), &[]).await.expect(409);

        // Another interval waits too, and a second change replaces the first. When the period
        // ends, Stripe moves the subscription, and its webhook brings the plan here.
        change("starter", "month").await.expect(303);
        change("pro", "year").await.expect(303);
        let pending = billed().await.pending_change.unwrap();
        assert_eq!((pending.plan.as_str(), pending.interval.as_str()), ("pro", "year"));
        world.clock.advance(period_end - world.clock.now_ms() + 1000);
        standin.renew(&subscription_id).await;
        let overview = billed().await;
        assert_eq!((overview.plan.id.as_str(), overview.interval.as_deref(), overview.pending_change), ("pro", Some("year"), None));
        assert!(overview.current_period_end.unwrap() > period_end + 300 * 86_400_000);

        // A downgrade at the end of the year: Starter's gates reach the edge then.
        owner.browser.sign_in("changer@example.com", PASSWORD).await.expect(303);
        change("starter", "year").await.expect(303);
        assert_eq!(world.start_challenge(&site_key, &unbranded).await.status, 200);
        world.clock.advance(billed().await.current_period_end.unwrap() - world.clock.now_ms() + 1000);
        standin.renew(&subscription_id).await;
        assert_eq!(billed().await.plan.id, "starter");
        assert_eq!(world.start_challenge(&site_key, &unbranded).await.reason(), "branding_not_allowed");

        // Each request is in the audit log as the member's, each change Stripe made as Stripe's.
        let log = orgs::audit_log(&world.db, &owner.org, 100).await.unwrap();
        let by_member = |action: &str| log.iter().any(|e| e.actor == "user:changer@example.com" && e.action == action);
        for action in ["billing.change.pro.month.now", "billing.change.starter.month.period_end", "billing.pending.cancelled", "billing.change.pro.year.period_end"] {
            assert!(by_member(action), "{action}: {log:?}");
        }
        assert!(log.iter().any(|e| e.actor.starts_with("stripe:") && e.action == "billing.set.starter.active"), "{log:?}");
    }

    async fn usage_above_a_paid_plan_is_metered_once_however_often_it_is_reported(world: World) {
        let plans = Catalogue::builtin().with_overrides(r#"{"pro": {"included_attempts": 5}}"#).unwrap();
        let Billed { standin, base, state, .. } = with_stripe(&world.state().with(|state| state.plans = plans)).await;
        let owner = tenant(&world, &base, "metered@example.com").await;
        let capped = tenant(&world, &base, "capped@example.com").await;
        world.on_plan(&owner.org, "pro").await;
        world.on_plan(&capped.org, "free").await;
        let now = world.clock.now_ms();
        for (org, customer) in [(&owner.org, "cus_metered"), (&capped.org, "cus_capped")] {
            let link = billing::StripeLink {
                customer_id: customer.into(), subscription_id: Some(format!("sub_{customer}")), interval: Some("month".into()),
                current_period_end: None, pending_change: None, cancel_at_period_end: false, billing_email: None,
            };
            billing::link_stripe(&world.db, org, &link, now).await.unwrap();
        }
        set_usage(&world, &capped.project, 50_000).await;
        let month = humanproof_control_plane::db::month_of(now);
        let report = async || billing_service::report_overage(&state).await.unwrap();
        let unsent = async || billing::unsent_meter_reports(&world.db).await.unwrap().len();

        // Within the included attempts nothing is reported; a hard-capped plan never is.
        set_usage(&world, &owner.project, 3).await;
        assert_eq!(report().await, 0);
        assert!(standin.meter_events().is_empty());

        // Above them, the overage once, however often the job runs.
        set_usage(&world, &owner.project, 12).await;
        assert_eq!(report().await, 1);
        assert_eq!(report().await, 0);
        let events = standin.meter_events();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].event_name.as_str(), events[0].customer.as_str(), events[0].value, events[0].identifier.clone()),
            ("humanproof_protected_attempts", "cus_metered", 7, format!("humanproof-{}-{month}-0", owner.org))
        );

        // The answer to the next report is lost: Stripe has the event, HumanProof cannot know.
        // The retry sends the same identifier and idempotency key, and Stripe counts it once.
        set_usage(&world, &owner.project, 20).await;
        standin.lose_meter_answers(1);
        assert_eq!(report().await, 0);
        assert_eq!((standin.meter_events().len(), unsent().await), (2, 1));
        assert_eq!(report().await, 1);
        assert_eq!((standin.meter_events().len(), unsent().await), (2, 0));
        let billed: u64 = standin.meter_events().iter().map(|event| event.value).sum();
        assert_eq!(billed, 20 - 5, "every attempt above the included ones, once");

        // What was billed is kept a year and a bit, then deleted.
        world.clock.advance(humanproof_control_plane::db::retention::METER_REPORT_TTL_MS + 1);
        let retention = humanproof_control_plane::db::retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!(retention.meter_reports_deleted, 2);
    }

    async fn dashboard_forms_refuse_bad_input_with_a_reason(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "forms@example.com").await;
        let org = &owner.org;
        let bad = [
            (format!("/orgs/{org}/clients"), vec![("name", "")], "1 to 100 characters"),
            (format!("/orgs/{org}/members"), vec![("email", "someone@example.com"), ("role", "emperor")], "Pick a role"),
            (format!("/orgs/{org}/members"), vec![("email", "not an address"), ("role", "viewer")], "valid email"),
            (format!("/orgs/{org}/api-keys"), vec![("name", "ci"), ("scope", "everything")], "Unknown scope"),
            (format!("/orgs/{org}/api-keys"), vec![("name", "ci")], "at least one scope"),
            ("/account/language".to_owned(), vec![("language", "klingon")], "Pick a language"),
            // Hand-made posts that lack a field get a page too, not a plain-text 422.
            (format!("/orgs/{org}/members"), vec![("email", "someone@example.com")], "missing a field"),
            ("/sign-in".to_owned(), vec![("email", "forms@example.com")], "missing a field"),
        ];
        for (path, fields, reason) in bad {
            let page = owner.browser.post(&path, &fields).await.expect(400);
            assert!(page.body.contains(reason), "{path}: {}", page.body);
        }
        let mut form = PROJECT_FORM.to_vec();
        form.retain(|(name, _)| *name != "testing_domains");
        form.push(("monthly_limit", "lots"));
        let page = owner.browser.post(&format!("/orgs/{org}/projects/new"), &form).await.expect(400);
        assert!(page.body.contains("whole number"));
    }

    async fn an_organisation_keeps_an_owner(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "solo@example.com").await;
        owner.browser.post(&format!("/orgs/{}/members/{}/remove", owner.org, owner.user_id), &[("confirmed", "yes")]).await.expect(409);
        owner.browser.post(&format!("/orgs/{}/members", owner.org), &[("email", "solo@example.com"), ("role", "viewer")]).await.expect(409);
        // Admins cannot appoint owners.
        let (admin, _) = member(&world, &base, &owner.org, "admin@example.com", Role::Admin).await;
        admin.post(&format!("/orgs/{}/members", owner.org), &[("email", "admin@example.com"), ("role", "owner")]).await.expect(403);
    }

    async fn api_keys_are_shown_once_scoped_and_can_be_disabled_and_deleted(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "api@example.com").await;
        let (reader, key_id) = api_key(&world, &base, &owner, &["projects:read"]).await;
        let listed = owner.browser.get(&format!("/orgs/{}/api-keys", owner.org)).await.expect(200);
        assert!(!listed.body.contains(&reader.key), "the key is never shown again");

        let (status, _) = reader.call("GET", "/api/v1/projects", None).await;
        assert_eq!(status, 200);
        let stored = orgs::list_api_keys(&world.db, &owner.org).await.unwrap();
        assert!(stored.iter().find(|k| k.id == key_id).unwrap().last_used_at.is_some());

        let (status, body) = reader.call("POST", "/api/v1/projects", Some(json!({ "name": "x", "testing_domains": ["localhost"] }))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("insufficient_permission")));
        let (status, _) = reader.call("GET", &format!("/api/v1/projects/{}/usage", owner.project), None).await;
        assert_eq!(status, 403);

        owner.browser.post(&format!("/orgs/{}/api-keys/{key_id}/disable", owner.org), &[("confirmed", "yes")]).await.expect(303);
        let (status, body) = reader.call("GET", "/api/v1/projects", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
        let anonymous = ApiClient { base: base.clone(), key: String::new() };
        let (status, body) = anonymous.call("GET", "/api/v1/projects", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_api_key")));

        // Deleted (after a confirmation page), it is gone, and the page says what keys are for.
        let delete = format!("/orgs/{}/api-keys/{key_id}/delete", owner.org);
        let asked = owner.browser.post(&delete, &[]).await.expect(200);
        assert!(asked.body.contains("Delete this API key?") && asked.body.contains("automation"));
        assert_eq!(orgs::list_api_keys(&world.db, &owner.org).await.unwrap().len(), 1);
        owner.browser.post(&delete, &[("confirmed", "yes")]).await.expect(303);
        let page = owner.browser.get(&format!("/orgs/{}/api-keys", owner.org)).await.expect(200);
        assert!(page.body.contains("API key deleted.") && page.body.contains("id=\"no-keys\""), "{}", page.body);
        assert!(orgs::list_api_keys(&world.db, &owner.org).await.unwrap().is_empty());
        owner.browser.post(&delete, &[("confirmed", "yes")]).await.expect(404);
        let audit = orgs::audit_log(&world.db, &owner.org, 50).await.unwrap();
        assert!(audit.iter().any(|entry| entry.action == "api_key.deleted"));
    }

    async fn the_api_reports_daily_statistics_for_the_plans_window(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "stats@example.com").await;
        let stranger = tenant(&world, &base, "stranger@example.com").await;
        let (api, _) = api_key(&world, &base, &owner, &["usage:read"]).await;
        let (no_usage, _) = api_key(&world, &base, &owner, &["projects:read"]).await;
        let site_key = projects::find(&world.db, &owner.project).await.unwrap().unwrap().site_key;
        world.publish().await;
        world.verification_token(&site_key).await;
        world.deliver_telemetry().await;
        let now = world.clock.now_ms();
        stats::roll_up_since(&world.db, &world.state().plans, now - stats::DAY_MS, now).await.unwrap();

        // By default the plan's window (Business: 14 days) up to today.
        let path = format!("/api/v1/projects/{}/stats", owner.project);
        let (status, answer) = api.call("GET", &path, None).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!((answer["from"].as_str(), answer["to"].as_str()), (Some(stats::day_of(now - 13 * stats::DAY_MS).as_str()), Some(stats::day_of(now).as_str())));
        let days = answer["days"].as_array().unwrap();
        assert_eq!((days.len(), days[0]["starts"].as_i64(), days[0]["solved"].as_i64()), (1, Some(1), Some(1)), "{answer}");
        let today = stats::day_of(now);
        let (status, answer) = api.call("GET", &format!("{path}?from={today}&to={today}"), None).await;
        assert_eq!((status, answer["days"].as_array().map(Vec::len)), (200, Some(1)));

        for (query, field) in [("from=2026-13-01", "from"), ("to=yesterday", "to"), ("from=2026-11-30&to=2026-11-01", "from"), ("from=2026-01-01&to=2026-03-01", "from")] {
            let (status, answer) = api.call("GET", &format!("{path}?{query}"), None).await;
            assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(field)), "{query}: {answer}");
        }
        let (status, _) = api.call("GET", &format!("/api/v1/projects/{}/stats", stranger.project), None).await;
        assert_eq!(status, 404, "another organisation's project");
        let (status, _) = no_usage.call("GET", &path, None).await;
        assert_eq!(status, 403);
    }

    async fn the_analytics_page_draws_the_plans_window_and_the_csv_has_its_days(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "charts@example.com").await;
        world.on_plan(&owner.org, "free").await;
        let site_key = projects::find(&world.db, &owner.project).await.unwrap().unwrap().site_key;
        world.publish().await;
        world.verification_token(&site_key).await;
        world.deliver_telemetry().await;
        let now = world.clock.now_ms();
        let record = humanproof_control_plane::db::siteverify::VerificationRecord { project_id: owner.project.clone(), at: now, error_code: None };
        humanproof_control_plane::db::siteverify::record_verifications(&world.db, &[record]).await.unwrap();
        stats::roll_up_since(&world.db, &world.state().plans, now - stats::DAY_MS, now).await.unwrap();

        let page_path = format!("/orgs/{}/projects/{}/usage", owner.org, owner.project);
        let (viewer, _) = member(&world, &base, &owner.org, "glance@example.com", Role::Viewer).await;
        let page = viewer.get(&page_path).await.expect(200);
        let today = stats::day_of(now);
        // Free's window is 7 days: seven bars a day, and 24 an hour, each with its numbers.
        assert_eq!(page.body.matches("<svg class=\"chart\"").count(), 2, "{}", page.body);
        assert_eq!(page.body.matches("class=\"chart-hit\"").count(), 7 + 24);
        assert!(page.body.contains(&format!("<title>{today}: 1 starts, 1 solved, 0 failed, 0 blocked, 0 refused</title>")), "{}", page.body);
        assert!(page.body.contains(&format!("<th scope=\"row\">{today}</th><td>1</td><td>1</td>")), "the numbers as a table");
        assert!(page.body.contains("<td>Verified</td>"), "the latest verifications");
        assert!(!page.body.contains("/sample-traffic"), "made-up traffic is for the local server only");
        // The organisation's overview: each project's week at a glance.
        let list = viewer.get(&format!("/orgs/{}/projects", owner.org)).await.expect(200);
        assert!(list.body.contains("1 starts, 1 solved"), "{}", list.body);
        assert!(list.body.contains("aria-label=\"Challenge starts, last 7 days: 0, 0, 0, 0, 0, 0, 1\""));
        viewer.get(&format!("{page_path}?month=2026-13")).await.expect(400);
        let month = humanproof_control_plane::db::month_of(now);
        assert!(viewer.get(&format!("{page_path}?month={month}")).await.expect(200).body.contains(&format!("<option value=\"{month}\" selected>")));

        let csv = viewer.get(&format!("/orgs/{}/projects/{}/stats.csv", owner.org, owner.project)).await.expect(200);
        let lines: Vec<&str> = csv.body.lines().collect();
        assert_eq!(lines.len(), 1 + 7, "{}", csv.body);
        assert!(lines[0].starts_with("day,starts,solved,failed"));
        let fields: Vec<&str> = lines.last().unwrap().split(',').collect();
        assert_eq!((fields[0], fields[1], fields[2], fields[3], fields[8], fields[9]), (today.as_str(), "1", "1", "0", "1", "1"), "{}", csv.body);
        let stranger = tenant(&world, &base, "nosy@example.com").await;
        stranger.browser.get(&format!("/orgs/{}/projects/{}/stats.csv", owner.org, owner.project)).await.expect(404);
    }

    async fn a_deleted_account_goes_after_its_grace_with_the_organisations_it_alone_owns(world: World) {
        let base = world.serve().await;
        let leaving = tenant(&world, &base, "leaving@example.com").await;
        let staying = tenant(&world, &base, "staying@example.com").await;
        let now = world.clock.now_ms();
        orgs::put_member(&world.db, &staying.org, &leaving.user_id, Role::Admin, now).await.unwrap();
        orgs::audit(&world.db, Some(&staying.org), "user:leaving@example.com", "project.updated", None, now).await.unwrap();
        orgs::audit(&world.db, Some(&staying.org), "user:owner@example.com", "member.joined", Some("leaving@example.com"), now).await.unwrap();
        world.publish().await;
        let leaving_site = projects::find(&world.db, &leaving.project).await.unwrap().unwrap().site_key;
        let staying_site = projects::find(&world.db, &staying.project).await.unwrap().unwrap().site_key;
        assert_eq!(world.start_challenge(&leaving_site, &json!({})).await.status, 200);

        // Asked for: signed out, told by email when, and the password now offers to keep it.
        leaving.browser.post("/account/delete", &[("password", PASSWORD)]).await.expect(303);
        assert!(world.last_email("leaving@example.com").contains("It will be deleted on"));
        let browser = Browser::new(&base);
        let offer = browser.sign_in("leaving@example.com", PASSWORD).await.expect(403);
        assert!(offer.body.contains("This account is scheduled for deletion on") && offer.body.contains("Keep my account"), "{}", offer.body);
        let token = offer.body.split("name=\"token\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let kept = browser.post("/account/restore", &[("token", &token)]).await.expect(200);
        assert!(kept.body.contains("Your account is kept. Sign in again."));
        browser.post("/account/restore", &[("token", &token)]).await.expect(400);
        browser.sign_in("leaving@example.com", PASSWORD).await.expect(303);
        world.clock.advance(accounts_service::DELETION_GRACE_MS + 1);
        assert_eq!(accounts_service::delete_due_accounts(&world.state()).await.unwrap(), 0, "kept");

        // Asked for again, and this time left: nothing happens during the grace period.
        browser.sign_in("leaving@example.com", PASSWORD).await.expect(303);
        browser.post("/account/delete", &[("password", PASSWORD)]).await.expect(303);
        assert!(accounts::deletion_requested_at(&world.db, &leaving.user_id).await.unwrap().is_some());
        world.clock.advance(accounts_service::DELETION_GRACE_MS);
        assert_eq!(accounts_service::delete_due_accounts(&world.state()).await.unwrap(), 0);
        world.clock.advance(1);
        assert_eq!(accounts_service::delete_due_accounts(&world.state()).await.unwrap(), 1);
        assert!(world.last_email("leaving@example.com").contains("has been deleted"));

        // The account, the organisation it alone owned, its project, events and counters are
        // gone, and the project is off the edge; the other organisation keeps its history,
        // without the address.
        assert!(accounts::find_user(&world.db, &leaving.user_id).await.unwrap().is_none());
        assert!(orgs::organisation_name(&world.db, &leaving.org).await.unwrap().is_none());
        assert!(projects::find(&world.db, &leaving.project).await.unwrap().is_none());
        let leftovers: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM memberships WHERE user_id = $1) + (SELECT COUNT(*) FROM sessions WHERE user_id = $1) \
             + (SELECT COUNT(*) FROM audit_log WHERE organisation_id = $2 OR actor = 'user:leaving@example.com')",
        )
        .bind(&leaving.user_id)
        .bind(&leaving.org)
        .fetch_one(world.db.pool())
        .await
        .unwrap();
        assert_eq!(leftovers, 0);
        assert!(orgs::audit_log(&world.db, &staying.org, 50).await.unwrap().iter().any(|e| e.actor == "deleted-user"));
        // Nor as whom an entry was about.
        let kept = orgs::audit_log(&world.db, &staying.org, 50).await.unwrap();
        assert!(kept.iter().all(|e| e.target.as_deref() != Some("leaving@example.com")), "{kept:?}");
        assert!(kept.iter().any(|e| e.action == "member.joined" && e.target.as_deref() == Some("deleted-user")));
        world.publish().await;
        assert_eq!(world.start_challenge(&leaving_site, &json!({})).await.reason(), "unknown_site_key");
        assert_eq!(world.start_challenge(&staying_site, &json!({})).await.status, 200);
    }

    async fn an_account_cannot_be_deleted_while_an_organisation_it_alone_owns_pays(world: World) {
        let base = world.serve().await;
        let payer = tenant(&world, &base, "payer-leaving@example.com").await;
        let link = billing::StripeLink {
            customer_id: "cus_leaving".into(), subscription_id: Some("sub_leaving".into()), interval: Some("month".into()),
            current_period_end: None, pending_change: None, cancel_at_period_end: false, billing_email: None,
        };
        billing::link_stripe(&world.db, &payer.org, &link, world.clock.now_ms()).await.unwrap();
        let refused = payer.browser.post("/account/delete", &[("password", PASSWORD)]).await.expect(409);
        assert!(refused.body.contains("still has a subscription"), "{}", refused.body);
        assert!(accounts::deletion_requested_at(&world.db, &payer.user_id).await.unwrap().is_none());
    }

    async fn a_person_and_an_owner_download_their_data_and_nothing_of_others(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "exporter@example.com").await;
        let other = tenant(&world, &base, "neighbour@example.com").await;
        sqlx::query("UPDATE organisations SET name = 'Neighbour Ltd' WHERE id = $1").bind(&other.org).execute(world.db.pool()).await.unwrap();
        sqlx::query("UPDATE projects SET name = 'Neighbour shop' WHERE id = $1").bind(&other.project).execute(world.db.pool()).await.unwrap();
        world.publish().await;
        let site_key = projects::find(&world.db, &owner.project).await.unwrap().unwrap().site_key;
        world.verification_token(&site_key).await;
        world.deliver_telemetry().await;
        let now = world.clock.now_ms();
        stats::roll_up_since(&world.db, &world.state().plans, now - stats::DAY_MS, now).await.unwrap();

        let page = owner.browser.get("/account/export").await.expect(200);
        let account: Value = serde_json::from_str(&page.body).unwrap();
        assert_eq!(account["account"]["email"], "exporter@example.com");
        assert_eq!(account["memberships"].as_array().unwrap().len(), 1);
        assert!(!account["sessions"].as_array().unwrap().is_empty());
        assert!(account["audit"].as_array().unwrap().iter().any(|e| e["action"] == "account.signed_up"), "{account}");
        assert!(!page.body.contains("neighbour") && !page.body.contains("Neighbour"));
        assert!(!page.body.contains("hp_session") && !page.body.contains("password"), "no secrets");

        let path = format!("/orgs/{}/export", owner.org);
        let page = owner.browser.get(&path).await.expect(200);
        let organisation: Value = serde_json::from_str(&page.body).unwrap();
        assert_eq!(organisation["organisation"]["id"], owner.org.as_str());
        let project = &organisation["projects"][0];
        assert_eq!(project["project"]["id"], owner.project.as_str());
        assert_eq!(project["daily_statistics"][0]["solved"], 1, "{organisation}");
        assert_eq!(project["usage"][0]["usage"]["protected_attempts"], 1);
        assert_eq!(organisation["members"][0]["email"], "exporter@example.com");
        assert!(!page.body.contains("Neighbour") && !page.body.contains("hp_secret_"), "nothing of others, no secret");
        let (viewer, _) = member(&world, &base, &owner.org, "peek@example.com", Role::Admin).await;
        viewer.get(&path).await.expect(403);
        other.browser.get(&path).await.expect(404);
    }

    async fn an_organisation_left_without_members_goes_a_day_later_with_its_projects(world: World) {
        let base = world.serve().await;
        let abandoned = tenant(&world, &base, "last-one-out@example.com").await;
        let kept = tenant(&world, &base, "still-here@example.com").await;
        world.publish().await;
        let site_key = projects::find(&world.db, &abandoned.project).await.unwrap().unwrap().site_key;
        sqlx::query("DELETE FROM memberships WHERE organisation_id = $1").bind(&abandoned.org).execute(world.db.pool()).await.unwrap();
        let retention = async || humanproof_control_plane::db::retention::apply(&world.db, world.clock.now_ms()).await.unwrap();
        assert_eq!(retention().await.memberless_organisations_deleted, 0, "one being set up is left alone for a day");
        world.clock.advance(humanproof_control_plane::db::retention::MEMBERLESS_ORGANISATION_TTL_MS + 1);
        assert_eq!(retention().await.memberless_organisations_deleted, 1);
        assert!(orgs::organisation_name(&world.db, &abandoned.org).await.unwrap().is_none());
        assert!(projects::find(&world.db, &abandoned.project).await.unwrap().is_none());
        assert!(orgs::organisation_name(&world.db, &kept.org).await.unwrap().is_some());
        world.publish().await;
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.reason(), "unknown_site_key");
    }

    async fn the_api_manages_projects_and_refuses_bad_input(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "auto@example.com").await;
        let (api, _) = api_key(&world, &base, &owner, &["projects:read", "projects:write", "usage:read"]).await;

        let (status, created) = api.call("POST", "/api/v1/projects", Some(json!({
            "name": "Shop", "production_domains": ["Shop.Example.com"], "preset": "custom", "difficulty": 2, "challenge_count": 5,
        }))).await;
        assert_eq!(status, 201, "{created}");
        assert!(created["secret"].as_str().unwrap().starts_with("hp_secret_"));
        let project = &created["project"];
        assert_eq!(project["production_domains"], json!(["shop.example.com"]));
        assert_eq!((project["difficulty"].as_u64(), project["challenge_count"].as_u64()), (Some(2), Some(5)));
        let id = project["id"].as_str().unwrap();

        for (body, field) in [
            (json!({ "name": "" }), "name"),
            (json!({ "preset": "extreme" }), "preset"),
            (json!({ "preset": "custom", "difficulty": 9 }), "difficulty"),
            (json!({ "production_domains": ["https://shop.example.com/path"] }), "production_domains"),
            (json!({ "production_domains": [], "testing_domains": [] }), "production_domains"),
            (json!({ "widget": { "variant": "checkbox", "theme": "neon", "language": "en", "size": "normal", "branding": "full" } }), "widget.theme"),
            (json!({ "risk_mode": "panic" }), "risk_mode"),
            (json!({ "difficulty": "hard" }), "difficulty"),
            (json!({ "surprise": true }), "body"),
        ] {
            let (status, answer) = api.call("PATCH", &format!("/api/v1/projects/{id}"), Some(body.clone())).await;
            assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(field)), "{body}: {answer}");
        }
        let (status, answer) = api.call_raw("PATCH", &format!("/api/v1/projects/{id}"), "{not json").await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_field")));
        let (status, answer) = api.call("GET", &format!("/api/v1/projects/{id}/usage?month=2026-3"), None).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("month")));
        let (status, answer) = api.call("GET", &format!("/api/v1/projects/{id}/usage"), None).await;
        assert_eq!((status, answer["usage"]["protected_attempts"].as_u64()), (200, Some(0)));

        let (status, _) = api.call("DELETE", &format!("/api/v1/projects/{id}"), None).await;
        assert_eq!(status, 204);
        let (status, _) = api.call("GET", &format!("/api/v1/projects/{id}"), None).await;
        assert_eq!(status, 404);
    }

    async fn projects_in_the_api_are_what_its_openapi_document_says(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "spec@example.com").await;
        let (api, _) = api_key(&world, &base, &owner, &["projects:read", "projects:write"]).await;
        let document: Value = serde_json::from_str(OPENAPI).unwrap();
        let schema = |name: &str| document["components"]["schemas"][name]["properties"].as_object().unwrap().clone();
        let sorted = |names: Vec<String>| { let mut names = names; names.sort(); names };
        let keys = |object: &serde_json::Map<String, Value>| sorted(object.keys().cloned().collect());
        let path = format!("/api/v1/projects/{}", owner.project);

        // A project reads as the document says, every property present.
        let (status, project) = api.call("GET", &path, None).await;
        assert_eq!(status, 200, "{project}");
        assert_eq!(keys(project.as_object().unwrap()), keys(&schema("Project")));
        let required: Vec<String> = serde_json::from_value(document["components"]["schemas"]["Project"]["required"].clone()).unwrap();
        assert_eq!(sorted(required), keys(&schema("Project")));
        assert_eq!(keys(project["widget"].as_object().unwrap()), keys(&schema("Widget")));

        // A project body takes the fields the document names, no more and no fewer: refusing an
        // unknown field, serde lists the ones it knows.
        let (status, answer) = api.call("PATCH", &path, Some(json!({ "surprise": true }))).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("body")), "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        let (_, known) = message.split_once("expected one of ").expect("serde lists the known fields");
        let known: Vec<String> = known.split('`').skip(1).step_by(2).map(str::to_owned).collect();
        assert_eq!(sorted(known), keys(&schema("ProjectInput")));

        // Each field given a value of a type it never takes is named in the refusal.
        for field in schema("ProjectInput").keys() {
            let (status, answer) = api.call("PATCH", &path, Some(json!({ field: {} }))).await;
            assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(field.as_str())), "{field}: {answer}");
        }
        let widget = project["widget"].clone();
        for field in schema("Widget").keys() {
            let mut wrong = widget.clone();
            wrong[field] = json!({});
            let (status, answer) = api.call("PATCH", &path, Some(json!({ "widget": wrong }))).await;
            assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(format!("widget.{field}").as_str())), "{field}: {answer}");
        }

        // The documented bounds and names are the code's...
        let bounds = |field: &str| {
            let spec = &schema("ProjectInput")[field];
            (spec["minimum"].as_f64().unwrap(), spec["maximum"].as_f64().unwrap())
        };
        let range = |range: std::ops::RangeInclusive<u32>| (f64::from(*range.start()), f64::from(*range.end()));
        let score = |score: &Score| f64::from(score.tenths()) / 10.0;
        assert_eq!(bounds("difficulty"), range(DIFFICULTY_RANGE));
        assert_eq!(bounds("challenge_count"), range(COUNT_RANGE));
        assert_eq!(bounds("rate_limit"), range(RATE_LIMIT_RANGE));
        assert_eq!(bounds("squarings"), range(SQUARINGS_RANGE));
        assert_eq!(bounds("block_threshold"), (score(BLOCK_THRESHOLD_RANGE.start()), score(BLOCK_THRESHOLD_RANGE.end())));
        let names = |schema_name: &str, field: &str| schema(schema_name)[field]["enum"].clone();
        assert_eq!(names("ProjectInput", "puzzle"), json!(PuzzleKind::ALL));
        assert_eq!(names("ProjectInput", "obfuscation"), json!(Obfuscation::ALL));
        assert_eq!(names("Widget", "language"), json!(WIDGET_LANGUAGES));

        // ...and the ones the API keeps: each end of a range and each name taken, one step past
        // an end or a made-up name refused.
        let patch = async |body: Value| api.call("PATCH", &path, Some(body)).await;
        for (field, spec) in schema("ProjectInput") {
            let custom = |value: Value| json!({ "preset": "custom", field.as_str(): value });
            // `steps` from `value`: whole numbers for integers, tenths (a score's precision) else.
            let integer = spec["type"] == "integer";
            let at = |value: f64, steps: i64| if integer { json!(value as i64 + steps) } else { json!(value + steps as f64 / 10.0) };
            let mut taken = Vec::new();
            let mut refused = Vec::new();
            if let Some(min) = spec["minimum"].as_f64() {
                taken.push(custom(at(min, 0)));
                refused.push(custom(at(min, -1)));
            }
            if let Some(max) = spec["maximum"].as_f64() {
                taken.push(custom(at(max, 0)));
                refused.push(custom(at(max, 1)));
            }
            if let Some(max) = spec["maxLength"].as_u64() {
                taken.push(json!({ field.as_str(): "x".repeat(max as usize) }));
                refused.push(json!({ field.as_str(): "x".repeat(max as usize + 1) }));
            }
            if let Some(min) = spec["minLength"].as_u64() {
                refused.push(json!({ field.as_str(): "x".repeat(min as usize - 1) }));
            }
            if let Some(names) = spec["enum"].as_array() {
                taken.extend(names.iter().map(|name| custom(name.clone())));
                refused.push(custom(json!("made-up")));
            }
            for body in taken {
                let (status, answer) = patch(body.clone()).await;
                assert_eq!(status, 200, "{body}: {answer}");
            }
            for body in refused {
                let (status, answer) = patch(body.clone()).await;
                assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(field.as_str())), "{body}: {answer}");
            }
        }
        for (field, spec) in schema("Widget") {
            for name in spec["enum"].as_array().unwrap() {
                let mut body = widget.clone();
                body[&field] = name.clone();
                let (status, answer) = patch(json!({ "widget": body })).await;
                assert_eq!(status, 200, "{field} {name}: {answer}");
            }
            let mut body = widget.clone();
            body[&field] = json!("made-up");
            let (status, answer) = patch(json!({ "widget": body })).await;
            assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(format!("widget.{field}").as_str())), "{field}: {answer}");
        }
    }

    async fn project_changes_reach_the_edge(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "edge@example.com").await;
        let (api, _) = api_key(&world, &base, &owner, &["projects:read", "projects:write"]).await;
        let (_, created) = api.call("POST", "/api/v1/projects", Some(json!({
            "name": "Live", "testing_domains": ["localhost"], "preset": "custom", "difficulty": 1, "challenge_count": 2,
        }))).await;
        let id = created["project"]["id"].as_str().unwrap().to_owned();
        let site_key = created["project"]["site_key"].as_str().unwrap().to_owned();
        let secret = created["secret"].as_str().unwrap().to_owned();

        // Created: the edge serves it at once, and siteverify accepts its tokens.
        let token = world.verification_token(&site_key).await;
        let verified = world.siteverify(&[("secret", &secret), ("response", &token)]).await;
        assert_eq!(verified.json["success"], true, "{:?}", verified.json);

        // Paused.
        api.call("PATCH", &format!("/api/v1/projects/{id}"), Some(json!({ "active": false }))).await;
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.reason(), "project_paused");
        // Resumed, but localhost removed.
        api.call("PATCH", &format!("/api/v1/projects/{id}"), Some(json!({ "active": true, "testing_domains": [], "production_domains": ["example.com"] }))).await;
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.reason(), "origin_not_allowed");
        // Deleted.
        api.call("DELETE", &format!("/api/v1/projects/{id}"), None).await;
        assert_eq!(world.start_challenge(&site_key, &json!({})).await.reason(), "unknown_site_key");
        assert!(projects::pending_deletions(&world.db).await.unwrap().is_empty());
        assert!(projects::unpublished(&world.db).await.unwrap().is_empty());
    }

    async fn a_custom_preset_is_stored_checked_and_published_whole(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "custom@example.com").await;
        let (api, _) = api_key(&world, &base, &owner, &["projects:read", "projects:write"]).await;
        let (status, created) = api.call("POST", "/api/v1/projects", Some(json!({
            "name": "Own rules", "testing_domains": ["localhost"], "preset": "custom", "difficulty": 2,
            "challenge_count": 5, "obfuscation": "stronger", "rate_limit": 7, "block_threshold": 5.5,
            "puzzle": "rsw", "squarings": 120000,
        }))).await;
        assert_eq!(status, 201, "{created}");
        let id = created["project"]["id"].as_str().unwrap().to_owned();
        let site_key = created["project"]["site_key"].as_str().unwrap().to_owned();
        let own = Protection {
            difficulty: 2,
            challenge_count: 5,
            obfuscation: Obfuscation::Stronger,
            rate_limit: 7,
            block_threshold: Score::from_tenths(55),
            puzzle: PuzzleKind::Rsw,
            squarings: 120_000,
        };
        let published = || async { world.edge.snapshots().site(&site_key).await.unwrap().unwrap().preset };
        assert_eq!(published().await, Preset::Custom(own));
        // Read back from the database, as the API shows it.
        let (_, shown) = api.call("GET", &format!("/api/v1/projects/{id}"), None).await;
        assert_eq!(
            [&shown["obfuscation"], &shown["rate_limit"], &shown["block_threshold"], &shown["puzzle"], &shown["squarings"]],
            [&json!("stronger"), &json!(7), &json!(5.5), &json!("rsw"), &json!(120000)]
        );

        // A change to one number keeps the others.
        api.call("PATCH", &format!("/api/v1/projects/{id}"), Some(json!({ "block_threshold": 9 }))).await;
        assert_eq!(published().await, Preset::Custom(Protection { block_threshold: Score::from_tenths(90), ..own }));

        for (body, field) in [
            (json!({ "rate_limit": 0 }), "rate_limit"),
            (json!({ "rate_limit": 10_001 }), "rate_limit"),
            (json!({ "block_threshold": 0.5 }), "block_threshold"),
            (json!({ "block_threshold": 10.5 }), "block_threshold"),
            (json!({ "obfuscation": "maximum" }), "obfuscation"),
            (json!({ "puzzle": "argon2" }), "puzzle"),
            (json!({ "squarings": 9999 }), "squarings"),
            (json!({ "squarings": 5_000_001 }), "squarings"),
            (json!({ "squarings": "many" }), "squarings"),
            (json!({ "preset": "balanced", "puzzle": "rsw" }), "preset"),
            // A named preset has fixed numbers: giving it some is refused, not ignored.
            (json!({ "preset": "strict", "rate_limit": 5 }), "preset"),
        ] {
            let (status, answer) = api.call("PATCH", &format!("/api/v1/projects/{id}"), Some(body.clone())).await;
            assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(field)), "{body}: {answer}");
        }

        // Back to a named preset: its fixed bundle is what the edge gets.
        let (_, strict) = api.call("PATCH", &format!("/api/v1/projects/{id}"), Some(json!({ "preset": "strict" }))).await;
        assert_eq!((strict["rate_limit"].as_u64(), strict["block_threshold"].as_f64()), (Some(240), Some(4.0)), "{strict}");
        assert_eq!(published().await, Preset::Strict);

        // The dashboard form sets the same fields, and says what is wrong with a bad one.
        let path = format!("/orgs/{}/projects/{id}", owner.org);
        let mut form = PROJECT_FORM.to_vec();
        form.retain(|(name, _)| *name != "preset");
        form.extend([
            ("preset", "custom"), ("difficulty", "3"), ("challenge_count", "10"), ("obfuscation", "lighter"),
            ("rate_limit", "100"), ("block_threshold", "7.5"), ("puzzle", "rsw"), ("squarings", "250000"),
        ]);
        owner.browser.post(&path, &form).await.expect(303);
        let own = Protection {
            difficulty: 3,
            challenge_count: 10,
            obfuscation: Obfuscation::Lighter,
            rate_limit: 100,
            block_threshold: Score::from_tenths(75),
            puzzle: PuzzleKind::Rsw,
            squarings: 250_000,
        };
        assert_eq!(published().await, Preset::Custom(own));
        let page = owner.browser.get(&path).await.expect(200);
        assert!(page.body.contains(r#"name="block_threshold" type="number" min="1" max="10" step="0.1" value="7.5""#), "{}", page.body);
        assert!(page.body.contains(r#"<option value="rsw" selected>"#), "{}", page.body);
        assert!(page.body.contains(r#"name="squarings" type="number" min="10000" max="5000000" step="1000" value="250000""#), "{}", page.body);
        form.retain(|(name, _)| *name != "block_threshold");
        form.push(("block_threshold", "high"));
        let page = owner.browser.post(&path, &form).await.expect(400);
        assert!(page.body.contains("such as 6 or 6.5"), "{}", page.body);
        assert_eq!(published().await, Preset::Custom(own));
    }

    async fn a_rotated_secret_keeps_working_for_the_overlap_window(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "rotate@example.com").await;
        let (api, _) = api_key(&world, &base, &owner, &["projects:read", "projects:write"]).await;
        let (_, created) = api.call("POST", "/api/v1/projects", Some(json!({
            "name": "Rotating", "testing_domains": ["localhost"], "preset": "custom", "difficulty": 1, "challenge_count": 2,
        }))).await;
        let id = created["project"]["id"].as_str().unwrap().to_owned();
        let site_key = created["project"]["site_key"].as_str().unwrap().to_owned();
        let old = created["secret"].as_str().unwrap().to_owned();
        let (status, rotated) = api.call("POST", &format!("/api/v1/projects/{id}/rotate-secret"), None).await;
        assert_eq!(status, 200);
        let new = rotated["secret"].as_str().unwrap().to_owned();

        for secret in [&old, &new] {
            let token = world.verification_token(&site_key).await;
            assert_eq!(world.siteverify(&[("secret", secret), ("response", &token)]).await.json["success"], true);
        }
        world.clock.advance(SECRET_OVERLAP_MS + 1);
        let token = world.verification_token(&site_key).await;
        assert_eq!(world.siteverify(&[("secret", &old), ("response", &token)]).await.status, 401);
        assert_eq!(world.siteverify(&[("secret", &new), ("response", &token)]).await.json["success"], true);
    }

    async fn a_write_only_key_rotates_and_receives_the_new_secret(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "writer@example.com").await;
        let (writer, _) = api_key(&world, &base, &owner, &["projects:write"]).await;
        let (status, rotated) = writer.call("POST", &format!("/api/v1/projects/{}/rotate-secret", owner.project), None).await;
        assert_eq!(status, 200, "{rotated}");
        let secret = rotated["secret"].as_str().expect("the new secret is in the answer").to_owned();
        assert!(rotated["previous_secret_valid_until"].as_i64().unwrap() > world.clock.now_ms());
        // The secret it was given is the one that works.
        let project = projects::find(&world.db, &owner.project).await.unwrap().unwrap();
        world.publish().await;
        let token = world.verification_token(&project.site_key).await;
        assert_eq!(world.siteverify(&[("secret", &secret), ("response", &token)]).await.json["success"], true);
    }

    async fn two_owners_demoting_each_other_at_once_leave_one(world: World) {
        let base = world.serve().await;
        let first = tenant(&world, &base, "first@example.com").await;
        let (second, second_id) = member(&world, &base, &first.org, "second@example.com", Role::Owner).await;
        let members_url = format!("/orgs/{}/members", first.org);
        for round in 0..8 {
            // Each demotes the other in the same instant; the database must serialise them.
            let (a, b) = tokio::join!(
                first.browser.post(&members_url, &[("email", "second@example.com"), ("role", "viewer")]),
                second.post(&members_url, &[("email", "first@example.com"), ("role", "viewer")]),
            );
            let members = orgs::members(&world.db, &first.org).await.unwrap();
            let owners = members.iter().filter(|m| m.role == Role::Owner).count();
            assert_eq!(owners, 1, "round {round}: answers {} and {}", a.status, b.status);
            // One demotion goes through; the other is refused as the last owner's (409) or,
            // when its sender was demoted first, for lack of the owner role (403).
            let mut statuses = [a.status, b.status];
            statuses.sort_unstable();
            assert!(matches!(statuses, [303, 403 | 409] | [403 | 409, 303]), "round {round}: {statuses:?}");
            // Both owners again for the next round.
            for user in [&first.user_id, &second_id] {
                orgs::put_member(&world.db, &first.org, user, Role::Owner, world.clock.now_ms()).await.unwrap();
            }
        }
        // Removal races the same way.
        let (remove_second, remove_first) =
            (format!("{members_url}/{second_id}/remove"), format!("{members_url}/{}/remove", first.user_id));
        let confirmed = [("confirmed", "yes")];
        let (a, b) = tokio::join!(first.browser.post(&remove_second, &confirmed), second.post(&remove_first, &confirmed));
        let owners = orgs::members(&world.db, &first.org).await.unwrap().iter().filter(|m| m.role == Role::Owner).count();
        assert_eq!(owners, 1, "answers {} and {}", a.status, b.status);
    }

    async fn revoking_tokens_refuses_every_token_issued_before(world: World) {
        let base = world.serve().await;
        let owner = tenant(&world, &base, "revoker@example.com").await;
        let (api, _) = api_key(&world, &base, &owner, &["projects:read", "projects:write"]).await;
        let (_, created) = api.call("POST", "/api/v1/projects", Some(json!({
            "name": "Leaky", "testing_domains": ["localhost"], "preset": "custom", "difficulty": 1, "challenge_count": 2,
        }))).await;
        let id = created["project"]["id"].as_str().unwrap().to_owned();
        let site_key = created["project"]["site_key"].as_str().unwrap().to_owned();
        let secret = created["secret"].as_str().unwrap().to_owned();
        world.publish().await;

        // A verification token not yet verified, and a challenge not yet redeemed.
        let verification = world.verification_token(&site_key).await;
        let started = world.start_challenge(&site_key, &json!({})).await;
        let challenge = started.json["token"].as_str().unwrap().to_owned();
        let params = serde_json::from_value(started.json["challenge"].clone()).unwrap();
        let solutions = humanproof_protocol::pow::solve(&challenge, params);

        let (status, revoked) = api.call("POST", &format!("/api/v1/projects/{id}/revoke-tokens"), None).await;
        assert_eq!((status, revoked["key_version"].as_u64()), (200, Some(2)), "{revoked}");
        // Siteverify reads the key version from the database: refused at once.
        let verified = world.siteverify(&[("secret", &secret), ("response", &verification)]).await;
        assert_eq!((verified.json["success"].as_bool(), verified.json["humanproof"]["reason"].as_str()), (Some(false), Some("invalid_token")));
        // The edge, once published.
        world.publish().await;
        let redeemed = world.redeem(&site_key, &challenge, &solutions).await;
        assert_eq!((redeemed.status, redeemed.reason()), (400, "invalid_token"));
        // New tokens work under the new key.
        let fresh = world.verification_token(&site_key).await;
        assert_eq!(world.siteverify(&[("secret", &secret), ("response", &fresh)]).await.json["success"], true);

        // The dashboard button does the same, and the audit log names who did it.
        let revoke = format!("/orgs/{}/projects/{id}/revoke-tokens", owner.org);
        let done = owner.browser.post(&revoke, &[("confirmed", "yes")]).await.expect(303);
        let page = owner.browser.get(&done.location.unwrap()).await.expect(200);
        assert!(page.body.contains("Every token issued until now is revoked"), "{}", page.body);
        assert_eq!(projects::find(&world.db, &id).await.unwrap().unwrap().key_version, 3);
        let audit = orgs::audit_log(&world.db, &owner.org, 50).await.unwrap();
        assert_eq!(audit.iter().filter(|entry| entry.action == "project.tokens_revoked").count(), 2);
        // Write permission is needed.
        let (reader, _) = api_key(&world, &base, &owner, &["projects:read"]).await;
        let (status, _) = reader.call("POST", &format!("/api/v1/projects/{id}/revoke-tokens"), None).await;
        assert_eq!(status, 403);
    }
}

/// An API key and a client using it.
struct ApiClient {
    base: String,
    key: String,
}

impl ApiClient {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_raw(
            method,
            path,
            &body.map(|b| b.to_string()).unwrap_or_default(),
        )
        .await
    }

    async fn call_raw(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let http = humanproof_control_plane::http::client();
        let mut request = http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if !self.key.is_empty() {
            request = request.bearer_auth(&self.key);
        }
        if !body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Creates a key through the dashboard, reading it off the page as its owner would.
async fn api_key(
    world: &World,
    base: &str,
    owner: &Tenant,
    scopes: &[&str],
) -> (ApiClient, String) {
    let mut fields = vec![("name", "automation")];
    fields.extend(scopes.iter().map(|scope| ("scope", *scope)));
    let page = owner
        .browser
        .post(&format!("/orgs/{}/api-keys", owner.org), &fields)
        .await
        .expect(303);
    let page = owner.browser.get(&page.location.unwrap()).await.expect(200);
    let key = api_key_on_page(&page.body);
    let stored = orgs::list_api_keys(&world.db, &owner.org).await.unwrap();
    let id = stored
        .iter()
        .find(|k| key.starts_with(&k.prefix))
        .unwrap()
        .id
        .clone();
    (
        ApiClient {
            base: base.to_owned(),
            key,
        },
        id,
    )
}
