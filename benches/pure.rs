//! Criterion benchmarks of the pure parts of pygrate (no database):
//!
//! - `parse_split_hash`: parse + split + checksum throughput (MB/s) over
//!   1,000 realistic ~1 KB version files built in memory, in the PostgreSQL
//!   dialect (dollar-quoted function, trigger) and the SQLite dialect
//!   (`CREATE TRIGGER … BEGIN … END`), plus each part on its own;
//! - `plan_ff`: `Lanes::from_state` + `plan_forward` of `ff` for 10,000 versions
//!   against a full state (everything applied: an empty plan, the no-op run)
//!   and an empty state (every phase of every version planned), and the
//!   `problems()` scan that `status`/`check` do;
//! - `discover_load`: `Project::discover` and `app::load` (discover + read +
//!   parse + split every section, as every command that connects does) of
//!   10,000 version files on disk.
//!
//! - `large`: `lint_migration` of one section of 100,000 statements (a data
//!   load), and looking up each of 10,000 versions in the lanes, as the lint
//!   gate of every run does (both were quadratic: 120 s and 3.8 s at 20,000
//!   versions).
//!
//! Run: `cargo bench --bench pure` (part of `make bench`). Sample sizes and
//! measurement times are small so the whole file runs in about a minute;
//! pass e.g. `-- --measurement-time 10` for tighter intervals.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

use pygrate::app::{load, Output, Statements};
use pygrate::checksum::section_checksum;
use pygrate::dialect::Dialect;
use pygrate::executor::settled_state;
use pygrate::parser::{parse, Migration};
use pygrate::phase::Phase;
use pygrate::planner::{Forward, Lanes, Scope};
use pygrate::project::{Project, VersionId};
use pygrate::splitter::split;
use pygrate::state::{State, Status};

const FILES: usize = 1_000;
const VERSIONS: usize = 10_000;
const PER_RELEASE: usize = 100;

// ------------------------------------------------------------------ inputs

