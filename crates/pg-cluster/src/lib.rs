#![doc = include_str!("../README.md")]

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming the folder of the server binaries, ahead of any search.
pub const BIN_DIR_VARIABLE: &str = "PG_CLUSTER_BIN_DIR";

/// Where Debian and Ubuntu install each PostgreSQL version's binaries (`<version>/bin`).
const DEBIAN_VERSIONS_DIR: &str = "/usr/lib/postgresql";

/// The binaries a cluster needs, all from the same version's folder.
const NEEDED_BINARIES: [&str; 4] = ["initdb", "postgres", "pg_isready", "createdb"];

/// The database superuser `initdb` creates (authentication: trust).
pub const SUPERUSER: &str = "postgres";

/// The system user the server runs as when the process is root.
const SYSTEM_USER: &str = "postgres";

/// How long a starting server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often readiness is checked while the server starts.
const READY_POLL: Duration = Duration::from_millis(25);

/// Ports tried when another process takes the free port between picking and binding it.
const PORT_ATTEMPTS: usize = 3;

/// The end of the server log quoted in an error.
const LOG_TAIL_BYTES: u64 = 2_000;

/// Runs the server and stops it when told (a line on standard input) or when the owning process
/// is gone (end of standard input, however that process ended); in that case it also deletes
/// the cluster's folder, which the owner's `Drop` would have done. Arguments: bin dir, data
/// dir, port, cluster folder.
const GUARDIAN: &str = r#"
exec 3<&0
"$1/postgres" -D "$2" -p "$3" -k "$4" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
    </dev/null 3<&- &
server=$!
(
    if read -r _ <&3; then
        kill -INT "$server" 2>/dev/null
    else
        kill -INT "$server" 2>/dev/null
        while kill -0 "$server" 2>/dev/null; do sleep 0.1; done
        rm -rf "$4"
    fi
) </dev/null &
exec 3<&-
wait "$server"
"#;

/// Why a cluster could not be set up or driven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The server binaries were not found.
    #[error(
        "PostgreSQL server binaries not found ({why}); install them (Debian: `apt-get install postgresql`) \
         or set {BIN_DIR_VARIABLE} to the folder holding `initdb`"
    )]
    NotInstalled {
        /// What was looked for, and where.
        why: String,
    },
    /// Running as root without a `postgres` system user to run the server as.
    #[error(
        "running as root, which PostgreSQL refuses, and there is no `{SYSTEM_USER}` system user to run it as \
         (the Debian package creates one; or `useradd --system {SYSTEM_USER}`)"
    )]
    NoSystemUser,
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A PostgreSQL program (`initdb`, `createdb`) failed.
    #[error("`{program}` failed ({status}): {output}")]
    Program {
        /// The program.
        program: String,
        /// How it exited.
        status: ExitStatus,
        /// Its error output.
        output: String,
    },
    /// The server did not come up.
    #[error(
        "the PostgreSQL server on port {port} did not start: {why}; the end of its log:\n{log}"
    )]
    Start {
        /// The port it was given.
        port: u16,
        /// What happened.
        why: String,
        /// The end of its log.
        log: String,
    },
    /// A database name that is not a plain identifier.
    #[error(
        "database name `{0}` is not a plain identifier (ASCII letters, digits and `_`, not starting with a digit)"
    )]
    DatabaseName(String),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// The uid and gid a cluster's programs run as (`None`: the current user).
#[derive(Debug, Clone, Copy)]
struct SystemUser {
    uid: u32,
    gid: u32,
}

/// Whether the process runs as root.
#[allow(unsafe_code)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of the system user `name`, if there is one.
#[allow(unsafe_code)]
fn system_user(name: &str) -> Option<SystemUser> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero `passwd` is a valid value (null pointers and zeros); getpwnam_r fills
    // it with pointers into `buffer`, which outlives every read below, and `result` is either
    // null or points to `entry`.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let status = libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        );
        if status != 0 || result.is_null() {
            return None;
        }
        Some(SystemUser {
            uid: entry.pw_uid,
            gid: entry.pw_gid,
        })
    }
}

/// Whether `folder` holds every binary a cluster needs; names the first missing one.
fn missing_binary(folder: &Path) -> Option<&'static str> {
    NEEDED_BINARIES
        .into_iter()
        .find(|name| !folder.join(name).is_file())
}

/// The version of a `/usr/lib/postgresql/<version>` folder, for ordering (`9.6` < `15`).
fn version_of(name: &str) -> Option<(u32, u32)> {
    let mut parts = name.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some((major, minor))
}

