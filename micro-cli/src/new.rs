//! `micro new NAME`: a new service crate that runs as it is.
//!
//! The crate has a service with a read (`&self`) and a write (`&mut self`) handler and a
//! subscriber, a `greet` command that calls it through the generated typed client, a test and
//! a README. It uses the zero-configuration defaults (the host-local registry, the embedded
//! broker), so `cargo run` in one terminal and `cargo run -- greet Ada` in another work with
//! nothing else running.

use std::path::{Component, Path, PathBuf};

use micro::Error;

use crate::Failure;
use crate::cli::NewArgs;

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
{{micro}}
serde = { version = "1", features = ["derive"] }
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
{{workspace}}"#;

const MAIN_RS: &str = r#"//! {{name}}: a micro service.
//!
//! ```text
//! cargo run                  # serve, until Ctrl-C
//! cargo run -- greet Ada     # in another terminal: call it through the typed client
//! ```

use micro::prelude::*;

/// The topic `greet` publishes on after each greeting; the service listens to it.
pub const GREETED: &str = "{{name}}.greeted";

/// What `Greeter.Hello` takes.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct HelloRequest {
    /// Who to greet.
    pub name: String,
}

/// What `Greeter.Hello` answers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HelloReply {
    /// The greeting.
    pub message: String,
    /// Greetings so far, this one included.
    pub count: u64,
}

/// Published on [`GREETED`].
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Greeted {
    /// Who was greeted.
    pub name: String,
}

/// How many greetings and events the service has seen.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Counts {
    /// Calls to `Greeter.Hello` that succeeded.
    pub greeted: u64,
    /// Events received on [`GREETED`].
    pub events: u64,
}

/// The service's state. It lives in a mailbox actor, so handlers change it without locks.
#[derive(Debug, Default)]
pub struct Greeter {
    greeted: u64,
    events: u64,
}

#[micro::service(name = "{{name}}", version = "0.1.0")]
impl Greeter {
    /// Greets someone by name; an empty name is a 400.
    pub async fn hello(&mut self, req: HelloRequest) -> micro::Result<HelloReply> {
        if req.name.trim().is_empty() {
            return Err(Error::bad_request("{{name}}", "name must not be empty"));
        }
        self.greeted += 1;
        Ok(HelloReply {
            message: format!("Hello, {}!", req.name),
            count: self.greeted,
        })
    }

    /// How many greetings and events so far.
    pub async fn counts(&self) -> micro::Result<Counts> {
        Ok(Counts {
            greeted: self.greeted,
            events: self.events,
        })
    }

    /// Counts the events on the greeted topic.
    #[micro::subscribe(topic = "{{name}}.greeted")]
    async fn on_greeted(&mut self, _event: Greeted) -> micro::Result<()> {
        self.events += 1;
        Ok(())
    }
}

