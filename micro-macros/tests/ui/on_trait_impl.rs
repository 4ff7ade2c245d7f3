struct Greeter;

trait Greet {
    async fn say_hello(&self, name: String) -> micro::Result<String>;
}

#[micro::service]
impl Greet for Greeter {
    async fn say_hello(&self, name: String) -> micro::Result<String> {
        Ok(name)
    }
}

fn main() {}
