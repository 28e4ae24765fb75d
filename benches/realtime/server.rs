//! The server, as a child process (so its CPU is measured apart from the load generator's).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::SECRET;
use crate::db::database_url;
use reqwest::StatusCode;
use uuid::Uuid;

pub(crate) static CLK_TCK: LazyLock<u64> = LazyLock::new(|| {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
});

/// utime + stime of a process (all its threads), in microseconds.
pub(crate) fn cpu_us(pid: Option<u32>) -> u64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field(11) + field(12)) * 1_000_000 / *CLK_TCK
}

/// Busy CPU time of the whole machine (all CPUs) from /proc/stat, in microseconds.
pub(crate) fn machine_busy_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: everything but idle and iowait.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy * 1_000_000 / *CLK_TCK
}

/// CPU of every `postgres` process (the local server and all its backends), by pid.
pub(crate) fn postgres_us() -> HashMap<u32, u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .map(|pid| (pid, cpu_us(Some(pid))))
        .collect()
}

/// CPU counters at one instant.
pub(crate) struct CpuSnapshot {
    pub(crate) at: Instant,
    pub(crate) server: u64,
    pub(crate) client: u64,
    pub(crate) postgres: HashMap<u32, u64>,
    pub(crate) machine: u64,
}

/// CPU used between two snapshots, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUse {
    pub(crate) wall: Duration,
    pub(crate) server: u64,
    pub(crate) client: u64,
    /// Backends that exited in between are missed; ones that started count from zero.
    pub(crate) postgres: u64,
    pub(crate) machine: u64,
}

impl CpuSnapshot {
    /// `pid`: the server process (Guildhall or the bare reference).
    pub(crate) fn take(pid: u32) -> Self {
        Self {
            at: Instant::now(),
            server: cpu_us(Some(pid)),
            client: cpu_us(None),
            postgres: postgres_us(),
            machine: machine_busy_us(),
        }
    }

    pub(crate) fn since(&self, pid: u32) -> CpuUse {
        let now = Self::take(pid);
        CpuUse {
            wall: now.at - self.at,
            server: now.server.saturating_sub(self.server),
            client: now.client.saturating_sub(self.client),
            postgres: now
                .postgres
                .iter()
                .map(|(pid, us)| us.saturating_sub(self.postgres.get(pid).copied().unwrap_or(0)))
                .sum(),
            machine: now.machine.saturating_sub(self.machine),
        }
    }
}

impl CpuUse {
    pub(crate) fn cores(&self, us: u64) -> f64 {
        us as f64 / 1e6 / self.wall.as_secs_f64().max(1e-9)
    }

    /// `server / client / postgres / rest of the machine` in cores.
    pub(crate) fn split(&self) -> String {
        let other = self
            .machine
            .saturating_sub(self.server + self.client + self.postgres);
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            self.cores(self.server),
            self.cores(self.client),
            self.cores(self.postgres),
            self.cores(other)
        )
    }
}

/// The `guildhall` binary cargo built for this bench, or `GUILDHALL_BENCH_SERVER_BIN` (another
/// build, e.g. the previous commit's, to compare against on the same machine).
pub(crate) fn server_binary() -> PathBuf {
    std::env::var_os("GUILDHALL_BENCH_SERVER_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_guildhall")),
        PathBuf::from,
    )
}

pub(crate) struct Server {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) log: PathBuf,
}

impl Server {
    pub(crate) async fn start(database: &str) -> Self {
        Self::start_with(database, &[]).await
    }

    /// `start` with extra environment (e.g. `GUILDHALL_REDIS_URL` for a second node).
    pub(crate) async fn start_with(database: &str, extra_env: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log =
            std::env::temp_dir().join(format!("guildhall-bench-{}.log", Uuid::new_v4().simple()));
        let log_file = std::fs::File::create(&log).expect("server log file");
        let mut command = tokio::process::Command::new(server_binary());
        command.arg("serve");
        for (name, _) in std::env::vars() {
            if name.starts_with("GUILDHALL_") {
                command.env_remove(name);
            }
        }
        command
            .env("GUILDHALL_BIND", addr.to_string())
            .env("GUILDHALL_DATABASE_URL", database_url(database))
            .env("GUILDHALL_JWT_SECRET", SECRET)
            .env("GUILDHALL_RATE_LIMITS", "off")
            .env("GUILDHALL_ACCESS_TOKEN_TTL_S", "3600")
            .env("GUILDHALL_LOG", "warn")
            .env("NO_COLOR", "1")
            .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true);
        let child = command.spawn().expect("spawn the guildhall binary");
        let pid = child.id().expect("child pid");
        let server = Self {
            child,
            pid,
            addr,
            log,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("http://{addr}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if ready {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "server not ready within 30 s; log: {}",
                server.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn cpu_us(&self) -> u64 {
        cpu_us(Some(self.pid))
    }

    /// SIGTERM, bounded wait, then the log's warnings and errors.
    pub(crate) async fn stop(mut self) -> (String, Vec<String>) {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        let exit = match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(err)) => format!("wait failed: {err}"),
            Err(_) => {
                let _ = self.child.kill().await;
                "did not stop within 15 s of SIGTERM (killed)".to_owned()
            }
        };
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let notable = text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            // Expected: the bench turns rate limits off on purpose.
            .filter(|l| !l.contains("RATE_LIMITS=off"))
            .map(str::to_owned)
            .collect();
        let _ = std::fs::remove_file(&self.log);
        (exit, notable)
    }
}
