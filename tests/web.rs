//! The web console, `minimega-web`, against a real daemon with real
//! guests, in a real browser (Debian's chromium and chromedriver, headless;
//! scripts/deps.sh installs them with novnc and node-xterm). A failing
//! test leaves a screenshot of its page in target/tmp/web-NAME.png.

mod common;

use common::browser::{http, Browser, Web};
use common::guest::{configure_guest, guest, marker_seen, vm_info, VmGuard, BOOT};
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(300);

/// A websocket handshake for `path`, as a browser on `origin` sends it.
fn ws_headers<'a>(origin: &'a str, cookie: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Origin", origin),
        ("Cookie", cookie),
    ]
}

#[test]
fn every_door_needs_a_login_and_actions_need_the_token() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let web = Web::start(
        &d,
        &[("admin", "right", false), ("viewer", "look", true)],
        &[],
    );
    let p = web.port;
    let me = format!("http://127.0.0.1:{p}");

    // Nothing without a login: a page sends a person to the login form,
    // the API, an action and a websocket are refused.
    let (s, head, _) = http(p, "GET", "/", &[], b"");
    assert_eq!(s, 303, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("location: /login"),
        "{head}"
    );
    assert_eq!(http(p, "GET", "/app.js", &[], b"").0, 401);
    assert_eq!(http(p, "GET", "/api/vms", &[], b"").0, 401);
    assert_eq!(http(p, "GET", "/api/screenshot/vm0", &[], b"").0, 401);
    assert_eq!(http(p, "GET", "/novnc/core/rfb.js", &[], b"").0, 401);
    let kill = br#"{"names":["vm0"]}"#;
    assert_eq!(
        http(p, "POST", "/api/vm/kill", &[("Origin", &me)], kill).0,
        401
    );
    let (s, head, _) = http(p, "GET", "/ws/events", &ws_headers(&me, ""), b"");
    assert_eq!(s, 401, "{head}");
    assert_eq!(
        http(p, "GET", "/ws/vnc/vm0", &ws_headers(&me, ""), b"").0,
        401
    );
    assert_eq!(http(p, "GET", "/login", &[], b"").0, 200);

    // A wrong password is refused, and gets no cookie.
    assert_eq!(web.login("admin", "wrong"), None);
    assert_eq!(web.login("nobody", "right"), None);
    let (s, _, body) = http(
        p,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"username=admin&password=wrong",
    );
    assert_eq!(s, 401);
    assert!(String::from_utf8_lossy(&body).contains("Wrong user name or password"));

    let cookie = format!(
        "mmweb={}",
        web.login("admin", "right").expect("admin logs in")
    );
    let (s, _, body) = http(p, "GET", "/api/whoami", &[("Cookie", &cookie)], b"");
    assert_eq!(s, 200);
    let who: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(who["user"], "admin");
    assert_eq!(who["readonly"], false);
    let csrf = who["csrf"].as_str().unwrap().to_string();

    // Logged in, an action still needs the CSRF token and this origin.
    let vm = br#"{"names":["nosuchvm"]}"#;
    let h = |c: &str, o: &str| -> u16 {
        http(
            p,
            "POST",
            "/api/vm/start",
            &[("Cookie", &cookie), ("X-CSRF-Token", c), ("Origin", o)],
            vm,
        )
        .0
    };
    assert_eq!(h("", &me), 403, "no token");
    assert_eq!(h("0123", &me), 403, "a wrong token");
    assert_eq!(h(&csrf, "http://evil.example"), 403, "another origin");
    assert_eq!(h(&csrf, &me), 200, "token and origin: the action runs");
    // A websocket from another origin is refused even with the cookie.
    let (s, _, _) = http(
        p,
        "GET",
        "/ws/events",
        &ws_headers("http://evil.example", &cookie),
        b"",
    );
    assert_eq!(s, 403);
    let (s, head, _) = http(p, "GET", "/ws/events", &ws_headers(&me, &cookie), b"");
    assert_eq!(s, 101, "{head}");

    // A viewer reads but never acts.
    let vcookie = format!(
        "mmweb={}",
        web.login("viewer", "look").expect("viewer logs in")
    );
    let (_, _, body) = http(p, "GET", "/api/whoami", &[("Cookie", &vcookie)], b"");
    let who: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(who["readonly"], true);
    let vcsrf = who["csrf"].as_str().unwrap().to_string();
    assert_eq!(
        http(p, "GET", "/api/hosts", &[("Cookie", &vcookie)], b"").0,
        200
    );
    for path in ["/api/vm/kill", "/api/vm/flush", "/api/command"] {
        let (s, _, body) = http(
            p,
            "POST",
            path,
            &[
                ("Cookie", &vcookie),
                ("X-CSRF-Token", &vcsrf),
                ("Origin", &me),
            ],
            br#"{"names":["x"],"command":"vm kill all"}"#,
        );
        assert_eq!(s, 403, "{path}: {}", String::from_utf8_lossy(&body));
    }

    // Logging out ends the session.
    let (s, _, _) = http(
        p,
        "POST",
        "/logout",
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Origin", &me),
        ],
        b"",
    );
    assert_eq!(s, 303);
    assert_eq!(
        http(p, "GET", "/api/vms", &[("Cookie", &cookie)], b"").0,
        401
    );
}

