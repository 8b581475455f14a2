//! The public contact form, protected by HumanProof's own widget: this service is a customer
//! of itself, verifying the widget's token with its project's secret as any customer's
//! backend does, in process instead of over HTTP.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::extract::{Form, SignedIn};
use super::render::{PageError, format_time, message, outside_organisations, render};
use super::security::{CspAlso, CsrfToken};
use crate::contact::{self, ContactForm, Topic};
use crate::db::support;
use crate::i18n;
use crate::service::siteverify;
use crate::state::AppState;

/// `?topic=` preselects a topic (the DPA page links to `?topic=dpa`).
#[derive(Debug, Default, Deserialize)]
pub struct ContactQuery {
    topic: Option<String>,
}

/// What the form sends. Every field may be missing: a hostile script gets the form back with
/// what is wrong, never a bare refusal.
#[derive(Debug, Default, Deserialize)]
pub struct ContactSubmission {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
    #[serde(rename = "humanproof-token", default)]
    token: String,
}

/// `GET /contact`: the form, and a signed-in sender's earlier messages.
pub async fn contact_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    signed_in: Option<SignedIn>,
    Query(query): Query<ContactQuery>,
) -> Result<Response, PageError> {
    let user = signed_in.map(|signed_in| signed_in.user);
    let values = ContactSubmission {
        topic: query.topic.unwrap_or_default(),
        email: user
            .as_ref()
            .map(|user| user.email.clone())
            .unwrap_or_default(),
        ..ContactSubmission::default()
    };
    contact_form(&state, &csrf, user.as_ref(), StatusCode::OK, &values, None).await
}

/// `POST /contact`: checks the input and the widget's token, stores the message, forwards
/// it to its topic's inbox, and redirects to a page with the sender's reference.
pub async fn send_message(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    signed_in: Option<SignedIn>,
    Form(submission): Form<ContactSubmission>,
) -> Result<Response, PageError> {
    let user = signed_in.map(|signed_in| signed_in.user);
    let Some(form) = &state.web.contact else {
        return contact_form(
            &state,
            &csrf,
            user.as_ref(),
            StatusCode::NOT_FOUND,
            &submission,
            None,
        )
        .await;
    };
    let checked = match contact::check(
        form,
        &submission.topic,
        &submission.email,
        &submission.name,
        &submission.message,
    ) {
        Ok(message) => verified(&state, form, &submission.token)
            .await
            .map(|()| message),
        Err(refusal) => Err((refusal.code(), refusal.to_string())),
    };
    let message = match checked {
        Ok(message) => message,
        Err(refusal) => {
            let (status, error) = (StatusCode::BAD_REQUEST, Some(refusal));
            return contact_form(&state, &csrf, user.as_ref(), status, &submission, error).await;
        }
    };
    let lang = user
        .as_ref()
        .and_then(|user| i18n::supported(&user.language))
        .unwrap_or_else(i18n::request_language);
    let stored = contact::receive(
        &state.db,
        &state.mailer,
        form,
        message,
        user.as_ref().map(|user| user.id.as_str()),
        lang,
        state.clock.now_ms(),
    )
    .await?;
    Ok(Redirect::to(&format!("/contact/sent?reference={}", stored.id)).into_response())
}

/// Whether the widget's token verifies for the contact form's project, as siteverify says.
async fn verified(
    state: &AppState,
    form: &ContactForm,
    token: &str,
) -> Result<(), (&'static str, String)> {
    let (_, answer) = siteverify::verify(state, &form.secret, token, None).await;
    if answer.success {
        return Ok(());
    }
    tracing::info!(errors = ?answer.error_codes, "a contact message's token did not verify");
    Err((
        "verification_failed",
        "Complete the verification (tick the box and wait for the check mark), then send again."
            .to_owned(),
    ))
}

/// The form page: the offered topics, the widget, what was typed, the refusal if any, and a
/// signed-in sender's earlier messages.
async fn contact_form(
    state: &AppState,
    csrf: &CsrfToken,
    user: Option<&crate::db::accounts::User>,
    status: StatusCode,
    values: &ContactSubmission,
    error: Option<(&str, String)>,
) -> Result<Response, PageError> {
    let form = state.web.contact.as_ref();
    let topics: Vec<_> = Topic::ALL
        .into_iter()
        .filter(|topic| form.is_some_and(|form| form.inbox(*topic).is_some()))
        .map(|topic| context! { name => topic.as_str(), label => topic.label() })
        .collect();
    let sent = match user {
        Some(user) => support::sent_by(&state.db, &user.id).await?,
        None => Vec::new(),
    };
    let sent: Vec<_> = sent
        .iter()
        .map(|message| {
            let topic = Topic::parse(&message.topic).map_or("Support", Topic::label);
            context! { reference => message.id, topic => topic, at => format_time(message.received_at), body => message.body }
        })
        .collect();
    let (error_code, error) = error.unzip();
    let page = render(
        state,
        status,
        "contact.html",
        &outside_organisations(csrf, user),
        context! {
            configured => form.is_some(), site_key => form.map(|form| form.site_key.clone()),
            edge_url => state.web.edge_url, topics => topics,
            topic => values.topic, email => values.email, name => values.name, message => values.message,
            sent => sent, error => error, error_code => error_code,
        },
    );
    let mut response = page.into_response();
    if form.is_some() {
        response
            .extensions_mut()
            .insert(CspAlso::Widget(state.web.edge_url.clone()));
    }
    Ok(response)
}

/// The sent page's reference.
#[derive(Debug, Deserialize)]
pub struct SentQuery {
    #[serde(default)]
    reference: String,
}

/// `GET /contact/sent`: the message arrived; the sender's reference.
pub async fn message_sent(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(query): Query<SentQuery>,
) -> Response {
    // Only a reference this service could have made is repeated on the page.
    let reference = Some(query.reference).filter(|reference| {
        reference.len() == 32 && reference.bytes().all(|byte| byte.is_ascii_hexdigit())
    });
    let text = match &reference {
        Some(reference) => i18n::fill(
            i18n::translate(
                i18n::request_language(),
                "We received your message and sent a confirmation to your address. Your reference is {reference}.",
            ),
            &[("reference", reference.as_str())],
        ),
        None => i18n::translate(
            i18n::request_language(),
            "We received your message and sent a confirmation to your address.",
        )
        .to_owned(),
    };
    message(
        &state,
        &csrf,
        StatusCode::OK,
        "Message sent",
        &text,
        Some(("/contact", "Back to the contact page")),
    )
    .into_response()
}
