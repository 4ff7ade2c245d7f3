//! What `#[micro::service]` and `#[micro::subscribe]` generate, checked
//! through the items themselves: the routing table in `Handler::DEF` and the
//! typed client's signatures.

use micro::prelude::*;
use micro::{Call, Handler, Turn};

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

#[micro::service(
    name = "greeter",
    version = "1.2.3",
    mailbox = 16,
    reads = 8,
    on_panic = "rebuild"
)]
impl Greeter {
    /// Greets the caller.
    pub async fn say_hello(&mut self, req: HelloRequest) -> micro::Result<String> {
        self.greeted += 1;
        Ok(format!("Hello, {}!", req.name))
    }

    /// How many greetings so far.
    #[micro(idempotent)]
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

/// An event.
#[derive(Debug, Serialize, Deserialize)]
pub struct Created {
    /// The consignment created.
    pub id: String,
}

/// Calls and subscribers in one block.
#[derive(Debug, Default)]
pub struct Audit {
    created: u64,
}

#[micro::service(name = "audit")]
impl Audit {
    /// Counts created consignments; private, as subscribers may be.
    #[micro::subscribe(topic = "consignment.created", queue = "audit")]
    async fn on_created(&mut self, ctx: &Context, event: Created) -> micro::Result<()> {
        let _ = (ctx, event.id);
        self.created += 1;
        Ok(())
    }

    /// A `pub` subscriber, in the short spelling, still gets no client method.
    #[subscribe(topic = "consignment.deleted")]
    pub async fn on_deleted(&self, id: String) -> Result<(), micro::Error> {
        let _ = id;
        Ok(())
    }