/// The test guest with a shell on its serial port and a line on its
/// screen, appended to its initrd (`/etc/guest.d`).
fn console_initrd(dir: &Path) -> PathBuf {
    let (_, initrd) = guest();
    let root = dir.join("extra");
    std::fs::create_dir_all(root.join("etc/guest.d")).unwrap();
    std::fs::write(
        root.join("etc/guest.d/50-consoles.sh"),
        "echo 'minimega web console test guest' >/dev/tty1\n\
         (while true; do setsid -c /bin/sh -i </dev/ttyS0 >/dev/ttyS0 2>&1; sleep 1; done) &\n",
    )
    .unwrap();
    let img = dir.join("initrd-consoles.img");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | cpio -o -H newc --quiet | gzip > ../extra.cpio.gz && cat {} ../extra.cpio.gz > {}",
            root.display(),
            initrd.display(),
            img.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "cpio: {}", stderr(&out));
    img
}

fn state_in_page(b: &Browser, name: &str) -> String {
    b.js(
        "const tr = document.querySelector(`#vms tr[data-name=\"${arguments[0]}\"]`);\
         const td = tr && tr.querySelector('td[data-col=state]');\
         return td ? td.textContent : '';",
        json!([name]),
    )
    .as_str()
    .unwrap_or("")
    .to_string()
}

