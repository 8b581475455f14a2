//! `GET /metrics`: Prometheus' text format, on the operator's own listen address
//! (`HUMANPROOF_METRICS_LISTEN`), never on the public one.

use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::db::projects;
use crate::metrics::header;
use crate::state::AppState;

/// Longest a scrape waits for the database's figures; without them it still answers, with
/// `humanproof_database_up 0`, since an outage is when the rest matters most.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The counters, then what is read now: the publisher's backlog and the connection pools.
pub async fn export(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = state.metrics.render();
    let backlog = tokio::time::timeout(DATABASE_TIMEOUT, projects::publish_backlog(&state.db))
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|read| read.map_err(|err| err.to_string()));
    header(
        &mut out,
        "humanproof_database_up",
        "gauge",
        "1 when the database answered this scrape within two seconds.",
    );
    let _ = writeln!(out, "humanproof_database_up {}", u8::from(backlog.is_ok()));
    match backlog {
        Ok(backlog) => {
            header(
                &mut out,
                "humanproof_publisher_backlog",
                "gauge",
                "Snapshot changes the edge does not have yet: changed projects and deletions.",
            );
            let _ = writeln!(
                out,
                "humanproof_publisher_backlog{{change=\"project\"}} {}\nhumanproof_publisher_backlog{{change=\"deletion\"}} {}",
                backlog.projects, backlog.deletions
            );
        }
        Err(err) => tracing::warn!(error = %err, "metrics: the database's figures are missing"),
    }
    header(
        &mut out,
        "humanproof_db_pool_connections",
        "gauge",
        "Database connections open, by pool (main; writer on SQLite) and state (idle or in_use).",
    );
    for (name, pool) in state.db.pools() {
        let idle = pool.num_idle();
        let in_use = (pool.size() as usize).saturating_sub(idle);
        let _ = writeln!(
            out,
            "humanproof_db_pool_connections{{pool=\"{name}\",state=\"idle\"}} {idle}\nhumanproof_db_pool_connections{{pool=\"{name}\",state=\"in_use\"}} {in_use}",
        );
    }
    header(
        &mut out,
        "humanproof_db_pool_max_connections",
        "gauge",
        "The most connections each pool opens.",
    );
    for (name, pool) in state.db.pools() {
        let _ = writeln!(
            out,
            "humanproof_db_pool_max_connections{{pool=\"{name}\"}} {}",
            pool.options().get_max_connections()
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
