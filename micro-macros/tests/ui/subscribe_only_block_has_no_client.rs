use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

struct Audit;

#[micro::service]
impl Audit {
    #[micro::subscribe(topic = "consignment.created")]
    async fn on_created(&self, event: Created) -> micro::Result<()> {
        let _ = event.id;
        Ok(())
    }
}

fn main() {
    let _ = AuditClient::new(micro::Client::new());
}
