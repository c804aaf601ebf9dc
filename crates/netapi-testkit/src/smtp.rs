//! A real SMTP server for the tests: it listens on a loopback port, speaks enough SMTP for a
//! client (EHLO/HELO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT) and keeps every message it
//! receives for the test to read, so that verification and reset links are read from real
//! messages that went through the server's SMTP client.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope's sender (`MAIL FROM`).
    pub from: String,
    /// The envelope's recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message (headers and body), dot-unstuffed, with quoted-printable soft breaks and
    /// escapes decoded.
    pub data: String,
}

impl Received {
    /// The value of a header (first one, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The first URL in the body whose path starts with `path` (`/reset-password`).
    pub fn link(&self, path: &str) -> Option<String> {
        let body = self.data.split_once("\r\n\r\n")?.1;
        body.split_whitespace()
            .filter(|word| word.starts_with("http://") || word.starts_with("https://"))
            .find(|word| url::Url::parse(word).is_ok_and(|url| url.path().starts_with(path)))
            .map(str::to_owned)
    }

    /// The `token` query parameter of [`Received::link`].
    pub fn token(&self, path: &str) -> Option<String> {
        let link = url::Url::parse(&self.link(path)?).ok()?;
        link.query_pairs()
            .find(|(name, _)| name == "token")
            .map(|(_, value)| value.into_owned())
    }
}

/// The SMTP sink; stops when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    port: u16,
    messages: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// Listens on `127.0.0.1` on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink");
        let port = listener.local_addr().expect("address").port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let task = tokio::spawn({
            let messages = Arc::clone(&messages);
            let arrived = Arc::clone(&arrived);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let messages = Arc::clone(&messages);
                    let arrived = Arc::clone(&arrived);
                    tokio::spawn(async move {
                        // A client that misbehaves only loses its own connection.
                        let _ = session(stream, &messages, &arrived).await;
                    });
                }
            }
        });
        Self {
            port,
            messages,
            arrived,
            task,
        }
    }

    /// `smtp://127.0.0.1:PORT`, for `smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// An `smtp://` URL of a loopback port where nothing listens (a mail server that is down).
    pub async fn down_url() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        format!("smtp://127.0.0.1:{port}")
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Messages received so far for `address`.
    pub fn messages_to(&self, address: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|to| to.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Waits until `address` has received `count` messages (the server sends in the
    /// background), and returns them; panics after 20 seconds.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let arrived = self.arrived.notified();
            let received = self.messages_to(address);
            if received.len() >= count {
                return received;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "{address} received {} message(s), expected {count}",
                    received.len()
                );
            }
        }
    }
}

async fn session(
    stream: TcpStream,
    messages: &Mutex<Vec<Received>>,
    arrived: &Notify,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 netapi-testkit SMTP sink\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-netapi-testkit\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" => b"250 netapi-testkit\r\n",
            "MAIL" => {
                from = address_in(&command);
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(address_in(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    let text = line.trim_end_matches(['\r', '\n']);
                    if text == "." {
                        break;
                    }
                    data.push_str(text.strip_prefix('.').unwrap_or(text));
                    data.push_str("\r\n");
                }
                let received = Received {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data: decode(&data),
                };
                messages
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(received);
                arrived.notify_waiters();
                b"250 OK: queued\r\n"
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address between `<` and `>` of `MAIL FROM:<a>` or `RCPT TO:<a>`.
fn address_in(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

/// Decodes a quoted-printable body (soft line breaks and `=XX`), if the message says it is
/// one; other messages are returned as they are.
fn decode(data: &str) -> String {
    let Some((head, body)) = data.split_once("\r\n\r\n") else {
        return data.to_owned();
    };
    if !head
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        return data.to_owned();
    }
    let joined = body.replace("=\r\n", "");
    let mut bytes = Vec::with_capacity(joined.len());
    let raw = joined.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            bytes.push(byte);
            i += 3;
            continue;
        }
        bytes.push(raw[i]);
        i += 1;
    }
    format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&bytes))
}
