//! The registry, broker and client every command works through, from the same settings
//! services read.

use std::sync::Arc;

use micro::Client;
use micro::broker::{Broker, EmbeddedBroker, MemoryBroker};
use micro::codec::ContentType;
use micro::config::Options;
use micro::registry::{LocalRegistry, MemoryRegistry, Registry};

use crate::Failure;
use crate::cli::Global;

/// What the commands share.
#[derive(Debug)]
pub(crate) struct Env {
    pub(crate) registry: Arc<dyn Registry>,
    /// Speaks JSON, both for calls and for published events.
    pub(crate) client: Client,
}

impl Env {
    /// Reads the `MICRO_*` variables and the global flags, as a service would.
    ///
    /// The runtime's own `default_registry()` and `default_broker()` read only the
    /// environment (and its `from_options` is private), so the backends are built here from
    /// the resolved options instead, as the runtime builds them.
    pub(crate) fn new(global: &Global) -> Result<Self, Failure> {
        let options = Options::resolve(|name: &str| std::env::var(name).ok(), &global.to_args())
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let registry = registry(&options)?;
        let broker = broker(&options, registry.clone())?;
        let mut client = Client::builder()
            .registry(registry.clone())
            .broker(broker)
            .content_type(ContentType::Json)
            // The toolkit hosts no services: every call crosses the network.
            .fast_path(false);
        if let Some(timeout) = options.client_request_timeout {
            client = client.timeout(timeout);
        }
        if let Some(retries) = options.client_retries {
            client = client.retries(retries);
        }
        if let Some(n) = options.client_pool_size {
            client = client.connections_per_node(n);
        }
        Ok(Env {
            registry,
            client: client.build(),
        })
    }
}

fn unsupported(what: &str, name: &str) -> Failure {
    let feature = match name {
        "jetstream" => "nats",
        other => other,
    };
    Failure::Usage(format!(
        "this micro was built without the {name} {what}: \
         cargo install --path micro-cli --features {feature}"
    ))
}

fn registry(options: &Options) -> Result<Arc<dyn Registry>, Failure> {
    Ok(match options.registry.as_deref() {
        None | Some("local") => match &options.registry_address {
            Some(dir) => Arc::new(LocalRegistry::at(dir)),
            None => Arc::new(LocalRegistry::new()),
        },
        // A memory registry is private to one process: it only makes sense for tests.
        Some("memory") => Arc::new(MemoryRegistry::new()),
        #[cfg(feature = "etcd")]
        Some("etcd") => Arc::new(micro::registry::EtcdRegistry::new(
            options
                .registry_address
                .as_deref()
                .unwrap_or("127.0.0.1:2379"),
        )),
        #[cfg(feature = "nats")]
        Some("nats") => Arc::new(micro::registry::NatsRegistry::new(
            options
                .registry_address
                .as_deref()
                .unwrap_or("nats://127.0.0.1:4222"),
        )),
        #[cfg(feature = "mdns")]
        Some("mdns") => Arc::new(match options.registry_address.as_deref() {
            Some("loopback") => micro::registry::MdnsRegistry::loopback(),
            _ => micro::registry::MdnsRegistry::new(),
        }),
        // Known to the runtime (a feature another crate turned on), not built in here.
        Some(name) => return Err(unsupported("registry", name)),
    })
}

fn broker(options: &Options, registry: Arc<dyn Registry>) -> Result<Arc<dyn Broker>, Failure> {
    Ok(match options.broker.as_deref() {
        None | Some("embedded") => Arc::new(EmbeddedBroker::new(registry)),
        Some("memory") => Arc::new(MemoryBroker::new()),
        #[cfg(feature = "nats")]
        Some(kind @ ("nats" | "jetstream")) => Arc::new(
            micro::broker::NatsBroker::new(
                options
                    .broker_address
                    .as_deref()
                    .unwrap_or("nats://127.0.0.1:4222"),
            )
            .jetstream(kind == "jetstream"),
        ),
        Some(name) => return Err(unsupported("broker", name)),
    })
}
