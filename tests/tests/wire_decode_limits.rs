//! Bodies that are small but expensive to decode: a sequence declaring 2^60 elements that
//! take no bytes (`Vec<()>`, empty structs) made serde loop that many times, a busy core for
//! centuries; a recursive type nested a million deep overflowed the decoding thread's stack
//! and aborted the process. Now each is a 400 that names the limit, on that call only: the
//! connection and the process serve on.

use std::collections::HashSet;

use micro::codec::Codec;
use serde::{Deserialize, Serialize};
use tests::raw::{self, next_request, read_frame};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A recursive expression, the shape of an abstract syntax tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Lit(i64),
    Neg(Box<Expr>),
}

impl Expr {
    fn eval(&self) -> i64 {
        // A loop, not recursion: the handler must not be what overflows.
        let (mut e, mut sign) = (self, 1);
        loop {
            match e {
                Expr::Lit(n) => return sign * n,
                Expr::Neg(inner) => (e, sign) = (inner, -sign),
            }
        }
    }
}

/// A linked list through `Option<Box<_>>`, the shape of a tree's child pointers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    value: i64,
    child: Option<Box<Node>>,
}

/// A recursion with no brackets in JSON: each level is a newtype and a `Some`, so JSON's own
/// bracket-counting limit never sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Chain(Option<Box<Chain>>);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unit;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Braces {}

#[derive(Clone, Default)]
struct Shapes;

#[micro::service(name = "shapes")]
impl Shapes {
    pub async fn units(&self, v: Vec<()>) -> micro::Result<usize> {
        Ok(v.len())
    }

    pub async fn unit_structs(&self, v: Vec<Unit>) -> micro::Result<usize> {
        Ok(v.len())
    }

    pub async fn empty_structs(&self, v: Vec<Braces>) -> micro::Result<usize> {
        Ok(v.len())
    }

    pub async fn unit_set(&self, v: HashSet<()>) -> micro::Result<usize> {
        Ok(v.len())
    }

    pub async fn eval(&self, e: Expr) -> micro::Result<i64> {
        Ok(e.eval())
    }

    pub async fn length(&self, n: Node) -> micro::Result<usize> {
        let (mut node, mut len) = (&n, 1);
        while let Some(next) = &node.child {
            (node, len) = (next, len + 1);
        }
        // Dropping a deep list recurses too: unlink it first.
        let mut rest = n.child;
        while let Some(mut next) = rest {
            rest = next.child.take();
        }
        Ok(len)
    }

    pub async fn chain(&self, c: Chain) -> micro::Result<usize> {
        let mut rest = c.0;
        let mut len = 0;
        while let Some(next) = rest {
            (rest, len) = (next.0, len + 1);
        }
        Ok(len)
    }
}

/// 2^60 zero-sized elements: the varint length is the whole body.
fn zero_sized_bomb() -> Vec<u8> {
    let mut body = vec![0xfd];
    body.extend_from_slice(&(1u64 << 60).to_le_bytes());
    body
}

/// How deep the hostile bodies nest: far beyond any thread's stack.
const DEEP: usize = 1_000_000;

/// `Neg(Neg(…Lit(0)…))`, `DEEP` levels, in bincode: a variant index byte per level.
fn deep_expr() -> Vec<u8> {
    let mut body = vec![1u8; DEEP];
    body.extend_from_slice(&[0, 0]);
    body
}

/// A `Node` list `DEEP` long in bincode: a value and a `Some` tag per level.
fn deep_node() -> Vec<u8> {
    let mut body = [0u8, 1].repeat(DEEP);
    body.extend_from_slice(&[0, 0]);
    body
}

/// A `Chain` `DEEP` long in bincode: a `Some` tag per level.
fn deep_chain() -> Vec<u8> {
    let mut body = vec![1u8; DEEP];
    body.push(0);
    body
}

