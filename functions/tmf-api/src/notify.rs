//! Delivery of TMF notifications to the listeners registered on `/hub`.
//!
//! The handlers hand every event to a [`NotificationSink`] once the change is stored. The
//! local sink, [`InProcessNotifier`], runs a worker task that matches the event against the
//! registrations (their TMF630 query) and POSTs it to each matching callback, retrying with
//! exponential backoff until the listener answers 2xx: at-least-once delivery for as long as
//! the process runs. On AWS, [`SqsNotificationSink`] (feature `sqs`) puts each event on an
//! SQS queue as a [`QueuedNotification`]; the `notifier` function (crate `dome-notifier`)
//! matches it with the same [`matching_subscriptions`] and delivers it, and SQS retries and
//! dead-letters what fails.
//!
//! Callback URLs are chosen by whoever registers on `/hub`, so [`HttpTransport`] can refuse
//! callbacks on loopback, private, link-local and other non-public addresses (server-side
//! request forgery into the VPC or the instance metadata endpoint); the check applies to the
//! addresses the connection actually uses, so DNS answers cannot sneak around it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dome_catalog_store::{CatalogStore, Subscription};
use dome_tmf::{HubQuery, QueryLimits};
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

/// Where the handlers put events. `publish` must not wait for the deliveries.
#[async_trait]
pub trait NotificationSink: Send + Sync + 'static {
    /// `event` is the full TMF notification body (`eventId`, `eventType`, `event`...).
    async fn publish(&self, event: Value);
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryFailure {
    /// Worth trying again (network error, timeout, 5xx, 408, 429).
    pub retryable: bool,
    pub reason: String,
}

/// Sends one notification to one callback.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn deliver(&self, callback: &str, event: &Value) -> Result<(), DeliveryFailure>;
}

/// POSTs JSON over HTTP(S); redirects are not followed.
///
/// The HTTP client is built at the first delivery, not at start-up: building it loads the
/// system's root certificates (tens of milliseconds), which most processes (a Lambda
/// invocation, a catalogue without listeners) never need.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    timeout: Duration,
    allow_private: bool,
    client: Arc<tokio::sync::OnceCell<reqwest::Client>>,
}

