"""The two-router lab's topology as data (pure): names, and the scripts that build it.

:mod:`mwan.lab.ha` runs them; the picture is in its docstring.  Devices::

    ra, rb   lan0 (to the switch), sync0 (to the other router), wan1..wanN (to ISP K)
    sw       br-lan: ports ra, rb, lan1..lanM
    ispK     rtr: a bridge with ports ra, rb (ISP K's gateway address), upstream
    lanI     eth0
"""

from __future__ import annotations

from dataclasses import dataclass

from mwan.lab import addressing, topology

ROUTERS = ("a", "b")
PRIORITY = {"a": 150, "b": 100}
HOST = {"a": 2, "b": 3}  # last octet of each router's own addresses
SYNC = {"a": "10.254.0.1", "b": "10.254.0.2"}
SYNC_PREFIX = 30
VRID = 61


def wan_vip(k: int) -> str:
    """WAN K's virtual address: the source address of everything the LAN sends out of it."""
    return f"10.100.{k}.254"


def lan_vip() -> str:
    return addressing.lan_router_addr(4)


@dataclass(frozen=True)
class HaNames(topology.Names):
    """A two-router lab's namespaces: ``router`` is A; ``all`` adds B and the LAN switch."""

    def router_ns(self, r: str) -> str:
        if r not in ROUTERS:
            raise IndexError(f"router {r!r} does not exist (a, b)")
        return f"{self.lab_id}-r{r}"

    @property
    def router(self) -> str:
        return self.router_ns("a")

    @property
    def switch(self) -> str:
        return f"{self.lab_id}-sw"

    @property
    def all(self) -> tuple[str, ...]:
        return (self.router_ns("a"), self.router_ns("b"), self.switch, self.inet,
                *(self.isp(k) for k in range(1, self.isps + 1)),
                *(self.client(i) for i in range(1, self.clients + 1)))


def ha_section(r: str, isps: int, advert_int: float, run_dir: str, conf_dir: str,
               preempt: bool = False) -> str:
    """Router ``r``'s ``config ha`` (the rest of the mwan config is the same on both)."""
    peer = SYNC["b" if r == "a" else "a"]
    vips = [f"lan0 {lan_vip()}/24"] + [f"wan{k} {wan_vip(k)}/24" for k in range(1, isps + 1)]
    lines = ["config ha 'ha'", f"\toption router_id 'r{r}'", f"\toption priority '{PRIORITY[r]}'",
             f"\toption advert_int '{advert_int:g}'", f"\toption preempt '{int(preempt)}'",
             f"\toption vrid '{VRID}'", "\toption sync_device 'sync0'",
             f"\toption sync_address '{SYNC[r]}'", f"\toption sync_prefix '{SYNC_PREFIX}'",
             f"\toption peer '{peer}'", f"\toption run_dir '{run_dir}'",
             f"\toption conf_dir '{conf_dir}'"]
    lines += [f"\tlist virtual_address '{v}'" for v in vips]
    return "\n".join(lines) + "\n"


def host_batch(n: HaNames) -> str:
    """``ip -batch`` in the host namespace: the namespaces and every link (made inside them)."""
    lines = [f"netns add {ns}" for ns in n.all]
    lines.append(f"link add br-lan netns {n.switch} type bridge")
    for r in ROUTERS:
        ns = n.router_ns(r)
        lines.append(f"link add lan0 netns {ns} type veth peer name r{r} netns {n.switch}")
        for k in range(1, n.isps + 1):
            lines.append(f"link add wan{k} netns {ns} type veth peer name r{r} "
                         f"netns {n.isp(k)}")
    lines.append(f"link add sync0 netns {n.router_ns('a')} type veth peer name sync0 "
                 f"netns {n.router_ns('b')}")
    for k in range(1, n.isps + 1):
        lines.append(f"link add rtr netns {n.isp(k)} type bridge")
        lines.append(f"link add upstream netns {n.isp(k)} type veth peer name isp{k} "
                     f"netns {n.inet}")
    for i in range(1, n.clients + 1):
        lines.append(f"link add lan{i} netns {n.switch} type veth peer name eth0 "
                     f"netns {n.client(i)}")
    return "\n".join(lines) + "\n"


