//! The outbound HTTP half of the executor: the guarded clients (SSRF-filtering resolver, redirect
//! policy), sending one attempt, capturing its response and classifying its errors.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cronhook_core::net::TargetPolicy;
use cronhook_core::validate::validate_target_url;
use cronhook_core::{AttemptError, ErrorKind, MAX_STORED_RESPONSE_BODY};
use futures::{Stream, StreamExt};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use url::Url;

/// The most redirect hops followed for a job with `follow_redirects`.
pub const MAX_REDIRECTS: usize = 10;
/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A target the SSRF guard refused: found again in an error's `source()` chain.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BlockedTarget(pub String);

/// More redirects than [`MAX_REDIRECTS`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("more than {MAX_REDIRECTS} redirects")]
pub struct TooManyRedirects;

/// A resolver that keeps only the addresses the target policy permits.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    targets: TargetPolicy,
}

impl GuardedResolver {
    pub(crate) fn new(targets: TargetPolicy) -> Self {
        Self { targets }
    }
}

/// The DNS server every guarded client asks, when the operator names one (`--dns-server`);
/// otherwise the system resolver.
static DNS_SERVER: std::sync::OnceLock<DnsServer> = std::sync::OnceLock::new();

/// A resolver that asks one given DNS server (UDP, then TCP for truncated answers), uncached,
/// so every lookup is asked and vetted afresh.
struct DnsServer {
    address: SocketAddr,
    resolver: hickory_resolver::Resolver<hickory_resolver::net::runtime::TokioRuntimeProvider>,
}

/// Makes every guarded client of this process (executor and alert deliveries) resolve through
/// the DNS server at `address` instead of the system resolver. Call it once, at start-up,
/// before building clients; a second call with another address is refused.
pub fn use_dns_server(address: SocketAddr) -> Result<(), String> {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    let mut udp = ConnectionConfig::udp();
    udp.port = address.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = address.port();
    let mut server = NameServerConfig::udp_and_tcp(address.ip());
    server.connections = vec![udp, tcp];
    let mut builder = hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![server]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    );
    let options = builder.options_mut();
    options.cache_size = 0;
    options.attempts = 1;
    options.timeout = Duration::from_secs(5);
    let resolver = builder
        .build()
        .map_err(|error| format!("cannot use DNS server {address}: {error}"))?;
    let configured = DNS_SERVER.get_or_init(|| DnsServer { address, resolver });
    if configured.address == address {
        Ok(())
    } else {
        Err(format!("the DNS server is {} already", configured.address))
    }
}

