//! Listen addresses as users write them, and the address to register for them.
//!
//! Every listener micro starts (a service's server, the embedded broker's inbox, the `micro
//! api` gateway, the `micro web` dashboard) reads its address with [`ListenAddr`]:
//!
//! | written | listens on |
//! |---------|------------|
//! | `:8080` | every IPv4 interface, port 8080 |
//! | `0.0.0.0:8080` | the same |
//! | `[::]:8080` | every interface, IPv6 and, where the system allows it (Linux does by default), IPv4 |
//! | `10.0.0.7:8080`, `[fd00::7]:8080` | that address only |
//! | `db-1:8080`, `localhost:8080` | the addresses the name resolves to (the first that binds) |
//!
//! Port 0 picks a free port. IPv6 addresses go in brackets.
//!
//! A listener on every interface (a *wildcard*) has no address another host could dial, so
//! a service registers the one [`advertised`] picks: an address of one of this host's
//! interfaces that is up, preferring, in this order,
//!
//! 1. a private IPv4 address (`10/8`, `172.16/12`, `192.168/16`, `100.64/10`),
//! 2. any other IPv4 address (public, then link-local `169.254/16`),
//! 3. an IPv6 address (unique-local `fc00::/7` first; never link-local, which needs a zone),
//!    only when listening on `[::]`,
//! 4. loopback (`127.0.0.1` or `::1`), with a warning: only this host can reach it.
//!
//! Between interfaces of the same rank the one with the lowest index wins (the order of
//! `ip link`: on most hosts and containers, `eth0` before bridges and tunnels added later).
//! To choose, name the interface (`MICRO_SERVER_INTERFACE=eth1`, `--server_interface`):
//! only its addresses are considered, and an unknown name stops start-up. To register
//! something no interface has (a NAT's public address, a published container port), set the
//! address itself with `MICRO_SERVER_ADVERTISE`; it overrides all of the above.
//!
//! ```
//! use micro::addr::{Host, ListenAddr};
//!
//! let any: ListenAddr = ":50051".parse().unwrap();
//! assert!(any.is_wildcard());
//! assert_eq!(any.port(), 50051);
//! assert_eq!(any.to_string(), ":50051");
//!
//! let named = ListenAddr::parse("db-1.internal:2379").unwrap();
//! assert_eq!(named.host(), &Host::Name("db-1.internal".into()));
//!
//! let err = ListenAddr::parse("::1:8080").unwrap_err();
//! assert_eq!(err.to_string(), "invalid address `::1:8080`: IPv6 addresses go in brackets, as [::1]:8080");
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use tokio::net::TcpListener;

/// An address that cannot be used, or an interface that cannot be found.
///
/// ```
/// let err = micro::addr::ListenAddr::parse("localhost").unwrap_err();
/// assert_eq!(err.to_string(), "invalid address `localhost`: missing port (host:port or :port)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrError {
    /// The text is not an address; says what is wrong with it.
    Invalid {
        /// The text as given.
        addr: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// No interface has this name; holds the names there are.
    NoInterface {
        /// The name asked for.
        name: String,
        /// The interfaces this host has.
        known: Vec<String>,
    },
    /// The named interface has no address of the family the listener needs.
    NoAddress {
        /// The interface.
        name: String,
        /// `IPv4` or `IP`.
        family: &'static str,
    },
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrError::Invalid { addr, reason } => write!(f, "invalid address `{addr}`: {reason}"),
            AddrError::NoInterface { name, known } => {
                write!(
                    f,
                    "no interface named {name} (there are: {})",
                    known.join(", ")
                )
            }
            AddrError::NoAddress { name, family } => {
                write!(f, "interface {name} has no {family} address")
            }
        }
    }
}

impl std::error::Error for AddrError {}

