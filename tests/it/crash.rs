//! SPEC 9 under stress, on every engine: concurrent `ff` processes apply each
//! phase exactly once, a SIGKILL at any moment leaves truthful state, a
//! SIGINT or SIGTERM stops a run where the state says exactly, and a held
//! migration lock makes others wait, then name the holder.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use pygrate::backend::{connect, Location, Settings};
use pygrate::config::Config;
use pygrate::state::Actor;

use crate::lanes::{applied, journal, state};
use crate::support::{exits_within, Engine, Sandbox, TestDb};

/// `n` versions; every section records itself in `applied_log`, after a
/// statement or two of real work. Its DDL may run twice: on MySQL a kill
/// between a DDL statement's own commit and its progress row leaves it done
/// but not counted (README), and the resume runs it again.
pub fn busy_project(n: usize) -> Sandbox {
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v000-journal.sql",
        "-- @add\nCREATE TABLE IF NOT EXISTS applied_log (version VARCHAR(50) NOT NULL, phase VARCHAR(20) NOT NULL);\n\
         INSERT INTO applied_log (version, phase) VALUES ('r1/v000-journal', 'add');\n\
         -- @simdrop\nINSERT INTO applied_log (version, phase) VALUES ('r1/v000-journal', 'simdrop');\n\
         -- @drop\nINSERT INTO applied_log (version, phase) VALUES ('r1/v000-journal', 'drop');\n",
    );
    for i in 1..=n {
        let id = format!("r1/v{i:03}-work");
        p.write(
            &format!("releases/{id}.sql"),
            &format!(
                "-- @add\nCREATE TABLE IF NOT EXISTS t_{i} (id INTEGER PRIMARY KEY, v VARCHAR(20));\n\
                 INSERT INTO t_{i} (id, v) VALUES (1, 'a');\n\
                 INSERT INTO applied_log (version, phase) VALUES ('{id}', 'add');\n\
                 -- @simdrop\nUPDATE t_{i} SET v = 'b' WHERE id = 1;\n\
                 INSERT INTO applied_log (version, phase) VALUES ('{id}', 'simdrop');\n\
                 -- @drop\nINSERT INTO applied_log (version, phase) VALUES ('{id}', 'drop');\n"
            ),
        );
    }
    p
}