#[test]
fn the_console_in_a_real_browser_with_real_guests() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = VmGuard {
        base: d.base.clone(),
    };
    let initrd = console_initrd(&d.scratch.path);
    configure_guest(&d, "console=tty0 console=ttyS0");
    d.ok(&format!("vm config initrd {}", initrd.display()));
    d.ok("vm launch kvm web[1-3]");
    d.ok("vm start all");
    let web = Web::start(
        &d,
        &[("admin", "right", false), ("viewer", "look", true)],
        &[],
    );

    // Wrong password: the form says so, and the page stays the login.
    let b = Browser::start("console");
    b.login(&web, "admin", "wrong");
    b.wait(
        "the refusal",
        LONG,
        "return document.querySelector('#login-error')?.textContent",
    );
    assert!(b.url().ends_with("/login"), "{}", b.url());

    // The VM table lists the launched VMs with their state, live.
    b.login(&web, "admin", "right");
    b.wait(
        "the VM table",
        LONG,
        "return window.mm && window.mm.rows.size === 3",
    );
    for name in ["web1", "web2", "web3"] {
        wait_for(&format!("{name} RUNNING in the page"), LONG, || {
            (state_in_page(&b, name) == "RUNNING").then_some(())
        });
    }
    let info = vm_info(&d);
    assert_eq!(info.len(), 3);
    for id in info.iter().map(|r| r["id"].clone()) {
        wait_for("the guest's marker", BOOT, || {
            marker_seen(&d.base, &id).then_some(())
        });
    }

    // Kill from the page: the state changes without a reload.
    b.js("window.notReloaded = true;", json!([]));
    b.js(
        "document.querySelector('#vms tr[data-name=\"web3\"] td.sel input').click();",
        json!([]),
    );
    b.js("window.confirm = () => true;", json!([]));
    b.click("button[data-action=kill]");
    wait_for("web3 QUIT in the page", LONG, || {
        (state_in_page(&b, "web3") == "QUIT").then_some(())
    });
    assert_eq!(
        b.js("return window.notReloaded === true", json!([])),
        json!(true)
    );
    let info = vm_info(&d);
    assert_eq!(
        info.iter().find(|r| r["name"] == "web3").unwrap()["state"],
        "QUIT"
    );

    // The picture in the README (doc/web-console.png) is this page
    // (target/tmp/readme-web-console.png).
    let _ = std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("readme-web-console.png"),
        b.screenshot(),
    );

    // The screenshot grid shows images.
    b.goto(&web.url("/#screens"));
    b.wait(
        "two screenshots in the grid",
        LONG,
        "const imgs = [...document.querySelectorAll('#screens img.loaded')];\
         return imgs.filter(i => i.naturalWidth > 0).length >= 2;",
    );
    let names = b.js(
        "return [...document.querySelectorAll('#screens figure')].map(f => f.dataset.name).sort()",
        json!([]),
    );
    assert_eq!(names, json!(["web1", "web2"]), "running VMs only");

    // The VNC page's canvas shows the guest's screen.
    b.goto(&web.url("/vnc.html?vm=web1&ns=minimega"));
    let lit = b.wait(
        "the guest's screen on the canvas",
        LONG,
        "const c = document.querySelector('#screen canvas');\
         if (!c || !c.width) return null;\
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;\
         let lit = 0;\
         for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 60) lit++;\
         return lit > 100 ? [c.width, c.height, lit] : null;",
    );
    let (w, h) = (lit[0].as_u64().unwrap(), lit[1].as_u64().unwrap());
    assert!(w >= 640 && h >= 400, "a VGA screen, not {w}x{h}");

    // The serial console shows the guest's output, and a typed line
    // reaches the guest (the guest's shell computes the answer).
    b.goto(&web.url("/serial.html?vm=web1&ns=minimega"));
    b.wait(
        "the serial console connected",
        LONG,
        "return document.querySelector('#status')?.textContent === 'connected'",
    );
    // Busybox's shell follows its prompt with a cursor position query
    // (ESC [6n), which xterm.js answers: the prompt is what is left
    // without the escape sequences.
    b.type_into(".xterm-helper-textarea", "\u{E007}");
    b.wait(
        "the guest's prompt",
        LONG,
        "return window.mmSerial &&\
         /[#$] /.test(window.mmSerial.seen.text.replace(/\\x1b\\[[0-9;?]*[A-Za-z]/g, ''))",
    );
    b.type_into(".xterm-helper-textarea", "echo WEBTYPED$((6*7))\u{E007}");
    b.wait(
        "the guest's answer",
        LONG,
        "return window.mmSerial.seen.text.includes('WEBTYPED42')",
    );
    let id1 = info.iter().find(|r| r["name"] == "web1").unwrap()["id"].clone();
    let log = std::fs::read_to_string(d.base.join(&id1).join("serial0.log")).unwrap();
    assert!(log.contains("WEBTYPED42"), "the guest ran it: {log}");

    // A viewer sees the table, but no action works, and what it types
    // never reaches the guest.
    let v = Browser::start("viewer");
    v.login(&web, "viewer", "look");
    v.wait(
        "the viewer's table",
        LONG,
        "return window.mm && window.mm.rows.size === 3",
    );
    let hidden = v.js(
        "return [...document.querySelectorAll('[data-action]')].every(b => b.offsetParent === null)",
        json!([]),
    );
    assert_eq!(hidden, json!(true), "no action buttons for a viewer");
    let refused = v.js_async(
        "const done = arguments[arguments.length - 1];\
         const h = {'Content-Type': 'application/json', 'X-CSRF-Token': window.mm.me.csrf};\
         Promise.all(['/api/vm/kill', '/api/vm/stop', '/api/command'].map(p =>\
           fetch(p, {method: 'POST', headers: h, body: JSON.stringify({ns: 'minimega', names: ['web1'], command: 'vm kill all'})})\
             .then(r => r.status))).then(done);",
        json!([]),
    );
    assert_eq!(refused, json!([403, 403, 403]));
    assert_eq!(state_in_page(&v, "web1"), "RUNNING");
    // The daemon's serial relay takes both pages at once (QEMU's own
    // socket takes one client), and replays the console's recent output
    // to the newcomer (QEMU's socket replays nothing).
    v.goto(&web.url("/serial.html?vm=web1&ns=minimega"));
    v.wait(
        "the viewer's serial console, with the recent output",
        LONG,
        "return document.querySelector('#status')?.textContent === 'connected' &&\
         window.mmSerial.seen.text.includes('WEBTYPED42')",
    );
    assert_eq!(
        b.js(
            "return document.querySelector('#status').textContent",
            json!([])
        ),
        json!("connected"),
        "the admin's page still holds the console"
    );
    b.goto(&web.url("/"));
    v.type_into(".xterm-helper-textarea", "echo VIEWER$((7*7))\u{E007}");
    v.goto(&web.url("/"));
    // The admin's next line reaches the guest after whatever the viewer
    // typed would have: its answer coming back first proves nothing of the
    // viewer's went through.
    b.goto(&web.url("/serial.html?vm=web1&ns=minimega"));
    b.wait(
        "the admin's serial console again",
        LONG,
        "return document.querySelector('#status')?.textContent === 'connected'",
    );
    b.type_into(".xterm-helper-textarea", "echo ADMIN$((8*8))\u{E007}");
    b.wait(
        "the admin's later line",
        LONG,
        "return window.mmSerial.seen.text.includes('ADMIN64')",
    );
    let log = std::fs::read_to_string(d.base.join(&id1).join("serial0.log")).unwrap();
    assert!(
        !log.contains("VIEWER49"),
        "a viewer's keys reached the guest: {log}"
    );
    let info = vm_info(&d);
    assert!(info
        .iter()
        .filter(|r| r["name"] != "web3")
        .all(|r| r["state"] == "RUNNING"));
}

