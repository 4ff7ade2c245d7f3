//! `micro mcp` driven by the official MCP Python SDK over stdio, against the shippy service;
//! and its streamable HTTP transport over plain HTTP.
//!
//! The SDK (`mcp` on PyPI) is installed into `target/tmp/mcp-python` when `python3` cannot
//! import it (`.ci/run` installs it there first). Without Python or pip the stdio test says
//! why and skips.

mod support;

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/shippy.rs"]
mod shippy;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use support::{World, block_on, http, run};

/// The client: the SDK's stdio transport and session, as an agent's host uses them. Prints
/// one JSON object with what it saw.
const CLIENT: &str = r#"
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(
        command=sys.argv[1],
        args=["mcp"],
        env={k: v for k, v in os.environ.items() if k.startswith("MICRO_") or k in ("PATH", "RUST_LOG")},
    )
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            # Dumped by alias: the protocol's own field names, in SDK 1.x and 2.x alike.
            dump = lambda m: m.model_dump(mode="json", by_alias=True, exclude_none=True)
            init = dump(await session.initialize())
            out["server"] = init["serverInfo"]["name"]
            listed = dump(await session.list_tools())
            out["tools"] = listed["tools"]
            create = "shippy_service_consignment_Shipping_CreateConsignment"
            ok = await session.call_tool(create, {
                "description": "from an agent",
                "weight": 1200,
                "containers": [{"id": "c1", "customer_id": "u1", "origin": "Oslo", "user_id": "u1"}],
            })
            ok = dump(ok)
            out["created"] = {"isError": ok.get("isError", False), "text": ok["content"][0]["text"]}
            bad = await session.call_tool(create, {"description": "nothing", "weight": -1})
            bad = dump(bad)
            out["rejected"] = {"isError": bad.get("isError", False), "text": bad["content"][0]["text"]}
            try:
                await session.call_tool("no_such_tool", {})
                out["unknown"] = "answered"
            except Exception as e:
                out["unknown"] = str(e)
    print(json.dumps(out))

asyncio.run(main())
"#;

/// Where the SDK is installed when the system Python lacks it.
fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mcp-python")
}

fn python() -> Command {
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", sdk_dir());
    cmd
}

