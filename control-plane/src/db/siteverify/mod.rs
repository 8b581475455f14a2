//! Siteverify state: single-use claims on verification tokens (with the stored answer that
//! makes idempotent retries possible) and verification analytics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::columns::rows_of_placeholders;
use super::telemetry::{Usage, add_usage};
use super::{Backend, Db, month_of};

/// The Turnstile code of an answer about a token verified before.
pub const DUPLICATE: &str = "timeout-or-duplicate";

/// Result of trying to claim a verification token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: the answer was stored.
    Fresh,
    /// Used before; the first caller's idempotency key and answer.
    Used {
        /// The key the first caller sent, if any.
        idempotency_key: Option<String>,
        /// The JSON answer given then; empty if that caller sent no key, since nobody can be
        /// given it again.
        response: String,
    },
}

impl Claim {
    /// Whether the caller who sent `idempotency_key` gets a success: on first use, or on a
    /// retry that repeats the first call's key (which gets the first answer again).
    pub fn succeeds_for(&self, idempotency_key: Option<&str>) -> bool {
        match self {
            Self::Fresh => true,
            Self::Used {
                idempotency_key: first,
                ..
            } => first.is_some() && first.as_deref() == idempotency_key,
        }
    }
}

/// A genuine token to claim for good, with the answer stored for idempotent retries (if the
/// caller sent a key) until `expires_at`.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The verification token's id.
    pub token_id: String,
    /// Its project.
    pub project_id: String,
    /// The caller's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// The JSON answer to give again to a retry with the same key; `None` without a key.
    pub response: Option<String>,
    /// When the token expires, Unix ms: the claim is kept until then.
    pub expires_at: i64,
    /// When the call came, Unix ms, for its analytics row.
    pub at: i64,
}

/// One siteverify answer as verification analytics (never a protected attempt).
#[derive(Debug, Clone)]
pub struct VerificationRecord {
    /// The project asked about.
    pub project_id: String,
    /// When, Unix ms.
    pub at: i64,
    /// The Turnstile error code, or `None` for a success.
    pub error_code: Option<String>,
}

mod sqlite;

/// Most jobs one transaction takes: enough to amortise a commit's fsync over a burst, few
/// enough that one transaction stays short.
const MAX_GROUP: usize = 256;

/// Writing tasks on PostgreSQL: commits overlap, and the pool (8) keeps room for readers.
const POSTGRES_WRITERS: usize = 4;

/// What the writer is asked to do; each is answered once its group is committed.
enum Job {
    /// Claim a token, and count the answer the claim leads to.
    Claim(ClaimRequest, oneshot::Sender<Result<Claim, sqlx::Error>>),
    /// Count an answer given without a claim (a bad or expired token).
    Record(VerificationRecord, oneshot::Sender<Result<(), sqlx::Error>>),
    /// Take no more jobs: write the ones queued, then end (SQLite's writer only).
    Stop,
}

/// Siteverify's writes, committed in groups: every request waiting when a writer is free
/// goes into its next transaction, so a burst of verifications pays for one commit instead
/// of two each, and no claim is answered before it is committed. Reads do not wait for it:
/// they go to the pool directly.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// SQLite's: closed once its writer thread has ended (it holds the one sender, and sends
    /// nothing).
    sqlite_ended: Option<Arc<Mutex<mpsc::Receiver<()>>>>,
}