/// The addresses of `host`: from the configured DNS server, or the system resolver.
async fn lookup(host: &str) -> Result<Vec<SocketAddr>, Box<dyn StdError + Send + Sync>> {
    match DNS_SERVER.get() {
        Some(server) => {
            let found = server.resolver.lookup_ip(host).await?;
            Ok(found.iter().map(|ip| SocketAddr::new(ip, 0)).collect())
        }
        None => Ok(tokio::net::lookup_host((host, 0)).await?.collect()),
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let targets = self.targets.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = lookup(&host).await?;
            let permitted: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|address| targets.permits(address.ip()))
                .collect();
            if permitted.is_empty() {
                let Some(first) = found.first() else {
                    return Err(format!("{host} has no addresses").into());
                };
                return Err(Box::new(BlockedTarget(format!(
                    "{host} resolves to {}, a non-public address; cronhook refuses those unless the operator allows them",
                    first.ip()
                ))) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// What to do with one redirect hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RedirectDecision {
    Follow,
    Blocked(String),
    TooMany,
}

/// Judges redirect hop number `hop` (1 for the first redirect) to `next`.
pub(crate) fn redirect_decision(
    targets: &TargetPolicy,
    next: &Url,
    hop: usize,
) -> RedirectDecision {
    if hop > MAX_REDIRECTS {
        return RedirectDecision::TooMany;
    }
    match validate_target_url(next.as_str(), "redirect", targets) {
        Ok(_) => RedirectDecision::Follow,
        Err(error) => RedirectDecision::Blocked(format!(
            "redirect hop {hop} to {}: {}",
            next.host_str().unwrap_or(next.scheme()),
            error.message
        )),
    }
}

/// The two pooled clients of an executor: one follows redirects through the guard, one does not.
pub(crate) struct HttpClients {
    following: reqwest::Client,
    direct: reqwest::Client,
    targets: TargetPolicy,
}

impl HttpClients {
    pub(crate) fn new(targets: &TargetPolicy) -> Result<Self, reqwest::Error> {
        let policy = targets.clone();
        let follow = reqwest::redirect::Policy::custom(move |attempt| {
            let hop = attempt.previous().len();
            match redirect_decision(&policy, attempt.url(), hop) {
                RedirectDecision::Follow => attempt.follow(),
                RedirectDecision::Blocked(message) => attempt.error(BlockedTarget(message)),
                RedirectDecision::TooMany => attempt.error(TooManyRedirects),
            }
        });
        Ok(Self {
            following: build_client(targets, follow)?,
            direct: build_client(targets, reqwest::redirect::Policy::none())?,
            targets: targets.clone(),
        })
    }
}

/// A pooled client for senders outside the executor (alert deliveries): it dials only addresses
/// the target policy permits (checked after DNS) and follows no redirects. Literal addresses
/// never reach the resolver: check the URL with `validate_target_url` before sending.
pub fn guarded_client(targets: &TargetPolicy) -> Result<reqwest::Client, reqwest::Error> {
    build_client(targets, reqwest::redirect::Policy::none())
}

/// The error kind and message a failed request stands for, as attempts record them.
pub fn describe_request_error(error: &reqwest::Error) -> AttemptError {
    classify(error)
}

fn build_client(
    targets: &TargetPolicy,
    redirect: reqwest::redirect::Policy,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(60))
        .dns_resolver(Arc::new(GuardedResolver::new(targets.clone())))
        .redirect(redirect)
        .referer(false)
        .build()
}

/// Where a request goes.
pub(crate) enum Destination {
    /// The URL as the job states it, checked against the target policy when sent.
    Unchecked(String),
    /// Parsed and checked already (see [`HttpClients::check`]).
    Checked(url::Url),
}

/// One request to send.
pub(crate) struct Outbound {
    pub method: reqwest::Method,
    pub url: Destination,
    pub headers: HeaderMap,
    /// `None` sends no body (and no `content-length`).
    pub body: Option<Bytes>,
    pub timeout: Duration,
    pub follow_redirects: bool,
}

/// What came of sending a request.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub status: Option<u16>,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub truncated: bool,
    /// The `Location` of a 3xx answer.
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
    pub ttfb_ms: Option<u64>,
    pub total_ms: u64,
    pub error: Option<AttemptError>,
}

impl HttpClients {
    /// `request` with its URL parsed and checked against the target policy, done ahead of
    /// sending: parsing a URL (IDNA processing of the host included) was a fifth of what a
    /// request cost at its instant. A URL that fails the check is left for `send` to report.
    pub(crate) fn check(&self, mut request: Outbound) -> Outbound {
        if let Destination::Unchecked(text) = &request.url
            && let Ok(url) = validate_target_url(text, "request.url", &self.targets)
        {
            request.url = Destination::Checked(url);
        }
        request
    }

    /// Sends `request` and captures its answer. The timeout covers the whole exchange.
    pub(crate) async fn send(&self, request: Outbound) -> Captured {
        let started = Instant::now();
        let mut captured = Captured::default();
        // Parsed once, here or in `check`; the client takes the parsed URL as it is.
        let url = match request.url {
            Destination::Checked(url) => url,
            Destination::Unchecked(text) => {
                match validate_target_url(&text, "request.url", &self.targets) {
                    Ok(url) => url,
                    Err(error) => {
                        captured.error = Some(AttemptError {
                            kind: ErrorKind::BlockedTarget,
                            message: format!("request.url {}", error.message),
                        });
                        return captured;
                    }
                }
            }
        };
        let client = if request.follow_redirects {
            &self.following
        } else {
            &self.direct
        };
        let mut builder = client.request(request.method, url).headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let timeout = request.timeout;
        let exchange = exchange(builder, started, &mut captured);
        let outcome = tokio::time::timeout(timeout, exchange).await;
        captured.total_ms = millis(started.elapsed());
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => captured.error = Some(error),
            Err(_) => {
                captured.error = Some(AttemptError {
                    kind: ErrorKind::Timeout,
                    message: format!("no complete response within {} ms", timeout.as_millis()),
                });
            }
        }
        captured
    }
}

