"""The lab topology as data: namespace names and the scripts that build it.

Pure: every function returns text for ``ip -batch``/``nft -f`` or
``sysctl`` arguments; :mod:`mwan.lab.lab` runs them.  Devices::

    router  wan1..wanN (veth to ispK "rtr"), br-lan, lan1..lanM (bridge ports)
    ispK    rtr (to router), upstream (to inet)
    inet    isp1..ispN, lo carries the internet hosts
    lanI    eth0 (peer of the router's lanI)
"""

from __future__ import annotations

from dataclasses import dataclass

from mwan.lab import addressing as a

ECHO_PORT = 7  # inet's transparent echo listener; tproxy sends every port here
ISP_TABLE = "lab"  # table inet lab in each ISP: BCP38 and the faults
ROUTER_NAT_TABLE = "labnat"  # table ip/ip6 labnat in the router: masquerade


@dataclass(frozen=True)
class Names:
    """Namespace names of one lab (``lab_id`` is e.g. ``mwl3fa9c1``)."""

    lab_id: str
    isps: int
    clients: int

    @property
    def router(self) -> str:
        return f"{self.lab_id}-router"

    @property
    def inet(self) -> str:
        return f"{self.lab_id}-inet"

    def isp(self, k: int) -> str:
        if not 1 <= k <= self.isps:
            raise IndexError(f"ISP {k} does not exist (1..{self.isps})")
        return f"{self.lab_id}-isp{k}"

    def client(self, i: int) -> str:
        if not 1 <= i <= self.clients:
            raise IndexError(f"LAN client {i} does not exist (1..{self.clients})")
        return f"{self.lab_id}-lan{i}"

    @property
    def all(self) -> tuple[str, ...]:
        """Every namespace, router first."""
        return (
            self.router,
            self.inet,
            *(self.isp(k) for k in range(1, self.isps + 1)),
            *(self.client(i) for i in range(1, self.clients + 1)),
        )


def host_batch(n: Names) -> str:
    """``ip -batch`` run in the host namespace: create namespaces and links.

    veths are created directly inside their namespaces (``netns`` on both
    ends), so nothing ever appears in the host's own namespace.
    """
    lines = [f"netns add {ns}" for ns in n.all]
    for k in range(1, n.isps + 1):
        lines.append(f"link add wan{k} netns {n.router} type veth peer name rtr netns {n.isp(k)}")
        lines.append(
            f"link add upstream netns {n.isp(k)} type veth peer name isp{k} netns {n.inet}"
        )
    lines.append(f"link add br-lan netns {n.router} type bridge")
    for i in range(1, n.clients + 1):
        lines.append(
            f"link add lan{i} netns {n.router} type veth peer name eth0 netns {n.client(i)}"
        )
    return "\n".join(lines) + "\n"


def _per_dev(key: str, value: str, devs: list[str]) -> list[str]:
    return [f"{key.format(dev=d)}={value}" for d in ["all", "default", *devs]]


def sysctls(n: Names, ns: str) -> list[str]:
    """``key=value`` sysctl settings for namespace ``ns`` (run before links come up)."""
    if ns == n.router:
        devs = [f"wan{k}" for k in range(1, n.isps + 1)] + ["br-lan"]
        devs += [f"lan{i}" for i in range(1, n.clients + 1)]
        forward = True
    elif ns == n.inet:
        devs = [f"isp{k}" for k in range(1, n.isps + 1)]
        forward = False
    elif ns in {n.isp(k) for k in range(1, n.isps + 1)}:
        devs = ["rtr", "upstream"]
        forward = True
    else:
        devs = ["eth0"]
        forward = False
    out = [f"net.ipv4.ip_forward={int(forward)}", f"net.ipv6.conf.all.forwarding={int(forward)}"]
    out += _per_dev("net.ipv4.conf.{dev}.rp_filter", "0", devs)
    out += _per_dev("net.ipv6.conf.{dev}.accept_dad", "0", devs)
    if ns != n.router:
        # the lab takes ISP links down for carrier faults; keep v6 addresses meanwhile
        out += _per_dev("net.ipv6.conf.{dev}.keep_addr_on_down", "1", devs)
    if ns == n.router:
        # bridge ports carry no addresses of their own, as on OpenWrt
        out += [f"net.ipv6.conf.lan{i}.disable_ipv6=1" for i in range(1, n.clients + 1)]
        # an OpenWrt router does not pass bridged frames through the IP hooks
        out += [
            "net.bridge.bridge-nf-call-iptables=0",
            "net.bridge.bridge-nf-call-ip6tables=0",
            "net.bridge.bridge-nf-call-arptables=0",
        ]
    return out


def _addr(dev: str, addr: str, plen: int) -> str:
    nodad = " nodad" if ":" in addr else ""
    return f"addr add {addr}/{plen} dev {dev}{nodad}"


def _default(gw: str, extra: str = "") -> str:
    dst = "::/0" if ":" in gw else "0.0.0.0/0"
    return f"route add {dst} via {gw}{extra}"


def _families(ipv6: bool) -> tuple[int, ...]:
    return (4, 6) if ipv6 else (4,)


