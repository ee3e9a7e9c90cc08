//! A PostgreSQL server of a test's own, for tests that restart it: `initdb` into a
//! temporary directory, `pg_ctl` to start, restart and stop it, listening on a free
//! loopback port. As root (PostgreSQL refuses to run as root) it runs as `postgres`.

use std::path::PathBuf;
use std::process::Command;

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

impl Cluster {
    /// Creates and starts a cluster; panics with the tool's output if it cannot.
    pub fn start() -> Cluster {
        let bin = pg_bin().expect("PostgreSQL's server binaries (initdb, pg_ctl)");
        let cluster = Cluster::empty(bin);
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        cluster.pg_ctl(&["start"]);
        cluster
    }

    /// A streaming replica of `primary`: a base backup of it, started as a hot standby
    /// that follows its WAL.
    pub fn standby_of(primary: &Cluster) -> Cluster {
        let cluster = Cluster::empty(primary.bin.clone());
        let port = primary.port.to_string();
        cluster.pg(
            "pg_basebackup",
            &[
                "-D",
                &cluster.data(),
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        cluster.pg_ctl(&["start"]);
        cluster
    }

    /// The server's `postgres` database, as tests' admin URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast: connections are cut) and leaves it down.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    /// A directory and a free port for a server, nothing in them yet.
    fn empty(bin: PathBuf) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-cluster-{}",
            switchyard_domain::secrets::random_token(6).replace(['-', '_'], "x")
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        if is_root() {
            run("chown", &["-R", "postgres", &dir.to_string_lossy()], false);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Cluster { dir, bin, port }
    }

    /// A restart with `down` between stop and start: a fast shutdown (connections are
    /// terminated, the server shuts down cleanly), then a start; returns once the server
    /// accepts connections again.
    pub fn restart(&self, down: std::time::Duration) {
        self.pg_ctl(&["stop", "-m", "fast"]);
        std::thread::sleep(down);
        self.pg_ctl(&["start"]);
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let (data, log) = (self.data(), self.dir.join("postgres.log"));
        let log = log.to_string_lossy();
        let mut all = vec!["-D", &data, "-o", &options, "-l", &log, "-w"];
        all.extend_from_slice(args);
        self.pg("pg_ctl", &all);
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        run(&self.bin.join(tool).to_string_lossy(), args, is_root());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let _ = command(&pg_ctl.to_string_lossy(), is_root())
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `program`, run as `postgres` when asked (through runuser, as root).
fn command(program: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn run(program: &str, args: &[&str], as_postgres: bool) {
    let output = command(program, as_postgres).args(args).output();
    let output = output.unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest installed server's binaries (Debian keeps them off PATH).
fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
