use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

struct Stats;

impl Stats {
    #[micro::subscribe(topic = "consignment.created")]
    async fn on_created(event: Created) -> micro::Result<()> {
        let _ = event.id;
        Ok(())
    }
}

fn main() {}
