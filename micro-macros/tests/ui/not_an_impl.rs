#[micro::service]
struct Greeter {
    greeted: u64,
}

fn main() {}
