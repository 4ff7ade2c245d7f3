use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Action, Event, Registry, RegistryError, Service, Watcher};
use crate::BoxFuture;

/// The zero-config registry for processes of one user on one machine: no server, no
/// multicast, no configuration.
///
/// Every node is a small JSON file in a per-user directory, so any process of the same user
/// that looks in the same directory sees it:
///
/// - [`new`](Self::new) uses `$XDG_RUNTIME_DIR/micro/registry` when that variable is set and
///   the directory writable, else `<temp dir>/micro-<uid>/registry` (`<temp dir>/micro/registry`
///   off unix). [`at`](Self::at) uses the directory you give it. Directories are made with
///   mode `0700`.
/// - A node is `<dir>/<service name>/<node id>.json`, holding
///   `{"service": <the service with just this node>, "expires_at_ms": <unix millis or null>}`.
///   Names are percent-encoded so that any name is one safe path component.
/// - A write goes to a temporary file beside the entry, then is renamed over it: readers
///   never see half an entry, and since each node writes only its own file, processes never
///   trample each other.
/// - A node registered with a TTL stops counting once it runs out, so a process killed
///   with `SIGKILL` disappears on its own. Readers delete entries only once they have been
///   expired for [`GC_AFTER`](Self::GC_AFTER), so they never race an owner refreshing its own.
/// - [`watch`](Registry::watch) looks at the directory every
///   [`POLL_INTERVAL`](Self::POLL_INTERVAL) and reports what changed.
///
/// Only regular files of at most [`MAX_ENTRY`](Self::MAX_ENTRY) bytes are read: a FIFO, a
/// device, a symlink or an oversized file planted as `x.json` is skipped (and the size is
/// learned without reading it), so it can neither hang a reader nor cost it a read every
/// poll.
///
/// The directory decides who can announce nodes that receive this user's calls, so it is
/// checked before each use, whether it is the default one or given to [`at`](Self::at) (and
/// so by `MICRO_REGISTRY_ADDRESS`): a directory that is a symlink, belongs to another user
/// or is writable by group or others is refused with [`RegistryError::Unavailable`]. For a
/// directory deliberately shared between users, use [`shared`](Self::shared), which skips
/// the check and logs a warning once.
///
/// Expiry uses the wall clock, which all processes share; a large clock step makes nodes
/// expire early or late. Processes that should find each other must agree on the directory:
/// one started with `XDG_RUNTIME_DIR` set and one without look in different places (use
/// [`at`](Self::at), or `MICRO_REGISTRY_ADDRESS`, to pin it). In the shared temp directory,
/// a `micro-<uid>` directory that is a symlink, belongs to another user or is writable by
/// others is refused with [`RegistryError::Unavailable`] rather than trusted.
///
/// ```
/// use std::time::Duration;
/// use micro::registry::{LocalRegistry, Node, Registry, Service};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), micro::registry::RegistryError> {
/// let dir = std::env::temp_dir().join(format!("micro-doc-local-{}", std::process::id()));
/// // Two handles on one directory stand for two processes.
/// let (a, b) = (LocalRegistry::at(&dir), LocalRegistry::at(&dir));
/// let service = Service {
///     name: "greeter".into(),
///     version: "1.0.0".into(),
///     nodes: vec![Node { id: "greeter-1".into(), address: "127.0.0.1:9000".into(), ..Default::default() }],
///     ..Default::default()
/// };
/// a.register(&service, Some(Duration::from_secs(30))).await?;
/// assert_eq!(b.get_service("greeter").await?[0].nodes[0].address, "127.0.0.1:9000");
/// a.deregister(&service).await?;
/// assert!(b.get_service("greeter").await.is_err());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LocalRegistry {
    dir: PathBuf,
    /// The directory that must be ours: the registry directory itself, or the `micro-<uid>`
    /// directory above it in the shared temp directory. `None` for a deliberately shared
    /// directory.
    #[cfg(unix)]
    guard: Option<Guard>,
    /// Set once the warning about a shared directory has been logged.
    warned: Arc<std::sync::Once>,
}

#[cfg(unix)]
#[derive(Clone, Debug)]
struct Guard {
    /// The `micro-<uid>` directory, which must be ours and not writable by others.
    dir: PathBuf,
    /// Our uid; `None` when it could not be learned, and then nothing is trusted.
    uid: Option<u32>,
}

/// What a node's file holds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    service: Service,
    expires_at_ms: Option<u64>,
}

/// A live node, as read from its file.
#[derive(Debug)]
struct Found {
    /// The service with exactly this node.
    service: Service,
    /// When the file was written: the most recent write describes its version.
    written: SystemTime,
}

/// Live nodes by (service name, node id).
type Snapshot = HashMap<(String, String), Found>;

impl LocalRegistry {
    /// How often a watcher looks at the directory. Changes reach watchers this much later
    /// at most, plus the time to read the directory.
    ///
    /// ```
    /// # use micro::registry::LocalRegistry;
    /// assert_eq!(LocalRegistry::POLL_INTERVAL, std::time::Duration::from_millis(100));
    /// ```
    pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

    /// How long an entry stays expired on disk before a reader deletes it. Until then its
    /// owner may still be refreshing it, and deleting it would lose the refresh.
    ///
    /// ```
    /// # use micro::registry::LocalRegistry;
    /// assert_eq!(LocalRegistry::GC_AFTER, std::time::Duration::from_secs(60));
    /// ```
    pub const GC_AFTER: Duration = Duration::from_secs(60);

