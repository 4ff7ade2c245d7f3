use micro::prelude::*;

struct Echo;

#[micro::service]
impl Echo {
    pub async fn echo<T: Serialize>(&self, value: T) -> micro::Result<T> {
        Ok(value)
    }
}

fn main() {}
