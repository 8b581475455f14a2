//! The Cloudflare shell: `#[event]` entry points and the bindings behind the store traits.
//!
//! Everything here is glue; decisions live in [`crate::edge`]. Binding names are the ones
//! `wrangler.toml` declares.

use std::sync::Arc;

use futures_util::StreamExt as _;
use humanproof_protocol::preset::{Bucket, StartLimits};
use humanproof_protocol::snapshot::kv_key;
use humanproof_protocol::telemetry::{SIGNATURE_HEADER, sign_batch};
use humanproof_protocol::{MasterSecret, Network, SiteSnapshot, TelemetryBatch, TelemetryEvent};
use worker::{
    ByteStream, Context, Date, DurableObject, Env, Fetch, Headers, MessageBatch, MessageExt as _,
    Method, QueueRetryOptionsBuilder, RawMessage, Request, RequestInit, Response, Result, State,
    durable_object, event,
};

use crate::delivery::{Enqueued, EventQueue, RetryPolicy, enqueue_or_spill};
use crate::edge::{Edge, EdgeConfig, EdgeRequest, EdgeResponse, MAX_BODY, RequestBody};
use crate::risk::ClientHeaders;
use crate::stores::{
    ClaimStore, SnapshotStore, StoreError, TelemetrySink, VisitorStore, claim_retention_ms,
};
use crate::time_locks::TimeLocks;
use crate::visitor::{VisitorEvent, VisitorHistory, VisitorState};

/// KV namespace holding the snapshot the control plane publishes.
const SNAPSHOT_BINDING: &str = "SNAPSHOT";
/// Durable Object namespace of single-use challenge claims.
const CLAIMS_BINDING: &str = "CHALLENGE_CLAIMS";
/// Durable Object namespace of visitors' short-lived abuse state.
const VISITORS_BINDING: &str = "VISITOR_STATE";
/// Queue carrying telemetry to the consumer below.
const TELEMETRY_BINDING: &str = "TELEMETRY";
/// The telemetry queue's dead-letter queue, as a producer: where an event goes when the
/// telemetry queue refuses it. The consumer below takes both.
const SPILL_BINDING: &str = "TELEMETRY_SPILL";
/// Variables: the shortest and longest wait before a failed delivery is tried again, seconds
/// ([`RetryPolicy`]); unset, [`RetryPolicy::PRODUCTION`]'s.
const RETRY_MIN_SECONDS: &str = "TELEMETRY_RETRY_MIN_SECONDS";
const RETRY_MAX_SECONDS: &str = "TELEMETRY_RETRY_MAX_SECONDS";
/// Worker secret: the operator's master secret.
const MASTER_SECRET: &str = "HUMANPROOF_MASTER_SECRET";
/// Secret, optional: the operator's RSW key (`humanproof rsw-key`), for projects whose
/// Custom preset asks for RSW puzzles.
const RSW_KEY: &str = "HUMANPROOF_RSW_KEY";
/// Variable: base URL of the control plane, for telemetry delivery only.
const CONTROL_PLANE_URL: &str = "CONTROL_PLANE_URL";

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let master = master_secret(&env)?;
    // Each store looks its binding up when first used: workers-rs checks a binding's
    // JavaScript type by name on every lookup, which only the routes that use it should pay
    // for (a settings read uses KV alone; the spill queue is for when the queue refuses).
    let mut config = EdgeConfig::new(master);
    if let Some(time_locks) = time_locks(&env) {
        config = config.with_time_locks(time_locks);
    }
    let edge = Edge::new(
        config,
        KvSnapshots(env.clone()),
        DurableClaims(env.clone()),
        DurableVisitors(env.clone()),
        QueueTelemetry {
            queue: WorkersQueue {
                env: env.clone(),
                binding: TELEMETRY_BINDING,
            },
            spill: WorkersQueue {
                env: env.clone(),
                binding: SPILL_BINDING,
            },
        },
    );
    let headers = req.headers().clone();
    let declared_len = headers
        .get("content-length")?
        .and_then(|len| len.parse::<usize>().ok());
    let bytes = read_capped_body(&mut req, declared_len).await;
    let body = bytes
        .as_deref()
        .map_or(RequestBody::TooLarge, RequestBody::Read);
    let method = req.method().to_string();
    let path = req.path();
    let origin = headers.get("origin")?;
    let client_ip = headers.get("cf-connecting-ip")?;
    let network = Network {
        country: req.cf().and_then(|cf| cf.country()),
        asn: req.cf().and_then(|cf| cf.asn()),
    };
    // The lookup needs borrowed values: read each scored header once into owned strings.
    let scored: Vec<(&str, String)> = [
        "user-agent",
        "accept-language",
        "sec-fetch-site",
        "sec-fetch-mode",
        "sec-fetch-dest",
    ]
    .into_iter()
    .filter_map(|name| headers.get(name).ok().flatten().map(|value| (name, value)))
    .collect();
    let client_headers = ClientHeaders::from_lookup(|name| {
        scored
            .iter()
            .find(|(scored_name, _)| *scored_name == name)
            .map(|(_, value)| value.as_str())
    });
    let response = edge
        .handle(EdgeRequest {
            method: &method,
            path: &path,
            origin: origin.as_deref(),
            client_ip: client_ip.as_deref(),
            headers: client_headers,
            network: &network,
            body,
            now_ms: now_ms(),
        })
        .await;
    into_worker_response(response)
}