    /// The largest entry file read: 1 MiB. A larger one is skipped without being read.
    ///
    /// ```
    /// # use micro::registry::LocalRegistry;
    /// assert_eq!(LocalRegistry::MAX_ENTRY, 1024 * 1024);
    /// ```
    pub const MAX_ENTRY: u64 = 1024 * 1024;

    /// The registry in this user's default directory: `$XDG_RUNTIME_DIR/micro/registry` when
    /// that is set and writable, else `<temp dir>/micro-<uid>/registry`.
    ///
    /// To learn whether the runtime directory is writable, this makes
    /// `$XDG_RUNTIME_DIR/micro/registry` and a file in it (removed at once). Nothing fails
    /// here: a directory that cannot be used makes the registry's operations fail with
    /// [`RegistryError::Unavailable`], naming it.
    ///
    /// ```
    /// use micro::registry::{LocalRegistry, Registry};
    ///
    /// let registry = LocalRegistry::new();
    /// assert_eq!(registry.name(), "local");
    /// assert!(registry.path().ends_with("registry"));
    /// ```
    pub fn new() -> Self {
        Self::choose(
            std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
            &std::env::temp_dir(),
        )
    }

    /// The registry in `dir`, made (mode `0700`) on first registration.
    ///
    /// Every process of this user given the same directory sees the same nodes. The
    /// directory must belong to this user and not be writable by group or others (see the
    /// [type-level docs](Self)); operations on one that is not fail with
    /// [`RegistryError::Unavailable`].
    ///
    /// ```
    /// use micro::registry::LocalRegistry;
    ///
    /// let registry = LocalRegistry::at("/run/my-app/registry");
    /// assert_eq!(registry.path(), std::path::Path::new("/run/my-app/registry"));
    /// ```
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            #[cfg(unix)]
            guard: Some(Guard {
                dir: dir.clone(),
                uid: own_uid(),
            }),
            dir,
            warned: Arc::new(std::sync::Once::new()),
        }
    }

    /// The registry in `dir`, used whoever owns it and whoever can write it: for a directory
    /// deliberately shared between users. Anyone who can write there can announce nodes
    /// that receive this process's calls; a warning saying so is logged on first use.
    ///
    /// ```
    /// use micro::registry::LocalRegistry;
    ///
    /// let registry = LocalRegistry::shared("/srv/team/registry");
    /// assert_eq!(registry.path(), std::path::Path::new("/srv/team/registry"));
    /// ```
    pub fn shared(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            #[cfg(unix)]
            guard: None,
            warned: Arc::new(std::sync::Once::new()),
        }
    }

    /// The directory holding the entries.
    ///
    /// ```
    /// use micro::registry::LocalRegistry;
    ///
    /// println!("services register in {}", LocalRegistry::new().path().display());
    /// ```
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// What [`new`](Self::new) picks, given `$XDG_RUNTIME_DIR` and the temp directory.
    fn choose(runtime: Option<PathBuf>, temp: &Path) -> Self {
        if let Some(runtime) = runtime.filter(|dir| dir.is_absolute()) {
            let dir = runtime.join("micro").join("registry");
            if create_dir(&dir).is_ok() && probe(&dir).is_ok() {
                return Self::at(dir);
            }
        }
        Self::in_temp(temp)
    }

    /// `<base>/micro-<uid>/registry`, guarded, since others can write in `base`.
    #[cfg(unix)]
    fn in_temp(base: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;

        // A file we make is owned by our effective uid: no libc needed to learn it.
        let uid = probe(base).ok().map(|meta| meta.uid());
        let user = uid.map_or_else(|| "unknown".to_owned(), |uid| uid.to_string());
        let root = base.join(format!("micro-{user}"));
        Self {
            dir: root.join("registry"),
            guard: Some(Guard { dir: root, uid }),
            warned: Arc::new(std::sync::Once::new()),
        }
    }

    #[cfg(not(unix))]
    fn in_temp(base: &Path) -> Self {
        Self::shared(base.join("micro").join("registry"))
    }

    /// Checks that the guarded directory, if any, is safe to use; `Ok(false)` when it does
    /// not exist yet.
    fn check(&self) -> Result<bool, RegistryError> {
        #[cfg(unix)]
        if self.guard.is_none() {
            self.warned.call_once(|| {
                tracing::warn!(
                    dir = %self.dir.display(),
                    "using a shared registry directory: anyone who can write it can announce nodes that receive this process's calls"
                );
            });
        }
        #[cfg(unix)]
        if let Some(guard) = &self.guard {
            use std::os::unix::fs::MetadataExt;

            let meta = match fs::symlink_metadata(&guard.dir) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(unavailable(&guard.dir, e)),
            };
            let refuse = |why: String| {
                RegistryError::Unavailable(format!(
                    "{}: {why}; refusing to use it",
                    guard.dir.display()
                ))
            };
            let Some(uid) = guard.uid else {
                return Err(refuse(
                    "cannot tell which user this process runs as, the temp directory is not writable"
                        .into(),
                ));
            };
            if !meta.is_dir() {
                return Err(refuse("not a directory".into()));
            }
            if meta.uid() != uid {
                return Err(refuse(format!("owned by uid {}, not {uid}", meta.uid())));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(refuse(format!(
                    "writable by others (mode {:o})",
                    meta.mode() & 0o777
                )));
            }
        }
        Ok(true)
    }

    /// Makes the directory and checks it, before a write.
    fn prepare(&self) -> Result<(), RegistryError> {
        create_dir(&self.dir).map_err(|e| unavailable(&self.dir, e))?;
        self.check().map(drop)
    }

    fn write(&self, service: &Service, expires_at_ms: Option<u64>) -> Result<(), RegistryError> {
        self.prepare()?;
        let dir = self.dir.join(encode(&service.name));
        let bare = Service {
            nodes: Vec::new(),
            ..service.clone()
        };
        for node in &service.nodes {
            let entry = Entry {
                service: Service {
                    nodes: vec![node.clone()],
                    ..bare.clone()
                },
                expires_at_ms,
            };
            let bytes = serde_json::to_vec(&entry)
                .map_err(|e| RegistryError::Invalid(format!("node {}: {e}", node.id)))?;
            let path = dir.join(format!("{}.json", encode(&node.id)));
            write_atomic(&dir, &path, &bytes).map_err(|e| unavailable(&path, e))?;
        }
        Ok(())
    }

    fn remove(&self, service: &Service) -> Result<(), RegistryError> {
        if !self.check()? {
            return Ok(());
        }
        let dir = self.dir.join(encode(&service.name));
        for node in &service.nodes {
            let path = dir.join(format!("{}.json", encode(&node.id)));
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(unavailable(&path, e)),
                _ => {}
            }
        }
        // Fails while other nodes remain, as it should.
        let _ = fs::remove_dir(&dir);
        Ok(())
    }

    /// The live nodes of one service or all of them, collecting garbage on the way.
    fn scan(&self, only: Option<&str>) -> Result<Snapshot, RegistryError> {
        let mut found = Snapshot::new();
        if !self.check()? {
            return Ok(found);
        }
        let now = now_ms();
        match only {
            Some(name) => {
                scan_service(&self.dir.join(encode(name)), now, &mut found)?;
                // Two long names may share a directory (see `encode`).
                found.retain(|(service, _), _| service == name);
            }
            None => {
                let entries = match fs::read_dir(&self.dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
                    Err(e) => return Err(unavailable(&self.dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| unavailable(&self.dir, e))?;
                    if !is_hidden(&entry.file_name()) && entry.file_type().is_ok_and(|t| t.is_dir())
                    {
                        scan_service(&entry.path(), now, &mut found)?;
                    }
                }
            }
        }
        Ok(found)
    }
}

