//! A small SMTP server on loopback for end-to-end tests: it speaks enough of RFC 5321 for
//! `lettre` (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), records every message it accepts,
//! and can be told to hang (accept the connection and say nothing) to stand in for a dead mail
//! server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as received.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message as sent after DATA (headers and body, dot-unstuffed, CRLF line ends).
    pub data: String,
}

impl Mail {
    /// The decoded `Subject` header.
    pub fn subject(&self) -> Option<String> {
        self.data.split("\r\n\r\n").next().and_then(|headers| {
            headers
                .lines()
                .find_map(|line| line.strip_prefix("Subject: ").map(str::to_owned))
        })
    }

    /// The decoded text of the part with this content type (`text/plain`, `text/html`).
    pub fn part(&self, content_type: &str) -> Option<String> {
        let start = self.data.find(&format!("Content-Type: {content_type}"))?;
        let rest = &self.data[start..];
        let headers_end = rest.find("\r\n\r\n")?;
        let headers = &rest[..headers_end];
        let body = &rest[headers_end + 4..];
        let body = body.split("\r\n--").next().unwrap_or(body);
        if headers.contains("quoted-printable") {
            Some(decode_quoted_printable(body))
        } else if headers.contains("base64") {
            use base64::Engine as _;
            let joined: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(joined)
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        } else {
            Some(body.to_owned())
        }
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let mut bytes = Vec::new();
    let raw = text.replace("=\r\n", "");
    let input = raw.as_bytes();
    let mut index = 0;
    while index < input.len() {
        if input[index] == b'='
            && index + 2 < input.len()
            && let Ok(byte) = u8::from_str_radix(&raw[index + 1..index + 3], 16)
        {
            bytes.push(byte);
            index += 3;
            continue;
        }
        bytes.push(input[index]);
        index += 1;
    }
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}

#[derive(Default)]
struct State {
    mails: Mutex<Vec<Mail>>,
    /// Connections to hang before answering normally again (`usize::MAX`: all).
    hang_next: AtomicUsize,
    connections: AtomicUsize,
}

/// A recording SMTP server on `127.0.0.1`.
#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    state: Arc<State>,
}

impl SmtpServer {
    /// Starts on an ephemeral port.
    pub async fn start() -> SmtpServer {
        Self::start_on(0).await
    }

    /// Starts on `port` (0: any free port).
    pub async fn start_on(port: u16) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the SMTP listener");
        let port = listener.local_addr().expect("SMTP address").port();
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    state.connections.fetch_add(1, Ordering::SeqCst);
                    let hang = state
                        .hang_next
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                            0 => None,
                            usize::MAX => Some(usize::MAX),
                            n => Some(n - 1),
                        })
                        .is_ok();
                    if hang {
                        // Hold the connection open and say nothing.
                        let _stream = stream;
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let _ = converse(stream, &state).await;
                });
            }
        });
        SmtpServer { port, state }
    }

    /// `smtp://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Makes the next `count` connections hang (`usize::MAX`: every one from now on).
    pub fn hang_next(&self, count: usize) {
        self.state.hang_next.store(count, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Every message received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.state.mails.lock().expect("mails").clone()
    }

    /// Waits until at least `count` messages arrived, or `limit` passes.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + limit;
        loop {
            let mails = self.mails();
            if mails.len() >= count || Instant::now() >= deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn converse(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 localhost cronhook-test-smtp ready\r\n")
        .await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write
                .write_all(b"250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                .await?;
        } else if upper.starts_with("HELO") {
            write.write_all(b"250 localhost\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&command["MAIL FROM:".len()..]);
            to.clear();
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command["RCPT TO:".len()..]));
            write.write_all(b"250 OK\r\n").await?;
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            state.mails.lock().expect("mails").push(Mail {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            write.write_all(b"250 OK: queued\r\n").await?;
        } else if upper == "RSET" || upper == "NOOP" {
            write.write_all(b"250 OK\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"502 Command not implemented\r\n").await?;
        }
    }
}

/// `<a@b.c> SIZE=123` → `a@b.c`.
fn address(text: &str) -> String {
    let text = text.trim();
    match (text.find('<'), text.find('>')) {
        (Some(start), Some(end)) if start < end => text[start + 1..end].to_owned(),
        _ => text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}
