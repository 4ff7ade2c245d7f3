use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{BoxIo, Listener, Transport};
use crate::BoxFuture;
use crate::addr::ListenAddr;
use crate::config::Options;

/// Longest a peer may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener; past this, accepting waits.
const MAX_HANDSHAKES: usize = 256;
/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// TCP with TLS (rustls, `ring`), certificates verified by default.
///
/// One value serves both sides: as a server it presents its certificate (and, with
/// [`client_auth`](TlsBuilder::client_auth), demands one from every client, signed by the
/// CA); as a client it verifies the server's certificate against the CA and, when it has a
/// certificate of its own, presents it. A plaintext peer, an unknown CA, an expired
/// certificate or a missing client certificate each ends the connection with an error that
/// says so; a plaintext micro client is told that the service speaks TLS only.
///
/// Certificates read from files are read again by [`reload`](Self::reload): connections made
/// afterwards use the new ones, connections already open keep theirs.
///
/// ```
/// use micro::transport::{Tls, Transport};
///
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let tls = Tls::builder()
///     .cert_pem(cert.cert.pem())
///     .key_pem(cert.key_pair.serialize_pem())
///     .ca_pem(cert.cert.pem()) // self-signed: its own CA
///     .build()?;
/// assert_eq!(tls.name(), "tls");
/// # Ok::<(), micro::transport::TlsError>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    builder: TlsBuilder,
    configs: RwLock<Configs>,
}

#[derive(Clone)]
struct Configs {
    /// `None` without a certificate: such a value only dials.
    server: Option<Arc<ServerConfig>>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.inner.builder.cert)
            .field("ca", &self.inner.builder.ca)
            .field("client_auth", &self.inner.builder.client_auth)
            .finish_non_exhaustive()
    }
}

/// Where a PEM document comes from.
#[derive(Clone)]
enum Pem {
    File(PathBuf),
    Bytes(Arc<[u8]>),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(path) => write!(f, "{}", path.display()),
            Pem::Bytes(_) => f.write_str("<pem>"),
        }
    }
}

impl Pem {
    fn read(&self, what: &'static str) -> Result<Arc<[u8]>, TlsError> {
        match self {
            Pem::Bytes(bytes) => Ok(bytes.clone()),
            Pem::File(path) => std::fs::read(path)
                .map(Arc::from)
                .map_err(|e| TlsError::Read {
                    what,
                    path: path.clone(),
                    reason: e.to_string(),
                }),
        }
    }
}

/// What went wrong loading TLS settings.
///
/// ```
/// let err = micro::transport::Tls::builder().cert_file("/nonexistent/cert.pem").key_file("/nonexistent/key.pem").build().unwrap_err();
/// assert!(err.to_string().starts_with("cannot read the certificate /nonexistent/cert.pem: "));
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// `certificate`, `private key` or `CA`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A document or a combination of settings is not usable.
    Invalid(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { what, path, reason } => {
                write!(f, "cannot read the {what} {}: {reason}", path.display())
            }
            TlsError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
    }
}

/// Settings of a [`Tls`] transport: PEM files (or PEM text) and whether clients must
/// present a certificate.
///
/// See [`Tls`] for an example.
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct TlsBuilder {
    cert: Option<Pem>,
    key: Option<Pem>,
    ca: Option<Pem>,
    client_auth: bool,
    server_name: Option<String>,
}

impl TlsBuilder {
    /// This node's certificate chain, a PEM file (`MICRO_TLS_CERT`): presented by servers,
    /// and by clients to servers that ask for one.
    ///
    /// See [`Tls`] for an example.
    pub fn cert_file(mut self, path: impl AsRef<Path>) -> Self {
        self.cert = Some(Pem::File(path.as_ref().to_owned()));
        self
    }

    /// The private key of [`cert_file`](Self::cert_file), a PEM file (`MICRO_TLS_KEY`).
    ///
    /// See [`Tls`] for an example.
    pub fn key_file(mut self, path: impl AsRef<Path>) -> Self {
        self.key = Some(Pem::File(path.as_ref().to_owned()));
        self
    }

