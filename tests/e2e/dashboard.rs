//! The dashboard in a real browser: headless Debian Chromium driven through chromedriver
//! (fantoccini, WebDriver over loopback HTTP) against the real binary. Every page visited is
//! checked for JavaScript errors (Chrome's console log, which also reports CSP violations and
//! failed loads) and saved as a screenshot under `target/screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cronhook_tests::{Cronhook, ServeOptions, Target, free_port, json};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::Value;

const EMAIL: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery";

/// A chromedriver process on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    async fn start() -> Driver {
        for path in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver (scripts/test does)"
            );
        }
        let port = free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver { child, port };
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("HTTP client");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(reply) = http.get(driver.url("/status")).send().await
                && reply.status().is_success()
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A new headless Chromium session with a fresh profile, logging the console.
    async fn browser(&self, profile: &tempfile::TempDir) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({"browser": "ALL"}));
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url(""))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's console log of the page (`POST /session/{id}/se/log`); reading it empties it.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// A browser on a cronhook, with the checks every page gets.
struct Visit<'a> {
    client: &'a Client,
    cronhook: &'a Cronhook,
    shots: PathBuf,
    saved: Vec<PathBuf>,
}

impl Visit<'_> {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&self.cronhook.url(path))
            .await
            .expect("navigate");
    }

    fn path(url: &url::Url) -> String {
        url.path().to_owned()
    }

    async fn current_path(&self) -> String {
        Self::path(&self.client.current_url().await.expect("current URL"))
    }

    async fn text(&self) -> String {
        self.client
            .execute("return document.body.innerText", vec![])
            .await
            .expect("page text")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the page's text contains `needle`.
    async fn wait_text(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` did not appear on {}; the page says:\n{text}",
                self.current_path().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The input labelled `label` (found through its `<label for>`, as a user finds it).
    async fn field(&self, label: &str) -> fantoccini::elements::Element {
        let xpath = format!(
            "//*[(self::input or self::textarea or self::select) and @id=//label[normalize-space()='{label}']/@for]"
        );
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|_| panic!("no field labelled `{label}`"))
    }

    async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    async fn value(&self, label: &str) -> String {
        self.field(label)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// Clicks the button whose text is `text`.
    async fn press(&self, text: &str) {
        let xpath = format!("//button[normalize-space()='{text}']");
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|_| panic!("no button `{text}`"))
            .click()
            .await
            .expect("click");
    }

    /// Waits until `script` (a JavaScript expression) is true on the page.
    async fn wait_js(&self, what: &str, script: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let done = self
                .client
                .execute(&format!("return Boolean({script})"), vec![])
                .await
                .expect("run a check");
            if done == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen on {}; the page says:\n{}",
                self.current_path().await,
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_button(&self, text: &str) {
        self.wait_js(
            &format!("button `{text}`"),
            &format!(
                "Array.from(document.querySelectorAll('button')).some(b => b.textContent.trim() === '{text}')"
            ),
            Duration::from_secs(5),
        )
        .await;
    }

    async fn wait_path(&self, prefix: &str) {
        self.wait_js(
            &format!("navigation to {prefix}"),
            &format!("location.pathname.startsWith('{prefix}')"),
            Duration::from_secs(5),
        )
        .await;
    }

    async fn has_button(&self, text: &str) -> bool {
        let xpath = format!("//button[normalize-space()='{text}']");
        self.client.find(Locator::XPath(&xpath)).await.is_ok()
    }

    async fn follow(&self, link: &str) {
        self.client
            .find(Locator::LinkText(link))
            .await
            .unwrap_or_else(|_| panic!("no link `{link}`"))
            .click()
            .await
            .expect("click");
    }

    /// Asserts the console logged no error since the last check, and saves a screenshot.
    async fn check(&mut self, name: &str) {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        let page = self.client.current_url().await.expect("current URL");
        let page = page
            .as_str()
            .split('#')
            .next()
            .unwrap_or_default()
            .to_owned();
        // A form answered 401/422 (a refused sign-in, a refused field) is logged as a failed load
        // of the page itself: that is the page working, not an error in it. Anything else counts:
        // script errors, CSP violations, a static file or fragment that failed to load.
        let errors: Vec<&Value> = log
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|entry| entry["level"] == "SEVERE")
                    .filter(|entry| {
                        !(entry["source"] == "network"
                            && entry["message"]
                                .as_str()
                                .is_some_and(|m| m.starts_with(&format!("{page} "))))
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            errors.is_empty(),
            "JavaScript errors on {name} ({}): {errors:#?}",
            self.current_path().await
        );
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("save the screenshot");
        self.saved.push(path);
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_signs_in_and_drives_jobs_in_a_browser() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    target.respond("/broken", &[500], Duration::ZERO);
    let (ok, _, stderr) = cronhook.cli(
        &["users", "create", "--email", EMAIL, "--workspace", "acme"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok, "users create: {stderr}");
    let api = cronhook.api("acme");
    let healthy = api
        .create_job(json!({
            "name": "nightly-report",
            "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
            "request": {"method": "POST", "url": target.url("/report"),
                        "headers": {"Content-Type": "application/json",
                                    "Authorization": "Bearer secret-token-1234"},
                        "body": "{\"kind\":\"nightly\"}"},
        }))
        .await;
    let broken = api
        .create_job(json!({
            "name": "broken-sync",
            "schedule": {"cron": "*/30 * * * *"},
            "request": {"url": target.url("/broken")},
            "retry": {"max_attempts": 1},
        }))
        .await;
    let run = api
        .call(
            "POST",
            &format!("/api/v1/jobs/{}/run", broken["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(run.status, 202);
    let failed = api
        .wait_final(
            run.body["id"].as_str().expect("id"),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(failed["status"], "failed");
    let stranger = cronhook
        .api("other-team")
        .create_job(json!({
            "name": "not-yours",
            "schedule": {"cron": "0 0 * * *"},
            "request": {"url": target.url("/x")},
        }))
        .await;

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("browser profile");
    let client = driver.browser(&profile).await;
    let mut visit = Visit {
        client: &client,
        cronhook: &cronhook,
        shots: screenshots_dir(),
        saved: Vec::new(),
    };

    // An anonymous visit lands on sign-in.
    visit.goto("/").await;
    assert_eq!(visit.current_path().await, "/login");
    assert!(visit.has_button("Sign in").await);
    visit.check("01-sign-in").await;

    // A wrong password is refused with a message, and the email is kept.
    visit.fill("Email", EMAIL).await;
    visit.fill("Password", "not the password").await;
    visit.press("Sign in").await;
    visit
        .wait_text("Email or password is incorrect", Duration::from_secs(5))
        .await;
    assert_eq!(visit.value("Email").await, EMAIL);
    visit.check("02-sign-in-refused").await;

    // Signing in shows the jobs; the failing job is marked failing.
    visit.fill("Password", PASSWORD).await;
    visit.press("Sign in").await;
    let text = visit
        .wait_text("nightly-report", Duration::from_secs(5))
        .await;
    assert_eq!(visit.current_path().await, "/");
    assert!(text.contains("broken-sync"), "{text}");
    let broken_state = client
        .find(Locator::Css(&format!(
            "tr[data-job-id='{}']",
            broken["id"].as_str().expect("id")
        )))
        .await
        .expect("the broken job's row");
    assert_eq!(
        broken_state
            .attr("data-state")
            .await
            .expect("attr")
            .as_deref(),
        Some("failing")
    );
    assert!(
        broken_state
            .text()
            .await
            .expect("row text")
            .contains("failing")
    );
    let healthy_row = client
        .find(Locator::Css(&format!(
            "tr[data-job-id='{}']",
            healthy["id"].as_str().expect("id")
        )))
        .await
        .expect("the healthy job's row");
    assert_eq!(
        healthy_row
            .attr("data-state")
            .await
            .expect("attr")
            .as_deref(),
        Some("active")
    );
    assert!(client.find(Locator::LinkText("New job")).await.is_ok());
    visit.check("03-jobs").await;

    // The job page shows the schedule in words, its zone and the masked secret.
    visit.follow("nightly-report").await;
    let text = visit
        .wait_text("Europe/Berlin", Duration::from_secs(5))
        .await;
    assert!(text.contains("03:00"), "schedule in words: {text}");
    assert!(text.contains("0 3 * * *"), "{text}");
    assert!(text.contains("••••1234"), "secret header masked: {text}");
    assert!(!text.contains("secret-token"), "{text}");
    for button in ["Run now", "Pause", "Delete"] {
        assert!(visit.has_button(button).await, "button {button}");
    }
    assert!(client.find(Locator::LinkText("Edit")).await.is_ok());
    visit.check("04-job").await;

    // Run now adds an execution that turns succeeded without a reload.
    visit.press("Run now").await;
    visit
        .wait_js(
            "a succeeded execution in the history",
            "Array.from(document.querySelectorAll('tr.execution-row')).some(r => r.innerText.includes('succeeded'))",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(target.received("/report").len(), 1);
    visit.check("05-job-after-run-now").await;

    // The execution page shows status, body and timing.
    let link = client
        .find(Locator::Css("tr.execution-row a"))
        .await
        .expect("the execution's link");
    link.click().await.expect("open the execution");
    let text = visit.wait_text("Attempt 1", Duration::from_secs(5)).await;
    assert!(visit.current_path().await.starts_with("/executions/exe_"));
    assert!(text.contains("succeeded"), "{text}");
    assert!(text.contains("200"), "{text}");
    assert!(text.contains("\"ok\": true"), "pretty-printed body: {text}");
    assert!(text.contains("Total"), "timing: {text}");
    assert!(text.contains("Replay"), "{text}");
    visit.check("06-execution").await;

    // Pause turns into Resume, and back.
    visit
        .goto(&format!("/jobs/{}", healthy["id"].as_str().expect("id")))
        .await;
    visit.press("Pause").await;
    visit.wait_button("Resume").await;
    assert!(!visit.has_button("Pause").await);
    assert!(visit.text().await.contains("paused"));
    visit.check("07-job-paused").await;
    visit.press("Resume").await;
    visit.wait_button("Pause").await;
    assert!(!visit.has_button("Resume").await);

    // The form: a live preview while typing; a bad cron shown beside its field with what was
    // typed kept; then the job is created.
    visit.goto("/").await;
    visit.follow("New job").await;
    visit.wait_path("/jobs/new").await;
    visit.fill("Name", "hourly-ping").await;
    visit.fill("Cron", "15 * * * *").await;
    visit.wait_text("minute 15", Duration::from_secs(5)).await;
    visit.check("08-job-form-preview").await;
    visit.fill("Cron", "61 * * * *").await;
    visit.fill("URL", &target.url("/ping")).await;
    visit.press("Create").await;
    let error = client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Id("cron-error"))
        .await
        .expect("the cron error beside the field");
    let message = error.text().await.expect("error text");
    assert!(!message.trim().is_empty());
    assert_eq!(visit.value("Cron").await, "61 * * * *");
    assert_eq!(visit.value("Name").await, "hourly-ping");
    assert_eq!(visit.value("URL").await, target.url("/ping"));
    visit.check("09-job-form-error").await;
    visit.fill("Cron", "15 * * * *").await;
    visit.press("Create").await;
    visit.wait_path("/jobs/job_").await;
    let text = visit.wait_text("hourly-ping", Duration::from_secs(5)).await;
    assert!(text.contains("hourly-ping"), "{text}");
    assert!(visit.current_path().await.starts_with("/jobs/job_"));
    visit.check("10-job-created").await;

    // Another workspace's job is not found.
    visit
        .goto(&format!("/jobs/{}", stranger["id"].as_str().expect("id")))
        .await;
    let text = visit.wait_text("Not found", Duration::from_secs(5)).await;
    assert!(!text.contains("not-yours"));
    let _ = client.issue_cmd(BrowserLog).await; // the 404 itself is logged as a failed load

    // API keys: created, shown once.
    visit.goto("/keys").await;
    visit.fill("Name", "deploy-bot").await;
    visit.press("Create key").await;
    let text = visit
        .wait_text("Your new key", Duration::from_secs(5))
        .await;
    assert!(text.contains("chk_"), "{text}");
    visit.check("11-api-keys").await;

    // Signing out ends the session.
    visit.press("Sign out").await;
    visit.wait_path("/login").await;
    visit.goto("/").await;
    assert_eq!(visit.current_path().await, "/login");

    let saved = visit.saved.clone();
    client.close().await.expect("close the browser");
    for path in saved {
        assert!(path.exists(), "{}", path.display());
        eprintln!("screenshot: {}", path.display());
    }
}

/// Signs in as `EMAIL` and waits for the jobs list.
async fn sign_in(visit: &Visit<'_>) {
    visit.goto("/login").await;
    visit.fill("Email", EMAIL).await;
    visit.fill("Password", PASSWORD).await;
    visit.press("Sign in").await;
    visit.wait_text("New job", Duration::from_secs(5)).await;
    assert_eq!(visit.current_path().await, "/");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_adds_tests_and_deletes_an_alert_channel_in_a_browser() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let target = Target::start().await;
    let (ok, _, stderr) = cronhook.cli(
        &["users", "create", "--email", EMAIL, "--workspace", "acme"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok, "users create: {stderr}");
    let api = cronhook.api("acme");
    // A Discord channel made through the API: its webhook URL is a secret, shown masked.
    let discord = api
        .call(
            "POST",
            "/api/v1/channels",
            Some(json!({"name": "chat", "type": "discord",
                        "webhook_url": "http://127.0.0.1:9/api/webhooks/secret-token-wxyz"})),
        )
        .await;
    assert_eq!(discord.status, 201, "{:?}", discord.body);

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("browser profile");
    let client = driver.browser(&profile).await;
    let mut visit = Visit {
        client: &client,
        cronhook: &cronhook,
        shots: screenshots_dir(),
        saved: Vec::new(),
    };
    sign_in(&visit).await;

    // The channels page, from the navigation: the Discord URL is masked.
    visit.follow("Alert channels").await;
    visit.wait_path("/channels").await;
    let text = visit
        .wait_text("Add a channel", Duration::from_secs(5))
        .await;
    assert!(text.contains("chat"), "{text}");
    assert!(text.contains("••••wxyz"), "Discord URL masked: {text}");
    assert!(!text.contains("secret-token"), "{text}");

    // A bad URL is shown beside its field, with what was typed kept.
    visit
        .field("Type")
        .await
        .select_by_value("webhook")
        .await
        .expect("choose webhook");
    visit.fill("Name", "ops-hook").await;
    visit.fill("URL", "not a url").await;
    visit.press("Add channel").await;
    let error = client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Id("url-error"))
        .await
        .expect("the URL error beside the field");
    let message = error.text().await.expect("error text");
    assert!(message.contains("URL"), "{message}");
    assert_eq!(visit.value("URL").await, "not a url");
    assert_eq!(visit.value("Name").await, "ops-hook");
    assert_eq!(visit.value("Type").await, "webhook");
    visit.check("12-channels-error").await;

    // Then it is created, and listed with its URL.
    let hook = target.url("/hook");
    visit.fill("URL", &hook).await;
    visit.press("Add channel").await;
    let text = visit
        .wait_text("The channel was added", Duration::from_secs(5))
        .await;
    assert!(text.contains("ops-hook"), "{text}");
    assert!(text.contains(&hook), "{text}");
    let channels = api.call("GET", "/api/v1/channels", None).await;
    let created = channels.body["data"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["name"] == "ops-hook")
        .expect("the channel, through the API")
        .clone();
    let channel_id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["url"], hook.as_str());

    // The default channels: check it, save.
    client
        .find(Locator::Id(&format!("default-{channel_id}")))
        .await
        .expect("the default checkbox")
        .click()
        .await
        .expect("check it");
    visit.press("Save").await;
    visit
        .wait_text("default channels were saved", Duration::from_secs(5))
        .await;
    let defaults = api
        .call("GET", "/api/v1/workspace/alert-channels", None)
        .await;
    assert_eq!(defaults.body["channels"], json!([channel_id]));
    visit.check("12-channels").await;

    // Test: a test alert is recorded, delivered to the target, and shown so in the log.
    let row = client
        .find(Locator::Css(&format!(
            "tr[data-channel-id='{channel_id}'] button"
        )))
        .await
        .expect("the channel's Test button");
    assert_eq!(row.text().await.expect("text").trim(), "Test");
    row.click().await.expect("press Test");
    visit.wait_path("/alerts").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let delivered = client
            .execute(
                "return Array.from(document.querySelectorAll('tr.alert-row')).some(r => r.dataset.status === 'delivered' && r.innerText.includes('ops-hook') && r.innerText.includes('test'))",
                vec![],
            )
            .await
            .expect("look at the log");
        if delivered == Value::Bool(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the test alert was not shown delivered; the page says:\n{}",
            visit.text().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Live refresh does this; reload too, in case a poll is in flight.
        if Instant::now() + Duration::from_secs(5) < deadline {
            continue;
        }
        client.refresh().await.expect("reload");
    }
    assert_eq!(target.received("/hook").len(), 1);
    assert_eq!(visit.current_path().await, "/alerts");
    visit.check("13-alert-log").await;

    // Delete, through the confirmation page.
    visit.follow("Alert channels").await;
    visit.wait_text("ops-hook", Duration::from_secs(5)).await;
    client
        .find(Locator::Css(&format!(
            "tr[data-channel-id='{channel_id}'] button.danger"
        )))
        .await
        .expect("the channel's Delete button")
        .click()
        .await
        .expect("press Delete");
    visit
        .wait_path(&format!("/channels/{channel_id}/delete"))
        .await;
    visit
        .wait_text("Delete ops-hook?", Duration::from_secs(5))
        .await;
    visit.press("Delete").await;
    let text = visit
        .wait_text("The channel was deleted", Duration::from_secs(5))
        .await;
    assert!(!text.contains("ops-hook"), "{text}");
    let gone = api
        .call("GET", &format!("/api/v1/channels/{channel_id}"), None)
        .await;
    assert_eq!(gone.status, 404);
    visit.check("12-channels-deleted").await;

    let saved = visit.saved.clone();
    client.close().await.expect("close the browser");
    for path in saved {
        assert!(path.exists(), "{}", path.display());
        eprintln!("screenshot: {}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_run_setup_works_in_a_browser() {
    let cronhook = Cronhook::start(ServeOptions::default()).await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("browser profile");
    let client = driver.browser(&profile).await;
    let mut visit = Visit {
        client: &client,
        cronhook: &cronhook,
        shots: screenshots_dir(),
        saved: Vec::new(),
    };

    // With no user at all, the dashboard leads to setup.
    visit.goto("/").await;
    visit.wait_path("/setup").await;
    visit
        .wait_text("Set up cronhook", Duration::from_secs(5))
        .await;
    visit.fill("Email", EMAIL).await;
    visit.fill("Password", PASSWORD).await;
    visit.fill("Password again", PASSWORD).await;
    visit.fill("Workspace", "acme").await;
    visit.check("14-setup").await;
    visit.press("Create account").await;

    // Signed in, on the (empty) jobs list.
    let text = visit.wait_text("New job", Duration::from_secs(5)).await;
    assert_eq!(visit.current_path().await, "/");
    assert!(text.contains(EMAIL), "signed in as {EMAIL}: {text}");
    assert!(visit.has_button("Sign out").await);
    visit.check("14-setup-done").await;

    // Setup is offered once: afterwards it leads away (to sign-in, which sends a signed-in
    // user on to the jobs).
    visit.goto("/setup").await;
    visit
        .wait_js(
            "leaving setup",
            "location.pathname === '/'",
            Duration::from_secs(5),
        )
        .await;

    let saved = visit.saved.clone();
    client.close().await.expect("close the browser");
    for path in saved {
        assert!(path.exists(), "{}", path.display());
        eprintln!("screenshot: {}", path.display());
    }
}
