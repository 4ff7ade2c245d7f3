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

    #[::micro::service(name = "hygiene.pinger", version = "1.0.0", workers = 2, mailbox = 8)]
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
        pub(crate) async fn pings(&self) -> ::core::result::Result<u64, ::micro::Error> {
            ::core::result::Result::Ok(self.pings)
        }
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
    pub(crate) mod core {}
    pub(crate) mod std {}
    pub(crate) mod micro {}

    #[derive(::serde::Serialize, ::serde::Deserialize)]
    pub(crate) struct Word(pub(crate) ::std::string::String);

    pub(crate) struct Shouter;

    #[::micro::service(name = "hygiene.shouter")]
    impl Shouter {
        /// Upper-cases the word.
        pub(crate) async fn shout(&self, word: Word) -> ::micro::Result<Word> {
            ::core::result::Result::Ok(Word(word.0.to_uppercase()))
        }
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