impl Default for LocalRegistry {
    /// The same as [`LocalRegistry::new`].
    ///
    /// ```
    /// use micro::registry::LocalRegistry;
    ///
    /// assert_eq!(LocalRegistry::default().path(), LocalRegistry::new().path());
    /// ```
    fn default() -> Self {
        Self::new()
    }
}

impl Registry for LocalRegistry {
    fn name(&self) -> &'static str {
        "local"
    }

    fn register<'a>(
        &'a self,
        service: &'a Service,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            super::validate(service)?;
            let expires_at_ms = ttl.map(|ttl| {
                now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            });
            let (this, service) = (self.clone(), service.clone());
            blocking(move || this.write(&service, expires_at_ms)).await
        })
    }

    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let (this, service) = (self.clone(), service.clone());
            blocking(move || this.remove(&service)).await
        })
    }

    fn get_service<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let (this, only) = (self.clone(), name.to_owned());
            let found = blocking(move || this.scan(Some(&only))).await?;
            let services = group(found);
            if services.is_empty() {
                return Err(RegistryError::NotFound(name.to_owned()));
            }
            Ok(services)
        })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let this = self.clone();
            Ok(group(blocking(move || this.scan(None)).await?))
        })
    }

    fn watch<'a>(
        &'a self,
        service: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        Box::pin(async move {
            let only = service.map(str::to_owned);
            let scan = {
                let this = self.clone();
                move || {
                    let (this, only) = (this.clone(), only.clone());
                    blocking(move || this.scan(only.as_deref()))
                }
            };
            // The first look happens before returning, so that everything after is an event.
            let mut seen = scan().await?;
            let (tx, rx) = mpsc::channel(128);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tx.closed() => return,
                        () = tokio::time::sleep(Self::POLL_INTERVAL) => {}
                    }
                    let now = match scan().await {
                        Ok(now) => now,
                        Err(e) => {
                            tracing::debug!("registry watch: {e}");
                            continue;
                        }
                    };
                    for event in diff(&seen, &now) {
                        // A slow reader holds this loop back rather than losing events.
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    seen = now;
                }
            });
            Ok(Watcher::new(rx))
        })
    }
}

