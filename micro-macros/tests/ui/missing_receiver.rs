struct Greeter;

#[micro::service]
impl Greeter {
    pub async fn say_hello(name: String) -> micro::Result<String> {
        Ok(name)
    }
}

fn main() {}
