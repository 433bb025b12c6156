//! SQLite only: consecutive sections share a commit (a write transaction
//! locks the whole database anyway), each stays its own unit, and an
//! application holding the write lock is waited for.

use std::path::PathBuf;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use crate::crash::busy_project as project;
use crate::lanes::{applied, journal, state};
use crate::support::{Engine, TestDb};

fn sqlite() -> TestDb {
    TestDb::create(Engine::Sqlite).unwrap()
}

fn file_of(db: &TestDb) -> PathBuf {
    PathBuf::from(db.url.strip_prefix("sqlite:///").unwrap())
}

/// SQLite's file change counter (header offset 24): one more per committed
/// write transaction in rollback-journal mode.
fn commits(db: &TestDb) -> u32 {
    let bytes = std::fs::read(file_of(db)).unwrap();
    u32::from_be_bytes(bytes[24..28].try_into().unwrap())
}

/// An application transaction that holds the write lock (it creates table
/// `app`) for `hold`, then commits; returns once the lock is held. `begin`:
/// `IMMEDIATE` lets readers in, `EXCLUSIVE` keeps them out too.
fn application_writer(db: &TestDb, hold: Duration, begin: &str) -> thread::JoinHandle<()> {
    let path = file_of(db);
    let (ready, is_ready) = std::sync::mpsc::channel();
    let begin = format!("BEGIN {begin}; CREATE TABLE app (id INTEGER)");
    let holder = thread::spawn(move || {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(&begin).unwrap();
        ready.send(()).unwrap();
        thread::sleep(hold);
        c.execute_batch("COMMIT").unwrap();
    });
    is_ready.recv().unwrap();
    holder
}

#[test]
fn consecutive_sections_share_commits() {
    let db = sqlite();
    let p = project(40);
    db.execute("CREATE TABLE app (id INTEGER)");
    let before = commits(&db);
    let run = p.run(&db, &["ff"]);
    run.ok();
    let sections = 41 * 3;
    assert_eq!(journal(&db).len(), sections);
    assert_eq!(journal(&db), applied(&db));
    assert_eq!(run.stdout.matches(" ok (").count(), sections, "one progress line per section");
    let used = commits(&db) - before;
    assert!(used >= 1 && used < sections as u32 / 4, "{sections} sections took {used} commits");
}

#[test]
fn a_failing_section_in_a_shared_commit_fails_alone() {
    let db = sqlite();
    let p = project(30);
    p.write(
        "releases/r1/v020-work.sql",
        "-- @add\nCREATE TABLE t_20 (id INTEGER);\n\nINSERT INTO no_such_table VALUES (1);\n",
    );
    let run = p.run(&db, &["ff", "--through", "add"]);
    run.code(1).stderr_has(
        "releases/r1/v020-work.sql:4: add r1/v020-work failed: [SQLITE_ERROR] no such table: no_such_table",
    );
    // Everything before it committed; nothing of it did; progress was shown
    // for exactly what committed.
    assert_eq!(applied(&db).len(), 20, "{:?}", state(&db));
    assert_eq!(journal(&db), applied(&db));
    assert!(!db.table_exists("t_20"));
    assert_eq!(run.stdout.matches(" ok (").count(), 20, "{}", run.stdout);
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM pygrate_log WHERE outcome = 'failed'"), 1);
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM pygrate_log WHERE outcome = 'ok'"), 20);
}

