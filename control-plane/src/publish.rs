//! Publishing the snapshot the edge decides from: one interface, two real targets.
//!
//! - [`Publisher::Local`]: an in-process edge ([`InProcessEdge`]): `humanproof dev`'s and
//!   the tests'.
//! - [`Publisher::CloudflareKv`]: Workers KV through Cloudflare's REST API ([`KvClient`]).
//!
//! The database is the source of truth and publishing is idempotent: every project change
//! bumps its `revision`, a publish puts the project's whole entry and then records the
//! revision it published, and deletions wait in `snapshot_deletions` until KV confirms them. So a
//! failed publish loses nothing: [`Publisher::run`] retries whatever is still pending, and
//! republishes everything periodically so usage-based gates stay current.

use std::sync::Arc;
use std::time::Duration;

use humanproof_edge::memory::MemorySnapshots;
use humanproof_protocol::SiteSnapshot;
use humanproof_protocol::snapshot::kv_key;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::db::{Db, projects};
use crate::metrics::{Job, Metrics};
use crate::plans::Catalogue;
use crate::snapshot::{self, KvPair, kv_pairs};

/// An edge running in this process, whose snapshot store the publisher writes directly.
/// A trait, so publishing does not depend on the all-in-one server that builds such an edge.
pub trait InProcessEdge: Send + Sync {
    /// The edge's snapshot store.
    fn snapshots(&self) -> &MemorySnapshots;
}

/// Where snapshot entries go.
#[derive(Clone)]
pub enum Publisher {
    /// The in-process edge.
    Local(Arc<dyn InProcessEdge>),
    /// Cloudflare Workers KV.
    CloudflareKv(KvClient),
    /// No target configured: changes stay in the database until `humanproof snapshot`
    /// exports them for `wrangler kv bulk put`.
    Disabled,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(_) => f.write_str("Publisher::Local"),
            Self::CloudflareKv(kv) => f
                .debug_tuple("Publisher::CloudflareKv")
                .field(&kv.namespace_url)
                .finish(),
            Self::Disabled => f.write_str("Publisher::Disabled"),
        }
    }
}

/// Why a publish did not complete; what was not published stays pending.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Reading what to publish failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Cloudflare did not take the write after retries.
    #[error("Cloudflare KV: {0}")]
    Kv(String),
}

/// What one publish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PublishReport {
    /// Entries written.
    pub written: usize,
    /// Entries deleted.
    pub deleted: usize,
}

/// How often pending changes are retried when nothing wakes the publisher.
const RETRY_EVERY: Duration = Duration::from_secs(15);
/// How often everything is republished, so usage left and billing gates stay current.
const REPUBLISH_EVERY: Duration = Duration::from_secs(300);

impl Publisher {
    /// Publishes what changed since the last publish: changed projects and deletions.
    pub async fn publish_pending(
        &self,
        db: &Db,
        plans: &Catalogue,
        now_ms: i64,
    ) -> Result<PublishReport, PublishError> {
        if matches!(self, Self::Disabled) {
            return Ok(PublishReport::default());
        }
        let changed = projects::unpublished(db).await?;
        self.publish_projects(db, plans, changed, now_ms).await
    }

    /// Publishes every project and every pending deletion: the operator's full republish.
    pub async fn republish_all(
        &self,
        db: &Db,
        plans: &Catalogue,
        now_ms: i64,
    ) -> Result<PublishReport, PublishError> {
        let all = projects::list_all(db).await?;
        let Self::Local(edge) = self else {
            return self.publish_projects(db, plans, all, now_ms).await;
        };
        // The local store can be replaced whole, which also drops deleted projects.
        let entries = snapshot::build_entries(db, plans, &all, now_ms).await?;
        edge.snapshots().replace_all(entries);
        mark_published(db, &all).await?;
        let deletions = projects::pending_deletions(db).await?;
        projects::clear_deletions(db, &deletions).await?;
        Ok(PublishReport {
            written: all.len(),
            deleted: deletions.len(),
        })
    }

    async fn publish_projects(
        &self,
        db: &Db,
        plans: &Catalogue,
        projects_to_publish: Vec<projects::Project>,
        now_ms: i64,
    ) -> Result<PublishReport, PublishError> {
        let entries = snapshot::build_entries(db, plans, &projects_to_publish, now_ms).await?;
        if !entries.is_empty() {
            self.put(&entries).await?;
            mark_published(db, &projects_to_publish).await?;
        }
        let deletions = projects::pending_deletions(db).await?;
        if !deletions.is_empty() {
            self.delete(&deletions).await?;
            projects::clear_deletions(db, &deletions).await?;
        }
        Ok(PublishReport {
            written: entries.len(),
            deleted: deletions.len(),
        })
    }

    async fn put(&self, entries: &[SiteSnapshot]) -> Result<(), PublishError> {
        match self {
            Self::Local(edge) => {
                for entry in entries {
                    edge.snapshots().put(entry.clone());
                }
                Ok(())
            }
            Self::CloudflareKv(kv) => kv.bulk_put(&kv_pairs(entries)).await,
            Self::Disabled => Ok(()),
        }
    }

    async fn delete(&self, site_keys: &[String]) -> Result<(), PublishError> {
        match self {
            Self::Local(edge) => {
                for site_key in site_keys {
                    edge.snapshots().remove(site_key);
                }
                Ok(())
            }
            Self::CloudflareKv(kv) => {
                let keys: Vec<String> = site_keys.iter().map(|site_key| kv_key(site_key)).collect();
                kv.bulk_delete(&keys).await
            }
            Self::Disabled => Ok(()),
        }
    }

