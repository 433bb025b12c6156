#!/usr/bin/env bash
# Whole-process benchmark of pygrate against its peers (issue 6), through the
# shared harness (../shared/bench beside the repo root). Builds nothing:
# `make bench` has already built target/release/pygrate.
#
#   scripts/bench.sh                 everything below, results in target/bench/
#   scripts/bench.sh --report CSV    only re-print pygrate's ratios from a CSV
#
# 1. smoke test: the harness's pygrate command line on a 3-version project;
# 2. N=1000 on sqlite, postgres, mariadb with floor + every installed peer;
# 3. N=10000 on sqlite (scaling figure) with floor, pygrate, refinery, sqlx, dbmate;
# 4. `pygrate check --offline` on 10,000 versions (after `pygrate sum`);
# 5. pygrate's ratios and the issue's targets, from the CSV.
#
# Environment (all optional):
#   BENCH_HARNESS      harness dir (default: <repo>/../shared/bench)
#   BENCH_BIN_PYGRATE  binary (default: <repo>/target/release/pygrate)
#   BENCH_RUNS         timed runs per cell (default 3; the issue asks for >= 3)
#   BENCH_N            main size (1000);  BENCH_ENGINES (sqlite postgres mariadb)
#   BENCH_TOOLS        (floor dbmate sqitch yoyo sqlx refinery pygrate)
#   BENCH_SCALE_N      scaling size (10000; empty: skip)
#   BENCH_SCALE_TOOLS  (floor pygrate refinery sqlx dbmate)
#   BENCH_CHECK_N      versions for check --offline (10000; empty: skip)
#   BENCH_OUT          output dir (default: <repo>/target/bench)
#   BENCH_NO_WAIT=1    do not wait for running integration tests (see below)
#   BENCH_PRIVATE_MARIADB=0  use the shared MariaDB server (BENCH_MYSQL_URL or
#                      the harness default) instead of a private one on port
#                      BENCH_MARIADB_PORT (3307), data in BENCH_MARIADB_DIR
#   BENCH_PG_URL, BENCH_MYSQL_URL, BENCH_STATE, ...: passed to the harness
#
# WARNING: the harness EMPTIES the databases it is pointed at: every user
# schema of the postgres database and every non-system MariaDB database
# (including other people's pygrate_test_* databases and `test`). So by
# default MariaDB's part runs against a private server started for the run
# (see below); PostgreSQL's against the `postgres` database, which the
# integration tests do not use (they create pygrate_test_* databases). This
# script also waits while `cargo test` integration binaries
# (target/*/deps/it-*) are running, so their load stays out of the timings.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${BENCH_HARNESS:-$REPO/../shared/bench}
BIN=${BENCH_BIN_PYGRATE:-$REPO/target/release/pygrate}
RUNS=${BENCH_RUNS:-3}
N=${BENCH_N:-1000}
ENGINES=${BENCH_ENGINES:-sqlite postgres mariadb}
TOOLS=${BENCH_TOOLS:-floor dbmate sqitch yoyo sqlx refinery pygrate}
SCALE_N=${BENCH_SCALE_N-10000}
SCALE_TOOLS=${BENCH_SCALE_TOOLS:-floor pygrate refinery sqlx dbmate}
CHECK_N=${BENCH_CHECK_N-10000}
OUT=${BENCH_OUT:-$REPO/target/bench}
STAMP=$(date +%Y-%m-%d-%H%M%S)
CSV=$OUT/bench-$STAMP.csv
CHECK_JSON=$OUT/check-offline-$STAMP.json

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ------------------------------------------------------------------ summary
# pygrate's ratios from one harness CSV (+ the check --offline figure).
summary() { # CSV [CHECK_JSON]
    python3 - "$@" <<'PY'
import csv, json, os, sys

path = sys.argv[1]
check = sys.argv[2] if len(sys.argv) > 2 else ""
with open(path, newline="") as f:
    rows = [r for r in csv.DictReader(f)]

def ok(r):
    return r.get("status") == "ok" and r.get("verified") == "yes"

def num(r, k):
    try:
        return float(r[k])
    except (KeyError, TypeError, ValueError):
        return None

# the last ok row wins when a CSV was appended to more than once
cells = {}
for r in rows:
    if ok(r):
        cells[(r["engine"], int(r["n"]), r["tool"])] = r
bad = [r for r in rows if not ok(r) and r.get("note") != "not installed"]
skipped = sorted({r["tool"] for r in rows if r.get("note") == "not installed"})

def rss(r):
    vals = [v for v in (num(r, "apply_rss_mb"), num(r, "noop_rss_mb")) if v is not None]
    return max(vals) if vals else None

def fmt(x, spec=".2f", suffix=""):
    return "-" if x is None else format(x, spec) + suffix

targets = []   # (what, value, limit, passed)
print()
print("pygrate vs floor and best peer (medians of %s runs; %s)" % (
    rows[0].get("runs", "?") if rows else "?", os.path.basename(path)))
hdr = ("engine", "N", "apply s", "x floor", "best peer", "x best", "no-op s", "best no-op", "x best", "RSS MB")
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(hdr))) + "|")
sizes = sorted({n for (_, n, _) in cells})
engines = [e for e in ("sqlite", "postgres", "mariadb") if any(k[0] == e for k in cells)]
for n in sizes:
    for e in engines:
        p = cells.get((e, n, "pygrate"))
        fl = cells.get((e, n, "floor"))
        peers = [r for (ee, nn, t), r in cells.items() if ee == e and nn == n and t not in ("floor", "pygrate")]
        if p is None and not peers:
            continue
        ba = min(peers, key=lambda r: num(r, "apply_s")) if peers else None
        bn = min(peers, key=lambda r: num(r, "noop_s")) if peers else None
        pa, pn = (num(p, "apply_s"), num(p, "noop_s")) if p else (None, None)
        xf = pa / num(fl, "apply_s") if p and fl else None
        xa = pa / num(ba, "apply_s") if p and ba else None
        xn = pn / num(bn, "noop_s") if p and bn and num(bn, "noop_s") else None
        prss = rss(p) if p else None
        print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            e, n, fmt(pa, ".3f"), fmt(xf),
            "%s %.3f" % (ba["tool"], num(ba, "apply_s")) if ba else "-", fmt(xa),
            fmt(pn, ".3f"), "%s %.3f" % (bn["tool"], num(bn, "noop_s")) if bn else "-", fmt(xn),
            fmt(prss, ".1f")))
        if p and n == min(sizes):
            if xa is not None:
                targets.append(("apply <= 0.85x best peer (%s, N=%d)" % (e, n), xa, 0.85, xa <= 0.85))
            if xf is not None:
                targets.append(("apply <= 1.0x floor (%s, N=%d)" % (e, n), xf, 1.0, xf <= 1.0))
            if xn is not None:
                targets.append(("no-op <= 0.5x best peer (%s, N=%d)" % (e, n), xn, 0.5, xn <= 0.5))
            if prss is not None:
                targets.append(("peak RSS < 8 MB (%s, N=%d)" % (e, n), prss, 8.0, prss < 8.0))

