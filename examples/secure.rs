//! A service behind TLS and bearer tokens: who gets in, and what everyone else is told.
//!
//! ```text
//! cargo run --example secure
//! ```
//!
//! It makes a certificate authority and a certificate for the service (with rcgen; in
//! production they come from files: `MICRO_TLS_CERT`, `MICRO_TLS_KEY`, `MICRO_TLS_CA`),
//! serves a vault over TLS behind an access rule, then calls it four ways.

use std::sync::Arc;
use std::time::Duration;

use micro::auth::{Access, Account, AuthLayer, Jwt, Resource, Rule, Rules};
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};
use micro::transport::Tls;

#[derive(Default)]
pub struct Vault;

#[micro::service(name = "vault")]
impl Vault {
    /// What is in the vault; only accounts with the `vault.read` scope may look.
    pub async fn peek(&self, ctx: &Context) -> micro::Result<String> {
        let who = ctx.metadata().get(micro::auth::ACCOUNT).cloned();
        Ok(format!("gold, shown to {}", who.unwrap_or_default()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A CA, and a certificate it signs for the service's address.
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?
        .signed_by(&key, &ca, &ca_key)?;

    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let server_tls = Tls::builder()
        .cert_pem(cert.pem())
        .key_pem(key.serialize_pem())
        .build()?;
    let jwt = Jwt::hs256(b"the example's secret: 32 bytes or more").issuer("secure-example");
    let rules = Rules::new([Rule::new(
        Resource::service("vault", "Vault.*"),
        "vault.read",
        Access::Granted,
    )]);
    let vault = micro::Runtime::builder()
        .registry(registry.clone())
        .transport(Arc::new(server_tls))
        .build(Default::default())
        .service("vault")
        .address("127.0.0.1:0")
        .drain(Duration::ZERO)
        .layer(AuthLayer::new(jwt.clone(), rules))
        .handle(Vault)
        .start()
        .await?;
    println!(
        "vault serving TLS on {} (registered with transport={})",
        vault.address(),
        vault.record().nodes[0].metadata["transport"]
    );

    // A client that trusts the CA, with the token it was given.
    let client = |token: Option<String>| {
        let mut runtime = micro::Runtime::builder()
            .registry(registry.clone())
            .tls(Tls::builder().ca_pem(ca.pem()).build().expect("ca"));
        if let Some(token) = token {
            runtime = runtime.token(token);
        }
        VaultClient::new(runtime.build(Default::default()).client())
    };
    let hour = Duration::from_secs(3600);

    let reader = jwt.issue(&Account::new("ada").scope("vault.read"), hour)?;
    match client(Some(reader)).peek().await {
        Ok(answer) => println!("1. authorized call answered: {answer}"),
        Err(e) => println!("1. authorized call failed: {e}"),
    }

    match client(None).peek().await {
        Err(e) if e.code == 401 => println!("2. no token: refused with 401: {}", e.detail),
        other => println!("2. no token: unexpected {other:?}"),
    }

    let outsider = jwt.issue(&Account::new("bob").scope("billing"), hour)?;
    match client(Some(outsider)).peek().await {
        Err(e) if e.code == 403 => {
            println!("3. token without access: refused with 403: {}", e.detail)
        }
        other => println!("3. token without access: unexpected {other:?}"),
    }

    // A client without TLS settings, dialing the vault's address in plaintext.
    let plaintext = VaultClient::new(
        micro::Runtime::builder()
            .registry(registry.clone())
            .build(Default::default())
            .client(),
    );
    match plaintext.peek().node(vault.address()).await {
        Err(e) => println!("4. plaintext client: refused: {}", e.detail),
        Ok(answer) => println!("4. plaintext client: unexpectedly answered {answer}"),
    }

    vault.stop().await;
    Ok(())
}
