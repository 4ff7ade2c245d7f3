struct Cache<T>(Vec<T>);

#[micro::service]
impl<T: Send + 'static> Cache<T> {
    pub async fn len(&self) -> micro::Result<usize> {
        Ok(self.0.len())
    }
}

fn main() {}
