struct Calculator;

#[micro::service]
impl Calculator {
    pub async fn add(&self, a: i64, b: i64) -> micro::Result<i64> {
        Ok(a + b)
    }
}

fn main() {}