def router_batch(n: Names, ipv6: bool) -> str:
    """``ip -n router -batch``: WANs, main-table defaults (metric 10*K), br-lan."""
    lines = ["link set lo up"]
    for k in range(1, n.isps + 1):
        lines.append(f"link set wan{k} up")
        for f in _families(ipv6):
            lines.append(_addr(f"wan{k}", a.wan_addr(k, f), 24 if f == 4 else 64))
    lines.append("link set br-lan up")
    for f in _families(ipv6):
        lines.append(_addr("br-lan", a.lan_router_addr(f), a.lan_plen(f)))
    for i in range(1, n.clients + 1):
        lines += [f"link set lan{i} master br-lan", f"link set lan{i} up"]
    for k in range(1, n.isps + 1):
        for f in _families(ipv6):
            lines.append(_default(a.wan_gateway(k, f), f" dev wan{k} metric {10 * k}"))
    return "\n".join(lines) + "\n"


def isp_batch(k: int, ipv6: bool) -> str:
    """``ip -n ispK -batch``: router link, upstream link, default via inet."""
    lines = ["link set lo up", "link set rtr up", "link set upstream up"]
    for f in _families(ipv6):
        lines.append(_addr("rtr", a.wan_gateway(k, f), 24 if f == 4 else 64))
        lines.append(_addr("upstream", a.upstream_addr(k, f), 24 if f == 4 else 64))
        lines.append(_default(a.inet_addr(k, f)))
    return "\n".join(lines) + "\n"


def inet_batch(n: Names, ipv6: bool) -> str:
    """``ip -n inet -batch``: internet hosts on lo, one link per ISP, routes back."""
    lines = ["link set lo up"]
    for f in _families(ipv6):
        lines += [f"addr add {h}/{32 if f == 4 else 128} dev lo" for h in a.internet_hosts(f)]
    for k in range(1, n.isps + 1):
        lines.append(f"link set isp{k} up")
        for f in _families(ipv6):
            lines.append(_addr(f"isp{k}", a.inet_addr(k, f), 24 if f == 4 else 64))
            lines.append(f"route add {a.wan_network(k, f)} via {a.upstream_addr(k, f)}")
    return "\n".join(lines) + "\n"


def client_batch(i: int, ipv6: bool) -> str:
    """``ip -n lanI -batch``: eth0 on the LAN, default via the router."""
    lines = ["link set lo up", "link set eth0 up"]
    for f in _families(ipv6):
        lines.append(_addr("eth0", a.lan_client_addr(i, f), a.lan_plen(f)))
        lines.append(_default(a.lan_router_addr(f)))
    return "\n".join(lines) + "\n"


def router_nft(ipv6: bool) -> str:
    """The router's own NAT, as an OpenWrt firewall would have it: masquerade out of wan*."""
    fams = ["ip", "ip6"] if ipv6 else ["ip"]
    return "".join(
        f"table {fam} {ROUTER_NAT_TABLE} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        '    oifname "wan*" masquerade\n'
        "  }\n"
        "}\n"
        for fam in fams
    )


def isp_nft(k: int) -> str:
    """ISP K's forward filter: BCP38 on the router link, then the (empty) fault chains."""
    t = ISP_TABLE
    return (
        f"table inet {t} {{\n"
        "  counter bcp38_drops {}\n  counter outage_drops {}\n  counter loss_drops {}\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        f'    iifname "rtr" ip saddr != {a.wan_network(k, 4)} counter name "bcp38_drops" drop\n'
        f'    iifname "rtr" ip6 saddr != {a.wan_network(k, 6)} counter name "bcp38_drops" drop\n'
        "    jump fault_outage\n"
        "    jump fault_loss\n"
        "  }\n"
        "  chain fault_outage {\n  }\n"
        "  chain fault_loss {\n  }\n"
        "}\n"
    )


def outage_nft(on: bool) -> str:
    """Start (on) or end an upstream outage: drop everything ISP forwards, both ways."""
    script = f"flush chain inet {ISP_TABLE} fault_outage\n"
    if on:
        script += f'add rule inet {ISP_TABLE} fault_outage counter name "outage_drops" drop\n'
    return script


def loss_nft(percent: float) -> str:
    """Drop ``percent`` % of packets the ISP forwards from the router (0 clears).

    Only the router-to-internet direction is dropped, so a ping or a
    connection attempt is lost with probability ``percent``/100.
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"loss must be 0..100 %, not {percent}")
    script = f"flush chain inet {ISP_TABLE} fault_loss\n"
    threshold = round(percent * 100)
    if threshold > 0:
        script += (
            f'add rule inet {ISP_TABLE} fault_loss iifname "rtr" '
            f'numgen random mod 10000 < {threshold} counter name "loss_drops" drop\n'
        )
    return script


def inet_nft(ipv6: bool) -> str:
    """inet's transparent proxy: TCP/UDP to any port of an internet host goes to the echo server."""
    hosts4 = ", ".join(a.internet_hosts(4))
    lines = [
        "table inet lab {",
        "  chain prerouting {",
        "    type filter hook prerouting priority mangle; policy accept;",
        f"    meta l4proto {{ tcp, udp }} ip daddr {{ {hosts4} }} tproxy ip to :{ECHO_PORT}",
    ]
    if ipv6:
        hosts6 = ", ".join(a.internet_hosts(6))
        lines.append(
            f"    meta l4proto {{ tcp, udp }} ip6 daddr {{ {hosts6} }} tproxy ip6 to :{ECHO_PORT}"
        )
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"
