struct Greeter;

struct HelloReply {
    greeting: String,
}

#[micro::service]
impl Greeter {
    pub async fn say_hello(&self, name: String) -> micro::Result<HelloReply> {
        Ok(HelloReply { greeting: name })
    }
}

fn main() {}
