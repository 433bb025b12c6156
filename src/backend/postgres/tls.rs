//! TLS for `sslmode=prefer|require`: encrypt, verify neither the certificate
//! chain nor the host name, as libpq does for these modes (it verifies only
//! with verify-ca/verify-full, which this driver lacks).
//!
//! The context is built without the system's trust store. OpenSSL 3 parses the
//! whole CA bundle when a connector is built the usual way (`SslConnector`,
//! native-tls): about 40 ms of CPU and 4 MB per connection, for certificates
//! these modes never look at. It is also built only once the server has agreed
//! to TLS, so a server that declines costs nothing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ssl::{Ssl, SslContext, SslMethod, SslVerifyMode};
use openssl::x509::X509Ref;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use postgres::Socket;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};

/// Hands postgres a [`Connector`] per host; nothing is set up until TLS is
/// actually negotiated.
pub(super) struct UnverifiedTls;

impl MakeTlsConnect<Socket> for UnverifiedTls {
    type Stream = Stream;
    type TlsConnect = Connector;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connector, io::Error> {
        Ok(Connector { domain: domain.to_string() })
    }
}

pub(super) struct Connector {
    domain: String,
}

type Handshake = Pin<Box<dyn Future<Output = Result<Stream, io::Error>> + Send>>;

impl TlsConnect<Socket> for Connector {
    type Stream = Stream;
    type Error = io::Error;
    type Future = Handshake;

    fn connect(self, socket: Socket) -> Handshake {
        Box::pin(async move {
            let ssl = client_ssl(&self.domain).map_err(io::Error::other)?;
            // Buffered: the protocol's small reads would each be a syscall.
            let mut stream =
                tokio_openssl::SslStream::new(ssl, BufReader::with_capacity(8192, socket)).map_err(io::Error::other)?;
            Pin::new(&mut stream).connect().await.map_err(|e| match e.into_io_error() {
                Ok(e) => e,
                Err(e) => io::Error::other(e),
            })?;
            Ok(Stream(stream))
        })
    }
}

fn client_ssl(domain: &str) -> Result<Ssl, openssl::error::ErrorStack> {
    let mut context = SslContext::builder(SslMethod::tls_client())?;
    context.set_verify(SslVerifyMode::NONE);
    let mut ssl = Ssl::new(&context.build())?;
    // SNI, for servers behind a proxy that routes by name; never an IP address.
    if domain.parse::<std::net::IpAddr>().is_err() {
        ssl.set_hostname(domain)?;
    }
    Ok(ssl)
}

pub(super) struct Stream(tokio_openssl::SslStream<BufReader<Socket>>);

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl postgres::tls::TlsStream for Stream {
    /// SCRAM's channel binding (tls-server-end-point, RFC 5929): a hash of
    /// the server's certificate, so a man in the middle cannot relay the login.
    fn channel_binding(&self) -> ChannelBinding {
        match self.0.ssl().peer_certificate().and_then(|certificate| server_end_point(&certificate)) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

fn server_end_point(certificate: &X509Ref) -> Option<Vec<u8>> {
    let algorithms = certificate.signature_algorithm().object().nid().signature_algorithms()?;
    // RFC 5929 4.1: MD5 and SHA-1 certificates are hashed with SHA-256.
    let digest = match algorithms.digest {
        Nid::MD5 | Nid::SHA1 => MessageDigest::sha256(),
        nid => MessageDigest::from_nid(nid)?,
    };
    certificate.digest(digest).ok().map(|hash| hash.to_vec())
}

#[cfg(test)]
mod tests {
    use openssl::hash::{hash, MessageDigest};
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Name, X509};

    use super::server_end_point;

    fn certificate(signed_with: MessageDigest) -> X509 {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "db.test").unwrap();
        let name = name.build();
        let mut builder = X509::builder().unwrap();
        builder.set_subject_name(&name).unwrap();
        builder.set_issuer_name(&name).unwrap();
        builder.set_pubkey(&key).unwrap();
        builder.sign(&key, signed_with).unwrap();
        builder.build()
    }

    #[test]
    fn channel_binding_hashes_the_certificate_with_its_signature_digest() {
        for (signed_with, expected) in [
            (MessageDigest::sha256(), MessageDigest::sha256()),
            (MessageDigest::sha384(), MessageDigest::sha384()),
            (MessageDigest::sha512(), MessageDigest::sha512()),
            // RFC 5929: SHA-1 is upgraded to SHA-256.
            (MessageDigest::sha1(), MessageDigest::sha256()),
        ] {
            let certificate = certificate(signed_with);
            let der = certificate.to_der().unwrap();
            assert_eq!(server_end_point(&certificate), Some(hash(expected, &der).unwrap().to_vec()));
        }
    }
}
