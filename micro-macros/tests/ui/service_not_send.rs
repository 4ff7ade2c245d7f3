use std::rc::Rc;

use micro::prelude::*;

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
