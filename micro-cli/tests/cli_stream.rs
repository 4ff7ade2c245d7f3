//! `micro stream` and the gateway's Server-Sent Events, as real processes in front of a real
//! streaming service process.

mod support;

use support::{Proc, World, post, run_with_input};

/// Starts the feed example service and waits until it has registered.
fn feed(world: &World) -> Proc {
    world.feed()
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

mod websocket {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use super::support::PATIENCE;
    use super::{World, feed};

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn open(url: &str, path: &str) -> Socket {
        let ws = format!("{}{path}", url.replacen("http://", "ws://", 1));
        let (socket, response) = tokio_tungstenite::connect_async(ws).await.expect("upgrade");
        assert_eq!(response.status(), 101);
        socket
    }

    async fn send(socket: &mut Socket, text: &str) {
        socket.send(Message::text(text)).await.expect("send");
    }

    /// The next text message, parsed; `None` once the gateway closed.
    async fn next(socket: &mut Socket) -> Option<serde_json::Value> {
        loop {
            let message = tokio::time::timeout(PATIENCE, socket.next())
                .await
                .expect("a message in time")?
                .expect("a message");
            match message {
                Message::Text(text) => return Some(serde_json::from_str(&text).expect("JSON")),
                Message::Close(frame) => {
                    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
                    return None;
                }
                _ => continue,
            }
        }
    }

    /// Runs `test` with the URL of a gateway (started with `flags`) in front of the feed
    /// service (processes started outside the runtime: their helpers block).
    fn with_gateway<F: std::future::Future<Output = ()>>(
        flags: &[&str],
        test: impl FnOnce(String) -> F,
    ) {
        let world = World::new();
        let _feed = feed(&world);
        let mut args = vec!["api", "--address", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        let (_api, url) = world.serve(&args);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(test(url));
    }

    #[test]
    fn the_gateway_carries_every_stream_kind_over_a_websocket() {
        with_gateway(&[], |url| async move { carries_every_kind(url).await });
    }

    async fn carries_every_kind(url: String) {
        let message = |v: serde_json::Value| Some(serde_json::json!({ "message": v }));
        let end = Some(serde_json::json!({"end": {}}));

        // Both ways at once: each reply arrives before the next request is sent.
        let mut upper = open(&url, "/stream/feed/Feed.Upper").await;
        for word in ["ship", "sail"] {
            send(&mut upper, &format!("\"{word}\"")).await;
            assert_eq!(next(&mut upper).await, message(word.to_uppercase().into()));
        }
        send(&mut upper, "").await;
        assert_eq!(next(&mut upper).await, end);
        assert_eq!(next(&mut upper).await, None);

        // Requests in, one reply.
        let mut sum = open(&url, "/stream/feed/Feed.Sum").await;
        for n in ["1", "2", "39"] {
            send(&mut sum, n).await;
        }
        send(&mut sum, "").await;
        assert_eq!(next(&mut sum).await, message(42.into()));
        assert_eq!(next(&mut sum).await, end);

        // One request, replies out; a failure mid-stream ends it with micro's error.
        let mut count = open(&url, "/stream/feed/Feed.Count").await;
        send(&mut count, "3").await;
        for n in 0..3 {
            assert_eq!(next(&mut count).await, message(n.into()));
        }
        assert_eq!(next(&mut count).await, end);
        let mut failing = open(&url, "/stream/feed/Feed.FailAt").await;
        send(&mut failing, "1").await;
        assert_eq!(next(&mut failing).await, message(0.into()));
        let error = next(&mut failing).await.unwrap();
        assert_eq!(error["error"]["code"], 409, "{error}");
        assert_eq!(next(&mut failing).await, None);

        // A request that is not JSON fails the stream with 400, and the gateway goes on.
        let mut bad = open(&url, "/stream/feed/Feed.Upper").await;
        send(&mut bad, "{not json").await;
        let error = next(&mut bad).await.unwrap();
        assert_eq!(error["error"]["code"], 400, "{error}");
        let mut again = open(&url, "/stream/feed/Feed.Upper").await;
        send(&mut again, "\"ok\"").await;
        assert_eq!(next(&mut again).await, message("OK".into()));
    }

    #[test]
    fn a_websocket_is_refused_for_unary_names_and_foreign_origins() {
        with_gateway(&[], |url| async move {
            refused_for_unary_names_and_origins(url).await
        });
    }

    async fn refused_for_unary_names_and_origins(url: String) {
        let ws = |path: &str| format!("{}{path}", url.replacen("http://", "ws://", 1));
        let refused = |result: Result<_, tokio_tungstenite::tungstenite::Error>| match result {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
            Err(other) => panic!("not an HTTP refusal: {other}"),
            Ok(_) => panic!("upgraded"),
        };

        let status = refused(tokio_tungstenite::connect_async(ws("/stream/feed/Feed.Nope")).await);
        assert_eq!(status, 400);

        // A page of another origin may not open one (cross-site WebSocket hijacking).
        let mut request = ws("/stream/feed/Feed.Upper").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", "http://evil.example".parse().unwrap());
        let status = refused(tokio_tungstenite::connect_async(request).await);
        assert_eq!(status, 403);
    }

    #[test]
    fn closing_a_websocket_ends_its_stream_and_frees_its_place() {
        with_gateway(&["--max_concurrent", "1"], |url| async move {
            // A stream that would run for ages, holding the only place.
            let mut endless = open(&url, "/stream/feed/Feed.Count").await;
            send(&mut endless, "1000000000000").await;
            let first = next(&mut endless).await.unwrap();
            assert_eq!(first["message"], 0);
            let ws = format!(
                "{}/stream/feed/Feed.Upper",
                url.replacen("http://", "ws://", 1)
            );
            match tokio_tungstenite::connect_async(&ws).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    assert_eq!(response.status(), 503);
                }
                other => panic!("a second stream while the first runs: {other:?}"),
            }

            endless.close(None).await.unwrap();
            drop(endless);
            // Once the gateway has seen the close, the stream is cancelled and its place free.
            let start = std::time::Instant::now();
            let mut second = loop {
                match tokio_tungstenite::connect_async(&ws).await {
                    Ok((socket, _)) => break socket,
                    Err(e) => assert!(start.elapsed() < PATIENCE, "never freed: {e}"),
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            };
            send(&mut second, "\"free\"").await;
            let reply = next(&mut second).await.unwrap();
            assert_eq!(reply["message"], "FREE");
        });
    }
}
