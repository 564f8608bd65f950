//! A VM's serial relays live as long as its QEMU: made when it has
//! started (or been adopted: then seeded with the tail of each port's log,
//! so a restarted daemon still replays what came before), closed when it
//! is gone.

use super::relay::{self, Relay, UnixSocket};
use super::{lock, Serial};
use crate::command::BoxFuture;
use crate::vm::hooks::VmHook;
use crate::vm::Vm;
use std::sync::Arc;

pub(super) struct SerialHook(pub Serial);

impl Serial {
    fn close_all(&self, vm_id: u64) {
        self.close_port(vm_id);
        let gone: Vec<Arc<Relay>> = {
            let mut relays = lock(&self.0.relays);
            let keys: Vec<(u64, u64)> = relays.keys().filter(|k| k.0 == vm_id).copied().collect();
            keys.iter().filter_map(|k| relays.remove(k)).collect()
        };
        for r in gone {
            r.close();
        }
    }
}

impl VmHook for SerialHook {
    fn name(&self) -> &'static str {
        "serial"
    }

    /// A container's console is its port 0.
    fn serves(&self, _kind: crate::vm::config::Kind) -> bool {
        true
    }

    fn started<'a>(&'a self, vm: &'a Arc<Vm>, adopted: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // A relaunch starts afresh.
            self.0.close_all(vm.id);
            let container = vm.lock().config.kind == crate::vm::config::Kind::Container;
            for (n, socket, log) in super::ports(vm) {
                let seed = if adopted {
                    relay::log_tail(&log)
                } else {
                    Vec::new()
                };
                let r = Relay::start(UnixSocket(socket), &seed);
                lock(&self.0 .0.relays).insert((vm.id, n), r.clone());
                if container {
                    self.0.open_port(vm.id, &vm.name, r);
                }
            }
        })
    }

    fn release<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.0.close_all(vm.id) })
    }

    fn forget<'a>(&'a self, vm: &'a Vm) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.0.close_all(vm.id) })
    }
}
