//! Serves the edge logic natively with axum, on the same paths as the Worker.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Response, Uri};
use humanproof_edge::edge::MAX_BODY;
use humanproof_edge::memory::{MemoryClaims, MemorySnapshots};
use humanproof_edge::{Edge, EdgeRequest, RequestBody};

use super::telemetry_sink::ChannelSink;
use crate::clock::Clock;

/// The edge as the local server wires it.
pub type LocalEdge = Edge<MemorySnapshots, MemoryClaims, ChannelSink>;

/// Every path goes to the edge logic, which does its own routing (as in the Worker).
pub fn edge_router(edge: Arc<LocalEdge>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(edge)
}

async fn handle(
    State(edge): State<Arc<LocalEdge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response<Body> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let client_ip = peer.ip().to_string();
    let response = edge
        .handle(EdgeRequest {
            method: method.as_str(),
            path: uri.path(),
            origin: header("origin"),
            client_ip: Some(&client_ip),
            user_agent: header("user-agent"),
            body: body.as_deref().map_or(RequestBody::TooLarge, RequestBody::Read),
            now_ms: Clock::system().now_ms(),
        })
        .await;
    let mut builder = Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(response.body)).expect("edge responses have valid headers")
}
