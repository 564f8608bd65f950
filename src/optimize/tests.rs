use super::*;

fn ksm_dir(run: i64) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("run"), format!("{run}\n")).unwrap();
    std::fs::write(d.path().join("pages_to_scan"), "100\n").unwrap();
    std::fs::write(d.path().join("sleep_millisecs"), "20\n").unwrap();
    d
}

fn read(d: &Path, n: &str) -> String {
    std::fs::read_to_string(d.join(n))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn ksm_is_tuned_and_then_restored() {
    let d = ksm_dir(0);
    let o = Optimizer::new(d.path(), 2);
    assert_eq!(o.ksm_disable(), Err(OptimizeError::KsmOff));
    o.ksm_enable().unwrap();
    assert!(o.ksm_enabled());
    assert_eq!(read(d.path(), "run"), "1");
    assert_eq!(read(d.path(), "pages_to_scan"), "100000");
    assert_eq!(read(d.path(), "sleep_millisecs"), "10");
    assert_eq!(o.ksm_enable(), Err(OptimizeError::KsmOn));
    o.ksm_disable().unwrap();
    assert_eq!(
        (
            read(d.path(), "run"),
            read(d.path(), "pages_to_scan"),
            read(d.path(), "sleep_millisecs")
        ),
        ("0".into(), "100".into(), "20".into())
    );
    assert_eq!(
        OptimizeError::KsmOff.to_string(),
        "ksm is not enabled",
        "minimega's words"
    );
}

#[test]
fn a_host_without_ksm_is_a_clear_error_and_nothing_changes() {
    let d = tempfile::tempdir().unwrap();
    let o = Optimizer::new(&d.path().join("ksm"), 2);
    let e = o.ksm_enable().unwrap_err().to_string();
    assert!(
        e.starts_with("cannot use KSM: ") && e.contains("/ksm/run"),
        "{e}"
    );
    assert!(!o.ksm_enabled());
}

#[test]
fn cpu_lists_as_minimega_takes_them() {
    assert_eq!(parse_cpus("[1,2-3]", 4).unwrap(), [1, 2, 3]);
    assert_eq!(parse_cpus("0", 1).unwrap(), [0]);
    assert_eq!(parse_cpus("3,1,1", 4).unwrap(), [1, 3]);
    let e = parse_cpus("[0-4]", 2).unwrap_err().to_string();
    assert_eq!(
        e,
        "cannot expand CPU range: CPU 4 is out of range (this host has CPUs 0-1)"
    );
    assert!(parse_cpus("a", 2).is_err() && parse_cpus("2-1", 4).is_err());
    let sets: BTreeMap<usize, Vec<u32>> = [(0, vec![1, 2]), (1, vec![3]), (2, vec![4])].into();
    assert_eq!(least_loaded(&sets), Some(1));
    assert_eq!(least_loaded(&BTreeMap::new()), None);
}

#[test]
fn affinity_pins_a_process_and_frees_it_again() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = Optimizer::new(Path::new("/nonexistent"), 1);
    assert_eq!(o.disable_affinity("ns"), Err(OptimizeError::AffinityOff));
    o.enable_affinity("ns", &[pid]).unwrap();
    assert_eq!(affinity_of(pid).unwrap(), [0]);
    assert_eq!(o.ns("ns").sets.get(&0).unwrap(), &vec![pid]);
    o.disable_affinity("ns").unwrap();
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(affinity_of(pid).unwrap().len() >= all);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn hugepages_must_be_a_directory() {
    let o = Optimizer::new(Path::new("/nonexistent"), 1);
    let e = o
        .set_hugepages("ns", "/no/such/dir")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "hugepages: /no/such/dir is not a directory (mount hugetlbfs there first)"
    );
    let d = tempfile::tempdir().unwrap();
    o.set_hugepages("ns", d.path().to_str().unwrap()).unwrap();
    assert_eq!(o.ns("ns").hugepages, d.path().to_str().unwrap());
    o.clear("ns").unwrap();
    assert_eq!(o.ns("ns"), NsState::default());
}
