#[derive(Default)]
struct Catalog;

#[micro::service(reads = 0)]
impl Catalog {
    pub async fn size(&self) -> micro::Result<u64> {
        Ok(0)
    }
}

fn main() {}
