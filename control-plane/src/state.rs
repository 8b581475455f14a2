//! What every handler and service reaches: the database, the master secret, the clock, the
//! publisher, the mailer, Stripe and VIES, the dashboard's settings and its parsed templates,
//! and the metrics.
//!
//! [`AppState`] is one `Arc`, so axum clones it per request for the price of a reference
//! count. It knows nothing of routes or handlers: those depend on it, never the reverse.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRef;
use humanproof_protocol::MasterSecret;
use tokio::sync::Notify;

use crate::client_ip::TrustedProxies;
use crate::clock::Clock;
use crate::contact::ContactForm;
use crate::db::Db;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::plans::Catalogue;
use crate::publish::Publisher;
use crate::stripe::Stripe;
use crate::vies::Vies;

/// Where the dashboard lives and what it links to.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The control plane's public URL (links in emails, siteverify in code samples).
    pub public_url: String,
    /// The edge's public URL (the widget script in snippets).
    pub edge_url: String,
    /// Cookies get `Secure` (set when the public URL is https).
    pub secure_cookies: bool,
    /// Serve `/dev/outbox` (local mode only).
    pub show_outbox: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: TrustedProxies,
    /// The operator's sub-processors, as the privacy page lists them.
    pub subprocessors: Vec<String>,
    /// The public contact form, when the operator set it up.
    pub contact: Option<ContactForm>,
}

impl WebConfig {
    /// Settings for a public URL; `Secure` cookies follow from https.
    pub fn new(public_url: &str, edge_url: &str, show_outbox: bool) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Self {
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            edge_url: edge_url.trim_end_matches('/').to_owned(),
            show_outbox,
            trusted_proxies: TrustedProxies::none(),
            subprocessors: Vec::new(),
            contact: None,
        }
    }

    /// The same, with the public contact form.
    pub fn with_contact_form(self, contact: Option<ContactForm>) -> Self {
        Self { contact, ..self }
    }

    /// The same, naming these sub-processors on the privacy page.
    pub fn with_subprocessors(self, subprocessors: Vec<String>) -> Self {
        Self {
            subprocessors,
            ..self
        }
    }

    /// The same, behind these reverse proxies.
    pub fn behind(self, trusted_proxies: TrustedProxies) -> Self {
        Self {
            trusted_proxies,
            ..self
        }
    }
}

/// The shared state, cheap to clone; its fields are reached through `Deref`.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The database.
    pub db: Db,
    /// The operator's master secret: derives token keys and the telemetry signing key.
    pub master: MasterSecret,
    /// Time source.
    pub clock: Clock,
    /// Where snapshot changes go.
    pub publisher: Publisher,
    /// Wakes the background publisher when an inline publish failed.
    pub publish_wake: Arc<Notify>,
    /// Outgoing email.
    pub mailer: Mailer,
    /// Dashboard settings.
    pub web: WebConfig,
    /// Dashboard templates.
    pub templates: Arc<minijinja::Environment<'static>>,
    /// The plans sold (built in, or with the operator's overrides).
    pub plans: Catalogue,
    /// Stripe, when billing is configured; without it every organisation stays on its plan
    /// (Free unless an operator set another).
    pub stripe: Option<Stripe>,
    /// VIES, which checks customers' EU VAT ids (the Commission's, unless configured).
    pub vies: Vies,
    /// What operators scrape at `/metrics`.
    pub metrics: Metrics,
}

impl AppState {
    /// Wires the state; the templates are parsed here, once.
    pub fn new(
        db: Db,
        master: MasterSecret,
        clock: Clock,
        publisher: Publisher,
        mailer: Mailer,
        web: WebConfig,
    ) -> Self {
        Self(Arc::new(Shared {
            db,
            master,
            clock,
            publisher,
            publish_wake: Arc::new(Notify::new()),
            mailer,
            web,
            templates: Arc::new(crate::templates::environment()),
            plans: Catalogue::builtin(),
            stripe: None,
            vies: Vies::new(crate::vies::DEFAULT_API_BASE, None),
            metrics: Metrics::default(),
        }))
    }

    /// A copy with one part swapped (tests and tools: another mailer, publisher or URL).
    pub fn with(&self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut services = Shared::clone(&self.0);
        change(&mut services);
        Self(Arc::new(services))
    }

    /// Publishes pending snapshot changes now, so the edge has them before the caller
    /// answers; if that fails, the background publisher is woken to retry, and the change
    /// stays pending in the database meanwhile.
    pub async fn publish_changes(&self) {
        if let Err(err) = self
            .publisher
            .publish_pending(&self.db, &self.plans, self.clock.now_ms())
            .await
        {
            tracing::warn!(error = %err, "publishing the snapshot failed; the background publisher will retry");
            self.publish_wake.notify_one();
        }
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for TrustedProxies {
    fn from_ref(state: &AppState) -> Self {
        state.web.trusted_proxies.clone()
    }
}
