use micro::Streaming;
use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

struct Stats;

#[micro::service]
impl Stats {
    #[micro::subscribe(topic = "consignment.created")]
    async fn on_created(&self, events: Streaming<Created>) -> micro::Result<()> {
        let _ = events;
        Ok(())
    }

    #[micro::subscribe(topic = "consignment.updated")]
    async fn on_updated(&self, event: Created) -> micro::Result<Streaming<Created>> {
        Ok(Streaming::iter([event]))
    }
}

fn main() {}
