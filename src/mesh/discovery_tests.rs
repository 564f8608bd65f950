use super::*;

fn ann(name: &str, leader: &str, wants: bool) -> Announce {
    Announce {
        context: "lab".into(),
        name: name.into(),
        port: 9000,
        wants,
        leader: leader.into(),
    }
}

fn view(me: &str, mesh: &[&str], linked: &[&str], degree: usize) -> View {
    let mesh: BTreeSet<String> = mesh.iter().map(|s| s.to_string()).collect();
    View {
        me: me.into(),
        context: "lab".into(),
        degree,
        wants: linked.len() < degree,
        leader: mesh.iter().next().cloned().unwrap_or(me.into()),
        designated: me.into(),
        linked: linked.iter().map(|s| s.to_string()).collect(),
        mesh,
    }
}

#[test]
fn datagrams_round_trip_and_need_the_key() {
    let a = ann("n1", "n1", true);
    let d = encode(&a, b"key one, long enough");
    assert!(d.len() < MAX_DATAGRAM);
    assert_eq!(decode(&d, b"key one, long enough"), Ok(a));
    assert_eq!(decode(&d, b"key two, long enough"), Err(DatagramError::Mac));
    assert_eq!(
        decode(b"meshage:minimega:n1", b"k"),
        Err(DatagramError::NotOurs)
    );
    let mut bad = d.clone();
    bad[6] = 9;
    assert_eq!(decode(&bad, b"k"), Err(DatagramError::Version(9)));
    let mut flipped = d;
    flipped[10] ^= 1;
    assert_eq!(
        decode(&flipped, b"key one, long enough"),
        Err(DatagramError::Mac)
    );
}

#[test]
fn strangers_and_myself_are_ignored() {
    let v = view("n1", &["n1"], &[], 3);
    let mut other = ann("x", "x", true);
    other.context = "elsewhere".into();
    assert_eq!(
        decide(&v, &other, Duration::ZERO),
        Decision::Ignore(Why::OtherContext)
    );
    assert_eq!(
        decide(&v, &ann("n1", "n1", true), Duration::ZERO),
        Decision::Ignore(Why::Myself)
    );
    let off = view("n1", &["n1"], &[], 0);
    assert_eq!(
        decide(&off, &ann("n2", "n2", true), Duration::ZERO),
        Decision::Ignore(Why::Off)
    );
}

#[test]
fn between_meshes_only_the_smaller_leader_dials() {
    let small = view("a", &["a"], &[], 1);
    let big = view("b", &["b"], &[], 1);
    assert_eq!(
        decide(&small, &ann("b", "b", true), Duration::ZERO),
        Decision::Dial
    );
    assert_eq!(
        decide(&big, &ann("a", "a", true), Duration::ZERO),
        Decision::Ignore(Why::NotOurTurn)
    );
    // Even a satisfied node joins a separate mesh, or it would stay split.
    let full = view("a", &["a", "c"], &["c"], 1);
    assert_eq!(
        decide(&full, &ann("b", "b", false), Duration::ZERO),
        Decision::Dial
    );
    // But only the designated node of the mesh does.
    let mut other = full.clone();
    other.designated = "c".into();
    assert_eq!(
        decide(&other, &ann("b", "b", false), Duration::ZERO),
        Decision::Ignore(Why::NotOurTurn)
    );
}

#[test]
fn inside_a_mesh_a_node_short_of_links_gets_them() {
    let v = view("a", &["a", "b", "c"], &["b"], 3);
    assert_eq!(
        decide(&v, &ann("c", "a", true), Duration::ZERO),
        Decision::Dial
    );
    assert_eq!(
        decide(&v, &ann("c", "a", false), Duration::ZERO),
        Decision::Ignore(Why::Satisfied)
    );
    assert_eq!(
        decide(&v, &ann("b", "a", true), Duration::ZERO),
        Decision::Ignore(Why::Linked)
    );
    // At its degree, a node still helps one short of links at once...
    let full = view("a", &["a", "b", "c"], &["b"], 1);
    assert_eq!(
        decide(&full, &ann("c", "a", true), Duration::ZERO),
        Decision::Dial
    );
    // ...over it, only once the other has been short a while (longer
    // the more links over), so the least linked go first.
    let over = view("a", &["a", "b", "c", "d", "e"], &["b", "d", "e"], 1);
    let c = ann("c", "a", true);
    assert_eq!(
        decide(&over, &c, STARVED_STEP),
        Decision::Ignore(Why::Satisfied)
    );
    assert_eq!(decide(&over, &c, STARVED_STEP * 2), Decision::Dial);
    assert_eq!(
        decide(&over, &ann("c", "a", false), STARVED_STEP * 9),
        Decision::Ignore(Why::Satisfied)
    );
}

#[test]
fn a_node_is_short_of_links_since_it_was_first_heard_so() {
    let mut s = Short::default();
    let t0 = Instant::now();
    let forget = Duration::from_secs(30);
    let sec = Duration::from_secs(1);
    assert_eq!(s.heard(&ann("c", "a", true), t0, forget), Duration::ZERO);
    assert_eq!(s.heard(&ann("c", "a", true), t0 + sec * 2, forget), sec * 2);
    assert_eq!(
        s.heard(&ann("d", "a", true), t0 + sec * 2, forget),
        Duration::ZERO
    );
    // Satisfied, then short again: counted afresh.
    assert_eq!(
        s.heard(&ann("c", "a", false), t0 + sec * 3, forget),
        Duration::ZERO
    );
    assert_eq!(
        s.heard(&ann("c", "a", true), t0 + sec * 4, forget),
        Duration::ZERO
    );
    // Silent longer than `forget`: afresh too.
    assert_eq!(
        s.heard(&ann("d", "a", true), t0 + sec * 40, forget),
        Duration::ZERO
    );
}

#[test]
fn only_a_node_short_of_links_or_the_designated_one_speaks() {
    let mut v = view("b", &["a", "b"], &["a"], 1);
    v.designated = "a".into();
    assert!(!v.speaks());
    v.designated = "b".into();
    assert!(v.speaks());
    let short = view("b", &["a", "b"], &["a"], 3);
    assert!(short.speaks());
}

#[test]
fn an_outage_is_logged_once() {
    let mut o = Outage::default();
    assert!(!o.recovered());
    assert!(o.failed());
    assert!(!o.failed());
    assert!(o.recovered());
    assert!(o.failed());
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let cap = Duration::from_secs(10);
    let top = |n| backoff(n, cap, 999);
    assert!(top(0) < Duration::from_millis(100));
    assert!(top(0) >= Duration::from_millis(99));
    assert!(top(3) > Duration::from_millis(790) && top(3) < Duration::from_millis(800));
    assert!(top(30) <= cap);
    assert_eq!(backoff(0, cap, 0), Duration::from_millis(50));
}
