struct Greeter;

#[micro::service]
impl Greeter {
    pub async unsafe fn say_hello(&self, name: String) -> micro::Result<String> {
        Ok(name)
    }
}

fn main() {}
