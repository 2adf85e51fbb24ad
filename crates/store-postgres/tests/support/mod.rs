//! A throw-away PostgreSQL database per test: created on the server named by
//! `CRONHOOK_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped at the
//! end. A server that cannot be reached fails the test: it is never skipped.

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use cronhook_store_postgres::PostgresStore;
use sqlx::{Connection, Executor, PgConnection};

/// The server the tests create their databases on, as an administrator.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("CRONHOOK_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

async fn admin_connection() -> PgConnection {
    let url = admin_url();
    match PgConnection::connect(&url).await {
        Ok(connection) => connection,
        Err(err) => panic!(
            "PostgreSQL is not reachable at {url}: {err}\n\
             The PostgreSQL store's tests need a server. Start the local one with\n    \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
             or point CRONHOOK_TEST_PG_URL at a server where this user may create databases."
        ),
    }
}

/// A database of its own, named `cronhook_test_<pid>_<n>`.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "cronhook_test_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = admin_connection().await;
        admin
            .execute(sqlx::AssertSqlSafe(format!("create database {name}")))
            .await
            .unwrap_or_else(|err| panic!("create the test database {name}: {err}"));
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url()).expect("CRONHOOK_TEST_PG_URL is a URL");
        url.set_path(&name);
        TestDatabase {
            name,
            url: url.to_string(),
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> PostgresStore {
        let store = PostgresStore::open(&self.url)
            .await
            .expect("open the test database");
        store.migrate().await.expect("migrate");
        store
    }

    /// A plain connection, to look at rows the store does not expose.
    pub async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Drops the database now (dropping the value does the same).
    pub async fn drop_database(self) {
        drop(self);
    }
}

impl Drop for TestDatabase {
    /// Drops the database, best effort (`with (force)` ends connections still open), also when
    /// the test panicked. On a thread of its own: `Drop` cannot wait for the test's runtime.
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut admin = admin_connection().await;
                if let Err(err) = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "drop database if exists {name} with (force)"
                    )))
                    .await
                {
                    eprintln!("could not drop the test database {name}: {err}");
                }
                admin.close().await.ok();
            });
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop a test database");
        }
    }
}

/// Runs `test` against a migrated store in a fresh database, then drops the database whether
/// the test passed or panicked.
pub async fn with_store<F, Fut>(test: F)
where
    F: FnOnce(PostgresStore, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let outcome = tokio::spawn(test(store.clone(), database.url.clone())).await;
    store.close().await;
    database.drop_database().await;
    if let Err(err) = outcome {
        match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("the test task failed: {err}"),
        }
    }
}

/// A TCP proxy in front of the PostgreSQL server that can play an outage: while down it cuts
/// every connection and closes new ones at once, as a restarting server does.
pub struct OutageProxy {
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl OutageProxy {
    /// Starts a proxy to the server of `CRONHOOK_TEST_PG_URL`.
    pub async fn start() -> OutageProxy {
        let server = url::Url::parse(&admin_url()).expect("CRONHOOK_TEST_PG_URL is a URL");
        let target = format!(
            "{}:{}",
            server.host_str().unwrap_or("127.0.0.1"),
            server.port().unwrap_or(5432)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*watch.borrow() {
                    continue;
                }
                let mut watch = watch.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        OutageProxy { port, up }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_through(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a database URL");
        url.set_host(Some("127.0.0.1")).expect("a host");
        url.set_port(Some(self.port)).expect("a port");
        url.to_string()
    }

    pub fn down(&self) {
        self.up.send_replace(false);
    }

    pub fn up(&self) {
        self.up.send_replace(true);
    }
}
