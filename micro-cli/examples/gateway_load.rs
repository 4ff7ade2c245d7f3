//! A load generator for `micro api`: keeps N keep-alive connections busy for a while with
//! the same POST, then prints throughput, latency percentiles and errors.
//!
//! ```sh
//! cargo run --release -p micro-cli --example demo &
//! micro api --address 127.0.0.1:8080 &
//! cargo run --release -p micro-cli --example gateway_load -- \
//!     http://127.0.0.1:8080/demo/Greeter.Hello --body '{"name":"Ada"}' --connections 64 --duration 10s
//! ```
//!
//! Any answer that is not a 2xx, and any connection failure, is an error; the exit code is 1
//! when there was one (or no request got through), so scripts and tests can rely on it.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Load-tests an HTTP endpoint with POSTs over keep-alive connections.
#[derive(Debug, Parser)]
struct Args {
    /// The URL to POST to, such as http://127.0.0.1:8080/demo/Greeter.Hello (plain http).
    url: String,
    /// The request body.
    #[arg(long, default_value = "{}")]
    body: String,
    /// Connections, each with one request in flight at a time.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to send for, such as 10s.
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: Duration,
}

fn duration(text: &str) -> Result<Duration, String> {
    micro::config::parse_duration(text).ok_or_else(|| format!("not a duration: {text}"))
}

/// What one connection saw.
#[derive(Debug, Default)]
struct Tally {
    /// Microseconds per successful request.
    latencies: Vec<u32>,
    /// Answers that were not 2xx.
    bad_status: u64,
    /// Connections or requests that failed.
    failed: u64,
    /// The first few problems, to show.
    samples: Vec<String>,
}

impl Tally {
    fn note(&mut self, problem: String) {
        if self.samples.len() < 3 {
            self.samples.push(problem);
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some((authority, path)) = args.url.strip_prefix("http://").map(|rest| {
        rest.split_once('/')
            .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")))
    }) else {
        eprintln!("gateway_load: only http:// URLs are supported");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let tallies = runtime.block_on(async {
        let deadline = started + args.duration;
        let body = Bytes::from(args.body.clone());
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| {
                tokio::spawn(connection(
                    authority.to_owned(),
                    path.clone(),
                    body.clone(),
                    deadline,
                ))
            })
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.expect("load task"));
        }
        tallies
    });
    let elapsed = started.elapsed().as_secs_f64();

    let mut latencies: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    let bad_status: u64 = tallies.iter().map(|t| t.bad_status).sum();
    let failed: u64 = tallies.iter().map(|t| t.failed).sum();
    let ok = latencies.len() as u64;
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    println!("target       POST {}", args.url);
    println!("connections  {}", args.connections);
    println!("duration     {elapsed:.2} s");
    println!(
        "requests     {} ok, {bad_status} non-2xx, {failed} failed",
        ok
    );
    println!("throughput   {:.0} requests/s", ok as f64 / elapsed);
    println!(
        "latency      p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().map_or(0.0, |us| f64::from(*us) / 1000.0),
    );
    let errors = bad_status + failed;
    println!("errors       {errors}");
    for sample in tallies.iter().flat_map(|t| &t.samples).take(5) {
        println!("  e.g. {sample}");
    }
    if errors == 0 && ok > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One keep-alive connection sending requests back to back until `deadline`, reconnecting
/// after a failure.
async fn connection(authority: String, path: String, body: Bytes, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    'connect: while Instant::now() < deadline {
        let stream = match tokio::net::TcpStream::connect(&authority).await {
            Ok(stream) => stream,
            Err(e) => {
                tally.failed += 1;
                tally.note(format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(e) => {
                    tally.failed += 1;
                    tally.note(format!("handshake: {e}"));
                    continue;
                }
            };
        tokio::spawn(conn);
        while Instant::now() < deadline {
            let request = hyper::Request::post(path.as_str())
                .header(hyper::header::HOST, authority.as_str())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .expect("request");
            let sent = Instant::now();
            let outcome = async {
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let bytes = response.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, bytes))
            }
            .await;
            match outcome {
                Ok((status, _)) if status.is_success() => {
                    let us = sent.elapsed().as_micros();
                    tally.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                Ok((status, bytes)) => {
                    tally.bad_status += 1;
                    tally.note(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
                }
                Err(e) => {
                    tally.failed += 1;
                    tally.note(format!("request: {e}"));
                    continue 'connect;
                }
            }
        }
        break;
    }
    tally
}
