struct Logger;

#[micro::service]
impl Logger {
    pub async fn log(&self, line: String) {
        let _ = line;
    }
}

fn main() {}
