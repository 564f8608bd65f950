//! The command tables over the node: one file per command family, the
//! orchestration that spans rooms (a launch across a namespace's hosts, a
//! bridge spanning them, where a command runs), the engine built from
//! them, and [`Core`], the node with its engine that every front door
//! holds. The engine's view of the node is `impl Context for Node` here.

pub mod capture;
pub mod cc;
pub mod cc_mount;
pub mod cc_post;
pub mod cc_tunnel;
pub mod console;
pub mod debug;
pub mod deploy;
pub mod disk;
pub mod files;
pub mod host;
pub mod mesh;
pub mod mirror;
pub mod misc;
pub mod net;
pub mod net_bond;
pub mod net_span;
pub mod ns;
pub mod ns_launch;
pub mod ns_save;
pub mod nuke;
pub mod optimize;
pub mod plumb;
pub mod preprocess;
pub mod read;
pub mod router;
pub mod scope;
pub mod shell;
pub mod vm;
pub mod vm_config;
pub mod vm_hotplug;
pub mod vm_migrate;
pub mod vm_top;
pub mod vnc;

pub use crate::hostinfo::HOST_COLUMNS;

use crate::command::{builtins, BoxFuture, Context, Elsewhere, Engine, Group, Session, Wide};
use crate::config::Config;
use crate::node::Node;
use std::sync::Arc;

/// The whole command table: the language's own commands and every room's.
pub fn engine() -> Engine<Node> {
    let mut specs = builtins::specs::<Node>();
    specs.extend(host::specs());
    specs.extend(read::specs());
    specs.extend(mesh::specs());
    specs.extend(ns::specs());
    specs.extend(plumb::specs());
    specs.extend(deploy::specs());
    specs.extend(vm::specs());
    specs.extend(net::specs());
    specs.extend(net_bond::specs());
    specs.extend(capture::specs());
    specs.extend(misc::specs());
    specs.extend(debug::specs());
    specs.extend(nuke::specs());
    specs.extend(optimize::specs());
    specs.extend(mirror::specs());
    specs.extend(vm_hotplug::specs());
    specs.extend(vm_top::specs());
    specs.extend(vm_migrate::specs());
    specs.extend(disk::specs());
    specs.extend(files::specs());
    specs.extend(shell::specs());
    specs.extend(cc::specs());
    specs.extend(router::specs());
    specs.extend(vnc::specs());
    specs.extend(console::specs());
    Engine::new(specs)
}

/// The node and its engine: what every front door holds.
#[derive(Clone)]
pub struct Core {
    pub node: Arc<Node>,
    pub engine: Arc<Engine<Node>>,
}

impl Core {
    pub fn new(config: Config) -> Core {
        let d = Core {
            node: Arc::new(Node::new(config)),
            engine: Arc::new(engine()),
        };
        // Commands from other nodes go through the same engine. Weak: the
        // node owns the mesh, which owns this runner.
        let node = Arc::downgrade(&d.node);
        let engine = d.engine.clone();
        d.node.mesh.set_runner(Arc::new(move |mut session, line| {
            let (node, engine) = (node.clone(), engine.clone());
            Box::pin(async move {
                match node.upgrade() {
                    Some(n) => engine.run_line(&n, &mut session, &line).await,
                    None => Vec::new(),
                }
            })
        }));
        d
    }

    pub async fn exec(&self, session: &mut Session, line: &str) -> Vec<Group> {
        self.engine.run_line(&self.node, session, line).await
    }

    /// systemd's STATUS= line.
    pub fn status_line(&self) -> String {
        format!(
            "VMs: {}, mesh size: {}",
            self.node.vm_count(),
            self.node.mesh_size()
        )
    }
}

impl Context for Node {
    fn hostname(&self) -> String {
        self.config.hostname.clone()
    }

    fn elsewhere(&self, wide: &Wide, line: &str, session: &Session) -> Option<Elsewhere> {
        scope::elsewhere(self, wide, line, session)
    }

    fn active_namespace(&self) -> Option<String> {
        self.namespaces.active()
    }

    fn preprocess<'a>(&'a self, value: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(preprocess::expand(&self.config.filepath, value))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_pattern_compiles() {
        let e = super::engine();
        assert!(e.specs().len() > 10);
    }
}
