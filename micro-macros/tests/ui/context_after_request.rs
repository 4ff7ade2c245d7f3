use micro::prelude::*;

struct Greeter;

#[micro::service]
impl Greeter {
    pub async fn say_hello(&self, name: String, ctx: &Context) -> micro::Result<String> {
        let _ = ctx;
        Ok(name)
    }
}

fn main() {}
