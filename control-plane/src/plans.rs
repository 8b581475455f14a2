//! The plans HumanProof sells: what each includes and what it costs in Stripe's terms.
//!
//! The catalogue is code ([`Catalogue::builtin`]) so that a deployment without configuration
//! has sensible plans; an operator overrides any field of any plan from a JSON file
//! (`HUMANPROOF_PLANS_FILE`, see the README), most often to set their own Stripe price ids.
//! Plans belong to an organisation; their gates reach the edge through every project's
//! snapshot, and the services refuse a setting the plan does not allow before it is saved.

use std::collections::BTreeMap;
use std::path::Path;

use humanproof_protocol::snapshot::WidgetPolicy;
use humanproof_protocol::wire::{Branding, Variant};
use serde::{Deserialize, Serialize};

/// Verification logs are never kept longer than this, whatever a plan says: a promise of
/// the privacy policy, not a product choice.
pub const MAX_LOG_DAYS: u32 = 14;

/// The plan every organisation has until it pays, and the one operator-created projects
/// without an organisation fall back to.
pub const FREE: &str = "free";

/// Billing state as far as traffic is concerned. Stored by its serde name, which
/// [`BillingStatus::as_str`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingStatus {
    /// Paid up or on a free plan.
    Active,
    /// In a trial.
    Trialing,
    /// A payment failed; traffic continues for the grace period
    /// ([`Catalogue::payment_grace_days`]), then stops.
    PastDue,
    /// The subscription ended; traffic stops.
    Canceled,
}

impl BillingStatus {
    /// Whether the edge serves traffic in this state.
    pub fn allows_traffic(self) -> bool {
        matches!(self, Self::Active | Self::Trialing)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Trialing => "trialing",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
        }
    }
}

/// The grace period after a failed payment unless the operator sets another.
pub const DEFAULT_PAYMENT_GRACE_DAYS: u32 = 7;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How often a subscription is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// Every month.
    Month,
    /// Every year.
    Year,
}

impl Interval {
    /// The stored name, as Stripe spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

/// A plan's Stripe prices, one per interval; a plan without a price cannot be bought on that
/// interval (Free has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// The monthly price id (`price_…`).
    pub month: Option<String>,
    /// The yearly price id.
    pub year: Option<String>,
    /// The metered price (`price_…` on the usage meter) that bills attempts above the
    /// included ones; subscribed beside the plan's price. Without it, usage above the
    /// included attempts is reported to the meter but the subscription bills none of it.
    #[serde(default)]
    pub overage: Option<String>,
}

impl Prices {
    /// The price for `interval`.
    pub fn for_interval(&self, interval: Interval) -> Option<&str> {
        match interval {
            Interval::Month => self.month.as_deref(),
            Interval::Year => self.year.as_deref(),
        }
    }
}

/// One plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Stable id, as stored: `free`, `starter`, `pro`, `business`.
    pub id: String,
    /// Shown to customers.
    pub name: String,
    /// Protected attempts included per calendar month, across the organisation's projects.
    pub included_attempts: u64,
    /// Whether the edge stops at the included attempts (`usage_exhausted`). Paid plans are
    /// not cut off: what goes beyond is billed by usage.
    pub hard_cap: bool,
    /// Projects the organisation may have; `None` is unlimited.
    pub max_projects: Option<u32>,
    /// Members the organisation may have, invitations included; `None` is unlimited.
    pub max_members: Option<u32>,
    /// Widget variants the plan includes.
    pub variants: Vec<Variant>,
    /// Branding modes the plan includes.
    pub branding: Vec<Branding>,
    /// Whether projects may use the Custom preset.
    pub custom_presets: bool,
    /// Days of daily statistics kept.
    pub stats_days: u32,
    /// Days of verification logs kept, at most [`MAX_LOG_DAYS`].
    pub log_days: u32,
    /// Stripe prices.
    pub prices: Prices,
}

impl Plan {
    /// What the edge lets the widget be under this plan.
    pub fn widget_policy(&self) -> WidgetPolicy {
        WidgetPolicy {
            variants: self.variants.clone(),
            branding: self.branding.clone(),
        }
    }

    /// Whether a customer can buy this plan (it has a price).
    pub fn is_paid(&self) -> bool {
        self.prices.month.is_some() || self.prices.year.is_some()
    }
}

/// Why a plans file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The file could not be read.
    #[error("cannot read the plans file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not the expected JSON.
    #[error("the plans file is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    /// It names a plan the catalogue does not have.
    #[error("the plans file overrides an unknown plan {0:?} (known: free, starter, pro, business)")]
    UnknownPlan(String),
    /// A value breaks a rule.
    #[error("plan {plan:?}: {problem}")]
    Invalid {
        /// The plan.
        plan: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Fields an operator may override, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanOverride {
    name: Option<String>,
    included_attempts: Option<u64>,
    hard_cap: Option<bool>,
    #[serde(default, with = "double_option")]
    max_projects: Option<Option<u32>>,
    #[serde(default, with = "double_option")]
    max_members: Option<Option<u32>>,
    variants: Option<Vec<Variant>>,
    branding: Option<Vec<Branding>>,
    custom_presets: Option<bool>,
    stats_days: Option<u32>,
    log_days: Option<u32>,
    prices: Option<Prices>,
}

/// `null` (unlimited) and an absent field (keep the default) mean different things.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<u32>>, D::Error> {
        Option::<u32>::deserialize(deserializer).map(Some)
    }
}

