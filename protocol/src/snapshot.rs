//! The per-site-key snapshot: everything the edge needs to decide, replicated through KV.
//!
//! The control plane builds one entry per project and publishes it under [`kv_key`]; the edge
//! never asks the origin on the request path. Secrets are not part of it.

use serde::{Deserialize, Serialize};

use crate::preset::Preset;
use crate::wire::{Branding, Variant, WidgetSettings};

/// KV key of a site key's snapshot entry.
pub fn kv_key(site_key: &str) -> String {
    format!("site:{site_key}")
}

/// One project's entry, keyed by its public site key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteSnapshot {
    /// Internal project id; part of the key derivation.
    pub project_id: String,
    /// Public site key.
    pub site_key: String,
    /// Paused projects get no challenges.
    pub active: bool,
    /// Hostnames the widget may run on in production.
    pub production_domains: Vec<String>,
    /// Hostnames for development and staging (e.g. `localhost`).
    pub testing_domains: Vec<String>,
    /// Whether `a.example.com` matches a configured `example.com`.
    pub allow_subdomains: bool,
    /// Version of the project's challenge key; bump to invalidate outstanding tokens.
    pub key_version: u32,
    /// Protection preset: work, rate limit, obfuscation and block threshold.
    pub preset: Preset,
    /// Whether risk decisions are only recorded or also enforced.
    pub risk_mode: RiskMode,
    /// Plan, billing and usage gates.
    pub billing: BillingGate,
    /// Widget variants and branding modes the plan includes.
    #[serde(default)]
    pub widget: WidgetPolicy,
    /// How the widget looks, as set in the dashboard. Entries published before this field
    /// existed get the widget's defaults.
    #[serde(default)]
    pub widget_settings: WidgetSettings,
    /// When the control plane built this entry, Unix ms.
    pub published_at: i64,
}

/// Risk decisions are recorded (observe) or acted on (enforce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskMode {
    /// Record what would have been blocked; never block.
    Observe,
    /// Block high-risk starts.
    Enforce,
}

impl RiskMode {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observe => "observe",
            Self::Enforce => "enforce",
        }
    }
}

/// Plan and billing state as of publishing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingGate {
    /// Plan name (e.g. `free`, `pro`).
    pub plan: String,
    /// False when billing stops traffic (e.g. a subscription that lapsed).
    pub traffic_allowed: bool,
    /// Protected attempts allowed per calendar month; `None` is unlimited.
    pub monthly_limit: Option<u64>,
    /// What was left of the monthly limit when this entry was published.
    pub usage_left: Option<u64>,
}

/// What the widget may look like under the project's plan. Entries published before this
/// field existed allow everything, as the platform did then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetPolicy {
    /// Allowed variants.
    pub variants: Vec<Variant>,
    /// Allowed branding modes.
    pub branding: Vec<Branding>,
}

impl Default for WidgetPolicy {
    fn default() -> Self {
        Self {
            variants: vec![Variant::Checkbox, Variant::Invisible, Variant::Floating],
            branding: vec![Branding::Full, Branding::Minimal, Branding::None],
        }
    }
}

/// Which of a project's domain lists an origin matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainKind {
    /// A production domain.
    Production,
    /// A testing domain.
    Testing,
}

impl SiteSnapshot {
    /// Matches the host of an `Origin` header against the configured domains.
    pub fn match_host(&self, host: &str) -> Option<DomainKind> {
        let matches = |domains: &[String]| {
            domains.iter().any(|domain| {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                host == domain
                    || (self.allow_subdomains
                        && host.len() > domain.len()
                        && host.ends_with(&domain)
                        && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
            })
        };
        if matches(&self.production_domains) {
            Some(DomainKind::Production)
        } else if matches(&self.testing_domains) {
            Some(DomainKind::Testing)
        } else {
            None
        }
    }
}

/// The lowercase host of a serialized origin (`scheme://host[:port]`), or `None` when the
/// value is not a plain http(s) origin.
pub fn origin_host(origin: &str) -> Option<String> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))?;
    if rest.is_empty() || rest.contains(['/', '@', '?', '#', ' ']) {
        return None;
    }
    let host = if let Some(bracketed) = rest.strip_prefix('[') {
        let (inner, after) = bracketed.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        inner
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            Some(_) => return None,
            None => rest,
        }
    };
    (!host.is_empty()).then(|| host.trim_end_matches('.').to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(allow_subdomains: bool) -> SiteSnapshot {
        SiteSnapshot {
            project_id: "p".into(),
            site_key: "s".into(),
            active: true,
            production_domains: vec!["example.com".into()],
            testing_domains: vec!["localhost".into(), "127.0.0.1".into()],
            allow_subdomains,
            key_version: 1,
            preset: Preset::Balanced,
            risk_mode: RiskMode::Observe,
            billing: BillingGate {
                plan: "free".into(),
                traffic_allowed: true,
                monthly_limit: None,
                usage_left: None,
            },
            widget: WidgetPolicy::default(),
            widget_settings: WidgetSettings::default(),
            published_at: 0,
        }
    }

    #[test]
    fn origins_parse_to_hosts() {
        assert_eq!(
            origin_host("https://Example.COM").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            origin_host("http://localhost:3000").as_deref(),
            Some("localhost")
        );
        assert_eq!(origin_host("http://[::1]:8080").as_deref(), Some("::1"));
        for bad in [
            "null",
            "",
            "https://",
            "ftp://x",
            "https://a/b",
            "https://u@a",
            "https://a:x",
        ] {
            assert_eq!(origin_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hosts_match_domains_and_optionally_subdomains() {
        let strict = snapshot(false);
        assert_eq!(
            strict.match_host("example.com"),
            Some(DomainKind::Production)
        );
        assert_eq!(strict.match_host("localhost"), Some(DomainKind::Testing));
        assert_eq!(strict.match_host("www.example.com"), None);
        assert_eq!(strict.match_host("badexample.com"), None);
        let loose = snapshot(true);
        assert_eq!(
            loose.match_host("www.example.com"),
            Some(DomainKind::Production)
        );
        assert_eq!(loose.match_host("badexample.com"), None);
        assert_eq!(loose.match_host("example.com.evil.net"), None);
    }
}
