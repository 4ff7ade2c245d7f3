//! One echo call with a 16-byte body through the generated client: in process (the fast
//! path into the actor's mailbox), and over TCP, both found through the registry and
//! addressed to the node directly (no registry lookup). Then the client's own path in two
//! more shapes: with a layer added (`ClientBuilder::layer`, which type-erases the stack
//! below it), and 64 callers sharing one client and connection, where what calls share
//! (the retry budget, the connection's tables) is contended; the time is per call.
//!
//! ```text
//! cargo bench -p benches --bench call
//! ```

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{Echo, EchoClient, payload};
use criterion::{Bencher, Criterion};
use tokio::runtime::Runtime;

fn call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let service = rt
        .block_on(micro::Service::new("echo").handle(Echo).start())
        .expect("echo service starts");
    let body = payload(16);

    let mut group = c.benchmark_group("call");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let local = EchoClient::new(service.client());
    group.bench_function("in_process_16B", |b| {
        on_worker(b, &rt, {
            let (local, body) = (local.clone(), body.clone());
            move || {
                let call = local.echo(body.clone());
                async move { black_box(call.await.expect("echo")) }
            }
        });
    });

    let tcp = EchoClient::new(micro::Client::builder().fast_path(false).build());
    group.bench_function("tcp_16B", |b| {
        on_worker(b, &rt, {
            let (tcp, body) = (tcp.clone(), body.clone());
            move || {
                let call = tcp.echo(body.clone());
                async move { black_box(call.await.expect("echo")) }
            }
        });
    });

    let node: Arc<str> = service.address().into();
    group.bench_function("tcp_node_16B", |b| {
        on_worker(b, &rt, {
            let (tcp, body, node) = (tcp.clone(), body.clone(), node.clone());
            move || {
                let call = tcp.echo(body.clone()).node(&*node);
                async move { black_box(call.await.expect("echo")) }
            }
        });
    });

    let layered = EchoClient::new(
        service
            .runtime()
            .client_builder()
            .layer(tower::layer::util::Identity::new())
            .build(),
    );
    group.bench_function("in_process_16B_layered", |b| {
        on_worker(b, &rt, {
            let (layered, body) = (layered.clone(), body.clone());
            move || {
                let call = layered.echo(body.clone());
                async move { black_box(call.await.expect("echo")) }
            }
        });
    });

    group.bench_function("tcp_node_16B_64_callers", |b| {
        let (tcp, body, node) = (tcp.clone(), body.clone(), node.clone());
        b.to_async(&rt).iter_custom(move |iters| {
            let (tcp, body, node) = (tcp.clone(), body.clone(), node.clone());
            async move {
                let started = Instant::now();
                let callers: Vec<_> = (0..CALLERS)
                    .map(|i| {
                        let (tcp, body, node) = (tcp.clone(), body.clone(), node.clone());
                        // Caller i makes its share of `iters`, so the total is `iters`.
                        let calls = iters / CALLERS + u64::from(i < iters % CALLERS);
                        tokio::spawn(async move {
                            for _ in 0..calls {
                                black_box(tcp.echo(body.clone()).node(&*node).await.expect("echo"));
                            }
                        })
                    })
                    .collect();
                for caller in callers {
                    caller.await.expect("caller task");
                }
                started.elapsed()
            }
        });
    });

    group.finish();
    rt.block_on(service.stop());
}

/// Callers in the concurrent case.
const CALLERS: u64 = 64;

/// Times `iters` sequential calls from a task on a runtime worker, where a handler's own
/// calls run. Awaiting from `block_on` instead would put the caller on the main thread and
/// add a cross-thread wake-up to every reply.
fn on_worker<F, Fut>(b: &mut Bencher<'_>, rt: &Runtime, call: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future + Send,
{
    b.to_async(rt).iter_custom(|iters| {
        let call = call.clone();
        async move {
            tokio::spawn(async move {
                let started = Instant::now();
                for _ in 0..iters {
                    call().await;
                }
                started.elapsed()
            })
            .await
            .expect("benchmark task")
        }
    });
}

// What `criterion_group!` and `criterion_main!` expand to, minus the undocumented `pub fn`
// that the workspace's `missing_docs` lint rejects.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    call(&mut criterion);
    criterion.final_summary();
}
