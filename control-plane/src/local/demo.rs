//! The demo customer site: a form protected by HumanProof whose backend calls siteverify,
//! exactly as a customer's site would. It runs on its own origin so the page's calls to the
//! edge are real cross-origin requests.

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde::Deserialize;

/// The customer's configuration, as their backend would hold it.
#[derive(Debug, Clone)]
pub struct DemoSite {
    /// Public site key, embedded in the page.
    pub site_key: String,
    /// Backend secret, used only server-side.
    pub secret: String,
    /// Where the page finds the edge.
    pub edge_url: String,
    /// The control plane's siteverify endpoint.
    pub siteverify_url: String,
    /// HTTP client for siteverify.
    pub http: reqwest::Client,
}

/// `/` (the form) and `/submit` (the protected backend).
pub fn router(site: DemoSite) -> Router {
    Router::new()
        .route("/", get(show_form))
        .route("/submit", axum::routing::post(submit_form))
        .with_state(site)
}

/// The strict policy the README documents for embedding the widget: scripts from the page
/// and the widget's origin only, WebAssembly compilation, workers from blob: URLs, and
/// requests to the edge. No inline script, no eval.
fn content_security_policy(site: &DemoSite) -> String {
    let edge = &site.edge_url;
    format!(
        "default-src 'self'; script-src 'self' {edge} 'wasm-unsafe-eval'; worker-src blob:; \
         connect-src {edge}; style-src 'self' 'unsafe-inline'"
    )
}

async fn show_form(State(site): State<DemoSite>) -> impl IntoResponse {
    let page = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>HumanProof demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
label{{display:block;margin:.75rem 0 .25rem}}input,textarea{{width:100%;padding:.5rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.6rem 1.2rem}}</style>
</head>
<body>
<h1>Contact us</h1>
<p>This form is protected by HumanProof. Tick the box: your browser solves a small
proof of work, and the site's backend checks the token with <code>/siteverify</code>.</p>
<form method="post" action="/submit">
<label for="email">Email</label><input id="email" name="email" type="email" required>
<label for="message">Message</label><textarea id="message" name="message" rows="4" required></textarea>
<p><humanproof-widget data-sitekey="{site_key}" data-edge="{edge}" required></humanproof-widget></p>
<button type="submit">Send</button>
</form>
<script src="{edge}/widget.js" async defer></script>
</body>
</html>"#,
        site_key = escape_html(&site.site_key),
        edge = escape_html(&site.edge_url),
    );
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(&site),
        )],
        Html(page),
    )
}

#[derive(Debug, Deserialize)]
struct Submission {
    email: Option<String>,
    #[serde(rename = "humanproof-token")]
    token: Option<String>,
}

async fn submit_form(
    State(site): State<DemoSite>,
    Form(submission): Form<Submission>,
) -> impl IntoResponse {
    let verdict = site
        .http
        .post(&site.siteverify_url)
        .form(&[
            ("secret", site.secret.as_str()),
            ("response", submission.token.as_deref().unwrap_or("")),
        ])
        .send()
        .await;
    let (accepted, details) = match verdict {
        Ok(response) => match response.json::<serde_json::Value>().await {
            Ok(json) => (
                json["success"] == true,
                serde_json::to_string_pretty(&json).unwrap_or_default(),
            ),
            Err(err) => (false, format!("unreadable siteverify answer: {err}")),
        },
        Err(err) => (false, format!("siteverify unreachable: {err}")),
    };
    let headline = if accepted {
        format!(
            "Thanks, {}! Your message was accepted.",
            escape_html(submission.email.as_deref().unwrap_or(""))
        )
    } else {
        "Rejected: the HumanProof token did not verify.".to_owned()
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>HumanProof demo</title></head>\
         <body><h1 id=\"result\" data-accepted=\"{accepted}\">{headline}</h1>\
         <p>What the backend's siteverify call returned:</p><pre id=\"siteverify\">{}</pre>\
         <p><a href=\"/\">Back to the form</a></p></body></html>",
        escape_html(&details),
    );
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(&site),
        )],
        Html(page),
    )
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
