//! How telemetry survives a control plane that is away for hours: where an event goes when
//! the queue refuses it, and how long a delivery that failed waits before the next try. The
//! Cloudflare shell applies both; they are here, in plain Rust, so that tests can run them.
//!
//! Events reach the control plane through the telemetry queue, whose consumer posts each batch
//! and retries it on failure; after its last retry a message moves to the dead-letter queue,
//! whose consumer (the same code) delivers it the same way. The control plane stores each
//! event once by id, so a delivery that is repeated, or re-driven from the dead-letter queue
//! after it had arrived, counts nothing twice.
//!
//! As in [`crate::stores`], futures carry no `Send` bound: wasm32 futures are not `Send`.
#![allow(async_fn_in_trait)]

use humanproof_protocol::TelemetryEvent;

use crate::stores::StoreError;

/// A queue the edge hands events to; a send can fail.
pub trait EventQueue {
    /// Queues `event`; an error means it was not queued.
    async fn send(&self, event: &TelemetryEvent) -> Result<(), StoreError>;
}

/// Where [`enqueue_or_spill`] put an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Into the telemetry queue.
    Queued,
    /// Into the spill queue (the dead-letter queue), since the telemetry queue refused it
    /// with this error.
    Spilled(StoreError),
    /// Nowhere: both queues refused it, with these errors.
    Lost(StoreError, StoreError),
}

/// Queues `event` in `queue`, or in `spill` when `queue` refuses it, so that one queue's
/// failure loses nothing.
pub async fn enqueue_or_spill(
    queue: &impl EventQueue,
    spill: &impl EventQueue,
    event: &TelemetryEvent,
) -> Enqueued {
    let Err(refused) = queue.send(event).await else {
        return Enqueued::Queued;
    };
    match spill.send(event).await {
        Ok(()) => Enqueued::Spilled(refused),
        Err(also_refused) => Enqueued::Lost(refused, also_refused),
    }
}

/// How long a failed delivery waits before the next try: as long again as the message has
/// waited since it was sent, within bounds. That doubles the wait at each failure
/// (exponential backoff) without counting attempts, which workers-rs 0.8 does not expose
/// (`Message.attempts` has no binding there), and a message moved to the dead-letter queue
/// with its first timestamp, already old, waits the longest at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The shortest wait, seconds.
    pub min_seconds: u32,
    /// The longest wait, seconds; above [`MAX_RETRY_DELAY_SECONDS`] that limit applies.
    pub max_seconds: u32,
}

/// The longest retry delay Cloudflare Queues accept: 12 hours.
pub const MAX_RETRY_DELAY_SECONDS: u32 = 12 * 60 * 60;

impl RetryPolicy {
    /// What `wrangler.toml` sets: 10 seconds at first, an hour at most.
    pub const PRODUCTION: Self = Self {
        min_seconds: 10,
        max_seconds: 3600,
    };

    /// The wait before the next try of a message sent `age_ms` ago.
    pub fn delay_seconds(self, age_ms: i64) -> u32 {
        let age_seconds = u32::try_from(age_ms.max(0) / 1000).unwrap_or(u32::MAX);
        let longest = self.max_seconds.min(MAX_RETRY_DELAY_SECONDS);
        age_seconds.clamp(self.min_seconds.min(longest), longest)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A queue that keeps what it is sent, or refuses everything.
    #[derive(Default)]
    struct TestQueue {
        refuses: bool,
        sent: RefCell<Vec<String>>,
    }

    impl EventQueue for TestQueue {
        async fn send(&self, event: &TelemetryEvent) -> Result<(), StoreError> {
            if self.refuses {
                return Err(StoreError("queue unavailable".into()));
            }
            self.sent.borrow_mut().push(event.id.clone());
            Ok(())
        }
    }

    fn event() -> TelemetryEvent {
        let wire = r#"{"id": "00000000000000000000000000000000", "kind": "challenge_issued",
                       "at": 0, "project_id": "project", "site_key": "site"}"#;
        serde_json::from_str(wire).unwrap()
    }

