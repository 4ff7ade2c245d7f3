//! Publish/subscribe: events between services.
//!
//! A [`Broker`] delivers [`Message`]s published on a topic to its subscribers: to every
//! subscriber, or, for subscribers that share a *queue group*, to one member of the group.
//! Services subscribe with `#[micro::subscribe(topic = "...")]` methods, which receive events
//! in the same mailbox actor as their calls, and publish with
//! [`Client::publish`](crate::Client::publish).
//!
//! What each backend guarantees:
//!
//! | backend | delivery | ordering | durability | subscriber down |
//! |---------|----------|----------|------------|-----------------|
//! | [`MemoryBroker`] (one process) | at most once; `publish` returns after every target handled it, and fails if one failed | per publisher, per subscriber | none | it has no subscription, so it gets nothing |
//! | [`EmbeddedBroker`] (default) | at most once; `publish` returns after every target handled it, and fails naming each target that did not | per publisher, per subscriber | none | while the registry still lists it, `publish` fails naming it; once its entry expired, it is no longer a target. Nothing is kept |
//! | [`NatsBroker`] core (feature `nats`) | at most once; `publish` returns once the server connection has it | per publisher | none | it misses what is published meanwhile; a subscriber slower than its publishers drops messages past a 65,536-message buffer (logged) |
//! | [`NatsBroker`] JetStream | at least once: acknowledged only on `Ok`, redelivered on error or crash, then moved to `<topic>.dead` | per stream | stored on the server | its messages wait for it |
//!
//! A topic nobody subscribes to swallows what is published on it, with every broker but
//! JetStream (which stores it).
//!
//! A handler's `Ok` acknowledges the message; an `Err`, a panic or a timeout does not. The
//! embedded and memory brokers report an unacknowledged message to the publisher as a failed
//! `publish`; they never redeliver on their own.
//!
//! ```
//! use std::sync::Arc;
//! use micro::broker::{Broker, MemoryBroker, Message, SubscribeOptions};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), micro::broker::BrokerError> {
//! let broker = MemoryBroker::new();
//! let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! let _sub = broker
//!     .subscribe("greetings", SubscribeOptions::default(), micro::broker::handler(move |m: Message| {
//!         sink.lock().unwrap().push(m.body.clone());
//!         async { Ok(()) }
//!     }))
//!     .await?;
//! broker.publish("greetings", Message::new(&b"hello"[..])).await?;
//! assert_eq!(seen.lock().unwrap()[0], &b"hello"[..]);
//! # Ok(()) }
//! ```

pub(crate) mod embedded;
mod memory;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
mod nats;

pub use embedded::{EmbeddedBroker, TOPIC_PREFIX};
pub use memory::MemoryBroker;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use nats::{DEAD_LETTER_SUFFIX, NatsBroker};

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use crate::{BoxFuture, Error, Metadata};

/// The header naming a message body's codec (`application/bincode`, `application/json`).
pub const CONTENT_TYPE: &str = "Content-Type";

/// An event: headers and an encoded body.
///
/// ```
/// let m = micro::broker::Message::new(&b"{}"[..]).header("Content-Type", "application/json");
/// assert_eq!(m.headers["Content-Type"], "application/json");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// Headers, such as [`CONTENT_TYPE`] and metadata given by the publisher.
    #[serde(default)]
    pub headers: Metadata,
    /// The encoded event.
    pub body: Bytes,
}

impl Message {
    /// A message with this body and no headers.
    ///
    /// See the [type-level example](Self).
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            headers: Metadata::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    ///
    /// See the [type-level example](Self).
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }
}

