use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

#[derive(Default)]
struct Stats {
    created: u64,
}

impl Stats {
    #[micro::subscribe(topic = "consignment.created")]
    async fn on_created(&mut self, event: Created) -> micro::Result<()> {
        let _ = event.id;
        self.created += 1;
        Ok(())
    }
}

fn main() {}
