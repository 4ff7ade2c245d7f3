use std::sync::Arc;

struct Greeter;

#[micro::service]
impl Greeter {
    pub async fn say_hello(self: Arc<Self>, name: String) -> micro::Result<String> {
        Ok(name)
    }
}

fn main() {}
