//! PostgreSQL for the end-to-end tests: a database per test on the machine's server, or a
//! private cluster that a fault test may restart without disturbing anyone else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The server the tests use unless `CRONHOOK_TEST_PG_URL` names another (an admin URL).
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("CRONHOOK_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// Runs SQL through `psql` against `url`; panics with the server's message on failure.
fn psql(url: &str, sql: &str) {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql runs (Debian package postgresql-client)");
    assert!(
        output.status.success(),
        "psql {sql:?} failed: {}\nIs PostgreSQL running? Start it with: \
         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fresh database on the shared server, dropped when this value is.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates `cronhook_e2e_<pid>_<random>`.
    pub fn create() -> TestDatabase {
        let name = format!("cronhook_e2e_{}_{:08x}", std::process::id(), rand_u32());
        psql(&admin_url(), &format!("create database {name}"));
        let url = match admin_url().rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("CRONHOOK_TEST_PG_URL must end in /database"),
        };
        TestDatabase { url, name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                admin_url().as_str(),
                "-q",
                "-c",
                &format!("drop database if exists {} with (force)", self.name),
            ])
            .output();
    }
}

/// A private PostgreSQL cluster in a temporary directory, on its own port: a fault test can
/// restart or stop it without touching the machine's server.
pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
}

impl PgCluster {
    /// `initdb` and start a cluster (as the `postgres` user, since PostgreSQL refuses root).
    pub fn start() -> PgCluster {
        let bin = postgres_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("cronhook-pg-")
            .tempdir()
            .expect("cluster directory");
        chown_to_postgres(dir.path());
        let data = dir.path().join("data");
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let cluster = PgCluster {
            port: crate::free_port(),
            dir,
            bin,
        };
        cluster.pg_ctl("start");
        cluster
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Restarts the server (`pg_ctl restart -m fast`: connections are cut).
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    /// Stops the server.
    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    /// Starts the server again after [`PgCluster::stop`].
    pub fn restart_after_stop(&self) {
        self.pg_ctl("start");
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let mut args = vec![
            "-D",
            data.to_str().expect("utf-8 path"),
            "-l",
            log.to_str().expect("utf-8 path"),
            "-w",
            "-t",
            "30",
        ];
        if action != "start" {
            args.extend(["-m", "fast"]);
        }
        if action != "stop" {
            args.extend(["-o", options.as_str()]);
        }
        args.push(action);
        as_postgres(&self.bin.join("pg_ctl"), &args);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}

/// Where the server's programs are (`/usr/lib/postgresql/<version>/bin`).
fn postgres_bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server programs under /usr/lib/postgresql (Debian package postgresql)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL version with pg_ctl under /usr/lib/postgresql")
}

fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .arg("postgres")
        .arg(path)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown postgres {}", path.display());
}

fn as_postgres(program: &Path, args: &[&str]) {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser runs");
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // pg_ctl -w returns once the server accepts connections; give the socket a moment anyway.
    std::thread::sleep(Duration::from_millis(50));
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() as u32
}
