struct Created {
    id: String,
}

struct Stats;

#[micro::service]
impl Stats {
    #[micro::subscribe(topic = "consignment.created")]
    async fn on_created(&mut self, event: Created) -> micro::Result<()> {
        let _ = event.id;
        Ok(())
    }
}

fn main() {}
