//! `bench web [N, default 1000] [ROUNDS, default 5]`: the web console with
//! a table of N VMs in headless chromium.
//!
//! N paused QEMUs do not fit this shared 2-core, 24 GiB machine (about
//! 34 MiB each, 34 GiB for 1,000), so the daemon stands in with N VM
//! records: the bench writes N records of VMs whose QEMU is gone into
//! the base directory before the daemon starts, and the daemon adopts
//! them (as QUIT, with every `vm info` column); one real paused VM beside
//! them changes state. Measured:
//!
//! - page load to the complete table (navigation start to the N+1 rows
//!   on screen, the page's own clock), and a sort of the whole table;
//! - one state change reaching the page: `vm start`/`vm stop` of the real
//!   VM, from the call to the cell changing (the page's clock), and the
//!   bytes pushed for it;
//! - the baseline, polling as miniweb does: one `vm info` of N+1 rows
//!   over the command socket (its time and bytes), which miniweb repeats
//!   every 5 s per open page, and its expected latency (the call plus half
//!   the 5 s period).

use super::daemon::Harness;
use super::launch::median;
use super::webdriver::{http, Driver};
use minimega::sock::client::SocketClient;
use minimega::vm::config::VmConfig;
use minimega::vm::state::{self, Record, VmState};
use serde_json::json;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(600);
/// miniweb's refresh period.
const POLL: Duration = Duration::from_secs(5);

pub fn run(args: &[String]) -> ExitCode {
    super::counted("web", args, (1000, 5), bench)
}

