struct Greeter;

#[micro::service(nmae = "greeter", workers = 0)]
impl Greeter {
    pub fn not_async(&self) -> micro::Result<()> {
        Ok(())
    }

    pub async fn by_value(self) -> micro::Result<()> {
        Ok(())
    }

    pub async fn no_result(&self) -> u64 {
        0
    }

    pub async fn client(&self) -> micro::Result<()> {
        Ok(())
    }

    pub async fn fine(&self, name: String) -> micro::Result<String> {
        Ok(name)
    }
}

fn main() {}