    /// The CA certificates that sign the peers' certificates, a PEM file (`MICRO_TLS_CA`).
    /// Without one a client trusts no server.
    ///
    /// See [`Tls`] for an example.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca = Some(Pem::File(path.as_ref().to_owned()));
        self
    }

    /// The certificate chain as PEM text.
    ///
    /// See [`Tls`] for an example.
    pub fn cert_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.cert = Some(Pem::Bytes(Arc::from(pem.as_ref())));
        self
    }

    /// The private key as PEM text.
    ///
    /// See [`Tls`] for an example.
    pub fn key_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.key = Some(Pem::Bytes(Arc::from(pem.as_ref())));
        self
    }

    /// The CA certificates as PEM text.
    ///
    /// See [`Tls`] for an example.
    pub fn ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.ca = Some(Pem::Bytes(Arc::from(pem.as_ref())));
        self
    }

    /// Mutual TLS (`MICRO_TLS_CLIENT_AUTH=true`): a server refuses clients without a
    /// certificate signed by the CA.
    ///
    /// See [`Tls`] for an example.
    pub fn client_auth(mut self, required: bool) -> Self {
        self.client_auth = required;
        self
    }

    /// The name a client expects in server certificates, instead of the host it dials.
    ///
    /// See [`Tls`] for an example.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Reads the certificates and makes the transport.
    ///
    /// # Errors
    /// When a file cannot be read, holds no usable PEM, a certificate comes without its key
    /// (or the other way round), or client authentication is asked for without a CA.
    ///
    /// See [`Tls`] for an example.
    pub fn build(self) -> Result<Tls, TlsError> {
        let configs = self.load()?;
        Ok(Tls {
            inner: Arc::new(Inner {
                builder: self,
                configs: RwLock::new(configs),
            }),
        })
    }

    fn load(&self) -> Result<Configs, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let invalid = |e: rustls::Error| TlsError::Invalid(format!("tls: {e}"));
        let mut roots = RootCertStore::empty();
        if let Some(ca) = &self.ca {
            let pem = ca.read("CA")?;
            for cert in certs(&pem, ca, "CA")? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::Invalid(format!("unusable CA in {ca:?}: {e}")))?;
            }
        }
        let roots = Arc::new(roots);
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = certs(&cert.read("certificate")?, cert, "certificate")?;
                let key_pem = key.read("private key")?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    TlsError::Invalid(format!("no usable private key in {key:?}: {e}"))
                })?;
                Some((chain, key))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(TlsError::Invalid(
                    "a certificate needs its private key (MICRO_TLS_KEY)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(TlsError::Invalid(
                    "a private key needs its certificate (MICRO_TLS_CERT)".into(),
                ));
            }
        };
        if self.client_auth && self.ca.is_none() {
            return Err(TlsError::Invalid(
                "client authentication needs the CA that signs client certificates (MICRO_TLS_CA)"
                    .into(),
            ));
        }
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_root_certificates(roots.clone());
        let client = match &identity {
            Some((chain, key)) => client
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(invalid)?,
            None => client.with_no_client_auth(),
        };
        let server = match identity {
            Some((chain, key)) => {
                let server = ServerConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(invalid)?;
                let server = if self.client_auth {
                    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                        .build()
                        .map_err(|e| TlsError::Invalid(format!("tls: {e}")))?;
                    server.with_client_cert_verifier(verifier)
                } else {
                    server.with_no_client_auth()
                };
                Some(Arc::new(
                    server.with_single_cert(chain, key).map_err(invalid)?,
                ))
            }
            None => None,
        };
        Ok(Configs {
            server,
            client: Arc::new(client),
        })
    }
}

fn certs(pem: &[u8], from: &Pem, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(format!("unreadable {what} in {from:?}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "no certificate in the {what} {from:?}"
        )));
    }
    Ok(certs)
}

impl Tls {
    /// Starts the settings of a TLS transport.
    ///
    /// See [`Tls`] for an example.
    pub fn builder() -> TlsBuilder {
        TlsBuilder::default()
    }

