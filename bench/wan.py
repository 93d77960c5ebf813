#!/usr/bin/env python3
"""bench/wan.py -- figures of `meridian wan` (docs/wan.md): throughput of one
link with no delay, and the delay added above the setting under load, seen
end to end by this script and by the wan's own
meridian_wan_link_delay_excess_seconds histogram.
Usage: bench/wan.py [path/to/meridian]   (default build/meridian)"""
import socket, subprocess, sys, time, threading, os, re, struct, selectors
exe = sys.argv[1] if len(sys.argv) > 1 else "build/meridian"
import tempfile
TMP = tempfile.mkdtemp(prefix="wanbench-")
def start_wan(lat_ms, target_port, n_routes=1):
    cfg = os.path.join(TMP, "w.ini")
    with open(cfg, "w") as f:
        f.write("[wan]\ncontrol = 127.0.0.1:0\n[link a->b]\nlatency = %sms\n" % lat_ms)
        f.write("[route r]\nlisten = 127.0.0.1:0\ntarget = 127.0.0.1:%d\nlink = a->b\n" % target_port)
    p = subprocess.Popen([exe, "wan", "run", "--config", cfg, "--log-level", "warn"], stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    ctl = line.split()[1]
    import urllib.request, json
    links = json.load(urllib.request.urlopen(ctl + "/links"))
    port = int(links["routes"][0]["listen"].split(":")[1])
    return p, ctl, port

def throughput():
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
    tport = srv.getsockname()[1]
    p, ctl, port = start_wan(0, tport)
    total = 4 * 1024**3
    def sink():
        c, _ = srv.accept(); n = 0
        while n < total:
            d = c.recv(1 << 20)
            if not d: break
            n += len(d)
        res.append(n); c.close()
    res = []
    t = threading.Thread(target=sink); t.start()
    c = socket.create_connection(("127.0.0.1", port))
    buf = b"x" * (1 << 20); t0 = time.monotonic(); sent = 0
    while sent < total:
        c.sendall(buf); sent += len(buf)
    t.join(); dt = time.monotonic() - t0
    c.close(); p.terminate(); p.wait()
    print("throughput, no delay, 1 connection: %.2f Gbit/s (%d MiB in %.2f s)" % (res[0]*8/dt/1e9, res[0] >> 20, dt))

def accuracy(lat_ms, nconn, interval_ms, seconds):
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64)
    tport = srv.getsockname()[1]
    p, ctl, port = start_wan(lat_ms, tport)
    delays = []
    stop = time.monotonic() + seconds
    def server():
        sel = selectors.DefaultSelector(); conns = 0
        srv.setblocking(False); sel.register(srv, selectors.EVENT_READ)
        bufs = {}
        while time.monotonic() < stop + 1:
            for k, _ in sel.select(0.1):
                if k.fileobj is srv:
                    c, _ = srv.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ); bufs[c] = b""
                else:
                    d = k.fileobj.recv(65536)
                    now = time.monotonic()
                    if not d: sel.unregister(k.fileobj); continue
                    b = bufs[k.fileobj] + d
                    while len(b) >= 1024:
                        ts = struct.unpack("d", b[:8])[0]; delays.append((now - ts) * 1000 - lat_ms); b = b[1024:]
                    bufs[k.fileobj] = b
    th = threading.Thread(target=server); th.start()
    cs = [socket.create_connection(("127.0.0.1", port)) for _ in range(nconn)]
    for c in cs: c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    nxt = time.monotonic()
    while time.monotonic() < stop:
        for c in cs:
            c.sendall(struct.pack("d", time.monotonic()) + b"y" * 1016)
        nxt += interval_ms / 1000
        d = nxt - time.monotonic()
        if d > 0: time.sleep(d)
    th.join()
    import urllib.request
    m = urllib.request.urlopen(ctl + "/metrics").read().decode()
    for l in m.splitlines():
        if l.startswith("meridian_wan_link_delay_excess_seconds") and 'direction="forward"' in l:
            print("   ", l)
    for c in cs: c.close()
    p.terminate(); p.wait()
    delays.sort(); n = len(delays)
    q = lambda x: delays[min(n - 1, int(x * n))]
    print("added delay above %gms, %d connections x 1 KiB every %g ms (%d msgs, %.0f msg/s): p50 %.3f ms, p99 %.3f ms, max %.3f ms, min %.3f ms" % (lat_ms, nconn, interval_ms, n, n/seconds, q(0.5), q(0.99), delays[-1], delays[0]))

throughput()
accuracy(35, 1, 1, 5)
accuracy(35, 16, 1, 5)
import shutil
shutil.rmtree(TMP)