impl Writer {
    /// Starts the writers; they end when the last [`Writer`] is dropped.
    ///
    /// SQLite takes one writer at a time, so one: a thread of its own with its own
    /// connection to `url`, which runs a whole group in one go (through sqlx, every statement
    /// would be a hand-off to its connection's thread and back). It writes while holding
    /// `writer`'s connection, the lock every other SQLite write queues for. PostgreSQL
    /// commits several transactions at once (and flushes their log together), so a few tasks
    /// on `writer`, each taking its group from the same queue.
    pub(super) fn start(
        url: &str,
        writer: AnyPool,
        backend: Backend,
    ) -> Result<Self, super::ConnectError> {
        let (jobs, queue) = mpsc::channel(4 * MAX_GROUP);
        let sqlite_ended = match backend {
            Backend::Sqlite => {
                let (alive, ended) = mpsc::channel(1);
                sqlite::start(url, writer, queue, alive)?;
                Some(Arc::new(Mutex::new(ended)))
            }
            Backend::Postgres => {
                let queue = Arc::new(Mutex::new(queue));
                for _ in 0..POSTGRES_WRITERS {
                    tokio::spawn(write_groups(writer.clone(), queue.clone()));
                }
                None
            }
        };
        Ok(Self { jobs, sqlite_ended })
    }

    /// Claims a token for good and counts the answer. `Fresh` only once the claim is
    /// committed; an error (the database is unreachable, say) claimed nothing the caller may
    /// count on.
    pub async fn claim(&self, request: ClaimRequest) -> Result<Claim, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Claim(request, reply), answer).await
    }

    /// Counts an answer that claimed nothing.
    pub async fn record(&self, record: VerificationRecord) -> Result<(), sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Record(record, reply), answer).await
    }

    /// On SQLite: takes no more jobs, writes the ones queued and waits for the writer thread
    /// to close its connection, so that [`super::Db::close`] leaves none open; what is sent
    /// afterwards fails with `PoolClosed`. PostgreSQL's writers hold a connection only while
    /// writing a group, which closing the pool waits for.
    pub async fn close(&self) {
        let Some(ended) = &self.sqlite_ended else {
            return;
        };
        // Refused once the queue is closed: a close before this one stopped the writer.
        let _ = self.jobs.send(Job::Stop).await;
        // `None` once the thread has dropped its sender.
        ended.lock().await.recv().await;
    }

    async fn send<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// The jobs one transaction writes, with the replies owed for them.
#[derive(Default)]
struct Group {
    claims: Vec<ClaimRequest>,
    claim_replies: Vec<oneshot::Sender<Result<Claim, sqlx::Error>>>,
    records: Vec<VerificationRecord>,
    record_replies: Vec<oneshot::Sender<Result<(), sqlx::Error>>>,
    /// A [`Job::Stop`] came with it: the queue takes no more jobs.
    stop: bool,
}

impl Group {
    fn of(jobs: impl Iterator<Item = Job>) -> Self {
        let mut group = Self::default();
        for job in jobs {
            match job {
                Job::Claim(request, reply) => {
                    group.claims.push(request);
                    group.claim_replies.push(reply);
                }
                Job::Record(record, reply) => {
                    group.records.push(record);
                    group.record_replies.push(reply);
                }
                Job::Stop => group.stop = true,
            }
        }
        group
    }

    /// Nothing to write (a group of a [`Job::Stop`] alone).
    fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.records.is_empty()
    }

    /// Answers every job: with its claim's outcome (in the order of `claims`) once the
    /// group is committed, or with an error, so nobody is told of a claim that was not.
    fn answer<E: std::fmt::Display>(self, written: Result<Vec<Claim>, E>) {
        match written {
            Ok(outcomes) => {
                for (reply, outcome) in self.claim_replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                for reply in self.record_replies {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(err) => {
                let claims = self.claims.len();
                tracing::error!(error = %err, claims, "siteverify group failed");
                let failed = || sqlx::Error::Protocol(format!("siteverify group failed: {err}"));
                for reply in self.claim_replies {
                    let _ = reply.send(Err(failed()));
                }
                for reply in self.record_replies {
                    let _ = reply.send(Err(failed()));
                }
            }
        }
    }
}

/// The analytics of the answers claims led to: a success, or a duplicate.
fn claim_answers<'a>(
    claims: &'a [ClaimRequest],
    outcomes: &'a [Claim],
) -> impl Iterator<Item = VerificationRecord> + 'a {
    claims.iter().zip(outcomes).map(|(request, outcome)| {
        let succeeded = outcome.succeeds_for(request.idempotency_key.as_deref());
        VerificationRecord {
            project_id: request.project_id.clone(),
            at: request.at,
            error_code: (!succeeded).then(|| DUPLICATE.to_owned()),
        }
    })
}

