//! DNS answers that alternate between an allowed and a blocked address never get a request to
//! the blocked one: the guard filters the addresses the resolver hands to the connector, so the
//! address dialled is the address vetted (no rebinding between check and connect).
//!
//! The test runs in its own network namespace (`unshare -n`, only `lo`, brought up), so even a
//! bypass could reach nothing but loopback: it re-executes itself there when it is not inside
//! one yet. A 60-line DNS server on loopback answers `rebind.test` with 127.0.0.1 (allowed by the
//! policy), 127.0.0.2 (blocked), and both, in turn; the guarded client resolves through it
//! (`use_dns_server`, what `--dns-server` sets).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cronhook_core::net::TargetPolicy;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, UdpSocket};

const IN_NAMESPACE: &str = "CRONHOOK_TEST_IN_NETNS";
const SENDS: usize = 1000;

#[test]
fn alternating_dns_answers_never_reach_the_blocked_address() {
    if std::env::var_os(IN_NAMESPACE).is_none() {
        let exe = std::env::current_exe().expect("test binary");
        let status = Command::new("unshare")
            .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
            .arg(exe)
            .args([
                "--exact",
                "alternating_dns_answers_never_reach_the_blocked_address",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(IN_NAMESPACE, "1")
            .status()
            .expect("run unshare (needs root or user namespaces)");
        assert!(status.success(), "the test failed inside its namespace");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(inside_namespace());
}

/// Answers A queries for any name with the next of `answers`, cycling; AAAA with nothing.
async fn dns_server(socket: UdpSocket, answers: Vec<Vec<Ipv4Addr>>, asked: Arc<AtomicUsize>) {
    let mut buffer = [0u8; 512];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
            return;
        };
        let query = &buffer[..length];
        if query.len() < 12 {
            continue;
        }
        // The question: labels up to a zero byte, then type and class.
        let mut end = 12;
        while end < query.len() && query[end] != 0 {
            end += usize::from(query[end]) + 1;
        }
        let question_end = end + 5;
        if question_end > query.len() {
            continue;
        }
        let qtype = u16::from_be_bytes([query[end + 1], query[end + 2]]);
        let addresses = if qtype == 1 {
            let turn = asked.fetch_add(1, Ordering::SeqCst);
            answers[turn % answers.len()].clone()
        } else {
            Vec::new()
        };
        let mut reply = Vec::with_capacity(question_end + 16 * addresses.len());
        reply.extend_from_slice(&query[..2]);
        reply.extend_from_slice(&[0x81, 0x80, 0, 1]);
        reply.extend_from_slice(&u16::try_from(addresses.len()).expect("few").to_be_bytes());
        reply.extend_from_slice(&[0, 0, 0, 0]);
        reply.extend_from_slice(&query[12..question_end]);
        for address in addresses {
            reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
            reply.extend_from_slice(&address.octets());
        }
        let _ = socket.send_to(&reply, peer).await;
    }
}

/// Answers every request `204` and closes the connection, so each send resolves afresh.
async fn allowed_server(listener: TcpListener, served: Arc<AtomicUsize>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let served = served.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            let _ = socket.read(&mut buffer).await;
            served.fetch_add(1, Ordering::SeqCst);
            let _ = socket
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .await;
        });
    }
}

async fn inside_namespace() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dns = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
    let dns_address = dns.local_addr().expect("dns address");
    let asked = Arc::new(AtomicUsize::new(0));
    let allowed: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
    let blocked: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    tokio::spawn(dns_server(
        dns,
        vec![vec![allowed], vec![blocked], vec![blocked, allowed]],
        asked.clone(),
    ));

    let good = TcpListener::bind((allowed, 0)).await.expect("bind allowed");
    let port = good.local_addr().expect("addr").port();
    let served = Arc::new(AtomicUsize::new(0));
    tokio::spawn(allowed_server(good, served.clone()));
    let bad = TcpListener::bind((blocked, port))
        .await
        .expect("bind blocked");
    let contacted = Arc::new(AtomicUsize::new(0));
    let counter = contacted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = bad.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });

    cronhook_executor::use_dns_server(dns_address).expect("dns server");
    let policy = TargetPolicy {
        allow_private: false,
        allowed_nets: vec!["127.0.0.1/32".parse().expect("net")],
    };
    let client = cronhook_executor::guarded_client(&policy).expect("client");
    let url = format!("http://rebind.test:{port}/");
    let (mut ok, mut refused) = (0usize, 0usize);
    for _ in 0..SENDS {
        match tokio::time::timeout(Duration::from_secs(10), client.get(&url).send()).await {
            Ok(Ok(response)) => {
                assert_eq!(response.status().as_u16(), 204);
                ok += 1;
            }
            Ok(Err(error)) => {
                let described = cronhook_executor::describe_request_error(&error);
                assert_eq!(
                    described.kind,
                    cronhook_core::ErrorKind::BlockedTarget,
                    "{described:?}"
                );
                refused += 1;
            }
            Err(_) => panic!("a send hung"),
        }
    }
    let asked = asked.load(Ordering::SeqCst);
    eprintln!("{SENDS} sends: {ok} answered, {refused} refused, {asked} A queries");
    assert_eq!(
        contacted.load(Ordering::SeqCst),
        0,
        "the blocked address was dialled"
    );
    assert!(
        asked >= SENDS,
        "every send resolved afresh ({asked} queries)"
    );
    // Two of every three answers hold the allowed address; one holds only the blocked one.
    assert!(ok >= SENDS * 6 / 10, "{ok} answered");
    assert!(refused >= SENDS / 4, "{refused} refused");
    assert_eq!(served.load(Ordering::SeqCst), ok);
}