/// A ~1 KB PostgreSQL version: header comments, a block comment with quotes
/// and `;`, every section, quoted identifiers, `''` and `E'\''` literals, a
/// dollar-quoted plpgsql function with inner `;`, and a trigger.
fn postgres_version(i: usize) -> String {
    format!(
        r#"-- Version {i:05}: orders for customer accounts (ticket OPS-{i})
-- Author: bench <bench@example.invalid>; reviewed: yes
/* Block comment with 'quotes', "identifiers" and ; semicolons
   that the splitter must not cut on. */

-- @add
CREATE TABLE orders_{i} (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    "Display Name" varchar(80) DEFAULT 'it''s; fine',
    note text DEFAULT E'line\'s end; here',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_orders_{i}_customer ON orders_{i} (customer_id); -- trailing comment
INSERT INTO orders_{i} (id, customer_id, "Display Name", note) VALUES
    (1, 10, 'a; b', 'x'), (2, 20, 'c -- d', 'y'), (3, 30, '/* e */', 'z');
CREATE FUNCTION orders_{i}_touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.created_at := now(); -- inner ; does not end the statement
    RETURN NEW;
END;
$fn$;
CREATE TRIGGER orders_{i}_touch BEFORE UPDATE ON orders_{i}
    FOR EACH ROW EXECUTE FUNCTION orders_{i}_touch();

-- @rollback_add
DROP TRIGGER orders_{i}_touch ON orders_{i};
DROP FUNCTION orders_{i}_touch();
DROP TABLE orders_{i};

-- @simdrop
ALTER TABLE orders_{i} RENAME COLUMN note TO note_old;

-- @rollback_simdrop
ALTER TABLE orders_{i} RENAME COLUMN note_old TO note;

-- @drop
ALTER TABLE orders_{i} DROP COLUMN note_old;
"#
    )
}

/// A ~1 KB SQLite version with a `BEGIN … END` trigger body.
fn sqlite_version(i: usize) -> String {
    format!(
        r#"-- Version {i:05}: split users_{i}.full_name (ticket OPS-{i})
/* 'quoted' ; text inside a block comment */

-- @add
ALTER TABLE users_{i} ADD COLUMN first_name TEXT;
ALTER TABLE users_{i} ADD COLUMN last_name TEXT;
UPDATE users_{i} SET
    first_name = substr(full_name, 1, instr(full_name || ' ', ' ') - 1),
    last_name = nullif(substr(full_name, instr(full_name || ' ', ' ') + 1), '')
WHERE full_name IS NOT NULL AND full_name <> 'n/a; none';
-- Old code still writes full_name only: keep the new columns filled.
CREATE TRIGGER users_{i}_split AFTER INSERT ON users_{i}
WHEN NEW.first_name IS NULL AND NEW.full_name IS NOT NULL
BEGIN
    UPDATE users_{i} SET
        first_name = substr(NEW.full_name, 1, instr(NEW.full_name || ' ', ' ') - 1),
        last_name = nullif(substr(NEW.full_name, instr(NEW.full_name || ' ', ' ') + 1), '')
    WHERE id = NEW.id;
END;
INSERT INTO "audit log" (version, note) VALUES ({i}, 'it''s done; really');

-- @rollback_add
DROP TRIGGER users_{i}_split;
ALTER TABLE users_{i} DROP COLUMN last_name;
ALTER TABLE users_{i} DROP COLUMN first_name;

-- @simdrop
-- Nothing to hide yet.

-- @drop
ALTER TABLE users_{i} DROP COLUMN full_name;
"#
    )
}

/// The shared harness's workload (gen.py `pygrate` format): one table, one
/// index, ten rows, and its rollback.
fn harness_version(i: usize) -> String {
    let values: Vec<String> = (1..=10).map(|r| format!("({r}, 'name {i}-{r}', '2026-01-01 00:00:00')")).collect();
    format!(
        "-- bench version {i}: table t_{i}\n\n-- @add\n\
         CREATE TABLE t_{i} (id integer PRIMARY KEY, name varchar(40), created_at timestamp);\n\
         CREATE INDEX ix_t_{i}_name ON t_{i} (name);\n\
         INSERT INTO t_{i} (id, name, created_at) VALUES\n  {};\n\
         \n-- @rollback_add\nDROP TABLE t_{i};\n",
        values.join(",\n  ")
    )
}

fn id_of(i: usize) -> VersionId {
    VersionId::new(format!("r{:03}", (i - 1) / PER_RELEASE + 1), format!("v{i:05}"))
}

fn path_of(id: &VersionId) -> PathBuf {
    Path::new("releases").join(&id.release).join(format!("{}.sql", id.version))
}

struct Input {
    id: VersionId,
    path: PathBuf,
    text: String,
}

fn inputs(n: usize, make: fn(usize) -> String) -> Vec<Input> {
    (1..=n)
        .map(|i| {
            let id = id_of(i);
            Input { path: path_of(&id), id, text: make(i) }
        })
        .collect()
}

fn parse_all(inputs: &[Input]) -> Vec<Migration> {
    inputs
        .iter()
        .map(|f| match parse(f.id.clone(), &f.path, f.text.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("generated file does not parse: {e:?}"),
        })
        .collect()
}

/// Statements in every section of every migration; checks the input on the way.
fn split_all(migrations: &[Migration], dialect: Dialect) -> usize {
    let mut n = 0;
    for m in migrations {
        for s in m.sections() {
            match s.statements(&m.path, dialect) {
                Ok(st) => n += st.len(),
                Err(e) => panic!("generated file does not split: {e:?}"),
            }
        }
    }
    n
}

// -------------------------------------------------------- parse+split+hash

/// One kind of input file.
struct Case {
    name: &'static str,
    dialect: Dialect,
    make: fn(usize) -> String,
    /// Statements per file, summed over its sections (checked before timing).
    per_file: usize,
}

fn bench_parse_split_hash(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_split_hash");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let cases = [
        Case { name: "postgres", dialect: Dialect::Postgres, make: postgres_version, per_file: 11 },
        Case { name: "sqlite", dialect: Dialect::Sqlite, make: sqlite_version, per_file: 9 },
        Case { name: "harness", dialect: Dialect::Postgres, make: harness_version, per_file: 4 },
    ];
    for Case { name, dialect, make, per_file } in cases {
        let files = inputs(FILES, make);
        let bytes: usize = files.iter().map(|f| f.text.len()).sum();
        // Sanity: the input is what it claims to be.
        let migrations = parse_all(&files);
        assert_eq!(split_all(&migrations, dialect), per_file * FILES, "{name}: statements per file");
        group.throughput(Throughput::Bytes(bytes as u64));

        // What a command does per file: parse (sections + checksums), then split.
        group.bench_function(BenchmarkId::new("all", name), |b| {
            b.iter(|| {
                let migrations = parse_all(black_box(&files));
                black_box(split_all(&migrations, dialect))
            })
        });
        // The parts on their own.
        group.bench_function(BenchmarkId::new("parse+hash", name), |b| {
            b.iter(|| black_box(parse_all(black_box(&files))))
        });
        group.bench_function(BenchmarkId::new("split", name), |b| {
            b.iter(|| {
                let mut n = 0;
                for m in &migrations {
                    for s in m.sections() {
                        n += split(black_box(&s.body), s.body_line(), dialect).map_or(0, |v| v.len());
                    }
                }
                black_box(n)
            })
        });
        group.bench_function(BenchmarkId::new("hash", name), |b| {
            b.iter(|| {
                for m in &migrations {
                    for s in m.sections() {
                        black_box(section_checksum(black_box(&s.body)));
                    }
                }
            })
        });
    }
    group.finish();
}