/// N records of VMs whose QEMU is gone, as a daemon leaves them.
fn records(dir: &Path, n: u64) -> Result<(), String> {
    let base = dir.join("base");
    for id in 1..=n {
        let vm = base.join(id.to_string());
        std::fs::create_dir_all(&vm).map_err(|e| e.to_string())?;
        let r = Record {
            id,
            name: format!("rec{id}"),
            namespace: "minimega".into(),
            uuid: format!("00000000-0000-4000-8000-{id:012}"),
            config: VmConfig {
                memory: 128,
                ..VmConfig::default()
            },
            state: VmState::Paused,
            pid: None,
            pid_start: None,
            placed: Default::default(),
            launched: 0,
            tags: [("bench".to_string(), "web".to_string())].into(),
            error: String::new(),
        };
        state::save(&vm, &r).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn bench(n: u64, rounds: usize) -> Result<(), String> {
    let h = Harness::start_prepared("web", None, &[], &[], |dir| records(dir, n))?;
    let dir = h.scratch.dir.clone();
    h.exec("vm config memory 128")?;
    h.exec("vm launch kvm live")?;
    let total = n + 1;
    let rows = h.exec(".annotate false .headers false .columns id vm info")?;
    if rows.lines().count() as u64 != total {
        return Err(format!(
            "the daemon holds {} VMs, not {total}",
            rows.lines().count()
        ));
    }

    // The console, with one user.
    let passwords = dir.join("web.passwd");
    let entry = minimega::web::passwd::entry("bench", "bench", false, None, 4)
        .map_err(|e| e.to_string())?;
    std::fs::write(
        &passwords,
        minimega::web::passwd::upsert("", entry).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut web = Command::new(exe.with_file_name("minimega-web"))
        .args(["-addr", &format!("127.0.0.1:{port}")])
        .arg("-passwords")
        .arg(&passwords)
        .arg("-base")
        .arg(dir.join("base"))
        .args([
            "-bus",
            &format!("unix:path={}", dir.join("bus.sock").display()),
        ])
        .args(["-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("web.log")).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("minimega-web: {e}"))?;
    let result = measure(&h, port, &dir, total, rounds);
    // The harness's daemon leaves running VMs behind when it stops, as
    // minimega does; the bench's own VM goes with the bench.
    let _ = h.exec("vm kill live");
    let _ = h.exec("vm flush");
    let _ = web.kill();
    let _ = web.wait();
    result
}

fn measure(h: &Harness, port: u16, dir: &Path, total: u64, rounds: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(port, "GET", "/login", &[], b"").is_err() {
        if Instant::now() > deadline {
            return Err("minimega-web did not answer".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = dir.join("chromium");
    std::fs::create_dir_all(&profile).map_err(|e| e.to_string())?;
    let b = Driver::start(&profile)?;
    b.goto(&format!("http://127.0.0.1:{port}/login"))?;
    b.type_into("#username", "bench")?;
    b.type_into("#password", "bench")?;
    b.click("#submit")?;
    b.wait(
        "the first table",
        LONG,
        "return window.mm && window.mm.tableAt",
    )?;

    println!(
        "web {total}: {} VM records adopted as QUIT + 1 real paused VM",
        total - 1
    );
    // Page loads: navigation start to the whole table on screen.
    let mut loads = Vec::new();
    let complete = format!(
        "return window.mm && window.mm.tableAt && window.mm.rows.size === {total} \
         && document.querySelectorAll('#vms tbody tr').length === {total} && window.mm.tableAt"
    );
    for _ in 0..rounds {
        b.goto(&format!("http://127.0.0.1:{port}/"))?;
        let ms = b.wait("the complete table", LONG, &complete)?;
        loads.push(Duration::from_secs_f64(ms.as_f64().unwrap_or(0.0) / 1000.0));
    }
    let load = median(&loads);
    let initial_bytes = b.js("return window.mm.received", json!([]))?;

    // A sort of the whole table (what a person does with 1,000 rows).
    let sort_ms = b.js_async(
        "const done = arguments[arguments.length - 1];\
         const t = performance.now();\
         document.querySelector('#vms th[data-col=name]').click();\
         requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t)));",
        json!([]),
    )?;

    // One state change: the real VM started and stopped, from the call to
    // the page's cell, on the page's clock.
    let mut changes = Vec::new();
    let mut pushed = Vec::new();
    for round in 0..rounds {
        let (cmd, want) = if round % 2 == 0 {
            ("vm start live", "RUNNING")
        } else {
            ("vm stop live", "PAUSED")
        };
        b.js(
            "const want = arguments[0];\
             window.bench = {t1: 0, bytes: window.mm.received};\
             const tr = () => document.querySelector('#vms tr[data-name=live]');\
             const obs = new MutationObserver(() => {\
               const td = tr() && tr().querySelector('td[data-col=state]');\
               if (td && td.textContent === want && !window.bench.t1) {\
                 window.bench.t1 = performance.now(); obs.disconnect(); }\
             });\
             obs.observe(document.querySelector('#vms tbody'), {subtree: true, childList: true, characterData: true});\
             window.bench.t0 = performance.now();",
            json!([want]),
        )?;
        h.exec(cmd)?;
        let v = b.wait(
            "the state change in the page",
            LONG,
            "return window.bench.t1 && [window.bench.t1 - window.bench.t0, window.mm.received - window.bench.bytes]",
        )?;
        changes.push(Duration::from_secs_f64(
            v[0].as_f64().unwrap_or(0.0) / 1000.0,
        ));
        pushed.push(v[1].as_u64().unwrap_or(0));
    }
    let change = median(&changes);

    // The baseline: one poll as miniweb sends it, over the command socket.
    let sock = dir.join("base").join("minimega");
    let rt = &h.rt;
    let mut polls = Vec::new();
    let mut poll_bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let replies = rt.block_on(async {
            let mut c = SocketClient::connect(&sock)
                .await
                .map_err(|e| e.to_string())?;
            c.exec(".record false namespace \"minimega\" vm info")
                .await
                .map_err(|e| e.to_string())
        })?;
        polls.push(t.elapsed());
        poll_bytes = replies
            .iter()
            .map(|r| serde_json::to_vec(r).map(|v| v.len()).unwrap_or(0))
            .sum::<usize>();
    }
    let poll = median(&polls);
    let expected = poll + POLL / 2;

    println!(
        "page load to the complete table:   {:>8.3} s (median of {rounds}; {} KiB pushed)",
        load.as_secs_f64(),
        initial_bytes.as_u64().unwrap_or(0) / 1024
    );
    println!(
        "sort of the {total} rows:            {:>8.1} ms",
        sort_ms.as_f64().unwrap_or(0.0)
    );
    println!(
        "one state change to the page:      {:>8.3} s (median of {rounds}; {} bytes pushed)",
        change.as_secs_f64(),
        median_u64(&pushed)
    );
    println!(
        "miniweb's poll, one vm info:       {:>8.3} s, {} KiB, every {} s per open page",
        poll.as_secs_f64(),
        poll_bytes / 1024,
        POLL.as_secs()
    );
    println!(
        "miniweb's state change latency:    {:>8.3} s expected (the poll + half its period)",
        expected.as_secs_f64()
    );
    println!(
        "ratio (pushed / polled latency):   {:>8.3}",
        change.as_secs_f64() / expected.as_secs_f64()
    );
    println!(
        "daemon busy for idle pages:        pushed: none; polled: {:.1} % of the time per page",
        100.0 * poll.as_secs_f64() / POLL.as_secs_f64()
    );
    Ok(())
}

fn median_u64(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}
