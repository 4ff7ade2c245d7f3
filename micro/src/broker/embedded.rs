use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerError, EventHandler, Message, SubscribeOptions, Subscription};
use crate::config::Options;
use crate::handler::{EndpointDef, Handler, HandlerDef, Turn};
use crate::registry::{Node, Registry, Service as Record};
use crate::telemetry::TRACEPARENT;
use crate::{BoxFuture, Client, Context, Error, Payload, RunningService, Service};

/// The prefix of the registry names under which subscriptions are advertised:
/// `micro.broker.<topic>`, one node per subscription.
pub const TOPIC_PREFIX: &str = "micro.broker.";

/// Deliveries one process handles at once.
const INBOX_WORKERS: usize = 32;

/// Publish/subscribe with no server: the default.
///
/// Each subscription is advertised in the registry under `micro.broker.<topic>` as a node
/// pointing at this process's *inbox*, a small listener the broker starts on first
/// subscription. `publish` looks the topic
/// up, picks every broadcast subscriber and one member of each queue group, and delivers to
/// each directly over micro's transport. It returns once every target's handler acknowledged
/// the message, or fails naming each target that did not (a dead subscriber, a handler
/// error). A queue group whose chosen member cannot be reached is tried on its other members.
/// Messages are not stored: a subscriber that is down misses them.
///
/// The inbox listens where `MICRO_BROKER_ADDRESS` says; without it, on the host of
/// `MICRO_SERVER_ADDRESS` with a free port (so `:50051` gives an inbox on every interface,
/// and pub/sub crosses hosts with the same settings as calls); without either, on
/// `127.0.0.1:0`. It registers the address other hosts can dial by the same rule as a
/// service, `MICRO_SERVER_INTERFACE` included (see [`crate::addr`]).
///
/// ```
/// use std::sync::Arc;
/// use micro::broker::{Broker, EmbeddedBroker, Message, SubscribeOptions, handler};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), micro::broker::BrokerError> {
/// let registry = Arc::new(micro::registry::MemoryRegistry::new());
/// let broker = EmbeddedBroker::new(registry);
/// let _sub = broker
///     .subscribe("pings", SubscribeOptions::default(), handler(|_m: Message| async { Ok(()) }))
///     .await?;
/// broker.publish("pings", Message::new(&b"1"[..])).await?;
/// # Ok(()) }
/// ```
pub struct EmbeddedBroker {
    registry: Arc<dyn Registry>,
    address: String,
    interface: Option<String>,
    advertise: Option<String>,
    subs: Arc<DashMap<String, Arc<dyn EventHandler>>>,
    inbox: OnceCell<RunningService>,
    client: Client,
    subscribers: Arc<crate::discovery::Cache>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("registry", &self.registry.name())
            .field("address", &self.address)
            .field("subscriptions", &self.subs.len())
            .finish_non_exhaustive()
    }
}

static IDS: AtomicU64 = AtomicU64::new(1);

