//! The listening socket: TCP with `TCP_NODELAY`, optional TLS (rustls), a cap on open
//! connections and a smaller one per source address (IPv6: per /64), so that one client's
//! idle or half-sent connections cannot take every place. Handshakes run on their own tasks,
//! so a slow or silent client cannot hold up the others, and each is cut off after a timeout.

use axum::serve::Listener;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads a certificate chain and private key (PEM) into a TLS acceptor that speaks HTTP/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> io::Result<TlsAcceptor> {
    let invalid = |what: &str, err: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {err}"))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid("cannot read tls_cert", &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("bad certificate in tls_cert", &e))?;
    if chain.is_empty() {
        return Err(invalid("tls_cert", &"holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid("cannot read tls_key", &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS configuration", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid("tls_cert and tls_key do not match", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

use crate::proxy::TrustedProxies;

/// Open connections per source.
type PerSource = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// A connection's place under the per-source cap, given back when it is dropped.
struct SourceSlot {
    counts: PerSource,
    source: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(open) = counts.get_mut(&self.source) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

/// Takes a place for a connection from `peer`: `None` when its source is at `cap`. Trusted
/// proxies (which carry many clients) and a cap of 0 are not limited.
fn take_source_slot(
    counts: &PerSource,
    peer: IpAddr,
    cap: usize,
    trusted: &TrustedProxies,
) -> Option<Option<SourceSlot>> {
    if cap == 0 || trusted.trusts(peer) {
        return Some(None);
    }
    let source = netapi_core::limiter::source_group(peer);
    let mut open = counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let count = open.entry(source).or_insert(0);
    if *count >= cap {
        return None;
    }
    *count += 1;
    Some(Some(SourceSlot {
        counts: counts.clone(),
        source,
    }))
}

/// A connection, plain or TLS, holding its places under the connection caps until dropped.
pub struct Connection {
    stream: Stream,
    _permit: OwnedSemaphorePermit,
    _source: Option<SourceSlot>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.stream {
            Stream::Plain(_) => "plain",
            Stream::Tls(_) => "tls",
        };
        f.debug_struct("Connection").field("stream", &kind).finish()
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts connections on a task of its own and hands ready ones to the server.
pub struct NetListener {
    ready: mpsc::Receiver<(Connection, SocketAddr)>,
    local: SocketAddr,
}

impl std::fmt::Debug for NetListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetListener")
            .field("local", &self.local)
            .finish()
    }
}

impl NetListener {
    /// Starts accepting on `tcp`, at most `max_connections` open at once and
    /// `max_per_source` from one source (0: no such cap; `trusted` proxies exempt), through
    /// `tls` if set. A connection past the per-source cap is closed at once.
    pub fn new(
        tcp: TcpListener,
        tls: Option<TlsAcceptor>,
        max_connections: usize,
        max_per_source: usize,
        trusted: TrustedProxies,
    ) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (sender, ready) = mpsc::channel(1024);
        let slots = Arc::new(Semaphore::new(max_connections.max(1)));
        let per_source: PerSource = Arc::default();
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (tcp_stream, addr) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(source_slot) =
                    take_source_slot(&per_source, addr.ip(), max_per_source, &trusted)
                else {
                    tracing::debug!(%addr, "too many connections from this source; closed");
                    continue;
                };
                let _ = tcp_stream.set_nodelay(true);
                let sender = sender.clone();
                match tls.clone() {
                    None => {
                        let connection = Connection {
                            stream: Stream::Plain(tcp_stream),
                            _permit: permit,
                            _source: source_slot,
                        };
                        if sender.send((connection, addr)).await.is_err() {
                            return;
                        }
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            match tokio::time::timeout(
                                HANDSHAKE_TIMEOUT,
                                acceptor.accept(tcp_stream),
                            )
                            .await
                            {
                                Ok(Ok(tls_stream)) => {
                                    let connection = Connection {
                                        stream: Stream::Tls(Box::new(tls_stream)),
                                        _permit: permit,
                                        _source: source_slot,
                                    };
                                    let _ = sender.send((connection, addr)).await;
                                }
                                Ok(Err(err)) => {
                                    tracing::debug!(error = %err, %addr, "TLS handshake failed")
                                }
                                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        });
        Ok(Self { ready, local })
    }
}

impl Listener for NetListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept task only ends with the process; never hand back a connection again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