// ----------------------------------------------------------------- planning

fn applied_state(migrations: &[Migration]) -> State {
    let rows = migrations.iter().flat_map(|m| {
        Phase::ALL.map(|phase| settled_state(m, phase, Status::Applied, "bench@localhost".to_string(), 3))
    });
    State::from_rows(rows)
}

fn bench_plan(c: &mut Criterion) {
    let files = inputs(VERSIONS, harness_version);
    let migrations = parse_all(&files);
    let full = applied_state(&migrations);
    let empty = State::default();
    let ff = Forward { phases: &Phase::ALL, scope: Scope::Through(None), allow_out_of_order: false };
    // The sanity checks double as documentation of what is measured.
    let steps = |state: &State| Lanes::new(&migrations, state).plan_forward(&ff).map(|p| p.steps.len());
    assert_eq!(steps(&full), Ok(0), "full state: nothing to do");
    assert_eq!(steps(&empty), Ok(3 * VERSIONS), "empty state: every phase of every version");
    assert!(Lanes::new(&migrations, &full).problems().is_empty(), "full state: no drift");

    let mut group = c.benchmark_group("plan_ff");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(VERSIONS as u64));
    // What a command does after reading the state: merge (taking the rows
    // over, as `app` does), then plan. The state's copy is not timed.
    for (name, state) in [("full_state", &full), ("empty_state", &empty)] {
        group.bench_function(BenchmarkId::new("lanes+plan", name), |b| {
            b.iter_batched(
                || state.clone(),
                |state| {
                    let lanes = Lanes::from_state(black_box(&migrations), state);
                    black_box(lanes.plan_forward(&ff).map(|p| p.steps.len()))
                },
                BatchSize::LargeInput,
            )
        });
    }
    // Parts, against the full state (the no-op run): merge, plan, drift scan.
    let lanes = Lanes::new(&migrations, &full);
    group.bench_function("lanes_from_state/full_state", |b| {
        b.iter_batched(
            || full.clone(),
            |state| black_box(Lanes::from_state(black_box(&migrations), state).entries.len()),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("plan_forward/full_state", |b| {
        b.iter(|| black_box(lanes.plan_forward(black_box(&ff)).map(|p| p.steps.len())))
    });
    group.bench_function("problems/full_state", |b| b.iter(|| black_box(lanes.problems().len())));
    group.finish();
}

// --------------------------------------------------------------- sum file

/// `check --offline`'s comparison of `pygrate.sum` with the files.
fn bench_sum(c: &mut Criterion) {
    let migrations = parse_all(&inputs(VERSIONS, harness_version));
    let text = pygrate::integrity::sum_text(&migrations);
    assert!(pygrate::integrity::check_sum_text(&text, &migrations).is_empty(), "the sum matches its files");
    let mut group = c.benchmark_group("sum");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(VERSIONS as u64));
    group.bench_function("check/10000", |b| {
        b.iter(|| black_box(pygrate::integrity::check_sum_text(black_box(&text), &migrations).len()))
    });
    group.finish();
}

// ----------------------------------------------------------- discover+load

/// A project of `n` harness-format versions on disk (100 per release, as
/// gen.py writes them), under cargo's scratch dir for benches.
fn write_project(n: usize) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pure-bench-{n}"));
    let marker = root.join("complete");
    if marker.exists() {
        return root;
    }
    let _ = fs::remove_dir_all(&root);
    for i in 1..=n {
        let path = root.join(path_of(&id_of(i)));
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("create release dir");
        }
        fs::write(&path, harness_version(i)).expect("write version file");
    }
    fs::write(&marker, b"").expect("write marker");
    root
}