/// An application transaction holding the write lock makes pygrate wait
/// `lock_timeout`, then retry the section; with no retries left it fails
/// naming the section and applies nothing of it. The state tables exist
/// already, so getting ready to run writes nothing.
#[test]
fn an_application_writer_makes_pygrate_wait_and_retry() {
    for (retries, hold_ms, succeeds) in [(4, 1200, true), (0, 3000, false)] {
        let db = sqlite();
        let p = project(3);
        p.run(&db, &["ff", "--to", "r1/v000-journal"]).ok();
        p.write(
            "conf.d/test.yaml",
            &format!("connection: \"{}\"\nlock_timeout: 300ms\nlock_retries: {retries}\n", db.url),
        );
        let holder = application_writer(&db, Duration::from_millis(hold_ms), "IMMEDIATE");
        let run = p.run_with(None, &["ff"]);
        holder.join().unwrap();
        if succeeds {
            run.ok().stderr_has("could not get a lock in time").stderr_has("retry 1 in 250ms");
            assert_eq!(journal(&db).len(), 4 * 3);
        } else {
            run.code(1)
                .stderr_has("releases/r1/v001-work.sql:1: add r1/v001-work failed")
                .stderr_has("database is locked");
            assert_eq!(applied(&db).len(), 3, "only r1/v000-journal, from before: {:?}", state(&db));
        }
    }
}

/// A `no-transaction` section runs outside the shared commits (VACUUM fails
/// inside any transaction), and the sections around it still run.
#[test]
fn a_no_transaction_section_between_shared_commits_runs() {
    let db = sqlite();
    let p = project(6);
    p.write("releases/r1/v004-work.sql", "-- @add no-transaction\nVACUUM;\n");
    let run = p.run(&db, &["ff", "--through", "add"]);
    run.ok();
    assert_eq!(applied(&db).len(), 7, "{:?}", state(&db));
    assert!(db.table_exists("t_3") && db.table_exists("t_5") && !db.table_exists("t_4"));
}

/// A `no-transaction` section may manage its own transaction with
/// `SAVEPOINT … RELEASE` (SQLite's SAVEPOINT outside a transaction begins
/// one); one that ends inside it is a format error. Before, pygrate wrote
/// its `applied` row inside that transaction, printed `ok`, and the close of
/// the connection rolled the section and its row back: `running` for ever,
/// with later versions applied past it.
#[test]
fn a_savepoint_transaction_in_a_no_transaction_section_is_followed() {
    let db = sqlite();
    let p = crate::support::Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\n", db.url));
    let open = "-- @add no-transaction\nSAVEPOINT s1;\nCREATE TABLE a (x int);\n-- @rollback_add\nDROP TABLE a;\n";
    p.write("releases/r1/v001-a.sql", open);
    p.write("releases/r1/v002-b.sql", "-- @add\nCREATE TABLE b (x int);\n-- @rollback_add\nDROP TABLE b;\n");
    p.run(&db, &["ff"])
        .code(2)
        .stderr_has("releases/r1/v001-a.sql:2: a transaction begins here and the section ends inside it");
    assert!(state(&db).is_empty() && !db.table_exists("a") && !db.table_exists("b"), "{:?}", state(&db));

    let closed =
        "-- @add no-transaction\nSAVEPOINT s1;\nCREATE TABLE a (x int);\nRELEASE s1;\nINSERT INTO a VALUES (1);\n\
                  -- @rollback_add\nDROP TABLE a;\n";
    p.write("releases/r1/v001-a.sql", closed);
    p.run(&db, &["ff", "--through", "add"]).ok();
    assert_eq!(applied(&db), ["r1/v001-a add", "r1/v002-b add"]);
    assert_eq!(db.query_i64("SELECT count(*) FROM a"), 1);
}