/// Reads one service directory into `found`, deleting long-expired entries, orphaned
/// temporary files and, when nothing is left, the directory itself.
fn scan_service(dir: &Path, now: u64, found: &mut Snapshot) -> Result<(), RegistryError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // Removed by another reader, or never made.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unavailable(dir, e)),
    };
    let gc_after = u64::try_from(LocalRegistry::GC_AFTER.as_millis()).unwrap_or(u64::MAX);
    let mut left = 0_usize;
    for entry in entries {
        let entry = entry.map_err(|e| unavailable(dir, e))?;
        let path = entry.path();
        let file_name = entry.file_name();
        if is_hidden(&file_name) {
            // A writer killed between writing and renaming leaves its temporary file.
            let orphan = file_name.as_encoded_bytes().ends_with(b".tmp")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > LocalRegistry::GC_AFTER));
            if !(orphan && fs::remove_file(&path).is_ok()) {
                left += 1;
            }
            continue;
        }
        left += 1;
        if !file_name.as_encoded_bytes().ends_with(b".json") {
            continue;
        }
        let (entry, written) = match read_entry(&path) {
            Ok(Some(read)) => read,
            Ok(None) => {
                left -= 1;
                continue;
            }
            Err(why) => {
                tracing::debug!(path = %path.display(), "ignoring registry entry: {why}");
                continue;
            }
        };
        if let Some(expires_at) = entry.expires_at_ms.filter(|&at| at <= now) {
            if now - expires_at > gc_after && fs::remove_file(&path).is_ok() {
                left -= 1;
            }
            continue;
        }
        let node = &entry.service.nodes[0];
        let key = (entry.service.name.clone(), node.id.clone());
        // Only a hand-made file can repeat a node; the newer one wins.
        if found.get(&key).is_none_or(|old| old.written <= written) {
            found.insert(
                key,
                Found {
                    service: entry.service,
                    written,
                },
            );
        }
    }
    if left == 0 {
        // Best effort: fails if a node was written meanwhile, and writers make the
        // directory again if it goes under them.
        let _ = fs::remove_dir(dir);
    }
    Ok(())
}

/// One node's entry and when it was written; `None` when it is gone.
fn read_entry(path: &Path) -> Result<Option<(Entry, SystemTime)>, String> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading blocks until a writer comes; a symlink could point
    // anywhere. Neither is an entry: open without following or blocking, then look.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NONBLOCK | libc::O_NOFOLLOW,
    );
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > LocalRegistry::MAX_ENTRY {
        return Err(format!(
            "{} bytes, more than the {}-byte limit",
            meta.len(),
            LocalRegistry::MAX_ENTRY
        ));
    }
    let written = meta.modified().map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    // The file may grow after the look: read no more than the limit regardless.
    file.take(LocalRegistry::MAX_ENTRY + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > LocalRegistry::MAX_ENTRY {
        return Err("grew past the size limit while being read".into());
    }
    Ok(Some((parse_entry(&bytes)?, written)))
}

/// An entry file's contents as a one-node record.
pub(crate) fn parse_entry(bytes: &[u8]) -> Result<Entry, String> {
    let entry: Entry = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if entry.service.name.is_empty() || entry.service.nodes.len() != 1 {
        return Err("not a service with exactly one node".into());
    }
    Ok(entry)
}

/// Services by name and version, each with its nodes sorted by id.
fn group(found: Snapshot) -> Vec<Service> {
    let mut versions: HashMap<(String, String), Vec<Found>> = HashMap::new();
    for (_, f) in found {
        let key = (f.service.name.clone(), f.service.version.clone());
        versions.entry(key).or_default().push(f);
    }
    let mut services: Vec<Service> = versions
        .into_values()
        .map(|mut nodes| {
            nodes.sort_by(|a, b| a.service.nodes[0].id.cmp(&b.service.nodes[0].id));
            // The latest registration describes the version, as it would in memory.
            let latest = nodes
                .iter()
                .enumerate()
                .max_by_key(|(_, f)| f.written)
                .map_or(0, |(i, _)| i);
            let mut service = Service {
                nodes: Vec::new(),
                ..nodes[latest].service.clone()
            };
            service.nodes = nodes.into_iter().flat_map(|f| f.service.nodes).collect();
            service
        })
        .collect();
    services.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    services
}

/// What changed from `old` to `new`, in (service, node id) order. A record rewritten with
/// only a new expiry is no change.
fn diff(old: &Snapshot, new: &Snapshot) -> Vec<Event> {
    let mut changes: Vec<(&(String, String), Event)> = Vec::new();
    for (key, now) in new {
        let action = match old.get(key) {
            None => Action::Create,
            Some(before) if before.service != now.service => Action::Update,
            Some(_) => continue,
        };
        let service = now.service.clone();
        changes.push((key, Event { action, service }));
    }
    for (key, before) in old {
        if !new.contains_key(key) {
            let service = before.service.clone();
            let action = Action::Delete;
            changes.push((key, Event { action, service }));
        }
    }
    changes.sort_by(|a, b| a.0.cmp(b.0));
    changes.into_iter().map(|(_, event)| event).collect()
}

/// `name` as one path component that is never hidden: bytes outside `[A-Za-z0-9._-]` and a
/// leading `.` become `%XX`, and the empty name becomes `%`, which nothing else encodes to.
/// Names too long for a file name are cut and end in `~` and a hash of the whole name
/// (`~` is always encoded otherwise, so they cannot meet a short name).
fn encode(name: &str) -> String {
    use std::fmt::Write;

    // File names may be 255 bytes; leave room for ".json".
    const MAX: usize = 200;
    if name.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.len() > MAX {
        out.truncate(MAX - 17);
        // FNV-1a: a stable hash, so every process and build names the file alike.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let _ = write!(out, "~{hash:016x}");
    }
    out
}