/// `{"Neg":{"Neg":…{"Lit":1}…}}` nested `DEEP / 10` levels (eight bytes a level: within the
/// frame limit).
fn deep_expr_json() -> Vec<u8> {
    let mut body = br#"{"Neg":"#.repeat(DEEP / 10);
    body.extend_from_slice(br#"{"Lit":1}"#);
    body.extend(std::iter::repeat_n(b'}', DEEP / 10));
    body
}

/// Sends `body` to `endpoint` on `s` and returns the error the service answers with.
async fn refused(s: &mut TcpStream, id: u64, ct: u8, endpoint: &str, body: &[u8]) -> micro::Error {
    s.write_all(&raw::request(id, ct, "decode-limits", endpoint, body))
        .await
        .unwrap();
    let (kind, got, body) = read_frame(s).await.expect("an answer");
    assert_eq!((kind, got), (3, id), "an error frame for {endpoint}");
    let err: micro::Error = serde_json::from_slice(&body).unwrap();
    assert_eq!(err.code, 400, "{endpoint}: {err}");
    assert!(err.detail.contains("cannot decode the request"), "{err}");
    err
}

/// A normal call on the same connection: the connection and the service still work.
async fn still_served(s: &mut TcpStream, id: u64) {
    let body = micro::codec::Bincode::encode(&Expr::Neg(Box::new(Expr::Lit(7)))).unwrap();
    s.write_all(&raw::request(id, 1, "decode-limits", "Shapes.Eval", &body))
        .await
        .unwrap();
    let (kind, got, body) = read_frame(s).await.expect("a reply");
    assert_eq!((kind, got), (2, id), "a reply frame");
    assert_eq!(micro::codec::Bincode::decode::<i64>(&body).unwrap(), -7);
}

async fn connect() -> (micro::RunningService, TcpStream) {
    let service = tests::service("decode-limits")
        .handle(Shapes)
        .start()
        .await
        .unwrap();
    let s = TcpStream::connect(service.address()).await.unwrap();
    (service, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_sized_elements_declared_2_60_times_are_a_bad_request_not_a_busy_loop() {
    let (service, mut s) = connect().await;
    let endpoints = [
        "Shapes.Units",
        "Shapes.UnitStructs",
        "Shapes.EmptyStructs",
        "Shapes.UnitSet",
    ];
    let mut id = 0;
    for endpoint in endpoints {
        id += 1;
        let err = refused(&mut s, id, 1, endpoint, &zero_sized_bomb()).await;
        assert!(
            err.detail.contains("too many elements"),
            "{endpoint}: {err}"
        );
    }
    // A reasonable number of zero-sized elements still decodes.
    id += 1;
    let body = micro::codec::Bincode::encode(&vec![(); 1000]).unwrap();
    s.write_all(&raw::request(id, 1, "decode-limits", "Shapes.Units", &body))
        .await
        .unwrap();
    let (kind, got, body) = read_frame(&mut s).await.expect("a reply");
    assert_eq!((kind, got), (2, id));
    assert_eq!(micro::codec::Bincode::decode::<usize>(&body).unwrap(), 1000);
    still_served(&mut s, id + 1).await;
    drop(s);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_deep_recursive_request_is_a_bad_request_not_a_stack_overflow() {
    let (service, mut s) = connect().await;
    let hostile: [(u8, &str, Vec<u8>); 4] = [
        (1, "Shapes.Eval", deep_expr()),
        (1, "Shapes.Length", deep_node()),
        (1, "Shapes.Chain", deep_chain()),
        (2, "Shapes.Eval", deep_expr_json()),
    ];
    for (i, (ct, endpoint, body)) in hostile.iter().enumerate() {
        let id = i as u64 + 1;
        let err = refused(&mut s, id, *ct, endpoint, body).await;
        assert!(
            err.detail.contains("nested too deep") || err.detail.contains("recursion limit"),
            "{endpoint}: {err}"
        );
    }
    // JSON's own limit counts brackets; a newtype around an `Option` has none.
    let err = refused(&mut s, 10, 2, "Shapes.Chain", b"1").await;
    assert!(err.detail.contains("nested too deep"), "{err}");
    // Nesting of an ordinary depth still decodes, in both codecs.
    let mut e = Expr::Lit(3);
    for _ in 0..50 {
        e = Expr::Neg(Box::new(e));
    }
    for (id, ct) in [
        (11, micro::codec::ContentType::Bincode),
        (12, micro::codec::ContentType::Json),
    ] {
        let body = ct.encode(&e).unwrap();
        let code = if ct == micro::codec::ContentType::Bincode {
            1
        } else {
            2
        };
        s.write_all(&raw::request(
            id,
            code,
            "decode-limits",
            "Shapes.Eval",
            &body,
        ))
        .await
        .unwrap();
        let (kind, got, body) = read_frame(&mut s).await.expect("a reply");
        assert_eq!((kind, got), (2, id), "{ct}");
        assert_eq!(ct.decode::<i64>(&body).unwrap(), 3, "{ct}");
    }
    still_served(&mut s, 13).await;
    drop(s);
    service.stop().await;
}

/// A server that answers every request with `body`.
async fn hostile_server(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                while let Some(id) = next_request(&mut s).await {
                    if s.write_all(&raw::reply(id, 1, &body)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The client decodes replies with the same limits: a hostile server cannot hang or abort it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_replies_nested_deep_or_of_zero_sized_elements_are_clear_errors() {
    let client = tests::wire_client();
    let addr = hostile_server(deep_expr()).await;
    let err = client
        .call::<(), Expr>("hostile".into(), "Hostile.Deep", ())
        .node(&addr)
        .await
        .unwrap_err();
    assert!(err.detail.contains("nested too deep"), "{err}");

    let addr = hostile_server(zero_sized_bomb()).await;
    let err = client
        .call::<(), Vec<()>>("hostile".into(), "Hostile.Units", ())
        .node(&addr)
        .await
        .unwrap_err();
    assert!(err.detail.contains("too many elements"), "{err}");

    // The client process is alive and still makes calls.
    let (service, s) = connect().await;
    drop(s);
    let n = client
        .call::<Expr, i64>(
            "decode-limits".into(),
            "Shapes.Eval",
            Expr::Neg(Box::new(Expr::Lit(2))),
        )
        .await
        .unwrap();
    assert_eq!(n, -2);
    service.stop().await;
}
