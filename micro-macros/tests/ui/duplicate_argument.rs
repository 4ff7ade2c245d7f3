struct Greeter;

#[micro::service(name = "greeter", name = "hello")]
impl Greeter {
    pub async fn say_hello(&self, name: String) -> micro::Result<String> {
        Ok(name)
    }
}

fn main() {}
