"""/metrics for Prometheus (prometheus-client), read from the daemon at scrape time.

Per interface: online (1/0), status as a labelled gauge, per-target latency
and loss of the last test, probes sent and lost, transitions by event; the
quality windows' latency, jitter and loss per interface and target, degraded
(1/0) and passive suspicions.  Per
rule and family: packets and bytes of new connections (nft counters).
Apply durations as a histogram.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..daemon.drift import KINDS

if TYPE_CHECKING:
    from ..daemon.door import DaemonEvent, Door

STATUSES = ("online", "offline", "connecting", "disconnecting", "disabled", "unknown")


class _DaemonCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        rep = self.m.snapshot
        if rep is None:
            return
        online = GaugeMetricFamily("mwan_interface_online", "1 if the interface carries traffic",
                                   labels=["interface"])
        status = GaugeMetricFamily("mwan_interface_status", "1 for the interface's status",
                                   labels=["interface", "status"])
        latency = GaugeMetricFamily("mwan_target_latency_milliseconds",
                                    "average round trip of the last test",
                                    labels=["interface", "target"])
        loss = GaugeMetricFamily("mwan_target_loss_ratio", "probes lost in the last test (0..1)",
                                 labels=["interface", "target"])
        sent = CounterMetricFamily("mwan_probes_sent", "probes sent", labels=["interface"])
        lost = CounterMetricFamily("mwan_probes_lost", "probes lost", labels=["interface"])
        for name, st in rep["interfaces"].items():
            online.add_metric([name], 1.0 if st.get("online") else 0.0)
            now = st.get("status") or "unknown"
            for s in STATUSES:
                status.add_metric([name, s], 1.0 if s == now else 0.0)
            for t in st.get("targets") or []:
                if t.get("latency_ms") is not None:
                    latency.add_metric([name, t["ip"]], float(t["latency_ms"]))
                if t.get("loss_pct") is not None:
                    loss.add_metric([name, t["ip"]], float(t["loss_pct"]) / 100)
            sent.add_metric([name], float(st.get("probes_sent") or 0))
            lost.add_metric([name], float(st.get("probes_lost") or 0))
        yield from (online, status, latency, loss, sent, lost)
        trans = CounterMetricFamily("mwan_interface_transitions",
                                    "interface events (ifup, ifdown, connected, ...)",
                                    labels=["interface", "event"])
        for name, st in rep["interfaces"].items():
            for action, n in sorted((st.get("transitions") or {}).items()):
                trans.add_metric([name, action], float(n))
        yield trans
        yield from _quality_metrics(rep)
        yield from _usage_metrics(rep)
        yield from ha_metrics(rep)
        pk = CounterMetricFamily("mwan_rule_packets", "packets matched by a user rule",
                                 labels=["rule", "family", "policy"])
        by = CounterMetricFamily("mwan_rule_bytes", "bytes matched by a user rule",
                                 labels=["rule", "family", "policy"])
        for r in rep["rules"]:
            labels = [r["rule"], r["family"], r["policy"]]
            pk.add_metric(labels, float(r["packets"]))
            by.add_metric(labels, float(r["bytes"]))
        yield pk
        yield by
        repairs = CounterMetricFamily("mwan_repairs", "drift in mwan's kernel objects that "
                                      "someone else made, repaired", labels=["kind"])
        by_kind = (rep.get("repairs") or {}).get("by_kind") or {}
        for kind in KINDS:
            repairs.add_metric([kind], float(by_kind.get(kind, 0)))
        yield repairs
        failing = GaugeMetricFamily("mwan_apply_failing", "1 while applies fail (retried)")
        failing.add_metric([], 1.0 if rep.get("apply_error") else 0.0)
        yield failing
        fails = CounterMetricFamily("mwan_apply_failures", "failed applies since start")
        fails.add_metric([], float(rep.get("apply_failures") or 0))
        yield fails
        up = GaugeMetricFamily("mwan_uptime_seconds", "seconds since the daemon started")
        up.add_metric([], float(rep.get("uptime_s") or 0))
        yield up


def _quality_metrics(rep: dict[str, Any]) -> Iterator[Metric]:
    """The quality windows (issue 14): per interface and per target; the level."""
    g = {key: GaugeMetricFamily(f"mwan_{who}_window_{metric}", f"{doc} over the quality window",
                                labels=labels)
         for who, labels in (("interface", ["interface"]), ("target", ["interface", "target"]))
         for key, metric, doc in ((f"{who}_lat", "latency_milliseconds", "average round trip"),
                                  (f"{who}_jit", "jitter_milliseconds",
                                   "standard deviation of the round trips"),
                                  (f"{who}_loss", "loss_ratio", "probes lost (0..1)"))}
    degraded = GaugeMetricFamily("mwan_interface_degraded", "1 while the quality window is at "
                                 "its warning (or down) level", labels=["interface"])
    suspicions = CounterMetricFamily("mwan_interface_suspicions", "probe rounds started at once "
                                     "because new TCP connections went unanswered",
                                     labels=["interface"])

    def add(who: str, labels: list[str], w: dict[str, Any]) -> None:
        for key, field, scale in (("lat", "latency_ms", 1.0), ("jit", "jitter_ms", 1.0),
                                  ("loss", "loss_pct", 0.01)):
            if w.get(field) is not None:
                g[f"{who}_{key}"].add_metric(labels, float(w[field]) * scale)

    for name, st in rep["interfaces"].items():
        q = st.get("quality")
        if not q:
            continue
        add("interface", [name], q)
        degraded.add_metric([name], 1.0 if st.get("degraded") else 0.0)
        suspicions.add_metric([name], float(st.get("suspicions") or 0))
        for t in st.get("targets") or []:
            if t.get("window"):
                add("target", [name, t["ip"]], t["window"])
    yield from g.values()
    yield from (degraded, suspicions)


def _usage_metrics(rep: dict[str, Any]) -> Iterator[Metric]:
    """Per-WAN usage and data caps, webhook deliveries (issue 15)."""
    nbytes = CounterMetricFamily("mwan_interface_bytes", "bytes through the WAN (nft counters "
                                 "on its mark; kept across restarts)",
                                 labels=["interface", "direction"])
    packets = CounterMetricFamily("mwan_interface_packets", "packets through the WAN",
                                  labels=["interface", "direction"])
    period = GaugeMetricFamily("mwan_interface_period_bytes", "bytes in the data-cap period",
                               labels=["interface"])
    cap = GaugeMetricFamily("mwan_interface_data_cap_bytes", "the data cap",
                            labels=["interface"])
    standby = GaugeMetricFamily("mwan_interface_standby", "1 while over a standby data cap",
                                labels=["interface"])
    for name, st in rep["interfaces"].items():
        u = st.get("usage")
        if not u:
            continue
        for direction, key in (("in", "rx"), ("out", "tx")):
            nbytes.add_metric([name, direction], float(u[f"{key}_bytes"]))
            packets.add_metric([name, direction], float(u[f"{key}_packets"]))
        if u.get("data_cap"):
            period.add_metric([name], float(u["period_bytes"]))
            cap.add_metric([name], float(u["data_cap"]))
            standby.add_metric([name], 1.0 if st.get("standby") else 0.0)
    yield from (nbytes, packets, period, cap, standby)
    sent = CounterMetricFamily("mwan_notify_sent", "events delivered to a webhook",
                               labels=["notify"])
    failed = CounterMetricFamily("mwan_notify_failed", "events not delivered after every "
                                 "retry", labels=["notify"])
    dropped = CounterMetricFamily("mwan_notify_dropped", "events dropped from a full queue",
                                  labels=["notify"])
    for name, n in (rep.get("notify") or {}).items():
        sent.add_metric([name], float(n["sent"]))
        failed.add_metric([name], float(n["failed"]))
        dropped.add_metric([name], float(n["dropped"]))
    yield from (sent, failed, dropped)


HA_ROLES = ("MASTER", "BACKUP", "FAULT", "STOPPED", "UNKNOWN")
HA_SYNC = ("ok", "link-down", "peer-unreachable", "conntrackd-down")


def ha_metrics(rep: dict[str, Any]) -> Iterator[Metric]:
    """This router's VRRP role and the conntrack sync (config ha only, issue 13)."""
    ha = rep.get("ha")
    if not ha:
        return
    role = GaugeMetricFamily("mwan_ha_role", "1 for this router's VRRP role (from keepalived's "
                             "notify hook)", labels=["role"])
    for r in HA_ROLES:
        role.add_metric([r], 1.0 if ha["role"] == r else 0.0)
    sync = GaugeMetricFamily("mwan_ha_sync_state", "1 for the state of the conntrack sync",
                             labels=["state"])
    for st in HA_SYNC:
        sync.add_metric([st], 1.0 if ha["sync"] == st else 0.0)
    ok = GaugeMetricFamily("mwan_ha_sync_ok", "1 while the sync link is up, conntrackd answers "
                           "and the peer is reachable")
    ok.add_metric([], 1.0 if ha["sync"] == "ok" else 0.0)
    yield from (role, sync, ok)
    stats = ha.get("stats")
    if stats:
        flows = GaugeMetricFamily("mwan_ha_sync_flows", "flows in conntrackd's caches (internal: "
                                  "this router's, external: the peer's)", labels=["cache"])
        for cache in ("internal", "external"):
            flows.add_metric([cache], float(stats[cache]))
        lost = CounterMetricFamily("mwan_ha_sync_lost_messages", "sync messages lost")
        lost.add_metric([], float(stats["lost"]))
        yield from (flows, lost)


class Metrics:
    def __init__(self, door: Door) -> None:
        self.door = door
        self._unsubscribe: Callable[[], None] | None = None
        self.registry = CollectorRegistry()
        self.apply_seconds = Histogram(
            "mwan_apply_duration_seconds", "time to bring the kernel to a new desired state",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry)
        self.registry.register(_DaemonCollector(self))
        self.snapshot: dict[str, Any] | None = None

    def _on_event(self, ev: DaemonEvent) -> None:
        if ev.kind == "apply" and ev.seconds is not None:
            self.apply_seconds.observe(ev.seconds)

    def attach(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.door.subscribe(self._on_event)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def render(self) -> tuple[bytes, str]:
        self.snapshot = await self.door.call("report")
        try:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        finally:
            self.snapshot = None
