//! The control plane's whole route table, grouped by audience. Handlers live in
//! [`crate::routes`] (JSON) and [`crate::web`] (the dashboard); they depend on
//! [`crate::state`], and nothing below this file knows the routes.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::routes::{api, health, metrics, siteverify, stripe_webhook, telemetry};
use crate::state::AppState;
use crate::web::{
    account, api_keys, api_reference, assets, audit, auth, billing, clients, contact, dev, docs,
    members, passkeys, projects, public, security, usage,
};

/// Largest body any control-plane endpoint reads.
pub const MAX_BODY: usize = 1024 * 1024;

/// The control plane's HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        // Operators and load balancers.
        .route("/livez", get(health::check_liveness))
        .route("/readyz", get(health::check_readiness))
        // Site backends.
        .route("/siteverify", post(siteverify::verify_token))
        // Stripe's webhooks.
        .route("/billing/stripe/webhook", post(stripe_webhook::receive))
        // The edge's telemetry consumer.
        .route("/internal/telemetry", post(telemetry::ingest_batch))
        // Customers' automation.
        .route("/api/v1/openapi.json", get(api::openapi))
        .route(
            "/api/v1/projects",
            get(api::list_projects).post(api::create_project),
        )
        .route(
            "/api/v1/projects/{id}",
            get(api::get_project)
                .patch(api::update_project)
                .delete(api::delete_project),
        )
        .route(
            "/api/v1/projects/{id}/rotate-secret",
            post(api::rotate_secret),
        )
        .route(
            "/api/v1/projects/{id}/revoke-tokens",
            post(api::revoke_tokens),
        )
        .route("/api/v1/projects/{id}/usage", get(api::project_usage))
        .route("/api/v1/projects/{id}/stats", get(api::project_stats))
        .route("/api/v1/billing", get(api::billing))
        // Customers, in a browser.
        .merge(dashboard(&state))
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The operator's own listener: `/metrics`, and nothing else.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::export))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// The dashboard's pages and forms, every one behind [`security::protect`].
fn dashboard(state: &AppState) -> Router<AppState> {
    Router::new()
        // Signing up and in.
        .route("/", get(auth::home))
        .route("/sign-up", get(auth::sign_up_page).post(auth::sign_up))
        .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route("/account/restore", post(auth::restore_account))
        // Public pages: anyone may read them, and write to us.
        .route("/privacy", get(public::privacy_page))
        .route("/how-it-works", get(public::how_it_works_page))
        .route("/docs", get(docs::docs_page))
        .route("/dpa", get(public::dpa_page))
        .route("/api-reference", get(api_reference::api_reference_page))
        .route(
            "/contact",
            get(contact::contact_page).post(contact::send_message),
        )
        .route("/contact/sent", get(contact::message_sent))
        .route(
            "/sign-in/second-factor",
            get(auth::second_factor_page).post(auth::second_factor),
        )
        .route("/sign-in/passkey/start", post(passkeys::start_sign_in))
        .route("/sign-in/passkey/finish", post(passkeys::finish_sign_in))
        .route(
            "/sign-in/second-factor/passkey/start",
            post(passkeys::start_second_factor),
        )
        .route(
            "/sign-in/second-factor/passkey/finish",
            post(passkeys::finish_second_factor),
        )
        .route("/sign-out", post(auth::sign_out))
        .route("/verify-email", get(auth::verify_email))
        .route("/verify-email/resend", post(auth::resend_verification))
        .route(
            "/forgot-password",
            get(auth::forgot_password_page).post(auth::forgot_password),
        )
        .route(
            "/reset-password",
            get(auth::reset_password_page).post(auth::reset_password),
        )
        // The signed-in user's account.
        .route("/account", get(account::account))
        .route("/account/language", post(account::set_language))
        .route("/account/password", post(account::change_password))
        .route("/account/email", post(account::change_email))
        .route("/account/email/confirm", get(account::confirm_email_change))
        .route("/account/sessions/{handle}/end", post(account::end_session))
        .route("/account/two-factor/setup", post(account::begin_totp))
        .route("/account/two-factor/confirm", post(account::confirm_totp))
        .route("/account/two-factor/cancel", post(account::cancel_totp))
        .route("/account/two-factor/disable", post(account::disable_totp))
        .route("/account/confirm-identity", post(account::confirm_identity))
        .route("/account/delete", post(account::delete_account))
        .route("/account/export", get(account::export_account))
        .route("/orgs/{org}/export", get(members::export_organisation))
        .route("/orgs/{org}/rename", post(members::rename_organisation))
        .route("/orgs/{org}/leave", post(members::leave_organisation))
        .route(
            "/account/passkeys/register/start",
            post(passkeys::start_registration),
        )
        .route(
            "/account/passkeys/register/finish",
            post(passkeys::finish_registration),
        )
        .route("/account/passkeys/{id}/delete", post(passkeys::delete))
        .route("/account/passkeys/{id}/confirm", post(passkeys::confirm))
        // An organisation's projects.
        .route("/orgs/{org}/projects", get(projects::projects))
        .route(
            "/orgs/{org}/billing/cap-notice/dismiss",
            post(projects::dismiss_cap_notice),
        )
        .route(
            "/orgs/{org}/projects/new",
            get(projects::new_project_page).post(projects::create_project),
        )
        .route(
            "/orgs/{org}/projects/{project}",
            get(projects::project_page).post(projects::update_project),
        )
        .route(
            "/orgs/{org}/projects/{project}/delete",
            post(projects::delete_project),
        )
        .route(
            "/orgs/{org}/projects/{project}/rotate-secret",
            post(projects::rotate_secret),
        )
        .route(
            "/orgs/{org}/projects/{project}/revoke-tokens",
            post(projects::revoke_tokens),
        )
        .route(
            "/orgs/{org}/projects/{project}/integration",
            get(projects::integration),
        )
        .route("/orgs/{org}/projects/{project}/usage", get(usage::usage))
        .route(
            "/orgs/{org}/projects/{project}/stats.csv",
            get(usage::stats_csv),
        )
        .route("/orgs/{org}/projects/{project}/risk", get(usage::risk))
        .route(
            "/orgs/{org}/projects/{project}/risk-mode",
            post(usage::set_risk_mode),
        )
        // Its members, clients, API keys and audit log.
        .route(
            "/orgs/{org}/members",
            get(members::members).post(members::put_member),
        )
        .route(
            "/orgs/{org}/members/{user}/remove",
            post(members::remove_member),
        )
        .route(
            "/orgs/{org}/invitations/revoke",
            post(members::revoke_invitation),
        )
        .route("/orgs/new", get(members::new_organisation_page))
        .route("/orgs", post(members::create_organisation))
        .route(
            "/invitations/accept",
            get(members::invitation_page).post(members::accept_invitation),
        )
        .route(
            "/orgs/{org}/clients",
            get(clients::clients).post(clients::create_client),
        )
        .route(
            "/orgs/{org}/clients/{client}/delete",
            post(clients::delete_client),
        )
        .route(
            "/orgs/{org}/api-keys",
            get(api_keys::api_keys).post(api_keys::create_api_key),
        )
        .route(
            "/orgs/{org}/api-keys/{key}/{action}",
            post(api_keys::api_key_action),
        )
        .route("/orgs/{org}/audit", get(audit::audit))
        .route("/orgs/{org}/billing", get(billing::billing_page))
        .route("/orgs/{org}/billing/checkout", post(billing::checkout))
        .route("/orgs/{org}/billing/portal", post(billing::portal))
        .route("/orgs/{org}/billing/change", post(billing::change))
        .route(
            "/orgs/{org}/billing/pending/cancel",
            post(billing::cancel_pending),
        )
        .route("/orgs/{org}/billing/vat", post(billing::set_vat_id))
        // Local mode only.
        .route("/dev/outbox", get(dev::outbox))
        .route(
            "/orgs/{org}/projects/{project}/sample-traffic",
            post(dev::sample_traffic),
        )
        // Static files.
        .route("/static/favicon.svg", get(assets::favicon))
        .route("/static/dashboard.css", get(assets::stylesheet))
        .route("/static/dashboard.js", get(assets::dashboard_script))
        .route("/static/passkeys.js", get(assets::passkeys_script))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::protect,
        ))
}