async fn exchange(
    builder: reqwest::RequestBuilder,
    started: Instant,
    captured: &mut Captured,
) -> Result<(), AttemptError> {
    let response = builder.send().await.map_err(|error| classify(&error))?;
    captured.ttfb_ms = Some(millis(started.elapsed()));
    let status = response.status().as_u16();
    captured.status = Some(status);
    captured.headers = header_map(response.headers());
    if (300..400).contains(&status) {
        captured.location = captured.headers.get("location").cloned();
    }
    if status == 429 || status == 503 {
        let now = chrono::Utc::now().timestamp();
        captured.retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| cronhook_core::retry::parse_retry_after(value, now));
    }
    // The body is captured into `captured` as it arrives, so a timeout keeps what was read.
    let mut body = Vec::new();
    let result = capture_body(
        response.bytes_stream(),
        MAX_STORED_RESPONSE_BODY,
        &mut body,
        &mut captured.truncated,
    )
    .await;
    captured.body = Some(body_text(body, captured.truncated));
    result.map_err(|error| {
        let mut error = classify(&error);
        error.message = format!("reading the response body: {}", error.message);
        error
    })
}

/// Reads `stream` into `into`, keeping at most `limit` bytes; stops at the first byte past the
/// limit (the rest is neither read nor drained) and sets `truncated`.
pub(crate) async fn capture_body<S, E>(
    stream: S,
    limit: usize,
    into: &mut Vec<u8>,
    truncated: &mut bool,
) -> Result<(), E>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = limit.saturating_sub(into.len());
        let take = room.min(chunk.len());
        into.extend_from_slice(&chunk[..take]);
        if take < chunk.len() {
            *truncated = true;
            break;
        }
    }
    Ok(())
}

/// The stored text of a body: lossy UTF-8, without a character the cut split in two.
pub(crate) fn body_text(mut body: Vec<u8>, truncated: bool) -> String {
    if truncated
        && let Err(error) = std::str::from_utf8(&body)
        && error.error_len().is_none()
    {
        body.truncate(error.valid_up_to());
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Response headers with lowercase names; repeated headers joined with ", ".
pub(crate) fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_ascii_lowercase())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

/// An error and its causes, outermost first. `io::Error::source()` skips the error it wraps, so
/// wrapped errors are unwrapped with `get_ref()` instead.
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut all = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        all.push(current);
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    all
}

/// The attempt error a failed request stands for, found by walking its causes.
pub(crate) fn classify(error: &reqwest::Error) -> AttemptError {
    let causes = causes(error);
    let mut tls = false;
    for cause in &causes {
        if let Some(blocked) = cause.downcast_ref::<BlockedTarget>() {
            return AttemptError {
                kind: ErrorKind::BlockedTarget,
                message: blocked.to_string(),
            };
        }
        if cause.is::<TooManyRedirects>() {
            return AttemptError {
                kind: ErrorKind::TooManyRedirects,
                message: format!("more than {MAX_REDIRECTS} redirects"),
            };
        }
        if cause.is::<rustls::Error>() {
            tls = true;
        }
    }
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if tls {
        ErrorKind::Tls
    } else if error.is_dns() {
        ErrorKind::Dns
    } else {
        // Connection refused or reset, and protocol errors mid-exchange: the request did not
        // get a valid answer from the connection.
        ErrorKind::Connect
    };
    AttemptError {
        kind,
        message: chain_text(&causes),
    }
}