/// A PostgreSQL writing task: takes what is waiting (at most [`MAX_GROUP`]), writes it in
/// one transaction, answers every job, repeats.
async fn write_groups(pool: AnyPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    while queue.lock().await.recv_many(&mut jobs, MAX_GROUP).await > 0 {
        let mut group = Group::of(jobs.drain(..));
        let written = write_group(&pool, &group.claims, std::mem::take(&mut group.records)).await;
        group.answer(written);
    }
}

/// One group in one transaction: the claims in one statement, then the analytics of every
/// answer, summed per project and month. Outcomes come back in the order of `claims`.
async fn write_group(
    pool: &AnyPool,
    claims: &[ClaimRequest],
    mut records: Vec<VerificationRecord>,
) -> Result<Vec<Claim>, sqlx::Error> {
    let backend = Backend::Postgres;
    let mut tx = super::begin_write(pool, backend).await?;
    let outcomes = claim_all(&mut tx, backend, claims).await?;
    records.extend(claim_answers(claims, &outcomes));
    record_in(&mut tx, backend, &records).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Claims every token of a group: one multi-row INSERT of the first request for each token,
/// in token order, then one read of the answers stored for the tokens claimed before. A
/// token asked about twice in the group is `Used` the second time, as it would be a moment
/// later.
///
/// Token order is what keeps PostgreSQL's writers apart: two groups claiming the same tokens
/// each wait for the other's uncommitted rows, and in different orders they would wait in a
/// cycle, which PostgreSQL ends by failing one group (every call in it).
async fn claim_all(
    tx: &mut sqlx::AnyConnection,
    backend: Backend,
    claims: &[ClaimRequest],
) -> Result<Vec<Claim>, sqlx::Error> {
    // The first request for each token, by arrival, in token order.
    let mut firsts: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, request) in claims.iter().enumerate() {
        firsts.entry(&request.token_id).or_insert(index);
    }
    if firsts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{INSERT_CLAIM} {} {IF_UNCLAIMED} RETURNING token_id",
        rows_of_placeholders(backend, firsts.len(), 5)
    );
    // Kept prepared, one statement per group size (sqlx keeps a connection's last 100): under
    // load, groups come in the few sizes the callers in flight allow.
    let mut insert = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
    for request in firsts.values().map(|&index| &claims[index]) {
        let (token_id, project_id, idempotency_key, response, expires_at) = request.row();
        insert = insert
            .bind(token_id)
            .bind(project_id)
            .bind(idempotency_key)
            .bind(response)
            .bind(expires_at);
    }
    let claimed: HashSet<String> = insert.fetch_all(&mut *tx).await?.into_iter().collect();

    // What the first use of each token claimed before stored: its key and answer.
    let mut stored: HashMap<String, Claim> = HashMap::new();
    let before: Vec<&str> = firsts
        .keys()
        .copied()
        .filter(|token_id| !claimed.contains(*token_id))
        .collect();
    if !before.is_empty() {
        let sql = format!(
            "SELECT token_id, idempotency_key, response FROM siteverify_claims \
             WHERE token_id IN {}",
            rows_of_placeholders(backend, 1, before.len())
        );
        let mut select =
            sqlx::query_as::<_, (String, Option<String>, String)>(sqlx::AssertSqlSafe(sql))
                .persistent(false);
        for token_id in &before {
            select = select.bind(*token_id);
        }
        for (token_id, idempotency_key, response) in select.fetch_all(&mut *tx).await? {
            let used = Claim::Used {
                idempotency_key,
                response,
            };
            stored.insert(token_id, used);
        }
    }

    claims
        .iter()
        .enumerate()
        .map(|(index, request)| {
            let first = firsts[request.token_id.as_str()];
            if !claimed.contains(&request.token_id) {
                // Claimed before and read back above; a row gone since is an error, not a
                // success.
                stored
                    .get(&request.token_id)
                    .cloned()
                    .ok_or(sqlx::Error::RowNotFound)
            } else if first == index {
                Ok(Claim::Fresh)
            } else {
                Ok(Claim::Used {
                    idempotency_key: claims[first].idempotency_key.clone(),
                    response: claims[first].response.clone().unwrap_or_default(),
                })
            }
        })
        .collect()
}

