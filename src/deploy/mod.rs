//! `deploy`: install minimega on compute nodes over SSH and start them as
//! services that join this node's mesh. Per host, in parallel (bounded):
//! connect (host key checked), probe, upload the package built for the
//! target (or this binary when there is none, as minimega does), install,
//! configure with the head's flags and mesh key, start, and wait until the
//! node is in the mesh. A failure is that host's row; what was half-made on
//! it is undone.

pub mod plan;
pub mod ssh;

use plan::{HeadFlags, Redirect, Target};
use ssh::{HostKeyPolicy, Session, SshError, Trust};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How many hosts are worked on at once.
const PARALLEL: usize = 16;

/// The `deploy` settings of a node, changed by `deploy user`, `deploy flags`...
#[derive(Debug, Clone)]
pub struct Settings {
    pub user: String,
    pub sudo: bool,
    pub identity: Option<PathBuf>,
    pub hostkeys: HostKeyPolicy,
    pub flags: Vec<String>,
    pub redirect: Redirect,
    pub packages: PathBuf,
    pub join_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            user: "root".into(),
            sudo: false,
            identity: None,
            hostkeys: HostKeyPolicy::Strict,
            flags: Vec::new(),
            redirect: Redirect::default(),
            packages: PathBuf::from("/var/lib/minimega/packages"),
            join_timeout: Duration::from_secs(30),
        }
    }
}

/// What deploy needs from the mesh: a dial, and whether a node is in it.
pub trait MeshJoin: Send + Sync {
    fn dial(&self, addr: String) -> crate::command::BoxFuture<'_, Result<(), String>>;
    fn knows(&self, host: &str) -> bool;
}

/// Everything one launch needs, captured when the command runs.
pub struct Job {
    pub settings: Settings,
    pub head: HeadFlags,
    pub version: String,
    pub mesh_key: Vec<u8>,
    pub binary: PathBuf,
    pub home: PathBuf,
}

/// One host's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub host: String,
    pub version: String,
    pub state: String,
    pub error: String,
}

impl Outcome {
    fn failed(host: &str, error: impl ToString) -> Outcome {
        Outcome {
            host: host.to_string(),
            version: String::new(),
            state: "failed".into(),
            error: error.to_string(),
        }
    }
}

/// Runs `command` as root on the target: directly, or through `sudo -n`.
struct Remote {
    session: Session,
    sudo: bool,
    /// Logged in as someone other than root, without sudo: failures get a
    /// hint, as most will be permission errors.
    unprivileged: Option<String>,
}

impl Remote {
    fn wrap(&self, cmd: &str) -> String {
        if self.sudo {
            format!("sudo -n sh -c {}", plan::shell_quote(cmd))
        } else {
            cmd.to_string()
        }
    }

    async fn run(&self, cmd: &str) -> Result<ssh::Run, SshError> {
        self.session.run(&self.wrap(cmd), None).await
    }

    async fn must(&self, what: &str, cmd: &str) -> Result<ssh::Run, String> {
        let r = self.run(cmd).await.map_err(|e| e.to_string())?;
        if r.ok() {
            Ok(r)
        } else {
            Err(format!("{what} failed: {}{}", r.reason(), self.hint()))
        }
    }

    fn hint(&self) -> String {
        match &self.unprivileged {
            Some(user) => format!(" (logged in as {user} without `deploy sudo true`)"),
            None => String::new(),
        }
    }

    async fn upload(&self, data: &[u8], path: &str, mode: u32) -> Result<(), String> {
        let q = plan::shell_quote(path);
        let cmd = self.wrap(&format!(
            "mkdir -p $(dirname {q}) && umask 077 && cat > {q}.part && chmod {mode:o} {q}.part && mv -f {q}.part {q}"
        ));
        let r = self
            .session
            .run(&cmd, Some(data))
            .await
            .map_err(|e| e.to_string())?;
        if r.ok() {
            Ok(())
        } else {
            Err(format!(
                "upload of {path} failed: {}{}",
                r.reason(),
                self.hint()
            ))
        }
    }
}

/// Logs in to `host` as the settings say, with keys from `home`.
async fn connect(settings: &Settings, home: &Path, host: &str) -> Result<Remote, SshError> {
    let identities = match &settings.identity {
        Some(p) => vec![p.clone()],
        None => ssh::default_identities(home),
    };
    let trust = Trust::standard(home, settings.hostkeys);
    let session = Session::connect(
        host,
        22,
        &settings.user,
        &identities,
        trust,
        Duration::from_secs(10),
    )
    .await?;
    let root = settings.user == "root";
    Ok(Remote {
        session,
        sudo: settings.sudo && !root,
        unprivileged: (!root && !settings.sudo).then(|| settings.user.clone()),
    })
}