fn bench_discover_load(c: &mut Criterion) {
    let root = write_project(VERSIONS);
    let out = Output { quiet: true, ..Output::default() };
    match load(&root, Statements::In(Dialect::Sqlite), &out) {
        Ok((project, migrations)) => {
            assert_eq!(project.files.len(), VERSIONS);
            assert_eq!(migrations.len(), VERSIONS);
        }
        Err(e) => panic!("load: {e}"),
    }

    let mut group = c.benchmark_group("discover_load");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(VERSIONS as u64));
    group.bench_function("discover/10000", |b| {
        b.iter(|| black_box(Project::discover(black_box(&root)).map(|p| p.files.len()).ok()))
    });
    group.bench_function("load/10000", |b| {
        b.iter(|| black_box(load(black_box(&root), Statements::In(Dialect::Sqlite), &out).map(|(_, m)| m.len()).ok()))
    });
    group.finish();
}

// ------------------------------------------------------------------- large

fn bench_large(c: &mut Criterion) {
    const STATEMENTS: usize = 100_000;
    let mut text = String::from("-- @add\n");
    for i in 0..STATEMENTS {
        text.push_str(&format!("INSERT INTO t VALUES ({i}, 'row {i}');\n"));
    }
    let id = id_of(1);
    let migration = match parse(id.clone(), &path_of(&id), text.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("generated file does not parse: {e:?}"),
    };
    let mut group = c.benchmark_group("large");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(STATEMENTS as u64));
    group.bench_function("lint/100000_statements", |b| {
        b.iter(|| black_box(pygrate::lint::lint_migration(black_box(&migration), Dialect::Postgres).len()))
    });
    let migrations = parse_all(&inputs(VERSIONS, harness_version));
    let lanes = Lanes::new(&migrations, &applied_state(&migrations));
    group.throughput(Throughput::Elements(VERSIONS as u64));
    group.bench_function("lanes_entry/10000", |b| {
        b.iter(|| migrations.iter().filter(|m| lanes.entry(black_box(&m.id)).is_some()).count())
    });
    group.finish();
}

criterion_group!(benches, bench_parse_split_hash, bench_plan, bench_sum, bench_discover_load, bench_large);
criterion_main!(benches);