def sysctls(n: HaNames, ns: str) -> list[str]:
    """``key=value`` sysctls of namespace ``ns``."""
    nobr = ["net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0",
            "net.bridge.bridge-nf-call-arptables=0"]
    if ns in (n.router_ns("a"), n.router_ns("b")):
        devs = ["all", "default", "lan0", "sync0", *(f"wan{k}" for k in range(1, n.isps + 1))]
        # the peer's neighbour entry turns FAILED within seconds, not a minute, when the
        # peer stops answering (mwan.ha.status reads it as "peer unreachable")
        neigh = ["net.ipv4.neigh.sync0.base_reachable_time_ms=2000",
                 "net.ipv4.neigh.sync0.delay_first_probe_time=1"]
        return ["net.ipv4.ip_forward=1", *(f"net.ipv4.conf.{d}.rp_filter=0" for d in devs),
                *neigh]
    if ns == n.switch:
        return nobr
    if ns in {n.isp(k) for k in range(1, n.isps + 1)}:
        return ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0", *nobr]
    return topology.sysctls(n, ns)


def router_batch(n: HaNames, r: str) -> str:
    """Router ``r``: its own addresses on lan0, sync0 and each WAN; defaults; the blackhole."""
    h = HOST[r]
    lines = ["link set lo up", "link set lan0 up", f"addr add 192.168.1.{h}/24 dev lan0",
             "link set sync0 up", f"addr add {SYNC[r]}/{SYNC_PREFIX} dev sync0",
             f"route add blackhole 10.254.0.0/{SYNC_PREFIX} metric 1000"]
    for k in range(1, n.isps + 1):
        lines += [f"link set wan{k} up", f"addr add 10.100.{k}.{h}/24 dev wan{k}"]
    for k in range(1, n.isps + 1):
        lines.append(f"route add 0.0.0.0/0 via {addressing.wan_gateway(k)} dev wan{k} "
                     f"metric {10 * k}")
    return "\n".join(lines) + "\n"


def router_nft(n: HaNames) -> str:
    """SNAT LAN traffic to each WAN's virtual address (the router's own keeps its own)."""
    rules = "".join(f'    oifname "wan{k}" ip saddr 192.168.1.0/24 snat ip to {wan_vip(k)}\n'
                    for k in range(1, n.isps + 1))
    return (f"table ip {topology.ROUTER_NAT_TABLE} {{\n  chain postrouting {{\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f"{rules}  }}\n}}\n")


def isp_batch(k: int) -> str:
    """ISP ``k``: the bridge ``rtr`` both routers hang off (its gateway address), upstream."""
    # a fixed MAC: a bridge otherwise takes its lowest port's, and would change it (the
    # ISP's gateway MAC!) when a router's port goes away with its namespace
    lines = ["link set lo up", f"link set rtr address 02:00:00:00:{k:02x}:01",
             "link set rtr up", "link set upstream up",
             f"addr add {addressing.wan_gateway(k)}/24 dev rtr",
             f"addr add {addressing.upstream_addr(k)}/24 dev upstream",
             f"route add 0.0.0.0/0 via {addressing.inet_addr(k)}"]
    for r in ROUTERS:
        lines += [f"link set r{r} master rtr", f"link set r{r} up"]
    return "\n".join(lines) + "\n"


def switch_batch(n: HaNames) -> str:
    """The LAN switch: br-lan with both routers and the clients."""
    lines = ["link set lo up", "link set br-lan up"]
    ports = [f"r{r}" for r in ROUTERS] + [f"lan{i}" for i in range(1, n.clients + 1)]
    for p in ports:
        lines += [f"link set {p} master br-lan", f"link set {p} up"]
    return "\n".join(lines) + "\n"


def client_batch(i: int) -> str:
    return (f"link set lo up\nlink set eth0 up\n"
            f"addr add {addressing.lan_client_addr(i)}/24 dev eth0\n"
            f"route add 0.0.0.0/0 via {lan_vip()}\n")
