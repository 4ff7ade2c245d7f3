use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

struct Stats;

#[micro::service]
impl Stats {
    #[micro::subscribe(topic = "")]
    async fn on_created(&mut self, event: Created) -> micro::Result<()> {
        let _ = event.id;
        Ok(())
    }
}

fn main() {}
