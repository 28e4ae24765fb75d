//! The real server binary as a child process, for tests that kill it, stop it or signal it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{PASSWORD, Session};
use crate::netns::Netns;

pub struct Node {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    settings: BTreeMap<String, String>,
    child: Child,
    log: PathBuf,
    /// The network namespace the process runs in (`ip netns exec`), if not the host's.
    netns: Option<String>,
}

/// A port nothing listens on right now (the server binds it with SO_REUSEADDR, so it can be
/// bound again right after a kill).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    /// Starts `guildhall serve` on `settings` (the keys of the TOML file; `bind` gets a fixed
    /// free port so restarts keep the address) and waits until it answers.
    pub async fn start(settings: BTreeMap<String, String>) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Self::start_at(settings, addr, None).await
    }

    /// `start` inside a network namespace, bound to its address (reachable from the host).
    pub async fn start_in_netns(settings: BTreeMap<String, String>, netns: &Netns) -> Self {
        let addr = SocketAddr::from((netns.inner_ip, free_port()));
        Self::start_at(settings, addr, Some(netns.name.clone())).await
    }

    async fn start_at(
        mut settings: BTreeMap<String, String>,
        addr: SocketAddr,
        netns: Option<String>,
    ) -> Self {
        settings.insert("bind".into(), addr.to_string());
        let log = std::env::temp_dir().join(format!("guildhall-node-{}.log", addr.port()));
        let child = spawn(&settings, &log, netns.as_deref());
        let node = Self {
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            settings,
            child,
            log,
            netns,
        };
        node.wait_ready().await;
        node
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill9(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub fn sigterm(&self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("server did not exit in {within:?}; {}", self.log_tail()))
            .unwrap()
    }

    /// Starts the binary again on the same address and settings.
    pub async fn restart(&mut self) {
        self.child = spawn(&self.settings, &self.log, self.netns.as_deref());
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let url = self.url("/healthz");
        for _ in 0..600 {
            if let Ok(r) = self.client.get(&url).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not come up; {}", self.log_tail());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/v1/ws?token={token}", self.addr)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn register(&self, username: &str) -> Session {
        let body = json!({"username": username, "password": PASSWORD});
        let response = self.post("/v1/auth/register", None, body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "register {username}"
        );
        Session::from_json(&response.json().await.unwrap())
    }

    /// A community owned by `owner` with one public room; returns the room id.
    pub async fn room(&self, owner: &Session) -> String {
        self.community_room(owner).await.1
    }

    /// `room`, with the community's id first.
    pub async fn community_room(&self, owner: &Session) -> (String, String) {
        let token = Some(owner.access_token.as_str());
        let body = json!({"name": "faults", "visibility": "public"});
        let community: Value = self.created("/v1/communities", token, body).await;
        let community = community["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/communities/{community}/rooms");
        let room = self.created(&path, token, json!({"name": "load"})).await;
        (community, room["id"].as_str().unwrap().to_owned())
    }

    /// Joins a public community (and so becomes a member of its rooms).
    pub async fn join(&self, user: &Session, community: &str) {
        let path = format!("/v1/communities/{community}/join");
        let response = self.post(&path, Some(&user.access_token), json!({})).await;
        assert_eq!(response.status(), StatusCode::OK, "POST {path}");
    }

    async fn created(&self, path: &str, token: Option<&str>, body: Value) -> Value {
        let response = self.post(path, token, body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "POST {path}");
        response.json().await.unwrap()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "server log tail:\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

/// The debug binary cargo built for this test run, unless `GUILDHALL_TEST_SERVER_BIN` names
/// another one (scripts/faults points it at the release build for the full-size load tests,
/// which the debug server cannot pump).
fn server_binary() -> PathBuf {
    std::env::var_os("GUILDHALL_TEST_SERVER_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_guildhall")),
        PathBuf::from,
    )
}

/// The child gets only the settings (as `GUILDHALL_*`), not this process's environment, so
/// nothing from the test run leaks into its configuration. In a namespace, `ip netns exec`
/// execs the binary in its own place, so the child's pid is the server's.
fn spawn(settings: &BTreeMap<String, String>, log: &PathBuf, netns: Option<&str>) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = match netns {
        Some(name) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", name]).arg(server_binary());
            c
        }
        None => Command::new(server_binary()),
    };
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .kill_on_drop(true);
    for (key, value) in settings {
        command.env(format!("GUILDHALL_{}", key.to_uppercase()), value);
    }
    command.spawn().expect("server binary starts")
}

