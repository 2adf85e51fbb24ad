//! The signature verifiers the README gives receivers, tested as written: the Rust one is this
//! file's `verify` (a test checks it is the README's text), the Python one is extracted from the
//! README and run with `python3` against the same vectors.

// BEGIN README VERIFY
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Checks a Standard Webhooks request; `now` is the receiver's clock in unix seconds.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    body: &[u8],
    signatures: &str,
    now: i64,
) -> Result<(), &'static str> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| "the secret is not base64")?;
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| "the timestamp is not a number")?;
    if (now - sent).abs() > 5 * 60 {
        return Err("the timestamp is more than 5 minutes off");
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| "unusable secret")?;
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    for candidate in signatures.split(' ') {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(signature) = b64.decode(encoded) else {
            continue;
        };
        // `verify_slice` compares in constant time and refuses any other length (empty, cut).
        if mac.clone().verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err("no valid signature")
}
// END README VERIFY

/// The Standard Webhooks test vector.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: i64 = 1_614_265_330;
const BODY: &str = r#"{"test": 2432232314}"#;
const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// (case, signatures header, receiver's clock, secret, accepted?)
fn vectors() -> Vec<(&'static str, String, i64, &'static str, bool)> {
    let other = "whsec_dGhlIG90aGVyIHNlY3JldCBvZiAzMiBieXRlcyBsb25nIQ==";
    vec![
        (
            "the test vector",
            SIGNATURE.to_owned(),
            TIMESTAMP,
            SECRET,
            true,
        ),
        (
            "the valid one of two",
            format!("v1,AAAA {SIGNATURE}"),
            TIMESTAMP,
            SECRET,
            true,
        ),
        (
            "5 minutes late",
            SIGNATURE.to_owned(),
            TIMESTAMP + 300,
            SECRET,
            true,
        ),
        (
            "5 minutes early",
            SIGNATURE.to_owned(),
            TIMESTAMP - 300,
            SECRET,
            true,
        ),
        (
            "empty signature",
            "v1,".to_owned(),
            TIMESTAMP,
            SECRET,
            false,
        ),
        (
            "empty signature beside a wrong one",
            "v1, v1,".to_owned(),
            TIMESTAMP,
            SECRET,
            false,
        ),
        (
            "truncated signature",
            SIGNATURE[..SIGNATURE.len() - 4].to_owned(),
            TIMESTAMP,
            SECRET,
            false,
        ),
        (
            "truncated to half",
            SIGNATURE[..26].to_owned(),
            TIMESTAMP,
            SECRET,
            false,
        ),
        (
            "over 5 minutes late",
            SIGNATURE.to_owned(),
            TIMESTAMP + 301,
            SECRET,
            false,
        ),
        (
            "over 5 minutes early",
            SIGNATURE.to_owned(),
            TIMESTAMP - 301,
            SECRET,
            false,
        ),
        (
            "another secret",
            SIGNATURE.to_owned(),
            TIMESTAMP,
            other,
            false,
        ),
        (
            "another version",
            SIGNATURE.replacen("v1,", "v2,", 1),
            TIMESTAMP,
            SECRET,
            false,
        ),
    ]
}

fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn readme_block(marker: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let after = readme
        .split_once(marker)
        .unwrap_or_else(|| panic!("README has {marker}"))
        .1;
    let start = after.find("```").expect("a code block") + 3;
    let body = &after[start..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("```").expect("closing fence")].to_owned()
}

#[test]
fn the_readme_rust_verifier_is_the_one_tested_here() {
    let this = include_str!("signature_readme.rs");
    let tested = this
        .split_once("// BEGIN README VERIFY")
        .and_then(|(_, rest)| rest.split_once("// END README VERIFY"))
        .expect("markers")
        .0;
    assert_eq!(
        squeeze(&readme_block("<!-- verify-rust -->")),
        squeeze(tested),
        "README.md's Rust verifier differs from tests/e2e/signature_readme.rs"
    );
}

#[test]
fn the_rust_verifier_accepts_and_rejects_as_documented() {
    for (case, header, now, secret, accepted) in vectors() {
        let outcome = verify(
            secret,
            MSG_ID,
            &TIMESTAMP.to_string(),
            BODY.as_bytes(),
            &header,
            now,
        );
        assert_eq!(outcome.is_ok(), accepted, "{case}: {outcome:?}");
    }
}

#[test]
fn the_python_verifier_accepts_and_rejects_as_documented() {
    let mut script = readme_block("<!-- verify-python -->");
    script.push_str(
        r#"
import json, sys
failures = []
for case, header, now, secret, accepted in json.loads(sys.argv[1]):
    try:
        verify(secret, sys.argv[2], sys.argv[3], sys.argv[4].encode(), header, now)
        outcome = True
    except ValueError:
        outcome = False
    if outcome != accepted:
        failures.append(case)
if failures:
    print("wrong outcome:", failures)
    sys.exit(1)
print("ok", len(json.loads(sys.argv[1])))
"#,
    );
    let vectors: Vec<serde_json::Value> = vectors()
        .into_iter()
        .map(|(case, header, now, secret, accepted)| {
            serde_json::json!([case, header, now, secret, accepted])
        })
        .collect();
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(&script)
        .arg(serde_json::Value::Array(vectors).to_string())
        .arg(MSG_ID)
        .arg(TIMESTAMP.to_string())
        .arg(BODY)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("ok 12"), "{stdout}");
}
