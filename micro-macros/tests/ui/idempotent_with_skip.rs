struct Accounts {
    balance: u64,
}

#[micro::service]
impl Accounts {
    #[micro(skip, idempotent)]
    pub fn balance(&self) -> u64 {
        self.balance
    }
}

fn main() {}