/// How to subscribe.
///
/// ```
/// let opts = micro::broker::SubscribeOptions::default().queue("billing");
/// assert_eq!(opts.queue.as_deref(), Some("billing"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Queue group: each message goes to one member of the group instead of to all.
    pub queue: Option<String>,
    /// For brokers that store messages (JetStream): the name under which the server
    /// remembers this subscriber's progress, so a restarted subscriber resumes where it
    /// stopped. Subscribers sharing a durable name share the messages, like a queue group.
    pub durable: Option<String>,
    /// For brokers that redeliver: attempts before a message goes to the dead-letter subject.
    pub max_deliver: Option<u32>,
    /// For brokers that redeliver: how long an unacknowledged delivery waits before it is
    /// sent again (a crashed subscriber's messages come back after this).
    pub ack_wait: Option<std::time::Duration>,
}

impl SubscribeOptions {
    /// Joins the queue group `name`.
    ///
    /// See the [type-level example](Self).
    #[must_use]
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = Some(name.into());
        self
    }

    /// Subscribes durably under `name` (brokers that store messages).
    ///
    /// ```
    /// let opts = micro::broker::SubscribeOptions::default().durable("billing");
    /// assert_eq!(opts.durable.as_deref(), Some("billing"));
    /// ```
    #[must_use]
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.durable = Some(name.into());
        self
    }

    /// Attempts before a message goes to the dead-letter subject (brokers that redeliver).
    ///
    /// ```
    /// let opts = micro::broker::SubscribeOptions::default().max_deliver(3);
    /// assert_eq!(opts.max_deliver, Some(3));
    /// ```
    #[must_use]
    pub fn max_deliver(mut self, attempts: u32) -> Self {
        self.max_deliver = Some(attempts);
        self
    }

    /// How long an unacknowledged delivery waits before redelivery (brokers that redeliver).
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = micro::broker::SubscribeOptions::default().ack_wait(Duration::from_secs(1));
    /// assert_eq!(opts.ack_wait, Some(Duration::from_secs(1)));
    /// ```
    #[must_use]
    pub fn ack_wait(mut self, wait: std::time::Duration) -> Self {
        self.ack_wait = Some(wait);
        self
    }
}

/// Handles delivered messages; `Ok` acknowledges.
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one message.
    fn handle(&self, topic: &str, msg: Message) -> BoxFuture<'static, Result<(), Error>>;
}

struct FnHandler<F>(F);

impl<F, Fut> EventHandler for FnHandler<F>
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    fn handle(&self, _topic: &str, msg: Message) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin((self.0)(msg))
    }
}

/// An [`EventHandler`] from an async closure.
///
/// See the [module docs](self) for an example.
pub fn handler<F, Fut>(f: F) -> Arc<dyn EventHandler>
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    Arc::new(FnHandler(f))
}

/// A live subscription; dropping it (or [`unsubscribe`](Self::unsubscribe)) ends it.
#[must_use = "dropping a subscription ends it"]
pub struct Subscription {
    topic: String,
    queue: Option<String>,
    end: Option<Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send + Sync>>,
}

