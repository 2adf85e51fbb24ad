//! Issue 8, end to end: the SSRF guard, response limits, secrets at rest, signing-secret rotation,
//! API key scopes and revocation, the per-workspace rate limit and delivery cap, the per-host
//! delivery cap, the route × workspace matrix and a fuzz run of the API's JSON inputs.
//! Everything runs on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cronhook_tests::{Api, Cronhook, ServeOptions, Target, instant, json, signature_is_valid};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn job(name: &str, url: &str) -> Value {
    json!({
        "name": name,
        "schedule": {"cron": "0 0 1 1 *"},
        "request": {"method": "POST", "url": url, "body": "{}", "timeout_ms": 5000},
        "retry": {"max_attempts": 1},
    })
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

async fn run(api: &Api, job_id: &str) -> Value {
    let reply = api
        .call("POST", &format!("/api/v1/jobs/{job_id}/run"), None)
        .await;
    assert_eq!(reply.status, 202, "run: {reply:?}");
    api.wait_final(&id(&reply.body), Duration::from_secs(30))
        .await
}

/// Accepts connections and counts them, answering nothing.
async fn counting_listener(address: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(address).await.expect("bind");
    let local = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (local, count)
}

/// A raw HTTP server: reads the request head, then lets `answer` write whatever it likes. Counts
/// the bytes it managed to write in `written`.
async fn raw_server<F, Fut>(answer: F) -> (SocketAddr, Arc<AtomicU64>)
where
    F: Fn(tokio::net::TcpStream, Arc<AtomicU64>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                answer(socket, counter).await;
            });
        }
    });
    (address, written)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_loopback_spelling_is_refused_at_definition_and_never_contacted() {
    let cronhook = Cronhook::start(ServeOptions {
        allow_private_targets: false,
        ..ServeOptions::default()
    })
    .await;
    let (address, contacted) = counting_listener("127.0.0.1:0").await;
    let port = address.port();
    let api = cronhook.api("acme");
    let spellings = [
        "0x7f.1",
        "2130706433",
        "0177.0.0.1",
        "127.1",
        "0x7f000001",
        "[::ffff:7f00:1]",
        "[::ffff:127.0.0.1]",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "localhost",
        "localhost.",
        "LOCALHOST",
        "ｌｏｃａｌｈｏｓｔ",
        "ＬＯＣＡＬＨＯＳＴ",
        "xn--localhost-",
        "0.0.0.0",
        "0",
        "169.254.169.254",
    ];
    let valid = api.create_job(job("valid", "https://example.com/x")).await;
    for spelling in spellings {
        let url = format!("http://{spelling}:{port}/x");
        let reply = api
            .call("POST", "/api/v1/jobs", Some(job("loopback", &url)))
            .await;
        assert_eq!(reply.status, 422, "{url}: {reply:?}");
        assert_eq!(reply.body["field"], "request.url", "{url}: {reply:?}");
        assert!(reply.content_type.starts_with("application/problem+json"));
        // Changing an existing job to it is refused the same way.
        let patched = api
            .call(
                "PATCH",
                &format!("/api/v1/jobs/{}", id(&valid)),
                Some(json!({"request": {"url": url}})),
            )
            .await;
        assert_eq!(patched.status, 422, "patch {url}: {patched:?}");
    }
    // User info is refused too, whatever the host.
    let reply = api
        .call(
            "POST",
            "/api/v1/jobs",
            Some(job("userinfo", "http://user:pass@example.com/")),
        )
        .await;
    assert_eq!(reply.status, 422, "{reply:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        contacted.load(Ordering::SeqCst),
        0,
        "loopback was contacted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_from_an_allowed_target_to_loopback_is_blocked_at_the_hop() {
    // 127.0.0.1 is allowed by the operator; 127.0.0.2 (loopback too) is not.
    let (blocked, contacted) = counting_listener("127.0.0.2:0").await;
    let location = format!("http://127.0.0.2:{}/metadata", blocked.port());
    let (redirector, _) = raw_server(move |mut socket, _| {
        let location = location.clone();
        async move {
            let answer = format!(
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    })
    .await;
    let cronhook = Cronhook::start(ServeOptions {
        allow_private_targets: false,
        extra_args: vec!["--allowed-target-nets".into(), "127.0.0.1/32".into()],
        ..ServeOptions::default()
    })
    .await;
    let api = cronhook.api("acme");
    let mut spec = job("redirects", &format!("http://{redirector}/start"));
    spec["request"]["follow_redirects"] = json!(true);
    let created = api.create_job(spec).await;
    let execution = run(&api, &id(&created)).await;
    assert_eq!(execution["status"], "failed", "{execution}");
    let error = &execution["attempts"][0]["error"];
    assert_eq!(error["kind"], "blocked_target", "{execution}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("redirect hop 1"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(contacted.load(Ordering::SeqCst), 0, "the hop was followed");
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_variables_in_the_environment_are_ignored() {
    let (proxy, proxied) = counting_listener("127.0.0.1:0").await;
    let proxy_url = format!("http://{proxy}");
    let cronhook = Cronhook::start(ServeOptions {
        allow_private_targets: true,
        extra_env: [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ]
        .into_iter()
        .map(|name| (name.to_owned(), proxy_url.clone()))
        .chain([("NO_PROXY".to_owned(), String::new())])
        .collect(),
        ..ServeOptions::default()
    })
    .await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let created = api.create_job(job("direct", &target.url("/direct"))).await;
    let execution = run(&api, &id(&created)).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert_eq!(target.received("/direct").len(), 1);
    assert_eq!(proxied.load(Ordering::SeqCst), 0, "the proxy was used");
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_and_endless_bodies_are_cut_at_64_kib_and_memory_stays_flat() {
    const GIB: u64 = 1 << 30;
    let chunk = vec![b'a'; 64 * 1024];
    let huge_chunk = chunk.clone();
    let (huge, huge_written) = raw_server(move |mut socket, written| {
        let chunk = huge_chunk.clone();
        async move {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {GIB}\r\n\r\n");
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut sent = 0u64;
            while sent < GIB {
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len() as u64;
                written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
    })
    .await;
    let (endless, endless_written) = raw_server(move |mut socket, written| {
        let chunk = chunk.clone();
        async move {
            if socket
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            let frame = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            loop {
                if socket.write_all(&frame).await.is_err() {
                    return;
                }
                written.fetch_add(frame.len() as u64, Ordering::SeqCst);
            }
        }
    })
    .await;
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let pid = cronhook.pid().expect("pid");
    let api = cronhook.api("acme");
    let huge_job = api
        .create_job(job("huge", &format!("http://{huge}/")))
        .await;
    let endless_job = api
        .create_job(job("endless", &format!("http://{endless}/")))
        .await;
    // Warm up (allocator, pools), then measure over several more.
    run(&api, &id(&huge_job)).await;
    let before = rss_kib(pid);
    for _ in 0..3 {
        for job in [&huge_job, &endless_job] {
            let execution = run(&api, &id(job)).await;
            let attempt = &execution["attempts"][0];
            assert_eq!(execution["status"], "succeeded", "{execution}");
            assert_eq!(attempt["response_body_truncated"], true);
            let body = attempt["response_body"].as_str().expect("body");
            assert_eq!(body.len(), 64 * 1024);
        }
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 50 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The rest was dropped, not drained: the servers could write only what the socket buffers
    // held once cronhook stopped reading.
    for (name, written) in [("1 GiB", &huge_written), ("endless", &endless_written)] {
        let written = written.load(Ordering::SeqCst);
        assert!(written < 256 << 20, "{name}: {written} bytes were read");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_drip_body_ends_at_the_timeout() {
    let (drip, _) = raw_server(|mut socket, _| async move {
        if socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if socket.write_all(b"x").await.is_err() {
                return;
            }
        }
    })
    .await;
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let api = cronhook.api("acme");
    let mut spec = job("drip", &format!("http://{drip}/"));
    spec["request"]["timeout_ms"] = json!(1000);
    let created = api.create_job(spec).await;
    let started = Instant::now();
    let execution = run(&api, &id(&created)).await;
    let attempt = &execution["attempts"][0];
    assert_eq!(attempt["error"]["kind"], "timeout", "{execution}");
    let duration = attempt["duration_ms"].as_u64().expect("duration");
    assert!((1000..2500).contains(&duration), "took {duration} ms");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn reserved_headers_are_refused() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let api = cronhook.api("acme");
    for name in [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "webhook-id",
        "Webhook-Signature",
    ] {
        let mut spec = job("headers", "https://example.com/");
        spec["request"]["headers"] = json!({ name: "x" });
        let reply = api.call("POST", "/api/v1/jobs", Some(spec)).await;
        assert_eq!(reply.status, 422, "{name}: {reply:?}");
        assert_eq!(reply.body["field"], format!("request.headers.{name}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_rotation_requests_carry_both_signatures_each_verifying_with_its_secret() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let old = api.call("GET", "/api/v1/workspace", None).await.body["signing_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let rotated = api
        .call("POST", "/api/v1/workspace/rotate-signing-secret", None)
        .await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let new = rotated.body["signing_secret"]
        .as_str()
        .expect("new")
        .to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated.body["previous_signing_secret"], old.as_str());

    // Executors cache a workspace for up to 5 s; a job created now runs after that.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let created = api.create_job(job("signed", &target.url("/signed"))).await;
    let execution = run(&api, &id(&created)).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    let request = target.received("/signed").pop().expect("received");
    let msg_id = request.header("webhook-id").expect("id");
    let timestamp = request.header("webhook-timestamp").expect("timestamp");
    let header = request.header("webhook-signature").expect("signature");
    let signatures: Vec<&str> = header.split(' ').collect();
    assert_eq!(signatures.len(), 2, "{header}");
    assert!(signature_is_valid(
        &new,
        msg_id,
        timestamp,
        &request.body,
        signatures[0]
    ));
    assert!(!signature_is_valid(
        &old,
        msg_id,
        timestamp,
        &request.body,
        signatures[0]
    ));
    assert!(signature_is_valid(
        &old,
        msg_id,
        timestamp,
        &request.body,
        signatures[1]
    ));
    assert!(!signature_is_valid(
        &new,
        msg_id,
        timestamp,
        &request.body,
        signatures[1]
    ));
    // The README's verifier accepts the request with either secret.
    let now = timestamp.parse::<i64>().expect("timestamp");
    for secret in [&new, &old] {
        assert!(
            crate::signature_readme::verify(secret, msg_id, timestamp, &request.body, header, now)
                .is_ok()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_are_scoped_checked_shown_once_and_revoked_at_once() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let admin = cronhook.api("acme");
    let with_scope = |scope: &str| {
        let (ok, stdout, stderr) = cronhook.cli(
            &["keys", "create", "--workspace", "acme", "--scope", scope],
            None,
        );
        assert!(ok, "{stderr}");
        Api {
            key: stdout.trim().to_owned(),
            ..admin.clone()
        }
    };
    let read = with_scope("read");
    let write = with_scope("write");
    assert!(
        read.key.starts_with("chk_") && read.key.len() == 50,
        "{}",
        read.key
    );

    assert_eq!(read.call("GET", "/api/v1/jobs", None).await.status, 200);
    let refused = read
        .call(
            "POST",
            "/api/v1/jobs",
            Some(job("r", "https://example.com/")),
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.content_type.starts_with("application/problem+json"));
    assert_eq!(
        write
            .call(
                "POST",
                "/api/v1/jobs",
                Some(job("w", "https://example.com/"))
            )
            .await
            .status,
        201
    );
    assert_eq!(write.call("GET", "/api/v1/keys", None).await.status, 403);

    // Typos and truncations are refused as malformed, before any lookup.
    let mut typo = admin.key.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    for broken in [
        String::from_utf8(typo).expect("ascii"),
        admin.key[..admin.key.len() - 1].to_owned(),
    ] {
        let reply = Api {
            key: broken,
            ..admin.clone()
        }
        .call("GET", "/api/v1/jobs", None)
        .await;
        assert_eq!(reply.status, 401);
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("malformed"),
            "{reply:?}"
        );
    }

    // Created through the API: shown once, listed without the key.
    let created = admin
        .call(
            "POST",
            "/api/v1/keys",
            Some(json!({"name": "deploy", "scope": "write"})),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let key = created.body["key"].as_str().expect("key").to_owned();
    let key_id = created.body["api_key"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deploy = Api {
        key: key.clone(),
        ..admin.clone()
    };
    assert_eq!(deploy.call("GET", "/api/v1/jobs", None).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = admin.call("GET", "/api/v1/keys", None).await;
    assert_eq!(listed.status, 200);
    assert!(!listed.body.to_string().contains(&key), "the key is listed");
    let entry = listed.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(entry["scope"], "write");
    assert!(entry["last_used_at"].is_string(), "{entry}");
    assert!(entry["revoked_at"].is_null());

    // Revoked: refused from the next request on (well within 5 s).
    let revoked = admin
        .call("DELETE", &format!("/api/v1/keys/{key_id}"), None)
        .await;
    assert_eq!(revoked.status, 204, "{revoked:?}");
    let reply = deploy.call("GET", "/api/v1/jobs", None).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(
        admin
            .call("DELETE", &format!("/api/v1/keys/{key_id}"), None)
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_rate_limit_is_per_workspace() {
    let cronhook = Cronhook::start(ServeOptions {
        extra_args: vec![
            "--api-rate-limit".into(),
            "1".into(),
            "--api-rate-burst".into(),
            "5".into(),
        ],
        ..ServeOptions::default()
    })
    .await;
    let noisy = cronhook.api("noisy");
    let quiet = cronhook.api("quiet");
    let mut limited = None;
    for _ in 0..10 {
        let reply = noisy.call("GET", "/api/v1/jobs", None).await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200);
    }
    let limited = limited.expect("the noisy workspace was limited");
    assert!(limited.content_type.starts_with("application/problem+json"));
    let retry_after = noisy
        .http
        .get(format!("{}/api/v1/jobs", noisy.base_url))
        .bearer_auth(&noisy.key)
        .send()
        .await
        .expect("sent");
    assert_eq!(retry_after.status().as_u16(), 429);
    let seconds: u64 = retry_after.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&seconds));
    assert_eq!(quiet.call("GET", "/api/v1/jobs", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_workspaces_hanging_targets_do_not_delay_another_workspaces_job() {
    let (hang, _) = raw_server(|socket, _| async move {
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(socket);
    })
    .await;
    let cronhook = Cronhook::start(ServeOptions {
        extra_args: vec![
            "--max-in-flight".into(),
            "20".into(),
            "--max-in-flight-per-workspace".into(),
            "5".into(),
        ],
        ..ServeOptions::default()
    })
    .await;
    let slow = cronhook.api("slow");
    let fast = cronhook.api("fast");
    let target = Target::start().await;
    hang_every_second(&slow, hang, 50).await;
    ticks_on_time(&fast, &target, "the slow workspace's").await;
}

/// Makes `count` jobs of `api`'s workspace call `hang` every second with a minute's timeout,
/// and lets them fire for 2 s.
async fn hang_every_second(api: &Api, hang: SocketAddr, count: usize) {
    for n in 0..count {
        let mut spec = job(&format!("hang-{n}"), &format!("http://{hang}/"));
        spec["schedule"] = json!({"cron": "* * * * * *"});
        spec["request"]["timeout_ms"] = json!(60_000);
        api.create_job(spec).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Makes a job of `api`'s workspace call `target`'s `/tick` every second and checks that over
/// 4.5 s it fired at least 3 times, each time less than a second late: it did not wait behind
/// `hanging` (the jobs whose requests hang).
async fn ticks_on_time(api: &Api, target: &Target, hanging: &str) {
    let mut spec = job("tick", &target.url("/tick"));
    spec["schedule"] = json!({"cron": "* * * * * *"});
    api.create_job(spec).await;
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let received = target.received("/tick");
    assert!(
        received.len() >= 3,
        "fired {} times in 4.5 s",
        received.len()
    );
    for request in &received {
        let scheduled = instant(&json!(
            request.header("cronhook-scheduled-for").expect("header")
        ));
        let lag = request.at - scheduled;
        assert!(
            lag < chrono::Duration::milliseconds(1_000),
            "the tick job waited {lag} behind {hanging} jobs"
        );
    }
}

/// Accepts connections, counts them and holds them open, answering nothing.
async fn hanging_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let local = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (local, count)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_host_takes_only_its_slots_of_the_workspace() {
    let (hang, connections) = hanging_listener().await;
    let cronhook = Cronhook::start(ServeOptions {
        extra_args: vec![
            "--max-in-flight-per-workspace".into(),
            "20".into(),
            "--max-in-flight-per-host".into(),
            "5".into(),
        ],
        ..ServeOptions::default()
    })
    .await;
    let api = cronhook.api("acme");
    let target = Target::start().await;
    // More than the workspace's 20 slots: without the host's cap they would hold them all.
    hang_every_second(&api, hang, 30).await;
    ticks_on_time(&api, &target, "the hanging host's").await;
    // One request in flight per connection: the hanging host never saw more than its cap.
    assert_eq!(connections.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_secret_is_nowhere_but_at_the_target() {
    let canary = format!(
        "canary-{:x}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    );
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let mut answers: Vec<String> = Vec::new();
    let mut spec = job("canary", &target.url("/canary"));
    spec["request"]["headers"] = json!({
        "Authorization": format!("Bearer {canary}"),
        "X-Api-Key": format!("{canary}-key"),
    });
    let created = api.call("POST", "/api/v1/jobs", Some(spec)).await;
    assert_eq!(created.status, 201, "{created:?}");
    answers.push(created.body.to_string());
    let job_id = id(&created.body);
    let execution = run(&api, &job_id).await;
    answers.push(execution.to_string());
    // A client sending back the masked value keeps the secret; the target still gets it.
    let masked = created.body["request"]["headers"]["Authorization"].clone();
    assert!(
        masked.as_str().is_some_and(|m| m.starts_with("••••")),
        "{masked}"
    );
    let patched = api
        .call(
            "PATCH",
            &format!("/api/v1/jobs/{job_id}"),
            Some(json!({"name": "canary-2", "request": {"headers": {"Authorization": masked}}})),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    answers.push(patched.body.to_string());
    answers.push(run(&api, &job_id).await.to_string());
    for path in [
        format!("/api/v1/jobs/{job_id}"),
        "/api/v1/jobs".to_owned(),
        format!("/api/v1/jobs/{job_id}/executions"),
        "/api/v1/workspace".to_owned(),
        "/api/v1/keys".to_owned(),
        "/metrics".to_owned(),
    ] {
        answers.push(api.call("GET", &path, None).await.body.to_string());
    }
    let received = target.received("/canary");
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {canary}").as_str())
        );
    }
    for answer in &answers {
        assert!(
            !answer.contains(&canary),
            "an API answer holds the secret: {answer}"
        );
    }
    // On disk: the database, its WAL, anything in the data directory; and the log.
    let data_dir = cronhook.data_dir.clone();
    let scan = |when: &str| {
        for entry in std::fs::read_dir(&data_dir).expect("data dir") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                let bytes = std::fs::read(&path).expect("read");
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&canary),
                    "{when}: {} holds the secret",
                    path.display()
                );
            }
        }
    };
    scan("running");
    assert!(
        cronhook.data_dir.join("secret.key").exists(),
        "the master key was generated beside the database"
    );
    let mut cronhook = cronhook;
    cronhook.signal("TERM");
    cronhook.wait_exit(Duration::from_secs(40)).await;
    scan("stopped");
    assert!(
        !cronhook.log().contains(&canary),
        "the log holds the secret"
    );
}

/// Substitutes workspace A's real ids into every documented route and calls it with workspace
/// B's admin key: every route that names an object answers 404, and the others show B's own
/// (empty) data, never A's.
#[tokio::test(flavor = "multi_thread")]
async fn every_api_route_answers_404_to_another_workspaces_ids() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let owner = cronhook.api("owner");
    let stranger = cronhook.api("stranger");
    let created = owner.create_job(job("owned", &target.url("/owned"))).await;
    let job_id = id(&created);
    let execution = run(&owner, &job_id).await;
    let execution_id = id(&execution);
    let key = owner
        .call("POST", "/api/v1/keys", Some(json!({"name": "k"})))
        .await;
    let key_id = key.body["api_key"]["id"]
        .as_str()
        .expect("key id")
        .to_owned();
    let mut ids: BTreeMap<&str, String> = BTreeMap::from([
        ("jobs", job_id.clone()),
        ("executions", execution_id.clone()),
        ("keys", key_id.clone()),
    ]);
    let channel = owner
        .call(
            "POST",
            "/api/v1/channels",
            Some(json!({"name": "ops", "type": "email", "to": ["ops@example.com"]})),
        )
        .await;
    if channel.status == 201 {
        ids.insert("channels", id(&channel.body));
    }

    let document = reqwest::get(format!("{}/api/v1/openapi.json", cronhook.url("")))
        .await
        .expect("document")
        .json::<Value>()
        .await
        .expect("json");
    let paths = document["paths"].as_object().expect("paths");
    let mut walked = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            walked += 1;
            let body = matches!(method, "post" | "put" | "patch").then(|| json!({}));
            if path.contains('{') {
                let resource = path
                    .trim_start_matches("/api/v1/")
                    .split('/')
                    .next()
                    .unwrap_or_default();
                let Some(real) = ids.get(resource) else {
                    panic!(
                        "{method} {path}: the matrix has no id of another workspace for `{resource}`"
                    );
                };
                let concrete = path.replace("{id}", real);
                let reply = stranger.call(&method.to_uppercase(), &concrete, body).await;
                assert_eq!(reply.status, 404, "{method} {concrete}: {reply:?}");
                assert!(reply.content_type.starts_with("application/problem+json"));
            } else {
                let reply = stranger.call(&method.to_uppercase(), path, body).await;
                assert!(
                    ![401, 403, 405, 500].contains(&reply.status),
                    "{method} {path}: {reply:?}"
                );
                let text = reply.body.to_string();
                for owned in ids.values() {
                    assert!(
                        !text.contains(owned.as_str()),
                        "{method} {path} shows {owned}"
                    );
                }
            }
        }
    }
    assert!(walked >= 14, "walked {walked} operations");
    // The owner still has everything (the stranger's calls changed nothing).
    assert_eq!(
        owner
            .call("GET", &format!("/api/v1/jobs/{job_id}"), None)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_master_key_rotates_online_and_postgres_needs_a_configured_key() {
    let mut cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let api = cronhook.api("acme");
    let mut spec = job("rotated", &target.url("/rotated"));
    spec["request"]["headers"] = json!({"Authorization": "Bearer rotate-me-please"});
    let created = api.create_job(spec).await;
    let key_file = cronhook.data_dir.join("secret.key");
    let before = std::fs::read_to_string(&key_file).expect("key file");
    assert_eq!(before.lines().count(), 1);

    let (ok, stdout, stderr) = cronhook.cli(&["secrets", "rotate-key"], None);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&key_file.display().to_string()), "{stdout}");
    let after = std::fs::read_to_string(&key_file).expect("key file");
    let lines: Vec<&str> = after.lines().collect();
    assert_eq!(lines.len(), 2, "new key first, old key second");
    assert_eq!(lines[1], before.trim());

    // Online: the running process (old key) still sends the secret; so does a restart (new).
    assert_eq!(run(&api, &id(&created)).await["status"], "succeeded");
    cronhook.restart().await;
    assert_eq!(run(&api, &id(&created)).await["status"], "succeeded");
    let (ok, _, stderr) = cronhook.cli(&["secrets", "rotate-key", "--finish"], None);
    assert!(ok, "{stderr}");
    // With the new key alone, the secret still opens after the old wraps are gone.
    let (ok, _, stderr) = cronhook.cli(
        &[
            "--secret-key",
            lines[0],
            "keys",
            "create",
            "--workspace",
            "acme",
        ],
        None,
    );
    assert!(ok, "{stderr}");
    cronhook.restart().await;
    assert_eq!(run(&api, &id(&created)).await["status"], "succeeded");
    for request in target.received("/rotated") {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer rotate-me-please")
        );
    }

    // PostgreSQL without CRONHOOK_SECRET_KEY: refused before connecting, with the reason.
    let output = std::process::Command::new(cronhook_tests::cronhook_binary())
        .args(["migrate"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env_remove("CRONHOOK_SECRET_KEY")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CRONHOOK_SECRET_KEY"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_secret_never_reaches_an_alert() {
    let canary = format!("canary-alert-{:x}", std::process::id());
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    target.respond("/failing", &[500], Duration::ZERO);
    let api = cronhook.api("acme");
    let channel = api
        .call(
            "POST",
            "/api/v1/channels",
            Some(json!({"type": "webhook", "url": target.url("/hook")})),
        )
        .await;
    assert_eq!(channel.status, 201, "{channel:?}");
    let mut spec = job("canary-alert", &target.url("/failing"));
    spec["request"]["headers"] = json!({"Authorization": format!("Bearer {canary}")});
    spec["alerts"] = json!({"after_consecutive_failures": 1, "channels": [id(&channel.body)]});
    let created = api.call("POST", "/api/v1/jobs", Some(spec)).await;
    assert_eq!(created.status, 201, "{created:?}");
    let execution = run(&api, &id(&created.body)).await;
    assert_eq!(execution["status"], "failed");

    let hooks = target.wait_for("/hook", 1, Duration::from_secs(15)).await;
    assert_eq!(hooks.len(), 1, "the failing alert was delivered");
    let alert_text = String::from_utf8_lossy(&hooks[0].body).into_owned();
    assert!(
        alert_text.contains("canary-alert"),
        "the alert names the job: {alert_text}"
    );
    assert!(
        !alert_text.contains(&canary),
        "the alert holds the secret: {alert_text}"
    );
    let listed = api.call("GET", "/api/v1/alerts", None).await;
    assert!(!listed.body.to_string().contains(&canary));
    assert!(
        !cronhook.log().contains(&canary),
        "the log holds the secret"
    );
    // The target itself did get the real value.
    assert_eq!(
        target.received("/failing")[0].header("authorization"),
        Some(format!("Bearer {canary}").as_str())
    );
}
