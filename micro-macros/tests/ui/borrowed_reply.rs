struct Greeter;

#[micro::service]
impl Greeter {
    pub async fn greeting(&self) -> micro::Result<Vec<&'static str>> {
        Ok(vec!["hello"])
    }
}

fn main() {}