/// Every plan, cheapest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalogue {
    plans: Vec<Plan>,
    /// After a payment fails, traffic continues this many days while the customer fixes it;
    /// then the edge refuses with `billing_inactive` until a payment succeeds.
    payment_grace_days: u32,
}

impl Catalogue {
    /// The plans as shipped. Price ids are placeholders until the operator's file names the
    /// prices of their Stripe account.
    pub fn builtin() -> Self {
        use Branding::{Full, Minimal};
        use Variant::{Checkbox, Floating, Invisible};
        let plan = |id: &str, name: &str, included_attempts, max_projects, max_members| Plan {
            id: id.to_owned(),
            name: name.to_owned(),
            included_attempts,
            hard_cap: false,
            max_projects,
            max_members,
            variants: vec![Checkbox, Invisible, Floating],
            branding: vec![Full, Minimal, Branding::None],
            custom_presets: true,
            stats_days: 14,
            log_days: MAX_LOG_DAYS,
            prices: Prices {
                month: Some(format!("price_{id}_month")),
                year: Some(format!("price_{id}_year")),
                overage: Some(format!("price_{id}_overage")),
            },
        };
        let free = Plan {
            hard_cap: true,
            variants: vec![Checkbox, Invisible],
            branding: vec![Full],
            custom_presets: false,
            stats_days: 7,
            log_days: 3,
            prices: Prices::default(),
            ..plan(FREE, "Free", 10_000, Some(2), Some(2))
        };
        let starter = Plan {
            branding: vec![Full, Minimal],
            custom_presets: false,
            log_days: 7,
            ..plan("starter", "Starter", 100_000, Some(10), Some(5))
        };
        let pro = plan("pro", "Pro", 1_000_000, Some(50), Some(20));
        let business = plan("business", "Business", 10_000_000, None, None);
        Self {
            plans: vec![free, starter, pro, business],
            payment_grace_days: DEFAULT_PAYMENT_GRACE_DAYS,
        }
    }

