#[derive(Default)]
struct Catalog;

#[micro::service(reads = "many")]
impl Catalog {
    pub async fn size(&self) -> micro::Result<u64> {
        Ok(0)
    }
}

fn main() {}