/// The migration lock belongs to the database file, not to the path that
/// names it: a pygrate reaching it through a symbolic link waits for the
/// one holding the lock (it took a lock of its own beside the link and
/// applied the same phase a second time). A hard link, which no lock file
/// can follow, is refused.
#[test]
fn every_path_to_the_database_shares_one_lock() {
    let db = sqlite();
    let real = file_of(&db);
    let p = crate::support::Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_wait: 1s\n", db.url));
    p.write("releases/r1/v001-a.sql", "-- @add\nCREATE TABLE a (x INTEGER);\n");
    p.run_with(None, &["ff"]).ok();
    p.write("releases/r1/v002-b.sql", "-- @add\nCREATE TABLE b (x INTEGER);\n");
    // Another pygrate holds the lock, as taken through the real path.
    let lock = std::fs::File::open(format!("{}.pygrate.lock", real.display())).unwrap();
    lock.try_lock().unwrap();
    let link = real.with_extension("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let through_link = format!("sqlite:///{}", link.display());
    p.run_with(Some(&through_link), &["ff"]).code(1).stderr_has("could not get the migration lock within 1s");
    assert!(!db.table_exists("b"));
    drop(lock);
    p.run_with(Some(&through_link), &["ff"]).ok();
    assert!(db.table_exists("b"));

    p.write("releases/r1/v003-c.sql", "-- @add\nCREATE TABLE c (x INTEGER);\n");
    let hard = real.with_extension("hard");
    std::fs::hard_link(&real, &hard).unwrap();
    p.run_with(None, &["ff"]).code(1).stderr_has("has 2 names (hard links)");
    assert!(!db.table_exists("c"));
}

/// On a database without state tables, an application transaction holding
/// the write lock makes pygrate wait and retry before it creates them, as a
/// section would, rather than fail after one `lock_timeout`.
#[test]
fn state_tables_are_created_after_an_application_writer_finishes() {
    let db = sqlite();
    let p = project(2);
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_timeout: 300ms\nlock_retries: 4\n", db.url));
    let holder = application_writer(&db, Duration::from_millis(1200), "IMMEDIATE");
    let run = p.run_with(None, &["ff"]);
    holder.join().unwrap();
    run.ok().stderr_has("creating the state tables: could not get a lock in time").stderr_has("retry 1 in 250ms");
    assert_eq!(journal(&db).len(), 3 * 3);
    assert!(db.table_exists("app"));
}

/// An application holding SQLite's exclusive lock keeps pygrate from even
/// reading the state: the read is waited for and retried like a section.
#[test]
fn the_state_is_read_after_an_exclusive_application_writer_finishes() {
    let db = sqlite();
    let p = project(2);
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_timeout: 300ms\nlock_retries: 4\n", db.url));
    p.run_with(None, &["ff", "--through", "add"]).ok();
    let holder = application_writer(&db, Duration::from_millis(1200), "EXCLUSIVE");
    let run = p.run_with(None, &["ff"]);
    holder.join().unwrap();
    run.ok().stderr_has("reading the state table: could not get a lock in time").stderr_has("retry 1");
    assert_eq!(journal(&db).len(), 3 * 3);
}

/// SPEC 9: a second pygrate waits up to `lock_wait` for the first. On
/// SQLite, the first one's long write keeps the second from reading the
/// state at all; it then waits for the migration lock, not `lock_timeout`.
#[test]
fn a_second_pygrate_waits_for_a_long_write_of_the_first() {
    let db = sqlite();
    let (p, mut first) = long_write_under_way(&db, "lock_timeout: 200ms\nlock_wait: 60s\n");
    let second = p.run_with(None, &["ff"]);
    assert!(first.wait().unwrap().success());
    second.ok().stdout_has("nothing to do");
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM big"), 8_000_000);
}

/// The wait to read the state counts against `lock_wait`: it came on top
/// of it (`lock_timeout` + `lock_wait` in all), and with `lock_timeout: 0`
/// (no limit) the second pygrate waited for the first to finish and exited
/// 0 where a deployment step expects 1 after `lock_wait`.
#[test]
fn a_second_pygrate_gives_up_after_lock_wait_during_a_long_write() {
    let db = sqlite();
    let (p, mut first) = long_write_under_way(&db, "lock_timeout: 0\nlock_wait: 1s\n");
    let second = p.run_with(None, &["ff"]);
    let still_running = first.try_wait().unwrap().is_none();
    assert!(first.wait().unwrap().success());
    second.code(1).stderr_has("could not get the migration lock within 1s");
    assert!(still_running, "the second run waited for the first to finish");
}

/// A project whose `ff` writes 8,000,000 rows in one statement, started,
/// once its write keeps readers out.
fn long_write_under_way(db: &TestDb, settings: &str) -> (crate::support::Sandbox, std::process::Child) {
    let p = crate::support::Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\n{settings}", db.url));
    p.write(
        "releases/r1/v001-big.sql",
        "-- @add\nCREATE TABLE big (x INTEGER);\nINSERT INTO big WITH RECURSIVE c(x) AS \
         (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 8000000) SELECT x FROM c;\n",
    );
    let mut first = p.command(None, &["ff"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    // Once the first one's write outgrows SQLite's page cache, it spills to
    // the database file, which takes the exclusive lock (until it commits):
    // that keeps every reader out. (Polling with a reader instead would
    // keep the spill from happening.)
    while std::fs::metadata(file_of(db)).map_or(0, |m| m.len()) < 4_000_000 {
        assert!(first.try_wait().unwrap().is_none(), "the first run ended before its write spilled");
        thread::sleep(Duration::from_millis(5));
    }
    (p, first)
}

/// Several pygrates started together on a database file that does not exist
/// yet: each plans on an empty in-memory stand-in, and one that kept it after
/// another had created the file ran its phases there and said `ok` for work
/// the file never saw. Every `ok` printed must be a phase in the file.
#[test]
fn concurrent_ff_on_a_new_file_reports_only_what_the_file_holds() {
    let p = project(3);
    let db = sqlite();
    for round in 0..20 {
        let path = file_of(&db).with_file_name(format!("new-{round}.db"));
        let url = format!("sqlite:///{}", path.display());
        let children: Vec<_> = (0..6)
            .map(|_| p.command(Some(&url), &["ff"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
            .collect();
        let mut reported = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
            reported += String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(" ok (")).count();
        }
        let file = rusqlite::Connection::open(&path).unwrap();
        let count = |sql: &str| file.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
        assert_eq!(reported, 4 * 3, "round {round}: `ok` lines printed");
        assert_eq!(count("SELECT COUNT(*) FROM pygrate_log WHERE outcome = 'ok'"), 4 * 3, "round {round}");
        assert_eq!(count("SELECT COUNT(DISTINCT version || phase) FROM applied_log"), 4 * 3, "round {round}");
        assert_eq!(count("SELECT COUNT(*) FROM applied_log"), 4 * 3, "round {round}: a section ran twice");
    }
}

/// SQLite's documented table rebuild (create new, copy, drop old, rename)
/// deleted every child row through `ON DELETE CASCADE`: rusqlite's bundled
/// SQLite turns foreign keys on, and `PRAGMA foreign_keys = OFF` does
/// nothing inside a transaction. pygrate runs with SQLite's own default, off,
/// as the sqlite3 shell does.
#[test]
fn a_table_rebuild_keeps_the_rows_that_reference_it() {
    let db = sqlite();
    let p = crate::support::Sandbox::empty();
    p.write(
        "releases/r1/v001-a.sql",
        "-- @add\nCREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT, legacy TEXT);\n\
         CREATE TABLE child (pid INTEGER REFERENCES parent(id) ON DELETE CASCADE);\n\
         INSERT INTO parent VALUES (1, 'a', 'x');\nINSERT INTO child VALUES (1), (1);\n\
         -- @rollback_add\nDROP TABLE child;\nDROP TABLE parent;\n",
    );
    p.write(
        "releases/r1/v002-rebuild.sql",
        "-- @add\n-- @drop\nPRAGMA foreign_keys = OFF;\nCREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT);\n\
         INSERT INTO parent_new SELECT id, name FROM parent;\nDROP TABLE parent;\n\
         ALTER TABLE parent_new RENAME TO parent;\n",
    );
    p.run(&db, &["ff"]).ok();
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM child"), 2);
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM parent"), 1);
}