    /// The built-in plans with the operator's file applied, if there is one.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogueError> {
        let builtin = Self::builtin();
        let Some(path) = path else {
            return Ok(builtin);
        };
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Read {
            path: path.display().to_string(),
            source,
        })?;
        builtin.with_overrides(&text)
    }

    /// Applies overrides given as `{"<plan id>": {"<field>": value, …}, …}`.
    pub fn with_overrides(mut self, json: &str) -> Result<Self, CatalogueError> {
        let overrides: BTreeMap<String, PlanOverride> = serde_json::from_str(json)?;
        for (id, change) in overrides {
            let plan = self
                .plans
                .iter_mut()
                .find(|plan| plan.id == id)
                .ok_or_else(|| CatalogueError::UnknownPlan(id.clone()))?;
            let PlanOverride {
                name,
                included_attempts,
                hard_cap,
                max_projects,
                max_members,
                variants,
                branding,
                custom_presets,
                stats_days,
                log_days,
                prices,
            } = change;
            plan.name = name.unwrap_or(plan.name.clone());
            plan.included_attempts = included_attempts.unwrap_or(plan.included_attempts);
            plan.hard_cap = hard_cap.unwrap_or(plan.hard_cap);
            plan.max_projects = max_projects.unwrap_or(plan.max_projects);
            plan.max_members = max_members.unwrap_or(plan.max_members);
            plan.variants = variants.unwrap_or(plan.variants.clone());
            plan.branding = branding.unwrap_or(plan.branding.clone());
            plan.custom_presets = custom_presets.unwrap_or(plan.custom_presets);
            plan.stats_days = stats_days.unwrap_or(plan.stats_days);
            plan.log_days = log_days.unwrap_or(plan.log_days);
            plan.prices = prices.unwrap_or(plan.prices.clone());
        }
        self.check()?;
        Ok(self)
    }

    fn check(&self) -> Result<(), CatalogueError> {
        for plan in &self.plans {
            let invalid = |problem| CatalogueError::Invalid {
                plan: plan.id.clone(),
                problem,
            };
            if plan.log_days > MAX_LOG_DAYS {
                return Err(invalid("log_days is at most 14"));
            }
            if plan.variants.is_empty() || plan.branding.is_empty() {
                return Err(invalid(
                    "a plan allows at least one variant and one branding mode",
                ));
            }
            if !plan.variants.contains(&Variant::Checkbox)
                || !plan.branding.contains(&Branding::Full)
            {
                // A project's defaults (checkbox, full branding) must be valid on every plan.
                return Err(invalid(
                    "every plan allows the checkbox variant and full branding",
                ));
            }
        }
        if self.free().is_paid() {
            return Err(CatalogueError::Invalid {
                plan: FREE.to_owned(),
                problem: "the free plan has no price",
            });
        }
        Ok(())
    }

    /// The same plans with another grace period after a failed payment.
    pub fn with_payment_grace_days(self, payment_grace_days: u32) -> Self {
        Self {
            payment_grace_days,
            ..self
        }
    }

    /// Days of traffic after a failed payment.
    pub fn payment_grace_days(&self) -> u32 {
        self.payment_grace_days
    }

    /// When the grace period of a payment that failed at `past_due_since` ends, Unix ms.
    pub fn grace_ends_at(&self, past_due_since: i64) -> i64 {
        past_due_since.saturating_add(i64::from(self.payment_grace_days) * DAY_MS)
    }

    /// Whether billing lets an organisation's traffic through: paid up or trialing, or past
    /// due for less than the grace period.
    pub fn traffic_allowed(
        &self,
        status: BillingStatus,
        past_due_since: Option<i64>,
        now_ms: i64,
    ) -> bool {
        match status {
            BillingStatus::PastDue => {
                past_due_since.is_none_or(|since| now_ms < self.grace_ends_at(since))
            }
            other => other.allows_traffic(),
        }
    }

    /// Every plan, cheapest first.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// The plan with this id.
    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.id == id)
    }

    /// The free plan.
    pub fn free(&self) -> &Plan {
        self.get(FREE)
            .expect("the catalogue always has the free plan")
    }

    /// The plan with this id, or Free for an id the catalogue no longer has (a removed
    /// plan must not grant more than Free).
    pub fn get_or_free(&self, id: &str) -> &Plan {
        self.get(id).unwrap_or_else(|| self.free())
    }

    /// Where a plan stands in the catalogue, cheapest first: a move to a higher one is an
    /// upgrade.
    pub fn rank(&self, id: &str) -> Option<usize> {
        self.plans.iter().position(|plan| plan.id == id)
    }

    /// The plan and interval a Stripe price id stands for (never an overage price, which
    /// goes with every interval).
    pub fn by_price(&self, price_id: &str) -> Option<(&Plan, Interval)> {
        self.plans.iter().find_map(|plan| {
            [Interval::Month, Interval::Year]
                .into_iter()
                .find(|&interval| plan.prices.for_interval(interval) == Some(price_id))
                .map(|interval| (plan, interval))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_plans_keep_the_promises() {
        let catalogue = Catalogue::builtin();
        catalogue.check().unwrap();
        let ids: Vec<&str> = catalogue
            .plans()
            .iter()
            .map(|plan| plan.id.as_str())
            .collect();
        assert_eq!(ids, ["free", "starter", "pro", "business"]);
        assert!(catalogue.free().hard_cap && !catalogue.free().is_paid());
        assert!(
            catalogue
                .plans()
                .iter()
                .all(|plan| plan.log_days <= MAX_LOG_DAYS)
        );
        assert!(catalogue.free().log_days < MAX_LOG_DAYS);
        assert_eq!(
            catalogue
                .by_price("price_pro_year")
                .map(|(plan, interval)| (plan.id.as_str(), interval)),
            Some(("pro", Interval::Year))
        );
    }

    #[test]
    fn a_failed_payment_stops_traffic_after_the_grace_period_the_operator_sets() {
        let day = 24 * 60 * 60 * 1000;
        let catalogue = Catalogue::builtin();
        let past_due = BillingStatus::PastDue;
        assert!(catalogue.traffic_allowed(past_due, Some(0), 7 * day - 1));
        assert!(!catalogue.traffic_allowed(past_due, Some(0), 7 * day));
        let strict = catalogue.with_payment_grace_days(2);
        assert!(strict.traffic_allowed(past_due, Some(0), 2 * day - 1));
        assert!(!strict.traffic_allowed(past_due, Some(0), 2 * day));
        assert!(!strict.traffic_allowed(BillingStatus::Canceled, None, 0));
        assert!(strict.traffic_allowed(BillingStatus::Trialing, None, 0));
    }

    #[test]
    fn an_operator_file_overrides_fields_and_is_checked() {
        let catalogue = Catalogue::builtin()
            .with_overrides(
                r#"{"pro": {"prices": {"month": "price_1Pro", "year": null}, "max_projects": null},
                    "free": {"included_attempts": 5000}}"#,
            )
            .unwrap();
        let pro = catalogue.get("pro").unwrap();
        assert_eq!(pro.prices.month.as_deref(), Some("price_1Pro"));
        assert_eq!(pro.prices.year, None);
        assert_eq!(pro.max_projects, None);
        assert_eq!(
            pro.max_members,
            Some(20),
            "fields not named keep their value"
        );
        assert_eq!(catalogue.free().included_attempts, 5000);

        let refused = |json: &str| {
            Catalogue::builtin()
                .with_overrides(json)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(r#"{"gold": {}}"#).contains("unknown plan"));
        assert!(refused(r#"{"pro": {"log_days": 30}}"#).contains("at most 14"));
        assert!(refused(r#"{"pro": {"colour": "red"}}"#).contains("not valid"));
        assert!(refused(r#"{"free": {"prices": {"month": "price_x"}}}"#).contains("no price"));
        assert!(refused(r#"{"pro": {"branding": ["none"]}}"#).contains("full branding"));
    }
}
