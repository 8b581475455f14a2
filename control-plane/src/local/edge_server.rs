//! Serves the edge logic natively with axum, on the same paths as the Worker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Response, Uri};
use axum::routing::get;
use humanproof_edge::edge::MAX_BODY;
use humanproof_edge::memory::{MemoryClaims, MemorySnapshots, MemoryVisitors};
use humanproof_edge::risk::ClientHeaders;
use humanproof_edge::{Edge, EdgeRequest, RequestBody};

use super::geo::GeoLookup;
use super::telemetry_sink::ChannelSink;
use crate::clock::Clock;
use crate::publish::InProcessEdge;

/// The edge as the local server wires it.
pub type LocalEdge = Edge<MemorySnapshots, MemoryClaims, MemoryVisitors, ChannelSink>;

impl InProcessEdge for LocalEdge {
    fn snapshots(&self) -> &MemorySnapshots {
        Edge::snapshots(self)
    }
}

/// What the local edge's handler needs.
#[derive(Clone)]
struct EdgeState {
    edge: Arc<LocalEdge>,
    geo: Arc<GeoLookup>,
}

/// The widget's files, served next to the edge as a CDN would serve them, and every other
/// path to the edge logic, which does its own routing (as in the Worker). `geo` gives each
/// request's country and network, as Cloudflare's `request.cf` does.
pub fn edge_router(edge: Arc<LocalEdge>, widget_dir: PathBuf, geo: Arc<GeoLookup>) -> Router {
    let widget_file = |name: &'static str, content_type: &'static str| {
        let path = widget_dir.join(name);
        get(move || serve_widget_file(path.clone(), content_type))
    };
    Router::new()
        .route(
            "/widget.js",
            widget_file("widget.js", "text/javascript; charset=utf-8"),
        )
        .route(
            "/solver.wasm",
            widget_file("solver.wasm", "application/wasm"),
        )
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(EdgeState { edge, geo })
}

async fn serve_widget_file(path: PathBuf, content_type: &'static str) -> Response<Body> {
    let builder = Response::builder()
        // Any site may embed the widget; the edge's own CORS rules guard the API.
        .header("access-control-allow-origin", "*")
        .header("cache-control", "no-cache");
    match tokio::fs::read(&path).await {
        Ok(bytes) => builder
            .header("content-type", content_type)
            .body(Body::from(bytes)),
        Err(_) => builder
            .status(404)
            .header("content-type", "text/plain")
            .body(Body::from(format!(
                "{} is missing: build the widget first (./dev run does)",
                path.display()
            ))),
    }
    .expect("static headers are valid")
}

async fn handle(
    State(EdgeState { edge, geo }): State<EdgeState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response<Body> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let client_ip = peer.ip().to_string();
    let network = geo.lookup(peer.ip());
    let response = edge
        .handle(EdgeRequest {
            method: method.as_str(),
            path: uri.path(),
            origin: header("origin"),
            client_ip: Some(&client_ip),
            headers: ClientHeaders::from_lookup(header),
            network: &network,
            body: body
                .as_deref()
                .map_or(RequestBody::TooLarge, RequestBody::Read),
            now_ms: Clock::system().now_ms(),
        })
        .await;
    let mut builder = Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::from(response.body))
        .expect("edge responses have valid headers")
}
