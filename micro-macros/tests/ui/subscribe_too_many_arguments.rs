use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

struct Stats;

#[micro::service]
impl Stats {
    #[micro::subscribe(topic = "consignment.created")]
    async fn on_created(&mut self, event: Created, weight: u32) -> micro::Result<()> {
        let _ = (event.id, weight);
        Ok(())
    }
}

fn main() {}