    /// The TLS settings of `opts` (`MICRO_TLS_CERT`, `MICRO_TLS_KEY`, `MICRO_TLS_CA`,
    /// `MICRO_TLS_CLIENT_AUTH`), or `None` when none is set.
    ///
    /// # Errors
    /// As [`TlsBuilder::build`].
    ///
    /// ```
    /// let opts = micro::config::Options::default();
    /// assert!(micro::transport::Tls::from_options(&opts)?.is_none());
    /// # Ok::<(), micro::transport::TlsError>(())
    /// ```
    pub fn from_options(opts: &Options) -> Result<Option<Tls>, TlsError> {
        if opts.tls_cert.is_none() && opts.tls_key.is_none() && opts.tls_ca.is_none() {
            return Ok(None);
        }
        let mut builder = Tls::builder().client_auth(opts.tls_client_auth.unwrap_or(false));
        if let Some(path) = &opts.tls_cert {
            builder = builder.cert_file(path);
        }
        if let Some(path) = &opts.tls_key {
            builder = builder.key_file(path);
        }
        if let Some(path) = &opts.tls_ca {
            builder = builder.ca_file(path);
        }
        builder.build().map(Some)
    }

    /// Reads the certificate, key and CA files again. New connections use them; open ones
    /// keep what they were made with. On error the settings in use stay as they were.
    ///
    /// # Errors
    /// As [`TlsBuilder::build`].
    ///
    /// ```
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// let tls = micro::transport::Tls::builder().ca_pem(cert.cert.pem()).build()?;
    /// tls.reload()?; // PEM text given in code reloads as it was
    /// # Ok::<(), micro::transport::TlsError>(())
    /// ```
    pub fn reload(&self) -> Result<(), TlsError> {
        let configs = self.inner.builder.load()?;
        *self
            .inner
            .configs
            .write()
            .unwrap_or_else(|e| e.into_inner()) = configs;
        Ok(())
    }

