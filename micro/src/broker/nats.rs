//! NATS: core NATS for fast fire-and-forget events with queue groups, JetStream for durable,
//! acknowledged delivery.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::AckPolicy, consumer::pull};
use futures_util::StreamExt;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerError, EventHandler, Message, SubscribeOptions, Subscription};
use crate::BoxFuture;

/// Where a NATS server is expected when `MICRO_BROKER_ADDRESS` is unset.
pub(crate) const DEFAULT_ADDRESS: &str = "nats://127.0.0.1:4222";

/// Appended to a topic to name its dead-letter subject: `orders` → `orders.dead`.
pub const DEAD_LETTER_SUFFIX: &str = ".dead";

/// Redelivery attempts when a subscription does not say.
const DEFAULT_MAX_DELIVER: u32 = 5;
/// How long JetStream waits for an acknowledgement before redelivering, when not set.
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// A broker backed by a NATS server (`MICRO_BROKER=nats` or `jetstream`, cargo feature
/// `nats`).
///
/// - **Core** (`nats`): `publish` returns once the message is handed to the server
///   connection; each subscriber (or one member per queue group) gets it at most once, if it
///   is connected at that moment. Handler errors are logged, not redelivered. A subscriber
///   slower than its publishers loses messages once its client-side buffer (65,536
///   messages) is full; each loss is logged as a warning ("too slow"). Use JetStream where
///   that matters.
/// - **JetStream** (`jetstream`, or any subscription with
///   [`SubscribeOptions::durable`]): each topic is stored in a stream (created on first use,
///   named after the topic). `publish` returns once the server has stored the message. A
///   subscription is a durable consumer: a message is acknowledged only when the handler
///   returns `Ok`; an `Err`, a panic or a crash leads to redelivery (at once for an error,
///   after [`ack_wait`](SubscribeOptions::ack_wait) for a crash), up to
///   [`max_deliver`](SubscribeOptions::max_deliver) attempts (default 5); then the message is
///   published to `<topic>.dead` with headers naming the topic and the last error, and
///   acknowledged. Delivery is at least once: handlers should be idempotent. Subscribers
///   sharing a durable name (by default the queue group, or the service and endpoint for
///   `#[micro::subscribe]`) share the messages.
///
/// ```no_run
/// use micro::broker::{Broker, Message, NatsBroker, SubscribeOptions, handler};
///
/// # async fn f() -> Result<(), micro::broker::BrokerError> {
/// let broker = NatsBroker::new("nats://127.0.0.1:4222").jetstream(true);
/// let _sub = broker
///     .subscribe("orders", SubscribeOptions::default().durable("billing").max_deliver(3),
///         handler(|m: Message| async move { println!("{:?}", m.body); Ok(()) }))
///     .await?;
/// broker.publish("orders", Message::new(&b"order 1"[..])).await?;
/// # Ok(()) }
/// ```
pub struct NatsBroker {
    address: String,
    jetstream: bool,
    client: OnceCell<async_nats::Client>,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("address", &self.address)
            .field("jetstream", &self.jetstream)
            .field("connected", &self.client.initialized())
            .finish()
    }
}

impl NatsBroker {
    /// A broker for the server at `address` (`nats://host:port`, or `host:port`; several
    /// separated by commas). It connects on first use.
    ///
    /// See the [type-level example](Self).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            jetstream: false,
            client: OnceCell::new(),
        }
    }

    /// Whether publishing and subscribing go through JetStream (stored, acknowledged).
    ///
    /// See the [type-level example](Self).
    #[must_use]
    pub fn jetstream(mut self, enabled: bool) -> Self {
        self.jetstream = enabled;
        self
    }

    async fn client(&self) -> Result<&async_nats::Client, BrokerError> {
        self.client
            .get_or_try_init(|| async {
                let addrs: Vec<&str> = self.address.split(',').map(str::trim).collect();
                let address = self.address.clone();
                async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(5))
                    // The client drops messages for a subscription whose buffer is full and
                    // says so only through this event: make it loud.
                    .event_callback(move |event| {
                        let address = address.clone();
                        async move {
                            match event {
                                async_nats::Event::SlowConsumer(sid) => tracing::warn!(
                                    nats = %address,
                                    "subscription {sid} is too slow: core NATS messages are being dropped"
                                ),
                                other => tracing::debug!(nats = %address, "{other}"),
                            }
                        }
                    })
                    .connect(addrs)
                    .await
                    .map_err(|e| BrokerError::Unavailable(format!("nats {}: {e}", self.address)))
            })
            .await
    }

    /// The stream holding `topic` and its dead letters (a dead-letter subject lives in its
    /// topic's stream).
    async fn stream(&self, topic: &str) -> Result<jetstream::stream::Stream, BrokerError> {
        let js = jetstream::new(self.client().await?.clone());
        let base = topic.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(topic);
        js.get_or_create_stream(jetstream::stream::Config {
            name: stream_name(base),
            subjects: vec![base.to_owned(), format!("{base}{DEAD_LETTER_SUFFIX}")],
            ..Default::default()
        })
        .await
        .map_err(|e| BrokerError::Unavailable(format!("jetstream stream for {topic}: {e}")))
    }
}

/// Stream and consumer names may not contain `.`, `*`, `>` or spaces.
fn stream_name(topic: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn headers(msg: &Message) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    for (k, v) in &msg.headers {
        h.insert(k.as_str(), v.as_str());
    }
    h
}

fn message(headers: Option<&async_nats::HeaderMap>, body: bytes::Bytes) -> Message {
    let mut msg = Message::new(body);
    if let Some(h) = headers {
        for (name, values) in h.iter() {
            if let Some(v) = values.first() {
                msg.headers.insert(name.to_string(), v.as_str().to_owned());
            }
        }
    }
    msg
}

