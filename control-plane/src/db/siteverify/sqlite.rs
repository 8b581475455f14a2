//! SQLite's siteverify writer: a thread with a connection of its own that writes each group
//! of claims in one transaction without leaving the thread.
//!
//! Through sqlx, each of a group's statements (begin, claims, analytics, usage, commit) is a
//! hand-off to the connection's thread and back; on two busy cores each one waits 60–150 µs
//! for a core, and the group's five made the writer the bottleneck. Here a group costs one
//! hand-off, the one that brings it to this thread.

use std::sync::LazyLock;

use rusqlite::{Connection, TransactionBehavior};
use sqlx::AnyPool;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::{
    Claim, ClaimRequest, Group, IF_UNCLAIMED, INSERT_CLAIM, INSERT_VERIFICATION, Job, MAX_GROUP,
    VerificationRecord, claim_answers, usage_of,
};
use crate::db::telemetry::ADD_USAGE;
use crate::db::{ConnectError, SQLITE_PRAGMAS};

/// Claims one token.
static CLAIM: LazyLock<String> =
    LazyLock::new(|| format!("{INSERT_CLAIM} ($1, $2, $3, $4, $5) {IF_UNCLAIMED}"));

/// Stores one answer's analytics row.
static VERIFICATION: LazyLock<String> =
    LazyLock::new(|| format!("{INSERT_VERIFICATION} ($1, $2, $3, $4, $5)"));

/// Opens the writer's connection to the database at `url` and starts its thread, which ends
/// once `queue`'s senders are gone.
///
/// Every group is written while holding `writer`'s one connection: the lock the rest of the
/// control plane's SQLite writes queue for, first come, first served. Without it this
/// connection and that one would meet at SQLite's file lock, whose busy handler sleeps.
pub(super) fn start(
    url: &str,
    writer: AnyPool,
    queue: mpsc::Receiver<Job>,
    alive: mpsc::Sender<()>,
) -> Result<(), ConnectError> {
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
    let mut connection = Connection::open(options.get_filename())?;
    for pragma in SQLITE_PRAGMAS {
        connection.execute_batch(pragma)?;
    }
    let runtime = Handle::current();
    std::thread::Builder::new()
        .name("siteverify-writer".to_owned())
        .spawn(move || {
            write_groups(&mut connection, &writer, queue, &runtime);
            // Closed before the writer counts as ended: the last connection to close removes
            // the write-ahead log.
            drop(connection);
            drop(alive);
        })
        .map_err(ConnectError::Thread)?;
    Ok(())
}

/// Takes what is waiting (at most [`MAX_GROUP`]), writes it in one transaction, answers
/// every job, repeats; returns once the queue is closed and empty.
fn write_groups(
    connection: &mut Connection,
    writer: &AnyPool,
    mut queue: mpsc::Receiver<Job>,
    runtime: &Handle,
) {
    // Releasing the writers' connection returns it to the pool from a task of the runtime.
    let _runtime = runtime.enter();
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    while runtime.block_on(queue.recv_many(&mut jobs, MAX_GROUP)) > 0 {
        let mut group = Group::of(jobs.drain(..));
        if group.stop {
            queue.close();
        }
        if group.is_empty() {
            continue;
        }
        let records = std::mem::take(&mut group.records);
        let written = match runtime.block_on(writer.acquire()) {
            Ok(_lock) => {
                write_group(connection, &group.claims, records).map_err(|err| err.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        group.answer(written);
    }
}

/// One group in one transaction, as PostgreSQL's writer does it, one statement per row:
/// within the thread, a statement costs microseconds. A token asked about twice in the
/// group finds the first request's row the second time, as it would a moment later.
fn write_group(
    connection: &mut Connection,
    claims: &[ClaimRequest],
    mut records: Vec<VerificationRecord>,
) -> rusqlite::Result<Vec<Claim>> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(claims.len());
    {
        let mut claim = tx.prepare_cached(&CLAIM)?;
        let mut first_use = tx.prepare_cached(
            "SELECT idempotency_key, response FROM siteverify_claims WHERE token_id = $1",
        )?;
        for request in claims {
            let outcome = if claim.execute(request.row())? == 1 {
                Claim::Fresh
            } else {
                // Claimed before; a row gone since fails the group rather than succeed.
                let (idempotency_key, response) = first_use
                    .query_row([&request.token_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
                Claim::Used {
                    idempotency_key,
                    response,
                }
            };
            outcomes.push(outcome);
        }
    }
    records.extend(claim_answers(claims, &outcomes));
    {
        let mut verification = tx.prepare_cached(&VERIFICATION)?;
        for record in &records {
            verification.execute(record.row())?;
        }
        let mut add_usage = tx.prepare_cached(ADD_USAGE)?;
        for ((project_id, month), usage) in usage_of(&records) {
            add_usage.raw_bind_parameter(1, project_id)?;
            add_usage.raw_bind_parameter(2, month)?;
            for (index, count) in usage.columns().into_iter().enumerate() {
                add_usage.raw_bind_parameter(index + 3, count)?;
            }
            add_usage.raw_execute()?;
        }
    }
    tx.commit()?;
    Ok(outcomes)
}