impl From<AddrError> for io::Error {
    fn from(err: AddrError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

/// The host part of a [`ListenAddr`].
///
/// ```
/// use micro::addr::{Host, ListenAddr};
/// assert_eq!(ListenAddr::parse(":0").unwrap().host(), &Host::Any);
/// assert_eq!(
///     ListenAddr::parse("[::1]:0").unwrap().host(),
///     &Host::Ip(std::net::Ipv6Addr::LOCALHOST.into())
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// Nothing before the colon: every IPv4 interface.
    Any,
    /// An IP address (`0.0.0.0` and `::` are wildcards too).
    Ip(IpAddr),
    /// A host name, resolved when binding.
    Name(String),
}

/// A listen address: `:port`, `ip:port`, `[ipv6]:port` or `hostname:port`. See the
/// [module docs](self).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let listener = micro::addr::ListenAddr::parse("localhost:0")?.bind().await?;
/// assert!(listener.local_addr()?.ip().is_loopback());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    host: Host,
    port: u16,
}

impl ListenAddr {
    /// Reads an address as users write it.
    ///
    /// # Errors
    /// [`AddrError::Invalid`], saying what is wrong: no port, a port that is not a number up
    /// to 65535, an IPv6 address without brackets, a host that is not a valid name.
    ///
    /// See the [module docs](self) for examples.
    pub fn parse(text: &str) -> Result<Self, AddrError> {
        let invalid = |reason| AddrError::Invalid {
            addr: text.to_owned(),
            reason,
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (ip, port) = rest.split_once("]:").ok_or_else(|| {
                invalid("missing port after the bracketed address, as [::1]:8080")
            })?;
            let ip: Ipv6Addr = ip
                .parse()
                .map_err(|_| invalid("not an IPv6 address between the brackets"))?;
            (Host::Ip(ip.into()), port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| invalid("missing port (host:port or :port)"))?;
            let host = if host.is_empty() {
                Host::Any
            } else if host.contains(':') {
                return Err(invalid("IPv6 addresses go in brackets, as [::1]:8080"));
            } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
                Host::Ip(ip.into())
            } else if valid_hostname(host) {
                Host::Name(host.to_owned())
            } else {
                return Err(invalid("not an IP address or host name"));
            };
            (host, port)
        };
        let port = port
            .parse()
            .map_err(|_| invalid("the port must be a number from 0 to 65535"))?;
        Ok(ListenAddr { host, port })
    }

    /// The host part.
    ///
    /// See the [module docs](self) for an example.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port (0: any free one).
    ///
    /// See the [module docs](self) for an example.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The same host with another port.
    ///
    /// ```
    /// let inbox = micro::addr::ListenAddr::parse(":50051").unwrap().with_port(0);
    /// assert_eq!(inbox.to_string(), ":0");
    /// ```
    #[must_use]
    pub fn with_port(&self, port: u16) -> Self {
        ListenAddr {
            host: self.host.clone(),
            port,
        }
    }

    /// Whether this listens on every interface (`:port`, `0.0.0.0:port`, `[::]:port`).
    ///
    /// ```
    /// use micro::addr::ListenAddr;
    /// assert!(ListenAddr::parse("[::]:80").unwrap().is_wildcard());
    /// assert!(!ListenAddr::parse("127.0.0.1:80").unwrap().is_wildcard());
    /// ```
    pub fn is_wildcard(&self) -> bool {
        match &self.host {
            Host::Any => true,
            Host::Ip(ip) => ip.is_unspecified(),
            Host::Name(_) => false,
        }
    }

    /// Binds a TCP listener: on the address itself, or, for a host name, on the first of
    /// the addresses it resolves to that can be bound.
    ///
    /// # Errors
    /// When the name does not resolve, or no address can be bound (taken, not this host's).
    ///
    /// See the [type-level example](Self).
    pub async fn bind(&self) -> io::Result<TcpListener> {
        match &self.host {
            Host::Any => TcpListener::bind((Ipv4Addr::UNSPECIFIED, self.port)).await,
            Host::Ip(ip) => TcpListener::bind((*ip, self.port)).await,
            Host::Name(name) => {
                let mut last = None;
                for addr in tokio::net::lookup_host((name.as_str(), self.port)).await? {
                    match TcpListener::bind(addr).await {
                        Ok(listener) => return Ok(listener),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{name} resolves to no address"),
                    )
                }))
            }
        }
    }
}

