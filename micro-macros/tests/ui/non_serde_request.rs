struct Greeter;

struct HelloRequest {
    name: String,
}

#[micro::service]
impl Greeter {
    pub async fn say_hello(&self, req: HelloRequest) -> micro::Result<String> {
        Ok(req.name)
    }
}

fn main() {}
