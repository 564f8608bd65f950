//! The container monitor's cgroup v2 freezer, on a hybrid host's unified
//! hierarchy (`/sys/fs/cgroup/unified`, no controllers needed: freezing
//! and killing are core v2). A test binary of its own: it moves its own
//! process between cgroups. Root only; skipped elsewhere.

use minimega::container::shim::cgroup::Payload;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

#[test]
fn v2_payload_freezes_thaws_kills_and_goes_away() {
    let uni = Path::new("/sys/fs/cgroup/unified");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !uni.join("cgroup.procs").exists() {
        eprintln!("skipped: needs root and a hybrid host's unified hierarchy");
        return;
    }
    let own = format!("/mmt-v2-{}", std::process::id());
    let own_dir = uni.join(own.trim_start_matches('/'));
    std::fs::create_dir(&own_dir).unwrap();
    std::fs::write(own_dir.join("cgroup.procs"), "0").unwrap();

    let p = Payload::create_v2(uni, &own).unwrap();
    let me = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(me.contains(&format!("0::{own}/supervisor")), "{me}");
    let mut child = Command::new("sleep").arg("100").spawn().unwrap();
    std::fs::write(p.procs_file(), child.id().to_string()).unwrap();
    assert_eq!(p.pids().unwrap(), vec![child.id() as i32]);

    let events = own_dir.join("payload/cgroup.events");
    p.freeze().unwrap();
    assert!(std::fs::read_to_string(&events)
        .unwrap()
        .contains("frozen 1"));
    p.thaw().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(std::fs::read_to_string(&events)
        .unwrap()
        .contains("frozen 0"));

    p.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    p.remove();
    assert!(!own_dir.join("payload").exists());
    assert!(!own_dir.join("supervisor").exists());
    let me = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(me.contains(&format!("0::{own}\n")), "{me}");

    std::fs::write(uni.join("cgroup.procs"), "0").unwrap();
    std::fs::remove_dir(&own_dir).unwrap();
}