    /// How long a message first sent at age 0 keeps being tried over `retries` failed
    /// deliveries in a row, seconds: the outage one queue rides out.
    fn budget_seconds(policy: RetryPolicy, retries: u32) -> u64 {
        (0..retries).fold(0u64, |waited, _| {
            let age_ms = i64::try_from(waited * 1000).unwrap();
            waited + u64::from(policy.delay_seconds(age_ms))
        })
    }

    fn refusing() -> TestQueue {
        TestQueue {
            refuses: true,
            ..TestQueue::default()
        }
    }

    #[tokio::test]
    async fn an_event_the_queue_refuses_goes_to_the_spill_queue_and_is_lost_only_if_both_refuse() {
        let (queue, spill) = (TestQueue::default(), TestQueue::default());
        assert_eq!(
            enqueue_or_spill(&queue, &spill, &event()).await,
            Enqueued::Queued
        );
        assert_eq!((queue.sent.take().len(), spill.sent.take().len()), (1, 0));

        let (queue, spill) = (refusing(), TestQueue::default());
        let spilled = enqueue_or_spill(&queue, &spill, &event()).await;
        assert_eq!(
            spilled,
            Enqueued::Spilled(StoreError("queue unavailable".into()))
        );
        assert_eq!(spill.sent.take(), vec![event().id]);

        let lost = enqueue_or_spill(&refusing(), &refusing(), &event()).await;
        assert!(matches!(lost, Enqueued::Lost(..)), "{lost:?}");
    }

    #[test]
    fn the_wait_doubles_with_the_messages_age_within_bounds() {
        let policy = RetryPolicy::PRODUCTION;
        assert_eq!(policy.delay_seconds(0), 10);
        assert_eq!(
            policy.delay_seconds(-5_000),
            10,
            "a clock behind the sender's"
        );
        assert_eq!(policy.delay_seconds(10_000), 10);
        assert_eq!(policy.delay_seconds(20_000), 20);
        assert_eq!(policy.delay_seconds(600_000), 600);
        assert_eq!(policy.delay_seconds(86_400_000), 3600);
        assert_eq!(policy.delay_seconds(i64::MAX), 3600);
        // Retries at 10 s, 20 s, 40 s, ... of age: 10 s, 10 s, 20 s, 40 s apart until the hour.
        let ages: Vec<u64> = (1..=4).map(|n| budget_seconds(policy, n)).collect();
        assert_eq!(ages, [10, 20, 40, 80]);
        // Settings beyond Cloudflare's limit, or crossed, still give a wait it accepts.
        let wild = RetryPolicy {
            min_seconds: 100_000,
            max_seconds: 200_000,
        };
        assert_eq!(wild.delay_seconds(0), MAX_RETRY_DELAY_SECONDS);
        let crossed = RetryPolicy {
            min_seconds: 60,
            max_seconds: 30,
        };
        assert_eq!(crossed.delay_seconds(0), 30);
    }

    #[test]
    fn one_queue_rides_out_days_of_outage_with_the_retries_wrangler_toml_sets() {
        // wrangler.toml: max_retries = 100 on each queue; the README quotes these figures.
        let policy = RetryPolicy::PRODUCTION;
        let budget = budget_seconds(policy, 100);
        assert_eq!(budget / 3600, 91, "about 91 hours per queue: {budget} s");
        // An hour apart from the eleventh retry on: after recovery, delivery within an hour.
        assert_eq!(budget - budget_seconds(policy, 99), 3600);
        // A message moved to the dead-letter queue with its first timestamp waits an hour at
        // once: its 100 retries there last 100 hours.
        assert_eq!(
            policy.delay_seconds(i64::try_from(budget * 1000).unwrap()),
            3600
        );
    }
}
