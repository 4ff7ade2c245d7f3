struct Greeter;

#[micro::service]
impl Greeter {
    pub async fn say_hello(&self, name: impl Into<String>) -> micro::Result<String> {
        Ok(name.into())
    }
}

fn main() {}