/// Runs `work` for every host, at most [`PARALLEL`] at once; one outcome
/// per host, in input order.
async fn each_host<F, Fut>(hosts: Vec<String>, work: F) -> Vec<Outcome>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let tasks: Vec<_> = hosts
        .into_iter()
        .map(|host| {
            let (gate, job) = (gate.clone(), work(host.clone()));
            let task = tokio::spawn(async move {
                let _slot = gate.acquire().await;
                job.await
            });
            (host, task)
        })
        .collect();
    let mut out = Vec::new();
    for (host, t) in tasks {
        out.push(
            t.await
                .unwrap_or_else(|e| Outcome::failed(&host, format!("internal error: {e}"))),
        );
    }
    out
}

/// Deploys to every host in parallel; one outcome per host, in input order.
pub async fn launch(job: Arc<Job>, mesh: Arc<dyn MeshJoin>, hosts: Vec<String>) -> Vec<Outcome> {
    each_host(hosts, |host| {
        let (job, mesh) = (job.clone(), mesh.clone());
        async move { launch_one(&job, mesh.as_ref(), &host).await }
    })
    .await
}

async fn launch_one(job: &Job, mesh: &dyn MeshJoin, host: &str) -> Outcome {
    let remote = match connect(&job.settings, &job.home, host).await {
        Ok(r) => r,
        Err(e) => return Outcome::failed(host, e),
    };
    let result = install_and_start(job, mesh, host, &remote).await;
    remote.session.close().await;
    match result {
        Ok(state) => Outcome {
            host: host.to_string(),
            version: job.version.clone(),
            state,
            error: String::new(),
        },
        Err(e) => Outcome::failed(host, e),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn install_and_start(
    job: &Job,
    mesh: &dyn MeshJoin,
    host: &str,
    remote: &Remote,
) -> Result<String, String> {
    let probe = remote.must("probe", plan::PROBE).await?;
    let target = plan::parse_probe(&probe.stdout);
    let package = plan::pick_package(
        &plan::list_packages(&job.settings.packages),
        &job.version,
        &target,
    );
    let binary = if package.is_some() {
        "/usr/bin/minimega"
    } else {
        "/usr/local/bin/minimega"
    };
    let argv = job.head.argv(binary, &job.settings.flags);
    let dropin = plan::dropin(&argv, &job.settings.redirect);
    let current = has_this_build(job, &target)
        && target.dropin_sha256.as_deref() == Some(sha256_hex(dropin.as_bytes()).as_str())
        && target.active;
    if current {
        join(job, mesh, host, &target).await?;
        return Ok("up to date".into());
    }
    if !target.systemd {
        return start_without_systemd(job, mesh, host, remote, &target).await;
    }
    let fresh = target.installed.is_none();
    let step = async {
        match (&package, target.pkg) {
            (Some(file), Some(kind)) => {
                let data = std::fs::read(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("minimega.pkg");
                let staged = format!("{}/{name}", plan::STAGING);
                remote.upload(&data, &staged, 0o644).await?;
                remote
                    .must("install", &plan::install_package(kind, &staged))
                    .await?;
                let _ = remote
                    .run(&format!("rm -f {}", plan::shell_quote(&staged)))
                    .await;
            }
            _ => install_binary(job, remote).await?,
        }
        remote.upload(&job.mesh_key, plan::MESH_KEY, 0o600).await?;
        remote
            .upload(dropin.as_bytes(), plan::DROPIN, 0o644)
            .await?;
        let started = remote.run(plan::START).await.map_err(|e| e.to_string())?;
        if !started.ok() {
            // The daemon's own last words say why; systemctl only says that.
            let said = remote
                .run("journalctl _SYSTEMD_UNIT=minimega.service SYSLOG_IDENTIFIER=minimega -n 1 --no-pager -o cat 2>/dev/null")
                .await
                .map(|r| r.stdout.trim().to_string())
                .unwrap_or_default();
            let why = if said.is_empty() {
                started.reason()
            } else {
                said
            };
            return Err(format!("the service did not start: {why}{}", remote.hint()));
        }
        join(job, mesh, host, &target).await
    };
    match step.await {
        Ok(()) => Ok(if fresh { "installed" } else { "upgraded" }.into()),
        Err(e) => {
            // Nothing half-made is left running: a fresh install is undone.
            // A node that ran minimega before keeps what it has; stopping
            // a working node because its upgrade failed would only take it
            // out of the mesh.
            if fresh {
                let _ = remote.run(&plan::remove(package.and(target.pkg))).await;
            }
            Err(e)
        }
    }
}

/// The target has this version and this mesh key.
fn has_this_build(job: &Job, target: &Target) -> bool {
    target.installed.as_deref() == Some(job.version.as_str())
        && target.key_sha256.as_deref() == Some(sha256_hex(&job.mesh_key).as_str())
}

/// A node without systemd (a product path too): this binary and the key,
/// and the daemon started under nohup with the head's flags, as minimega
/// deploys. A fresh install that fails is undone.
async fn start_without_systemd(
    job: &Job,
    mesh: &dyn MeshJoin,
    host: &str,
    remote: &Remote,
    target: &Target,
) -> Result<String, String> {
    let argv = job
        .head
        .argv("/usr/local/bin/minimega", &job.settings.flags);
    let current = has_this_build(job, target) && plan::runs(target, &argv);
    if current {
        join(job, mesh, host, target).await?;
        return Ok("up to date".into());
    }
    let fresh = target.installed.is_none();
    let step = async {
        let bin = std::fs::read(&job.binary)
            .map_err(|e| format!("cannot read {}: {e}", job.binary.display()))?;
        remote
            .upload(&bin, "/usr/local/bin/minimega", 0o755)
            .await?;
        remote.upload(&job.mesh_key, plan::MESH_KEY, 0o600).await?;
        remote
            .must(
                "starting minimega",
                &plan::start_plain(&argv, &job.settings.redirect),
            )
            .await?;
        join(job, mesh, host, target).await
    };
    match step.await {
        Ok(()) => Ok(if fresh { "installed" } else { "upgraded" }.into()),
        Err(e) => {
            if fresh {
                let _ = remote.run(&plan::remove(None)).await;
            }
            Err(e)
        }
    }
}

/// No package for the target: send this binary, the unit and the policy.
async fn install_binary(job: &Job, remote: &Remote) -> Result<(), String> {
    let bin = std::fs::read(&job.binary)
        .map_err(|e| format!("cannot read {}: {e}", job.binary.display()))?;
    remote
        .upload(&bin, "/usr/local/bin/minimega", 0o755)
        .await?;
    let unit = include_str!("../../systemd/minimega.service")
        .replace("/usr/bin/minimega", "/usr/local/bin/minimega");
    remote
        .upload(
            unit.as_bytes(),
            "/etc/systemd/system/minimega.service",
            0o644,
        )
        .await?;
    let policy = include_str!("../../systemd/org.minimega.Minimega1.conf");
    remote
        .upload(
            policy.as_bytes(),
            "/etc/dbus-1/system.d/org.minimega.Minimega1.conf",
            0o644,
        )
        .await?;
    remote
        .must(
            "setup",
            "(getent group minimega >/dev/null || groupadd --system minimega) && \
             (busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig >/dev/null 2>&1 || true)",
        )
        .await?;
    Ok(())
}

/// Dials the node and waits until the mesh knows it.
async fn join(job: &Job, mesh: &dyn MeshJoin, host: &str, target: &Target) -> Result<(), String> {
    let name = if target.name.is_empty() {
        host
    } else {
        target.name.as_str()
    };
    if mesh.knows(name) {
        return Ok(());
    }
    let deadline = Instant::now() + job.settings.join_timeout;
    let addr = format!("{host}:{}", job.head.port);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Err(e) = mesh.dial(addr.clone()).await {
            last = e;
        }
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if mesh.knows(name) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Err(format!(
        "did not join the mesh within {}s{}",
        job.settings.join_timeout.as_secs(),
        if last.is_empty() {
            String::new()
        } else {
            format!(" (last dial: {last})")
        }
    ))
}

/// `deploy remove`: stops and uninstalls, one outcome per host.
pub async fn remove(settings: Settings, home: PathBuf, hosts: Vec<String>) -> Vec<Outcome> {
    let login = Arc::new((settings, home));
    each_host(hosts, |host| {
        let login = login.clone();
        async move { remove_one(&login.0, &login.1, &host).await }
    })
    .await
}

async fn remove_one(settings: &Settings, home: &Path, host: &str) -> Outcome {
    let remote = match connect(settings, home, host).await {
        Ok(r) => r,
        Err(e) => return Outcome::failed(host, e),
    };
    let res = async {
        let probe = remote.must("probe", plan::PROBE).await?;
        let t = plan::parse_probe(&probe.stdout);
        // Only what the package manager installed is removed through it;
        // a binary deploy sent goes by hand.
        let packaged = remote
            .run("test -x /usr/bin/minimega")
            .await
            .is_ok_and(|r| r.ok());
        let kind = if t.installed.is_some() && packaged {
            t.pkg
        } else {
            None
        };
        remote.must("remove", &plan::remove(kind)).await?;
        Ok::<_, String>(())
    }
    .await;
    remote.session.close().await;
    match res {
        Ok(()) => Outcome {
            host: host.to_string(),
            version: String::new(),
            state: "removed".into(),
            error: String::new(),
        },
        Err(e) => Outcome::failed(host, e),
    }
}
