struct Accounts {
    balance: u64,
}

#[micro::service]
impl Accounts {
    #[micro(idempotent)]
    async fn balance(&self) -> micro::Result<u64> {
        Ok(self.balance)
    }
}

fn main() {}
