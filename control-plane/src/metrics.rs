//! What operators scrape: Prometheus metrics, counted as the server works and written in
//! Prometheus' text format when `/metrics` is read (see [`crate::routes::metrics`], which adds
//! the figures read from the database at that moment).
//!
//! Written here rather than taken from a metrics crate: a few labelled counters and
//! histograms behind a mutex each are all this needs, and the text format is a page. Every
//! label has a bounded set of values (route templates, never raw paths; the standard
//! methods; Turnstile's error codes), so a hostile client cannot grow the registry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::Method;
use humanproof_protocol::TelemetryEvent;

/// Upper bounds (seconds) of the request latency buckets.
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) of the telemetry lag buckets: from an event at the edge to its
/// batch here, normally seconds, minutes after a queue backlog, hours or days after an
/// outage (the edge's queues keep trying for about a week).
const LAG_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0, 259200.0, 691200.0,
];

/// The process's counters; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Registry>);

#[derive(Debug, Default)]
struct Registry {
    routes: Mutex<BTreeMap<String, RouteStats>>,
    siteverify: Counters<String>,
    telemetry_batches: Counters<&'static str>,
    telemetry_events: Counters<&'static str>,
    telemetry_lag: Mutex<Option<Histogram>>,
    job_runs: Counters<(&'static str, &'static str)>,
    job_last_success: Mutex<BTreeMap<&'static str, f64>>,
}

/// One route template's answers by method and status, and their latency.
#[derive(Debug)]
struct RouteStats {
    answers: BTreeMap<(&'static str, u16), u64>,
    latency: Histogram,
}

/// A labelled counter family.
#[derive(Debug)]
struct Counters<K>(Mutex<BTreeMap<K, u64>>);

impl<K> Default for Counters<K> {
    fn default() -> Self {
        Self(Mutex::new(BTreeMap::new()))
    }
}

impl<K: Ord> Counters<K> {
    fn add(&self, key: K, by: u64) {
        *lock(&self.0).entry(key).or_default() += by;
    }

    /// Writes the family: its header, then a sample per key, labelled by `labels`.
    fn write(&self, out: &mut String, name: &str, help: &str, labels: impl Fn(&K) -> String) {
        header(out, name, "counter", help);
        for (key, count) in lock(&self.0).iter() {
            let _ = writeln!(out, "{name}{{{}}} {count}", labels(key));
        }
    }
}

/// Cumulative bucket counts, their sum and count, as Prometheus histograms are.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(first) = self.bounds.iter().position(|bound| value <= *bound) {
            self.buckets[first] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let trimmed = labels.trim_end_matches(',');
        let braces = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{{{trimmed}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// A background job's name, as the `job` label shows it.
#[derive(Debug, Clone, Copy)]
pub enum Job {
    /// Deleting what the retention rules say is due.
    Retention,
    /// Expiring plan windows (trials, grace periods).
    PlanWindows,
    /// Rolling events up into daily statistics.
    RollUp,
    /// Publishing snapshot changes to the edge.
    Publish,
    /// Deleting accounts closed 30 days ago.
    AccountDeletion,
}

impl Job {
    fn label(self) -> &'static str {
        match self {
            Self::Retention => "retention",
            Self::PlanWindows => "plan_windows",
            Self::RollUp => "roll_up",
            Self::Publish => "publish",
            Self::AccountDeletion => "account_deletion",
        }
    }
}

/// What one telemetry batch did, for [`Metrics::telemetry_batch`].
#[derive(Debug, Clone, Copy)]
pub enum BatchResult<'a> {
    /// Stored: how many events were new, repeated or for deleted projects, and the events
    /// themselves, whose times give the lag.
    Stored {
        /// Events stored for the first time.
        stored: usize,
        /// Events an earlier delivery stored.
        duplicates: usize,
        /// Events for projects that no longer exist.
        unknown_project: usize,
        /// The batch's events.
        events: &'a [TelemetryEvent],
        /// Now, Unix ms.
        now_ms: i64,
    },
    /// Refused: unsigned, badly signed, malformed or too large.
    Refused,
    /// The database failed; the edge's queue delivers the batch again.
    Failed,
}

impl Metrics {
    /// Counts one answered request: its route template (or `unmatched`), method and status,
    /// and how long the answer took.
    pub fn request(&self, route: &str, method: &Method, status: u16, took: Duration) {
        let mut routes = lock(&self.0.routes);
        // Looked up by `&str` first: the key is allocated once per route, not per request.
        let stats = match routes.get_mut(route) {
            Some(stats) => stats,
            None => routes
                .entry(route.to_owned())
                .or_insert_with(|| RouteStats {
                    answers: BTreeMap::new(),
                    latency: Histogram::new(&LATENCY_BUCKETS),
                }),
        };
        *stats
            .answers
            .entry((standard_method(method), status))
            .or_default() += 1;
        stats.latency.observe(took.as_secs_f64());
    }