impl HttpTransport {
    /// A transport that delivers to any address (local runs).
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            timeout,
            allow_private: true,
            client: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// `allow_private: false` refuses callbacks whose host is, or resolves to, an address
    /// that is not public (see [`is_public_address`]): `DOME_CALLBACK_ALLOW_PRIVATE`.
    pub fn with_private_callbacks(timeout: Duration, allow_private: bool) -> Self {
        Self {
            timeout,
            allow_private,
            client: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    async fn client(&self) -> Result<&reqwest::Client, DeliveryFailure> {
        let timeout = self.timeout;
        let allow_private = self.allow_private;
        self.client
            .get_or_try_init(|| async move {
                // Reads certificate files: off the runtime's worker threads.
                tokio::task::spawn_blocking(move || {
                    let builder = reqwest::Client::builder()
                        .timeout(timeout)
                        .redirect(reqwest::redirect::Policy::none())
                        .user_agent(concat!("dome-tmf-api/", env!("CARGO_PKG_VERSION")));
                    let builder = if allow_private {
                        builder
                    } else {
                        builder.dns_resolver(Arc::new(PublicOnlyResolver))
                    };
                    builder.build().map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|built| built)
                .map_err(|e| DeliveryFailure {
                    retryable: true,
                    reason: format!("HTTP client: {e}"),
                })
            })
            .await
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn deliver(&self, callback: &str, event: &Value) -> Result<(), DeliveryFailure> {
        let body = serde_json::to_vec(event).map_err(|e| DeliveryFailure {
            retryable: false,
            reason: format!("event not serialisable: {e}"),
        })?;
        if !self.allow_private {
            check_callback_host(callback)?;
        }
        let mut request = self
            .client()
            .await?
            .post(callback)
            .header("content-type", "application/json");
        // Delivery is at least once: the id (also in the body) lets listeners drop repeats.
        if let Some(id) = event.get("eventId").and_then(Value::as_str) {
            request = request.header("x-event-id", id);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| DeliveryFailure {
                retryable: true,
                reason: format!("request failed: {}", error_chain(&e)),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let code = status.as_u16();
        Err(DeliveryFailure {
            retryable: status.is_server_error() || code == 408 || code == 429,
            reason: format!("listener answered {status}"),
        })
    }
}

/// `e` and its causes: reqwest's own message alone does not say why a connection failed.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Refuses a callback whose host is a literal non-public address. Host names are checked
/// by [`PublicOnlyResolver`] when the connection is made.
fn check_callback_host(callback: &str) -> Result<(), DeliveryFailure> {
    let refused = |reason: String| DeliveryFailure {
        retryable: false,
        reason,
    };
    let url = reqwest::Url::parse(callback).map_err(|e| refused(format!("bad callback: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| refused("callback without a host".into()))?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        if !is_public_address(ip) {
            return Err(refused(format!(
                "callback address {ip} is not public (DOME_CALLBACK_ALLOW_PRIVATE=false)"
            )));
        }
    }
    Ok(())
}

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, unique
/// local), link-local (which includes the 169.254.169.254 metadata endpoint), shared
/// (100.64.0.0/10), unspecified, multicast, broadcast, documentation, benchmarking or
/// reserved. IPv4-mapped and NAT64 IPv6 addresses are judged by their IPv4 address.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = v6.segments();
            // 64:ff9b::/96, NAT64 of an IPv4 address.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || (a == 100 && (b & 0xc0) == 64) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved
}

/// Resolves host names like the system does, keeping only public addresses, so that the
/// connection goes to an address that was checked (no window for DNS rebinding).
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public_address(a.ip()))
                .collect();
            if addresses.is_empty() {
                return Err(format!(
                    "{host} has no public address (DOME_CALLBACK_ALLOW_PRIVATE=false)"
                )
                .into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// How hard a delivery is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (the first one included).
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further failure.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts over about 4 minutes.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (`attempt` counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Tries one delivery until it succeeds, fails permanently or runs out of attempts. Returns
/// the number of attempts made and the final failure, if any.
pub async fn deliver_with_retries(
    transport: &dyn Transport,
    policy: &RetryPolicy,
    callback: &str,
    event: &Value,
) -> (u32, Result<(), DeliveryFailure>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match transport.deliver(callback, event).await {
            Ok(()) => return (attempt, Ok(())),
            Err(failure) if !failure.retryable || attempt >= policy.max_attempts => {
                return (attempt, Err(failure));
            }
            Err(failure) => {
                let wait = policy.backoff(attempt);
                tracing::debug!(callback, attempt, reason = %failure, ?wait, "delivery failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The local [`NotificationSink`]: an in-process queue and worker.
#[derive(Clone)]
pub struct InProcessNotifier {
    queue: mpsc::UnboundedSender<Value>,
}

/// Deliveries in flight at once; further ones wait for a slot (in memory), so a slow
/// listener delays other deliveries but never the requests that publish events.
const MAX_CONCURRENT_DELIVERIES: usize = 64;
/// Most events matched against one read of the registrations.
const EVENT_BATCH: usize = 256;

impl InProcessNotifier {
    /// Starts the worker on the current tokio runtime. It reads the registrations from
    /// `store` for every event, so registrations take effect immediately.
    pub fn start(
        store: Arc<dyn CatalogStore>,
        transport: Arc<dyn Transport>,
        policy: RetryPolicy,
        limits: QueryLimits,
    ) -> Self {
        let (queue, mut events) = mpsc::unbounded_channel::<Value>();
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_DELIVERIES));
        tokio::spawn(async move {
            // Events are taken in batches and the registrations read once per batch: under a
            // burst of writes one store read serves many events, so the queue cannot grow
            // faster than it drains (it did, by hundreds of MiB, with one read per event).
            let mut batch = Vec::with_capacity(EVENT_BATCH);
            while events.recv_many(&mut batch, EVENT_BATCH).await > 0 {
                let Some(subscriptions) = load_subscriptions(store.as_ref(), &policy).await else {
                    batch.clear();
                    continue;
                };
                let queries = hub_queries(subscriptions, &limits);
                for event in batch.drain(..) {
                    let event = Arc::new(event);
                    for subscription in matching_subscriptions(&queries, &event) {
                        tokio::spawn(deliver(
                            Arc::clone(&slots),
                            Arc::clone(&transport),
                            policy,
                            subscription.clone(),
                            Arc::clone(&event),
                        ));
                    }
                }
            }
        });
        Self { queue }
    }
}

async fn deliver(
    slots: Arc<Semaphore>,
    transport: Arc<dyn Transport>,
    policy: RetryPolicy,
    subscription: Subscription,
    event: Arc<Value>,
) {
    let Ok(_permit) = slots.acquire_owned().await else {
        return;
    };
    let event_type = event.get("eventType").and_then(Value::as_str).unwrap_or("");
    let (attempts, result) =
        deliver_with_retries(transport.as_ref(), &policy, &subscription.callback, &event).await;
    match result {
        Ok(()) => tracing::info!(
            subscription = %subscription.id,
            callback = %subscription.callback,
            event_type,
            attempts,
            "notification delivered"
        ),
        Err(failure) => tracing::warn!(
            subscription = %subscription.id,
            callback = %subscription.callback,
            event_type,
            attempts,
            reason = %failure,
            "notification not delivered"
        ),
    }
}

/// The registrations with their parsed queries. A registration whose stored query no longer
/// parses (e.g. after a change of limits) is logged and skipped.
pub fn hub_queries(
    subscriptions: Vec<Subscription>,
    limits: &QueryLimits,
) -> Vec<(Subscription, HubQuery)> {
    subscriptions
        .into_iter()
        .filter_map(|subscription| {
            let query = subscription.query.as_deref().unwrap_or("");
            match HubQuery::parse(query, limits) {
                Ok(q) => Some((subscription, q)),
                Err(e) => {
                    tracing::warn!(subscription = %subscription.id, error = %e, "unusable hub query");
                    None
                }
            }
        })
        .collect()
}

/// The registrations `event` must be delivered to.
pub fn matching_subscriptions<'a>(
    queries: &'a [(Subscription, HubQuery)],
    event: &'a Value,
) -> impl Iterator<Item = &'a Subscription> + 'a {
    queries
        .iter()
        .filter(move |(_, query)| query.matches(event))
        .map(|(subscription, _)| subscription)
}

/// Reads the registrations, retrying store errors with `policy`; `None` when it gave up.
pub async fn load_subscriptions(
    store: &dyn CatalogStore,
    policy: &RetryPolicy,
) -> Option<Vec<Subscription>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.subscriptions().await {
            Ok(s) => return Some(s),
            Err(e) if attempt >= policy.max_attempts => {
                tracing::error!(error = %e, "cannot read hub registrations; event not delivered");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "cannot read hub registrations; retrying");
                tokio::time::sleep(policy.backoff(attempt)).await;
            }
        }
    }
}

#[async_trait]
impl NotificationSink for InProcessNotifier {
    async fn publish(&self, event: Value) {
        if self.queue.send(event).is_err() {
            tracing::error!("notification worker stopped; event dropped");
        }
    }
}

/// What [`SqsNotificationSink`] puts on the queue, as JSON: the event itself, or, when the
/// event is too large for an SQS message (entities may reach 350 KiB), a reference to the
/// stored version it carries, from which the consumer rebuilds the same event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueuedNotification {
    Event {
        event: Value,
    },
    Reference {
        #[serde(rename = "eventId")]
        event_id: String,
        #[serde(rename = "eventTime")]
        event_time: String,
        #[serde(rename = "eventType")]
        event_type: String,
        resource: String,
        id: String,
        version: u64,
    },
}

/// Largest queued body that is sent as is: SQS takes 256 KiB per message, attributes
/// included.
pub const MAX_QUEUED_EVENT_BYTES: usize = 250 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum QueuedNotificationError {
    #[error("not a queued notification: {0}")]
    Malformed(String),
    #[error("the event has no {0}")]
    Incomplete(&'static str),
    #[error("reading the referenced version: {0}")]
    Store(#[from] dome_catalog_store::StoreError),
    #[error("the referenced version {resource}/{id}/{version} does not exist")]
    Missing {
        resource: String,
        id: String,
        version: u64,
    },
}

impl QueuedNotification {
    /// The queue body for `event`: the event itself when it fits, else a reference.
    pub fn encode(event: &Value) -> Result<String, QueuedNotificationError> {
        let full = serde_json::to_string(&QueuedNotification::Event {
            event: event.clone(),
        })
        .map_err(|e| QueuedNotificationError::Malformed(e.to_string()))?;
        if full.len() <= MAX_QUEUED_EVENT_BYTES {
            return Ok(full);
        }
        serde_json::to_string(&Self::reference(event)?)
            .map_err(|e| QueuedNotificationError::Malformed(e.to_string()))
    }

    /// A reference to the version inside `event` (`event.<resource>.id` and `.version`).
    pub fn reference(event: &Value) -> Result<Self, QueuedNotificationError> {
        let text = |name: &'static str| {
            event
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(QueuedNotificationError::Incomplete(name))
        };
        let (resource, entity) = event
            .get("event")
            .and_then(Value::as_object)
            .and_then(|payload| payload.iter().next())
            .ok_or(QueuedNotificationError::Incomplete("event"))?;
        Ok(Self::Reference {
            event_id: text("eventId")?,
            event_time: text("eventTime")?,
            event_type: text("eventType")?,
            resource: resource.clone(),
            id: entity
                .get("id")
                .and_then(Value::as_str)
                .ok_or(QueuedNotificationError::Incomplete("entity id"))?
                .to_string(),
            version: entity
                .get("version")
                .and_then(Value::as_str)
                .and_then(|v| v.parse().ok())
                .ok_or(QueuedNotificationError::Incomplete("entity version"))?,
        })
    }

    pub fn decode(body: &str) -> Result<Self, QueuedNotificationError> {
        serde_json::from_str(body).map_err(|e| QueuedNotificationError::Malformed(e.to_string()))
    }

    /// The TMF event to deliver, read back from `store` for a reference.
    pub async fn into_event(
        self,
        store: &dyn CatalogStore,
    ) -> Result<Value, QueuedNotificationError> {
        match self {
            Self::Event { event } => Ok(event),
            Self::Reference {
                event_id,
                event_time,
                event_type,
                resource,
                id,
                version,
            } => {
                let stored = store
                    .version(&resource, &id, version)
                    .await?
                    .ok_or_else(|| QueuedNotificationError::Missing {
                        resource: resource.clone(),
                        id: id.clone(),
                        version,
                    })?;
                let mut payload = serde_json::Map::new();
                payload.insert(resource, stored.body);
                Ok(serde_json::json!({
                    "eventId": event_id,
                    "eventTime": event_time,
                    "eventType": event_type,
                    "event": Value::Object(payload),
                }))
            }
        }
    }
}

/// The AWS [`NotificationSink`]: one SQS message per event (`DOME_NOTIFY_QUEUE_URL`), for
/// the notifier function to deliver. `publish` returns once SQS has the message, so a Lambda
/// invocation does not end with the event still in memory. On a FIFO queue the message group
/// is the entity (its events stay in order) and the deduplication id the event id.
#[cfg(feature = "sqs")]
#[derive(Debug, Clone)]
pub struct SqsNotificationSink {
    queue: dome_queue_sqs::SqsQueue,
}

#[cfg(feature = "sqs")]
impl SqsNotificationSink {
    pub fn new(queue: dome_queue_sqs::SqsQueue) -> Self {
        Self { queue }
    }

    /// The message for `event`.
    pub fn message(
        &self,
        event: &Value,
    ) -> Result<dome_queue_sqs::OutgoingMessage, QueuedNotificationError> {
        let body = QueuedNotification::encode(event)?;
        let text = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or("");
        let event_id = text("eventId").to_string();
        let (group_id, dedup_id) = if self.queue.is_fifo() {
            let QueuedNotification::Reference { resource, id, .. } =
                QueuedNotification::reference(event)?
            else {
                return Err(QueuedNotificationError::Incomplete("entity"));
            };
            (
                Some(dome_queue_sqs::fifo_group_id(&format!("{resource}/{id}"))),
                Some(dome_queue_sqs::dedup_id(&event_id)),
            )
        } else {
            (None, None)
        };
        Ok(dome_queue_sqs::OutgoingMessage {
            body,
            group_id,
            dedup_id,
            attributes: vec![
                ("eventId".into(), event_id),
                ("eventType".into(), text("eventType").to_string()),
            ],
        })
    }
}

#[cfg(feature = "sqs")]
#[async_trait]
impl NotificationSink for SqsNotificationSink {
    async fn publish(&self, event: Value) {
        let event_id = event.get("eventId").and_then(Value::as_str).unwrap_or("");
        let message = match self.message(&event) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(event_id, error = %e, "notification not queued");
                return;
            }
        };
        // The change is already stored: a failure here loses the notification, not the
        // change (send_batch has retried what SQS allows).
        if let Err(e) = self.queue.send_batch(vec![message]).await {
            tracing::error!(event_id, error = %e, "notification not queued");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn public_addresses() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public_address(public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public_address(private.parse().unwrap()), "{private}");
        }
    }

    #[tokio::test]
    async fn private_callbacks_are_refused_when_configured() {
        let strict = HttpTransport::with_private_callbacks(Duration::from_secs(1), false);
        let event = serde_json::json!({"eventId": "e"});
        for callback in [
            "http://127.0.0.1:9/cb",
            "http://[::1]:9/cb",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:9/cb",
        ] {
            let failure = strict.deliver(callback, &event).await.unwrap_err();
            assert!(
                failure.reason.contains("is not public")
                    || failure.reason.contains("has no public address"),
                "{callback}: {failure}"
            );
        }
    }

    #[test]
    fn queued_notifications_reference_large_events() {
        let event = |size: usize| {
            serde_json::json!({
                "eventId": "ev-1", "eventTime": "2025-01-01T00:00:00.000Z",
                "eventType": "ProductOfferingCreateEvent",
                "event": {"productOffering": {"id": "po-1", "version": "3", "description": "x".repeat(size)}}
            })
        };
        let small = QueuedNotification::encode(&event(10)).unwrap();
        assert_eq!(
            QueuedNotification::decode(&small).unwrap(),
            QueuedNotification::Event { event: event(10) }
        );
        let large = QueuedNotification::encode(&event(300 * 1024)).unwrap();
        assert!(large.len() < 1024);
        assert_eq!(
            QueuedNotification::decode(&large).unwrap(),
            QueuedNotification::Reference {
                event_id: "ev-1".into(),
                event_time: "2025-01-01T00:00:00.000Z".into(),
                event_type: "ProductOfferingCreateEvent".into(),
                resource: "productOffering".into(),
                id: "po-1".into(),
                version: 3,
            }
        );
        assert!(QueuedNotification::decode("{}").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(350));
        assert_eq!(p.backoff(200), Duration::from_millis(350));
    }

    /// Fails the first `failures` attempts with the given retryability.
    struct Flaky {
        failures: u32,
        retryable: bool,
        calls: Mutex<u32>,
    }

    #[async_trait]
    impl Transport for Flaky {
        async fn deliver(&self, _: &str, _: &Value) -> Result<(), DeliveryFailure> {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            *calls += 1;
            if *calls <= self.failures {
                Err(DeliveryFailure {
                    retryable: self.retryable,
                    reason: "nope".into(),
                })
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn retries_until_success_or_permanent_failure() {
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let event = serde_json::json!({});
        let flaky = Flaky {
            failures: 2,
            retryable: true,
            calls: Mutex::new(0),
        };
        let (attempts, result) = deliver_with_retries(&flaky, &policy, "http://x", &event).await;
        assert_eq!((attempts, result.is_ok()), (3, true));
        let down = Flaky {
            failures: 10,
            retryable: true,
            calls: Mutex::new(0),
        };
        let (attempts, result) = deliver_with_retries(&down, &policy, "http://x", &event).await;
        assert_eq!((attempts, result.is_err()), (4, true));
        let refused = Flaky {
            failures: 10,
            retryable: false,
            calls: Mutex::new(0),
        };
        let (attempts, result) = deliver_with_retries(&refused, &policy, "http://x", &event).await;
        assert_eq!((attempts, result.is_err()), (1, true));
    }
}
