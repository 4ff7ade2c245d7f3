use micro::prelude::*;

#[micro::subscribe(topic = "consignment.created")]
async fn count_created<E: Serialize>(event: E) -> micro::Result<()> {
    let _ = event;
    Ok(())
}

fn main() {}
