struct Created {
    id: String,
}

#[micro::subscribe(topic = "consignment.created")]
async fn count_created(event: Created) -> micro::Result<()> {
    let _ = event.id;
    Ok(())
}

fn main() {}