/// The folder of the server binaries: [`BIN_DIR_VARIABLE`], else `initdb` on the `PATH`
/// (symbolic links followed), else the highest version in `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir() -> Result<PathBuf, ClusterError> {
    let checked = |folder: PathBuf, found_as: &str| match missing_binary(&folder) {
        None => Ok(folder),
        Some(missing) => Err(ClusterError::NotInstalled {
            why: format!("{found_as} `{}` has no `{missing}`", folder.display()),
        }),
    };
    if let Some(folder) = std::env::var_os(BIN_DIR_VARIABLE) {
        return checked(PathBuf::from(folder), BIN_DIR_VARIABLE);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|folder| folder.join("initdb"))
        .find(|initdb| initdb.is_file());
    if let Some(initdb) = on_path {
        // Follow a link (`/usr/local/bin/initdb` → the version's folder): the other binaries
        // (`pg_isready`, `createdb`) may only be there.
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(folder) = real.parent() {
            return checked(folder.to_path_buf(), "the folder of `initdb` on the PATH");
        }
    }
    let mut versions: Vec<((u32, u32), PathBuf)> = std::fs::read_dir(DEBIAN_VERSIONS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = version_of(entry.file_name().to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, folder)) => checked(folder, "the newest version's folder"),
        None => Err(ClusterError::NotInstalled {
            why: format!("no `initdb` on the PATH nor in {DEBIAN_VERSIONS_DIR}/*/bin"),
        }),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(io_error("finding a free port on 127.0.0.1"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("finding a free port on 127.0.0.1"))?
        .port();
    Ok(port)
}

/// A running server: its guardian process and the pipe that tells it to stop.
#[derive(Debug)]
struct Server {
    guardian: Child,
    control: ChildStdin,
}

/// A throwaway PostgreSQL cluster: stopped and deleted on drop (see the crate docs).
#[derive(Debug)]
pub struct Cluster {
    /// The cluster's folder: `data/`, the Unix socket, `postgres.log`.
    folder: tempfile::TempDir,
    bin_dir: PathBuf,
    port: u16,
    run_as: Option<SystemUser>,
    server: Option<Server>,
}

