struct Greeter;

#[micro::service(version = 2)]
impl Greeter {
    pub async fn say_hello(&self, name: String) -> micro::Result<String> {
        Ok(name)
    }
}

fn main() {}
