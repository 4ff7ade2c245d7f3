use micro::Streaming;

struct Quote(u32);

struct Prices;

#[micro::service]
impl Prices {
    pub async fn watch(&self) -> micro::Result<Streaming<Quote>> {
        Ok(Streaming::iter([Quote(1)]))
    }
}

fn main() {}
