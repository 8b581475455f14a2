//! Settings, from flags or the environment (`HUMANPROOF_*`), shared by the commands.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use humanproof_protocol::MasterSecret;
use humanproof_protocol::rsw::RswKey;

use crate::contact::ContactForm;
use crate::db::Db;
use crate::plans::Catalogue;
use crate::stripe::Stripe;
use crate::vies::{VatId, Vies};

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://path?mode=rwc` (embedded) or `postgres://user:pass@host/db` (production).
    #[arg(
        long,
        env = "HUMANPROOF_DATABASE_URL",
        default_value = "sqlite://data/humanproof.db?mode=rwc"
    )]
    pub database_url: String,
}

impl DatabaseArgs {
    /// Opens the database (bringing its schema up to date), runs `command` on it, and closes
    /// it whatever the command returned: on SQLite that leaves one file ([`Db::close`]).
    pub async fn with<T>(
        &self,
        command: impl AsyncFnOnce(&Db) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let db = Db::connect(&self.database_url).await?;
        let result = command(&db).await;
        db.close().await;
        result
    }
}

/// The operator's master secret. Never logged, never sent anywhere.
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// At least 32 characters; the edge's `HUMANPROOF_MASTER_SECRET` Worker secret must match.
    #[arg(long, env = "HUMANPROOF_MASTER_SECRET", hide_env_values = true)]
    pub master_secret: Option<String>,
}

impl SecretArgs {
    /// The configured secret; required outside development.
    pub fn require(&self) -> anyhow::Result<MasterSecret> {
        let secret = self.master_secret.as_deref().context(
            "HUMANPROOF_MASTER_SECRET is not set (generate one with `openssl rand -hex 32`)",
        )?;
        Ok(MasterSecret::new(secret)?)
    }

    /// The configured secret, or for local development one generated on first start and kept
    /// in `data_dir/master-secret` (readable only by its owner).
    pub fn or_generate_in(&self, data_dir: &Path) -> anyhow::Result<MasterSecret> {
        if self.master_secret.is_some() {
            return self.require();
        }
        let path: PathBuf = data_dir.join("master-secret");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return Ok(MasterSecret::new(existing.trim())?);
        }
        std::fs::create_dir_all(data_dir)?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
        let secret = hex::encode(bytes);
        write_private(&path, &secret)?;
        Ok(MasterSecret::new(&secret)?)
    }
}

/// The edge's RSW key, in the local all-in-one server (on Cloudflare it is the Worker's
/// `HUMANPROOF_RSW_KEY` secret).
#[derive(Debug, Clone, Args)]
pub struct RswKeyArgs {
    /// Two 1024-bit primes in hex joined by ':' (`humanproof rsw-key` prints one).
    #[arg(long, env = "HUMANPROOF_RSW_KEY", hide_env_values = true)]
    pub rsw_key: Option<String>,
}

impl RswKeyArgs {
    /// The configured key, or one generated on first start and kept in `data_dir/rsw-key`
    /// (readable only by its owner).
    pub fn or_generate_in(&self, data_dir: &Path) -> anyhow::Result<RswKey> {
        if let Some(text) = &self.rsw_key {
            return Ok(RswKey::parse(text)?);
        }
        let path = data_dir.join("rsw-key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return RswKey::parse(&existing).with_context(|| format!("in {}", path.display()));
        }
        std::fs::create_dir_all(data_dir)?;
        let key = RswKey::generate();
        write_private(&path, &key.to_secret_string())?;
        Ok(key)
    }
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// Where the dashboard is reached and where its email goes.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// The control plane's public URL, for links in emails and code samples. https turns on
    /// Secure cookies.
    #[arg(
        long,
        env = "HUMANPROOF_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    /// The edge's public URL, for the widget snippet.
    #[arg(
        long,
        env = "HUMANPROOF_EDGE_URL",
        default_value = "http://127.0.0.1:8787"
    )]
    pub edge_url: String,
    /// SMTP server for outgoing email, e.g. `smtps://user:password@smtp.example.com`
    /// (`smtp://host:25?tls=required` for STARTTLS). Without it, email goes to the outbox
    /// folder.
    #[arg(long, env = "HUMANPROOF_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of outgoing email.
    #[arg(
        long,
        env = "HUMANPROOF_MAIL_FROM",
        default_value = "HumanProof <no-reply@humanproof.invalid>"
    )]
    pub mail_from: String,
    /// Folder that receives outgoing email when no SMTP server is configured.
    #[arg(long, env = "HUMANPROOF_OUTBOX_DIR", default_value = "data/outbox")]
    pub outbox_dir: PathBuf,
    /// Reverse proxies in front of the control plane, as a comma-separated list of addresses
    /// or CIDR ranges (e.g. `127.0.0.1,10.0.0.0/8`). Only requests from these peers have their
    /// `X-Forwarded-For` read for the client IP; by default none are trusted and the header
    /// is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "HUMANPROOF_TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// The sub-processors the privacy page names, separated by `;` (e.g. `Cloudflare, Inc.
    /// — the edge (Workers, KV, Queues); Stripe Payments Europe — payments`).
    #[arg(long, env = "HUMANPROOF_SUBPROCESSORS", default_value = "")]
    pub subprocessors: String,
    /// The site key of the HumanProof project that protects the public contact form (a
    /// project of this very service, whose domains include the dashboard's).
    #[arg(long, env = "HUMANPROOF_CONTACT_SITE_KEY")]
    pub contact_site_key: Option<String>,
    /// That project's backend secret, which the form verifies its tokens with.
    #[arg(long, env = "HUMANPROOF_CONTACT_SECRET", hide_env_values = true)]
    pub contact_secret: Option<String>,
    /// Where each contact topic's messages go, as `topic=address` pairs separated by commas
    /// (topics: support, sales, dpa, security, privacy; one not listed is not offered), e.g.
    /// `support=help@example.com,dpa=legal@example.com`.
    #[arg(long, env = "HUMANPROOF_CONTACT_INBOXES", default_value = "")]
    pub contact_inboxes: String,
}

