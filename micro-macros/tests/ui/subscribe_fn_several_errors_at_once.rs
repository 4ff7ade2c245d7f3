use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

#[micro::subscribe(topic = "  ", queue = "counter", queue = "audit")]
#[micro(skip)]
async fn count_created(ctx: &mut Context, event: Created) -> Result<Self, micro::Error> {
    let _ = (ctx, event.id);
    Ok(())
}

fn main() {
    let _ = micro::Service::new("counter").handle(count_created);
}