/// A container's console in the same page as a guest's serial port: its
/// port 0, through the daemon's relay.
#[test]
fn a_containers_console_in_a_real_browser() {
    let bus = Bus::start();
    let d = Daemon::start(&bus);
    let _guard = common::container::CtGuard(d.base.clone());
    let fs = common::container::agent_filesystem(
        &d.scratch.path,
        "#!/bin/sh\necho CONTAINER-UP\nwhile read l; do echo \"CT:$l\"; done\n",
    );
    d.ok(&format!("vm config filesystem {}", fs.display()));
    d.ok("vm launch container ct");
    d.ok("vm start ct");
    let web = Web::start(&d, &[("admin", "right", false)], &[]);
    let b = Browser::start("container-console");
    b.login(&web, "admin", "right");
    b.goto(&web.url("/serial.html?vm=ct&ns=minimega"));
    b.wait(
        "the container's console, with init's first line",
        LONG,
        "return document.querySelector('#status')?.textContent === 'connected' &&\
         window.mmSerial.seen.text.includes('CONTAINER-UP')",
    );
    b.type_into(".xterm-helper-textarea", "from the page\u{E007}");
    b.wait(
        "init's answer",
        LONG,
        "return window.mmSerial.seen.text.includes('CT:from the page')",
    );
}