impl WebArgs {
    /// The sub-processors, one per `;`-separated entry.
    pub fn subprocessors(&self) -> Vec<String> {
        self.subprocessors
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The contact form: its site key, secret and inboxes all set, or none of them (the
    /// form is then off).
    pub fn contact_form(&self) -> anyhow::Result<Option<ContactForm>> {
        let inboxes = ContactForm::parse_inboxes(&self.contact_inboxes)
            .map_err(|err| anyhow::anyhow!("HUMANPROOF_CONTACT_INBOXES: {err}"))?;
        match (
            &self.contact_site_key,
            &self.contact_secret,
            inboxes.is_empty(),
        ) {
            (Some(site_key), Some(secret), false) => Ok(Some(ContactForm {
                site_key: site_key.clone(),
                secret: secret.clone(),
                inboxes,
            })),
            (None, None, true) => {
                tracing::warn!("no contact form configured: /contact says so");
                Ok(None)
            }
            _ => anyhow::bail!(
                "the contact form needs HUMANPROOF_CONTACT_SITE_KEY, HUMANPROOF_CONTACT_SECRET \
                 and HUMANPROOF_CONTACT_INBOXES together"
            ),
        }
    }

    /// SMTP when configured, else the outbox folder.
    pub fn mailer(&self) -> anyhow::Result<crate::mail::Mailer> {
        match &self.smtp_url {
            Some(url) => Ok(crate::mail::Mailer::smtp(url, &self.mail_from)?),
            None => {
                tracing::warn!(outbox = %self.outbox_dir.display(), "no SMTP server configured: email goes to the outbox folder");
                Ok(crate::mail::Mailer::Outbox(self.outbox_dir.clone()))
            }
        }
    }
}

/// Cloudflare Workers KV, where the edge reads the snapshot. All three or none.
#[derive(Debug, Clone, Args)]
pub struct KvArgs {
    /// Cloudflare account id.
    #[arg(long, env = "HUMANPROOF_CF_ACCOUNT_ID")]
    pub cf_account_id: Option<String>,
    /// Id of the KV namespace bound as SNAPSHOT in wrangler.toml.
    #[arg(long, env = "HUMANPROOF_CF_KV_NAMESPACE_ID")]
    pub cf_kv_namespace_id: Option<String>,
    /// API token with "Workers KV Storage: Edit".
    #[arg(long, env = "HUMANPROOF_CF_API_TOKEN", hide_env_values = true)]
    pub cf_api_token: Option<String>,
    /// Cloudflare's API base URL.
    #[arg(
        long,
        env = "HUMANPROOF_CF_API_URL",
        default_value = "https://api.cloudflare.com/client/v4"
    )]
    pub cf_api_url: String,
}

