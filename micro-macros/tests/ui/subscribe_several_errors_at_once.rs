use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

struct Stats;

#[micro::service]
impl Stats {
    #[micro::subscribe]
    async fn no_topic(&self, event: Created) -> micro::Result<()> {
        let _ = event.id;
        Ok(())
    }

    #[subscribe(topic = "consignment.created", qeueu = "stats")]
    fn not_async(&self, event: Created) -> micro::Result<()> {
        let _ = event.id;
        Ok(())
    }

    #[micro::subscribe(topic = "consignment.created")]
    async fn borrows(&self, id: &str) -> micro::Result<()> {
        let _ = id;
        Ok(())
    }

    #[micro::subscribe(topic = "consignment.created")]
    async fn no_receiver(event: Created) -> micro::Result<()> {
        let _ = event.id;
        Ok(())
    }

    #[micro::subscribe(topic = "consignment.deleted")]
    async fn new(&self, id: String) -> micro::Result<()> {
        let _ = id;
        Ok(())
    }

    #[micro::subscribe(topic = "consignment.updated")]
    async fn context_last(&self, event: Created, ctx: &Context) -> u64 {
        let _ = (event.id, ctx);
        0
    }
}

fn main() {}