    /// Counts one siteverify answer by outcome: `success`, `replayed` or the error code.
    pub fn siteverify(&self, outcome: &str) {
        self.0.siteverify.add(outcome.to_owned(), 1);
    }

    /// Counts one telemetry batch and, when it was stored, its events and their lag.
    pub fn telemetry_batch(&self, result: BatchResult<'_>) {
        let label = match result {
            BatchResult::Stored { .. } => "stored",
            BatchResult::Refused => "refused",
            BatchResult::Failed => "failed",
        };
        self.0.telemetry_batches.add(label, 1);
        let BatchResult::Stored {
            stored,
            duplicates,
            unknown_project,
            events,
            now_ms,
        } = result
        else {
            return;
        };
        let counts = &self.0.telemetry_events;
        counts.add("stored", stored as u64);
        counts.add("duplicate", duplicates as u64);
        counts.add("unknown_project", unknown_project as u64);
        let mut lag = lock(&self.0.telemetry_lag);
        let lag = lag.get_or_insert_with(|| Histogram::new(&LAG_BUCKETS));
        for event in events {
            lag.observe((now_ms - event.at).max(0) as f64 / 1000.0);
        }
    }

    /// Counts one run of a background job, and when it last succeeded.
    pub fn job_run(&self, job: Job, succeeded: bool, now_ms: i64) {
        let result = if succeeded { "ok" } else { "failed" };
        self.0.job_runs.add((job.label(), result), 1);
        if succeeded {
            lock(&self.0.job_last_success).insert(job.label(), now_ms as f64 / 1000.0);
        }
    }

    /// Everything counted so far, in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = &self.0;
        let routes = lock(&registry.routes);
        header(
            &mut out,
            "humanproof_http_requests_total",
            "counter",
            "Requests answered, by route template, method and status.",
        );
        for (route, stats) in routes.iter() {
            let route = escape(route);
            for ((method, status), count) in &stats.answers {
                let _ = writeln!(
                    out,
                    "humanproof_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
                );
            }
        }
        header(
            &mut out,
            "humanproof_http_request_duration_seconds",
            "histogram",
            "Time to answer a request (until its headers), by route template.",
        );
        for (route, stats) in routes.iter() {
            let labels = format!("route=\"{}\",", escape(route));
            stats.latency.write(
                &mut out,
                "humanproof_http_request_duration_seconds",
                &labels,
            );
        }
        drop(routes);
        registry.siteverify.write(
            &mut out,
            "humanproof_siteverify_total",
            "Siteverify answers, by outcome: success, replayed, or the error code.",
            |outcome| format!("outcome=\"{}\"", escape(outcome)),
        );
        registry.telemetry_batches.write(
            &mut out,
            "humanproof_telemetry_batches_total",
            "Telemetry batches from the edge: stored, refused (signature or shape) or failed (database; the queue redelivers).",
            |result| format!("result=\"{result}\""),
        );
        registry.telemetry_events.write(
            &mut out,
            "humanproof_telemetry_events_total",
            "Telemetry events in stored batches: stored, duplicate (delivered before) or unknown_project.",
            |result| format!("result=\"{result}\""),
        );
        header(
            &mut out,
            "humanproof_telemetry_lag_seconds",
            "histogram",
            "From an event at the edge to its batch stored here.",
        );
        lock(&registry.telemetry_lag)
            .get_or_insert_with(|| Histogram::new(&LAG_BUCKETS))
            .write(&mut out, "humanproof_telemetry_lag_seconds", "");
        registry.job_runs.write(
            &mut out,
            "humanproof_job_runs_total",
            "Background job runs, by job and result (ok or failed).",
            |(job, result)| format!("job=\"{job}\",result=\"{result}\""),
        );
        header(
            &mut out,
            "humanproof_job_last_success_timestamp_seconds",
            "gauge",
            "When each background job last succeeded, Unix seconds.",
        );
        for (job, at) in lock(&registry.job_last_success).iter() {
            let _ = writeln!(
                out,
                "humanproof_job_last_success_timestamp_seconds{{job=\"{job}\"}} {at}"
            );
        }
        out
    }
}