/// The body, or `None` when it is larger than [`MAX_BODY`]. Never holds more than that in wasm
/// memory (plus one chunk): a body sent without a declared length (chunked) is read chunk by
/// chunk and refused as soon as it passes the cap, without waiting for the rest.
async fn read_capped_body(req: &mut Request, declared_len: Option<usize>) -> Option<Vec<u8>> {
    // A request without a body has no stream.
    let Ok(mut chunks) = req.stream() else {
        return Some(Vec::new());
    };
    if let Some(len) = declared_len.filter(|len| *len > MAX_BODY) {
        if len <= DRAIN_LIMIT {
            drain(&mut chunks).await;
        }
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        // A body that breaks off is no body, as a failed read always was here.
        let Ok(chunk) = chunk else {
            return Some(Vec::new());
        };
        if body.len() + chunk.len() > MAX_BODY {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// Up to this declared length, an oversized body is read and thrown away before the 413 goes
/// out: a server that answers while the client is still sending makes most clients see a
/// connection reset instead of the answer. The declared length bounds the read, and nothing
/// of it is kept; a larger one is refused unread. (A chunked body has no length to bound
/// the wait, so it is refused the moment it passes the cap.)
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads and discards the rest of a body whose declared length bounds it.
async fn drain(chunks: &mut ByteStream) {
    while let Some(Ok(_)) = chunks.next().await {}
}

/// Consumer of the telemetry queue and of its dead-letter queue: posts each batch to the
/// control plane, signed; on any failure tries each message again later, after a wait that
/// grows with its age ([`RetryPolicy`]). The control plane stores events idempotently, so
/// retries and re-drives are safe.
#[event(queue)]
async fn deliver_telemetry(
    batch: MessageBatch<TelemetryEvent>,
    env: Env,
    _ctx: Context,
) -> Result<()> {
    let mut events = Vec::new();
    let mut deliverable = Vec::new();
    for message in batch.raw_iter() {
        match event_from_message(message.body()) {
            Some(event) => {
                events.push(event);
                deliverable.push(message);
            }
            // No delivery would ever take it: acknowledged, so it is not retried forever.
            None => message.ack(),
        }
    }
    if events.is_empty() {
        return Ok(());
    }
    // Whatever goes wrong (the control plane away or refusing, a secret or URL missing), the
    // batch waits its turn: an error thrown from here would be retried at once, and spend
    // the queue's tries in minutes.
    let failure = match post_batch(&env, events).await {
        Ok(status) if (200..300).contains(&status) => {
            batch.ack_all();
            return Ok(());
        }
        Ok(status) => format!("refused with {status}"),
        Err(err) => err.to_string(),
    };
    worker::console_error!("telemetry delivery failed: {failure}");
    retry_later(&deliverable, retry_policy(&env));
    Ok(())
}

/// Posts `events` to the control plane, signed; the status it answered.
async fn post_batch(env: &Env, events: Vec<TelemetryEvent>) -> Result<u16> {
    let body = serde_json::to_vec(&TelemetryBatch { events })?;
    let signature = sign_batch(&master_secret(env)?, now_ms(), &body);
    let url = format!(
        "{}/internal/telemetry",
        env.var(CONTROL_PLANE_URL)?
            .to_string()
            .trim_end_matches('/')
    );
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set(SIGNATURE_HEADER, &signature)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    let response = Fetch::Request(Request::new_with_init(&url, &init)?)
        .send()
        .await?;
    Ok(response.status_code())
}

/// Marks each message of a failed batch for another try after its own wait.
fn retry_later(messages: &[RawMessage], policy: RetryPolicy) {
    let now = now_ms();
    for message in messages {
        let delay = policy.delay_seconds(now - message.timestamp().as_millis() as i64);
        message.retry_with_options(
            &QueueRetryOptionsBuilder::new()
                .with_delay_seconds(delay)
                .build(),
        );
    }
}

/// The retry waits `wrangler.toml` sets, or the production ones.
fn retry_policy(env: &Env) -> RetryPolicy {
    let seconds = |name: &str, default: u32| match env.var(name) {
        Ok(value) => value.to_string().parse().unwrap_or_else(|_| {
            worker::console_warn!("{name} is not a whole number of seconds; using {default}");
            default
        }),
        Err(_) => default,
    };
    RetryPolicy {
        min_seconds: seconds(RETRY_MIN_SECONDS, RetryPolicy::PRODUCTION.min_seconds),
        max_seconds: seconds(RETRY_MAX_SECONDS, RetryPolicy::PRODUCTION.max_seconds),
    }
}

/// A queue message body is a plain JS object; `None` for a malformed one.
fn event_from_message(value: worker::wasm_bindgen::JsValue) -> Option<TelemetryEvent> {
    let json = worker::js_sys::JSON::stringify(&value).ok()?.as_string()?;
    serde_json::from_str(&json).ok()
}

fn master_secret(env: &Env) -> Result<MasterSecret> {
    let secret = env.secret(MASTER_SECRET)?.to_string();
    MasterSecret::new(&secret).map_err(|err| worker::Error::RustError(err.to_string()))
}

thread_local! {
    /// The `HUMANPROOF_RSW_KEY` secret last seen in this isolate and what came of it: the
    /// puzzles under it, with the sizes precomputed so far, or `None` if it is not a key.
    static TIME_LOCKS: std::cell::RefCell<Option<(String, Option<Arc<TimeLocks>>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The RSW puzzles under the `HUMANPROOF_RSW_KEY` secret, if set. A secret that is not a key
/// leaves RSW projects on their SHA-256 work, as a missing one does, and is logged once per
/// isolate (each new secret is checked once).
fn time_locks(env: &Env) -> Option<Arc<TimeLocks>> {
    let secret = env.secret(RSW_KEY).ok()?.to_string();
    TIME_LOCKS.with_borrow_mut(|cached| {
        if let Some((_, locks)) = cached.as_ref().filter(|(seen, _)| *seen == secret) {
            return locks.clone();
        }
        let locks = match TimeLocks::from_secret(secret.clone()) {
            Ok(locks) => Some(Arc::new(locks)),
            Err(err) => {
                worker::console_error!(
                    "{RSW_KEY} is not used: {err}; RSW projects get SHA-256 work"
                );
                None
            }
        };
        *cached = Some((secret, locks.clone()));
        locks
    })
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

fn into_worker_response(response: EdgeResponse) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in &response.headers {
        headers.set(name, value)?;
    }
    Ok(Response::from_bytes(response.body)?
        .with_status(response.status)
        .with_headers(headers))
}

/// The KV namespace of snapshots (its binding looked up on use).
struct KvSnapshots(Env);

impl SnapshotStore for KvSnapshots {
    async fn site(&self, site_key: &str) -> std::result::Result<Option<SiteSnapshot>, StoreError> {
        let text = self
            .0
            .kv(SNAPSHOT_BINDING)
            .map_err(store_error)?
            .get(&kv_key(site_key))
            .text()
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        match text {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StoreError(e.to_string())),
        }
    }
}

/// One Durable Object per challenge id: the claim is strongly consistent wherever the
/// redeem lands, and each object deletes itself by alarm an hour after its challenge expires
/// ([`crate::stores::CLAIM_RETENTION_AFTER_EXPIRY_MS`]).
struct DurableClaims(Env);

impl ClaimStore for DurableClaims {
    async fn claim(
        &self,
        id: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> std::result::Result<bool, StoreError> {
        let stub = self
            .0
            .durable_object(CLAIMS_BINDING)
            .and_then(|claims| claims.get_by_name(id))
            .map_err(store_error)?;
        let url = format!("https://claim/?now={now_ms}&exp={expires_at_ms}");
        let response = stub.fetch_with_str(&url).await.map_err(store_error)?;
        match response.status_code() {
            200 => Ok(true),
            409 => Ok(false),
            status => Err(StoreError(format!("claim object answered {status}"))),
        }
    }
}

/// The Durable Object class behind [`DurableClaims`].
#[durable_object]
pub struct ChallengeClaim {
    state: State,
}

impl DurableObject for ChallengeClaim {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        #[derive(serde::Deserialize)]
        struct ClaimQuery {
            now: i64,
            exp: i64,
        }
        let query: ClaimQuery = req.query()?;
        let storage = self.state.storage();
        // Input gates hold other events back between this read and the write below, so two
        // concurrent redeems of one challenge cannot both see it unclaimed.
        if storage.get::<i64>("expires_at").await?.is_some() {
            return Response::empty().map(|r| r.with_status(409));
        }
        storage.put("expires_at", query.exp).await?;
        storage
            .set_alarm(claim_retention_ms(query.now, query.exp))
            .await?;
        Response::empty()
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::empty()
    }
}

/// One Durable Object per visitor (the salted hash of its network): its starts, failures and
/// reputation are counted in one single-threaded place however many edge locations it
/// reaches, and the object deletes its state by alarm when the last part of it expires.
struct DurableVisitors(Env);

impl DurableVisitors {
    async fn call(&self, visitor: &str, url: &str) -> std::result::Result<Response, StoreError> {
        let stub = self
            .0
            .durable_object(VISITORS_BINDING)
            .and_then(|visitors| visitors.get_by_name(visitor))
            .map_err(store_error)?;
        let response = stub.fetch_with_str(url).await.map_err(store_error)?;
        match response.status_code() {
            200 => Ok(response),
            status => Err(StoreError(format!("visitor object answered {status}"))),
        }
    }
}

impl VisitorStore for DurableVisitors {
    async fn start(
        &self,
        visitor: &str,
        project: &str,
        limits: StartLimits,
        now_ms: i64,
    ) -> std::result::Result<VisitorHistory, StoreError> {
        let StartLimits { soft, hard } = limits;
        let url = format!(
            "https://visitor/start?project={project}&now={now_ms}&soft_burst={}&soft_rate={}&hard_burst={}&hard_rate={}",
            soft.burst, soft.per_window, hard.burst, hard.per_window
        );
        let mut response = self.call(visitor, &url).await?;
        response.json().await.map_err(store_error)
    }

    async fn record(
        &self,
        visitor: &str,
        project: &str,
        event: VisitorEvent,
        now_ms: i64,
    ) -> std::result::Result<(), StoreError> {
        let event = match event {
            VisitorEvent::FailedRedeem => "failed_redeem",
            VisitorEvent::SolvedRedeem => "solved_redeem",
            VisitorEvent::HighRiskStart => "high_risk_start",
        };
        self.call(
            visitor,
            &format!("https://visitor/record?project={project}&now={now_ms}&event={event}"),
        )
        .await?;
        Ok(())
    }
}

/// The Durable Object class behind [`DurableVisitors`]: a [`VisitorState`] in storage.
#[durable_object]
pub struct VisitorAbuseState {
    state: State,
}

impl DurableObject for VisitorAbuseState {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        #[derive(serde::Deserialize)]
        struct Query {
            project: String,
            now: i64,
            event: Option<VisitorEvent>,
            soft_burst: Option<u32>,
            soft_rate: Option<u32>,
            hard_burst: Option<u32>,
            hard_rate: Option<u32>,
        }
        let query: Query = req.query()?;
        let storage = self.state.storage();
        // A state this version cannot read (written by an older one) starts afresh: it holds
        // minutes of counts, and failing here would leave the visitor unscored until the
        // alarm deleted it, up to a day later. A storage failure stays an error.
        let stored: Option<serde_json::Value> = storage.get("state").await?;
        let mut visitor: VisitorState = stored
            .and_then(|state| serde_json::from_value(state).ok())
            .unwrap_or_default();
        let limits = match (
            query.soft_burst,
            query.soft_rate,
            query.hard_burst,
            query.hard_rate,
        ) {
            (Some(soft_burst), Some(soft_rate), Some(hard_burst), Some(hard_rate)) => {
                Some(StartLimits {
                    soft: Bucket {
                        burst: soft_burst,
                        per_window: soft_rate,
                    },
                    hard: Bucket {
                        burst: hard_burst,
                        per_window: hard_rate,
                    },
                })
            }
            _ => None,
        };
        let response = match (req.path().as_str(), query.event, limits) {
            ("/start", None, Some(limits)) => {
                let history = visitor.start(&query.project, limits, query.now);
                // A refused start changes nothing worth a write: a flood costs no storage.
                if history.refused_until.is_some() {
                    return Response::from_json(&history);
                }
                Response::from_json(&history)?
            }
            ("/record", Some(event), None) => {
                visitor.record(&query.project, event, query.now);
                Response::empty()?
            }
            _ => return Response::error("unknown visitor operation", 400),
        };
        storage.put("state", &visitor).await?;
        if let Some(expires_at) = visitor.expires_at() {
            storage.set_alarm((expires_at - query.now).max(1)).await?;
        }
        Ok(response)
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::empty()
    }
}

/// A queue binding, looked up on use.
struct WorkersQueue {
    env: Env,
    binding: &'static str,
}

impl EventQueue for WorkersQueue {
    async fn send(&self, event: &TelemetryEvent) -> std::result::Result<(), StoreError> {
        let queue = self.env.queue(self.binding).map_err(store_error)?;
        queue.send(event).await.map_err(store_error)
    }
}

/// A binding's failure, as the stores report it.
fn store_error(err: worker::Error) -> StoreError {
    StoreError(err.to_string())
}

/// Telemetry into the queue, or the spill queue when the queue refuses it.
struct QueueTelemetry {
    queue: WorkersQueue,
    spill: WorkersQueue,
}

impl TelemetrySink for QueueTelemetry {
    async fn emit(&self, event: TelemetryEvent) {
        match enqueue_or_spill(&self.queue, &self.spill, &event).await {
            Enqueued::Queued => {}
            Enqueued::Spilled(err) => {
                worker::console_warn!("telemetry queue refused an event, spilled it: {err}");
            }
            Enqueued::Lost(err, spill_err) => {
                worker::console_error!("telemetry event lost: queue {err}; spill {spill_err}");
            }
        }
    }
}