    /// Publishes pending changes whenever `wake` fires or [`RETRY_EVERY`] passes, and
    /// everything every [`REPUBLISH_EVERY`]. Failures are logged and retried.
    pub async fn run(
        self,
        db: Db,
        plans: Catalogue,
        clock: Clock,
        wake: Arc<Notify>,
        metrics: Metrics,
    ) {
        if matches!(self, Self::Disabled) {
            return;
        }
        let mut last_full = None::<tokio::time::Instant>;
        loop {
            let full = last_full.is_none_or(|at| at.elapsed() >= REPUBLISH_EVERY);
            let now_ms = clock.now_ms();
            let result = if full {
                self.republish_all(&db, &plans, now_ms).await
            } else {
                self.publish_pending(&db, &plans, now_ms).await
            };
            metrics.job_run(Job::Publish, result.is_ok(), now_ms);
            match result {
                Ok(report) => {
                    if full {
                        last_full = Some(tokio::time::Instant::now());
                    }
                    if report != PublishReport::default() {
                        tracing::debug!(?report, full, "snapshot published");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "snapshot publish failed; will retry"),
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY_EVERY) => {}
                () = wake.notified() => {}
            }
        }
    }
}

/// Records that the edge has each project at the revision read.
async fn mark_published(db: &Db, published: &[projects::Project]) -> Result<(), sqlx::Error> {
    for project in published {
        projects::mark_published(db, &project.id, project.revision).await?;
    }
    Ok(())
}

/// Cloudflare's REST API for one KV namespace. Debug output leaves the token out.
#[derive(Clone)]
pub struct KvClient {
    http: reqwest::Client,
    namespace_url: String,
    api_token: String,
}

impl std::fmt::Debug for KvClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvClient")
            .field("namespace_url", &self.namespace_url)
            .finish_non_exhaustive()
    }
}

/// Cloudflare's envelope around every API answer.
#[derive(Debug, Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    errors: Vec<CloudflareError>,
    result: Option<BulkResult>,
}

#[derive(Debug, Deserialize)]
struct CloudflareError {
    code: i64,
    message: String,
}

#[derive(Debug, Deserialize)]
struct BulkResult {
    #[serde(default)]
    unsuccessful_keys: Vec<String>,
}

/// Cloudflare takes at most this many keys per bulk call.
const MAX_KEYS_PER_CALL: usize = 10_000;
/// Attempts per bulk call before the publish is left pending for the next run.
const ATTEMPTS: u32 = 3;

impl KvClient {
    /// `api_url` is `https://api.cloudflare.com/client/v4` in production.
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        account_id: &str,
        namespace_id: &str,
        api_token: &str,
    ) -> Self {
        let namespace_url = format!(
            "{}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}",
            api_url.trim_end_matches('/')
        );
        Self {
            http,
            namespace_url,
            api_token: api_token.to_owned(),
        }
    }

    /// `PUT …/bulk` with `[{"key", "value"}]`.
    pub async fn bulk_put(&self, pairs: &[KvPair]) -> Result<(), PublishError> {
        self.bulk(reqwest::Method::PUT, "bulk", pairs, |pair| &pair.key)
            .await
    }

    /// `POST …/bulk/delete` with `["key", …]`; deleting a missing key succeeds.
    pub async fn bulk_delete(&self, keys: &[String]) -> Result<(), PublishError> {
        self.bulk(reqwest::Method::POST, "bulk/delete", keys, String::as_str)
            .await
    }

    /// Sends `items` in calls of at most [`MAX_KEYS_PER_CALL`], each retried up to
    /// [`ATTEMPTS`] times with backoff; a retry sends only the keys Cloudflare reported as
    /// not processed.
    async fn bulk<T: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        items: &[T],
        key_of: impl Fn(&T) -> &str,
    ) -> Result<(), PublishError> {
        let url = format!("{}/{path}", self.namespace_url);
        for chunk in items.chunks(MAX_KEYS_PER_CALL) {
            let mut pending: Vec<&T> = chunk.iter().collect();
            for attempt in 1..=ATTEMPTS {
                match self
                    .send(self.http.request(method.clone(), &url).json(&pending))
                    .await
                {
                    Ok(unsuccessful) if unsuccessful.is_empty() => break,
                    Ok(unsuccessful) => {
                        pending.retain(|item| unsuccessful.iter().any(|key| key == key_of(item)))
                    }
                    Err(err) if attempt == ATTEMPTS => return Err(err),
                    Err(err) => {
                        tracing::debug!(error = %err, attempt, path, "KV call failed; retrying")
                    }
                }
                if attempt == ATTEMPTS {
                    return Err(PublishError::Kv(format!(
                        "{} keys not processed by {path}",
                        pending.len()
                    )));
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Ok(())
    }

    /// Sends one call; the keys Cloudflare says it did not process.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<String>, PublishError> {
        let response = request
            .bearer_auth(&self.api_token)
            .send()
            .await
            .map_err(|err| PublishError::Kv(format!("request failed: {err}")))?;
        let status = response.status();
        let envelope: Envelope = response
            .json()
            .await
            .map_err(|err| PublishError::Kv(format!("HTTP {status}, unreadable answer: {err}")))?;
        if !status.is_success() || !envelope.success {
            let errors: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{} {}", e.code, e.message))
                .collect();
            return Err(PublishError::Kv(format!(
                "HTTP {status}: {}",
                errors.join("; ")
            )));
        }
        Ok(envelope
            .result
            .map(|result| result.unsuccessful_keys)
            .unwrap_or_default())
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt)
}
