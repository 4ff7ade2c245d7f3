use micro::Streaming;

struct Prices {
    quotes: Vec<u32>,
}

#[micro::service]
impl Prices {
    // The stream outlives the handler's turn: it may not borrow `self`.
    pub async fn watch(&self) -> micro::Result<Streaming<u32>> {
        Ok(Streaming::iter(self.quotes.iter().copied()))
    }
}

fn main() {}