/// Writes a metric family's `HELP` and `TYPE` lines.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The method's name when it is a standard one, else `other`: a client may send any token as
/// a method, and each would be a new series.
fn standard_method(method: &Method) -> &'static str {
    static STANDARD: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    STANDARD
        .iter()
        .find(|standard| *standard == method)
        .map_or("other", Method::as_str)
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Counting goes on after a panic elsewhere held a lock: the counts are still counts.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.request("/siteverify", &Method::POST, 200, Duration::from_millis(3));
        metrics.request("/siteverify", &Method::POST, 200, Duration::from_millis(30));
        metrics.request(
            "unmatched",
            &Method::from_bytes(b"BREW").unwrap(),
            404,
            Duration::ZERO,
        );
        metrics.siteverify("success");
        let events: Vec<TelemetryEvent> = [1_000, 58_000, 60_000]
            .iter()
            .map(|at| {
                serde_json::from_value(serde_json::json!({
                    "id": format!("{at:032}"),
                    "kind": "challenge_issued",
                    "at": at,
                    "project_id": "p",
                    "site_key": "s",
                }))
                .unwrap()
            })
            .collect();
        metrics.telemetry_batch(BatchResult::Stored {
            stored: 2,
            duplicates: 1,
            unknown_project: 0,
            events: &events,
            now_ms: 60_000,
        });
        metrics.job_run(Job::Retention, true, 7_000);
        let text = metrics.render();
        for line in [
            "humanproof_http_requests_total{route=\"/siteverify\",method=\"POST\",status=\"200\"} 2",
            "humanproof_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 1",
            "humanproof_http_request_duration_seconds_bucket{route=\"/siteverify\",le=\"0.005\"} 1",
            "humanproof_http_request_duration_seconds_bucket{route=\"/siteverify\",le=\"0.05\"} 2",
            "humanproof_http_request_duration_seconds_bucket{route=\"/siteverify\",le=\"+Inf\"} 2",
            "humanproof_http_request_duration_seconds_count{route=\"/siteverify\"} 2",
            "humanproof_siteverify_total{outcome=\"success\"} 1",
            "humanproof_telemetry_events_total{result=\"stored\"} 2",
            "humanproof_telemetry_events_total{result=\"duplicate\"} 1",
            "humanproof_telemetry_lag_seconds_bucket{le=\"1\"} 1",
            "humanproof_telemetry_lag_seconds_bucket{le=\"5\"} 2",
            "humanproof_telemetry_lag_seconds_bucket{le=\"60\"} 3",
            "humanproof_telemetry_lag_seconds_count 3",
            "humanproof_job_runs_total{job=\"retention\",result=\"ok\"} 1",
            "humanproof_job_last_success_timestamp_seconds{job=\"retention\"} 7",
        ] {
            assert!(text.lines().any(|got| got == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
