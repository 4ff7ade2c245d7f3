use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Created {
    id: String,
}

#[derive(Default)]
pub struct Stats {
    created: u64,
}

#[micro::service]
impl Stats {
    /// A `pub` subscriber is still no client method.
    #[micro::subscribe(topic = "consignment.created")]
    pub async fn on_created(&mut self, event: Created) -> micro::Result<()> {
        let _ = event.id;
        self.created += 1;
        Ok(())
    }

    pub async fn created(&self) -> micro::Result<u64> {
        Ok(self.created)
    }
}

fn main() {
    let client = StatsClient::new(micro::Client::new());
    let _ = client.created();
    let _ = client.on_created(Created { id: "c1".into() });
}
