//! Serving the control plane. `humanproof serve`, the all-in-one `humanproof dev` server and
//! the test harness all go through [`serve`], so what the tests run is the production wiring:
//! peer addresses for per-client limits, the middleware stack, graceful shutdown and the
//! background jobs (retention, snapshot publishing, VAT check retries, contact messages not
//! forwarded yet). [`serve_metrics`] serves `/metrics` on the operator's own address.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, State};
use axum::http::{HeaderName, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::db::{retention, stats};
use crate::metrics::Metrics;
use crate::router::{app, metrics_app};
use crate::state::AppState;

/// How long one request may take, body included: a client that trickles its body in is cut
/// off here instead of holding a connection and a task forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection may take to send a request's headers, counted from when the server
/// is ready for them (a new connection, or an idle one after its last answer): a client that
/// opens connections and sends nothing, or trickles its headers in, is cut off here.
/// [`REQUEST_TIMEOUT`] starts only once the headers are in.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopping server waits for the database's connections to close.
const DB_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Serves the control plane on `listener` until `shutdown` resolves, then finishes the
/// requests in flight. The background jobs run for as long as the server does.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut jobs = vec![
        tokio::spawn(retention::apply_hourly(
            state.db.clone(),
            state.plans.clone(),
            state.clock.clone(),
            state.metrics.clone(),
        )),
        tokio::spawn(stats::roll_up_hourly(
            state.db.clone(),
            state.plans.clone(),
            state.clock.clone(),
            state.metrics.clone(),
        )),
        tokio::spawn(crate::service::vat::run_retries(state.clone())),
        tokio::spawn(state.publisher.clone().run(
            state.db.clone(),
            state.plans.clone(),
            state.clock.clone(),
            state.publish_wake.clone(),
            state.metrics.clone(),
        )),
        tokio::spawn(crate::service::billing::report_overage_periodically(
            state.clone(),
        )),
        tokio::spawn(crate::accounts::delete_due_accounts_hourly(state.clone())),
    ];
    if let Some(form) = &state.web.contact {
        jobs.push(tokio::spawn(crate::contact::forward_pending_periodically(
            state.db.clone(),
            state.mailer.clone(),
            form.clone(),
            state.clock.clone(),
        )));
    }
    let metrics = state.metrics.clone();
    let db = state.db.clone();
    serve_router(listener, with_middleware(app(state), metrics), shutdown).await;
    for job in jobs {
        job.abort();
    }
    // A connection still held (a /metrics scrape, a job not yet unwound) is waited for, but
    // not for ever: the process is stopping either way.
    if tokio::time::timeout(DB_CLOSE_TIMEOUT, db.close())
        .await
        .is_err()
    {
        tracing::warn!("the database did not close within {DB_CLOSE_TIMEOUT:?}");
    }
}

/// Serves `/metrics` on `listener` (the operator's address, apart from the public one) for as
/// long as the future runs: `humanproof serve` drops it when [`serve`] returns.
pub async fn serve_metrics(listener: TcpListener, state: AppState) {
    serve_router(listener, metrics_app(state), std::future::pending()).await;
}

/// Serves `router` over HTTP/1.1 on `listener` until `shutdown` resolves, then stops accepting
/// and waits for the connections' requests in flight. What axum::serve does, plus
/// [`HEADER_READ_TIMEOUT`]. Handlers see the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    wait_after_accept_error(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that hangs up, sends garbage or runs out the header deadline.
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// After a failed accept: a connection the peer dropped before it was accepted is nothing;
/// anything else (out of file descriptors, say) is logged and waited out for a second rather
/// than retried in a busy loop.
async fn wait_after_accept_error(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The layers every request passes: a request id (kept from a proxy, else minted) echoed in
/// the response, a trace span per request, its count and latency, the timeout, and gzip for
/// clients that ask.
fn with_middleware(router: Router, metrics: Metrics) -> Router {
    // Spans name the route template (`/orgs/{org}/projects`), never the raw URI: query
    // strings carry email and reset tokens. No IPs, user agents, cookies or bodies are
    // recorded anywhere in the span.
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!("request", method = %request.method(), route, request_id = id)
    });
    router
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(middleware::from_fn_with_state(metrics, count_request))
        .layer(SetRequestIdLayer::new(REQUEST_ID, RandomRequestId))
}

/// Counts the request by route template (never the raw path, which carries tokens and would
/// make a series per URL), method and status, with its latency; timeouts included.
async fn count_request(
    State(metrics): State<Metrics>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    metrics.request(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// 128 random bits, as for every other id here.
#[derive(Debug, Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        crate::secrets::new_id().parse().ok().map(RequestId::new)
    }
}

/// Binds `address`, naming it in the error.
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (is another instance running?)"))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
