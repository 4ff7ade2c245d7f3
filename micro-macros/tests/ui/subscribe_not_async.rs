use micro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Created {
    id: String,
}

#[micro::subscribe(topic = "consignment.created")]
fn count_created(event: Created) -> micro::Result<()> {
    let _ = event.id;
    Ok(())
}

fn main() {}
