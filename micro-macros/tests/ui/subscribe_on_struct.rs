#[micro::subscribe(topic = "consignment.created")]
struct Stats {
    created: u64,
}

fn main() {}
