struct Accounts;

#[micro::service]
impl Accounts {
    pub async fn new(&self, name: String) -> micro::Result<u64> {
        Ok(name.len() as u64)
    }
}

fn main() {}
