#!/usr/bin/env python3
"""sockproxy.py LISTEN TARGET: relay each connection to the Unix socket
LISTEN to a new connection to the Unix socket TARGET, byte for byte.
SIGUSR1 cuts every relayed connection at once, as a failing network
would; connections made after it are relayed as before. SIGTERM stops
it. For tests only."""
import os, selectors, signal, socket, sys

listen_path, target = sys.argv[1], sys.argv[2]
if os.path.exists(listen_path):
    os.unlink(listen_path)
srv = socket.socket(socket.AF_UNIX)
srv.bind(listen_path)
srv.listen(64)
sel = selectors.DefaultSelector()
sel.register(srv, selectors.EVENT_READ)
peer = {}                       # each relayed socket -> the other end
cut = False

def on_usr1(signum, frame):
    global cut
    cut = True

signal.signal(signal.SIGUSR1, on_usr1)
signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))

def close(s):
    other = peer.pop(s, None)
    for x in (s, other):
        if x is None:
            continue
        peer.pop(x, None)
        try:
            sel.unregister(x)
        except (KeyError, ValueError):
            pass
        x.close()

while True:
    if cut:
        cut = False
        for s in list(peer):
            close(s)
    try:
        events = sel.select(0.1)
    except InterruptedError:
        continue
    for key, _ in events:
        s = key.fileobj
        if s is srv:
            c, _ = srv.accept()
            u = socket.socket(socket.AF_UNIX)
            u.connect(target)
            peer[c], peer[u] = u, c
            sel.register(c, selectors.EVENT_READ)
            sel.register(u, selectors.EVENT_READ)
            continue
        if s not in peer:
            continue
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            close(s)
            continue
        try:
            peer[s].sendall(data)
        except OSError:
            close(s)
