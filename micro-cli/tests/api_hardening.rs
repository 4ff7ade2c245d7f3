//! The gateway and the dashboard on an open network: what a web page in a browser, a
//! DNS-rebound name or a flood of names can and cannot make them do.

mod support;

use std::io::{BufRead, BufReader, Read, Write};

use support::{World, http, post};

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// The demo's `Greeter.Hello` through `micro COMMAND`, and the path to it.
fn hello_path(command: &str) -> &'static str {
    match command {
        "api" => "/demo/Greeter.Hello",
        _ => "/api/call/demo/Greeter.Hello",
    }
}

#[test]
fn cross_origin_and_text_plain_posts_are_refused_and_the_handler_does_not_run() {
    let world = World::new();
    let _demo = world.demo("demo");
    let mut count = 0;
    for command in ["api", "web"] {
        let (_server, url) = world.serve(&[command, "--address", "127.0.0.1:0"]);
        let path = hello_path(command);
        let body = br#"{"name":"Eve"}"#;

        let err = http("POST", &url, path, &[("Content-Type", "text/plain")], body).error(415);
        assert!(err.detail.contains("application/json"), "{err:?}");
        let err = http(
            "POST",
            &url,
            path,
            &[("Origin", "http://evil.example"), JSON],
            body,
        )
        .error(403);
        assert!(err.detail.contains("cross-origin"), "{err:?}");
        // A plain HTML form from another site: both reasons, refused either way.
        http(
            "POST",
            &url,
            path,
            &[
                ("Origin", "http://evil.example"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            b"name=Eve",
        )
        .error(403);

        // The page's own origin, and tools that send no origin, are served; the count shows
        // that none of the refused requests ran the handler.
        let own = format!("http://{}", url.strip_prefix("http://").unwrap());
        let reply = http(
            "POST",
            &url,
            path,
            &[("Origin", &own), JSON],
            br#"{"name":"Ada"}"#,
        );
        count += 1;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["count"], count, "{command}: {reply:?}");
        let reply = post(&url, path, r#"{"name":"Ada"}"#);
        count += 1;
        assert_eq!(reply.json()["count"], count, "{command}: {reply:?}");
    }
}

#[test]
fn a_foreign_host_header_is_refused_against_dns_rebinding() {
    let world = World::new();
    let _demo = world.demo("demo");
    for command in ["api", "web"] {
        let (_server, url) = world.serve(&[
            command,
            "--address",
            "127.0.0.1:0",
            "--allowed_hosts",
            "gateway.internal",
        ]);
        let port = url.rsplit_once(':').unwrap().1;
        let page = if command == "api" { "/health" } else { "/" };
        for foreign in [
            format!("evil.example:{port}"),
            "rebind.attacker.test".to_owned(),
        ] {
            let err = http("GET", &url, page, &[("Host", &foreign)], b"").error(403);
            assert!(err.detail.contains("--allowed_hosts"), "{err:?}");
            http(
                "POST",
                &url,
                hello_path(command),
                &[("Host", &foreign), JSON],
                br#"{"name":"Eve"}"#,
            )
            .error(403);
        }
        for fine in [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("gateway.internal:{port}"),
            "[::1]".to_owned(),
        ] {
            let reply = http("GET", &url, page, &[("Host", &fine)], b"");
            assert_eq!(reply.status, 200, "{command} {fine}: {reply:?}");
        }
    }
}

#[test]
fn require_token_refuses_requests_without_a_bearer_token() {
    let world = World::new();
    let _demo = world.demo("demo");
    for command in ["api", "web"] {
        let (_server, url) = world.serve(&[command, "--address", "127.0.0.1:0", "--require_token"]);
        let path = hello_path(command);
        let err = post(&url, path, r#"{"name":"Eve"}"#).error(401);
        assert!(err.detail.contains("Bearer"), "{err:?}");
        http(
            "POST",
            &url,
            path,
            &[("Authorization", "Basic ZXZlOmV2ZQ=="), JSON],
            br#"{"name":"Eve"}"#,
        )
        .error(401);
        let reply = http(
            "POST",
            &url,
            path,
            &[("Authorization", "Bearer some-token"), JSON],
            br#"{"name":"Ada"}"#,
        );
        assert_eq!(reply.status, 200, "{reply:?}");
    }
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Calls `count` distinct service names starting at `first`, pipelined on one keep-alive
/// connection in batches, and checks each answer is the 404 of an unknown service.
fn call_distinct_names(url: &str, first: usize, count: usize) {
    const BATCH: usize = 200;
    let authority = url.strip_prefix("http://").unwrap();
    let stream = std::net::TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(support::PATIENCE))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut next = first;
    while next < first + count {
        let n = BATCH.min(first + count - next);
        let mut requests = String::new();
        for i in next..next + n {
            requests.push_str(&format!(
                "POST /name-{i}/X.Y HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
            ));
        }
        writer.write_all(requests.as_bytes()).expect("send");
        for _ in 0..n {
            let mut status = String::new();
            reader.read_line(&mut status).expect("status line");
            assert!(status.contains(" 404 "), "{status:?}");
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("header");
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().expect("length");
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
        }
        next += n;
    }
}

/// Regression: the gateway kept about 180 bytes for every distinct service name ever
/// requested (100,000 names: +17 MiB).
#[test]
fn a_hundred_thousand_distinct_service_names_leave_the_gateways_memory_flat() {
    let world = World::new();
    let (api, url) = world.serve(&["api", "--address", "127.0.0.1:0"]);
    // Warm up: allocator arenas, the discovery cache filled to its bound.
    call_distinct_names(&url, 0, 10_000);
    let before = rss_kib(api.pid());
    // Four connections at once, a quarter of the names each.
    std::thread::scope(|s| {
        for part in 0..4 {
            let url = &url;
            s.spawn(move || call_distinct_names(url, 10_000 + part * 25_000, 25_000));
        }
    });
    let after = rss_kib(api.pid());
    eprintln!("gateway RSS: {before} KiB after 10,000 names, {after} KiB after 100,000 more");
    assert!(
        after <= before + 4 * 1024,
        "the gateway grew by {} KiB over 100,000 distinct names",
        after.saturating_sub(before)
    );
}

/// `micro --token`, `MICRO_AUTH_TOKEN` and the gateway passing `Authorization` on: the demo,
/// guarded by tokens, answers only calls that carry a valid one.
#[test]
fn micro_token_and_the_gateways_authorization_header_reach_a_guarded_service() {
    use micro::auth::{Account, Jwt};
    const SECRET: &str = "the demo's secret, 32 bytes or more";
    let token = Jwt::hs256(SECRET)
        .issue(&Account::new("ada"), std::time::Duration::from_secs(600))
        .unwrap();
    let world = World::new();
    let before = world.nodes("demo");
    let mut cmd = world.command(support::example("demo"));
    cmd.env("MICRO_SERVER_DRAIN", "0s")
        .env("DEMO_AUTH_SECRET", SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    let _demo = support::Proc {
        child: cmd.spawn().expect("start the demo"),
    };
    world.wait_for_nodes("demo", before + 1);

    let hello = r#"{"name":"Ada"}"#;
    let err = world.run(&["call", "demo", "Greeter.Hello", hello]).error();
    assert_eq!(err.code, 401, "{err:?}");
    let reply = world.run(&["--token", &token, "call", "demo", "Greeter.Hello", hello]);
    assert_eq!(reply.json()["message"], "Hello, Ada!");
    let mut with_env = world.micro(&["call", "demo", "Greeter.Hello", hello]);
    with_env.env("MICRO_AUTH_TOKEN", &token);
    assert_eq!(support::run(with_env).json()["message"], "Hello, Ada!");

    let (_api, url) = world.serve(&["api", "--address", "127.0.0.1:0"]);
    post(&url, "/demo/Greeter.Hello", hello).error(401);
    let reply = http(
        "POST",
        &url,
        "/demo/Greeter.Hello",
        &[("Authorization", &format!("Bearer {token}")), JSON],
        hello.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = http(
        "POST",
        &url,
        "/demo/Greeter.Hello",
        &[("Authorization", "Bearer forged"), JSON],
        hello.as_bytes(),
    );
    assert_eq!(reply.error(401).id, "micro.auth");
}
