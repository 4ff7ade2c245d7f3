#[derive(Default)]
struct Ledger {
    entries: Vec<u64>,
}

#[micro::service(on_panic = "restart")]
impl Ledger {
    pub async fn add(&mut self, n: u64) -> micro::Result<usize> {
        self.entries.push(n);
        Ok(self.entries.len())
    }
}

fn main() {}