impl Subscription {
    /// A subscription that runs `end` when it ends; brokers build them this way.
    pub fn new(
        topic: impl Into<String>,
        queue: Option<String>,
        end: impl FnOnce() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> Self {
        Self {
            topic: topic.into(),
            queue,
            end: Some(Box::new(end)),
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queue group, if any.
    pub fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// Ends the subscription and waits until the broker has forgotten it.
    pub async fn unsubscribe(mut self) {
        if let Some(end) = self.end.take() {
            end().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(end());
            }
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// A broker failure.
///
/// ```
/// let err = micro::broker::BrokerError::NotDelivered {
///     topic: "orders".into(),
///     failed: vec![("billing@127.0.0.1:9000".into(), micro::Error::internal("billing", "db down"))],
/// };
/// assert!(err.to_string().starts_with("orders: not delivered to billing@127.0.0.1:9000"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker could not be reached.
    Unavailable(String),
    /// Some targets did not acknowledge: each with what went wrong.
    NotDelivered {
        /// The topic published to.
        topic: String,
        /// Target (subscriber, or `queue@node`) and its error.
        failed: Vec<(String, Error)>,
    },
    /// The request itself is wrong (an empty topic…).
    Invalid(String),
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "broker unavailable: {why}"),
            Self::Invalid(why) => write!(f, "invalid: {why}"),
            Self::NotDelivered { topic, failed } => {
                write!(f, "{topic}: not delivered to ")?;
                for (i, (target, err)) in failed.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{target} ({})", err.detail)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BrokerError {}

impl From<BrokerError> for Error {
    fn from(err: BrokerError) -> Self {
        match &err {
            BrokerError::Invalid(_) => Error::bad_request("micro.broker", err),
            _ => Error::unavailable("micro.broker", err),
        }
    }
}

/// Publish/subscribe. See the [module docs](self).
pub trait Broker: Send + Sync + fmt::Debug + 'static {
    /// The name `MICRO_BROKER` uses.
    fn name(&self) -> &'static str;

    /// Connects to the broker's server, if it has one; brokers also connect on first use.
    ///
    /// # Errors
    /// When the server cannot be reached.
    fn connect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Flushes what is pending and disconnects; subscriptions end.
    ///
    /// # Errors
    /// When the flush fails.
    fn disconnect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Publishes `msg` on `topic`.
    ///
    /// # Errors
    /// When the broker is unreachable, or (for brokers that wait for acknowledgements) a
    /// target did not acknowledge.
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        msg: Message,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Delivers messages on `topic` to `handler` until the subscription is dropped.
    ///
    /// # Errors
    /// When the broker is unreachable.
    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        opts: SubscribeOptions,
        handler: Arc<dyn EventHandler>,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>>;
}

/// A new broker of the kind that `MICRO_BROKER` / `MICRO_BROKER_ADDRESS` settings name
/// (`embedded` when unset, on the registry the same settings name), as a
/// [`Runtime`](crate::Runtime) builds it. Tools use it to publish as services do.
///
/// ```
/// use micro::config::Options;
///
/// let opts = Options::resolve(|_: &str| None, &["tool".into(), "--broker=memory".into()]).unwrap();
/// assert_eq!(micro::broker::from_options(&opts).name(), "memory");
/// ```
pub fn from_options(opts: &crate::config::Options) -> Arc<dyn Broker> {
    from_options_with(opts, crate::registry::from_options(opts))
}

/// As [`from_options`], with the registry an embedded broker advertises its subscriptions in.
pub(crate) fn from_options_with(
    opts: &crate::config::Options,
    registry: Arc<dyn crate::registry::Registry>,
) -> Arc<dyn Broker> {
    match opts.broker.as_deref() {
        Some("memory") => Arc::new(MemoryBroker::new()),
        #[cfg(feature = "nats")]
        Some(kind @ ("nats" | "jetstream")) => {
            let address = opts
                .broker_address
                .as_deref()
                .unwrap_or(nats::DEFAULT_ADDRESS);
            Arc::new(NatsBroker::new(address).jetstream(kind == "jetstream"))
        }
        _ => {
            let mut broker = EmbeddedBroker::new(registry).address(embedded::inbox_address(opts));
            if let Some(name) = &opts.server_interface {
                broker = broker.interface(name.clone());
            }
            if let Some(address) = &opts.broker_advertise {
                broker = broker.advertise(address.clone());
            }
            Arc::new(broker)
        }
    }
}

/// Waits for every delivery of one message; fails naming each target that did not
/// acknowledge.
pub(crate) async fn gather<F>(
    topic: &str,
    deliveries: impl IntoIterator<Item = F>,
) -> Result<(), BrokerError>
where
    F: Future<Output = (String, Result<(), Error>)>,
{
    let failed: Vec<_> = futures_util::future::join_all(deliveries)
        .await
        .into_iter()
        .filter_map(|(target, r)| r.err().map(|e| (target, e)))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(BrokerError::NotDelivered {
            topic: topic.to_owned(),
            failed,
        })
    }
}
