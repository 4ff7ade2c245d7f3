//! A framework for building microservices: a service is an ordinary `impl` block.
//!
//! Put `#[micro::service]` on an `impl` block and its `pub async fn`s become endpoints,
//! served by a mailbox actor that owns the value (so `&mut self` handlers need no lock), and
//! callable through a generated, typed client, in the same process or across the network.
//!
//! ```
//! use micro::prelude::*;
//!
//! #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
//! pub struct Consignment { pub id: String, pub weight: i32 }
//!
//! #[derive(Default)]
//! pub struct Shipping { repo: Vec<Consignment> }
//!
//! #[micro::service(name = "shippy.consignment")]
//! impl Shipping {
//!     /// Stores a new consignment.
//!     pub async fn create_consignment(&mut self, c: Consignment) -> micro::Result<Consignment> {
//!         self.repo.push(c.clone()); // no lock: the actor owns `self`
//!         Ok(c)
//!     }
//!
//!     /// Lists every consignment stored so far.
//!     pub async fn get_consignments(&self) -> micro::Result<Vec<Consignment>> {
//!         Ok(self.repo.clone())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> micro::Result<()> {
//! let service = micro::Service::new("shippy.consignment").runtime(micro::Runtime::in_memory())
//!     .handle(Shipping::default())
//!     .start()
//!     .await?;
//!
//! let client = ShippingClient::new(service.client());
//! let c = Consignment { id: "c1".into(), weight: 550 };
//! client.create_consignment(c.clone()).await?;
//! assert_eq!(client.get_consignments().await?, vec![c]);
//! # service.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Guides
//!
//! - [The runtime](runtime): what services and clients share, as one value, and the one
//!   rule of precedence between code, variables and flags.
//! - [Writing handlers](docs::handlers): which methods become endpoints, their shapes,
//!   context, errors, event handlers (`#[micro::subscribe]`), idempotent handlers, and what
//!   the macros reject.
//! - [Actors and back-pressure](docs::actors): mailboxes, workers, overload, deadlines and
//!   panics.
//! - [Configuration](config): the `MICRO_*` variables and `--flags`, and what a service does
//!   from start to shutdown ([`Service::run`]).
//! - [Deploying on several hosts](docs::deployment): etcd and NATS, the variables each process
//!   needs, the advertised address, containers.
//! - [Security](docs::security): TLS between services, bearer tokens and access rules, the
//!   gateway's guard.
//! - [Calls](client): the client's tower stack: deadline, retry policy, discovery cache,
//!   selection, outlier ejection, the in-process fast path.
//! - [Layers](middleware): any tower layer around calls and around a service's requests.
//! - [Events](broker): the brokers and what each guarantees.
//! - The [wire format](wire) and the pluggable parts: [`registry`] (host-local default,
//!   memory, etcd, NATS), [`selector`], [`transport`], [`codec`].
//! - [Logs and traces](telemetry), [metrics and health](metrics).
//!
//! # Cargo features
//!
//! | feature | adds |
//! |---------|------|
//! | `etcd` | [`registry::EtcdRegistry`] (`MICRO_REGISTRY=etcd`); building needs `protoc` |
//! | `nats` | [`registry::NatsRegistry`] and [`broker::NatsBroker`] (`MICRO_REGISTRY=nats`, `MICRO_BROKER=nats` or `jetstream`) |
//! | `tls` | `transport::Tls`: TCP with TLS through rustls (`MICRO_TRANSPORT=tls`, `MICRO_TLS_*`) |
//! | `jwt` | `auth::Jwt`: JSON Web Tokens for the [`auth`] layer |
//! | `prometheus` | [metrics and health probes](metrics) over HTTP on `MICRO_METRICS_ADDRESS` |
//! | `otel` | OpenTelemetry export of the [spans](telemetry) over OTLP, set up by `OTEL_EXPORTER_OTLP_*` |
//!
//! The default build needs no server and no system library.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod addr;
pub mod auth;
pub mod broker;
pub mod client;
pub mod codec;
pub mod config;
mod context;
mod discovery;
pub mod docs;
mod error;
mod framed;
mod handler;
pub mod metrics;
pub mod middleware;
mod payload;
pub mod registry;
pub mod runtime;
pub mod selector;
mod server;
mod service;
mod stream;
pub mod telemetry;
pub mod transport;
pub mod wire;

