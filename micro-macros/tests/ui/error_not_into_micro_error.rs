struct Greeter;

struct GreetError;

#[micro::service]
impl Greeter {
    pub async fn say_hello(&self, name: String) -> Result<String, GreetError> {
        Ok(name)
    }
}

fn main() {}
