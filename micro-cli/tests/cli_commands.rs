//! Every `micro` command, run as a real process against real service processes: output and
//! exit code on success and on each kind of failure.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use micro::registry::{Node, Registry, Service};
use support::{World, block_on, run, run_with_input};

#[test]
fn services_lists_each_service_version_as_a_table_or_json() {
    let world = World::new();
    let empty = world.run(&["services"]);
    assert_eq!(empty.ok(), "NAME  VERSION  NODES  ENDPOINTS\n");
    assert_eq!(
        world.run(&["services", "--output", "json"]).json(),
        serde_json::json!([])
    );

    let _a = world.demo("demo");
    let _b = world.demo("demo");
    let _c = world.demo("other");
    let table = world.run(&["services"]);
    let lines: Vec<Vec<&str>> = table
        .ok()
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "VERSION", "NODES", "ENDPOINTS"]);
    // The demo's four endpoints, its subscriber and `Debug.*`, as registered.
    let endpoints = block_on(world.registry().get_service("demo")).unwrap()[0]
        .endpoints
        .len()
        .to_string();
    assert!(endpoints.parse::<usize>().unwrap() >= 7, "{endpoints}");
    assert!(
        lines.contains(&vec!["demo", "1.0.0", "2", &endpoints]),
        "{lines:?}"
    );
    assert!(
        lines.contains(&vec!["other", "1.0.0", "1", &endpoints]),
        "{lines:?}"
    );
    // The demo's subscription, as the embedded broker advertises it.
    assert!(
        lines.iter().any(|l| l[0] == "micro.broker.demo.events"),
        "{lines:?}"
    );

    let json = world.run(&["services", "-o", "json"]).json();
    let demo = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "demo")
        .expect("demo in the JSON");
    assert_eq!(demo["version"], "1.0.0");
    assert_eq!(demo["nodes"].as_array().unwrap().len(), 2);
}

#[test]
fn describe_shows_versions_nodes_and_endpoint_types() {
    let world = World::new();
    let _demo = world.demo("demo");
    let address = world.addresses("demo").remove(0);

    let out = world.run(&["describe", "demo"]);
    let text = out.ok();
    assert!(
        text.starts_with("SERVICE   demo\nVERSION   1.0.0\n"),
        "{text}"
    );
    assert!(text.contains(&address), "{text}");
    assert!(text.contains("transport=tcp"), "{text}");
    let endpoints: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("ENDPOINT"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        endpoints[0],
        ["ENDPOINT", "REQUEST", "RESPONSE", "SUBSCRIBES", "TO"]
    );
    for row in [
        vec!["Greeter.Hello", "HelloRequest", "HelloReply", "-"],
        vec!["Greeter.Fail", "uint16", "()", "-"],
        vec!["Greeter.OnEvent", "serde_json::Value", "()", "demo.events"],
        vec!["Debug.Health", "()", "Health", "-"],
    ] {
        assert!(endpoints.contains(&row), "{row:?} in {endpoints:?}");
    }

    let json = world.run(&["describe", "demo", "--output", "json"]).json();
    let record: Vec<Service> = serde_json::from_value(json).expect("registry JSON");
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].nodes[0].address, address);
    let hello = record[0]
        .endpoints
        .iter()
        .find(|e| e.name == "Greeter.Hello")
        .unwrap();
    assert_eq!(hello.request.as_ref().unwrap().type_name, "HelloRequest");

    let err = world.run(&["describe", "nope"]).error();
    assert_eq!(err.code, 404);
    assert_eq!(err.detail, "service nope not found");
}

