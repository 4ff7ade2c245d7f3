use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

struct Stats;

#[micro::service]
impl Stats {
    #[micro::subscribe(topic = "consignment.created")]
    #[micro(idempotent)]
    async fn on_created(&self, event: Created) -> micro::Result<()> {
        let _ = event.id;
        Ok(())
    }
}

#[micro::subscribe(topic = "consignment.created")]
#[micro(idempotent)]
async fn count_created(event: Created) -> micro::Result<()> {
    let _ = event.id;
    Ok(())
}

fn main() {}
