use micro::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

#[micro::service]
impl Counter {
    pub async fn snapshot(&self) -> micro::Result<Self> {
        Ok(self.clone())
    }
}

fn main() {}