/// The causes' messages without repeats, leaving out reqwest's outermost one (it names the URL,
/// which the attempt already names).
fn chain_text(causes: &[&(dyn StdError + 'static)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in causes.iter().skip(1) {
        let text = cause.to_string();
        if !text.is_empty() && !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
    }
    if parts.is_empty()
        && let Some(outer) = causes.first()
    {
        parts.push(outer.to_string());
    }
    parts.join(": ")
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(nets: &[&str]) -> TargetPolicy {
        TargetPolicy {
            allow_private: false,
            allowed_nets: nets.iter().map(|n| n.parse().expect("net")).collect(),
        }
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test url")
    }

    fn install_provider() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[test]
    fn redirect_hops_pass_the_guard() {
        let open = policy(&["127.0.0.1/32"]);
        assert_eq!(
            redirect_decision(&open, &url("http://127.0.0.1:8080/next"), 1),
            RedirectDecision::Follow
        );
        assert_eq!(
            redirect_decision(&open, &url("https://example.com/"), 10),
            RedirectDecision::Follow
        );
        assert_eq!(
            redirect_decision(&open, &url("https://example.com/"), 11),
            RedirectDecision::TooMany
        );
        assert_eq!(
            redirect_decision(&open, &url("http://localhost:1/"), 1),
            RedirectDecision::Follow
        );
        assert!(matches!(
            redirect_decision(&TargetPolicy::default(), &url("http://localhost/"), 1),
            RedirectDecision::Blocked(_)
        ));
        for blocked in [
            "http://127.0.0.2/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(
                    redirect_decision(&open, &url(blocked), 1),
                    RedirectDecision::Blocked(_)
                ),
                "{blocked}"
            );
        }
    }

    #[tokio::test]
    async fn bodies_are_cut_at_64_kib() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..20)
            .map(|_| Ok(Bytes::from(vec![b'a'; 10_000])))
            .collect();
        let mut body = Vec::new();
        let mut truncated = false;
        capture_body(
            futures::stream::iter(chunks),
            MAX_STORED_RESPONSE_BODY,
            &mut body,
            &mut truncated,
        )
        .await
        .expect("reads");
        assert_eq!(body.len(), MAX_STORED_RESPONSE_BODY);
        assert!(truncated);
    }

    #[tokio::test]
    async fn a_body_of_exactly_the_limit_is_not_truncated() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from(vec![b'a'; 1024])),
            Ok(Bytes::from(vec![b'b'; 1024])),
            Ok(Bytes::new()),
        ];
        let mut body = Vec::new();
        let mut truncated = false;
        capture_body(
            futures::stream::iter(chunks),
            2048,
            &mut body,
            &mut truncated,
        )
        .await
        .expect("reads");
        assert_eq!(body.len(), 2048);
        assert!(!truncated);

        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from(vec![b'a'; 2048])),
            Ok(Bytes::from_static(b"x")),
        ];
        let mut body = Vec::new();
        capture_body(
            futures::stream::iter(chunks),
            2048,
            &mut body,
            &mut truncated,
        )
        .await
        .expect("reads");
        assert!(truncated);
    }

    #[test]
    fn a_cut_character_is_dropped_not_replaced() {
        let mut bytes = b"ab".to_vec();
        bytes.extend_from_slice(&"é".as_bytes()[..1]);
        assert_eq!(body_text(bytes.clone(), true), "ab");
        assert_eq!(body_text(bytes, false), "ab\u{fffd}");
        assert_eq!(body_text(vec![0xff, b'a'], true), "\u{fffd}a");
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut headers = HeaderMap::new();
        headers.append("Set-Cookie", "a=1".parse().expect("value"));
        headers.append("set-cookie", "b=2".parse().expect("value"));
        headers.insert("Content-Type", "text/plain".parse().expect("value"));
        let map = header_map(&headers);
        assert_eq!(map.get("set-cookie").map(String::as_str), Some("a=1, b=2"));
        assert_eq!(
            map.get("content-type").map(String::as_str),
            Some("text/plain")
        );
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let closed = GuardedResolver::new(TargetPolicy::default());
        let Err(error) = closed.resolve("localhost".parse().expect("name")).await else {
            panic!("localhost must be refused");
        };
        assert!(error.is::<BlockedTarget>(), "{error}");

        let open = GuardedResolver::new(policy(&["127.0.0.0/8", "::1/128"]));
        let addresses: Vec<SocketAddr> = open
            .resolve("localhost".parse().expect("name"))
            .await
            .expect("allowed")
            .collect();
        assert!(!addresses.is_empty());
    }

    fn outbound(url: String, timeout: Duration) -> Outbound {
        Outbound {
            method: reqwest::Method::GET,
            url: Destination::Unchecked(url),
            headers: HeaderMap::new(),
            body: None,
            timeout,
            follow_redirects: false,
        }
    }

    #[tokio::test]
    async fn checked_ahead_a_request_is_sent_as_checked_and_a_blocked_one_is_refused() {
        install_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let closed = HttpClients::new(&TargetPolicy::default()).expect("clients");
        let blocked = closed.check(outbound(
            format!("http://127.0.0.1:{port}/"),
            Duration::from_secs(1),
        ));
        assert!(
            matches!(blocked.url, Destination::Unchecked(_)),
            "a blocked URL is left for send to refuse"
        );
        let captured = closed.send(blocked).await;
        assert_eq!(
            captured.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::BlockedTarget)
        );
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "the target was contacted");

        let open = HttpClients::new(&TargetPolicy {
            allow_private: true,
            ..TargetPolicy::default()
        })
        .expect("clients");
        let checked = open.check(outbound(
            format!("http://127.0.0.1:{port}/checked"),
            Duration::from_secs(5),
        ));
        let Destination::Checked(url) = &checked.url else {
            panic!("a permitted URL is checked ahead");
        };
        assert_eq!(url.path(), "/checked");
        let serve = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = vec![0; 1024];
            let read = tokio::io::AsyncReadExt::read(&mut socket, &mut request)
                .await
                .expect("read");
            tokio::io::AsyncWriteExt::write_all(
                &mut socket,
                b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            )
            .await
            .expect("write");
            String::from_utf8_lossy(&request[..read]).into_owned()
        });
        let captured = open.send(checked).await;
        assert_eq!(captured.status, Some(204), "{captured:?}");
        let request = serve.await.expect("served");
        assert!(request.starts_with("GET /checked HTTP/1.1"), "{request}");
    }

    #[tokio::test]
    async fn a_host_name_resolving_to_loopback_is_never_dialled() {
        install_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let clients = HttpClients::new(&TargetPolicy::default()).expect("clients");
        // Straight to the client, past the literal check, so only the resolver guards.
        let error = clients
            .direct
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .expect_err("refused");
        assert_eq!(classify(&error).kind, ErrorKind::BlockedTarget);
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "the target was contacted");
    }

    #[tokio::test]
    async fn errors_are_classified() {
        install_provider();
        let open = TargetPolicy {
            allow_private: true,
            ..TargetPolicy::default()
        };
        let clients = HttpClients::new(&open).expect("clients");

        // Nothing listens: connect.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let captured = clients
            .send(outbound(
                format!("http://127.0.0.1:{port}/"),
                Duration::from_secs(5),
            ))
            .await;
        assert_eq!(
            captured.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::Connect),
            "{captured:?}"
        );

        // Accepts but never answers: timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let silent_port = silent.local_addr().expect("addr").port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let captured = clients
            .send(outbound(
                format!("http://127.0.0.1:{silent_port}/"),
                Duration::from_millis(200),
            ))
            .await;
        assert_eq!(
            captured.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::Timeout)
        );
        assert!(captured.total_ms >= 200);

        // TLS to a server that is not TLS: tls.
        let captured = clients
            .send(outbound(
                format!("https://127.0.0.1:{silent_port}/"),
                Duration::from_millis(300),
            ))
            .await;
        assert!(captured.error.is_some());
        hold.abort();

        // Unknown name: dns.
        let captured = clients
            .send(outbound(
                "http://does-not-exist.invalid/".to_owned(),
                Duration::from_secs(5),
            ))
            .await;
        assert_eq!(
            captured.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::Dns),
            "{captured:?}"
        );

        // A literal refused address never leaves: blocked.
        let closed = HttpClients::new(&TargetPolicy::default()).expect("clients");
        let captured = closed
            .send(outbound(
                "http://169.254.169.254/latest".to_owned(),
                Duration::from_secs(5),
            ))
            .await;
        assert_eq!(
            captured.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::BlockedTarget)
        );
    }

    #[tokio::test]
    async fn tls_failures_are_tls() {
        install_provider();
        let open = TargetPolicy {
            allow_private: true,
            ..TargetPolicy::default()
        };
        let clients = HttpClients::new(&open).expect("clients");
        // A server that answers plain HTTP garbage to a TLS hello.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let captured = clients
            .send(outbound(
                format!("https://127.0.0.1:{port}/"),
                Duration::from_secs(5),
            ))
            .await;
        server.abort();
        assert_eq!(
            captured.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::Tls),
            "{captured:?}"
        );
    }
}
