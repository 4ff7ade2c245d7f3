struct Stats;

#[micro::service]
impl Stats {
    #[micro::subscribe(topic = "consignment.created")]
    async fn on_created(&mut self) -> micro::Result<()> {
        Ok(())
    }
}

fn main() {}
