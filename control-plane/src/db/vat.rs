//! An organisation's EU VAT id, where its check stands, and the append-only trail of every
//! question put to VIES. `vat_checks` rows are inserted here and deleted only by
//! [`super::retention`]; nothing updates them (a test reads the sources to keep it so).

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::Db;
use super::columns::Named;

/// Where an organisation's VAT id stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VatStatus {
    /// VIES confirmed it.
    Valid,
    /// VIES said it is not registered.
    Invalid,
    /// VIES was down; retried daily until the grace period ends.
    Pending,
    /// VIES stayed down for the whole grace period; the member may check again.
    Unverified,
}

impl VatStatus {
    /// Stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Pending => "pending",
            Self::Unverified => "unverified",
        }
    }
}

/// What one question to VIES got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Registered.
    Valid,
    /// Not registered.
    Invalid,
    /// No answer about the number.
    Down,
}

impl CheckOutcome {
    /// Stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Down => "down",
        }
    }
}

/// An organisation's VAT id and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct OrganisationVat {
    /// Normalised (`DE123456789`, `EL…` for Greece).
    pub vat_id: String,
    /// Where its check stands.
    #[sqlx(try_from = "Named<VatStatus>")]
    pub status: VatStatus,
    /// When VIES was last asked, Unix ms.
    pub checked_at: i64,
    /// Pending: when retries stop and the id becomes unverified, Unix ms.
    pub grace_ends_at: Option<i64>,
    /// Pending: when the next retry is due, Unix ms.
    pub next_check_at: Option<i64>,
    /// The `txi_…` Stripe made of it on the organisation's customer.
    pub stripe_tax_id: Option<String>,
}

impl From<Named<VatStatus>> for VatStatus {
    fn from(named: Named<VatStatus>) -> Self {
        named.0
    }
}

impl From<Named<CheckOutcome>> for CheckOutcome {
    fn from(named: Named<CheckOutcome>) -> Self {
        named.0
    }
}

/// One row of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct VatCheck {
    /// Random id.
    pub id: String,
    /// The organisation that asked (which may since have been deleted).
    pub organisation_id: String,
    /// The id asked about, normalised.
    pub vat_id: String,
    /// What VIES answered.
    #[sqlx(try_from = "Named<CheckOutcome>")]
    pub outcome: CheckOutcome,
    /// VIES's consultation number, for a valid id checked with a requester.
    pub consultation_number: Option<String>,
    /// The trader's name as VIES returned it.
    pub trader_name: Option<String>,
    /// The trader's address as VIES returned it.
    pub trader_address: Option<String>,
    /// For "down": what failed.
    pub detail: Option<String>,
    /// When, Unix ms.
    pub checked_at: i64,
}

/// The organisation's VAT id, if it entered one.
pub async fn find(db: &Db, organisation_id: &str) -> Result<Option<OrganisationVat>, sqlx::Error> {
    sqlx::query_as(
        "SELECT vat_id, status, checked_at, grace_ends_at, next_check_at, stripe_tax_id \
         FROM organisation_vat WHERE organisation_id = $1",
    )
    .bind(organisation_id)
    .fetch_optional(db.pool())
    .await
}

/// Appends `check` to the trail and sets the organisation's VAT state to `state`, together.
pub async fn record(db: &Db, check: &VatCheck, state: &OrganisationVat) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO vat_checks (id, organisation_id, vat_id, outcome, consultation_number, \
         trader_name, trader_address, detail, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(check.id.as_str())
    .bind(check.organisation_id.as_str())
    .bind(check.vat_id.as_str())
    .bind(check.outcome.as_str())
    .bind(check.consultation_number.as_deref())
    .bind(check.trader_name.as_deref())
    .bind(check.trader_address.as_deref())
    .bind(check.detail.as_deref())
    .bind(check.checked_at)
    .execute(&mut *tx)
    .await?;
    put_state(&mut tx, &check.organisation_id, state, check.checked_at).await?;
    tx.commit().await
}

/// Sets the organisation's VAT state without a check (the grace period ran out, or Stripe
/// got the tax id).
pub async fn set_state(
    db: &Db,
    organisation_id: &str,
    state: &OrganisationVat,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    put_state(&mut tx, organisation_id, state, now_ms).await?;
    tx.commit().await
}

async fn put_state(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    organisation_id: &str,
    state: &OrganisationVat,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO organisation_vat (organisation_id, vat_id, status, checked_at, grace_ends_at, \
         next_check_at, stripe_tax_id, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (organisation_id) DO UPDATE SET vat_id = excluded.vat_id, \
         status = excluded.status, checked_at = excluded.checked_at, \
         grace_ends_at = excluded.grace_ends_at, next_check_at = excluded.next_check_at, \
         stripe_tax_id = excluded.stripe_tax_id, updated_at = excluded.updated_at",
    )
    .bind(organisation_id)
    .bind(state.vat_id.as_str())
    .bind(state.status.as_str())
    .bind(state.checked_at)
    .bind(state.grace_ends_at)
    .bind(state.next_check_at)
    .bind(state.stripe_tax_id.as_deref())
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The organisation's newest checks, newest first.
pub async fn checks(
    db: &Db,
    organisation_id: &str,
    limit: i64,
) -> Result<Vec<VatCheck>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, organisation_id, vat_id, outcome, consultation_number, trader_name, \
         trader_address, detail, checked_at FROM vat_checks WHERE organisation_id = $1 \
         ORDER BY checked_at DESC, id LIMIT $2",
    )
    .bind(organisation_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// How many checks the organisation asked for after `since_ms`.
pub async fn checks_since(
    db: &Db,
    organisation_id: &str,
    since_ms: i64,
) -> Result<u64, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM vat_checks WHERE organisation_id = $1 AND checked_at > $2",
    )
    .bind(organisation_id)
    .bind(since_ms)
    .fetch_one(db.pool())
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Organisations whose pending id is due for its daily retry.
pub async fn pending_due(db: &Db, now_ms: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT organisation_id FROM organisation_vat WHERE status = 'pending' \
         AND next_check_at <= $1 ORDER BY organisation_id",
    )
    .bind(now_ms)
    .fetch_all(db.pool())
    .await
}

/// Organisations with a valid id that Stripe does not have yet.
pub async fn valid_without_stripe_tax_id(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT organisation_id FROM organisation_vat WHERE status = 'valid' \
         AND stripe_tax_id IS NULL ORDER BY organisation_id",
    )
    .fetch_all(db.pool())
    .await
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path.display().to_string(), text));
            }
        }
    }

    /// The trail is append-only: the only statement that changes existing rows is the
    /// retention rule's DELETE.
    #[test]
    fn only_retention_deletes_checks_and_nothing_updates_them() {
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let normalised = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        for (path, text) in files {
            let text = normalised(&text).to_uppercase();
            // Spelt in parts, so that this file does not match itself.
            let table = "VAT_CHECKS";
            assert!(
                !text.contains(&format!("UPDATE {table}")),
                "{path} updates vat_checks"
            );
            let deletes = text.matches(&format!("DELETE FROM {table}")).count();
            let expected = usize::from(path.ends_with("db/retention.rs")) * 2;
            assert_eq!(deletes, expected, "{path} deletes from vat_checks");
        }
    }
}