impl EmbeddedBroker {
    /// A broker advertising subscriptions in `registry`, with its inbox where this process's
    /// `MICRO_*` variables say (see the [type-level docs](Self)).
    ///
    /// See the [type-level example](Self).
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        // Its own runtime, reading no variable: deliveries go to inboxes by address.
        let runtime = crate::Runtime::builder()
            .registry(registry.clone())
            .build(Options::default());
        Self {
            address: "127.0.0.1:0".to_owned(),
            interface: None,
            advertise: None,
            client: runtime.client_builder().fast_path(false).build(),
            subscribers: Arc::new(crate::discovery::Cache::new(registry.clone())),
            registry,
            subs: Arc::new(DashMap::new()),
            inbox: OnceCell::new(),
        }
    }

    /// Listens for deliveries from now on, on `address` (as `MICRO_BROKER_ADDRESS`).
    ///
    /// ```
    /// let broker = micro::broker::EmbeddedBroker::new(std::sync::Arc::new(micro::registry::MemoryRegistry::new()))
    ///     .address("127.0.0.1:0");
    /// # drop(broker);
    /// ```
    #[must_use]
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// Registers the address of interface `name` when the inbox listens on every interface
    /// (as `MICRO_SERVER_INTERFACE`).
    ///
    /// ```
    /// let broker = micro::broker::EmbeddedBroker::new(std::sync::Arc::new(micro::registry::MemoryRegistry::new()))
    ///     .address(":0")
    ///     .interface("eth0");
    /// # drop(broker);
    /// ```
    #[must_use]
    pub fn interface(mut self, name: impl Into<String>) -> Self {
        self.interface = Some(name.into());
        self
    }

    /// Registers this inbox address instead of the bound one, for publishers that reach it
    /// through NAT or a port mapping (as `MICRO_BROKER_ADVERTISE`).
    ///
    /// ```
    /// let broker = micro::broker::EmbeddedBroker::new(std::sync::Arc::new(micro::registry::MemoryRegistry::new()))
    ///     .address(":4000")
    ///     .advertise("203.0.113.7:4000");
    /// # drop(broker);
    /// ```
    #[must_use]
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.advertise = Some(address.into());
        self
    }

    async fn inbox(&self) -> Result<&RunningService, BrokerError> {
        self.inbox
            .get_or_try_init(|| async {
                let options = Options {
                    server_interface: self.interface.clone(),
                    ..Options::default()
                };
                let mut inbox = Service::new("micro.broker")
                    .runtime(self.client.runtime().clone())
                    .options(options)
                    .address(self.address.clone());
                if let Some(address) = &self.advertise {
                    inbox = inbox.advertise(address.clone());
                }
                inbox
                    .drain(Duration::ZERO)
                    .unregistered()
                    .handle_workers(Inbox(self.subs.clone()), INBOX_WORKERS)
                    .start()
                    .await
                    .map_err(|e| BrokerError::Unavailable(format!("cannot start the inbox: {e}")))
            })
            .await
    }
}

/// Where the inbox listens for these settings: `MICRO_BROKER_ADDRESS`, else the server's
/// host with a free port, else loopback.
pub(crate) fn inbox_address(opts: &Options) -> String {
    if let Some(address) = &opts.broker_address {
        return address.clone();
    }
    opts.server_address
        .as_deref()
        .and_then(|a| crate::addr::ListenAddr::parse(a).ok())
        .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.with_port(0).to_string())
}

fn record(topic: &str, node: Node) -> Record {
    Record {
        name: format!("{TOPIC_PREFIX}{topic}"),
        version: String::new(),
        metadata: HashMap::new(),
        endpoints: Vec::new(),
        nodes: vec![node],
    }
}

