struct Greeter;

#[micro::service]
impl Greeter {
    #[cfg(unix)]
    pub async fn shout(&self, name: String) -> micro::Result<String> {
        Ok(name.to_uppercase())
    }
}

fn main() {}