    /// How many consignments were created.
    pub async fn created(&self) -> micro::Result<u64> {
        Ok(self.created)
    }
}

/// Subscribers only: no client is generated (see the UI case
/// `subscribe_only_block_has_no_client`).
struct Sink;

#[micro::service]
impl Sink {
    #[micro::subscribe(topic = "sink")]
    async fn drain(&self, _: u64) -> micro::Result<()> {
        Ok(())
    }
}

/// Counts created consignments, standalone.
#[micro::subscribe(topic = "consignment.created", queue = "counter")]
pub async fn count_created(event: Created) -> micro::Result<()> {
    let _ = event.id;
    Ok(())
}

#[micro::subscribe(topic = "consignment.deleted")]
async fn log_deleted(ctx: &Context, id: String) -> Result<(), micro::Error> {
    let _ = ctx;
    if id.is_empty() {
        return Err(micro::Error::bad_request("log", "no id"));
    }
    Ok(())
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
fn idempotent_marks_only_its_own_endpoint() {
    let idempotent: Vec<_> = Greeter::DEF
        .endpoints
        .iter()
        .map(|e| (e.method, e.idempotent))
        .collect();
    assert_eq!(
        idempotent,
        [
            ("say_hello", false),
            ("greeted", true),
            ("get_v2_data", false),
            ("type", false),
            ("hello", false),
        ]
    );
    assert!(Audit::DEF.endpoints.iter().all(|e| !e.idempotent));
    assert!(!count_created::DEF.endpoints[0].idempotent);
}

#[test]
fn shared_receivers_are_read_turns_and_the_rest_write_turns() {
    let turns: Vec<_> = Greeter::DEF
        .endpoints
        .iter()
        .map(|e| (e.method, e.turn))
        .collect();
    assert_eq!(
        turns,
        [
            ("say_hello", Turn::Write),
            ("greeted", Turn::Read),
            ("get_v2_data", Turn::Read),
            ("type", Turn::Read),
            ("hello", Turn::Read),
        ]
    );
    let audit: Vec<_> = Audit::DEF.endpoints.iter().map(|e| e.turn).collect();
    assert_eq!(audit, [Turn::Write, Turn::Read, Turn::Read]);
    // A free subscriber has no state, and keeps its events one at a time.
    assert_eq!(count_created::DEF.endpoints[0].turn, Turn::Write);
    assert!(Greeter::default().reads().is_some());
    assert!(count_created.reads().is_none());
}

#[test]
fn client_methods_of_idempotent_endpoints_mark_their_calls() {
    let client = GreeterClient::new(micro::Client::new());
    // A call's options show in its `Debug` only.
    assert!(format!("{:?}", client.greeted()).contains("idempotent: true"));
    let plain = client.say_hello(HelloRequest { name: "Ada".into() });
    assert!(format!("{plain:?}").contains("idempotent: false"));
    // Any call can still opt in.
    assert!(format!("{:?}", plain.idempotent()).contains("idempotent: true"));
}

#[test]
fn attribute_arguments_fill_the_definition() {
    let def = Greeter::DEF;
    assert_eq!(
        (def.type_name, def.service, def.version),
        ("Greeter", "greeter", "1.2.3")
    );
    assert_eq!((def.workers, def.mailbox, def.reads), (1, 16, 8));
    assert_eq!(Greeter::rebuild().map(|g| g.greeted), Some(0));
}

#[test]
fn defaults_are_lowercase_type_name_latest_and_runtime_mailbox() {
    let def = Defaults::DEF;
    assert_eq!((def.service, def.version), ("defaults", "latest"));
    assert_eq!((def.workers, def.mailbox, def.reads), (3, 0, 0));
    assert!(Defaults.replicate().is_some());
    assert!(Greeter::default().replicate().is_none());
    assert!(Defaults::rebuild().is_none());
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

#[test]
fn subscribers_are_endpoints_with_a_topic_and_calls_have_none() {
    let described: Vec<_> = Audit::DEF
        .endpoints
        .iter()
        .map(|e| (e.name, e.method, e.request, e.response, e.topic, e.queue))
        .collect();
    assert_eq!(
        described,
        [
            (
                "Audit.OnCreated",
                "on_created",
                "Created",
                "()",
                "consignment.created",
                "audit"
            ),
            (
                "Audit.OnDeleted",
                "on_deleted",
                "String",
                "()",
                "consignment.deleted",
                ""
            ),
            ("Audit.Created", "created", "()", "u64", "", ""),
        ]
    );
    assert!(Greeter::DEF.endpoints.iter().all(|e| e.topic.is_empty()));
    assert_eq!(Sink::DEF.endpoints[0].topic, "sink");
}

#[test]
fn client_has_no_method_for_subscribers() {
    // `on_created` and `on_deleted` would fail to compile here: the UI case
    // `subscribe_not_on_client` pins that.
    let _: fn(&AuditClient) -> Call<(), u64> = AuditClient::created;
}

#[test]
fn a_free_subscriber_is_a_handler_named_after_the_function() {
    let def = count_created::DEF;
    assert_eq!(
        (
            def.type_name,
            def.service,
            def.version,
            def.workers,
            def.mailbox
        ),
        ("CountCreated", "", "latest", 1, 0)
    );
    let described: Vec<_> = def
        .endpoints
        .iter()
        .map(|e| (e.name, e.method, e.request, e.response, e.topic, e.queue))
        .collect();
    assert_eq!(
        described,
        [(
            "CountCreated.Handle",
            "count_created",
            "Created",
            "()",
            "consignment.created",
            "counter"
        )]
    );
    let def = log_deleted::DEF;
    assert_eq!(def.endpoints[0].name, "LogDeleted.Handle");
    assert_eq!(
        (def.endpoints[0].topic, def.endpoints[0].queue),
        ("consignment.deleted", "")
    );
    assert!(count_created.replicate().is_none());
    assert_eq!(format!("{count_created:?}"), "count_created");
}

#[tokio::test]
async fn a_free_subscriber_keeps_its_body_callable() {
    count_created::call(Created { id: "c1".into() })
        .await
        .unwrap();
    // A context comes from the runtime only; the function is there all the same.
    let _ = log_deleted::call;
}

#[test]
fn endpoints_describe_their_fields_and_keep_their_doc_comments() {
    let say_hello = &Greeter::DEF.endpoints[0];
    assert_eq!(say_hello.doc, "Greets the caller.");
    let types = (say_hello.describe)();
    assert_eq!(types.request.type_name, "HelloRequest");
    let fields: Vec<_> = types
        .request
        .values
        .iter()
        .map(|v| (v.name.as_str(), v.type_name.as_str()))
        .collect();
    assert_eq!(fields, [("name", "string")]);
    assert_eq!(types.response.type_name, "string");

    let get_v2_data = &Greeter::DEF.endpoints[2];
    assert_eq!(get_v2_data.doc, "");
    assert_eq!((get_v2_data.describe)().response.type_name, "[]uint8");
    let add = (Greeter::DEF.endpoints[3].describe)();
    assert_eq!(add.request.type_name, "[2]int64");

    let on_created = (Audit::DEF.endpoints[0].describe)();
    assert_eq!(on_created.request.type_name, "Created");
    assert_eq!(on_created.response.type_name, "()");
    let free = (count_created::DEF.endpoints[0].describe)();
    assert_eq!(free.request.type_name, "Created");
}

/// Only writes: the value need not be `Sync`, as before turns.
#[derive(Default)]
struct Visits {
    seen: std::cell::Cell<u64>,
}

#[micro::service]
impl Visits {
    pub(crate) async fn visit(&mut self) -> micro::Result<u64> {
        self.seen.set(self.seen.get() + 1);
        Ok(self.seen.get())
    }
}

#[test]
fn a_block_of_writes_need_not_be_sync() {
    fn served<H: Handler>(_: &H) {}
    let visits = Visits::default();
    served(&visits);
    assert!(visits.reads().is_none());
    let _ = micro::Service::new("visits").handle(visits);
}