impl FromStr for ListenAddr {
    type Err = AddrError;

    fn from_str(text: &str) -> Result<Self, AddrError> {
        Self::parse(text)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Any => write!(f, ":{}", self.port),
            Host::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// RFC 1123 names, with `_` allowed as container runtimes allow it in service names.
fn valid_hostname(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
        })
}

/// One address of one interface, as [`advertised`] sees it.
#[derive(Clone, Debug)]
struct Candidate {
    interface: String,
    index: u32,
    up: bool,
    ip: IpAddr,
}

/// How good an address is to register; lower is better, `None`: never.
fn rank(ip: IpAddr, ipv6_allowed: bool) -> Option<(u8, &'static str)> {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_multicast() => None,
        IpAddr::V4(v4) if v4.is_loopback() => Some((5, "loopback")),
        IpAddr::V4(v4) if v4.is_private() || is_shared(v4) => Some((0, "private IPv4")),
        IpAddr::V4(v4) if v4.is_link_local() => Some((2, "link-local IPv4")),
        IpAddr::V4(_) => Some((1, "public IPv4")),
        IpAddr::V6(_) if !ipv6_allowed => None,
        IpAddr::V6(v6) if v6.is_unspecified() || v6.is_multicast() => None,
        IpAddr::V6(v6) if v6.is_loopback() => Some((6, "loopback")),
        // Link-local IPv6 is dialable only with a zone (`%eth0`) the registry cannot carry.
        IpAddr::V6(v6) if v6.is_unicast_link_local() => None,
        IpAddr::V6(v6) if v6.is_unique_local() => Some((3, "unique-local IPv6")),
        IpAddr::V6(_) => Some((4, "global IPv6")),
    }
}

/// `100.64.0.0/10`, carrier-grade NAT and overlay networks (Tailscale): private in practice.
fn is_shared(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 100 && (64..128).contains(&b)
}

/// The best candidate for a listener on `bound`, and why it was chosen.
fn pick(
    candidates: &[Candidate],
    bound: SocketAddr,
    interface: Option<&str>,
) -> Result<(IpAddr, String), AddrError> {
    let ipv6_allowed = bound.is_ipv6();
    let family = if ipv6_allowed { "IP" } else { "IPv4" };
    let considered: Vec<&Candidate> = match interface {
        Some(name) => {
            let own: Vec<&Candidate> = candidates.iter().filter(|c| c.interface == name).collect();
            if own.is_empty() {
                let mut known: Vec<String> =
                    candidates.iter().map(|c| c.interface.clone()).collect();
                known.dedup();
                return Err(AddrError::NoInterface {
                    name: name.to_owned(),
                    known,
                });
            }
            own
        }
        None => candidates.iter().filter(|c| c.up).collect(),
    };
    let best = considered
        .iter()
        .filter_map(|c| rank(c.ip, ipv6_allowed).map(|r| (r, c)))
        .min_by_key(|((rank, _), c)| (*rank, c.index));
    match (best, interface) {
        (Some(((_, kind), c)), _) => Ok((c.ip, format!("{kind} of {}", c.interface))),
        (None, Some(name)) => Err(AddrError::NoAddress {
            name: name.to_owned(),
            family,
        }),
        (None, None) if ipv6_allowed => Ok((
            Ipv6Addr::LOCALHOST.into(),
            "no interface is up: loopback".into(),
        )),
        (None, None) => Ok((
            Ipv4Addr::LOCALHOST.into(),
            "no interface is up: loopback".into(),
        )),
    }
}

