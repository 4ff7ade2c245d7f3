use std::cell::Cell;

struct Visits {
    seen: Cell<u64>,
}

#[micro::service]
impl Visits {
    pub async fn visit(&mut self) -> micro::Result<u64> {
        self.seen.set(self.seen.get() + 1);
        Ok(self.seen.get())
    }

    pub async fn seen(&self) -> micro::Result<u64> {
        Ok(self.seen.get())
    }
}

fn main() {}
