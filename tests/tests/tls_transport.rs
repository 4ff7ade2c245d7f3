//! Services over TLS: verified calls, and each way a connection is refused saying why.

use std::sync::Arc;

use micro::Runtime;
use micro::registry::{MemoryRegistry, Registry};
use micro::transport::Tls;
use tests::pki::Pki;
use tests::{Counter, CounterClient};

/// A counter served over `tls`, registered in a registry of its own.
async fn serve(tls: Tls) -> (micro::RunningService, Arc<dyn Registry>) {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let runtime = Runtime::builder()
        .registry(registry.clone())
        .transport(Arc::new(tls))
        .build(Default::default());
    let service = runtime
        .service("counter")
        .address("127.0.0.1:0")
        .drain(std::time::Duration::ZERO)
        .handle(Counter::new())
        .start()
        .await
        .expect("tls service starts");
    (service, registry)
}

/// A client of another runtime on the same registry (so never in-process), with `tls`.
fn client(registry: &Arc<dyn Registry>, tls: Option<Tls>) -> CounterClient {
    let mut builder = Runtime::builder().registry(registry.clone());
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let runtime = builder.build(Default::default());
    CounterClient::new(runtime.client_builder().retries(0).build())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_tls_is_answered_after_verifying_the_server() {
    let pki = Pki::new("tls-verified CA");
    let (service, registry) = serve(pki.server().build().unwrap()).await;
    let node = &service.record().nodes[0];
    assert_eq!(node.metadata["transport"], "tls", "nodes advertise tls");

    let counter = client(&registry, Some(pki.client()));
    assert_eq!(counter.add(2).await.unwrap(), 2);
    assert_eq!(counter.add(3).await.unwrap(), 5);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_refused_with_a_clear_error() {
    let pki = Pki::new("tls-plaintext CA");
    let (service, registry) = serve(pki.server().build().unwrap()).await;

    // Found through the registry: the client knows the node wants tls, and says it has none.
    let err = client(&registry, None).add(1).await.unwrap_err();
    assert!(
        err.detail
            .contains("the node serves tls, and this client has no tls settings"),
        "{err}"
    );

    // Dialed by address in plaintext: the server answers in a frame the client can read.
    let plaintext = client(&registry, None);
    let err = plaintext.add(1).node(service.address()).await.unwrap_err();
    assert!(
        err.detail
            .contains("this service accepts tls connections only"),
        "{err}"
    );
    assert_eq!(service.stats()[0].calls, 0, "no plaintext call ran");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_signed_by_an_unknown_ca_is_refused() {
    let pki = Pki::new("tls-server CA");
    let (service, registry) = serve(pki.server().build().unwrap()).await;

    let stranger = Pki::new("some other CA");
    let err = client(&registry, Some(stranger.client()))
        .add(1)
        .await
        .unwrap_err();
    assert!(
        err.detail.contains("is not signed by a trusted CA"),
        "{err}"
    );
    assert_eq!(service.stats()[0].calls, 0);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let pki = Pki::new("tls-expired CA");
    let leaf = pki.expired_leaf(&["127.0.0.1", "localhost"]);
    let tls = Tls::builder()
        .cert_pem(leaf.cert_pem)
        .key_pem(leaf.key_pem)
        .build()
        .unwrap();
    let (service, registry) = serve(tls).await;

    let err = client(&registry, Some(pki.client()))
        .add(1)
        .await
        .unwrap_err();
    assert!(err.detail.contains("has expired"), "{err}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = Pki::new("tls-mutual CA");
    let (service, registry) = serve(pki.server().client_auth(true).build().unwrap()).await;

    let err = client(&registry, Some(pki.client()))
        .add(1)
        .await
        .unwrap_err();
    assert!(
        err.detail.contains("requires a client certificate"),
        "{err}"
    );
    assert_eq!(service.stats()[0].calls, 0);

    let stranger = Pki::new("some other CA");
    let err = client(&registry, Some(stranger.client_with_cert()))
        .add(1)
        .await
        .unwrap_err();
    assert!(err.code >= 500, "{err}");
    assert_eq!(service.stats()[0].calls, 0);

    let counter = client(&registry, Some(pki.client_with_cert()));
    assert_eq!(counter.add(7).await.unwrap(), 7);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_served_after_reload_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("micro-tls-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let write = |pki: &Pki| {
        let leaf = pki.leaf(&["127.0.0.1", "localhost"]);
        std::fs::write(&cert, leaf.cert_pem).unwrap();
        std::fs::write(&key, leaf.key_pem).unwrap();
    };
    let (old, new) = (Pki::new("old CA"), Pki::new("new CA"));
    write(&old);
    let tls = Tls::builder()
        .cert_file(&cert)
        .key_file(&key)
        .build()
        .unwrap();
    let (service, registry) = serve(tls.clone()).await;

    let trusts_old = client(&registry, Some(old.client()));
    assert_eq!(trusts_old.add(1).await.unwrap(), 1);
    let trusts_new = client(&registry, Some(new.client()));
    let err = trusts_new.add(1).await.unwrap_err();
    assert!(
        err.detail.contains("is not signed by a trusted CA"),
        "{err}"
    );

    write(&new);
    tls.reload().unwrap();

    let trusts_new = client(&registry, Some(new.client()));
    assert_eq!(
        trusts_new.add(1).await.unwrap(),
        2,
        "new connections get the new certificate"
    );
    assert_eq!(
        trusts_old.add(1).await.unwrap(),
        3,
        "open connections keep theirs"
    );
    let err = client(&registry, Some(old.client()))
        .add(1)
        .await
        .unwrap_err();
    assert!(
        err.detail.contains("is not signed by a trusted CA"),
        "{err}"
    );

    // A broken file is refused, and what is served stays as it was.
    std::fs::write(&key, "not a key").unwrap();
    assert!(
        tls.reload()
            .unwrap_err()
            .to_string()
            .contains("no usable private key")
    );
    assert_eq!(
        client(&registry, Some(new.client())).add(1).await.unwrap(),
        4
    );
    service.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_configured_by_micro_variables_serves_dials_and_reloads() {
    let dir = std::env::temp_dir().join(format!("micro-tls-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (old, new) = (Pki::new("env old CA"), Pki::new("env new CA"));
    let write = |pki: &Pki| {
        let leaf = pki.leaf(&["127.0.0.1"]);
        std::fs::write(path("cert.pem"), leaf.cert_pem).unwrap();
        std::fs::write(path("key.pem"), leaf.key_pem).unwrap();
    };
    write(&old);
    std::fs::write(path("old-ca.pem"), &old.ca_pem).unwrap();
    std::fs::write(path("new-ca.pem"), &new.ca_pem).unwrap();
    let options = |vars: &[(&str, String)]| {
        let vars = vars.to_vec();
        micro::config::Options::resolve(
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            },
            &[],
        )
        .unwrap()
    };
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let server = Runtime::builder()
        .registry(registry.clone())
        .build(options(&[
            ("MICRO_TRANSPORT", "tls".into()),
            ("MICRO_TLS_CERT", path("cert.pem")),
            ("MICRO_TLS_KEY", path("key.pem")),
        ]));
    let service = server
        .service("counter")
        .address("127.0.0.1:0")
        .drain(std::time::Duration::ZERO)
        .handle(Counter::new())
        .start()
        .await
        .unwrap();
    assert_eq!(service.record().nodes[0].metadata["transport"], "tls");
    let client = |ca: &str| {
        let runtime = Runtime::builder()
            .registry(registry.clone())
            .build(options(&[("MICRO_TLS_CA", path(ca))]));
        CounterClient::new(runtime.client_builder().retries(0).build())
    };
    assert_eq!(client("old-ca.pem").add(1).await.unwrap(), 1);

    write(&new);
    assert!(server.reload_tls().unwrap(), "the runtime has tls settings");
    assert_eq!(client("new-ca.pem").add(1).await.unwrap(), 2);
    let err = client("old-ca.pem").add(1).await.unwrap_err();
    assert!(
        err.detail.contains("is not signed by a trusted CA"),
        "{err}"
    );
    service.stop().await;

    // A setting that names a file that is not there: start-up says which and why.
    let broken = Runtime::builder()
        .registry(registry.clone())
        .build(options(&[
            ("MICRO_TRANSPORT", "tls".into()),
            ("MICRO_TLS_CERT", path("missing.pem")),
            ("MICRO_TLS_KEY", path("key.pem")),
        ]));
    let err = broken
        .service("counter")
        .address("127.0.0.1:0")
        .handle(Counter::new())
        .start()
        .await
        .unwrap_err();
    assert!(
        err.detail.contains("cannot read the certificate") && err.detail.contains("missing.pem"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_dialing_a_plaintext_server_says_so() {
    let pki = Pki::new("tls-to-plaintext CA");
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let plain = Runtime::builder()
        .registry(registry.clone())
        .build(Default::default())
        .service("plain-counter")
        .rename()
        .address("127.0.0.1:0")
        .drain(std::time::Duration::ZERO)
        .handle(Counter::new())
        .start()
        .await
        .unwrap();
    // A record that claims tls for the plaintext server's address.
    let mut record = plain.record().clone();
    record.name = "claims-tls".into();
    record.nodes[0].id = "claims-tls-1".into();
    record.nodes[0]
        .metadata
        .insert("transport".into(), "tls".into());
    registry
        .register(&record, Some(std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    let runtime = Runtime::builder()
        .registry(registry.clone())
        .tls(pki.client())
        .build(Default::default());
    let client =
        CounterClient::with_service(runtime.client_builder().retries(0).build(), "claims-tls");
    let err = client.add(1).await.unwrap_err();
    assert!(
        err.detail.contains("does not speak tls")
            || err.detail.contains("during the tls handshake"),
        "{err}"
    );
    assert_eq!(plain.stats()[0].calls, 0);
    plain.stop().await;
}