/// Writes `bytes` to `target` through a temporary file in `dir`, so readers see the old
/// content or the new, never a mix.
fn write_atomic(dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(temp_name());
    let mut tries = 0;
    loop {
        match fs::write(&tmp, bytes) {
            // The first node of the service, or a reader removed the directory as it looked
            // empty: make it (again).
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 3 => {
                tries += 1;
                create_dir(dir)?;
            }
            result => break result?,
        }
    }
    fs::rename(&tmp, target).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// A hidden file name unique to this process, which readers skip.
fn temp_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".{}.{n}.tmp", std::process::id())
}

/// Makes and removes a file in `dir`: proves it writable, and returns the file's metadata.
fn probe(dir: &Path) -> io::Result<fs::Metadata> {
    let path = dir.join(temp_name());
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let meta = file.metadata();
    drop(file);
    fs::remove_file(&path)?;
    meta
}

/// This process's effective uid: the owner of `/proc/self` on Linux, else the owner of a
/// file it makes in the temp directory. `None` when neither can be learned.
#[cfg(unix)]
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;

    fs::metadata("/proc/self")
        .or_else(|_| probe(&std::env::temp_dir()))
        .ok()
        .map(|meta| meta.uid())
}

fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unavailable(path: &Path, err: io::Error) -> RegistryError {
    RegistryError::Unavailable(format!("{}: {err}", path.display()))
}

