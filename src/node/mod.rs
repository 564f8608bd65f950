//! The daemon's state as the command engine sees it: configuration, the
//! VMs of this node, the mesh, and an event bus the D-Bus edge turns into
//! signals.

mod adapters;
pub mod fetch;

use crate::config::Config;
use crate::event::Event;
use crate::mesh::Mesh;
use crate::ns::Namespaces;
use crate::vm::Vms;
use tokio::sync::broadcast;

pub struct Node {
    pub config: Config,
    pub events: broadcast::Sender<Event>,
    pub mesh: Mesh,
    pub namespaces: Namespaces,
    /// Named pipes and pipelines, joined with the other nodes' plumbers.
    pub plumber: crate::plumb::Plumber,
    /// `deploy` settings (user, flags, host key policy...), node-wide as
    /// minimega keeps them.
    pub deploy: std::sync::Mutex<crate::deploy::Settings>,
    pub vms: Vms,
    /// Command and control of the guests' agents.
    pub cc: crate::cc::Cc,
    pub net: std::sync::Arc<crate::net::Net>,
    pub disks: crate::disk::Disks,
    pub files: crate::files::Files,
    /// The VMs' screens: VNC ports, recordings, playbacks.
    pub vnc: crate::vnc::Vnc,
    /// The VMs' serial consoles, for viewers to attach to.
    pub serial: crate::serial::Serial,
    pub background: crate::shell::Background,
    /// minimega's routers of the VMs running here (`router`).
    pub routers: crate::router::Routers,
}

impl Node {
    pub fn new(config: Config) -> Node {
        let (events, _) = broadcast::channel(1024);
        let vms = Vms::new(&config.base, &config.filepath, events.clone());
        let mesh = Mesh::new(&config, events.clone());
        let disks = crate::disk::Disks::new(&config.base, &config.filepath, vms.clone())
            .with_absolute_backing(config.abs_snapshot);
        let files = crate::files::Files::new(&config.filepath, mesh.clone());
        // The subsystems that take part in each VM's life (see vm::hooks),
        // in the order they prepare; they are released in reverse.
        let mut hooks = crate::vm::hooks::Hooks::default();
        // First: a launch the node cannot hold is refused before any
        // other subsystem makes anything for it.
        hooks.push(std::sync::Arc::new(crate::vm::admission::Admit {
            overcommit: config.overcommit,
            vms: vms.downgrade(),
        }));
        hooks.push(std::sync::Arc::new(fetch::FetchHook(files.clone())));
        hooks.push(std::sync::Arc::new(crate::disk::hook::DiskHook(
            disks.clone(),
        )));
        hooks.push(std::sync::Arc::new(crate::vm::hotplug::Usb));
        hooks.push(std::sync::Arc::new(crate::vm::migrate::Incoming));
        let plumber = crate::plumb::Plumber::new(&config.hostname);
        plumber.set_remote(std::sync::Arc::new(mesh.clone()));
        let net = crate::net::Net::new(&config.base);
        net.set_default_range(config.vlan_range);
        let cc = crate::cc::Cc::new(&config.base, &config.filepath, vms.clone(), plumber.clone());
        cc.set_net(net.clone());
        hooks.push(std::sync::Arc::new(crate::cc::hook::Hook(cc.clone())));
        hooks.push(net.hook());
        let containers = std::sync::Arc::new(crate::container::runtime::Containers {
            tag: crate::base::tag(&config.base),
        });
        vms.set_container_runtime(containers.clone());
        hooks.push(std::sync::Arc::new(
            crate::container::runtime::ContainerHook(containers, vms.downgrade()),
        ));
        let vnc = crate::vnc::Vnc::new(
            crate::vnc::Settings {
                addr: config.vnc_addr,
                ports: config.vnc_ports,
            },
            &config.filepath,
        );
        vnc.set_fetch(std::sync::Arc::new(adapters::FetchFiles(files.clone())));
        vms.set_screens(std::sync::Arc::new(vnc.clone()));
        hooks.push(vnc.hook());
        let serial = crate::serial::Serial::new(config.vnc_addr);
        vms.set_consoles(std::sync::Arc::new(serial.clone()));
        hooks.push(serial.hook());
        vms.set_hooks(hooks);
        Node {
            mesh,
            disks,
            files,
            vnc,
            serial,
            background: Default::default(),
            routers: Default::default(),
            plumber,
            namespaces: Namespaces::default(),
            deploy: Default::default(),
            config,
            events,
            vms,
            cc,
            net,
        }
    }

    /// The mesh as deploy sees it.
    pub fn mesh_join(&self) -> std::sync::Arc<dyn crate::deploy::MeshJoin> {
        std::sync::Arc::new(self.mesh.clone())
    }

    pub fn hostname(&self) -> &str {
        &self.config.hostname
    }

    /// VMs on this node, in every namespace and state.
    pub fn vm_count(&self) -> usize {
        self.vms.count()
    }

    pub fn mesh_size(&self) -> usize {
        self.mesh.size()
    }

    pub fn peers(&self) -> Vec<String> {
        self.mesh.peers()
    }
}
