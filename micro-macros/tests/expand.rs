//! What `#[micro::service]` generates, checked through the items themselves:
//! the routing table in `Handler::DEF` and the typed client's signatures.

use micro::prelude::*;
use micro::{Call, Handler};

/// Public types with `pub` handlers: the generated client must be public and
/// documented too, or `missing_docs` fails this file.
#[derive(Debug, Serialize, Deserialize)]
pub struct HelloRequest {
    /// Who to greet.
    pub name: String,
}

/// Counts greetings.
#[derive(Debug, Default)]
pub struct Greeter {
    greeted: u64,
}

#[micro::service(name = "greeter", version = "1.2.3", mailbox = 16)]
impl Greeter {
    /// Greets the caller.
    pub async fn say_hello(&mut self, req: HelloRequest) -> micro::Result<String> {
        self.greeted += 1;
        Ok(format!("Hello, {}!", req.name))
    }

    /// How many greetings so far.
    pub async fn greeted(&self, ctx: &Context, _: ()) -> micro::Result<u64> {
        let _ = ctx;
        Ok(self.greeted)
    }

    pub(crate) async fn get_v2_data(&self) -> Result<Vec<u8>, micro::Error> {
        Ok(vec![2])
    }

    /// Adds two numbers, under a keyword for a name.
    pub async fn r#type(&self, (a, b): (i64, i64)) -> micro::Result<i64> {
        Ok(a + b)
    }

    /// Kept for old callers.
    #[deprecated = "call `say_hello`"]
    pub async fn hello(&self, req: HelloRequest) -> micro::Result<String> {
        Ok(req.name)
    }

    /// Not an endpoint, though `pub`.
    #[micro(skip)]
    pub fn helper(&self) -> u64 {
        self.greeted
    }

    async fn private(&self) -> micro::Result<()> {
        Ok(())
    }
}

/// A block configured out below the attribute takes its generated items
/// along: were any compiled, `Gone` would fail the `Send` check.
#[allow(dead_code)]
struct Gone(std::rc::Rc<()>);

#[micro::service]
#[cfg(any())]
impl Gone {
    pub async fn missing(&self, _: ()) -> micro::Result<()> {
        Ok(())
    }
}

#[derive(Clone)]
struct Defaults;

#[micro::service(workers = 3)]
impl Defaults {
    pub(crate) async fn ping(&self) -> micro::Result<()> {
        Ok(())
    }
}

#[test]
fn wire_names_are_type_dot_camel_case_method() {
    let names: Vec<_> = Greeter::DEF.endpoints.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "Greeter.SayHello",
            "Greeter.Greeted",
            "Greeter.GetV2Data",
            "Greeter.Type",
            "Greeter.Hello",
        ]
    );
}

#[test]
fn endpoints_record_method_and_types_as_written() {
    let described: Vec<_> = Greeter::DEF
        .endpoints
        .iter()
        .map(|e| (e.method, e.request, e.response))
        .collect();
    assert_eq!(
        described,
        [
            ("say_hello", "HelloRequest", "String"),
            ("greeted", "()", "u64"),
            ("get_v2_data", "()", "Vec<u8>"),
            ("type", "(i64,i64)", "i64"),
            ("hello", "HelloRequest", "String"),
        ]
    );
}

#[test]
fn attribute_arguments_fill_the_definition() {
    let def = Greeter::DEF;
    assert_eq!(
        (def.type_name, def.service, def.version),
        ("Greeter", "greeter", "1.2.3")
    );
    assert_eq!((def.workers, def.mailbox), (1, 16));
}

#[test]
fn defaults_are_lowercase_type_name_latest_and_runtime_mailbox() {
    let def = Defaults::DEF;
    assert_eq!((def.service, def.version), ("defaults", "latest"));
    assert_eq!((def.workers, def.mailbox), (3, 0));
    assert!(Defaults.replicate().is_some());
    assert!(Greeter::default().replicate().is_none());
}

#[test]
fn skipped_and_private_methods_stay_ordinary_methods() {
    let greeter = Greeter::default();
    assert_eq!(greeter.helper(), 0);
    drop(greeter.private());
    assert!(
        Greeter::DEF
            .endpoints
            .iter()
            .all(|e| e.method != "helper" && e.method != "private")
    );
}

#[test]
fn client_has_one_typed_method_per_endpoint() {
    // Coercing to function pointers pins each generated signature.
    let _: fn(micro::Client) -> GreeterClient = GreeterClient::new;
    let _: fn(micro::Client, &'static str) -> GreeterClient = GreeterClient::with_service;
    let _: fn(&GreeterClient) -> &micro::Client = GreeterClient::client;
    let _: fn(&GreeterClient, HelloRequest) -> Call<HelloRequest, String> =
        GreeterClient::say_hello;
    // `_: ()` and no request at all both make a method without an argument.
    let _: fn(&GreeterClient) -> Call<(), u64> = GreeterClient::greeted;
    let _: fn(&GreeterClient) -> Call<(), Vec<u8>> = GreeterClient::get_v2_data;
    type Pair = (i64, i64);
    let _: fn(&GreeterClient, Pair) -> Call<Pair, i64> = GreeterClient::r#type;
    let _: fn(&DefaultsClient) -> Call<(), ()> = DefaultsClient::ping;
}

#[test]
fn client_calls_the_service_name_from_the_attribute() {
    let client = GreeterClient::new(micro::Client::new());
    let _ = client.client();
    assert!(format!("{client:?}").contains("greeter"));
    let other = GreeterClient::with_service(micro::Client::new(), "greeter.canary");
    assert!(format!("{other:?}").contains("greeter.canary"));
}
