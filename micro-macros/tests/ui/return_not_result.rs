struct Greeter;

#[micro::service]
impl Greeter {
    pub async fn say_hello(&self, name: String) -> String {
        name
    }
}

fn main() {}
