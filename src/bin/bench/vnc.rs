//! `bench vnc [ROUNDS, default 100]`: the VNC shim beside a direct
//! connection to QEMU's unix socket. A real daemon launches one VM (no
//! disk: SeaBIOS's screen), and a client asks for the whole screen, raw,
//! ROUNDS times in a row, reading every update whole: once straight from
//! QEMU's socket, once through the VM's `vnc_port`, alternating, twice
//! each. Printed: the bytes each way carried (the same, as the shim copies
//! them), the throughput of each, their ratio (shim time over direct time;
//! target <= 1.1) and the daemon's CPU time per MiB it relayed.

use super::daemon::Harness;
use minimega::console::client::{Client, Options};
use minimega::console::rfb::{self, Rect};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field of the line, stime the 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(n(11) + n(12))
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// Reads one FramebufferUpdate (raw rectangles, at 4 bytes a pixel)
/// whole; its size in bytes.
async fn read_update<S: AsyncRead + Unpin>(s: &mut S) -> Result<usize, String> {
    let e = |e: std::io::Error| e.to_string();
    let mut head = [0u8; 4];
    s.read_exact(&mut head[..1]).await.map_err(e)?;
    if head[0] != rfb::server_type::FRAMEBUFFER_UPDATE {
        return Err(format!("unexpected server message {}", head[0]));
    }
    s.read_exact(&mut head[1..]).await.map_err(e)?;
    let count = u16::from_be_bytes([head[2], head[3]]);
    let mut total = 4;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..count {
        let mut r = [0u8; Rect::LEN];
        s.read_exact(&mut r).await.map_err(e)?;
        let rect = Rect::parse(&r);
        let mut left = match rect.encoding {
            rfb::encoding::RAW => rect.raw_len(4),
            rfb::encoding::DESKTOP_SIZE => 0,
            other => return Err(format!("unexpected encoding {other}")),
        };
        total += Rect::LEN + left;
        while left > 0 {
            let n = left.min(buf.len());
            s.read_exact(&mut buf[..n]).await.map_err(e)?;
            left -= n;
        }
    }
    Ok(total)
}

/// ROUNDS whole-screen updates, one after another: bytes and time.
async fn rounds<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    n: usize,
) -> Result<(usize, Duration), String> {
    let c = Client::connect(s, &Options::default())
        .await
        .map_err(|e| e.to_string())?;
    let (w, h) = (c.screen().width(), c.screen().height());
    let mut s = c.into_inner();
    let req = rfb::ClientMessage::FramebufferUpdateRequest {
        incremental: false,
        x: 0,
        y: 0,
        width: w,
        height: h,
    }
    .to_bytes();
    // One to warm up (and to take a resize, if any, out of the way).
    s.write_all(&req).await.map_err(|e| e.to_string())?;
    read_update(&mut s).await?;
    let t0 = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        s.write_all(&req).await.map_err(|e| e.to_string())?;
        bytes += read_update(&mut s).await?;
    }
    Ok((bytes, t0.elapsed()))
}

pub fn run(args: &[String]) -> ExitCode {
    let n: usize = match args.first().map(|a| a.parse()) {
        None => 100,
        Some(Ok(n)) if n > 0 => n,
        _ => {
            eprintln!("usage: bench vnc [ROUNDS]");
            return ExitCode::from(2);
        }
    };
    match bench(n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench vnc: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(n: usize) -> Result<(), String> {
    let h = Harness::start("vnc", None, &[], &["-vncaddr", "127.0.0.1"])?;
    h.exec("vm config memory 64")?;
    h.exec("vm launch kvm screen")?;
    h.exec("vm start screen")?;
    let row = h.exec(".annotate false .headers false .csv true .columns id,vnc_port vm info")?;
    let (id, port) = row
        .trim()
        .split_once(',')
        .ok_or_else(|| format!("vm info: {row}"))?;
    let port: u16 = port.parse().map_err(|_| format!("vnc_port `{port}`"))?;
    let socket: PathBuf = h.scratch.dir.join("base").join(id).join("vnc");
    // Let SeaBIOS draw its screen.
    std::thread::sleep(Duration::from_secs(3));
    let (mut direct, mut shim) = ((0, Duration::ZERO), (0, Duration::ZERO));
    let mut cpu = 0u64;
    for _ in 0..2 {
        let (b, t) = h.rt.block_on(async {
            let s = tokio::net::UnixStream::connect(&socket)
                .await
                .map_err(|e| format!("{}: {e}", socket.display()))?;
            rounds(s, n).await
        })?;
        direct = (direct.0 + b, direct.1 + t);
        let before = cpu_ticks(h.daemon_pid)?;
        let (b, t) = h.rt.block_on(async {
            let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("port {port}: {e}"))?;
            rounds(s, n).await
        })?;
        cpu += cpu_ticks(h.daemon_pid)? - before;
        shim = (shim.0 + b, shim.1 + t);
    }
    let mib = |b: usize| b as f64 / (1u64 << 20) as f64;
    let rate = |(b, t): (usize, Duration)| mib(b) / t.as_secs_f64();
    println!(
        "bench vnc: {n} whole-screen updates, twice each way (load {})",
        super::load()
    );
    println!(
        "  direct to QEMU's socket: {:.1} MiB in {:.2} s, {:.1} MiB/s",
        mib(direct.0),
        direct.1.as_secs_f64(),
        rate(direct)
    );
    println!(
        "  through vnc_port (shim): {:.1} MiB in {:.2} s, {:.1} MiB/s",
        mib(shim.0),
        shim.1.as_secs_f64(),
        rate(shim)
    );
    println!(
        "  ratio shim/direct (time for the same bytes): {:.3} (target <= 1.1)",
        (shim.1.as_secs_f64() / shim.0 as f64) / (direct.1.as_secs_f64() / direct.0 as f64)
    );
    println!(
        "  daemon CPU: {:.2} ms per MiB relayed",
        cpu as f64 / ticks_per_sec() * 1000.0 / mib(shim.0)
    );
    let _ = h.exec("vm kill all");
    Ok(())
}
