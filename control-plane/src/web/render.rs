//! Rendering: pages from templates with the frame every page shares, and dashboard errors
//! as pages in the visitor's language.

use axum::http::StatusCode;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{Value, context};

use super::security::CsrfToken;
use crate::accounts::AccountError;
use crate::db::accounts::User;
use crate::error::ApiError;
use crate::i18n;
use crate::roles::Permission;
use crate::service::{Actor, Principal};
use crate::state::AppState;

/// A page to render: the template, its context, and the status.
pub struct Page {
    status: StatusCode,
    html: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Html(self.html),
        )
            .into_response()
    }
}

/// What every template sees: the user, the organisation, the CSRF token and the language.
pub struct Frame<'a> {
    /// The CSRF token for the page's forms.
    pub csrf: &'a CsrfToken,
    /// The signed-in user, if any.
    pub user: Option<&'a User>,
    /// The organisation actor, on organisation pages.
    pub actor: Option<&'a Actor>,
    /// Which organisation tab is current.
    pub section: &'a str,
}

/// Renders `template` with the frame and `page` context.
pub fn render(
    state: &AppState,
    status: StatusCode,
    template: &str,
    frame: &Frame<'_>,
    page: Value,
) -> Page {
    let org = frame.actor.map(|actor| {
        let role = match &actor.principal {
            Principal::Member { role, .. } => role.as_str(),
            Principal::ApiKey(_) => "api key",
        };
        // The organisation's tabs this actor may open: a role sees only what it can use.
        let may = |permission| can(actor, permission);
        let tabs = context! {
            clients => may(Permission::ProjectsRead), members => may(Permission::MembersRead),
            keys => may(Permission::ApiKeysWrite), audit => may(Permission::AuditRead),
            billing => may(Permission::BillingRead),
        };
        // The organisations to switch to, for a member of more than one.
        let organisations: Vec<Value> = match &actor.principal {
            Principal::Member { organisations, .. } => organisations
                .iter()
                .map(|(id, name)| context! { id => id, name => name })
                .collect(),
            Principal::ApiKey(_) => Vec::new(),
        };
        context! { id => actor.organisation_id, name => actor.organisation_name, role => role, tabs => tabs, organisations => organisations }
    });
    let user = frame
        .user
        .map(|user| context! { email => user.email, email_verified => user.email_verified });
    // The frame's user first: it carries a preference saved by this very request.
    let lang = frame
        .user
        .and_then(|user| i18n::supported(&user.language))
        .unwrap_or_else(i18n::request_language);
    // What the form before the redirect said, unless the page says otherwise.
    let page = minijinja::value::merge_maps([super::flash::current().context(), page]);
    let ctx = context! { csrf => frame.csrf.0, user => user, org => org, section => frame.section, lang => lang, ..page };
    let html = state
        .templates
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, template, "template failed");
            format!(
                "<!doctype html><title>Error</title><p>{}</p>",
                minijinja::HtmlEscape(i18n::translate(lang, "Something went wrong."))
            )
        });
    Page { status, html }
}

/// The frame of an organisation page: the member (none for an API key) and the tab.
pub(super) fn org_frame<'a>(csrf: &'a CsrfToken, actor: &'a Actor, section: &'a str) -> Frame<'a> {
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

/// The frame of a page shown before sign-in.
pub(super) fn anonymous(csrf: &CsrfToken) -> Frame<'_> {
    outside_organisations(csrf, None)
}

/// The frame of a page of no organisation (docs, contact, an invitation…), with whoever is
/// signed in.
pub(super) fn outside_organisations<'a>(csrf: &'a CsrfToken, user: Option<&'a User>) -> Frame<'a> {
    Frame {
        csrf,
        user,
        actor: None,
        section: "",
    }
}

