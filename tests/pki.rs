//! Certificates for TLS tests, made with rcgen: a CA per test, leaves it signs.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, date_time_ymd,
};

use micro::transport::Tls;

/// A certificate authority of a test's own.
pub struct Pki {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    cert: Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca certificate");
        Self {
            ca_pem: cert.pem(),
            cert,
            key,
        }
    }

    /// A certificate for `names` (host names or IP addresses), valid now.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.sign(names, false)
    }

    /// A certificate for `names` that expired in 2001.
    pub fn expired_leaf(&self, names: &[&str]) -> Leaf {
        self.sign(names, true)
    }

    fn sign(&self, names: &[&str], expired: bool) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server's TLS: a certificate for `127.0.0.1` and `localhost` signed by this CA, which
    /// it also trusts (for client certificates, with `client_auth`).
    pub fn server(&self) -> micro::transport::TlsBuilder {
        let leaf = self.leaf(&["127.0.0.1", "localhost"]);
        Tls::builder()
            .cert_pem(leaf.cert_pem)
            .key_pem(leaf.key_pem)
            .ca_pem(&self.ca_pem)
    }

    /// A client's TLS: trusts this CA, presents no certificate.
    pub fn client(&self) -> Tls {
        Tls::builder()
            .ca_pem(&self.ca_pem)
            .build()
            .expect("client tls")
    }

    /// A client's TLS with a certificate of its own signed by this CA (for mutual TLS).
    pub fn client_with_cert(&self) -> Tls {
        let leaf = self.leaf(&["client"]);
        Tls::builder()
            .cert_pem(leaf.cert_pem)
            .key_pem(leaf.key_pem)
            .ca_pem(&self.ca_pem)
            .build()
            .expect("client tls")
    }
}
