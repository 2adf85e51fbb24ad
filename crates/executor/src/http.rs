//! The outbound HTTP half of the executor: the guarded clients (SSRF-filtering resolver, redirect
//! policy), sending one attempt, capturing its response and classifying its errors.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cronhook_core::cache::BoundedCache;
use cronhook_core::net::TargetPolicy;
use cronhook_core::validate::validate_target_url;
use cronhook_core::{AttemptError, ErrorKind, MAX_STORED_RESPONSE_BODY};
use futures::{Stream, StreamExt};
use http_body_util::{BodyDataStream, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use url::Url;

/// The most redirect hops followed for a job with `follow_redirects`.
pub const MAX_REDIRECTS: usize = 10;
/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a pooled connection may stay idle.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// TCP keepalive of the direct client's connections: reqwest's defaults, which the client
/// that follows redirects keeps.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

type BoxError = Box<dyn StdError + Send + Sync>;

/// A target the SSRF guard refused: found again in an error's `source()` chain.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BlockedTarget(pub String);

/// More redirects than [`MAX_REDIRECTS`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("more than {MAX_REDIRECTS} redirects")]
pub struct TooManyRedirects;

/// A name that could not be resolved (or resolved to no address). Transparent: its text and
/// causes are the lookup's own.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DnsFailure(BoxError);

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

/// The addresses of `host` that `targets` permits: a [`DnsFailure`] when it has none, a
/// [`BlockedTarget`] when it has only refused ones.
async fn guarded_lookup(targets: &TargetPolicy, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
    let found: Vec<SocketAddr> = lookup(host).await.map_err(DnsFailure)?;
    let permitted: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|address| targets.permits(address.ip()))
        .collect();
    if permitted.is_empty() {
        let Some(first) = found.first() else {
            return Err(Box::new(DnsFailure(
                format!("{host} has no addresses").into(),
            )));
        };
        return Err(Box::new(BlockedTarget(format!(
            "{host} resolves to {}, a non-public address; cronhook refuses those unless the operator allows them",
            first.ip()
        ))));
    }
    Ok(permitted)
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let targets = self.targets.clone();
        Box::pin(async move {
            let permitted = guarded_lookup(&targets, name.as_str()).await?;
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// The same guard as the resolver of hyper's connector.
impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let targets = self.targets.clone();
        Box::pin(async move {
            let permitted = guarded_lookup(&targets, name.as_str()).await?;
            Ok(permitted.into_iter())
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

/// The direct client: hyper's pooled client, without reqwest's layers (its redirect and retry
/// services, URL conversions and header merging cost about a third of each request).
type DirectClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>,
    Full<Bytes>,
>;

/// Why the executor's clients cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the client that follows redirects")]
    Following(#[source] reqwest::Error),
    #[error("cannot set up TLS for the direct client")]
    Tls(#[source] rustls::Error),
}

/// The two pooled clients of an executor: one follows redirects through the guard (reqwest and
/// its redirect policy), one does not (hyper, the common case and the fast path).
pub(crate) struct HttpClients {
    following: reqwest::Client,
    direct: DirectClient,
    targets: TargetPolicy,
    /// URLs that passed [`check_url`], by their text. The check depends on nothing but the text
    /// and `targets`, and parsing the URL of an every-second job again for each attempt was ~2 %
    /// of the executor's CPU. Refusals are not kept: they are rare and their message is built
    /// fresh.
    checked: std::sync::Mutex<BoundedCache<String, CheckedUrl>>,
}

/// About the most memory, in bytes, the checked URLs take: ~100 000 URLs of 80 characters
/// (each kept as its text, the parsed URL and the request URI). The URLs not used for a minute
/// make room for new ones; a workspace churning through URLs costs parsing, never memory.
const CHECKED_URLS_BYTES: usize = 32 * 1024 * 1024;
/// The least time between two sweeps of the full cache of checked URLs: a job firing at least
/// this often keeps its URL checked.
const CHECKED_URLS_SWEEP: Duration = Duration::from_secs(60);
/// What a checked URL takes beside its three copies of the text.
const CHECKED_URL_OVERHEAD_BYTES: usize = 96;

impl HttpClients {
    pub(crate) fn new(targets: &TargetPolicy) -> Result<Self, ClientError> {
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
            following: build_client(targets, follow).map_err(ClientError::Following)?,
            direct: build_direct_client(targets).map_err(ClientError::Tls)?,
            targets: targets.clone(),
            checked: std::sync::Mutex::new(BoundedCache::new(
                CHECKED_URLS_BYTES,
                CHECKED_URLS_SWEEP,
            )),
        })
    }

    /// `text` parsed and checked against the target policy, once per distinct URL.
    fn checked_url(&self, text: &str) -> Result<CheckedUrl, AttemptError> {
        if let Some(checked) = self.lock_checked().get(text) {
            return Ok(checked.clone());
        }
        let checked = check_url(text, &self.targets)?;
        let weight = 3 * text.len() + CHECKED_URL_OVERHEAD_BYTES;
        self.lock_checked()
            .insert(text.to_owned(), checked.clone(), weight, Instant::now());
        Ok(checked)
    }

    fn lock_checked(&self) -> std::sync::MutexGuard<'_, BoundedCache<String, CheckedUrl>> {
        self.checked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The direct client, set up as reqwest sets up its own: the same certificate verifier (the
/// platform's), TLS versions, ALPN (h2, then HTTP/1.1), TCP options, timeouts and pool.
fn build_direct_client(targets: &TargetPolicy) -> Result<DirectClient, rustls::Error> {
    let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(targets.clone()));
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_keepalive_interval(Some(TCP_KEEPALIVE));
    http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    http.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https),
    )
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
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
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
    Checked(CheckedUrl),
}

/// A URL the target policy permits, with the request URI it makes.
#[derive(Clone)]
pub(crate) struct CheckedUrl {
    url: Url,
    uri: http::Uri,
}

/// The host (lowercase) and port of an http or https URL, the scheme's port when it names none.
/// Read with the `http` crate's URI parser, a fraction of the cost of the `url` crate's, which
/// the check before sending runs once per distinct URL anyway; the `url` crate's only when that
/// parser refuses the text.
pub(crate) fn host_and_port(text: &str) -> Option<(String, u16)> {
    // Compared without case and without a lowercase copy: this runs once per execution.
    let default_port = |scheme: &str| {
        if scheme.eq_ignore_ascii_case("http") {
            Some(80)
        } else if scheme.eq_ignore_ascii_case("https") {
            Some(443)
        } else {
            None
        }
    };
    match http::Uri::try_from(text) {
        Ok(uri) => {
            let port = uri.port_u16().or_else(|| default_port(uri.scheme_str()?))?;
            Some((uri.host()?.to_ascii_lowercase(), port))
        }
        Err(_) => {
            let url = Url::parse(text).ok()?;
            let port = url.port().or_else(|| default_port(url.scheme()))?;
            Some((url.host_str()?.to_owned(), port))
        }
    }
}

/// `text` parsed and checked against the target policy.
fn check_url(text: &str, targets: &TargetPolicy) -> Result<CheckedUrl, AttemptError> {
    let url = validate_target_url(text, "request.url", targets).map_err(|error| AttemptError {
        kind: ErrorKind::BlockedTarget,
        message: format!("request.url {}", error.message),
    })?;
    // A URL the url crate serialized is a valid URI; this is a second guard, not a case.
    let uri = http::Uri::try_from(url.as_str()).map_err(|error| AttemptError {
        kind: ErrorKind::Connect,
        message: format!("request.url is not a valid request URI: {error}"),
    })?;
    Ok(CheckedUrl { url, uri })
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
            && let Ok(checked) = self.checked_url(text)
        {
            if !request.follow_redirects {
                // Added here rather than at the instant, where the map could have to grow.
                add_direct_headers(&mut request.headers, &checked.uri);
            }
            request.url = Destination::Checked(checked);
        }
        request
    }

    /// Sends `request` and captures its answer. The timeout covers the whole exchange.
    pub(crate) async fn send(&self, request: Outbound) -> Captured {
        let started = Instant::now();
        let mut captured = Captured::default();
        // Parsed once, here or in `check` (which also added the direct client's headers).
        let (CheckedUrl { url, uri }, prepared) = match request.url {
            Destination::Checked(checked) => (checked, true),
            Destination::Unchecked(text) => match self.checked_url(&text) {
                Ok(checked) => (checked, false),
                Err(error) => {
                    captured.error = Some(error);
                    return captured;
                }
            },
        };
        let timeout = request.timeout;
        let body = request.body.unwrap_or_default();
        let outcome = if request.follow_redirects {
            let builder = self
                .following
                .request(request.method, url)
                .headers(request.headers)
                .body(body);
            let exchange = async {
                let response = builder.send().await.map_err(|error| classify(&error))?;
                capture(http::Response::from(response), started, &mut captured).await
            };
            tokio::time::timeout(timeout, exchange).await
        } else {
            let mut outgoing = http::Request::new(Full::new(body));
            let mut headers = request.headers;
            if !prepared {
                add_direct_headers(&mut headers, &uri);
            }
            *outgoing.method_mut() = request.method;
            *outgoing.uri_mut() = uri;
            *outgoing.headers_mut() = headers;
            let exchange = async {
                let response = self
                    .direct
                    .request(outgoing)
                    .await
                    .map_err(|error| classify(&error))?;
                capture(response, started, &mut captured).await
            };
            tokio::time::timeout(timeout, exchange).await
        };
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

/// The headers the direct client's request gets besides the job's and cronhook's: reqwest's
/// default `Accept` (so that both clients send the same request) and the `Host` that hyper-util
/// would otherwise add as it sends, computed as it does. Each is kept when present.
fn add_direct_headers(headers: &mut HeaderMap, uri: &http::Uri) {
    headers
        .entry(reqwest::header::ACCEPT)
        .or_insert(reqwest::header::HeaderValue::from_static("*/*"));
    if let reqwest::header::Entry::Vacant(vacant) = headers.entry(reqwest::header::HOST)
        && let Some(host) = host_header(uri)
    {
        vacant.insert(host);
    }
}

/// `Host` for `uri`: its host, with the port unless it is the scheme's default.
fn host_header(uri: &http::Uri) -> Option<reqwest::header::HeaderValue> {
    let authority = uri.authority()?;
    let host = authority.host();
    let secure = matches!(uri.scheme_str(), Some("https" | "wss"));
    let port = match authority.port_u16() {
        Some(443) if secure => None,
        Some(80) if !secure => None,
        port => port,
    };
    match port {
        None => reqwest::header::HeaderValue::from_str(host).ok(),
        // The authority as written is host and port, unless it carries credentials.
        Some(_) if !authority.as_str().contains('@') => {
            reqwest::header::HeaderValue::from_str(authority.as_str()).ok()
        }
        Some(port) => reqwest::header::HeaderValue::from_str(&format!("{host}:{port}")).ok(),
    }
}

/// Captures a response as it arrives: status, headers, redirect target, `Retry-After`, and the
/// body into `captured` (so a timeout keeps what was read).
async fn capture<B>(
    response: http::Response<B>,
    started: Instant,
    captured: &mut Captured,
) -> Result<(), AttemptError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: StdError + Send + Sync + 'static,
{
    captured.ttfb_ms = Some(millis(started.elapsed()));
    let (head, body) = response.into_parts();
    let status = head.status.as_u16();
    captured.status = Some(status);
    captured.headers = header_map(&head.headers);
    if (300..400).contains(&status) {
        captured.location = captured.headers.get("location").cloned();
    }
    if status == 429 || status == 503 {
        let now = chrono::Utc::now().timestamp();
        captured.retry_after = head
            .headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| cronhook_core::retry::parse_retry_after(value, now));
    }
    let mut text = Vec::new();
    let result = capture_body(
        BodyDataStream::new(body),
        MAX_STORED_RESPONSE_BODY,
        &mut text,
        &mut captured.truncated,
    )
    .await;
    captured.body = Some(body_text(text, captured.truncated));
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
    // Nearly every body is UTF-8 already: taken as it is, not copied.
    String::from_utf8(body)
        .unwrap_or_else(|not_utf8| String::from_utf8_lossy(not_utf8.as_bytes()).into_owned())
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

/// The attempt error a failed request stands for (reqwest's, hyper's, or a body's), found by
/// walking its causes.
pub(crate) fn classify(error: &(dyn StdError + 'static)) -> AttemptError {
    let causes = causes(error);
    let (mut tls, mut timeout, mut dns) = (false, false, false);
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
        tls |= cause.is::<rustls::Error>();
        dns |= cause.is::<DnsFailure>();
        timeout |= cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || cause
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_timeout);
    }
    let kind = if timeout {
        ErrorKind::Timeout
    } else if tls {
        ErrorKind::Tls
    } else if dns {
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

/// The causes' messages without repeats, leaving out the outermost one (reqwest's names the URL,
/// which the attempt already names; hyper's says only "client error").
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

    #[test]
    fn hosts_are_named_by_host_and_port() {
        let cases = [
            ("http://Example.COM/path?q=1", Some(("example.com", 80))),
            ("https://api.example.com/", Some(("api.example.com", 443))),
            (
                "HTTPS://api.example.com:8443/hook",
                Some(("api.example.com", 8443)),
            ),
            ("http://127.0.0.1:9000", Some(("127.0.0.1", 9000))),
            ("http://[::1]:8080/", Some(("[::1]", 8080))),
            // Refused by the URI parser, read by the url crate's.
            (
                "http://bücher.example/",
                Some(("xn--bcher-kva.example", 80)),
            ),
            ("ftp://files.example.com/", None),
            ("/relative/path", None),
            ("not a url", None),
        ];
        for (url, expected) in cases {
            let found = host_and_port(url);
            assert_eq!(
                found.as_ref().map(|(host, port)| (host.as_str(), *port)),
                expected,
                "{url}"
            );
        }
    }

    #[test]
    fn the_host_header_is_the_host_with_a_port_other_than_the_default() {
        for (uri, host) in [
            ("http://127.0.0.1:8080/hook", "127.0.0.1:8080"),
            ("http://example.com/", "example.com"),
            ("http://example.com:80/", "example.com"),
            ("https://example.com:443/", "example.com"),
            ("https://example.com:80/", "example.com:80"),
            ("http://example.com:443/", "example.com:443"),
            ("http://[::1]:9000/", "[::1]:9000"),
            ("http://user:secret@example.com:8080/", "example.com:8080"),
            ("https://user@example.com/", "example.com"),
        ] {
            let uri: http::Uri = uri.parse().expect("test uri");
            assert_eq!(
                host_header(&uri).as_ref().map(|value| value.to_str().ok()),
                Some(Some(host)),
                "{uri}"
            );
        }
    }

    #[test]
    fn direct_headers_are_added_once_and_never_replace() {
        let uri: http::Uri = "http://127.0.0.1:8080/hook".parse().expect("test uri");
        let mut headers = HeaderMap::new();
        add_direct_headers(&mut headers, &uri);
        add_direct_headers(&mut headers, &uri);
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert_eq!(headers[reqwest::header::ACCEPT], "*/*");
        assert_eq!(headers[reqwest::header::HOST], "127.0.0.1:8080");

        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        add_direct_headers(&mut headers, &uri);
        assert_eq!(headers[reqwest::header::ACCEPT], "application/json");
        assert_eq!(headers.len(), 2, "{headers:?}");
    }

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

    /// Accepts one connection, reads one request (head and `content-length` body) and answers
    /// `answer`; gives back the request's lines, lowercased names, sorted.
    async fn serve_once(listener: tokio::net::TcpListener, answer: &'static [u8]) -> Vec<String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        let head_end = loop {
            let read = socket.read(&mut buffer).await.expect("read");
            assert!(read > 0, "the request ended early");
            request.extend_from_slice(&buffer[..read]);
            if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().expect("length"))
            })
            .unwrap_or(0);
        while request.len() < head_end + length {
            let read = socket.read(&mut buffer).await.expect("read body");
            assert!(read > 0, "the body ended early");
            request.extend_from_slice(&buffer[..read]);
        }
        socket.write_all(answer).await.expect("write");
        let mut lines: Vec<String> = head
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| match line.split_once(':') {
                Some((name, value)) => format!("{}:{value}", name.to_ascii_lowercase()),
                None => line.to_owned(),
            })
            .collect();
        lines.push(String::from_utf8_lossy(&request[head_end..]).into_owned());
        lines.sort();
        lines
    }

    #[tokio::test]
    async fn both_clients_send_the_same_request_and_capture_the_same_answer() {
        install_provider();
        let clients = HttpClients::new(&TargetPolicy {
            allow_private: true,
            ..TargetPolicy::default()
        })
        .expect("clients");
        let answer: &'static [u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\nx-one: a\r\nx-one: b\r\ncontent-length: 5\r\n\r\nbusy!";
        let mut seen = Vec::new();
        for follow_redirects in [false, true] {
            for body in [None, Some(Bytes::from_static(b"{\"a\":1}"))] {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let port = listener.local_addr().expect("addr").port();
                let serve = tokio::spawn(serve_once(listener, answer));
                let mut headers = HeaderMap::new();
                headers.insert("x-job", "yes".parse().expect("value"));
                let request = clients.check(Outbound {
                    method: if body.is_some() {
                        reqwest::Method::POST
                    } else {
                        reqwest::Method::GET
                    },
                    url: Destination::Unchecked(format!("http://127.0.0.1:{port}/path?q=1")),
                    headers,
                    body: body.clone(),
                    timeout: Duration::from_secs(5),
                    follow_redirects,
                });
                let captured = clients.send(request).await;
                let mut lines = serve.await.expect("served");
                // The port differs from one listener to the next.
                for line in &mut lines {
                    *line = line.replace(&port.to_string(), "PORT");
                }
                assert_eq!(captured.status, Some(503), "{captured:?}");
                assert_eq!(captured.body.as_deref(), Some("busy!"));
                assert_eq!(
                    captured.headers.get("x-one").map(String::as_str),
                    Some("a, b")
                );
                assert_eq!(captured.retry_after, Some(Duration::from_secs(7)));
                assert!(captured.error.is_none(), "{captured:?}");
                seen.push((follow_redirects, body.is_some(), lines));
            }
        }
        let (direct, following): (Vec<_>, Vec<_>) =
            seen.into_iter().partition(|(follow, _, _)| !follow);
        for ((_, with_body, direct), (_, _, following)) in direct.iter().zip(&following) {
            assert_eq!(direct, following, "body: {with_body}");
            assert!(
                direct.iter().any(|line| line == "host: 127.0.0.1:PORT"),
                "{direct:?}"
            );
            assert!(direct.iter().any(|line| line == "x-job: yes"), "{direct:?}");
            assert_eq!(
                direct
                    .iter()
                    .any(|line| line.starts_with("content-length:")),
                *with_body,
                "{direct:?}"
            );
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
        assert_eq!(url.url.path(), "/checked");
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
    async fn a_url_is_parsed_once_and_a_refused_one_each_time() {
        install_provider();
        let open = HttpClients::new(&TargetPolicy {
            allow_private: true,
            ..TargetPolicy::default()
        })
        .expect("clients");
        let text = "http://127.0.0.1:9/hook?from=cronhook";
        let first = open.checked_url(text).expect("permitted");
        let again = open.checked_url(text).expect("permitted");
        assert_eq!(first.url, again.url);
        assert_eq!(first.uri, again.uri);
        assert_eq!(
            again.uri.path_and_query().map(|p| p.as_str()),
            Some("/hook?from=cronhook")
        );
        assert_eq!(open.lock_checked().len(), 1);

        let closed = HttpClients::new(&TargetPolicy::default()).expect("clients");
        for _ in 0..2 {
            let refused = closed.checked_url(text).err().expect("a private address");
            assert_eq!(refused.kind, ErrorKind::BlockedTarget);
        }
        assert!(closed.lock_checked().is_empty(), "a refusal is not kept");

        // Each URL weighs its three copies of the text; the bound is on their bytes (the
        // policy when full is `BoundedCache`'s, tested there).
        let weight = |text: &str| 3 * text.len() + CHECKED_URL_OVERHEAD_BYTES;
        let urls: Vec<String> = (0..100)
            .map(|n| format!("http://127.0.0.1:9/{n}"))
            .collect();
        for url in urls.iter().chain(&urls) {
            open.checked_url(url).expect("permitted");
        }
        let cache = open.lock_checked();
        assert_eq!(cache.len(), 101, "hits add nothing");
        assert_eq!(
            cache.weight(),
            weight(text) + urls.iter().map(|url| weight(url)).sum::<usize>()
        );
        assert_eq!(cache.capacity(), CHECKED_URLS_BYTES);
    }

    #[tokio::test]
    async fn a_host_name_resolving_to_loopback_is_never_dialled() {
        install_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let clients = HttpClients::new(&TargetPolicy::default()).expect("clients");
        // Straight to the clients, past the literal check, so only the resolvers guard.
        let error = clients
            .following
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .expect_err("refused");
        assert_eq!(classify(&error).kind, ErrorKind::BlockedTarget);
        let uri: http::Uri = format!("http://localhost:{port}/").parse().expect("uri");
        let error = clients.direct.get(uri).await.expect_err("refused");
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