/// A page that only says something: a heading, a text and an optional link onwards.
pub(super) fn message(
    state: &AppState,
    csrf: &CsrfToken,
    status: StatusCode,
    heading: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Page {
    let link = link.map(|(href, label)| context! { href => href, label => label });
    render(
        state,
        status,
        "message.html",
        &anonymous(csrf),
        context! { heading => heading, text => text, link => link },
    )
}

/// The page a destructive form leads to first: what it will do to what, asked once more, with
/// a form that posts the same action again with `confirmed=yes`. It works without
/// JavaScript, and a reload of it changes nothing.
pub(super) struct Confirm<'a> {
    /// The question, as the heading (English; translated).
    pub question: &'a str,
    /// What follows from saying yes (English; translated).
    pub consequence: &'a str,
    /// What it acts on, by its name.
    pub subject: &'a str,
    /// The button that does it (English; translated).
    pub button: &'a str,
    /// Where the form posts again (the action's own path).
    pub action: String,
    /// Where "Cancel" goes.
    pub cancel: String,
}

impl Confirm<'_> {
    /// The confirmation page.
    pub(super) fn page(
        &self,
        state: &AppState,
        csrf: &CsrfToken,
        actor: &Actor,
        section: &str,
    ) -> Page {
        render(
            state,
            StatusCode::OK,
            "confirm.html",
            &org_frame(csrf, actor, section),
            context! {
                question => self.question, consequence => self.consequence, subject => self.subject,
                button => self.button, action => self.action, cancel => self.cancel,
            },
        )
    }
}

/// A destructive form's answer to its confirmation page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Confirmation {
    #[serde(default)]
    confirmed: String,
}

impl Confirmation {
    /// Whether the member said yes on the confirmation page.
    pub fn given(&self) -> bool {
        self.confirmed == "yes"
    }
}

/// Whether the actor may do this: pages hide what the role does not allow.
pub(super) fn can(actor: &Actor, permission: Permission) -> bool {
    actor.require(permission).is_ok()
}

/// A Unix-ms time as the dashboard shows it: `YYYY-MM-DD HH:MM`, UTC.
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

/// Dashboard errors: a page for the user, a redirect to sign in, or an [`ApiError`].
pub enum PageError {
    /// Not signed in.
    SignIn,
    /// Anything the rules refused.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> Self {
        Self::Api(err)
    }
}