# scaling: the largest N over the smallest, per tool, on sqlite
if len(sizes) >= 2:
    lo, hi = sizes[0], sizes[-1]
    print()
    print("scaling on sqlite, apply N=%d / N=%d (linear = %.0fx):" % (hi, lo, hi / lo))
    for t in ("floor", "pygrate", "dbmate", "sqitch", "yoyo", "sqlx", "refinery"):
        a, b = cells.get(("sqlite", lo, t)), cells.get(("sqlite", hi, t))
        if a and b:
            x = num(b, "apply_s") / num(a, "apply_s")
            nx = (num(b, "noop_s") / num(a, "noop_s")) if num(a, "noop_s") else None
            print("  %-9s %7.3f s -> %8.3f s  = %5.2fx   (no-op %s -> %s s = %sx; RSS %s MB)" % (
                t, num(a, "apply_s"), num(b, "apply_s"), x, a["noop_s"], b["noop_s"], fmt(nx),
                fmt(rss(b), ".1f")))
            if t == "pygrate":
                limit = 11.0 * (hi / lo) / 10.0
                targets.append(("N=%d costs <= %.0fx N=%d (sqlite)" % (hi, limit, lo), x, limit, x <= limit))

if check:
    try:
        with open(check) as f:
            c = json.load(f)
    except (OSError, ValueError):
        c = {"status": "missing"}
    print()
    if c.get("status") == "ok":
        print("check --offline on %d versions: median %.1f ms (min %.1f, max %.1f, %d runs, %s)" % (
            c["n"], c["median_ms"], c["min_ms"], c["max_ms"], c["runs"], c["timer"]))
        targets.append(("check --offline on %d versions < 100 ms" % c["n"], c["median_ms"], 100.0,
                        c["median_ms"] < 100.0))
    else:
        print("check --offline: not measured: %s" % c.get("why", c.get("status")))

if skipped:
    print()
    print("not installed (skipped): " + " ".join(skipped))
if bad:
    print()
    print("rows that did not count (status/verified):")
    for r in bad:
        print("  %s %s N=%s: status=%s verified=%s %s" % (
            r["tool"], r["engine"], r["n"], r["status"], r["verified"], r.get("note", "")))
if targets:
    print()
    print("issue 6 targets:")
    for what, v, limit, passed in targets:
        print("  [%s] %-48s %8.2f  (limit %g)" % ("PASS" if passed else "FAIL", what, v, limit))