fn interfaces() -> Vec<Candidate> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list
            .into_iter()
            .map(|i| Candidate {
                up: i.is_oper_up(),
                ip: i.ip(),
                index: i.index.unwrap_or(u32::MAX),
                interface: i.name,
            })
            .collect(),
        Err(e) => {
            tracing::warn!("cannot list network interfaces: {e}");
            Vec::new()
        }
    }
}

/// The address to register for a listener bound to `bound`: `bound` itself, unless it is
/// a wildcard (`0.0.0.0`, `::`), in which case an address of one of this host's interfaces
/// with the same port, chosen by the rule in the [module docs](self), or of the interface
/// named `interface`. The choice for a wildcard is logged.
///
/// # Errors
/// For a wildcard only: [`AddrError::NoInterface`] when no interface is named `interface`,
/// [`AddrError::NoAddress`] when it has no usable address.
///
/// ```
/// use std::net::SocketAddr;
///
/// let fixed: SocketAddr = "10.0.0.7:8080".parse().unwrap();
/// assert_eq!(micro::addr::advertised(fixed, None).unwrap(), fixed);
///
/// let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
/// let chosen = micro::addr::advertised(any, None).unwrap();
/// assert!(!chosen.ip().is_unspecified());
/// assert_eq!(chosen.port(), 8080);
///
/// assert!(micro::addr::advertised(any, Some("no-such-interface-0")).is_err());
/// ```
pub fn advertised(bound: SocketAddr, interface: Option<&str>) -> Result<SocketAddr, AddrError> {
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    let (ip, why) = pick(&interfaces(), bound, interface)?;
    let chosen = SocketAddr::new(ip, bound.port());
    if ip.is_loopback() {
        tracing::warn!(
            "listening on {bound}; registering {chosen} ({why}): only this host can call it. \
             Set MICRO_SERVER_ADVERTISE to the address other hosts should dial"
        );
    } else {
        tracing::info!(
            "listening on {bound}; registering {chosen} ({why}; MICRO_SERVER_INTERFACE or \
             MICRO_SERVER_ADVERTISE choose otherwise)"
        );
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(interface: &str, index: u32, up: bool, ip: &str) -> Candidate {
        Candidate {
            interface: interface.into(),
            index,
            up,
            ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn every_written_form_parses() {
        let cases = [
            (":0", Host::Any, 0),
            (":50051", Host::Any, 50051),
            ("0.0.0.0:8080", Host::Ip(Ipv4Addr::UNSPECIFIED.into()), 8080),
            ("[::]:8080", Host::Ip(Ipv6Addr::UNSPECIFIED.into()), 8080),
            ("[fd00::7]:1", Host::Ip("fd00::7".parse().unwrap()), 1),
            (
                "10.0.0.7:65535",
                Host::Ip("10.0.0.7".parse().unwrap()),
                65535,
            ),
            ("localhost:0", Host::Name("localhost".into()), 0),
            (
                "etcd_1.svc-a.local:2379",
                Host::Name("etcd_1.svc-a.local".into()),
                2379,
            ),
        ];
        for (text, host, port) in cases {
            let a = ListenAddr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((a.host(), a.port()), (&host, port), "{text}");
            assert_eq!(a.to_string().parse::<ListenAddr>().unwrap(), a, "{text}");
        }
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let cases = [
            ("", "missing port"),
            ("8080", "missing port"),
            ("host:", "the port must be"),
            (":65536", "the port must be"),
            (":-1", "the port must be"),
            ("::1:80", "brackets"),
            ("[::1]", "missing port after"),
            ("[10.0.0.1]:80", "not an IPv6 address"),
            ("two words:80", "not an IP address or host name"),
            ("-bad.example:80", "not an IP address or host name"),
            ("a..b:80", "not an IP address or host name"),
            ("memory:greeter", "the port must be"),
        ];
        for (text, why) in cases {
            let err = ListenAddr::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(
                err.starts_with(&format!("invalid address `{text}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn wildcards_are_recognised() {
        for w in [":1", "0.0.0.0:1", "[::]:1"] {
            assert!(ListenAddr::parse(w).unwrap().is_wildcard(), "{w}");
        }
        for w in ["127.0.0.1:1", "[::1]:1", "localhost:1", "10.1.2.3:1"] {
            assert!(!ListenAddr::parse(w).unwrap().is_wildcard(), "{w}");
        }
    }

    #[tokio::test]
    async fn colon_port_binds_every_ipv4_interface() {
        let listener = ListenAddr::parse(":0").unwrap().bind().await.unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(local.ip(), IpAddr::from(Ipv4Addr::UNSPECIFIED));
        assert_ne!(local.port(), 0);
    }

    fn v4_any() -> SocketAddr {
        "0.0.0.0:7".parse().unwrap()
    }

    #[test]
    fn a_private_ipv4_wins_over_public_ipv6_and_loopback() {
        let list = [
            c("lo", 1, true, "127.0.0.1"),
            c("lo", 1, true, "::1"),
            c("eth0", 2, true, "203.0.113.9"),
            c("eth0", 2, true, "2001:db8::9"),
            c("eth1", 3, true, "192.168.1.20"),
            c("docker0", 4, true, "172.17.0.1"),
        ];
        let (ip, why) = pick(&list, v4_any(), None).unwrap();
        assert_eq!(ip.to_string(), "192.168.1.20");
        assert_eq!(why, "private IPv4 of eth1");
        let (ip, _) = pick(&list[..4], v4_any(), None).unwrap();
        assert_eq!(ip.to_string(), "203.0.113.9");
    }

    #[test]
    fn interfaces_that_are_down_are_skipped_and_ties_go_to_the_lowest_index() {
        let list = [
            c("br-1", 9, true, "10.9.0.1"),
            c("eth0", 2, false, "10.0.0.5"),
            c("eth1", 3, true, "10.1.0.5"),
        ];
        assert_eq!(
            pick(&list, v4_any(), None).unwrap().0.to_string(),
            "10.1.0.5"
        );
    }

    #[test]
    fn ipv6_only_for_an_ipv6_wildcard_and_never_link_local() {
        let list = [
            c("lo", 1, true, "127.0.0.1"),
            c("eth0", 2, true, "fe80::1"),
            c("eth0", 2, true, "2001:db8::9"),
            c("eth0", 2, true, "fd00::9"),
        ];
        let (ip, why) = pick(&list, v4_any(), None).unwrap();
        assert_eq!(
            (ip.to_string().as_str(), why.as_str()),
            ("127.0.0.1", "loopback of lo")
        );
        let v6_any: SocketAddr = "[::]:7".parse().unwrap();
        assert_eq!(pick(&list, v6_any, None).unwrap().0.to_string(), "fd00::9");
        assert_eq!(
            pick(&list[..3], v6_any, None).unwrap().0.to_string(),
            "2001:db8::9"
        );
    }

    #[test]
    fn no_interface_at_all_registers_loopback() {
        assert_eq!(
            pick(&[], v4_any(), None).unwrap().0,
            IpAddr::from(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn a_named_interface_is_the_only_one_considered() {
        let list = [
            c("eth0", 2, true, "10.0.0.5"),
            c("wg0", 5, true, "203.0.113.1"),
            c("v6only", 6, true, "fd00::1"),
        ];
        assert_eq!(
            pick(&list, v4_any(), Some("wg0")).unwrap().0.to_string(),
            "203.0.113.1"
        );
        let err = pick(&list, v4_any(), Some("eth9")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no interface named eth9 (there are: eth0, wg0, v6only)"
        );
        let err = pick(&list, v4_any(), Some("v6only")).unwrap_err();
        assert_eq!(err.to_string(), "interface v6only has no IPv4 address");
    }

    #[test]
    fn a_specific_bound_address_is_registered_as_it_is() {
        let bound: SocketAddr = "10.3.3.3:9".parse().unwrap();
        assert_eq!(advertised(bound, Some("whatever")).unwrap(), bound);
    }
}