impl From<crate::accounts::AccountError> for PageError {
    fn from(err: crate::accounts::AccountError) -> Self {
        match err {
            crate::accounts::AccountError::Database(db) => Self::Api(db.into()),
            other => Self::Api(ApiError::Invalid {
                field: "form",
                message: other.to_string(),
            }),
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(err: sqlx::Error) -> Self {
        Self::Api(err.into())
    }
}

/// What a refusal says to a person, in the request's language (a database failure is not
/// described, only logged by the caller).
pub(super) fn error_text(err: &ApiError) -> String {
    let lang = i18n::request_language();
    match err {
        ApiError::NotFound => i18n::translate(
            lang,
            "There is nothing here, or it belongs to another organisation.",
        )
        .to_owned(),
        ApiError::Forbidden(code) => i18n::fill(
            i18n::translate(lang, "Your role does not allow this ({code})."),
            &[("code", code)],
        ),
        ApiError::Conflict("last_owner") => {
            i18n::translate(lang, "An organisation keeps at least one owner.").to_owned()
        }
        ApiError::Conflict("already_subscribed") => {
            i18n::translate(lang, "Your organisation already has a subscription.").to_owned()
        }
        ApiError::Conflict("no_change") => {
            i18n::translate(lang, "That is already your plan.").to_owned()
        }
        ApiError::Conflict("no_pending_change") => {
            i18n::translate(lang, "There is no scheduled change to cancel.").to_owned()
        }
        ApiError::Conflict("not_subscribed") => i18n::translate(
            lang,
            "Your organisation has no subscription to change. Choose a plan to buy one.",
        )
        .to_owned(),
        ApiError::Conflict("billing_not_configured") => i18n::translate(
            lang,
            "Paid plans are not sold here yet: ask the operator of this HumanProof service.",
        )
        .to_owned(),
        ApiError::Conflict("vat_check_limit") => i18n::translate(
            lang,
            "Your organisation checked VAT ids too often today. Try again tomorrow.",
        )
        .to_owned(),
        ApiError::Database(_) => {
            i18n::translate(lang, "Something went wrong on our side. Try again.").to_owned()
        }
        other => i18n::translate(lang, &other.to_string()).to_owned(),
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/sign-in").into_response(),
            Self::Api(err) => {
                let status = err.status_code();
                let lang = i18n::request_language();
                let text = error_text(&err);
                if let ApiError::Database(db) = &err {
                    tracing::error!(error = %db, "database error");
                }
                let html = format!(
                    "<!doctype html><html lang=\"{lang}\"><meta charset=\"utf-8\"><title>{status}</title><link rel=\"stylesheet\" href=\"/static/dashboard.css\"><main><h1>{status}</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">{}</a></p></main>",
                    minijinja::HtmlEscape(&text),
                    minijinja::HtmlEscape(i18n::translate(lang, "Back to the dashboard")),
                );
                let mut response = (status, Html(html)).into_response();
                response.extensions_mut().insert(Refused(text));
                response
            }
        }
    }
}

/// A refusal answered as a bare page, which [`super::security::protect`] shows in the
/// dashboard's frame (header, navigation, a way back) for the person who was refused.
#[derive(Debug, Clone)]
pub(super) struct Refused(pub String);

/// The refusal `text` in the dashboard's frame for whoever is signed in with `session`
/// (with their organisation's navigation under `/orgs/{org}/…`), and a link back to the
/// page the refused form was on.
pub(super) async fn framed_refusal(
    state: &AppState,
    csrf: &CsrfToken,
    status: StatusCode,
    path: &str,
    session: Option<&str>,
    text: &str,
) -> Page {
    let user = match session {
        Some(token) => crate::accounts::session_user(state, token)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (actor, back) = match (&user, segments.as_slice()) {
        (Some(user), ["orgs", org, section, ..]) => (
            Actor::member(state, user.clone(), org).await.ok().flatten(),
            format!("/orgs/{org}/{section}"),
        ),
        (Some(_), ["account", ..]) => (None, "/account".to_owned()),
        _ => (None, "/".to_owned()),
    };
    let frame = match &actor {
        Some(actor) => org_frame(csrf, actor, ""),
        None => outside_organisations(csrf, user.as_ref()),
    };
    render(
        state,
        status,
        "refused.html",
        &frame,
        context! { error => text, back => back },
    )
}

/// The status of a page that reports an account refusal.
pub(super) fn account_error_status(err: &AccountError) -> StatusCode {
    match err {
        AccountError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AccountError::WrongCredentials
        | AccountError::AccountClosed
        | AccountError::WrongCode
        | AccountError::WrongSetupCode => StatusCode::UNAUTHORIZED,
        AccountError::AlreadyEnabled | AccountError::SubscriptionRunning => StatusCode::CONFLICT,
        AccountError::DeletionPending { .. } => StatusCode::FORBIDDEN,
        AccountError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// What an account refusal says; a database failure is logged, not shown.
pub(super) fn account_error_text(err: &AccountError) -> String {
    if let AccountError::Database(db) = err {
        tracing::error!(error = %db, "database error");
        return "Something went wrong on our side. Try again.".into();
    }
    err.to_string()
}

/// A refusal page, with `Retry-After` when the refusal was a throttle.
pub(super) fn with_retry_after(page: Page, err: &AccountError) -> Response {
    let mut response = page.into_response();
    if let AccountError::Throttled { retry_after_s } = err {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, (*retry_after_s).into());
    }
    response
}

/// A JSON file to save: `file` is the name the browser suggests.
pub(super) fn json_download(file: &str, value: &serde_json::Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        serde_json::to_string_pretty(value).unwrap_or_default(),
    )
        .into_response()
}
