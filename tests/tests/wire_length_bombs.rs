//! Length bombs: bincode bodies that declare a `String`, `Vec` or map of 2^34, 2^40 or 2^60
//! elements in a few bytes. Each once made the decoder allocate the declared length and
//! abort the process; now the caller gets a clear error and the process serves on.

use std::collections::HashMap;

use micro::codec::Codec;
use tests::raw::{self, length_bomb, next_request, read_frame};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const LENGTHS: [u64; 3] = [1 << 34, 1 << 40, 1 << 60];

/// Endpoints taking each kind of length-prefixed value.
#[derive(Clone, Default)]
struct Sink;

#[micro::service(name = "sink")]
impl Sink {
    pub async fn string(&self, s: String) -> micro::Result<usize> {
        Ok(s.len())
    }

    pub async fn bytes(&self, b: Vec<u8>) -> micro::Result<usize> {
        Ok(b.len())
    }

    pub async fn strings(&self, v: Vec<String>) -> micro::Result<usize> {
        Ok(v.len())
    }

    pub async fn numbers(&self, v: Vec<u64>) -> micro::Result<usize> {
        Ok(v.len())
    }

    pub async fn map(&self, m: HashMap<String, Vec<u8>>) -> micro::Result<usize> {
        Ok(m.len())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_bombs_in_requests_are_bad_requests_and_the_service_lives() {
    let service = tests::service("bombs-request")
        .handle(Sink)
        .start()
        .await
        .unwrap();
    let mut s = TcpStream::connect(service.address()).await.unwrap();
    let endpoints = [
        "Sink.String",
        "Sink.Bytes",
        "Sink.Strings",
        "Sink.Numbers",
        "Sink.Map",
    ];
    let mut id = 0;
    for len in LENGTHS {
        for endpoint in endpoints {
            id += 1;
            let frame = raw::request(id, 1, "bombs-request", endpoint, &length_bomb(len));
            assert!(frame.len() < 64, "a bomb is small: {} bytes", frame.len());
            s.write_all(&frame).await.unwrap();
            let (kind, got, body) = read_frame(&mut s).await.expect("an answer");
            assert_eq!((kind, got), (3, id), "an error frame for call {id}");
            let err: micro::Error = serde_json::from_slice(&body).unwrap();
            assert_eq!(err.code, 400, "{endpoint} 2^{}: {err}", len.ilog2());
            assert!(err.detail.contains("cannot decode the request"), "{err}");
        }
    }
    // The same connection, and the service, still work.
    id += 1;
    let body = micro::codec::Bincode::encode(&"hello").unwrap();
    s.write_all(&raw::request(id, 1, "bombs-request", "Sink.String", &body))
        .await
        .unwrap();
    let (kind, got, body) = read_frame(&mut s).await.unwrap();
    assert_eq!((kind, got), (2, id));
    assert_eq!(micro::codec::Bincode::decode::<usize>(&body).unwrap(), 5);
    drop(s);
    service.stop().await;
}

/// A server that answers every request with a length bomb of `len`.
async fn bombing_server(len: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                while let Some(id) = next_request(&mut s).await {
                    if s.write_all(&raw::reply(id, 1, &length_bomb(len)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_bombs_in_replies_are_clear_errors_and_the_client_lives() {
    let client = tests::wire_client();
    for len in LENGTHS {
        let addr = bombing_server(len).await;
        let err = client
            .call::<(), String>("bomber".into(), "Bomb.String", ())
            .node(&addr)
            .await
            .unwrap_err();
        assert!(
            err.detail.contains("claims more than"),
            "2^{}: {err}",
            len.ilog2()
        );
        let err = client
            .call::<(), Vec<String>>("bomber".into(), "Bomb.Strings", ())
            .node(&addr)
            .await
            .unwrap_err();
        assert!(err.detail.contains("decode"), "2^{}: {err}", len.ilog2());
        let err = client
            .call::<(), HashMap<String, String>>("bomber".into(), "Bomb.Map", ())
            .node(&addr)
            .await
            .unwrap_err();
        assert!(err.detail.contains("decode"), "2^{}: {err}", len.ilog2());
    }
    // The client process is alive and still makes calls.
    let service = tests::service("bombs-reply")
        .handle(Sink)
        .start()
        .await
        .unwrap();
    let n = client
        .call::<String, usize>("bombs-reply".into(), "Sink.String", "four".into())
        .await
        .unwrap();
    assert_eq!(n, 4);
    service.stop().await;
}