impl Broker for NatsBroker {
    fn name(&self) -> &'static str {
        if self.jetstream { "jetstream" } else { "nats" }
    }

    fn connect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move { self.client().await.map(drop) })
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            if let Some(client) = self.client.get() {
                client
                    .drain()
                    .await
                    .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
            }
            Ok(())
        })
    }

    fn publish<'a>(
        &'a self,
        topic: &'a str,
        msg: Message,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            if topic.is_empty() {
                return Err(BrokerError::Invalid("empty topic".into()));
            }
            let client = self.client().await?;
            let fail = |e: &dyn std::fmt::Display| {
                BrokerError::Unavailable(format!("publish to {topic}: {e}"))
            };
            if self.jetstream {
                self.stream(topic).await?;
                let js = jetstream::new(client.clone());
                js.publish_with_headers(topic.to_owned(), headers(&msg), msg.body)
                    .await
                    .map_err(|e| fail(&e))?
                    .await
                    .map_err(|e| fail(&e))?;
            } else {
                client
                    .publish_with_headers(topic.to_owned(), headers(&msg), msg.body)
                    .await
                    .map_err(|e| fail(&e))?;
            }
            Ok(())
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        opts: SubscribeOptions,
        handler: Arc<dyn EventHandler>,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>> {
        Box::pin(async move {
            if topic.is_empty() {
                return Err(BrokerError::Invalid("empty topic".into()));
            }
            let stop = CancellationToken::new();
            let task = if self.jetstream || opts.durable.is_some() {
                self.subscribe_durable(topic, &opts, handler, stop.clone())
                    .await?
            } else {
                self.subscribe_core(topic, &opts, handler, stop.clone())
                    .await?
            };
            Ok(Subscription::new(topic, opts.queue, move || {
                Box::pin(async move {
                    stop.cancel();
                    let _ = task.await;
                })
            }))
        })
    }
}

impl NatsBroker {
    async fn subscribe_core(
        &self,
        topic: &str,
        opts: &SubscribeOptions,
        handler: Arc<dyn EventHandler>,
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, BrokerError> {
        let client = self.client().await?;
        let mut sub = match &opts.queue {
            Some(q) => client.queue_subscribe(topic.to_owned(), q.clone()).await,
            None => client.subscribe(topic.to_owned()).await,
        }
        .map_err(|e| BrokerError::Unavailable(format!("subscribe to {topic}: {e}")))?;
        let topic = topic.to_owned();
        Ok(tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => break,
                    next = sub.next() => next,
                };
                let Some(m) = next else { break };
                let msg = message(m.headers.as_ref(), m.payload);
                if let Err(e) = handler.handle(&topic, msg).await {
                    tracing::warn!(%topic, "event not handled (core NATS does not redeliver): {e}");
                }
            }
            let _ = sub.unsubscribe().await;
        }))
    }

    async fn subscribe_durable(
        &self,
        topic: &str,
        opts: &SubscribeOptions,
        handler: Arc<dyn EventHandler>,
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, BrokerError> {
        let client = self.client().await?.clone();
        let stream = self.stream(topic).await?;
        let durable = stream_name(
            opts.durable
                .as_deref()
                .or(opts.queue.as_deref())
                .unwrap_or(topic),
        );
        let max_deliver = opts.max_deliver.unwrap_or(DEFAULT_MAX_DELIVER).max(1);
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: topic.to_owned(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: opts.ack_wait.unwrap_or(DEFAULT_ACK_WAIT),
                    // One more than ours, so the server never drops a message before we
                    // have moved it to the dead-letter subject.
                    max_deliver: i64::from(max_deliver) + 1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BrokerError::Unavailable(format!("jetstream consumer {durable}: {e}")))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| BrokerError::Unavailable(format!("jetstream consumer {durable}: {e}")))?;
        let topic = topic.to_owned();
        Ok(tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => break,
                    next = messages.next() => next,
                };
                let m = match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        tracing::warn!(%topic, "jetstream delivery failed: {e}");
                        continue;
                    }
                    None => break,
                };
                let attempt = m.info().map(|i| i.delivered).unwrap_or(1);
                let msg = message(m.message.headers.as_ref(), m.message.payload.clone());
                let outcome = handler.handle(&topic, msg.clone()).await;
                let ack = match outcome {
                    Ok(()) => m.ack_with(AckKind::Ack).await,
                    Err(e) if attempt >= i64::from(max_deliver) => {
                        tracing::warn!(%topic, attempt, "giving up on a message after {attempt} attempts: {e}");
                        let mut dead = headers(&msg);
                        dead.insert("Micro-Topic", topic.as_str());
                        dead.insert("Micro-Error", e.detail.as_str());
                        let js = jetstream::new(client.clone());
                        let subject = format!("{topic}{DEAD_LETTER_SUFFIX}");
                        let stored = match js.publish_with_headers(subject, dead, msg.body).await {
                            Ok(ack) => ack.await.is_ok(),
                            Err(_) => false,
                        };
                        // Not stored as dead: keep it alive rather than lose it.
                        let kind = if stored {
                            AckKind::Term
                        } else {
                            AckKind::Nak(None)
                        };
                        m.ack_with(kind).await
                    }
                    Err(e) => {
                        tracing::debug!(%topic, attempt, "not acknowledged, will be redelivered: {e}");
                        m.ack_with(AckKind::Nak(None)).await
                    }
                };
                if let Err(e) = ack {
                    tracing::warn!(%topic, "acknowledgement failed: {e}");
                }
            }
        }))
    }
}