impl Broker for EmbeddedBroker {
    fn name(&self) -> &'static str {
        "embedded"
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
            // Looked up through the same cache as calls: kept current by a registry watch,
            // not read from the registry on every publish.
            let subscribers: Arc<str> = format!("{TOPIC_PREFIX}{topic}").into();
            let nodes: Vec<Node> = match self.subscribers.lookup(&subscribers).await {
                Ok(versions) => versions
                    .iter()
                    .flat_map(|s| s.nodes.iter().cloned())
                    .collect(),
                Err(e) if e.code == 404 => return Ok(()),
                Err(e) => return Err(BrokerError::Unavailable(e.detail)),
            };
            let msg = &msg;
            let mut broadcast = Vec::new();
            let mut groups: HashMap<String, Vec<Node>> = HashMap::new();
            for node in nodes {
                match node.metadata.get("queue").filter(|q| !q.is_empty()) {
                    Some(q) => groups.entry(q.clone()).or_default().push(node),
                    None => broadcast.push(node),
                }
            }
            let deliveries = broadcast
                .into_iter()
                .map(|node| {
                    let target = format!("{}@{}", node.id, node.address);
                    Box::pin(async move { (target, self.deliver(&node, topic, msg.clone()).await) })
                        as BoxFuture<'_, (String, Result<(), Error>)>
                })
                .chain(groups.into_iter().map(|(queue, mut members)| {
                    fastrand::shuffle(&mut members);
                    Box::pin(async move {
                        let target = format!("queue {queue}");
                        let mut last = Error::unavailable("micro.broker", "no members");
                        for node in &members {
                            match self.deliver(node, topic, msg.clone()).await {
                                Ok(()) => return (target, Ok(())),
                                // Unreachable: another member may take it.
                                Err(e) if e.is_unavailable() => last = e,
                                Err(e) => {
                                    return (
                                        format!("{target} ({}@{})", node.id, node.address),
                                        Err(e),
                                    );
                                }
                            }
                        }
                        (target, Err(last))
                    }) as BoxFuture<'_, (String, Result<(), Error>)>
                }));
            super::gather(topic, deliveries).await
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
            let inbox = self.inbox().await?;
            let id = format!(
                "{topic}-{}-{:08x}",
                IDS.fetch_add(1, Ordering::Relaxed),
                fastrand::u32(..)
            );
            let mut metadata = HashMap::from([
                ("broker".to_owned(), "embedded".to_owned()),
                ("topic".to_owned(), topic.to_owned()),
            ]);
            if let Some(q) = &opts.queue {
                metadata.insert("queue".to_owned(), q.clone());
            }
            let record = record(
                topic,
                Node {
                    id: id.clone(),
                    address: inbox.address().to_owned(),
                    metadata,
                },
            );
            self.subs.insert(id.clone(), handler);
            let ttl = crate::DEFAULT_REGISTER_TTL;
            if let Err(e) = self.registry.register(&record, Some(ttl)).await {
                self.subs.remove(&id);
                return Err(BrokerError::Unavailable(e.to_string()));
            }
            let stop = CancellationToken::new();
            let renew = {
                let (registry, record, stop) =
                    (self.registry.clone(), record.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(crate::DEFAULT_REGISTER_INTERVAL);
                    every.tick().await;
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = every.tick() => {}
                        }
                        if let Err(e) = registry.register(&record, Some(ttl)).await {
                            tracing::warn!(topic = %record.name, "subscription renewal failed: {e}");
                        }
                    }
                })
            };
            let (registry, subs) = (self.registry.clone(), self.subs.clone());
            Ok(Subscription::new(topic, opts.queue, move || {
                Box::pin(async move {
                    stop.cancel();
                    let _ = renew.await;
                    if let Err(e) = registry.deregister(&record).await {
                        tracing::warn!(topic = %record.name, "unsubscribe failed: {e}");
                    }
                    subs.remove(&id);
                })
            }))
        })
    }
}

impl EmbeddedBroker {
    /// Delivers to one subscription node: directly when it is ours, else over the network.
    /// A subscription that ended (its entry not yet gone from our cache) counts as delivered:
    /// it no longer wants anything.
    async fn deliver(&self, node: &Node, topic: &str, message: Message) -> Result<(), Error> {
        let result = self.deliver_once(node, topic, message).await;
        match result {
            Err(e) if e.id == "micro.broker" && e.code == 404 => {
                self.subscribers.expire(&format!("{TOPIC_PREFIX}{topic}"));
                Ok(())
            }
            Err(e) if e.is_unavailable() => {
                self.subscribers.expire(&format!("{TOPIC_PREFIX}{topic}"));
                Err(e)
            }
            other => other,
        }
    }