/// Waits until the migration lock is free, i.e. no session of a killed
/// pygrate is still working on the database.
fn wait_until_unlocked(db: &TestDb, p: &Sandbox) {
    let settings = Settings::from_config(&Config::default(), Actor::current());
    let mut backend = connect(&Location::parse(&db.url, p.path()).unwrap(), &settings, true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !backend.try_lock().unwrap() {
        assert!(Instant::now() < deadline, "the killed pygrate's session never ended");
        sleep(Duration::from_millis(20));
    }
    backend.unlock().unwrap();
}

#[track_caller]
fn assert_no_duplicates(db: &TestDb) {
    let rows = journal(db);
    let unique: BTreeSet<&String> = rows.iter().collect();
    assert_eq!(unique.len(), rows.len(), "a section ran twice: {rows:?}");
}

fn concurrent_ff_applies_every_phase_exactly_once(db: &TestDb) {
    let p = busy_project(12);
    let children: Vec<_> = (0..8)
        .map(|_| p.command(Some(&db.url), &["ff"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_no_duplicates(db);
    assert_eq!(journal(db).len(), 13 * 3);
    assert_eq!(journal(db), applied(db));
    let log_rows = db.query_i64("SELECT COUNT(*) FROM pygrate_log WHERE outcome = 'ok'");
    assert_eq!(log_rows, 13 * 3, "each phase logged once");
}

fn sigkill_at_any_moment_leaves_truthful_state(db: &TestDb) {
    // Enough work that several kills land mid-run (SQLite shares commits
    // between sections and gets through 60 versions before the first kill).
    let n = if db.engine == Engine::Sqlite { 2000 } else { 60 };
    let p = busy_project(n);
    let mut interrupted = 0;
    for delay_ms in [40, 90, 150, 230, 330, 450, 600] {
        let mut child =
            p.command(Some(&db.url), &["-q", "ff"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // The server may still finish what the killed client already sent;
        // its session (and the lock) ends only then. Compare after that.
        wait_until_unlocked(db, &p);
        assert_no_duplicates(db);
        let unsettled: Vec<String> =
            state(db).into_iter().filter(|r| r.ends_with(" running") || r.ends_with(" failed")).collect();
        if db.engine == Engine::Mysql {
            // DDL commits on its own: a kill may leave one phase running, and
            // every phase recorded applied has taken effect.
            assert!(unsettled.len() <= 1, "{unsettled:?}");
            let effects: BTreeSet<String> = journal(db).into_iter().collect();
            for phase in applied(db) {
                assert!(effects.contains(&phase), "{phase} applied without its effect");
            }
            for row in unsettled {
                let (id, phase) = row.split_once(' ').unwrap();
                let phase = phase.split(' ').next().unwrap();
                if effects.contains(&format!("{id} {phase}")) {
                    // A human looked: the last statement ran.
                    p.run(db, &["resolve", id, phase, "--as", "applied"]).ok();
                }
            }
        } else {
            // The section and its state row commit together: state is exact.
            assert!(unsettled.is_empty(), "{unsettled:?}");
            assert_eq!(journal(db), applied(db), "after a kill at {delay_ms} ms");
        }
    }
    assert!(interrupted >= 2, "the kills should land while ff runs (only {interrupted} did)");
    // Whatever was left running resumes; then everything is applied once.
    p.run(db, &["ff"]).ok();
    assert_no_duplicates(db);
    assert_eq!(journal(db).len(), (n + 1) * 3);
    assert_eq!(journal(db), applied(db));
    assert_eq!(db.query_i64(&format!("SELECT COUNT(*) FROM t_{n}")), 1);
}

fn a_held_lock_makes_others_wait_then_names_the_holder(db: &TestDb) {
    let p = busy_project(1);
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_wait: 1s\n", db.url));
    let config = Config::default();
    let settings = Settings::from_config(&config, Actor::current());
    let mut holder = connect(&Location::parse(&db.url, p.path()).unwrap(), &settings, true).unwrap();
    assert!(holder.try_lock().unwrap());
    // Taken before the state tables existed (a first run): the holder is
    // still recorded once the tables are made.
    holder.ensure_state_tables().unwrap();
    let started = Instant::now();
    let run = p.run_with(None, &["ff"]);
    // SPEC 9: the holder is named by user, host, process id and since when.
    let actor = Actor::current();
    run.code(1)
        .stderr_has("could not get the migration lock within 1s (`lock_wait`): held by")
        .stderr_has(&format!("{}@{}", actor.user, actor.host))
        .stderr_has(&format!("pid {}", actor.pid))
        .stderr_has(" since ");
    assert!(started.elapsed() < Duration::from_secs(10), "lock_wait is 1s");
    assert!(!db.table_exists("applied_log"), "nothing ran");
    // A dry run changes nothing, so it needs no lock and does not wait.
    p.run_with(None, &["-n", "baseline", "r1"]).ok().stdout_has("would baseline add r1/v000-journal");
    p.run_with(None, &["-n", "rehash", "r1"]).ok().stdout_has("nothing to rehash");
    holder.unlock().unwrap();
    p.run_with(None, &["ff"]).ok();
    assert_eq!(journal(db).len(), 6);
}

/// A phase `running` while a pygrate holds the migration lock is most likely
/// being run right now: `status` and `check` say so and name the holder
/// instead of advising to settle it; without a holder, they advise it.
fn a_running_phase_under_a_held_lock_is_not_to_be_settled(db: &TestDb) {
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\n", db.url));
    p.write(
        "releases/r1/v1.sql",
        "-- @add no-transaction\nCREATE TABLE t (id INTEGER);\nINSERT INTO nope (id) VALUES (1);\n",
    );
    p.run_with(None, &["add"]).code(1);
    // As a pygrate leaves it while it runs the section (statement 2 of 2).
    db.execute("UPDATE pygrate_state SET status = 'running', error = NULL");
    let settings = Settings::from_config(&Config::default(), Actor::current());
    let mut holder = connect(&Location::parse(&db.url, p.path()).unwrap(), &settings, true).unwrap();
    assert!(holder.try_lock().unwrap());
    let settle = "look at the database, then `pygrate resolve r1/v1 add";
    let held = "r1/v1: add is running with 1 statement(s) done, and the migration lock is held now by ";
    let status = p.run_with(None, &["status"]);
    status.ok().stdout_has(held).stdout_has("most likely that pygrate is running it");
    assert!(!status.stdout.contains(settle), "{}", status.stdout);
    p.run_with(None, &["check"]).code(1).stdout_has(held);
    let json = p.run_with(None, &["status", "--format", "json"]).json();
    assert!(json["problems"][0]["lock_holder"].is_string(), "{json}");
    // How far the phase got is in the status too, not only in the state table.
    assert_eq!(json["versions"][0]["phases"][0]["statements_done"], 1, "{json}");
    if db.engine == Engine::Sqlite {
        status.stdout_has(&format!("pid {}", settings.actor.pid));
    }
    holder.unlock().unwrap();
    let status = p.run_with(None, &["status"]);
    status.ok().stdout_has(settle);
    assert!(!status.stdout.contains("held now"), "{}", status.stdout);
}

/// A statement that runs for a minute unless cancelled, and fails when it is.
pub fn long_statement(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => {
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000000000) \
             SELECT count(*) FROM n"
        }
        Engine::Postgres => "SELECT pg_sleep(60)",
        // MariaDB fails a killed SLEEP (MySQL would return 1 and go on).
        Engine::Mysql => "SELECT SLEEP(60)",
    }
}

/// Sends `signal` (`INT`, `TERM`) to `child`.
fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
    assert!(sent.success());
}

/// SIGINT during a section cancels its statement on the server, records the
/// phase as failed at that statement (or rolls it back) and releases the
/// lock; the run exits 1 at once. A pygrate waiting for the lock meanwhile
/// stops at once on SIGTERM. Before, a signal was a kill: the phase stayed
/// `running`, and MySQL ran the statement on.
fn a_stop_signal_cancels_the_statement_and_records_where_it_stopped(db: &TestDb) {
    for marker in ["-- @add no-transaction", "-- @add"] {
        let db = TestDb::create(db.engine).expect("the engine answered once");
        let p = Sandbox::empty();
        p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_wait: 60s\n", db.url));
        let long = long_statement(db.engine);
        p.write(
            "releases/r1/v001-slow.sql",
            &format!("{marker}\nCREATE TABLE first (id INTEGER);\n{long};\nCREATE TABLE never (id INTEGER);\n"),
        );
        let mut child = p.command(None, &["-v", "ff"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (sent, statements) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let reader = thread::spawn(move || {
            let mut all = String::new();
            for line in stdout.lines().map_while(Result::ok) {
                let _ = sent.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while !statements.recv_timeout(Duration::from_secs(20)).unwrap().contains(&long[..12]) {
            assert!(Instant::now() < deadline, "the long statement was never sent");
        }
        sleep(Duration::from_millis(300));

        let mut waiting = p.command(None, &["ff"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        sleep(Duration::from_millis(500));
        signal(&waiting, "TERM");
        assert_eq!(exits_within(&mut waiting, Duration::from_secs(5)), Some(1), "{marker}: the waiting pygrate");

        signal(&child, "INT");
        let code = exits_within(&mut child, Duration::from_secs(10));
        let stdout = reader.join().unwrap();
        let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
        assert_eq!(code, Some(1), "{marker}: {stdout}{stderr}");
        assert!(!db.table_exists("never"), "{marker}: the statement after it ran");
        let tracked = marker.contains("no-transaction") || db.engine == Engine::Mysql;
        // SQLite shares a transaction between sections, so there the stop
        // rolls back the shared one.
        let said =
            if tracked || db.engine == Engine::Postgres { "pygrate was stopped (SIGINT)" } else { "rolled back" };
        assert!(stderr.contains("pygrate: SIGINT") && stderr.contains(said), "{marker}: {stderr}");
        // Where statements go one by one, the report names the one stopped
        // (SQLite's shared transaction said only "cancelled and rolled back").
        if tracked || db.engine == Engine::Sqlite {
            assert!(stderr.contains("v001-slow.sql:3: add r1/v001-slow"), "{marker}: {stderr}");
        }
        if tracked {
            assert_eq!(state(&db), ["r1/v001-slow add failed"], "{marker}: {stderr}");
            // Going on is the first advice: a stopped phase needs no settling.
            p.run_with(None, &["status"]).stdout_has("run `pygrate add r1/v001-slow` again to resume it, or look");
            assert_eq!(db.query_i64("SELECT statements_done FROM pygrate_state"), 1, "{marker}");
        } else {
            assert_eq!(state(&db), Vec::<String>::new(), "{marker}: {stderr}");
            assert!(!db.table_exists("first"), "{marker}: the transaction was not rolled back");
        }
        let outcomes = db.query_strings("SELECT outcome FROM pygrate_log WHERE version_name = 'v001-slow'");
        assert_eq!(outcomes, [[Some("failed".to_string())]], "{marker}");
        let still_running = match db.engine {
            Engine::Sqlite => 0,
            Engine::Postgres => {
                db.query_i64(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND datname = current_database()",
            )
            }
            Engine::Mysql => {
                db.query_i64(
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(60)' AND DB = DATABASE()",
            )
            }
        };
        assert_eq!(still_running, 0, "{marker}: the statement runs on on the server");

        // The phase goes on from where it stopped, the lock being free.
        p.write(
            "releases/r1/v001-slow.sql",
            &format!("{marker}\nCREATE TABLE first (id INTEGER);\nCREATE TABLE second (id INTEGER);\nCREATE TABLE never (id INTEGER);\n"),
        );
        let resumed = p.run_with(None, &["ff"]);
        resumed.ok();
        if tracked {
            resumed.stdout_has("resumed after 1");
        }
    }
}

/// A statement that adds one row to `t`: over in a round trip on a server,
/// so that a stop mostly finds the server between statements; a few
/// milliseconds on SQLite, which would otherwise finish before the signal.
fn short_insert(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => {
            "INSERT INTO t SELECT count(*) FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n \
             WHERE x < 20000) SELECT x FROM n)"
        }
        Engine::Postgres | Engine::Mysql => "INSERT INTO t VALUES (1)",
    }
}

/// A stop asked for between two statements was lost where statements go
/// one by one (PostgreSQL with `lock_retries: 0`, SQLite): the cancel found
/// the server idle, the section ran to its end and pygrate exited 0. On
/// MySQL a late `KILL QUERY` could hit the progress row instead, and the
/// resume ran its statement again. Now the section stops where it is, and
/// on MySQL the count of statements done matches the rows they inserted.
fn a_stop_between_statements_is_not_lost(db: &TestDb) {
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_retries: 0\n", db.url));
    let insert = short_insert(db.engine);
    // On MySQL each statement of a no-transaction section commits on its
    // own, before its count: a cancelled count is a statement run twice.
    let marker = if db.engine == Engine::Mysql { "-- @add no-transaction" } else { "-- @add" };
    let mut sql = format!("{marker}\nCREATE TABLE t (n INTEGER);\n");
    let statements = if db.engine == Engine::Sqlite { 300 } else { 2000 };
    for _ in 0..statements {
        sql.push_str(insert);
        sql.push_str(";\n");
    }
    p.write("releases/r1/v001-many.sql", &sql);
    let mut child = p.command(None, &["-v", "ff"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (fiftieth, sent) = mpsc::channel();
    // Every engine sends this section statement by statement here, and -v
    // prints each as it goes.
    let reader = thread::spawn(move || {
        for (n, _) in stdout.lines().map_while(Result::ok).filter(|l| l.contains("INSERT INTO t")).enumerate() {
            if n == 50 {
                let _ = fiftieth.send(());
            }
        }
    });
    sent.recv_timeout(Duration::from_secs(20)).expect("50 statements were never sent");
    signal(&child, "INT");
    let code = exits_within(&mut child, Duration::from_secs(20));
    let _ = reader.join();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    if db.engine == Engine::Mysql {
        assert_eq!(state(db), ["r1/v001-many add failed"], "{stderr}");
        let done = db.query_i64("SELECT statements_done FROM pygrate_state");
        assert_eq!(db.query_i64("SELECT count(*) FROM t"), done - 1, "rows and count of statements done differ");
        assert!(done <= statements, "{stderr}");
    } else {
        assert!(!db.table_exists("t"), "the section was not rolled back: {stderr}");
        assert_eq!(state(db), Vec::<String>::new(), "{stderr}");
    }
    p.run_with(None, &["ff"]).ok();
    assert_eq!(db.query_i64("SELECT count(*) FROM t"), statements, "a statement ran twice or not at all");
}

/// PostgreSQL names no statement for some errors (`1/0`), so the section runs
/// again, rolled back, to find it. A stop during that run cancelled it, and
/// `-v` said the failure "did not fail the same way", as if the error were
/// in doubt; the stop is the reason, and the run's own message says so.
fn a_stop_while_looking_for_the_failing_statement_blames_nothing_else(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\n", db.url));
    // Sent alone (the search), the statement's own text starts the query
    // and it sleeps; in the section's one message (`BEGIN; …`) it does not.
    let sleep_alone = "SELECT pg_sleep(CASE WHEN current_query() LIKE 'SELECT pg_sleep%' THEN 60 ELSE 0 END)";
    p.write("releases/r1/v001-fails.sql", &format!("-- @add\n{sleep_alone};\nSELECT 1/0;\n"));
    let mut child = p.command(None, &["-v", "ff"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let searching =
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(CASE%' AND datname = current_database()";
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.query_i64(searching) == 0 {
        assert!(Instant::now() < deadline, "the section never ran again");
        sleep(Duration::from_millis(50));
    }
    signal(&child, "INT");
    let code = exits_within(&mut child, Duration::from_secs(10));
    let stdout = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("pygrate was stopped (SIGINT)"), "{stderr}");
    assert!(!stdout.contains("did not fail the same way"), "{stdout}");
    assert_eq!(db.query_i64(searching), 0, "the search runs on on the server");
    assert_eq!(state(db), Vec::<String>::new());
}

/// `baseline` (and `resolve`, `rehash`) waiting for the state tables, which
/// an application held, ignored a stop: pygrate said it was stopping, then
/// wrote the rows once the lock was gone and exited 0.
fn a_stop_cancels_a_state_write_that_waits(db: &TestDb) {
    let p = Sandbox::empty();
    // SQLite's own busy wait ignored the stop, so this waited out a
    // lock_timeout of 3s there; the wait is pygrate's now, and ends at once.
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_timeout: 60s\n", db.url));
    p.write("releases/r1/v001-a.sql", "-- @add\nSELECT 1;\n");
    p.write("releases/r1/v000-first.sql", "-- @add\nSELECT 1;\n");
    p.run_with(None, &["ff", "--through", "add", "--to", "r1/v000-first"]).ok();
    db.execute(match db.engine {
        Engine::Sqlite => "BEGIN IMMEDIATE",
        Engine::Postgres => "BEGIN; LOCK TABLE pygrate_state IN ACCESS EXCLUSIVE MODE",
        Engine::Mysql => "LOCK TABLES pygrate_state WRITE",
    });
    let mut child =
        p.command(None, &["baseline", "r1/v001-a"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    sleep(Duration::from_millis(1500));
    signal(&child, "INT");
    let code = exits_within(&mut child, Duration::from_secs(5));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    db.execute(match db.engine {
        Engine::Sqlite | Engine::Postgres => "ROLLBACK",
        Engine::Mysql => "UNLOCK TABLES",
    });
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT: nothing was written"), "{stderr}");
    assert_eq!(state(db), ["r1/v000-first add applied"]);
}

/// SQLite's BEGIN IMMEDIATE waits while the application holds the write
/// lock; with `lock_timeout: 0` (no limit) a stop asked for meanwhile was
/// ignored, as SQLite's own busy wait ignores `sqlite3_interrupt`, and only a
/// second signal ended pygrate. Now the wait ends, and nothing ran.
fn a_stop_ends_a_wait_for_the_write_lock(db: &TestDb) {
    if db.engine != Engine::Sqlite {
        return;
    }
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_timeout: 0\n", db.url));
    p.write("releases/r1/v001-a.sql", "-- @add\nCREATE TABLE a (id INTEGER);\n");
    p.run_with(None, &["ff"]).ok();
    p.write("releases/r1/v002-b.sql", "-- @add\nCREATE TABLE b (id INTEGER);\n");
    db.execute("BEGIN IMMEDIATE");
    let mut child = p.command(None, &["ff"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    sleep(Duration::from_millis(1500));
    signal(&child, "INT");
    let code = exits_within(&mut child, Duration::from_secs(5));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    db.execute("ROLLBACK");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("pygrate: SIGINT: cancelling the running statement"), "it held the lock: {stderr}");
    assert!(stderr.contains("stopped before add r1/v002-b, which did not run"), "{stderr}");
    assert!(!state(db).iter().any(|row| row.contains("v002-b")), "{:?}", state(db));
    assert!(!db.table_exists("b"));
}

/// SQLite rolls back the whole transaction when some statements are
/// interrupted (`CREATE TABLE … AS SELECT`): a stop then undid the sections
/// that had finished before it in the shared transaction, and the report
/// and the log row blamed the first of them. Now the one stopped is named,
/// and so are those undone with it.
fn a_stop_that_undoes_a_shared_transaction_names_what_it_undid(db: &TestDb) {
    if db.engine != Engine::Sqlite {
        return;
    }
    let p = Sandbox::empty();
    p.write("releases/r1/v001-one.sql", "-- @add\nCREATE TABLE one (id INTEGER);\n");
    let big = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000000000) SELECT x FROM n";
    p.write("releases/r1/v002-big.sql", &format!("-- @add\nCREATE TABLE big AS {big};\n"));
    let mut child =
        p.command(Some(&db.url), &["-v", "ff"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines().map_while(Result::ok) {
        if line.contains("CREATE TABLE big") {
            break;
        }
    }
    sleep(Duration::from_millis(300));
    signal(&child, "INT");
    assert_eq!(exits_within(&mut child, Duration::from_secs(10)), Some(1));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(stderr.contains("v002-big.sql:2: add r1/v002-big"), "{stderr}");
    let undone = "nor of add r1/v001-one, simdrop r1/v001-one, drop r1/v001-one that had finished before it";
    assert!(stderr.contains(undone), "{stderr}");
    assert_eq!(state(db), Vec::<String>::new(), "{stderr}");
    let logged = db.query_strings("SELECT version_name, outcome FROM pygrate_log");
    assert_eq!(logged, [[Some("v002-big".to_string()), Some("failed".to_string())]], "{stderr}");
    p.write("releases/r1/v002-big.sql", "-- @add\nCREATE TABLE big (x INTEGER);\n");
    p.run_with(Some(&db.url), &["ff"]).ok();
    assert!(state(db).contains(&"r1/v002-big add applied".to_string()), "{:?}", state(db));
    assert!(db.table_exists("one"));
}

/// A command refused on seeing a phase `running` that another pygrate was
/// running at that moment: `rollback_add` exited 2 telling the operator to
/// settle a phase in full flight. It now waits for the lock and decides on
/// what the other left.
fn a_phase_running_elsewhere_is_waited_for_not_refused(db: &TestDb) {
    let sleep_sql = match db.engine {
        Engine::Postgres => "SELECT pg_sleep(2)",
        Engine::Mysql => "SELECT SLEEP(2)",
        // A SQLite reader already waits: the running section holds the lock.
        Engine::Sqlite => return,
    };
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_wait: 30s\n", db.url));
    p.write(
        "releases/r1/v001-slow.sql",
        &format!(
            "-- @add no-transaction\nCREATE TABLE t (id INTEGER);\n{sleep_sql};\nINSERT INTO t VALUES (1);\n\
             -- @rollback_add\nDROP TABLE t;\n"
        ),
    );
    let mut child = p.command(None, &["add"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state(db).contains(&"r1/v001-slow add running".to_string()) {
        assert!(Instant::now() < deadline, "the add never ran");
        sleep(Duration::from_millis(20));
    }
    p.run_with(None, &["rollback_add", "r1/v001-slow"]).ok();
    assert_eq!(exits_within(&mut child, Duration::from_secs(10)), Some(0));
    assert_eq!(state(db), ["r1/v001-slow add rolled_back"]);
    assert!(!db.table_exists("t"));
}

crate::on_every_engine!(
    a_phase_running_elsewhere_is_waited_for_not_refused,
    a_stop_that_undoes_a_shared_transaction_names_what_it_undid,
    a_stop_between_statements_is_not_lost,
    a_stop_cancels_a_state_write_that_waits,
    a_stop_ends_a_wait_for_the_write_lock,
    a_stop_while_looking_for_the_failing_statement_blames_nothing_else,
    a_stop_signal_cancels_the_statement_and_records_where_it_stopped,
    a_running_phase_under_a_held_lock_is_not_to_be_settled,
    concurrent_ff_applies_every_phase_exactly_once,
    sigkill_at_any_moment_leaves_truthful_state,
    a_held_lock_makes_others_wait_then_names_the_holder,
);
