//! `micro new` writes a crate that builds, passes its own test and serves calls.
//!
//! The crate is built offline in this workspace's target directory, so the dependencies it
//! shares with the workspace are not fetched, and built at most once per target directory.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Proc, World, run};

/// A first build compiles micro and tokio with the new crate's features: minutes on 2 cores.
const BUILD_PATIENCE: Duration = Duration::from_secs(900);

/// `target/`, from `target/<profile>/deps/<this test>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("target directory")
        .to_path_buf()
}

/// Runs `cargo ARGS` in `dir`, offline, in the workspace's target directory; panics with its
/// output unless it succeeds within [`BUILD_PATIENCE`].
fn cargo(dir: &Path, args: &[&str]) {
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .args(["--offline", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cargo");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > BUILD_PATIENCE {
            let _ = child.kill();
            panic!("cargo {args:?} took longer than {BUILD_PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("cargo output");
    assert!(
        status.success(),
        "cargo {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_new_crate_builds_passes_its_test_and_answers_a_call() {
    let world = World::new();
    let root = std::env::temp_dir().join(format!("micro-new-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("temp dir");
    let dir = root.join("hello-svc");
    let micro = Path::new(env!("CARGO_MANIFEST_DIR")).join("../micro");

    let out = world.run(&[
        "new",
        "hello-svc",
        "--dir",
        dir.to_str().unwrap(),
        "--micro-path",
        micro.to_str().unwrap(),
    ]);
    assert!(out.ok().starts_with("created "), "{out:?}");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("micro = { path = "), "{manifest}");
    for file in ["src/main.rs", "README.md", ".gitignore"] {
        assert!(dir.join(file).exists(), "{file} written");
    }
    // Never over an existing directory.
    world
        .run(&["new", "hello-svc", "--dir", dir.to_str().unwrap()])
        .usage("exists already");
    world.run(&["new", "Bad Name"]).usage("not a crate name");

    cargo(&dir, &["build"]);
    cargo(&dir, &["test"]);

    let exe = target_dir().join("debug").join("hello-svc");
    let mut cmd = world.command(&exe);
    cmd.env("MICRO_SERVER_DRAIN", "0s")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let _service = Proc {
        child: cmd.spawn().expect("start the new service"),
    };
    world.wait_for_nodes("hello-svc", 1);

    let reply = world
        .run(&["call", "hello-svc", "Greeter.Hello", r#"{"name":"Ada"}"#])
        .json();
    assert_eq!(
        reply,
        serde_json::json!({"message": "Hello, Ada!", "count": 1})
    );
    // Its own typed client and publisher, from another process.
    let mut greet = world.command(&exe);
    greet.args(["greet", "Bob"]);
    let out = run(greet);
    assert_eq!(out.ok(), "Hello, Bob!\ngreetings: 2, events: 1\n");
    let described = world.run(&["describe", "hello-svc"]);
    assert!(
        described
            .ok()
            .contains("Greets someone by name; an empty name is a 400."),
        "{described:?}"
    );

    let _ = std::fs::remove_dir_all(&root);
}
