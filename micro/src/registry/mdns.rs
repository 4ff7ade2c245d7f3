use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mdns_sd::{
    IfKind, Receiver, RecvTimeoutError, ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo,
    TxtProperties, TxtProperty,
};
use tokio::sync::{Notify, mpsc};

use super::{Action, Event, Registry, RegistryError, Service, Watcher, group};
use crate::BoxFuture;

/// The DNS-SD service type every node is advertised under, as DNS-SD tools browse for it
/// (`avahi-browse _micro._tcp`, `dns-sd -B _micro._tcp`).
///
/// ```
/// assert_eq!(micro::registry::MDNS_SERVICE_TYPE, "_micro._tcp.local.");
/// ```
pub const SERVICE_TYPE: &str = "_micro._tcp.local.";

/// How often expired entries are swept, and own registrations whose TTL ran out withdrawn.
const SWEEP: Duration = Duration::from_millis(250);

/// How long after start-up a lookup that finds nothing waits for the first answers.
const WARM_UP: Duration = Duration::from_secs(2);

/// The largest TXT record one node may advertise: it must fit in one mDNS packet with its
/// name, which RFC 6762 caps at 9000 bytes (8952 of them for DNS over IPv6).
const MAX_TXT: usize = 8500;

/// Bytes of JSON per TXT string: with the key (`rec12=`) it stays under the 255-byte limit.
const CHUNK: usize = 240;

/// Withdrawn registrations are remembered this long, so that late echoes of them are ignored.
const FORGET_WITHDRAWN: Duration = Duration::from_secs(60);

/// A registry on multicast DNS service discovery (`MICRO_REGISTRY=mdns`, cargo feature
/// `mdns`): processes on one network link find each other with no server at all.
///
/// Each node is a DNS-SD instance of type `_micro._tcp.local.`, named after the node id
/// (made DNS-safe and unique with a hash), on a host `<instance>.local.` whose addresses are
/// those of the enabled interfaces, and whose SRV port is the node's. Its TXT record holds:
///
/// | key | value |
/// |-----|-------|
/// | `name`, `version`, `node` | service name and version, node id (for DNS-SD tools; left out when too long) |
/// | `ttl` | the registration's TTL in milliseconds (absent: no TTL) |
/// | `beat` | a number that grows with every [`register`](Registry::register) |
/// | `rec` | how many pieces the record has |
/// | `rec0`, `rec1`, … | the service with this one node, as go-micro's JSON, in pieces of at most 240 bytes |
///
/// The JSON is the record; the other keys only describe it. A TXT record must fit in one
/// mDNS packet, 8500 bytes (a JSON of about 8 KB): when the endpoints' type descriptions make
/// it larger, they are cut (to type names, then left out) with a warning, since calls do not
/// need them; a record still too large is refused with [`RegistryError::Invalid`].
///
/// **TTL.** Every `register` announces the record again, with a new `beat`, so every
/// browser hears that the node is alive; a browser drops a node whose TTL passes without
/// that (within a sweep of 250 ms), so a killed process disappears once its TTL runs out. A
/// registration not renewed within its TTL is also withdrawn by its own registry.
/// [`deregister`](Registry::deregister) sends goodbye packets: browsers drop the node about
/// a second later. (The DNS records themselves keep mdns-sd's TTLs, 120 s for SRV and
/// addresses, 75 minutes for PTR and TXT, which the crate does not let its users change: a
/// node registered without a TTL disappears when its SRV record expires, two minutes after
/// its process died.)
///
/// **Discovery delay.** The registry browses from the moment it is created, into a cache
/// that [`get_service`](Registry::get_service) and
/// [`list_services`](Registry::list_services) read, so lookups are instant. Nodes already
/// running answer its first query within about 150 ms, or, when they multicast their records
/// less than a second before (mDNS allows once a second), its second query, a second later.
/// So during the first 2 s after creation a lookup that finds nothing waits for them (up to
/// those 2 s), and `list_services` waits the 2 s out. A node registered later is announced
/// at once and is seen within milliseconds on loopback, a few on a LAN; its own registry
/// sees it at once.
///
/// **Interfaces.** [`new`](Self::new) uses every interface, IPv4 and IPv6, as mdns-sd does
/// by default. [`loopback`](Self::loopback) (`MICRO_REGISTRY_ADDRESS=loopback`) uses only
/// 127.0.0.1: nothing it sends leaves the machine, which is how tests should use it. mdns-sd
/// joins the mDNS group on every interface as its daemon starts, before the selection
/// reaches it, so as it leaves the group again the kernel may send a membership report
/// (IGMP for 224.0.0.251, MLD for ff02::fb) on the other interfaces; no mDNS packet is sent
/// on them. On Linux, the loopback interface carries
/// multicast whether or not it has the `MULTICAST` flag.
///
/// [`watch`](Registry::watch) reports a node the first time it is resolved (create), when
/// its record changes (update), and when it says goodbye, expires or its DNS records do
/// (delete).
///
/// ```no_run
/// use micro::registry::{MdnsRegistry, Registry};
///
/// # async fn f() -> Result<(), micro::registry::RegistryError> {
/// let registry = MdnsRegistry::new();
/// for service in registry.list_services().await? {
///     println!("{} {}: {} nodes", service.name, service.version, service.nodes.len());
/// }
/// # Ok(()) }
/// ```
pub struct MdnsRegistry {
    loopback: bool,
    inner: Result<Inner, String>,
}

