struct Store;

#[micro::service]
impl Store {
    pub async fn get_v2(&self, key: String) -> micro::Result<String> {
        Ok(key)
    }

    pub async fn get_v_2(&self, key: String) -> micro::Result<String> {
        Ok(key)
    }
}

fn main() {}
