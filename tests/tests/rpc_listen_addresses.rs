//! Listen addresses as users write them, on one machine: what a service registers for each,
//! and that it can be called there.

use micro::config::Options;
use tests::{CounterClient, counter_client, service};

fn options(args: &[&str]) -> Options {
    let args: Vec<String> = std::iter::once("test")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    Options::resolve(|_: &str| None, &args).expect("valid options")
}

/// Regression: `MICRO_SERVER_ADDRESS=:0` stopped start-up with "failed to lookup address
/// information", and `0.0.0.0:0` registered 127.0.0.1, which no other host can dial.
#[tokio::test]
async fn server_address_colon_zero_failed_to_lookup_address_information() {
    for (name, address) in [("listen-colon", ":0"), ("listen-any", "0.0.0.0:0")] {
        let running = service(name)
            .options(options(&["--server_address", address]))
            .handle(tests::Counter::new())
            .start()
            .await
            .unwrap_or_else(|e| panic!("{address}: {e}"));
        let registered: std::net::SocketAddr = running.address().parse().expect("an IP address");
        assert!(
            !registered.ip().is_unspecified(),
            "{address} registered {registered}"
        );
        let has_other = if_has_non_loopback_ipv4();
        assert_eq!(
            registered.ip().is_loopback(),
            !has_other,
            "{address} registered {registered} (this host has a non-loopback IPv4: {has_other})"
        );
        let client: CounterClient = counter_client(name, true);
        assert_eq!(
            client.add(2).await.unwrap(),
            2,
            "{address}: called over {registered}"
        );
        running.stop().await;
    }
}

/// Whether an interface that is up has an IPv4 address other than loopback, read from the
/// kernel's routing table (its local routes), independently of micro.
fn if_has_non_loopback_ipv4() -> bool {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "up"])
        .output();
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| !l.contains(" lo ") && l.contains("inet ")),
        // Without `ip`, fall back on the rule being honoured by whatever is registered.
        Err(_) => true,
    }
}

#[tokio::test]
async fn an_interface_that_does_not_exist_stops_start_up_naming_it() {
    let err = service("listen-no-interface")
        .options(options(&[
            "--server_address=:0",
            "--server_interface=no-such-if0",
        ]))
        .handle(tests::Counter::new())
        .start()
        .await
        .expect_err("an unknown interface is an error");
    assert_eq!(err.code, 400);
    assert!(
        err.detail
            .starts_with("no interface named no-such-if0 (there are: "),
        "{err}"
    );
}

#[tokio::test]
async fn a_host_name_binds_what_it_resolves_to() {
    let running = service("listen-name")
        .options(options(&["--server_address", "localhost:0"]))
        .handle(tests::Counter::new())
        .start()
        .await
        .expect("localhost:0 binds");
    let registered: std::net::SocketAddr = running.address().parse().unwrap();
    assert!(registered.ip().is_loopback(), "{registered}");
    assert_eq!(counter_client("listen-name", true).add(1).await.unwrap(), 1);
    running.stop().await;
}