/// Runs file work on tokio's blocking pool, so a slow disk never stalls the runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(RegistryError::Unavailable(format!("registry i/o: {e}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Node;

    /// A fresh directory under the temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("micro-local-test-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn registry(&self) -> LocalRegistry {
            LocalRegistry::at(self.0.join("registry"))
        }

        fn node_file(&self, service: &str, node: &str) -> PathBuf {
            self.0
                .join("registry")
                .join(encode(service))
                .join(format!("{}.json", encode(node)))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn svc(name: &str, version: &str, node: &str) -> Service {
        Service {
            name: name.into(),
            version: version.into(),
            nodes: vec![Node {
                id: node.into(),
                address: format!("{node}:1"),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn ids(service: &Service) -> Vec<&str> {
        service.nodes.iter().map(|n| n.id.as_str()).collect()
    }

    /// Writes an entry by hand, as another process (or a dead one) would have left it.
    fn plant(path: &Path, service: &Service, expires_at_ms: Option<u64>) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let entry = Entry {
            service: service.clone(),
            expires_at_ms,
        };
        fs::write(path, serde_json::to_vec(&entry).unwrap()).unwrap();
    }

    async fn next(watcher: &mut Watcher) -> Event {
        tokio::time::timeout(Duration::from_secs(30), watcher.next())
            .await
            .expect("no event in 30 s")
            .expect("watch closed")
    }

    #[tokio::test]
    async fn register_get_list_deregister() {
        let dir = Scratch::new();
        let r = dir.registry();
        r.register(&svc("a", "1", "n2"), None).await.unwrap();
        r.register(&svc("a", "1", "n1"), None).await.unwrap();
        r.register(&svc("b", "1", "m1"), None).await.unwrap();

        let a = r.get_service("a").await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(ids(&a[0]), ["n1", "n2"]);
        assert_eq!(a[0].nodes[0].address, "n1:1");
        let names: Vec<_> = r.list_services().await.unwrap();
        let names: Vec<_> = names.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);

        r.deregister(&svc("a", "1", "n1")).await.unwrap();
        r.deregister(&svc("a", "1", "n1")).await.unwrap();
        assert_eq!(ids(&r.get_service("a").await.unwrap()[0]), ["n2"]);
        r.deregister(&svc("a", "1", "n2")).await.unwrap();
        assert!(matches!(
            r.get_service("a").await,
            Err(RegistryError::NotFound(name)) if name == "a"
        ));
        assert!(!dir.0.join("registry").join("a").exists());
        assert_eq!(r.list_services().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_empty_or_missing_directory_has_no_services() {
        let dir = Scratch::new();
        let r = LocalRegistry::at(dir.0.join("not").join("yet"));
        assert!(r.list_services().await.unwrap().is_empty());
        assert!(matches!(
            r.get_service("a").await,
            Err(RegistryError::NotFound(_))
        ));
        r.deregister(&svc("a", "1", "n1")).await.unwrap();
        drop(r.watch(None).await.unwrap());
    }

    #[tokio::test]
    async fn invalid_records_are_refused() {
        let dir = Scratch::new();
        let r = dir.registry();
        assert!(matches!(
            r.register(&Service::default(), None).await,
            Err(RegistryError::Invalid(_))
        ));
        let no_nodes = Service {
            name: "a".into(),
            ..Default::default()
        };
        assert!(matches!(
            r.register(&no_nodes, None).await,
            Err(RegistryError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn io_errors_name_the_path() {
        let dir = Scratch::new();
        // A file where the directory should be.
        let file = dir.0.join("file");
        fs::write(&file, b"").unwrap();
        let r = LocalRegistry::at(&file);
        match r.register(&svc("a", "1", "n1"), None).await {
            Err(RegistryError::Unavailable(why)) => assert!(why.contains("file"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.list_services().await,
            Err(RegistryError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn versions_are_grouped_and_sorted() {
        let dir = Scratch::new();
        let r = dir.registry();
        r.register(&svc("a", "2", "n3"), None).await.unwrap();
        r.register(&svc("a", "1", "n2"), None).await.unwrap();
        r.register(&svc("a", "1", "n1"), None).await.unwrap();
        let found = r.get_service("a").await.unwrap();
        let versions: Vec<_> = found.iter().map(|s| s.version.as_str()).collect();
        assert_eq!(versions, ["1", "2"]);
        assert_eq!(ids(&found[0]), ["n1", "n2"]);
        assert_eq!(ids(&found[1]), ["n3"]);
        assert_eq!(r.list_services().await.unwrap(), found);

        // Re-registering a node under another version moves it.
        r.register(&svc("a", "2", "n1"), None).await.unwrap();
        let found = r.get_service("a").await.unwrap();
        assert_eq!(ids(&found[0]), ["n2"]);
        assert_eq!(ids(&found[1]), ["n1", "n3"]);
    }

    #[tokio::test]
    async fn the_latest_write_describes_its_version() {
        let dir = Scratch::new();
        let r = dir.registry();
        let with = |node: &str, tag: &str| Service {
            metadata: HashMap::from([("tag".to_owned(), tag.to_owned())]),
            ..svc("a", "1", node)
        };
        r.register(&with("n1", "new"), None).await.unwrap();
        r.register(&with("n2", "old"), None).await.unwrap();
        // File times are coarse: set them rather than rely on the order of writes.
        let now = SystemTime::now();
        let touch = |node: &str, at: SystemTime| {
            let file = fs::File::options()
                .write(true)
                .open(dir.node_file("a", node))
                .unwrap();
            file.set_modified(at).unwrap();
        };
        touch("n1", now);
        touch("n2", now - Duration::from_secs(10));
        let found = r.get_service("a").await.unwrap();
        assert_eq!(found[0].metadata["tag"], "new");
        assert_eq!(ids(&found[0]), ["n1", "n2"]);
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl() {
        let dir = Scratch::new();
        let r = dir.registry();
        r.register(&svc("a", "1", "n1"), Some(Duration::ZERO))
            .await
            .unwrap();
        r.register(&svc("a", "1", "n2"), Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        r.register(&svc("b", "1", "m1"), Some(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(ids(&r.get_service("a").await.unwrap()[0]), ["n2"]);
        assert!(matches!(
            r.get_service("b").await,
            Err(RegistryError::NotFound(_))
        ));
        assert_eq!(r.list_services().await.unwrap().len(), 1);
        // Expired, but too recently to be collected.
        assert!(dir.node_file("a", "n1").exists());
        assert!(dir.node_file("b", "m1").exists());
        // Registering again brings it back.
        r.register(&svc("b", "1", "m1"), None).await.unwrap();
        assert_eq!(r.list_services().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn gc_removes_only_long_expired_entries() {
        let dir = Scratch::new();
        let r = dir.registry();
        let now = now_ms();
        let grace = u64::try_from(LocalRegistry::GC_AFTER.as_millis()).unwrap();
        let recent = dir.node_file("a", "recent");
        let long = dir.node_file("a", "long");
        let alone = dir.node_file("b", "long");
        plant(&recent, &svc("a", "1", "recent"), Some(now - 1_000));
        plant(&long, &svc("a", "1", "long"), Some(now - grace - 5_000));
        plant(&alone, &svc("b", "1", "long"), Some(now - grace - 5_000));
        r.register(&svc("a", "1", "live"), None).await.unwrap();
        // Temporary files of writers killed mid-write, one long ago.
        let service_dir = dir.0.join("registry").join("a");
        let fresh_tmp = service_dir.join(".1.1.tmp");
        let old_tmp = service_dir.join(".1.2.tmp");
        fs::write(&fresh_tmp, b"{").unwrap();
        fs::write(&old_tmp, b"{").unwrap();
        fs::File::options()
            .write(true)
            .open(&old_tmp)
            .unwrap()
            .set_modified(SystemTime::now() - LocalRegistry::GC_AFTER * 2)
            .unwrap();

        let all = r.list_services().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(ids(&all[0]), ["live"]);
        assert!(recent.exists());
        assert!(!long.exists());
        assert!(!alone.exists());
        assert!(!dir.0.join("registry").join("b").exists());
        assert!(fresh_tmp.exists());
        assert!(!old_tmp.exists());
    }

    #[tokio::test]
    async fn partial_and_foreign_files_are_ignored() {
        let dir = Scratch::new();
        let r = dir.registry();
        r.register(&svc("a", "1", "n1"), None).await.unwrap();
        let service_dir = dir.0.join("registry").join("a");
        let whole = serde_json::to_vec(&Entry {
            service: svc("a", "1", "half"),
            expires_at_ms: None,
        })
        .unwrap();
        fs::write(service_dir.join("half.json"), &whole[..whole.len() / 2]).unwrap();
        plant(&service_dir.join(".tmp"), &svc("a", "1", "hidden"), None);
        plant(
            &service_dir.join(".7.7.tmp"),
            &svc("a", "1", "hidden"),
            None,
        );
        fs::write(service_dir.join("other.json"), br#"{"hello":1}"#).unwrap();
        fs::write(service_dir.join("empty.json"), b"").unwrap();
        fs::write(service_dir.join("notes.txt"), b"hi").unwrap();
        let mut two = svc("a", "1", "x");
        two.nodes.push(two.nodes[0].clone());
        plant(&service_dir.join("two.json"), &two, None);
        fs::create_dir(dir.0.join("registry").join(".hidden")).unwrap();

        let mut watcher = r.watch(Some("a")).await.unwrap();
        assert_eq!(ids(&r.get_service("a").await.unwrap()[0]), ["n1"]);
        let all = r.list_services().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(ids(&all[0]), ["n1"]);
        // The garbage makes no event either: the first one is for the new node.
        r.register(&svc("a", "1", "n2"), None).await.unwrap();
        let event = next(&mut watcher).await;
        assert_eq!(
            (event.action, ids(&event.service)),
            (Action::Create, vec!["n2"])
        );
        // And is left alone: it is not ours to delete.
        assert!(service_dir.join("half.json").exists());
        assert!(service_dir.join(".tmp").exists());
    }

    #[tokio::test]
    async fn watch_sees_create_update_delete_and_expiry() {
        let dir = Scratch::new();
        let r = dir.registry();
        let mut watcher = r.watch(Some("a")).await.unwrap();
        let mut all = r.watch(None).await.unwrap();

        r.register(&svc("a", "1", "n1"), None).await.unwrap();
        let event = next(&mut watcher).await;
        assert_eq!(event.action, Action::Create);
        assert_eq!(event.service, svc("a", "1", "n1"));

        // A refresh that changes only the expiry is no event...
        r.register(&svc("a", "1", "n1"), Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        tokio::time::sleep(LocalRegistry::POLL_INTERVAL * 3).await;
        // ...so the next one is this change.
        let changed = Service {
            metadata: HashMap::from([("k".to_owned(), "v".to_owned())]),
            ..svc("a", "1", "n1")
        };
        r.register(&changed, Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        let event = next(&mut watcher).await;
        assert_eq!(event.action, Action::Update);
        assert_eq!(event.service, changed);

        r.register(&svc("b", "1", "m1"), None).await.unwrap();
        r.deregister(&svc("a", "1", "n1")).await.unwrap();
        let event = next(&mut watcher).await;
        assert_eq!(event.action, Action::Delete);
        assert_eq!(ids(&event.service), ["n1"]);

        r.register(&svc("a", "1", "n2"), None).await.unwrap();
        let event = next(&mut watcher).await;
        assert_eq!(
            (event.action, ids(&event.service)),
            (Action::Create, vec!["n2"])
        );
        // Its owner's last word was a TTL that has run out.
        r.register(&svc("a", "1", "n2"), Some(Duration::ZERO))
            .await
            .unwrap();
        let event = next(&mut watcher).await;
        assert_eq!(
            (event.action, ids(&event.service)),
            (Action::Delete, vec!["n2"])
        );

        // The watcher of everything saw b too; its polls may have merged a's steps.
        loop {
            let event = next(&mut all).await;
            assert!(["a", "b"].contains(&event.service.name.as_str()));
            if event.service.name == "b" {
                assert_eq!(event.action, Action::Create);
                break;
            }
        }
    }

    #[tokio::test]
    async fn odd_names_round_trip() {
        let dir = Scratch::new();
        let r = dir.registry();
        let long = "x".repeat(300);
        let longer = format!("{long}y");
        let names = [
            "a/b c",
            "../../escape",
            ".hidden",
            "..",
            "%2F",
            "ünï ✓",
            "",
            long.as_str(),
            longer.as_str(),
        ];
        for name in names.iter().filter(|n| !n.is_empty()) {
            for node in names {
                r.register(&svc(name, "1", node), None).await.unwrap();
            }
        }
        for name in names.iter().filter(|n| !n.is_empty()) {
            let found = r.get_service(name).await.unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(&found[0].name, name);
            let mut want: Vec<&str> = names.to_vec();
            want.sort_unstable();
            assert_eq!(ids(&found[0]), want);
        }
        assert_eq!(r.list_services().await.unwrap().len(), names.len() - 1);

        // Everything stayed two levels under the registry directory.
        let root = dir.0.join("registry");
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);
        for service_dir in fs::read_dir(&root).unwrap() {
            let service_dir = service_dir.unwrap();
            assert!(service_dir.file_type().unwrap().is_dir());
            for file in fs::read_dir(service_dir.path()).unwrap() {
                let file = file.unwrap();
                assert!(file.file_type().unwrap().is_file());
                assert!(!is_hidden(&file.file_name()));
            }
        }

        for name in names.iter().filter(|n| !n.is_empty()) {
            for node in names {
                r.deregister(&svc(name, "1", node)).await.unwrap();
            }
        }
        assert!(r.list_services().await.unwrap().is_empty());
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    }

    #[test]
    fn names_encode_to_one_safe_component() {
        assert_eq!(encode("greeter.v1-beta_2"), "greeter.v1-beta_2");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
        assert_eq!(encode(".x"), "%2Ex");
        assert_eq!(encode(".."), "%2E.");
        assert_eq!(encode("%"), "%25");
        assert_eq!(encode(""), "%");
        assert_eq!(encode("é"), "%C3%A9");
        let long = encode(&"é".repeat(200));
        assert!(long.len() <= 200);
        assert_ne!(long, encode(&"é".repeat(201)));
        assert!(long.contains('~'));
    }

    #[test]
    fn new_prefers_a_writable_runtime_dir() {
        let dir = Scratch::new();
        let runtime = dir.0.join("run");
        fs::create_dir(&runtime).unwrap();
        let chosen = LocalRegistry::choose(Some(runtime.clone()), &dir.0);
        assert_eq!(chosen.path(), runtime.join("micro").join("registry"));
        assert!(chosen.path().is_dir());

        // Not a directory, or not absolute: the temp directory it is.
        let file = dir.0.join("file");
        fs::write(&file, b"").unwrap();
        for runtime in [file, PathBuf::from("relative")] {
            let chosen = LocalRegistry::choose(Some(runtime), &dir.0);
            assert!(chosen.path().starts_with(&dir.0));
            assert!(chosen.path().ends_with("registry"));
            let parent = chosen.path().parent().unwrap().file_name().unwrap();
            assert!(parent.to_string_lossy().starts_with("micro"), "{parent:?}");
        }
        assert!(!PathBuf::from("relative").exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn temp_dir_fallback_refuses_unsafe_directories() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

        let dir = Scratch::new();
        let r = LocalRegistry::in_temp(&dir.0);
        let guard = r.guard.clone().unwrap();
        let uid = guard.uid.unwrap();
        assert_eq!(guard.dir, dir.0.join(format!("micro-{uid}")));
        r.register(&svc("a", "1", "n1"), None).await.unwrap();
        let meta = fs::metadata(&guard.dir).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700));
        assert_eq!(fs::metadata(r.path()).unwrap().mode() & 0o777, 0o700);

        // Someone made it writable by others: it may hold planted entries.
        fs::set_permissions(&guard.dir, fs::Permissions::from_mode(0o777)).unwrap();
        let refused = |result: Result<_, RegistryError>| match result {
            Err(RegistryError::Unavailable(why)) => assert!(why.contains("refusing"), "{why}"),
            other => panic!("{other:?}"),
        };
        refused(r.get_service("a").await.map(drop));
        refused(r.register(&svc("a", "1", "n1"), None).await);
        fs::remove_dir_all(&guard.dir).unwrap();

        // Someone squatted the name with a symlink to a directory of theirs.
        let theirs = dir.0.join("theirs");
        fs::create_dir(&theirs).unwrap();
        symlink(&theirs, &guard.dir).unwrap();
        refused(r.register(&svc("a", "1", "n1"), None).await);
        refused(r.list_services().await.map(drop));
        refused(r.watch(None).await.map(drop));
        assert!(
            fs::read_dir(theirs.join("registry"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    /// Regression: a FIFO planted as `x.json` hung every reader (`micro services`, the
    /// dashboard) in `open`; a 200 MB file was read in full every poll. Both are skipped,
    /// the FIFO without blocking and the large file without being read.
    #[cfg(unix)]
    #[tokio::test]
    async fn fifos_symlinks_and_oversized_files_are_skipped_not_read() {
        let dir = Scratch::new();
        let r = dir.registry();
        r.register(&svc("planted", "1", "good"), None)
            .await
            .unwrap();
        let fifo = dir.node_file("planted", "fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let big = dir.node_file("planted", "big");
        let file = fs::File::create(&big).unwrap();
        // Sparse: costs no disk, and would cost a full read if the size were not checked.
        file.set_len(200 * 1024 * 1024).unwrap();
        std::os::unix::fs::symlink(&big, dir.node_file("planted", "link")).unwrap();
        assert!(
            read_entry(&fifo)
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(read_entry(&big).unwrap_err().contains("more than the"));
        assert!(read_entry(&dir.node_file("planted", "link")).is_err());
        let found = tokio::time::timeout(Duration::from_secs(10), r.get_service("planted"))
            .await
            .expect("a FIFO does not hang the reader")
            .unwrap();
        assert_eq!(ids(&found[0]), ["good"]);
    }

    /// Regression: a directory given through `MICRO_REGISTRY_ADDRESS` (so to
    /// [`LocalRegistry::at`]) skipped the checks the default one gets, so another user's
    /// world-writable directory routed a victim's calls to the other user's nodes.
    #[cfg(unix)]
    #[tokio::test]
    async fn an_explicit_directory_gets_the_owner_and_permission_checks() {
        use std::os::unix::fs::{PermissionsExt, symlink};

        let dir = Scratch::new();
        let path = dir.0.join("registry");
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        let r = LocalRegistry::at(&path);
        let err = r.register(&svc("s", "1", "n"), None).await.unwrap_err();
        assert!(err.to_string().contains("writable by others"), "{err}");
        assert!(r.list_services().await.is_err());

        // Deliberately shared: used, with a warning.
        let shared = LocalRegistry::shared(&path);
        shared.register(&svc("s", "1", "n"), None).await.unwrap();
        assert_eq!(shared.list_services().await.unwrap().len(), 1);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(r.list_services().await.unwrap().len(), 1);

        let link = dir.0.join("link");
        symlink(&path, &link).unwrap();
        let err = LocalRegistry::at(&link).list_services().await.unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");

        if own_uid() == Some(0) {
            // As root, hand the directory to someone else.
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            let err = r.list_services().await.unwrap_err();
            assert!(err.to_string().contains("owned by uid 4242"), "{err}");
        }
    }
}
