#!/usr/bin/env python3
"""How long an application's writes wait while `pygrate ff` runs on SQLite.

    scripts/app-writer-wait.py [PYGRATE_BINARY] [VERSIONS]

Writes a project of VERSIONS versions (default 600; three phases each, as
the crash tests' busy project), applies the first, then runs `ff` while a
writer thread inserts a row every 2 ms with a 10 s busy timeout, and prints
the ff's duration and the longest and 99th-percentile wait of a write.
Standard library only; quoted in BENCHMARKS.md.
"""
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/pygrate"
versions = int(sys.argv[2]) if len(sys.argv) > 2 else 600

with tempfile.TemporaryDirectory() as root:
    os.makedirs(os.path.join(root, "releases", "r1"))

    def write(name, text):
        with open(os.path.join(root, "releases", "r1", name), "w") as f:
            f.write(text)

    write("v000-journal.sql", "-- @add\nCREATE TABLE applied_log (version TEXT, phase TEXT);\n")
    for i in range(1, versions + 1):
        v = f"r1/v{i:03}-work"
        write(f"v{i:03}-work.sql",
              f"-- @add\nCREATE TABLE t_{i} (id INTEGER PRIMARY KEY, v TEXT);\n"
              f"INSERT INTO t_{i} VALUES (1, 'a');\nINSERT INTO applied_log VALUES ('{v}', 'add');\n"
              f"-- @simdrop\nUPDATE t_{i} SET v = 'b';\nINSERT INTO applied_log VALUES ('{v}', 'simdrop');\n"
              f"-- @drop\nINSERT INTO applied_log VALUES ('{v}', 'drop');\n")
    db = os.path.join(root, "app.db")
    pygrate = [binary, "-p", root, "--conn", "sqlite:///" + db, "-q"]
    subprocess.run(pygrate + ["ff", "--to", "r1/v000-journal"], check=True)
    conn = sqlite3.connect(db, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE app (id INTEGER)")
    done = threading.Event()
    waits = []

    def writer():
        i = 0
        while not done.is_set():
            started = time.perf_counter()
            conn.execute("INSERT INTO app VALUES (?)", (i,))
            waits.append(time.perf_counter() - started)
            i += 1
            time.sleep(0.002)

    thread = threading.Thread(target=writer)
    thread.start()
    started = time.perf_counter()
    subprocess.run(pygrate + ["ff"], check=True)
    took = time.perf_counter() - started
    done.set()
    thread.join()
    waits.sort()
    print(f"ff {took * 1000:.0f} ms; {len(waits)} writes; longest wait {waits[-1] * 1000:.0f} ms; "
          f"p99 {waits[int(len(waits) * 0.99)] * 1000:.1f} ms")
