//! `micro`: the command-line toolkit for services built with the `micro` framework.
//!
//! ```text
//! micro services                          list what the registry knows
//! micro describe SERVICE                  versions, nodes, endpoints and their types
//! micro call SERVICE ENDPOINT '{json}'    call an endpoint, print the JSON reply
//! micro publish TOPIC '{json}'            publish an event
//! micro health SERVICE                    Debug.Health of every node
//! micro stats SERVICE                     Debug.Stats of every node
//! micro watch [SERVICE]                   registry changes as they happen
//! micro api                               HTTP gateway: POST /{service}/{endpoint}
//! micro web                               the dashboard
//! micro mcp                               the services as tools for AI agents (MCP)
//! micro new NAME                          a new service crate
//! ```
//!
//! Every command finds services the way services do: through the `MICRO_*` variables and the
//! same `--flags` (`--registry`, `--registry_address`, `--broker`, …).
//!
//! Exit codes: 0 success; 1 the operation failed (the error, as micro's error JSON, is on
//! stderr); 2 the command line is wrong (unknown command or flag, a request that is not JSON,
//! a bad `MICRO_*` value).

mod api;
mod cli;
mod commands;
mod env;
mod http;
mod mcp;
mod new;
mod output;
mod probe;
mod socket;
mod stream;
mod web;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::env::Env;

/// Why a command did not succeed, and so what to print and how to exit.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The command line or configuration is wrong: a message, exit 2.
    Usage(String),
    /// The operation failed: micro's error JSON on stderr, exit 1.
    Micro(micro::Error),
    /// The command already said what went wrong (a table of failed nodes): exit 1.
    Reported,
    /// Whoever read our output went away (`micro services | head -1`): stop, exit 0.
    Closed,
}

impl From<micro::Error> for Failure {
    fn from(err: micro::Error) -> Self {
        Failure::Micro(err)
    }
}

impl From<micro::registry::RegistryError> for Failure {
    fn from(err: micro::registry::RegistryError) -> Self {
        Failure::Micro(err.into())
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::Closed
        } else {
            Failure::Micro(micro::Error::internal("micro.cli", err))
        }
    }
}

fn main() -> ExitCode {
    // clap prints its own usage errors and exits 2; `--help` and `--version` exit 0.
    let cli = Cli::parse();
    let stderr = std::io::stderr();
    {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(stderr.is_terminal())
            .with_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            );
        let registry = tracing_subscriber::registry().with(logs);
        // Spans are exported under the command's name unless OTEL_SERVICE_NAME says otherwise.
        #[cfg(feature = "otel")]
        let registry = registry.with(micro::telemetry::otel::layer(Some(match cli.command {
            Command::Api(_) => "micro.api",
            Command::Web(_) => "micro.web",
            Command::Mcp(_) => "micro.mcp",
            _ => "micro",
        })));
        registry.init();
    }

    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    #[cfg(feature = "otel")]
    micro::telemetry::otel::shutdown();
    match result {
        Ok(()) | Err(Failure::Closed) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("micro: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Micro(err)) => {
            eprintln!("{err:#}");
            ExitCode::from(1)
        }
        Err(Failure::Reported) => ExitCode::from(1),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    // Writing files needs no registry.
    if let Command::New(args) = cli.command {
        return new::run(args);
    }
    let env = Env::new(&cli.global)?;
    match cli.command {
        Command::Services { output } => commands::services(&env, output.output).await,
        Command::Describe { service, output } => {
            commands::describe(&env, &service, output.output).await
        }
        Command::Call(args) => commands::call(&env, args).await,
        Command::Publish(args) => commands::publish(&env, args).await,
        Command::Stream(args) => stream::run(&env, args).await,
        Command::Health { service, output } => {
            commands::health(&env, &service, output.output).await
        }
        Command::Stats { service, output } => commands::stats(&env, &service, output.output).await,
        Command::Watch { service, output } => {
            commands::watch(&env, service.as_deref(), output.output).await
        }
        Command::Api(args) => api::run(env, args).await,
        Command::Web(args) => web::run(env, args).await,
        Command::Mcp(args) => mcp::run(env, args).await,
        Command::New(_) => unreachable!("handled above"),
    }
}
