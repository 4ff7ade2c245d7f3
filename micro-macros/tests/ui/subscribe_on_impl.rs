use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

struct Stats;

#[micro::subscribe(topic = "consignment.created")]
impl Stats {
    async fn on_created(&mut self, event: Created) -> micro::Result<()> {
        let _ = event.id;
        Ok(())
    }
}

fn main() {}
