//! Generated code names everything by its full path, so a service compiles
//! without the prelude and beside user items that shadow what it uses.

/// No prelude at all: `Result`, `Option`, `Box`, `Some`, `Clone`... are not in
/// scope unless the generated code spells out where they live.
mod no_prelude {
    #![no_implicit_prelude]

    #[derive(::serde::Serialize, ::serde::Deserialize)]
    pub(crate) struct Ping {
        pub(crate) seq: u64,
    }

    #[derive(::core::clone::Clone, ::core::default::Default)]
    pub(crate) struct Pinger {
        pings: u64,
    }

    #[::micro::service(
        name = "hygiene.pinger",
        version = "1.0.0",
        workers = 2,
        mailbox = 8,
        reads = 4,
        on_panic = "rebuild"
    )]
    impl Pinger {
        /// Echoes the ping, one higher.
        pub(crate) async fn ping(
            &mut self,
            ctx: &::micro::Context,
            ping: Ping,
        ) -> ::micro::Result<Ping> {
            let _ = ctx;
            self.pings += 1;
            ::core::result::Result::Ok(Ping { seq: ping.seq + 1 })
        }

        /// How many pings this worker answered.
        #[micro(idempotent)]
        pub(crate) async fn pings(&self) -> ::core::result::Result<u64, ::micro::Error> {
            ::core::result::Result::Ok(self.pings)
        }

        /// Pings numbered from `ping.seq`, as a stream; a stream of pings, answered.
        pub(crate) async fn pings_from(
            &self,
            ping: Ping,
        ) -> ::micro::Result<::micro::Streaming<u64>> {
            ::core::result::Result::Ok(::micro::Streaming::iter(ping.seq..ping.seq + 3))
        }

        /// Answers each ping of a stream.
        pub(crate) async fn echo_pings(
            &self,
            pings: ::micro::Streaming<Ping>,
        ) -> ::micro::Result<::micro::Streaming<Ping>> {
            ::core::result::Result::Ok(pings)
        }

        /// A ping by event counts too.
        #[::micro::subscribe(topic = "hygiene.pings", queue = "pinger")]
        async fn on_ping(
            &mut self,
            ctx: &::micro::Context,
            ping: Ping,
        ) -> ::core::result::Result<(), ::micro::Error> {
            let _ = (ctx, ping.seq);
            self.pings += 1;
            ::core::result::Result::Ok(())
        }
    }

    pub(crate) static HEARD: ::std::sync::atomic::AtomicU64 =
        ::std::sync::atomic::AtomicU64::new(0);

    /// A free subscriber without the prelude.
    #[::micro::subscribe(topic = "hygiene.pings")]
    pub(crate) async fn hear(ctx: &::micro::Context, ping: Ping) -> ::micro::Result<()> {
        let _ = ctx;
        HEARD.fetch_add(ping.seq, ::std::sync::atomic::Ordering::SeqCst);
        ::core::result::Result::Ok(())
    }
}

/// User items named like everything the generated code uses.
#[allow(dead_code, non_camel_case_types)]
mod shadowed {
    pub(crate) struct Result;
    pub(crate) struct Option;
    pub(crate) struct Some;
    pub(crate) struct None;
    pub(crate) struct Ok;
    pub(crate) struct Err;
    pub(crate) struct Box;
    pub(crate) struct Vec;
    pub(crate) struct String;
    pub(crate) struct Arc;
    pub(crate) struct Clone;
    pub(crate) struct Into;
    pub(crate) struct Send;
    pub(crate) struct Handler;
    pub(crate) struct Context;
    pub(crate) struct str;
    pub(crate) struct usize;
    pub(crate) struct Copy;
    pub(crate) struct Debug;
    pub(crate) struct Default;
    pub(crate) struct Payload;
    pub(crate) struct HandlerDef;
    pub(crate) struct EndpointDef;
    pub(crate) struct Message;
    pub(crate) struct Call;
    pub(crate) mod core {}
    pub(crate) mod std {}
    pub(crate) mod micro {}

    #[derive(::serde::Serialize, ::serde::Deserialize)]
    pub(crate) struct Word(pub(crate) ::std::string::String);

    pub(crate) struct Shouter;

    #[::micro::service(name = "hygiene.shouter", on_panic = "keep")]
    impl Shouter {
        /// Upper-cases the word.
        #[micro(idempotent)]
        pub(crate) async fn shout(&self, word: Word) -> ::micro::Result<Word> {
            ::core::result::Result::Ok(Word(word.0.to_uppercase()))
        }
    }

    /// A free subscriber beside the shadows.
    #[::micro::subscribe(topic = "hygiene.words")]
    pub(crate) async fn hear_word(word: Word) -> ::micro::Result<()> {
        let _ = word;
        ::core::result::Result::Ok(())
    }
}

#[tokio::test]
async fn generated_code_works_without_prelude_and_beside_shadows() -> micro::Result<()> {
    let pinger = micro::Service::new("hygiene.pinger")
        .handle(no_prelude::Pinger::default())
        .start()
        .await?;
    let client = no_prelude::PingerClient::new(pinger.client());
    let pong = client.ping(no_prelude::Ping { seq: 41 }).await?;
    assert_eq!(pong.seq, 42);
    assert!(client.pings().await? <= 1);
    pinger.stop().await;

    let shouter = micro::Service::new("hygiene.shouter")
        .handle(shadowed::Shouter)
        .start()
        .await?;
    let client = shadowed::ShouterClient::new(shouter.client());
    let loud = client.shout(shadowed::Word("hey".into())).await?;
    assert_eq!(loud.0, "HEY");
    shouter.stop().await;
    Ok(())
}

#[tokio::test]
async fn subscribers_work_without_prelude_and_beside_shadows() -> micro::Result<()> {
    use std::sync::atomic::Ordering;

    let broker: std::sync::Arc<dyn micro::broker::Broker> =
        std::sync::Arc::new(micro::broker::MemoryBroker::new());
    let service = micro::Service::new("hygiene.listener")
        .rename()
        .broker(broker.clone())
        .handle(no_prelude::Pinger::default())
        .handle(no_prelude::hear)
        .handle(shadowed::hear_word)
        .start()
        .await?;
    let client = micro::Client::builder().broker(broker).build();
    client
        .publish("hygiene.pings", &no_prelude::Ping { seq: 5 })
        .await?;
    client
        .publish("hygiene.words", &shadowed::Word("hi".into()))
        .await?;
    assert_eq!(no_prelude::HEARD.load(Ordering::SeqCst), 5);
    service.stop().await;
    Ok(())
}