#[doc(hidden)]
pub mod __private;

/// Decoders of network bytes, for the fuzz targets in `fuzz/`. Not public API.
#[doc(hidden)]
pub mod __fuzz;

pub use client::{Call, Client, ClientBuilder, Publish, StreamCall};
pub use context::{Context, Metadata};
pub use error::{Error, Result};
pub use handler::{BoxFuture, EndpointDef, Handler, HandlerDef, Message, Reads, StreamKind, Turn};
pub use payload::Payload;
pub use runtime::{Runtime, RuntimeBuilder};
pub use server::{
    DEFAULT_FRAME_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_IN_FLIGHT, DEFAULT_WRITE_BUFFER, HandlerStats,
    Health, ServerLimits, Stats,
};
pub use service::{
    DEFAULT_DRAIN, DEFAULT_MAILBOX, DEFAULT_READS, DEFAULT_REGISTER_INTERVAL, DEFAULT_REGISTER_TTL,
    DEFAULT_SHUTDOWN_TIMEOUT, RunningService, Service,
};
pub use stream::{Closed, StreamSender, Streaming};

/// Turns an inherent `impl` block into a service: routing, registration and a typed client.
///
/// See [the handler guide](docs::handlers) for the full rules; in short:
///
/// ```
/// use micro::prelude::*;
///
/// #[derive(Default)]
/// struct Greeter { greeted: u64 }
///
/// #[micro::service(name = "greeter", version = "1.0.0")]
/// impl Greeter {
///     /// Becomes `Greeter.SayHello`.
///     pub async fn say_hello(&mut self, name: String) -> micro::Result<String> {
///         self.greeted += 1;
///         Ok(format!("Hello, {name}!"))
///     }
///
///     // Not `pub`: a helper, not an endpoint.
///     fn count(&self) -> u64 { self.greeted }
/// }
/// // Generated: `GreeterClient`, with `say_hello(&self, String) -> Call<String, String>`.
/// ```
pub use micro_macros::service;

/// Receives the events published on a topic: a method of a [`service`] block, or a free
/// `async fn`.
///
/// See the [`broker`] module for what delivery guarantees; in short, a subscriber method runs
/// in the service's actor like its calls, so `&mut self` needs no lock, and `Ok(())`
/// acknowledges the event to the publisher:
///
/// ```
/// use std::sync::Arc;
/// use micro::broker::MemoryBroker;
/// use micro::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct Created { id: String, weight: u32 }
///
/// #[derive(Default)]
/// struct Tally { weight: u64 }
///
/// #[micro::service(name = "tally")]
/// impl Tally {
///     /// Receives every `consignment.created` event, one at a time.
///     #[micro::subscribe(topic = "consignment.created")]
///     async fn on_created(&mut self, event: Created) -> micro::Result<()> {
///         self.weight += u64::from(event.weight);
///         Ok(())
///     }
///
///     /// The total weight created so far.
///     pub async fn weight(&self) -> micro::Result<u64> {
///         Ok(self.weight)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> micro::Result<()> {
/// let broker = Arc::new(MemoryBroker::new());
/// let service = micro::Service::new("tally").runtime(micro::Runtime::in_memory())
///     .broker(broker.clone())
///     .handle(Tally::default())
///     .start()
///     .await?;
///
/// let client = micro::Client::builder().broker(broker).build();
/// client.publish("consignment.created", &Created { id: "c1".into(), weight: 550 }).await?;
/// client.publish("consignment.created", &Created { id: "c2".into(), weight: 450 }).await?;
/// assert_eq!(TallyClient::new(service.client()).weight().await?, 1000);
/// # service.stop().await;
/// # Ok(())
/// # }
/// ```
pub use micro_macros::subscribe;

/// What most services need: `use micro::prelude::*;`.
///
/// Brings serde's derives, [`Context`], [`Error`] and the [`Service`] and [`Client`] types.
///
/// ```
/// use micro::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct Ping;
/// ```
pub mod prelude {
    pub use crate::{Client, Context, Error, Service};
    pub use serde::{Deserialize, Serialize};
}