/// Calls the running service through its generated client, as another program would, and
/// publishes a `Greeted` event that the service counts.
async fn greet(name: &str) -> micro::Result<()> {
    let client = Client::new();
    let greeter = GreeterClient::new(client.clone());
    let reply = greeter
        .hello(HelloRequest { name: name.to_owned() })
        .await?;
    println!("{}", reply.message);
    client
        .publish(GREETED, &Greeted { name: name.to_owned() })
        .await?;
    let counts = greeter.counts().await?;
    println!("greetings: {}, events: {}", counts.greeted, counts.events);
    Ok(())
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("greet") => greet(args.get(1).map_or("world", String::as_str)).await,
        // Serves until Ctrl-C; MICRO_* variables and --flags configure it.
        _ => {
            Service::new("{{name}}")
                .handle(Greeter::default())
                .run()
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hello_greets_counts_and_refuses_an_empty_name() {
        let mut greeter = Greeter::default();
        let reply = greeter
            .hello(HelloRequest { name: "Ada".into() })
            .await
            .unwrap();
        assert_eq!(reply.message, "Hello, Ada!");
        let err = greeter
            .hello(HelloRequest { name: " ".into() })
            .await
            .unwrap_err();
        assert_eq!(err.code, 400);
        greeter
            .on_greeted(Greeted { name: "Ada".into() })
            .await
            .unwrap();
        assert_eq!(
            greeter.counts().await.unwrap(),
            Counts { greeted: 1, events: 1 }
        );
    }
}
"#;

const README: &str = r#"# {{name}}

A service built with [micro](https://github.com/micro-rs/micro), made by `micro new`.

```sh
cargo run                       # serve it, until Ctrl-C
cargo run -- greet Ada          # in another terminal: call it through its typed client
micro call {{name}} Greeter.Hello '{"name":"Ada"}'
micro describe {{name}}          # its endpoints and their fields
cargo test
```

It needs no server: processes on this machine find each other through the host-local
registry, and events travel through the embedded broker. Set `MICRO_REGISTRY`, `MICRO_BROKER`
and the other `MICRO_*` variables (or the same `--flags`) to use etcd, NATS or mDNS instead.

`src/main.rs` holds everything:

- `Greeter`, the service: `hello` takes `&mut self` (a write turn, alone in the actor),
  `counts` takes `&self` (a read turn, alongside other reads), and `on_greeted` receives
  the events published on `{{name}}.greeted`;
- `greet`, which calls the service through the generated `GreeterClient` and publishes an event;
- a test that runs the handlers directly.
"#;

const GITIGNORE: &str = "/target\n";

/// Writes the crate; refuses to overwrite anything.
pub(crate) fn run(args: NewArgs) -> Result<(), Failure> {
    let name = &args.name;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(Failure::Usage(format!(
            "`{name}` is not a crate name: use lowercase letters, digits, - and _, starting with a letter"
        )));
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        return Err(Failure::Usage(format!(
            "{} exists already: choose another NAME or --dir",
            dir.display()
        )));
    }
    let absolute = absolute(&dir)?;
    let micro = match &args.micro_path {
        Some(path) => path_dependency(&absolute, &absolute_existing(path)?),
        None => match checkout_around(&absolute) {
            Some(micro) => path_dependency(&absolute, &micro),
            None => format!("micro = \"{}\"", env!("CARGO_PKG_VERSION")),
        },
    };
    // Inside another workspace's directory, cargo would take the crate for a forgotten member.
    let workspace = if inside_workspace(&absolute) {
        "\n# Its own workspace, though inside another's directory.\n[workspace]\n"
    } else {
        ""
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{micro}}", &micro)
            .replace("{{workspace}}", workspace)
    };
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| {
            Failure::Micro(Error::internal(
                "micro.new",
                format_args!("cannot write {}: {e}", path.display()),
            ))
        })
    };
    std::fs::create_dir_all(dir.join("src")).map_err(|e| {
        Failure::Micro(Error::internal(
            "micro.new",
            format_args!("cannot create {}: {e}", dir.display()),
        ))
    })?;
    write(&dir.join("Cargo.toml"), &fill(CARGO_TOML))?;
    write(&dir.join("src/main.rs"), &fill(MAIN_RS))?;
    write(&dir.join("README.md"), &fill(README))?;
    write(&dir.join(".gitignore"), GITIGNORE)?;
    crate::output::print(&format!(
        "created {}: cd {} && cargo run\n",
        dir.display(),
        dir.display()
    ))
}

fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

fn absolute_existing(path: &Path) -> Result<PathBuf, Failure> {
    path.canonicalize()
        .map_err(|e| Failure::Usage(format!("--micro-path {}: {e}", path.display())))
}

/// `micro = { path = "…" }`, relative to the new crate when the two share a root.
fn path_dependency(crate_dir: &Path, micro: &Path) -> String {
    let path = relative(crate_dir, micro).unwrap_or_else(|| micro.to_path_buf());
    let text = path.to_string_lossy().replace('\\', "/");
    format!("micro = {{ path = {text:?} }}")
}

/// `to` as seen from `from`, both absolute.
fn relative(from: &Path, to: &Path) -> Option<PathBuf> {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return None;
    }
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part);
    }
    Some(path)
}

/// The `micro` crate of a checkout of this workspace that `dir` would be inside.
fn checkout_around(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().skip(1).find_map(|root| {
        let manifest = std::fs::read_to_string(root.join("micro/Cargo.toml")).ok()?;
        let workspace = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
        (workspace.contains("[workspace]") && manifest.contains("name = \"micro\""))
            .then(|| root.join("micro"))
    })
}

fn inside_workspace(dir: &Path) -> bool {
    dir.ancestors().skip(1).any(|root| {
        std::fs::read_to_string(root.join("Cargo.toml"))
            .is_ok_and(|manifest| manifest.contains("[workspace]"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_root() {
        assert_eq!(
            relative(Path::new("/w/apps/svc"), Path::new("/w/micro")),
            Some(PathBuf::from("../../micro"))
        );
        assert_eq!(
            path_dependency(Path::new("/w/svc"), Path::new("/w/micro")),
            r#"micro = { path = "../micro" }"#
        );
    }

    #[test]
    fn templates_have_no_placeholder_left() {
        for template in [CARGO_TOML, MAIN_RS, README] {
            let filled = template
                .replace("{{name}}", "svc")
                .replace("{{micro}}", "")
                .replace("{{workspace}}", "");
            assert!(!filled.contains("{{"), "{filled}");
        }
    }
}
