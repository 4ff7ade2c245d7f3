//! Bearer tokens and access rules: checked before the mailbox, 401 without a valid token,
//! 403 without access, and a service's own token on the calls its handlers make.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use micro::Runtime;
use micro::auth::{Access, Account, AuthLayer, Jwt, Resource, Rule, Rules};
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};
use tests::{Counter, CounterClient};

const SECRET: &[u8] = b"a test secret of at least 32 bytes!!";

fn jwt() -> Jwt {
    Jwt::hs256(SECRET).issuer("auth-tests")
}

fn token(account: Account) -> String {
    jwt().issue(&account, Duration::from_secs(600)).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Counter.Get` for anyone, every endpoint for the `counter` scope, nothing else.
fn rules() -> Rules {
    Rules::new([
        Rule::new(Resource::service("*", "Counter.Get"), "", Access::Granted),
        Rule::new(
            Resource::service("*", "Counter.*"),
            "counter",
            Access::Granted,
        ),
    ])
}

fn runtime(registry: &Arc<dyn Registry>) -> micro::RuntimeBuilder {
    Runtime::builder().registry(registry.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_before_the_mailbox_with_401_and_403() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let server = runtime(&registry).build(Default::default());
    let counter = Counter::new();
    let service = server
        .service("counter")
        .address("127.0.0.1:0")
        .drain(Duration::ZERO)
        .layer(AuthLayer::new(jwt(), rules()))
        .handle(counter.clone())
        .start()
        .await
        .unwrap();
    let allowed = token(Account::new("ada").scope("counter"));
    let no_access = token(Account::new("bob").scope("billing"));
    let expired = jwt()
        .issue_until(
            &Account::new("ada").scope("counter"),
            std::time::UNIX_EPOCH + Duration::from_secs(1_000_000),
        )
        .unwrap();
    let forged = Jwt::hs256(b"another secret of at least 32 bytes!")
        .issuer("auth-tests")
        .issue(
            &Account::new("eve").scope("counter"),
            Duration::from_secs(600),
        )
        .unwrap();

    // In-process (the server's own runtime) and over the wire (another runtime).
    let wire = runtime(&registry).build(Default::default());
    for (gets, client) in [server.client(), wire.client()].into_iter().enumerate() {
        let counter_client = CounterClient::new(client);
        let err = counter_client.add(1).await.unwrap_err();
        assert_eq!(err.code, 401, "no token: {err}");
        for (bad, why) in [
            (&expired, "expired"),
            (&forged, "signature"),
            (&"not.a.jwt".to_owned(), "invalid token"),
        ] {
            let err = counter_client
                .add(1)
                .metadata("Authorization", bearer(bad))
                .await
                .unwrap_err();
            assert_eq!(err.code, 401, "{why}: {err}");
            assert!(err.detail.contains(why), "{err}");
        }
        let err = counter_client
            .add(1)
            .metadata("Authorization", "Basic YWRhOmFkYQ==")
            .await
            .unwrap_err();
        assert_eq!(err.code, 401, "{err}");
        let err = counter_client
            .add(1)
            .metadata("Authorization", bearer(&no_access))
            .await
            .unwrap_err();
        assert_eq!(err.code, 403, "{err}");

        // None of those reached the mailbox: only the public calls below ever did.
        assert_eq!(counter.runs.load(Ordering::SeqCst), 0);
        assert_eq!(service.stats()[0].calls, gets as u64);

        // A public endpoint needs no token.
        assert_eq!(counter_client.get().await.unwrap(), 0);
    }

    let counter_client = CounterClient::new(wire.client());
    let n = counter_client
        .add(5)
        .metadata("authorization", bearer(&allowed))
        .await
        .unwrap();
    assert_eq!(n, 5);
    // The handler learns who called; a caller cannot claim an account itself.
    let who = counter_client
        .header(micro::auth::ACCOUNT.into())
        .metadata("Authorization", bearer(&allowed))
        .metadata(micro::auth::ACCOUNT, "root")
        .await
        .unwrap();
    assert_eq!(who.as_deref(), Some("ada"));
    assert_eq!(counter.runs.load(Ordering::SeqCst), 1);
    service.stop().await;
}

/// Calls the counter through its own context's client.
#[derive(Clone, Default)]
struct Front;

#[micro::service(name = "front")]
impl Front {
    pub async fn add(&self, ctx: &Context, by: u64) -> micro::Result<u64> {
        CounterClient::new(ctx.client().clone()).add(by).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_own_token_goes_with_the_calls_its_handlers_make() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let back = runtime(&registry)
        .build(Default::default())
        .service("counter")
        .address("127.0.0.1:0")
        .drain(Duration::ZERO)
        .layer(AuthLayer::new(jwt(), rules()))
        .handle(Counter::new())
        .start()
        .await
        .unwrap();
    let with_token = runtime(&registry)
        .token(token(Account::new("front").scope("counter")))
        .build(Default::default());
    let front = with_token
        .service("front")
        .address("127.0.0.1:0")
        .drain(Duration::ZERO)
        .handle(Front)
        .start()
        .await
        .unwrap();
    let caller = runtime(&registry).build(Default::default());
    let front_client = FrontClient::new(caller.client());
    // The caller has no token; the front's own goes with its call to the counter. Front
    // may be served by either node: both carry the token.
    assert_eq!(front_client.add(2).await.unwrap(), 2);
    assert_eq!(
        CounterClient::new(with_token.client())
            .add(3)
            .await
            .unwrap(),
        5
    );

    // A front without a token of its own is refused by the counter.
    let anonymous_front = runtime(&registry)
        .build(Default::default())
        .service("front-anonymous")
        .rename()
        .address("127.0.0.1:0")
        .drain(Duration::ZERO)
        .handle(Front)
        .start()
        .await
        .unwrap();
    let err = FrontClient::with_service(caller.client(), "front-anonymous")
        .add(1)
        .await
        .unwrap_err();
    assert_eq!(err.code, 401, "{err}");
    for s in [anonymous_front, front, back] {
        s.stop().await;
    }
}

/// A file of this test process's own, removed when dropped.
struct KeyFile(std::path::PathBuf);

impl KeyFile {
    fn new(name: &str, content: &[u8]) -> KeyFile {
        let path = std::env::temp_dir().join(format!("micro-auth-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        KeyFile(path)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Settings from these `MICRO_*` variables only.
fn settings(vars: &[(&str, &str)]) -> Result<micro::config::Options, micro::config::ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    micro::config::Options::resolve(
        move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        &[],
    )
}

/// Starts `counter` over TCP guarded by nothing but `vars`, and returns a client of another
/// runtime (no token of its own) with the running service.
async fn guarded_by_settings(
    vars: &[(&str, &str)],
) -> (CounterClient, micro::RunningService, Runtime) {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let server = runtime(&registry).build(settings(vars).unwrap());
    let service = server
        .service("counter")
        .address("127.0.0.1:0")
        .drain(Duration::ZERO)
        .handle(Counter::new())
        .start()
        .await
        .unwrap();
    let caller = runtime(&registry).build(Default::default());
    (CounterClient::new(caller.client()), service, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_alone_guard_a_service_with_a_shared_secret() {
    let key = KeyFile::new("secret", &[SECRET, b"\n"].concat());
    let path = key.0.display().to_string();
    let (counter, service, _server) = guarded_by_settings(&[
        ("MICRO_AUTH", "jwt"),
        ("MICRO_AUTH_KEY", &path),
        ("MICRO_AUTH_ISSUER", "auth-tests"),
        ("MICRO_AUTH_PUBLIC", "Counter.Get"),
    ])
    .await;

    // The public endpoint takes anyone; every other one a valid token of the issuer.
    assert_eq!(counter.get().await.unwrap(), 0);
    assert_eq!(counter.add(1).await.unwrap_err().code, 401);
    let ada = bearer(&token(Account::new("ada")));
    assert_eq!(
        counter
            .add(2)
            .metadata("Authorization", &ada)
            .await
            .unwrap(),
        2
    );
    let other_issuer = Jwt::hs256(SECRET)
        .issuer("elsewhere")
        .issue(&Account::new("eve"), Duration::from_secs(600))
        .unwrap();
    let err = counter
        .add(4)
        .metadata("Authorization", bearer(&other_issuer))
        .await
        .unwrap_err();
    assert_eq!(err.code, 401, "{err}");
    assert_eq!(counter.get().await.unwrap(), 2, "refused calls never ran");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_alone_guard_a_service_with_a_public_key() {
    use micro::auth::{Algorithm, DecodingKey, EncodingKey};
    // ECDSA P-256: the issuer keeps the private key, services get only the public one.
    let issuer_key = rcgen::KeyPair::generate().unwrap();
    let public = KeyFile::new("public.pem", issuer_key.public_key_pem().as_bytes());
    let path = public.0.display().to_string();
    let (counter, service, _server) =
        guarded_by_settings(&[("MICRO_AUTH", "jwt"), ("MICRO_AUTH_KEY", &path)]).await;

    let issue = |key: &rcgen::KeyPair| {
        let private = key.serialize_pem();
        Jwt::with_keys(
            Algorithm::ES256,
            Some(EncodingKey::from_ec_pem(private.as_bytes()).unwrap()),
            DecodingKey::from_ec_pem(key.public_key_pem().as_bytes()).unwrap(),
        )
        .issue(&Account::new("ada"), Duration::from_secs(600))
        .unwrap()
    };
    assert_eq!(
        counter.get().await.unwrap_err().code,
        401,
        "nothing is public"
    );
    let signed = bearer(&issue(&issuer_key));
    assert_eq!(
        counter
            .add(3)
            .metadata("Authorization", &signed)
            .await
            .unwrap(),
        3
    );
    let stranger = bearer(&issue(&rcgen::KeyPair::generate().unwrap()));
    let err = counter
        .add(3)
        .metadata("Authorization", &stranger)
        .await
        .unwrap_err();
    assert_eq!(err.code, 401, "{err}");
    service.stop().await;
}

#[tokio::test]
async fn auth_settings_that_cannot_work_stop_start_up_saying_why() {
    let err = settings(&[("MICRO_AUTH", "jwt")]).unwrap_err();
    assert!(err.to_string().contains("MICRO_AUTH_KEY"), "{err}");

    let short = KeyFile::new("short", b"too short\n");
    let not_a_key = KeyFile::new(
        "cert.pem",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    for (file, why) in [
        (short.0.display().to_string(), "at least 32 bytes"),
        (not_a_key.0.display().to_string(), "public key"),
        (
            "/nonexistent/micro-key".to_owned(),
            "/nonexistent/micro-key",
        ),
    ] {
        let options = settings(&[("MICRO_AUTH", "jwt"), ("MICRO_AUTH_KEY", &file)]).unwrap();
        let err = Runtime::in_memory()
            .service("counter")
            .options(options)
            .handle(Counter::new())
            .start()
            .await
            .unwrap_err();
        assert_eq!(err.code, 400, "{err}");
        assert!(err.detail.contains(why), "{why}: {err}");
    }
}