    fn configs(&self) -> Configs {
        self.inner
            .configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn server_name(&self, addr: &str) -> io::Result<ServerName<'static>> {
        let host = match &self.inner.builder.server_name {
            Some(name) => name.as_str(),
            None => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                host.trim_start_matches('[').trim_end_matches(']')
            }
        };
        ServerName::try_from(host.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{host}` is not a name a certificate can hold: {e}"),
            )
        })
    }
}

impl Transport for Tls {
    fn name(&self) -> &'static str {
        "tls"
    }

    fn listen<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            if self.configs().server.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a tls server needs a certificate and its key (MICRO_TLS_CERT, MICRO_TLS_KEY)",
                ));
            }
            let inner = ListenAddr::parse(addr)?.bind().await?;
            let local = inner.local_addr()?.to_string();
            Ok(Box::new(TlsListen {
                inner,
                local,
                tls: self.clone(),
                handshakes: JoinSet::new(),
            }) as Box<dyn Listener>)
        })
    }

    fn dial<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let name = self.server_name(addr)?;
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let connector = TlsConnector::from(self.configs().client);
            let handshake = connector.connect(name, stream);
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("tls handshake with {addr} timed out"),
                    )
                })?
                .map_err(|e| explain(e, addr))?;
            Ok(Box::new(Explained {
                inner: stream,
                addr: addr.into(),
            }) as BoxIo)
        })
    }
}

/// A rustls failure, told in terms of what the user can fix.
fn explain(e: io::Error, peer: &str) -> io::Error {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as Tls};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Tls>()) else {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return io::Error::new(
                e.kind(),
                format!(
                    "{peer} closed the connection during the tls handshake: it may not speak tls, or refused this client"
                ),
            );
        }
        return e;
    };
    let why = match tls {
        Tls::InvalidCertificate(Cert::UnknownIssuer) => {
            format!("the certificate of {peer} is not signed by a trusted CA (MICRO_TLS_CA)")
        }
        Tls::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            format!("the certificate of {peer} has expired")
        }
        Tls::InvalidCertificate(Cert::NotValidYet | Cert::NotValidYetContext { .. }) => {
            format!("the certificate of {peer} is not valid yet")
        }
        Tls::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            format!("the certificate of {peer} is not valid for the name dialed")
        }
        Tls::InvalidCertificate(other) => {
            format!("the certificate of {peer} is not acceptable: {other:?}")
        }
        Tls::InvalidMessage(_) | Tls::InappropriateMessage { .. } => {
            format!("{peer} does not speak tls (a plaintext server?)")
        }
        Tls::AlertReceived(Alert::CertificateRequired) => {
            format!("{peer} requires a client certificate (MICRO_TLS_CERT, MICRO_TLS_KEY)")
        }
        Tls::AlertReceived(Alert::UnknownCA | Alert::BadCertificate) => {
            format!("{peer} does not trust this client's certificate")
        }
        Tls::AlertReceived(Alert::CertificateExpired) => {
            format!("{peer} refused this client's certificate: it has expired")
        }
        Tls::NoCertificatesPresented => {
            format!("{peer} presented no client certificate, and one is required")
        }
        other => format!("tls with {peer} failed: {other}"),
    };
    io::Error::new(e.kind(), why)
}

/// A client's TLS stream whose errors say what went wrong: in TLS 1.3 a server refuses a
/// client certificate after the client's handshake is done, so that news comes on a read.
struct Explained {
    inner: tokio_rustls::client::TlsStream<TcpStream>,
    addr: Arc<str>,
}

impl AsyncRead for Explained {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(explain(e, &this.addr))),
            other => other,
        }
    }
}

impl AsyncWrite for Explained {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct TlsListen {
    inner: TcpListener,
    local: String,
    tls: Tls,
    /// Handshakes run beside the accept loop, so a slow peer holds up no one else.
    handshakes: JoinSet<Option<(BoxIo, String)>>,
}

impl fmt::Debug for TlsListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListen")
            .field("local", &self.local)
            .field("handshakes", &self.handshakes.len())
            .finish_non_exhaustive()
    }
}

impl Listener for TlsListen {
    fn local_addr(&self) -> String {
        self.local.clone()
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxIo, String)>> {
        Box::pin(async move {
            loop {
                tokio::select! {
                    Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                        if let Ok(Some(accepted)) = done {
                            return Ok(accepted);
                        }
                    }
                    accepted = self.inner.accept(), if self.handshakes.len() < MAX_HANDSHAKES => {
                        let (stream, peer) = accepted?;
                        stream.set_nodelay(true)?;
                        let Some(config) = self.tls.configs().server else {
                            continue;
                        };
                        self.handshakes.spawn(handshake(stream, peer.to_string(), config));
                    }
                }
            }
        })
    }
}

async fn handshake(
    stream: TcpStream,
    peer: String,
    config: Arc<ServerConfig>,
) -> Option<(BoxIo, String)> {
    let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await.ok()? == 0 {
            return None;
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            refuse_plaintext(stream, &peer).await;
            return None;
        }
        match TlsAcceptor::from(config)
            .accept(stream)
            .into_fallible()
            .await
        {
            Ok(stream) => Some((Box::new(stream) as BoxIo, peer.clone())),
            Err((e, stream)) => {
                tracing::warn!(%peer, "tls handshake failed: {}", explain(e, &peer));
                // The alert saying why is sent; let the client read it.
                linger(stream).await;
                None
            }
        }
    })
    .await;
    match done {
        Ok(accepted) => accepted,
        Err(_) => {
            tracing::warn!(%peer, "tls handshake not completed within {HANDSHAKE_TIMEOUT:?}");
            None
        }
    }
}

/// Tells a plaintext micro client why it is turned away, in a frame it can read.
async fn refuse_plaintext(mut stream: TcpStream, peer: &str) {
    tracing::warn!(%peer, "refusing a plaintext connection: this service accepts tls only");
    let mut frame = bytes::BytesMut::new();
    crate::wire::Outgoing::Error {
        id: 0,
        error: crate::Error::unavailable(
            "micro.tls",
            "this service accepts tls connections only: the client dialed it in plaintext (give the client MICRO_TLS_CA)",
        ),
        not_run: true,
    }
    .encode(&mut frame);
    let _ = stream.write_all(&frame).await;
    linger(stream).await;
}

/// Closes our side, then reads until the peer hangs up: closing with its bytes unread would
/// reset the connection, and could discard what we last sent before the peer reads it.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}