#[test]
fn call_prints_the_reply_and_every_failure_as_error_json() {
    let world = World::new();
    let _demo = world.demo("demo");

    let out = world.run(&["call", "demo", "Greeter.Hello", r#"{"name":"Ada"}"#]);
    assert_eq!(out.ok(), "{\"count\":1,\"message\":\"Hello, Ada!\"}\n");
    assert_eq!(out.stderr, "");

    // The request from stdin; no request at all is null, which `()` takes.
    let mut cmd = world.micro(&["call", "demo", "Greeter.Hello", "-"]);
    cmd.stdin(Stdio::piped());
    let out = run_with_input(cmd, Some(r#"{"name":"Grace"}"#));
    assert_eq!(out.json()["message"], "Hello, Grace!");
    assert_eq!(world.run(&["call", "demo", "Greeter.Events"]).ok(), "[]\n");

    // The handler's own error, its code and detail untouched.
    let err = world
        .run(&["call", "demo", "Greeter.Hello", r#"{"name":""}"#])
        .error();
    assert_eq!((err.id.as_str(), err.code), ("demo", 400));
    assert_eq!(err.detail, "name must not be empty");
    let err = world.run(&["call", "demo", "Greeter.Fail", "409"]).error();
    assert_eq!((err.code, err.status.as_str()), (409, "Conflict"));

    // A request of the wrong shape for the endpoint: the service says 400.
    let err = world
        .run(&["call", "demo", "Greeter.Fail", r#""not a number""#])
        .error();
    assert_eq!(err.code, 400);

    // The framework's 404s.
    let err = world.run(&["call", "demo", "Greeter.Nope", "{}"]).error();
    assert_eq!(err.code, 404);
    assert!(err.detail.contains("Greeter.Nope"), "{err:?}");
    let err = world.run(&["call", "nope", "Greeter.Hello", "{}"]).error();
    assert_eq!(err.code, 404);
    assert_eq!(err.detail, "service nope not found");

    // Past the timeout: 408.
    let err = world
        .run(&[
            "call",
            "demo",
            "Greeter.Sleep",
            "3000",
            "--client_request_timeout",
            "200ms",
        ])
        .error();
    assert!(err.is_timeout(), "{err:?}");

    // A node nobody listens on: 502, nothing reached a handler.
    let err = world
        .run(&[
            "call",
            "demo",
            "Greeter.Hello",
            "{}",
            "--node",
            "127.0.0.1:1",
        ])
        .error();
    assert!(err.is_unavailable(), "{err:?}");
}

#[test]
fn call_with_a_request_that_is_not_json_is_a_usage_error() {
    let world = World::new();
    let out = world.run(&["call", "demo", "Greeter.Hello", "{name: Ada}"]);
    out.usage("the request is not valid JSON: key must be a string at line 1 column 2");
    assert_eq!(out.stdout, "");
    world
        .run(&["publish", "demo.events", "[1,"])
        .usage("the event is not valid JSON");
    world
        .run(&["call", "demo", "Greeter.Hello", "-m", "novalue"])
        .usage("expected KEY=VALUE");
}

#[test]
fn publish_delivers_to_the_subscribers_of_the_topic() {
    let world = World::new();
    let _demo = world.demo("demo");
    let out = world.run(&["publish", "demo.events", r#"{"id":"e-1","weight":550}"#]);
    assert_eq!(out.ok(), "", "publish is silent on success");
    let out = world.run(&["publish", "demo.events", "-m", "user=ada", "42"]);
    out.ok();
    let events = world.run(&["call", "demo", "Greeter.Events"]).json();
    assert_eq!(
        events,
        serde_json::json!([r#"{"id":"e-1","weight":550}"#, "42"])
    );
    // Nobody subscribed: nothing to deliver, nothing failed.
    world.run(&["publish", "nobody.listens", "{}"]).ok();
}

#[test]
fn health_asks_every_node_and_fails_unless_all_are_ok() {
    let world = World::new();
    let _a = world.demo("demo");
    let _b = world.demo("demo");
    let out = world.run(&["health", "demo"]);
    let lines: Vec<Vec<&str>> = out
        .ok()
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NODE", "ADDRESS", "VERSION", "STATUS", "UPTIME"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let mut addresses = world.addresses("demo");
    addresses.sort();
    let mut seen: Vec<String> = lines[1..].iter().map(|l| l[1].to_owned()).collect();
    seen.sort();
    assert_eq!(seen, addresses);
    assert!(
        lines[1..].iter().all(|l| l[2] == "1.0.0" && l[3] == "ok"),
        "{lines:?}"
    );

    let json = world.run(&["health", "demo", "-o", "json"]).json();
    let reports = json.as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert!(
        reports.iter().all(|r| r["reply"]["status"] == "ok"),
        "{json}"
    );

    // A node that is registered but gone: its row says why, and the exit code is 1.
    register_dead_node(&world, "demo");
    let out = world.run(&["health", "demo"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let dead = out
        .stdout
        .lines()
        .find(|l| l.contains("127.0.0.1:1 "))
        .expect("a row for the dead node");
    assert!(dead.contains("error: micro.client"), "{dead}");
    assert_eq!(out.stdout.lines().filter(|l| l.contains(" ok ")).count(), 2);

    let err = world.run(&["health", "nope"]).error();
    assert_eq!(err.code, 404);
}

#[test]
fn stats_counts_calls_per_node_and_handler() {
    let world = World::new();
    let _demo = world.demo("demo");
    world
        .run(&["call", "demo", "Greeter.Hello", r#"{"name":"Ada"}"#])
        .ok();
    world.run(&["call", "demo", "Greeter.Fail", "500"]).error();

    let out = world.run(&["stats", "demo"]);
    let lines: Vec<Vec<&str>> = out
        .ok()
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0][..6],
        ["NODE", "UPTIME", "HANDLER", "WORKERS", "CALLS", "ERRORS"]
    );
    assert_eq!(lines.len(), 2, "one handler: {lines:?}");
    assert_eq!(lines[1][2..6], ["Greeter", "1", "2", "1"]);

    let json = world.run(&["stats", "demo", "--output", "json"]).json();
    let stats = &json[0]["reply"];
    assert_eq!(
        (stats["calls"].as_u64(), stats["errors"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(stats["handlers"][0]["handler"], "Greeter");
    assert_eq!(json[0]["address"], world.addresses("demo")[0]);

    register_dead_node(&world, "demo");
    let out = world.run(&["stats", "demo"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("error: micro.client"), "{out:?}");
    assert_eq!(world.run(&["stats", "nope"]).error().code, 404);
}

#[test]
fn watch_prints_registry_events_as_they_happen_and_exits_0_on_sigterm() {
    let world = World::new();
    for json in [false, true] {
        let mut args = vec!["watch", "demo"];
        if json {
            args.extend(["--output", "json"]);
        }
        let mut cmd = world.micro(&args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut watch = support::Proc {
            child: cmd.spawn().expect("start micro watch"),
        };
        let stdout = lines(watch.child.stdout.take().unwrap());
        let stderr = lines(watch.child.stderr.take().unwrap());
        // The note comes once the watch is in place.
        assert_eq!(next(&stderr), "micro: watching service demo; Ctrl-C stops");
        if !json {
            let header: Vec<String> = next(&stdout).split_whitespace().map(String::from).collect();
            assert_eq!(header, ["ACTION", "SERVICE", "VERSION", "NODE", "ADDRESS"]);
        }

        let demo = world.demo("demo");
        let address = world.addresses("demo").remove(0);
        let created = next(&stdout);
        demo.terminate();
        let deleted = next(&stdout);
        if json {
            let created: serde_json::Value = serde_json::from_str(&created).unwrap();
            assert_eq!(created["action"], "create");
            assert_eq!(created["service"]["name"], "demo");
            assert_eq!(created["service"]["nodes"][0]["address"], address);
            let deleted: serde_json::Value = serde_json::from_str(&deleted).unwrap();
            assert_eq!(deleted["action"], "delete");
        } else {
            let created: Vec<&str> = created.split_whitespace().collect();
            assert_eq!(created[..3], ["create", "demo", "1.0.0"]);
            assert_eq!(created[4], address);
            assert!(deleted.starts_with("delete  demo "), "{deleted}");
        }
        drop(demo);
        world.wait_for_nodes("demo", 0);

        watch.terminate();
        assert_eq!(watch.wait().code(), Some(0));
    }
}

/// The lines of a child's output, read on a thread of their own.
fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line, waiting at most [`support::PATIENCE`].
#[track_caller]
fn next(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(support::PATIENCE)
        .expect("a line within the patience limit")
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let world = World::new();
    world
        .run(&["frobnicate"])
        .usage("unrecognized subcommand 'frobnicate'");
    world
        .run(&["call", "demo"])
        .usage("required arguments were not provided");
    world
        .run(&["services", "--output", "xml"])
        .usage("invalid value 'xml'");
    world
        .run(&["services", "--client_request_timeout", "fast"])
        .usage("invalid --client_request_timeout `fast`");
    world
        .run(&["api", "--body_limit", "lots"])
        .usage("expected a size");

    // A bad variable is named, as services name it.
    let mut cmd = world.micro(&["services"]);
    cmd.env("MICRO_REGISTRY", "zookeeper");
    run(cmd).usage("invalid MICRO_REGISTRY `zookeeper`");

    let help = world.run(&["--help"]);
    let text = help.ok();
    for command in [
        "services", "describe", "call", "publish", "health", "stats", "watch", "api", "web", "mcp",
        "new",
    ] {
        assert!(
            text.contains(&format!("  {command} ")),
            "{command} in {text}"
        );
        let sub = world.run(&[command, "--help"]);
        assert!(sub.ok().contains("Usage: micro"), "{command}: {sub:?}");
    }
    for flag in [
        "--registry ",
        "--registry_address",
        "--broker ",
        "--client_request_timeout",
    ] {
        assert!(text.contains(flag), "{flag} in {text}");
    }
    assert!(text.contains("Exit codes:"), "{text}");
    assert!(world.run(&["call", "--help"]).ok().contains("--metadata"));
    assert!(world.run(&["--version"]).ok().starts_with("micro "));
}

#[test]
fn flags_override_the_environment_like_they_do_for_services() {
    let world = World::new();
    let _demo = world.demo("demo");
    // The environment points at an empty registry; the flag at the test's.
    let elsewhere = World::new();
    let mut cmd = world.micro(&["services"]);
    cmd.env("MICRO_REGISTRY_ADDRESS", &elsewhere.dir);
    assert!(!run(cmd).ok().contains("demo"));
    let mut cmd = world.micro(&[
        "services",
        "--registry_address",
        world.dir.to_str().unwrap(),
    ]);
    cmd.env("MICRO_REGISTRY_ADDRESS", &elsewhere.dir);
    assert!(run(cmd).ok().contains("demo"));
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    // `true` exits before `micro` has asked the registry anything, so the write fails with
    // EPIPE: `micro` stops there, without a panic, with exit code 0.
    let world = World::new();
    let _demo = world.demo("demo");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' describe demo | true; echo \"${{PIPESTATUS[0]}}\"",
            support::MICRO
        ))
        .env("MICRO_REGISTRY_ADDRESS", &world.dir)
        .output()
        .expect("bash");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{out:?}"
    );
}

/// Registers a node of `name` at an address where nothing listens (port 1).
fn register_dead_node(world: &World, name: &str) {
    let service = Service {
        name: name.into(),
        version: "1.0.0".into(),
        nodes: vec![Node {
            id: format!("{name}-dead"),
            address: "127.0.0.1:1".into(),
            ..Node::default()
        }],
        ..Service::default()
    };
    block_on(
        world
            .registry()
            .register(&service, Some(Duration::from_secs(60))),
    )
    .expect("register");
}
