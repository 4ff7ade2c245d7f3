//! The registry, broker and client every command works through, from the same settings
//! services read.

use std::sync::Arc;

use micro::Client;
use micro::codec::ContentType;
use micro::config::Options;
use micro::registry::Registry;

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
    /// Reads the `MICRO_*` variables and the global flags, and builds the backends as a
    /// service would.
    pub(crate) fn new(global: &Global) -> Result<Self, Failure> {
        let options = Options::resolve(|name: &str| std::env::var(name).ok(), &global.to_args())
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let registry = micro::registry::from_options(&options);
        let broker = micro::broker::from_options(&options);
        // A runtime of these settings, so that the token (`--token` over `MICRO_AUTH_TOKEN`)
        // and the TLS settings are the ones resolved here.
        let runtime = micro::Runtime::builder()
            .registry(registry.clone())
            .broker(broker.clone())
            .build(options.clone());
        let mut client = Client::builder()
            .runtime(runtime)
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