struct Inner {
    daemon: ServiceDaemon,
    shared: Arc<Shared>,
    started: Instant,
    /// The last `beat` this registry advertised.
    beat: AtomicU64,
}

impl std::fmt::Debug for MdnsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("MdnsRegistry");
        d.field("loopback", &self.loopback);
        match &self.inner {
            Ok(inner) => d.field("nodes", &inner.shared.lock().seen.len()),
            Err(e) => d.field("error", e),
        };
        d.finish()
    }
}

/// State shared with the thread that follows the browse.
struct Shared {
    state: Mutex<State>,
    /// Woken on every change of `state.seen`, for lookups waiting out the warm-up.
    changed: Notify,
    stopped: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Resolved nodes by instance full name (lowercase).
    seen: HashMap<String, Seen>,
    /// What this registry advertises, by instance full name.
    own: HashMap<String, Own>,
    watchers: Vec<Watch>,
}

struct Seen {
    service: Service,
    beat: u64,
    expires: Option<Instant>,
}

enum Own {
    Live {
        beat: u64,
        deadline: Option<Instant>,
    },
    Withdrawn {
        beat: u64,
        at: Instant,
    },
}

struct Watch {
    filter: Option<String>,
    tx: mpsc::UnboundedSender<Event>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Unavailable(format!("mdns {what}: {e}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The DNS label of a node: its id made DNS-safe, and a hash of the service name and the
/// id, so that different nodes never share one.
fn instance_name(service: &str, node: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a: the same in every process.
    for b in service.bytes().chain([0]).chain(node.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let readable: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(46)
        .collect();
    format!("{readable}-{hash:016x}")
}

fn full_name(service: &str, node: &str) -> String {
    format!("{}.{SERVICE_TYPE}", instance_name(service, node))
}

/// The TXT properties advertising `record` (one node), their size and the record they hold:
/// the whole record when it fits in one packet, else the record with its endpoints' type
/// descriptions cut down until it fits (their field lists, then the types themselves), with a
/// warning. Calls need none of them: only `micro describe` and the dashboard show less.
fn fitting(
    mut record: Service,
    ttl: Option<Duration>,
    beat: u64,
) -> Result<(Vec<TxtProperty>, usize, Service), RegistryError> {
    let mut cuts = 0;
    loop {
        let json =
            serde_json::to_string(&record).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let txt = encode(&record, &json, ttl, beat);
        let size: usize = txt
            .iter()
            .map(|p| 1 + p.key().len() + p.val().map_or(0, |v| 1 + v.len()))
            .sum();
        if size <= MAX_TXT || cuts == 2 {
            if cuts > 0 && size <= MAX_TXT {
                tracing::warn!(
                    service = %record.name,
                    "the endpoints' type descriptions do not fit in an mDNS record: advertised {}",
                    if cuts == 1 { "by type name only" } else { "without them" },
                );
            }
            return Ok((txt, size, record));
        }
        cuts += 1;
        let types = record
            .endpoints
            .iter_mut()
            .flat_map(|e| [&mut e.request, &mut e.response]);
        for ty in types {
            match (cuts, ty.as_mut()) {
                (1, Some(value)) => value.values = Vec::new(),
                _ => *ty = None,
            }
        }
    }
}

/// The TXT properties advertising `record` (one node), whose JSON is `json`.
fn encode(record: &Service, json: &str, ttl: Option<Duration>, beat: u64) -> Vec<TxtProperty> {
    let mut props = Vec::new();
    let node = record.nodes.first().map_or("", |n| n.id.as_str());
    for (key, value) in [
        ("name", record.name.as_str()),
        ("version", record.version.as_str()),
        ("node", node),
    ] {
        if key.len() + 1 + value.len() <= usize::from(u8::MAX) {
            props.push(TxtProperty::from((key, value)));
        }
    }
    if let Some(ttl) = ttl {
        props.push(TxtProperty::from(("ttl", ttl.as_millis().to_string())));
    }
    props.push(TxtProperty::from(("beat", beat.to_string())));
    let chunks = chunks(json);
    props.push(TxtProperty::from(("rec", chunks.len().to_string())));
    for (i, chunk) in chunks.into_iter().enumerate() {
        props.push(TxtProperty::from((format!("rec{i}"), chunk)));
    }
    props
}

/// `json` in pieces of at most [`CHUNK`] bytes, cut between characters.
fn chunks(json: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = json;
    while !rest.is_empty() {
        let mut end = rest.len().min(CHUNK);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// The record, TTL and beat a TXT record advertises; `None` unless it is a whole,
/// well-formed one-node record.
fn decode(props: &TxtProperties) -> Option<(Service, Option<Duration>, u64)> {
    let count: usize = props.get_property_val_str("rec")?.parse().ok()?;
    if count > MAX_TXT / CHUNK + 1 {
        return None;
    }
    let mut json = Vec::new();
    for i in 0..count {
        json.extend_from_slice(props.get_property_val(&format!("rec{i}"))??);
    }
    let service: Service = serde_json::from_slice(&json).ok()?;
    if service.name.is_empty() || service.nodes.len() != 1 {
        return None;
    }
    let ttl = props
        .get_property_val_str("ttl")
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let beat = props
        .get_property_val_str("beat")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some((service, ttl, beat))
}

impl State {
    /// Records that `service` (one node) was heard of, or registered here.
    fn upsert(&mut self, fullname: String, service: Service, beat: u64, expires: Option<Instant>) {
        let action = match self.seen.get(&fullname) {
            None => Some(Action::Create),
            // A late echo of an older announcement, or a repeat of the last one (mdns-sd
            // announces twice): only a new `register` renews.
            Some(old) if beat < old.beat || (beat == old.beat && old.service == service) => {
                return;
            }
            // A renewal that changes nothing but the expiry is no event.
            Some(old) if old.service == service => None,
            Some(_) => Some(Action::Update),
        };
        if let Some(action) = action {
            self.emit(Event {
                action,
                service: service.clone(),
            });
        }
        self.seen.insert(
            fullname,
            Seen {
                service,
                beat,
                expires,
            },
        );
    }

    fn remove(&mut self, fullname: &str) {
        if let Some(gone) = self.seen.remove(fullname) {
            self.emit(Event {
                action: Action::Delete,
                service: gone.service,
            });
        }
    }

    /// Whether a resolved announcement of one of this registry's own nodes is older than
    /// what it registered or withdrew since.
    fn stale_own(&self, fullname: &str, beat: u64) -> bool {
        match self.own.get(fullname) {
            Some(Own::Live { beat: own, .. }) => beat < *own,
            Some(Own::Withdrawn { beat: own, .. }) => beat <= *own,
            None => false,
        }
    }

    /// Drops expired nodes; returns the own registrations that expired, to withdraw.
    fn sweep(&mut self, now: Instant) -> Vec<String> {
        let mut withdraw = Vec::new();
        for (fullname, own) in &mut self.own {
            if let Own::Live {
                beat,
                deadline: Some(at),
            } = *own
            {
                if at <= now {
                    *own = Own::Withdrawn { beat, at: now };
                    withdraw.push(fullname.clone());
                }
            }
        }
        self.own.retain(|_, own| match own {
            Own::Withdrawn { at, .. } => now.duration_since(*at) < FORGET_WITHDRAWN,
            Own::Live { .. } => true,
        });
        let expired: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, s)| s.expires.is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for fullname in expired {
            self.remove(&fullname);
        }
        withdraw
    }

    fn emit(&mut self, event: Event) {
        self.watchers.retain(|w| {
            if w.filter.as_deref().is_some_and(|f| f != event.service.name) {
                return !w.tx.is_closed();
            }
            w.tx.send(event.clone()).is_ok()
        });
    }

    fn live(&self, now: Instant) -> impl Iterator<Item = &Service> {
        self.seen
            .values()
            .filter(move |s| s.expires.is_none_or(|at| at > now))
            .map(|s| &s.service)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn resolved(&self, resolved: &ResolvedService) {
        if resolved.ty_domain != SERVICE_TYPE {
            return;
        }
        let Some((service, ttl, beat)) = decode(&resolved.txt_properties) else {
            tracing::debug!("mdns: {} is no micro record", resolved.fullname);
            return;
        };
        let fullname = resolved.fullname.to_lowercase();
        let mut state = self.lock();
        if state.stale_own(&fullname, beat) {
            return;
        }
        state.upsert(fullname, service, beat, ttl.map(|t| Instant::now() + t));
        drop(state);
        self.changed.notify_waiters();
    }

    fn removed(&self, fullname: &str) {
        self.lock().remove(&fullname.to_lowercase());
        self.changed.notify_waiters();
    }

    /// Follows the browse until the registry is dropped: resolved and removed instances
    /// feed the cache, and every [`SWEEP`] expired ones leave it.
    fn run(self: Arc<Self>, daemon: ServiceDaemon, mut events: Receiver<ServiceEvent>) {
        let mut next_sweep = Instant::now() + SWEEP;
        while !self.stopped.load(Ordering::Acquire) {
            match events.recv_timeout(next_sweep.saturating_duration_since(Instant::now())) {
                Ok(ServiceEvent::ServiceResolved(resolved)) => self.resolved(&resolved),
                Ok(ServiceEvent::ServiceRemoved(_, fullname)) => self.removed(&fullname),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if self.stopped.load(Ordering::Acquire) {
                        break;
                    }
                    // The daemon ends a browse whose receiver fell behind: browse again.
                    match daemon.browse(SERVICE_TYPE) {
                        Ok(rx) => events = rx,
                        Err(e) => {
                            tracing::warn!("mdns registry browse ended: {e}");
                            break;
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= next_sweep {
                next_sweep = now + SWEEP;
                let withdraw = self.lock().sweep(now);
                for fullname in withdraw {
                    tracing::debug!("mdns: {fullname} was not renewed within its TTL");
                    let _ = daemon.unregister(&fullname);
                }
                self.changed.notify_waiters();
            }
        }
    }
}

impl MdnsRegistry {
    /// A registry on every interface (IPv4 and IPv6), as the mdns-sd crate chooses them.
    /// It starts browsing at once, on a thread of its own.
    ///
    /// Should the mDNS daemon fail to start, every call returns
    /// [`RegistryError::Unavailable`] saying why.
    ///
    /// See the [type-level example](Self).
    pub fn new() -> Self {
        Self::start(false)
    }

    /// A registry on the IPv4 loopback interface only (127.0.0.1): every other interface
    /// and IPv6 are disabled, so its multicast never leaves the machine. It finds only
    /// processes on this machine that use the loopback registry too.
    ///
    /// ```no_run
    /// use micro::registry::{MdnsRegistry, Node, Registry, Service};
    /// use std::time::Duration;
    ///
    /// # async fn f() -> Result<(), micro::registry::RegistryError> {
    /// let (a, b) = (MdnsRegistry::loopback(), MdnsRegistry::loopback());
    /// let service = Service {
    ///     name: "greeter".into(),
    ///     nodes: vec![Node { id: "greeter-1".into(), address: "127.0.0.1:9000".into(), ..Default::default() }],
    ///     ..Default::default()
    /// };
    /// a.register(&service, Some(Duration::from_secs(30))).await?;
    /// // A new registry waits up to 2 s for the answers to its first queries.
    /// assert_eq!(b.get_service("greeter").await?[0].nodes[0].id, "greeter-1");
    /// # Ok(()) }
    /// ```
    pub fn loopback() -> Self {
        Self::start(true)
    }

    /// Whether this registry is limited to 127.0.0.1.
    ///
    /// ```no_run
    /// assert!(micro::registry::MdnsRegistry::loopback().is_loopback());
    /// ```
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    fn start(loopback: bool) -> Self {
        let inner = Self::start_daemon(loopback).map_err(|e| format!("mdns daemon: {e}"));
        if let Err(e) = &inner {
            tracing::warn!("{e}");
        }
        Self { loopback, inner }
    }

    fn start_daemon(loopback: bool) -> Result<Inner, mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        // Commands run in order, so nothing is sent before the interfaces are chosen.
        if loopback {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::LoopbackV4)?;
        }
        let events = daemon.browse(SERVICE_TYPE)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            stopped: AtomicBool::new(false),
        });
        let (thread_shared, thread_daemon) = (shared.clone(), daemon.clone());
        let spawned = std::thread::Builder::new()
            .name("micro-mdns".into())
            .spawn(move || thread_shared.run(thread_daemon, events));
        if let Err(e) = spawned {
            let _ = daemon.shutdown();
            return Err(mdns_sd::Error::Msg(e.to_string()));
        }
        Ok(Inner {
            daemon,
            shared,
            started: Instant::now(),
            beat: AtomicU64::new(0),
        })
    }

    fn inner(&self) -> Result<&Inner, RegistryError> {
        self.inner
            .as_ref()
            .map_err(|e| RegistryError::Unavailable(e.clone()))
    }
}

impl Default for MdnsRegistry {
    /// [`MdnsRegistry::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for MdnsRegistry {
    /// Withdraws this registry's nodes (goodbye packets) and stops its threads.
    fn drop(&mut self) {
        if let Ok(inner) = &self.inner {
            inner.shared.stopped.store(true, Ordering::Release);
            let _ = inner.daemon.shutdown();
        }
    }
}

impl Inner {
    /// A beat above every earlier one, and above those of earlier runs (it starts from the
    /// clock), so browsers never take a new announcement for a late echo.
    fn next_beat(&self) -> u64 {
        let now = now_ms();
        let prev = self
            .beat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(now.max(b + 1))
            })
            .unwrap_or_else(|b| b);
        now.max(prev + 1)
    }

    /// Live records matching `filter`, waiting out the warm-up when `wait` says so.
    async fn lookup(
        &self,
        filter: impl Fn(&Service) -> bool,
        wait: impl Fn(&[Service]) -> bool,
    ) -> Vec<Service> {
        let warm = self.started + WARM_UP;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let found = group(
                self.shared
                    .lock()
                    .live(Instant::now())
                    .filter(|s| filter(s))
                    .cloned(),
            );
            let now = Instant::now();
            if now >= warm || !wait(&found) {
                return found;
            }
            let _ = tokio::time::timeout(warm - now, changed).await;
        }
    }
}

/// The mDNS registry `MICRO_REGISTRY=mdns` selects: on loopback only when
/// `MICRO_REGISTRY_ADDRESS=loopback`, on every interface otherwise.
pub(crate) fn from_address(address: Option<&str>) -> Arc<dyn Registry> {
    match address {
        Some("loopback") => Arc::new(MdnsRegistry::loopback()),
        None => Arc::new(MdnsRegistry::new()),
        Some(other) => {
            tracing::warn!(
                "the mdns registry takes no address but `loopback` (got `{other}`): using every interface"
            );
            Arc::new(MdnsRegistry::new())
        }
    }
}

impl Registry for MdnsRegistry {
    fn name(&self) -> &'static str {
        "mdns"
    }

    fn register<'a>(
        &'a self,
        service: &'a Service,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            super::validate(service)?;
            let inner = self.inner()?;
            for node in &service.nodes {
                let record = Service {
                    nodes: vec![node.clone()],
                    ..service.clone()
                };
                let beat = inner.next_beat();
                // What others see is what this registry keeps of its own nodes, too.
                let (txt, size, record) = fitting(record, ttl, beat)?;
                if size > MAX_TXT {
                    return Err(RegistryError::Invalid(format!(
                        "the record of node {} takes {size} bytes of TXT, more than one mDNS \
                         packet carries ({MAX_TXT})",
                        node.id
                    )));
                }
                let instance = instance_name(&service.name, &node.id);
                let port = node
                    .address
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .unwrap_or(0);
                let mut info = ServiceInfo::new(
                    SERVICE_TYPE,
                    &instance,
                    &format!("{instance}.local."),
                    (),
                    port,
                    txt,
                )
                .map_err(|e| RegistryError::Invalid(format!("mdns record: {e}")))?
                .enable_addr_auto();
                // The name is unique to the node; probing for conflicts would only delay
                // the announcement by most of a second.
                info.set_requires_probe(false);
                let fullname = info.get_fullname().to_lowercase();
                inner
                    .daemon
                    .register(info)
                    .map_err(|e| unavailable("register", e))?;
                let now = Instant::now();
                let mut state = inner.shared.lock();
                state.own.insert(
                    fullname.clone(),
                    Own::Live {
                        beat,
                        deadline: ttl.map(|t| now + t),
                    },
                );
                state.upsert(fullname, record, beat, ttl.map(|t| now + t));
            }
            inner.shared.changed.notify_waiters();
            Ok(())
        })
    }

    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            for node in &service.nodes {
                let fullname = full_name(&service.name, &node.id);
                let beat = inner.next_beat();
                {
                    let mut state = inner.shared.lock();
                    state.own.insert(
                        fullname.clone(),
                        Own::Withdrawn {
                            beat,
                            at: Instant::now(),
                        },
                    );
                    state.remove(&fullname);
                }
                // Not registered (any more) is fine: there is nothing to withdraw.
                inner
                    .daemon
                    .unregister(&fullname)
                    .map_err(|e| unavailable("unregister", e))?;
            }
            inner.shared.changed.notify_waiters();
            Ok(())
        })
    }

    fn get_service<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let found = self
                .inner()?
                .lookup(|s| s.name == name, <[Service]>::is_empty)
                .await;
            if found.is_empty() {
                return Err(RegistryError::NotFound(name.to_owned()));
            }
            Ok(found)
        })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move { Ok(self.inner()?.lookup(|_| true, |_| true).await) })
    }

    fn watch<'a>(
        &'a self,
        service: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        Box::pin(async move {
            let inner = self.inner()?;
            let (events_tx, mut events) = mpsc::unbounded_channel();
            inner.shared.lock().watchers.push(Watch {
                filter: service.map(str::to_owned),
                tx: events_tx,
            });
            // The browse thread must never wait for a slow watcher: it hands events over
            // unbounded, and this task feeds them to the watcher at its pace.
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(async move {
                loop {
                    let event = tokio::select! {
                        _ = tx.closed() => break,
                        event = events.recv() => event,
                    };
                    let Some(event) = event else { break };
                    if tx.send(event).await.is_err() {
                        break;
                    }
                }
            });
            Ok(Watcher::new(rx))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Node;

    fn record(name: &str, node: &str, zone: &str) -> Service {
        Service {
            name: name.into(),
            version: "1.0.0".into(),
            nodes: vec![Node {
                id: node.into(),
                address: "127.0.0.1:9000".into(),
                metadata: [("zone".to_owned(), zone.to_owned())].into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn records_longer_than_a_txt_string_round_trip_in_pieces() {
        // Multi-byte characters across every piece boundary.
        let mut service = record("greeter", "greeter-1", &"é€😀".repeat(200));
        service.metadata.insert("k".into(), "v".into());
        let json = serde_json::to_string(&service).unwrap();
        let props = encode(&service, &json, Some(Duration::from_millis(1500)), 7);
        assert!(props.len() > 5);
        let txt: TxtProperties = {
            use mdns_sd::IntoTxtProperties;
            props.into_txt_properties()
        };
        for p in txt.iter() {
            assert!(p.key().len() + 1 + p.val().map_or(0, <[u8]>::len) <= 255);
        }
        let (back, ttl, beat) = decode(&txt).unwrap();
        assert_eq!(back, service);
        assert_eq!(ttl, Some(Duration::from_millis(1500)));
        assert_eq!(beat, 7);
    }

    /// A registration whose type descriptions did not fit in one mDNS packet was refused, so
    /// a service with large request types could not register on mDNS at all.
    #[test]
    fn type_descriptions_too_large_for_a_packet_are_cut_not_refused() {
        use crate::registry::{Endpoint, Value};
        let described = |fields: usize| Value {
            values: (0..fields)
                .map(|i| Value::named(&format!("a_rather_long_field_name_{i}")))
                .collect(),
            ..Value::named("Request")
        };
        let txt = |props: Vec<TxtProperty>| -> TxtProperties {
            use mdns_sd::IntoTxtProperties;
            props.into_txt_properties()
        };
        let mut service = record("greeter", "greeter-1", "a");
        service.endpoints = (0..4)
            .map(|i| Endpoint {
                name: format!("Greeter.M{i}"),
                request: Some(described(3)),
                response: Some(Value::named("Reply")),
                metadata: Default::default(),
            })
            .collect();
        // Small: advertised whole.
        let (props, size, _) = fitting(service.clone(), None, 1).unwrap();
        assert!(size <= MAX_TXT);
        assert_eq!(decode(&txt(props)).unwrap().0, service);

        // Field lists too large: the types stay, by name.
        for e in &mut service.endpoints {
            e.request = Some(described(40));
        }
        let (props, size, _) = fitting(service.clone(), None, 1).unwrap();
        assert!(size <= MAX_TXT);
        let back = decode(&txt(props)).unwrap().0;
        assert_eq!(back.endpoints.len(), 4);
        for e in &back.endpoints {
            assert_eq!(e.request, Some(Value::named("Request")));
            assert_eq!(e.response, Some(Value::named("Reply")));
        }
        assert_eq!(back.nodes, service.nodes);

        // Even the names too many: the endpoints stay, without types.
        service.endpoints = (0..80)
            .map(|i| Endpoint {
                name: format!("Greeter.M{i}"),
                request: Some(Value::named(&format!("AVeryLongRequestTypeName{i}"))),
                response: Some(Value::named(&format!("AVeryLongResponseTypeName{i}"))),
                metadata: Default::default(),
            })
            .collect();
        let (props, size, _) = fitting(service.clone(), None, 1).unwrap();
        assert!(size <= MAX_TXT, "{size}");
        let back = decode(&txt(props)).unwrap().0;
        assert_eq!(back.endpoints.len(), 80);
        assert!(
            back.endpoints
                .iter()
                .all(|e| e.request.is_none() && e.response.is_none())
        );

        // What cannot be cut is still refused by `register` (size over the limit).
        service.metadata.insert("note".into(), "x".repeat(9000));
        assert!(fitting(service, None, 1).unwrap().1 > MAX_TXT);
    }

    #[test]
    fn instance_names_are_dns_labels_unique_per_service_and_node() {
        let long = "x".repeat(300);
        for (service, node) in [
            ("a", "n/1"),
            ("a", "N.1"),
            ("b", "n/1"),
            ("a", long.as_str()),
        ] {
            let name = instance_name(service, node);
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
        }
        assert_ne!(instance_name("a", "n/1"), instance_name("b", "n/1"));
        assert_ne!(instance_name("a", "n/1"), instance_name("a", "n-1"));
        assert_eq!(instance_name("a", "n/1"), instance_name("a", "n/1"));
    }

    #[tokio::test]
    async fn cache_tells_creates_updates_and_deletes_apart() {
        let mut state = State::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        state.watchers.push(Watch {
            filter: Some("a".into()),
            tx,
        });
        let now = Instant::now();
        let soon = Some(now + Duration::from_secs(1));
        state.upsert("x".into(), record("a", "1", "z"), 1, soon);
        state.upsert("x".into(), record("a", "1", "z"), 2, soon); // renewal: no event
        state.upsert("x".into(), record("a", "1", "y"), 1, soon); // late echo: ignored
        state.upsert("x".into(), record("a", "1", "y"), 3, soon);
        state.upsert("o".into(), record("other", "2", "z"), 1, None); // filtered out
        assert_eq!(rx.recv().await.unwrap().action, Action::Create);
        let update = rx.recv().await.unwrap();
        assert_eq!(update.action, Action::Update);
        assert_eq!(update.service.nodes[0].metadata["zone"], "y");
        assert_eq!(state.live(now).count(), 2);
        assert!(state.sweep(now + Duration::from_secs(2)).is_empty());
        assert_eq!(rx.recv().await.unwrap().action, Action::Delete);
        assert_eq!(state.live(now).count(), 1, "no TTL: stays");
    }
}