/// A claim's row, followed by the values of one or more rows, five each as
/// [`ClaimRequest::row`] gives them.
const INSERT_CLAIM: &str = "INSERT INTO siteverify_claims \
     (token_id, project_id, idempotency_key, response, expires_at) VALUES";

/// Follows [`INSERT_CLAIM`]'s values: a token claimed before keeps its first row.
const IF_UNCLAIMED: &str = "ON CONFLICT (token_id) DO NOTHING";

/// A verification's analytics row, followed by the values of one or more rows, five each as
/// [`VerificationRecord::row`] gives them.
const INSERT_VERIFICATION: &str =
    "INSERT INTO verification_events (id, project_id, at, success, error_code) VALUES";

impl ClaimRequest {
    /// The values of its row after [`INSERT_CLAIM`].
    fn row(&self) -> (&str, &str, Option<&str>, &str, i64) {
        (
            &self.token_id,
            &self.project_id,
            self.idempotency_key.as_deref(),
            self.response.as_deref().unwrap_or_default(),
            self.expires_at,
        )
    }
}

impl VerificationRecord {
    /// The values of its row after [`INSERT_VERIFICATION`], with a new id.
    fn row(&self) -> (String, &str, i64, i64, Option<&str>) {
        (
            crate::secrets::new_id_at(self.at),
            &self.project_id,
            self.at,
            i64::from(self.error_code.is_none()),
            self.error_code.as_deref(),
        )
    }
}

/// Most verification rows one INSERT takes (five values each: well under either database's
/// limit on bound values).
const MAX_ROWS_PER_INSERT: usize = 1000;

/// Stores each answer's row and adds them to the month's verification count, per project.
async fn record_in(
    tx: &mut sqlx::AnyConnection,
    backend: Backend,
    records: &[VerificationRecord],
) -> Result<(), sqlx::Error> {
    for chunk in records.chunks(MAX_ROWS_PER_INSERT) {
        let sql = format!(
            "{INSERT_VERIFICATION} {}",
            rows_of_placeholders(backend, chunk.len(), 5)
        );
        // Kept prepared per size, as the claims' INSERT is.
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for record in chunk {
            let (id, project_id, at, success, error_code) = record.row();
            insert = insert
                .bind(id)
                .bind(project_id)
                .bind(at)
                .bind(success)
                .bind(error_code);
        }
        insert.execute(&mut *tx).await?;
    }
    for ((project_id, month), usage) in usage_of(records) {
        add_usage(&mut *tx, project_id, &month, usage).await?;
    }
    Ok(())
}

/// The verifications `records` add to each project's month, in (project, month) order: the
/// order telemetry ingest adds to the same rows in, so neither waits on the other in a cycle.
fn usage_of(records: &[VerificationRecord]) -> BTreeMap<(&str, String), Usage> {
    let mut usage: BTreeMap<(&str, String), Usage> = BTreeMap::new();
    for record in records {
        usage
            .entry((record.project_id.as_str(), month_of(record.at)))
            .or_default()
            .verifications += 1;
    }
    usage
}

/// Records siteverify answers as verification analytics in one transaction of their own (the
/// usage page's made-up traffic, tests); siteverify itself records through its [`Writer`].
pub async fn record_verifications(
    db: &Db,
    records: &[VerificationRecord],
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    record_in(&mut tx, db.backend(), records).await?;
    tx.commit().await
}