impl Node {
    /// Resident memory of the server process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS");
        kb * 1024
    }
}

/// A Redis server of the test's own, so stopping or freezing it touches no other test.
pub struct PrivateRedis {
    pub port: u16,
    /// The address it listens on (loopback unless a test needs it reachable from a namespace).
    pub ip: Ipv4Addr,
    child: Child,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        Self::start_on(Ipv4Addr::LOCALHOST).await
    }

    pub async fn start_on(ip: Ipv4Addr) -> Self {
        let port = free_port();
        let redis = Self {
            port,
            ip,
            child: spawn_redis(ip, port),
        };
        redis.wait_ready().await;
        redis
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// Stopped hard, as a crash would.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub async fn restart(&mut self) {
        self.child = spawn_redis(self.ip, self.port);
        self.wait_ready().await;
    }

    /// SIGSTOP: connections stay open and nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(self.addr()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not come up on {}", self.port);
    }
}

fn spawn_redis(ip: Ipv4Addr, port: u16) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", &ip.to_string()])
        // Clients from a network namespace are not loopback ones, which protected mode refuses.
        .args([
            "--protected-mode",
            if ip.is_loopback() { "yes" } else { "no" },
        ])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server starts (scripts/test installs it)")
}

/// A Postgres cluster of the test's own (initdb in a temp dir), so stopping it touches no
/// other test. As root, the server runs as the `postgres` user, which initdb requires.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
}

/// The newest installed server's binaries (Debian/Ubuntu layout; scripts/test installs it).
fn pg_bin() -> String {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("postgres server installed under /usr/lib/postgresql")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    format!(
        "/usr/lib/postgresql/{}/bin",
        versions.last().expect("a postgres version")
    )
}

impl PrivatePostgres {
    pub async fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("guildhall-pg-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = Self { port, dir };
        if is_root() {
            Self::run(
                &["chown", "-R", "postgres", pg.dir.to_str().unwrap()],
                false,
            );
        }
        let data = pg.data();
        Self::run(
            &[
                &format!("{}/initdb", pg_bin()),
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "guildhall",
            ],
            true,
        );
        pg.ctl_start();
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://guildhall@127.0.0.1:{}/{database}", self.port)
    }

    pub fn ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log");
        let data = self.data();
        Self::run(
            &[
                &format!("{}/pg_ctl", pg_bin()),
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
            true,
        );
    }

    /// `-m immediate`: no checkpoint, connections cut, as a crash would.
    pub fn stop_immediate(&self) {
        let data = self.data();
        Self::run(
            &[
                &format!("{}/pg_ctl", pg_bin()),
                "-D",
                &data,
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            true,
        );
    }

    pub fn psql(&self, database: &str, sql: &str) {
        let port = self.port.to_string();
        let psql = "/usr/bin/psql";
        Self::run(
            &[
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "guildhall",
                "-d",
                database,
                "-qc",
                sql,
            ],
            false,
        );
    }

    /// Runs a command (as `postgres` when `as_postgres` and this process is root).
    fn run(args: &[&str], as_postgres: bool) {
        let mut command = if as_postgres && is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        } else {
            let mut c = std::process::Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let pg_ctl = format!("{}/pg_ctl", pg_bin());
        let stop = [pg_ctl.as_str(), "-D", &data, "-m", "immediate", "stop"];
        let _ = if is_root() {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(stop)
                .output()
        } else {
            std::process::Command::new(stop[0])
                .args(&stop[1..])
                .output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