/// Makes the SDK importable; `Err` says why it cannot be.
fn ensure_sdk() -> Result<(), String> {
    let importable = || {
        python()
            .args(["-c", "import mcp.client.stdio"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if importable() {
        return Ok(());
    }
    eprintln!("installing the MCP Python SDK into {}", sdk_dir().display());
    let out = python()
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(sdk_dir())
        .arg("mcp")
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !importable() {
        return Err(format!(
            "pip could not install mcp: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

#[test]
fn the_python_sdk_lists_shippy_as_tools_and_creates_a_consignment_through_one() {
    if let Err(why) = ensure_sdk() {
        eprintln!("SKIPPED: the MCP Python SDK is not available: {why}");
        return;
    }
    let world = World::new();
    let _shippy = world.shippy();

    let script = std::env::temp_dir().join(format!("micro-mcp-client-{}.py", std::process::id()));
    std::fs::write(&script, CLIENT).expect("write the client script");
    let mut cmd = world.command("python3");
    cmd.env("PYTHONPATH", sdk_dir())
        .arg(&script)
        .arg(support::MICRO);
    let out = run(cmd);
    let _ = std::fs::remove_file(&script);
    let seen: serde_json::Value = serde_json::from_str(out.ok().trim())
        .unwrap_or_else(|e| panic!("the client's output is not JSON ({e}): {out:?}"));

    assert_eq!(seen["server"], "micro");
    let tools = seen["tools"].as_array().expect("tools");
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no tool {name} in {tools:?}"))
    };
    let create = tool("shippy_service_consignment_Shipping_CreateConsignment");
    assert!(
        create["description"].as_str().unwrap().starts_with(
            "Stores a consignment on a vessel that can carry it, giving it an id if it has none."
        ),
        "{create}"
    );
    let schema = &create["inputSchema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["weight"]["type"], "integer");
    assert_eq!(schema["properties"]["description"]["type"], "string");
    assert_eq!(
        schema["properties"]["containers"]["items"]["properties"]["origin"]["type"],
        "string"
    );
    let list = tool("shippy_service_consignment_Shipping_GetConsignments");
    assert_eq!(
        list["inputSchema"],
        json!({"type": "object", "properties": {}})
    );
    assert!(
        tools.iter().all(|t| {
            let name = t["name"].as_str().unwrap();
            !name.contains("Debug_") && !name.starts_with("micro_")
        }),
        "no Debug or framework tools by default: {tools:?}"
    );

    assert_eq!(seen["created"]["isError"], false, "{seen}");
    let created: serde_json::Value =
        serde_json::from_str(seen["created"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(created["consignment"]["description"], "from an agent");
    assert_eq!(seen["rejected"]["isError"], true, "{seen}");
    let err: micro::Error = serde_json::from_str(seen["rejected"]["text"].as_str().unwrap())
        .expect("a tool error is micro's error JSON");
    assert_eq!(
        (err.code, err.detail.as_str()),
        (400, "weight must be positive")
    );
    assert!(
        seen["unknown"].as_str().unwrap().contains("unknown tool"),
        "{seen}"
    );

    // A typed client sees what the agent created.
    let client = micro::Client::builder()
        .registry(Arc::new(world.registry()))
        .build();
    let shipping = shippy::ShippingClient::new(client);
    let listed = block_on(async { shipping.get_consignments().await }).expect("get_consignments");
    let descriptions: Vec<&str> = listed
        .consignments
        .iter()
        .map(|c| c.description.as_str())
        .collect();
    assert_eq!(descriptions, ["from an agent"]);
    assert_eq!(listed.consignments[0].containers[0].origin, "Oslo");
}

/// One JSON-RPC message to `url`, with the headers a streamable HTTP client sends.
fn rpc(url: &str, body: &serde_json::Value) -> support::Response {
    http(
        "POST",
        url,
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        body.to_string().as_bytes(),
    )
}

#[test]
fn the_streamable_http_transport_answers_json_rpc_and_limits_tools_to_the_allow_list() {
    let world = World::new();
    let _demo = world.demo("demo");
    let (_mcp, url) = world.serve(&[
        "mcp",
        "--transport",
        "http",
        "--address",
        "127.0.0.1:0",
        "--allow",
        "demo/Greeter.Hello,demo/Greeter.Fail",
    ]);

    let init = rpc(
        &url,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"}}}),
    );
    assert_eq!(init.status, 200, "{init:?}");
    assert_eq!(init.json()["result"]["protocolVersion"], "2025-06-18");
    let note = rpc(
        &url,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!((note.status, note.body.as_str()), (202, ""));

    let list = rpc(
        &url,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .json();
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["demo_Greeter_Fail", "demo_Greeter_Hello"]);
    let fail = &list["result"]["tools"][0];
    assert_eq!(fail["inputSchema"]["required"], json!(["request"]));
    assert_eq!(
        fail["inputSchema"]["properties"]["request"]["maximum"],
        65535
    );

    let call = |id: u64, name: &str, arguments: serde_json::Value| {
        rpc(
            &url,
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": name, "arguments": arguments}}),
        )
        .json()
    };
    let hello = call(3, "demo_Greeter_Hello", json!({"name": "Ada"}));
    assert_eq!(hello["result"]["isError"], false, "{hello}");
    assert_eq!(
        hello["result"]["structuredContent"]["message"],
        "Hello, Ada!"
    );
    let failed = call(4, "demo_Greeter_Fail", json!({"request": 409}));
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    assert!(
        failed["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("\"code\":409")
    );
    // Outside the allow-list, a tool does not exist.
    let hidden = call(5, "demo_Greeter_Events", json!({}));
    assert_eq!(hidden["error"]["code"], -32602, "{hidden}");

    let garbage = http("POST", &url, "/mcp", &[], b"{");
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["error"]["code"], -32700);
    let unknown = rpc(&url, &json!({"jsonrpc": "2.0", "id": 6, "method": "nope"})).json();
    assert_eq!(unknown["error"]["code"], -32601);
    let rebinding = http(
        "POST",
        &url,
        "/mcp",
        &[("Origin", "http://evil.example")],
        b"{}",
    );
    assert_eq!(rebinding.status, 403);
    assert_eq!(http("GET", &url, "/mcp", &[], b"").status, 405);
}
