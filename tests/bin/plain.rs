//! A service written as a new user writes one: no subscriber, `main` returns
//! `micro::Result`. The logging tests read what it prints.

use micro::prelude::*;

#[derive(Default)]
struct Greeter;

#[micro::service(name = "greeter")]
impl Greeter {
    /// Greets `name`.
    pub async fn hello(&self, name: String) -> micro::Result<String> {
        Ok(format!("hello {name}"))
    }
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    Service::new("greeter").handle(Greeter).run().await
}
