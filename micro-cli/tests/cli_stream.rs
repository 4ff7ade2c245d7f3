//! `micro stream` and the gateway's Server-Sent Events, as real processes in front of a real
//! streaming service process.

mod support;

use std::process::Stdio;

use support::{Proc, World, example, post, run_with_input};

/// Starts the feed example service and waits until it has registered.
fn feed(world: &World) -> Proc {
    let before = world.nodes("feed");
    let mut cmd = world.command(example("feed"));
    cmd.env("MICRO_SERVER_DRAIN", "0s")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let proc = Proc {
        child: cmd.spawn().expect("start the feed service"),
    };
    world.wait_for_nodes("feed", before + 1);
    proc
}

#[test]
fn stream_prints_a_server_streams_replies_as_ndjson() {
    let world = World::new();
    let _feed = feed(&world);
    assert_eq!(
        world.run(&["stream", "feed", "Feed.Count", "3"]).ok(),
        "0\n1\n2\n"
    );
    assert_eq!(world.run(&["stream", "feed", "Feed.Count", "0"]).ok(), "");
}

#[test]
fn an_error_mid_stream_follows_the_replies_and_fails_the_command() {
    let world = World::new();
    let _feed = feed(&world);
    let run = world.run(&["stream", "feed", "Feed.FailAt", "2"]);
    assert_eq!(run.stdout, "0\n1\n", "{run:?}");
    assert_eq!(run.code, Some(1), "{run:?}");
    let error: micro::Error = serde_json::from_str(run.stderr.trim()).expect("error JSON");
    assert_eq!((error.code, error.detail.as_str()), (409, "failed at 2"));
}

#[test]
fn stream_sends_stdin_lines_or_arguments_as_requests() {
    let world = World::new();
    let _feed = feed(&world);
    let sum = run_with_input(
        world.micro(&["stream", "feed", "Feed.Sum"]),
        Some("1\n2\n\n39\n"),
    );
    assert_eq!(sum.ok(), "42\n");
    let words = run_with_input(
        world.micro(&["stream", "feed", "Feed.Upper"]),
        Some("\"ada\"\n\"grace\"\n"),
    );
    assert_eq!(words.ok(), "\"ADA\"\n\"GRACE\"\n");
    assert_eq!(
        world
            .run(&["stream", "feed", "Feed.Upper", "\"x\"", "\"y\""])
            .ok(),
        "\"X\"\n\"Y\"\n"
    );
    let bad = run_with_input(
        world.micro(&["stream", "feed", "Feed.Sum"]),
        Some("1\nnope\n"),
    );
    assert_eq!(bad.code, Some(1), "{bad:?}");
}

#[test]
fn a_unary_endpoint_is_refused_with_a_hint() {
    let world = World::new();
    let _feed = feed(&world);
    world
        .run(&["stream", "feed", "Debug.Health"])
        .usage("not a streaming endpoint");
}

/// The body of a chunked response, without its chunk framing.
fn dechunk(reply: &support::Response) -> String {
    if reply.header("transfer-encoding") != Some("chunked") {
        return reply.body.clone();
    }
    let mut rest = reply.body.as_str();
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

#[test]
fn the_gateway_serves_a_server_stream_as_server_sent_events() {
    let world = World::new();
    let _feed = feed(&world);
    let (_api, url) = world.serve(&["api", "--address", "127.0.0.1:0"]);

    let reply = post(&url, "/stream/feed/Feed.Count", "3");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let body = dechunk(&reply);
    let events: Vec<&str> = body
        .split("\n\n")
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.starts_with(':'))
        .collect();
    assert_eq!(
        events,
        ["data: 0", "data: 1", "data: 2", "event: end\ndata: {}"],
        "{reply:?}"
    );

    let failed = dechunk(&post(&url, "/stream/feed/Feed.FailAt", "1"));
    assert!(
        failed.contains("data: 0\n\nevent: error\ndata: {"),
        "{failed:?}"
    );
    assert!(failed.contains("failed at 1"), "{failed:?}");
    assert!(!failed.contains("event: end"), "{failed:?}");

    // A stream that cannot open answers as a failed call does.
    let missing = post(&url, "/stream/feed/Feed.Nope", "1");
    assert_eq!(missing.status, 404, "{missing:?}");
}
