use std::rc::Rc;

struct Greeter;

async fn pause() {}

#[micro::service]
impl Greeter {
    pub async fn say_hello(&self, name: String) -> micro::Result<String> {
        let shared = Rc::new(name);
        pause().await;
        Ok(shared.to_string())
    }
}

fn main() {}
