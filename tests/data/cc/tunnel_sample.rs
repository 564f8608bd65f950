// The sample minitunnel messages of tests/gob/main.go (`tunnelSample()`),
// in Rust. Change both together. Included by src/cc/minitunnel_tests.rs
// and tests/cc_gob.rs, which bring `minitunnel` into scope.

fn tunnel_sample() -> Vec<minitunnel::TunnelMessage> {
    use minitunnel::TunnelMessage as M;
    let (t1, t2) = (5577006791947779410, 8674665223082153551);
    vec![
        M::handshake(false),
        M::handshake(true),
        M::connect(t1, "10.0.0.2", 80),
        M::data(t1, b"GET / HTTP/1.0\r\n\r\n\x00\xff"),
        M::closed(t1, ""),
        M::forward(t2, 8080, "localhost", 22),
        M::forwarded(t2, "listen tcp :8080: bind: address already in use"),
    ]
}