    async fn deliver_once(&self, node: &Node, topic: &str, message: Message) -> Result<(), Error> {
        let local = self.subs.get(&node.id).map(|h| h.clone());
        if let Some(handler) = local {
            return handler.handle(topic, message).await;
        }
        // The delivery call is part of the event's trace: a child of its publish span, like
        // the subscriber's own `deliver` span.
        let parent = message.headers.get(TRACEPARENT).cloned();
        let delivery = Delivery {
            subscription: node.id.clone(),
            topic: topic.to_owned(),
            message,
        };
        let mut call = self
            .client
            .call::<Delivery, ()>("micro.broker".into(), "Broker.Deliver", delivery)
            .node(node.address.clone());
        if let Some(parent) = parent {
            call = call.metadata(TRACEPARENT, parent);
        }
        call.await
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Delivery {
    subscription: String,
    topic: String,
    message: Message,
}

/// Decodes a delivery as the inbox does, for the fuzz targets.
pub(crate) fn decode_delivery(req: Payload) -> Result<(), Error> {
    crate::__private::decode::<Delivery>(req, &Inbox::DEF.endpoints[0]).map(drop)
}

/// Receives deliveries for this process's subscriptions.
#[derive(Clone)]
struct Inbox(Arc<DashMap<String, Arc<dyn EventHandler>>>);

impl Handler for Inbox {
    const DEF: &'static HandlerDef = &HandlerDef {
        type_name: "Broker",
        service: "micro.broker",
        version: "latest",
        workers: INBOX_WORKERS,
        mailbox: 4096,
        reads: 0,
        endpoints: &[EndpointDef {
            name: "Broker.Deliver",
            method: "deliver",
            // Subscribers see their events one at a time, in order, per worker.
            turn: Turn::Write,
            request: "Delivery",
            response: "()",
            topic: "",
            queue: "",
            // A repeat would run the subscribers twice.
            idempotent: false,
            stream: crate::handler::StreamKind::Unary,
            doc: "",
            describe: || crate::registry::Description::of::<Delivery, ()>("Delivery", "()"),
        }],
    };

    fn dispatch<'a>(
        &'a mut self,
        _ctx: &'a Context,
        _endpoint: usize,
        req: Payload,
    ) -> BoxFuture<'a, Result<Payload, Error>> {
        Box::pin(async move {
            let d: Delivery = crate::__private::decode(req, &Self::DEF.endpoints[0])?;
            let handler = self
                .0
                .get(&d.subscription)
                .map(|h| h.clone())
                .ok_or_else(|| {
                    Error::not_found(
                        "micro.broker",
                        format_args!("no subscription {} here (it ended)", d.subscription),
                    )
                })?;
            handler.handle(&d.topic, d.message).await?;
            Ok(Payload::new(()))
        })
    }

    fn replicate(&self) -> Option<Self> {
        Some(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_listens_where_the_server_does_unless_told_otherwise() {
        let opts = |server: Option<&str>, broker: Option<&str>| Options {
            server_address: server.map(String::from),
            broker_address: broker.map(String::from),
            ..Options::default()
        };
        assert_eq!(inbox_address(&opts(None, None)), "127.0.0.1:0");
        assert_eq!(inbox_address(&opts(Some(":50051"), None)), ":0");
        assert_eq!(inbox_address(&opts(Some("[::]:1"), None)), "[::]:0");
        assert_eq!(
            inbox_address(&opts(Some("10.0.0.5:8080"), None)),
            "10.0.0.5:0"
        );
        assert_eq!(inbox_address(&opts(Some("memory:x"), None)), "127.0.0.1:0");
        assert_eq!(
            inbox_address(&opts(Some(":50051"), Some("10.0.0.5:7000"))),
            "10.0.0.5:7000"
        );
    }

    #[tokio::test]
    async fn a_subscription_registers_the_advertised_inbox_address() {
        use crate::registry::MemoryRegistry;
        let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
        let opts = Options {
            broker_advertise: Some("203.0.113.7:4000".into()),
            ..Options::default()
        };
        let broker = super::super::from_options_with(&opts, registry.clone());
        let handler = super::super::handler(|_| async { Ok(()) });
        let subscription = broker
            .subscribe("audits", SubscribeOptions::default(), handler)
            .await
            .unwrap();
        let records = registry
            .get_service(&format!("{TOPIC_PREFIX}audits"))
            .await
            .unwrap();
        assert_eq!(records[0].nodes[0].address, "203.0.113.7:4000");
        subscription.unsubscribe().await;
    }
}
