struct Greeter;

#[micro::service]
impl Greeter {
    pub async fn say_hello(&self, name: &str) -> micro::Result<String> {
        Ok(name.to_owned())
    }
}

fn main() {}
