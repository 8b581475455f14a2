//! Local telemetry delivery: an in-process channel drained into the database in batches,
//! with retries, standing in for the Cloudflare Queue and its consumer.

use std::sync::Arc;
use std::time::Duration;

use humanproof_edge::TelemetrySink;
use humanproof_protocol::TelemetryEvent;
use humanproof_protocol::telemetry::MAX_BATCH_EVENTS;
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::service::usage;
use crate::state::AppState;

/// The edge's side of the channel.
#[derive(Debug, Clone)]
pub struct ChannelSink(UnboundedSender<TelemetryEvent>);

impl ChannelSink {
    /// A sink and the receiver [`deliver_telemetry`] drains.
    pub fn new() -> (Self, UnboundedReceiver<TelemetryEvent>) {
        let (sender, receiver) = unbounded_channel();
        (Self(sender), receiver)
    }
}

impl TelemetrySink for ChannelSink {
    async fn emit(&self, event: TelemetryEvent) {
        if self.0.send(event).is_err() {
            tracing::warn!("telemetry dropped: the delivery task has stopped");
        }
    }
}

/// Stores events in batches; a failed batch is kept and retried, never dropped. Signals
/// `stored` after each batch so usage gates reach the edge promptly.
pub async fn deliver_telemetry(
    mut events: UnboundedReceiver<TelemetryEvent>,
    state: AppState,
    stored: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH_EVENTS);
    while events.recv_many(&mut batch, MAX_BATCH_EVENTS).await > 0 {
        let mut backoff = Duration::from_millis(200);
        loop {
            match usage::record_telemetry(&state, &batch).await {
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, events = batch.len(), "telemetry batch not stored; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        batch.clear();
        stored.notify_one();
    }
}
