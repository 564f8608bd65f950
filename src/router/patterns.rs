//! The patterns of `router` and `clear router`: minimega 3.1.0's, in the
//! pattern syntax of [`crate::command::pattern`] (the same syntax), for the
//! daemon's Spec table. [`super::grammar`] turns a match into a form.

pub const ROUTER_SHORT: &str = "configure running minirouter VMs";
pub const CLEAR_ROUTER_SHORT: &str = "reset a router's configuration";

/// `router`'s patterns, as minimega 3.1.0 has them (its `importbird` form
/// is commented out there, so it is left out here).
pub const ROUTER_PATTERNS: &[&str] = &[
    "router <vm>",
    "router <vm> <commit,>",
    "router <vm> <rid,> <id>",
    "router <vm> <log,> <level,> <fatal,error,warn,info,debug>",
    "router <vm> <interface,> <network> <IPv4/MASK or IPv6/MASK or dhcp> [lo,]",
    "router <vm> <dhcp,> <listen address> <range,> <low address> <high address>",
    "router <vm> <dhcp,> <listen address> <router,> <router address>",
    "router <vm> <dhcp,> <listen address> <dns,> <address>",
    "router <vm> <dhcp,> <listen address> <static,> <mac> <ip>",
    "router <vm> <dns,> <ip> <hostname>",
    "router <vm> <upstream,> <ip>",
    "router <vm> <gw,> <gw>",
    "router <vm> <ra,> <subnet>",
    "router <vm> <route,> <static,> <network> <next-hop> [staticroutename]",
    "router <vm> <route,> <ospf,> <area> <network>",
    "router <vm> <route,> <ospf,> <area> <network> <option> <value>",
    "router <vm> <route,> <ospf,> <area> <export,> <Ipv4/Mask or staticroutename>",
    "router <vm> <route,> <bgp,> <processname> <local,neighbor> <IPv4> <asnumber>",
    "router <vm> <route,> <bgp,> <processname> <rrclient,>",
    "router <vm> <route,> <bgp,> <processname> <export,> <all,filter> <filtername>",
    "router <vm> <fw,> <default,> <accept,drop>",
    "router <vm> <fw,> <accept,drop,reject> <in,out> <index> <dst> <proto>",
    "router <vm> <fw,> <accept,drop,reject> <in,out> <index> <src> <dst> <proto>",
    "router <vm> <fw,> chain <chain> <default,> action <accept,drop,reject>",
    "router <vm> <fw,> chain <chain> action <accept,drop,reject> <dst> <proto>",
    "router <vm> <fw,> chain <chain> action <accept,drop,reject> <src> <dst> <proto>",
    "router <vm> <fw,> chain <chain> apply <in,out> <index>",
];

/// `clear router`'s patterns, as minimega 3.1.0 has them.
pub const CLEAR_ROUTER_PATTERNS: &[&str] = &[
    "clear router",
    "clear router <vm>",
    "clear router <vm> <rid,>",
    "clear router <vm> <interface,>",
    "clear router <vm> <interface,> <network>",
    "clear router <vm> <interface,> <network> <IPv4/MASK or IPv6/MASK or dhcp or all> [lo,]",
    "clear router <vm> <dhcp,>",
    "clear router <vm> <dhcp,> <listen address>",
    "clear router <vm> <dhcp,> <listen address> <range,>",
    "clear router <vm> <dhcp,> <listen address> <router,>",
    "clear router <vm> <dhcp,> <listen address> <dns,>",
    "clear router <vm> <dhcp,> <listen address> <static,>",
    "clear router <vm> <dhcp,> <listen address> <static,> <mac>",
    "clear router <vm> <dns,>",
    "clear router <vm> <dns,> <ip>",
    "clear router <vm> <upstream,>",
    "clear router <vm> <gw,>",
    "clear router <vm> <ra,>",
    "clear router <vm> <ra,> <subnet>",
    "clear router <vm> <route,>",
    "clear router <vm> <route,> <static,namedstatic>",
    "clear router <vm> <route,> <static,> <network or all> [staticroutename]",
    "clear router <vm> <route,> <ospf,>",
    "clear router <vm> <route,> <ospf,> <area>",
    "clear router <vm> <route,> <ospf,> <area> <network>",
    "clear router <vm> <route,> <ospf,> <area> <export,> <Ipv4/Mask or staticroutename>",
    "clear router <vm> <route,> <bgp,> <processname>",
    "clear router <vm> <route,> <bgp,> <processname> <rrclient,>",
    "clear router <vm> <route,> <bgp,> <processname> <local,neighbor>",
    "clear router <vm> <fw,>",
];
