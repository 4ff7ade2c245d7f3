use std::rc::Rc;

struct Greeter {
    prefix: Rc<str>,
}

#[micro::service]
impl Greeter {
    pub async fn say_hello(&self, name: String) -> micro::Result<String> {
        Ok(format!("{}{name}", self.prefix))
    }
}

fn main() {}