impl Cluster {
    /// Creates a cluster in a new temporary folder and starts it on a free port.
    pub fn create() -> Result<Cluster, ClusterError> {
        let bin_dir = find_bin_dir()?;
        let run_as = if is_root() {
            Some(system_user(SYSTEM_USER).ok_or(ClusterError::NoSystemUser)?)
        } else {
            None
        };
        let folder = tempfile::Builder::new()
            .prefix("pg-cluster-")
            .tempdir()
            .map_err(io_error("creating the cluster's temporary folder"))?;
        if let Some(user) = run_as {
            std::os::unix::fs::chown(folder.path(), Some(user.uid), Some(user.gid)).map_err(
                io_error(format!(
                    "handing `{}` over to the `{SYSTEM_USER}` user",
                    folder.path().display()
                )),
            )?;
        }
        let mut cluster = Cluster {
            folder,
            bin_dir,
            port: 0,
            run_as,
            server: None,
        };
        cluster.initdb()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            cluster.port = free_port()?;
            match cluster.start() {
                Err(ClusterError::Start { log, .. })
                    if attempt < PORT_ATTEMPTS && log.contains("could not bind") => {}
                other => return other.map(|()| cluster),
            }
        }
    }

    /// A command for one of the cluster's binaries, run as the cluster's user in its folder.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        self.as_cluster_user(&mut command);
        command
    }

    fn as_cluster_user(&self, command: &mut Command) {
        command.current_dir(self.folder.path());
        if let Some(user) = self.run_as {
            command.uid(user.uid).gid(user.gid);
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.folder.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.folder.path().join("postgres.log")
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let output = self
            .command("initdb")
            .arg("--pgdata")
            .arg(self.data_dir())
            .args([
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(io_error("running `initdb`"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ClusterError::Program {
                program: "initdb".into(),
                status: output.status,
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }

    /// Starts the server (again, after [`Cluster::stop`]) on the same data and port, and waits
    /// until it accepts connections. Nothing when it runs.
    pub fn start(&mut self) -> Result<(), ClusterError> {
        if self.server.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io_error("opening the server log"))?;
        let log_too = log
            .try_clone()
            .map_err(io_error("opening the server log"))?;
        let mut command = Command::new("sh");
        self.as_cluster_user(&mut command);
        let mut guardian = command
            .arg("-c")
            .arg(GUARDIAN)
            .arg("pg-cluster")
            .arg(&self.bin_dir)
            .arg(self.data_dir())
            .arg(self.port.to_string())
            .arg(self.folder.path())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_too)
            .spawn()
            .map_err(io_error("starting the PostgreSQL server"))?;
        let Some(control) = guardian.stdin.take() else {
            return Err(self.start_error("its control pipe is missing".into()));
        };
        self.server = Some(Server { guardian, control });
        if let Err(error) = self.wait_until_ready() {
            let _ = self.stop();
            return Err(error);
        }
        Ok(())
    }

    fn wait_until_ready(&mut self) -> Result<(), ClusterError> {
        let started = Instant::now();
        loop {
            if let Some(server) = &mut self.server {
                let exited = server
                    .guardian
                    .try_wait()
                    .map_err(io_error("watching the PostgreSQL server"))?;
                if let Some(status) = exited {
                    self.server = None;
                    return Err(self.start_error(format!("it exited ({status})")));
                }
            }
            // Through the Unix socket in the cluster's folder: only this server answers there,
            // even if another one took the port.
            let ready = Command::new(self.bin_dir.join("pg_isready"))
                .arg("--host")
                .arg(self.folder.path())
                .args([
                    "--port",
                    &self.port.to_string(),
                    "--timeout",
                    "1",
                    "--quiet",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(io_error("running `pg_isready`"))?;
            if ready.success() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(self.start_error(format!(
                    "not accepting connections after {} s",
                    READY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(READY_POLL);
        }
    }

    fn start_error(&self, why: String) -> ClusterError {
        ClusterError::Start {
            port: self.port,
            why,
            log: self.log_tail(),
        }
    }

    /// The end of the server log.
    fn log_tail(&self) -> String {
        let Ok(mut file) = std::fs::File::open(self.log_path()) else {
            return String::new();
        };
        let length = file.metadata().map_or(0, |m| m.len());
        let _ = file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Shuts the server down (fast shutdown: sessions are ended) and waits until it has; the
    /// data stays for [`Cluster::start`]. Nothing when it is stopped.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        // A guardian that already exited has closed the pipe: its server is gone too.
        let _ = server.control.write_all(b"stop\n");
        let _ = server.control.flush();
        drop(server.control);
        server
            .guardian
            .wait()
            .map_err(io_error("waiting for the PostgreSQL server to stop"))?;
        Ok(())
    }

    /// Whether the server runs (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder of the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The URL of the `postgres` database, as the superuser (no password: trust).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of `database`, as the superuser.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates the database `name` (a plain identifier) and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, ClusterError> {
        let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        if !plain {
            return Err(ClusterError::DatabaseName(name.into()));
        }
        let output = Command::new(self.bin_dir.join("createdb"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--username", SUPERUSER, name])
            .current_dir(self.folder.path())
            .stdin(Stdio::null())
            .output()
            .map_err(io_error("running `createdb`"))?;
        if !output.status.success() {
            return Err(ClusterError::Program {
                program: "createdb".into(),
                status: output.status,
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(self.url_for(name))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Then the folder goes with `TempDir`.
        let _ = self.stop();
    }
}

/// Whether this runs in CI (`CI=true`), where PostgreSQL must be there.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

/// A new cluster for `test`, or `None` after a loud `SKIPPED` line on standard error (past the
/// test harness's capture) when PostgreSQL is not installed or does not start. In CI
/// (`CI=true`) it panics instead: CI never skips.
pub fn start_or_skip(test: &str) -> Option<Cluster> {
    match Cluster::create() {
        Ok(cluster) => Some(cluster),
        Err(why) if in_ci() => panic!(
            "{test}: PostgreSQL is required in CI (CI=true) but not available: {why}. \
             `.ci/run` installs it from the Debian packages."
        ),
        Err(why) => {
            // Straight to the process's standard error: the test harness captures `eprintln!`
            // of a passing test, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test}: PostgreSQL not available: {why}"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        let mut names = vec!["15", "9.6", "16", "10"];
        names.sort_by_key(|name| version_of(name));
        assert_eq!(names, ["9.6", "10", "15", "16"]);
        assert_eq!(version_of("main"), None);
    }

    #[test]
    fn database_names_are_plain_identifiers() {
        // Checked before any server is needed.
        let Some(cluster) = start_or_skip("database_names_are_plain_identifiers") else {
            return;
        };
        for bad in ["", "1abc", "a-b", "a b", "a;drop"] {
            assert!(
                matches!(
                    cluster.create_database(bad),
                    Err(ClusterError::DatabaseName(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_cluster_serves_restarts_and_is_deleted_on_drop() {
        let Some(mut cluster) = start_or_skip("a_cluster_serves_restarts_and_is_deleted_on_drop")
        else {
            return;
        };
        let folder = cluster.folder.path().to_path_buf();
        let url = cluster.create_database("t_one").unwrap();
        assert_eq!(
            url,
            format!("postgres://postgres@127.0.0.1:{}/t_one", cluster.port())
        );
        assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_ok());

        let port = cluster.port();
        cluster.stop().unwrap();
        assert!(!cluster.is_running());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        cluster.start().unwrap();
        assert_eq!(cluster.port(), port);
        // The same data: the database is still there.
        assert!(matches!(
            cluster.create_database("t_one"),
            Err(ClusterError::Program { output, .. }) if output.contains("already exists")
        ));
        drop(cluster);
        assert!(!folder.exists());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn a_cluster_whose_owner_is_gone_stops_and_deletes_itself() {
        let Some(mut cluster) =
            start_or_skip("a_cluster_whose_owner_is_gone_stops_and_deletes_itself")
        else {
            return;
        };
        let folder = cluster.folder.path().to_path_buf();
        let port = cluster.port();
        // What the owning process's exit does: the control pipe closes without a word.
        let mut server = cluster.server.take().unwrap();
        drop(server.control);
        server.guardian.wait().unwrap();
        // The guardian's watcher deletes the folder once the server has exited.
        let deadline = Instant::now() + Duration::from_secs(30);
        while folder.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!folder.exists());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn a_missing_bin_dir_is_named() {
        let error = ClusterError::NotInstalled {
            why: "no `initdb` on the PATH".into(),
        };
        let text = error.to_string();
        assert!(text.contains("apt-get install postgresql") && text.contains(BIN_DIR_VARIABLE));
    }
}
