use micro::prelude::*;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct HelloRequest {
    pub name: String,
}

#[derive(Default)]
pub struct Greeter {
    greeted: u64,
}

#[micro::service(name = "greeter", version = "1.2.3")]
impl Greeter {
    /// Says hello.
    pub async fn say_hello(&mut self, req: HelloRequest) -> micro::Result<String> {
        self.greeted += 1;
        Ok(format!("Hello, {}!", req.name))
    }

    pub async fn greeted(&self, ctx: &Context, _: ()) -> micro::Result<u64> {
        let _ = ctx;
        Ok(self.greeted)
    }

    pub(crate) async fn get_v2_data(&self) -> Result<Vec<u8>, micro::Error> {
        Ok(vec![2])
    }

    #[micro(skip)]
    pub fn helper(&self) -> u64 {
        self.greeted
    }
}

#[test]
fn smoke() {
    use micro::Handler;
    for e in Greeter::DEF.endpoints {
        println!("{e:?}");
    }
}