PY
}

if [ "${1:-}" = "--report" ]; then
    [ $# -ge 2 ] || die "usage: $0 --report CSV [CHECK_JSON]"
    shift
    summary "$@"
    exit 0
fi

# ---------------------------------------------------------------- preflight
[ -x "$BIN" ] || die "no pygrate binary at $BIN: run \`make build\` (or set BENCH_BIN_PYGRATE)"
[ -x "$HARNESS/run.sh" ] || die "no harness at $HARNESS (set BENCH_HARNESS)"
HARNESS=$(cd "$HARNESS" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
command -v python3 >/dev/null || die "python3 is needed"
mkdir -p "$OUT"
export BENCH_BIN_PYGRATE=$BIN
say "pygrate: $BIN ($("$BIN" --version 2>&1 | head -n1))"
say "harness: $HARNESS; results: $CSV"

# Wait while integration tests run: the harness would drop their databases.
wait_for_tests() {
    [ "${BENCH_NO_WAIT:-0}" = 1 ] && return 0
    local waited=0
    while pgrep -f 'target/[^ ]*deps/it-' >/dev/null 2>&1; do
        [ $waited = 0 ] && say "integration tests are running (pgrep -f 'target/.../deps/it-'); waiting for them to finish"
        waited=$((waited + 10))
        sleep 10
        [ $waited -ge 3600 ] && die "still waiting after 1 h; set BENCH_NO_WAIT=1 to run anyway"
    done
    return 0
}

# ------------------------------------------------- private MariaDB (default)
# The harness drops every non-system database of the MariaDB server it is
# given, which on a shared machine includes other people's test databases.
# Unless BENCH_MYSQL_URL is set (or BENCH_PRIVATE_MARIADB=0), run MariaDB's
# part against a throwaway server of the same binary and settings as the
# system one (utf8mb4, skip-name-resolve), on its own port and data dir;
# it is stopped when this script ends.
MARIADB_DIR=${BENCH_MARIADB_DIR:-/var/tmp/pygrate-bench-mariadb}
MARIADB_PORT=${BENCH_MARIADB_PORT:-3307}
private_mariadb_started=0
stop_private_mariadb() {
    if [ $private_mariadb_started = 1 ]; then
        mariadb-admin --socket="$MARIADB_DIR/mysqld.sock" -u root shutdown >/dev/null 2>&1 || true
        say "private MariaDB on port $MARIADB_PORT stopped"
    fi
}
start_private_mariadb() {
    local sock=$MARIADB_DIR/mysqld.sock
    mkdir -p "$MARIADB_DIR"
    cat >"$MARIADB_DIR/my.cnf" <<EOF
[mysqld]
user = mysql
datadir = $MARIADB_DIR/data
socket = $sock
pid-file = $MARIADB_DIR/mysqld.pid
log-error = $MARIADB_DIR/error.log
port = $MARIADB_PORT
bind-address = 127.0.0.1
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
EOF
    chown mysql:mysql "$MARIADB_DIR" 2>/dev/null || true
    if ! mariadb-admin --socket="$sock" -u root ping >/dev/null 2>&1; then
        if [ ! -d "$MARIADB_DIR/data/mysql" ]; then
            mariadb-install-db --defaults-file="$MARIADB_DIR/my.cnf" --auth-root-authentication-method=normal \
                >"$MARIADB_DIR/install.log" 2>&1 || die "mariadb-install-db failed: see $MARIADB_DIR/install.log"
        fi
        setsid /usr/sbin/mariadbd --defaults-file="$MARIADB_DIR/my.cnf" >/dev/null 2>&1 </dev/null &
        for _ in $(seq 1 60); do
            mariadb-admin --socket="$sock" -u root ping >/dev/null 2>&1 && break
            sleep 0.5
        done
        mariadb-admin --socket="$sock" -u root ping >/dev/null 2>&1 \
            || die "private MariaDB did not start: see $MARIADB_DIR/error.log"
        private_mariadb_started=1
        trap stop_private_mariadb EXIT
    fi
    mariadb --socket="$sock" -u root -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
        GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;
        CREATE DATABASE IF NOT EXISTS test" || die "cannot set up the private MariaDB"
    export BENCH_MYSQL_URL="mysql://root@127.0.0.1:$MARIADB_PORT/test"
    say "MariaDB: private server $BENCH_MYSQL_URL ($MARIADB_DIR)"
}
case " $ENGINES " in
    *" mariadb "*)
        if [ -z "${BENCH_MYSQL_URL:-}" ] && [ "${BENCH_PRIVATE_MARIADB:-1}" = 1 ]; then
            start_private_mariadb
        fi ;;
esac

# ------------------------------------------------------ 1. command-line smoke
# The harness runs `pygrate -p DIR --conn URL -q add --allow-unsafe`
# (tools/pygrate.ini); fail early, with pygrate's own message, if the CLI
# does not accept it.
smoke=$OUT/smoke
rm -rf "$smoke"
python3 "$HARNESS/gen.py" 3 "$smoke/gen" --tools pygrate >/dev/null
smoke_project=$smoke/gen/pygrate/sqlite
if ! msg=$(BENCH_DB_URL="sqlite:///$smoke/smoke.db" "$BIN" -p "$smoke_project" \
        --conn "sqlite:///$smoke/smoke.db" -q add --allow-unsafe 2>&1); then
    say "the harness's command line fails with this pygrate:"
    printf '%s\n' "$msg" >&2
    die "fix the CLI or tools/pygrate.ini before benchmarking"
fi
n_tables=$(sqlite3 "$smoke/smoke.db" "select count(*) from sqlite_master where type='table' and name glob 't_[0-9]*'" 2>/dev/null || echo "?")
say "smoke: \`pygrate -p DIR --conn URL -q add --allow-unsafe\` ok ($n_tables/3 tables)"

# ----------------------------------------------------- 2./3. harness runs
harness() { # N ENGINES TOOLS
    wait_for_tests
    say "run.sh -n $1 -e \"$2\" -t \"$3\" -r $RUNS"
    "$HARNESS/run.sh" -n "$1" -e "$2" -t "$3" -r "$RUNS" -o "$CSV"
}
harness "$N" "$ENGINES" "$TOOLS"
if [ -n "$SCALE_N" ]; then
    harness "$SCALE_N" sqlite "$SCALE_TOOLS"
fi
ln -sfn "$(basename "$CSV")" "$OUT/latest.csv"

# ------------------------------------------------ 4. check --offline timing
# Writes CHECK_JSON: {"status": "ok", "median_ms": …} or {"status": "unavailable", "why": …}
check_offline() {
    local n=$1 dir=$OUT/check-$1 project
    python3 "$HARNESS/gen.py" "$n" "$dir" --tools pygrate >/dev/null
    project=$dir/pygrate/sqlite
    # conf.d/bench.yaml reads ${BENCH_DB_URL}; offline commands must not use it
    export BENCH_DB_URL="sqlite:///$dir/unused.db"
    local msg
    if ! msg=$("$BIN" -p "$project" -q sum 2>&1); then
        say "\`pygrate sum\` failed: $msg"
        python3 -c 'import json,sys; print(json.dumps({"status": "unavailable", "why": "pygrate sum: " + sys.argv[1]}))' \
            "$(printf '%s' "$msg" | head -n3)" >"$CHECK_JSON"
        return 0
    fi
    if ! msg=$("$BIN" -p "$project" -q check --offline 2>&1); then
        say "\`pygrate check --offline\` failed: $msg"
        python3 -c 'import json,sys; print(json.dumps({"status": "unavailable", "why": "pygrate check --offline: " + sys.argv[1]}))' \
            "$(printf '%s' "$msg" | head -n3)" >"$CHECK_JSON"
        return 0
    fi
    python3 - "$BIN" "$project" "$n" "$CHECK_JSON" <<'PY'
import json, os, shutil, statistics, subprocess, sys, tempfile, time
bin_, project, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
argv = [bin_, "-p", project, "-q", "check", "--offline"]
runs = 10
times = []
timer = "perf_counter"
if shutil.which("hyperfine"):
    with tempfile.TemporaryDirectory() as d:
        j = os.path.join(d, "h.json")
        cmd = " ".join("'%s'" % a.replace("'", "'\\''") for a in argv)
        p = subprocess.run(["hyperfine", "-N", "--warmup", "2", "--runs", str(runs),
                            "--export-json", j, cmd], capture_output=True, text=True)
        if p.returncode == 0:
            with open(j) as f:
                times = [t * 1000 for t in json.load(f)["results"][0]["times"]]
            timer = "hyperfine -N"
if not times:
    for _ in range(2):
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
res = {"status": "ok", "n": n, "runs": len(times), "timer": timer,
       "median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
       "all_ms": [round(t, 2) for t in times]}
with open(out, "w") as f:
    json.dump(res, f)
PY
    say "check --offline: $(python3 -c 'import json,sys; print("%.1f ms median" % json.load(open(sys.argv[1]))["median_ms"])' "$CHECK_JSON")"
}
if [ -n "$CHECK_N" ]; then
    check_offline "$CHECK_N"
else
    echo '{"status": "skipped", "why": "BENCH_CHECK_N empty"}' >"$CHECK_JSON"
fi

# --------------------------------------------------------------- 5. summary
summary "$CSV" "$CHECK_JSON" | tee "$OUT/summary-$STAMP.txt"
say "CSV: $CSV  summary: $OUT/summary-$STAMP.txt"
