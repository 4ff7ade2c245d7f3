struct Greeter;

#[micro::service]
impl Greeter {
    #[micro(skipp)]
    pub async fn say_hello(&self, name: String) -> micro::Result<String> {
        Ok(name)
    }
}

fn main() {}