impl KvArgs {
    /// The KV publisher, or `Disabled` when nothing is configured.
    pub fn publisher(&self) -> anyhow::Result<crate::publish::Publisher> {
        use crate::publish::{KvClient, Publisher};
        match (
            &self.cf_account_id,
            &self.cf_kv_namespace_id,
            &self.cf_api_token,
        ) {
            (Some(account), Some(namespace), Some(token)) => {
                Ok(Publisher::CloudflareKv(KvClient::new(
                    crate::http::client(),
                    &self.cf_api_url,
                    account,
                    namespace,
                    token,
                )))
            }
            (None, None, None) => Ok(Publisher::Disabled),
            _ => anyhow::bail!(
                "set all of HUMANPROOF_CF_ACCOUNT_ID, HUMANPROOF_CF_KV_NAMESPACE_ID and HUMANPROOF_CF_API_TOKEN, or none"
            ),
        }
    }
}

/// The plans file.
#[derive(Debug, Clone, clap::Args)]
pub struct PlansArgs {
    /// JSON file overriding fields of the built-in plans (Stripe price ids, included
    /// attempts, limits); see the README's "Plans" section. Without it, the built-in plans.
    #[arg(long, env = "HUMANPROOF_PLANS_FILE")]
    pub plans_file: Option<PathBuf>,
    /// Days an organisation's traffic continues after a failed payment.
    #[arg(long, env = "HUMANPROOF_PAYMENT_GRACE_DAYS", default_value_t = crate::plans::DEFAULT_PAYMENT_GRACE_DAYS)]
    pub payment_grace_days: u32,
}

impl PlansArgs {
    /// The built-in plans with the file's overrides.
    pub fn catalogue(&self) -> anyhow::Result<Catalogue> {
        Ok(Catalogue::load(self.plans_file.as_deref())?
            .with_payment_grace_days(self.payment_grace_days))
    }
}

/// Stripe, for billing.
#[derive(Debug, Clone, clap::Args)]
pub struct StripeArgs {
    /// Stripe secret key (`sk_…` or a restricted `rk_…`). Without it billing is off: no
    /// checkout, no webhooks, and organisations keep the plan an operator set (Free).
    #[arg(long, env = "HUMANPROOF_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// The signing secret (`whsec_…`) of the webhook endpoint `/billing/stripe/webhook`.
    #[arg(long, env = "HUMANPROOF_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// Stripe's API; tests and `humanproof dev` point it at the local stand-in.
    #[arg(
        long,
        env = "HUMANPROOF_STRIPE_API_BASE",
        default_value = "https://api.stripe.com/"
    )]
    pub stripe_api_base: String,
    /// The event name of the Billing Meter that bills attempts above a paid plan's included
    /// ones (the meter the plans' `overage` prices are on).
    #[arg(
        long,
        env = "HUMANPROOF_STRIPE_METER_EVENT",
        default_value = crate::stripe::DEFAULT_METER_EVENT_NAME
    )]
    pub stripe_meter_event: String,
}

impl StripeArgs {
    /// The Stripe client, if billing is configured; both secrets or neither.
    pub fn stripe(&self) -> anyhow::Result<Option<Stripe>> {
        match (&self.stripe_secret_key, &self.stripe_webhook_secret) {
            (Some(key), Some(webhook_secret)) => Ok(Some(
                Stripe::new(key, webhook_secret, &self.stripe_api_base)
                    .map_err(anyhow::Error::msg)?
                    .with_meter_event_name(&self.stripe_meter_event),
            )),
            (None, None) => Ok(None),
            _ => anyhow::bail!(
                "set both HUMANPROOF_STRIPE_SECRET_KEY and HUMANPROOF_STRIPE_WEBHOOK_SECRET, or neither"
            ),
        }
    }
}

/// VIES, which checks customers' EU VAT ids.
#[derive(Debug, Clone, clap::Args)]
pub struct ViesArgs {
    /// VIES's REST API; tests and `humanproof dev` point it at the local stand-in.
    #[arg(
        long,
        env = "HUMANPROOF_VIES_API_BASE",
        default_value = crate::vies::DEFAULT_API_BASE
    )]
    pub vies_api_base: String,
    /// The operator's own EU VAT id (e.g. `DE123456789`), sent as the requester of every
    /// check: only then does VIES return a consultation number, the proof a tax audit asks
    /// for. Without it checks still say valid or invalid.
    #[arg(long, env = "HUMANPROOF_VIES_REQUESTER")]
    pub vies_requester: Option<String>,
}

impl ViesArgs {
    /// The VIES client; a requester that is not an EU VAT id is refused at start.
    pub fn vies(&self) -> anyhow::Result<Vies> {
        let requester = match &self.vies_requester {
            Some(id) => Some(VatId::parse(id).with_context(|| {
                format!("HUMANPROOF_VIES_REQUESTER is not an EU VAT id: {id:?}")
            })?),
            None => None,
        };
        Ok(Vies::new(&self.vies_api_base, requester))
    }
}
