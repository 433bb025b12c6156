//! What only real servers can show (issue 3): lock timeouts and retries,
//! CREATE INDEX CONCURRENTLY, resuming a killed MySQL section.

use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ::mysql::prelude::Queryable;

use crate::lanes::state;
use crate::support::{Engine, Run, Sandbox, TestDb};

/// Holds a lock on table `t` from another session until told to stop (or
/// `hold` passes): PostgreSQL ACCESS EXCLUSIVE; MySQL a metadata lock from an
/// open transaction that read it.
fn block_table(db: &TestDb, hold: Duration) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let (ready, is_ready) = mpsc::channel::<()>();
    let url = db.url.clone();
    let engine = db.engine;
    let handle = thread::spawn(move || match engine {
        Engine::Postgres => {
            let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            c.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").unwrap();
            ready.send(()).unwrap();
            let _ = stopped.recv_timeout(hold);
            c.batch_execute("ROLLBACK").unwrap();
        }
        Engine::Mysql => {
            let mut c = ::mysql::Conn::new(::mysql::Opts::from_url(&url).unwrap()).unwrap();
            c.query_drop("START TRANSACTION").unwrap();
            c.query_drop("SELECT * FROM t").unwrap();
            ready.send(()).unwrap();
            let _ = stopped.recv_timeout(hold);
            c.query_drop("ROLLBACK").unwrap();
        }
        Engine::Sqlite => unreachable!(),
    });
    is_ready.recv().unwrap();
    (stop, handle)
}

fn project(db: &TestDb, retries: u32) -> Sandbox {
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_timeout: 1s\nlock_retries: {retries}\n", db.url));
    p.write("releases/r1/v001-t.sql", "-- @add\nCREATE TABLE t (id INTEGER PRIMARY KEY);\n");
    p.run_with(None, &["ff"]).ok();
    p.write(
        "releases/r1/v002-alter.sql",
        "-- @add\nALTER TABLE t ADD COLUMN note VARCHAR(20);\n-- @rollback_add\nALTER TABLE t DROP COLUMN note;\n",
    );
    p
}

/// `add` while another session holds a lock on `t` (for up to a minute),
/// and how long it took.
fn add_while_blocked(db: &TestDb, p: &Sandbox) -> (Run, Duration) {
    let (stop, blocker) = block_table(db, Duration::from_secs(60));
    let started = Instant::now();
    let run = p.run_with(None, &["add"]);
    let took = started.elapsed();
    stop.send(()).unwrap();
    blocker.join().unwrap();
    (run, took)
}

fn lock_timeout_code(db: &TestDb) -> &'static str {
    if db.engine == Engine::Postgres {
        "[55P03]"
    } else {
        "[1205]"
    }
}

fn lock_timeout_fails_fast_and_applies_nothing(db: &TestDb) {
    if db.engine == Engine::Sqlite {
        return;
    }
    let p = project(db, 0);
    let (run, took) = add_while_blocked(db, &p);
    // With no retry to follow, PostgreSQL runs the section statement by
    // statement, so the lock timeout names its statement.
    run.code(1).stderr_has("releases/r1/v002-alter.sql:2: add r1/v002-alter failed").stderr_has(lock_timeout_code(db));
    if db.engine == Engine::Mysql {
        // Nothing to fix in a statement that waited too long for a lock.
        run.stderr_has("Run `pygrate add r1/v002-alter` again to resume there");
    }
    assert!(took < Duration::from_secs(6), "lock_timeout 1s, took {took:?}");
    assert!(!state(db).iter().any(|r| r.contains("v002-alter add applied")), "{:?}", state(db));
}

/// README promised `lock_timeout` 5s by default, but only SQLite had it: on
/// PostgreSQL and MySQL a config without it let an ALTER queue behind an
/// open transaction, and the application's traffic behind the ALTER.
fn lock_timeout_is_five_seconds_unless_configured(db: &TestDb) {
    if db.engine == Engine::Sqlite {
        return;
    }
    let p = project(db, 0);
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\nlock_retries: 0\n", db.url));
    let (run, took) = add_while_blocked(db, &p);
    run.code(1).stderr_has(lock_timeout_code(db));
    assert!(took >= Duration::from_secs(5) && took < Duration::from_secs(15), "took {took:?}");
}

fn a_lock_timeout_is_retried_until_the_blocker_lets_go(db: &TestDb) {
    if db.engine == Engine::Sqlite {
        return;
    }
    let p = project(db, 4);
    let (_stop, blocker) = block_table(db, Duration::from_millis(1800));
    let run = p.run_with(None, &["add"]);
    blocker.join().unwrap();
    run.ok().stderr_has("could not get a lock in time").stderr_has("retry 1");
    assert!(state(db).contains(&"r1/v002-alter add applied".to_string()));
}

fn create_index_concurrently_needs_no_transaction(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    let p = Sandbox::empty();
    p.write("releases/r1/v001-t.sql", "-- @add\nCREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\n");
    p.write(
        "releases/r1/v002-ix.sql",
        "-- @add\nCREATE INDEX CONCURRENTLY t_v ON t (v);\n-- @rollback_add\nDROP INDEX t_v;\n",
    );
    let run = p.run(db, &["ff", "--allow-unsafe"]);
    run.code(1).stderr_has("[25001]").stderr_has("no-transaction");
    p.write("releases/r1/v002-ix.sql", "-- @add no-transaction\nCREATE INDEX CONCURRENTLY t_v ON t (v);\n-- @rollback_add no-transaction\nDROP INDEX CONCURRENTLY t_v;\n");
    p.run(db, &["ff", "--through", "add"]).ok();
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 't_v'"), 1);
    p.run(db, &["rollback_add", "r1/v002"]).ok();
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 't_v'"), 0);
}

fn a_killed_mysql_section_resumes_at_the_first_statement_not_done(db: &TestDb) {
    if db.engine != Engine::Mysql {
        return;
    }
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-four.sql",
        "-- @add\nCREATE TABLE counter (n INTEGER);\nINSERT INTO counter VALUES (1);\nSELECT SLEEP(3);\nINSERT INTO counter VALUES (4);\n",
    );
    let mut child = p.command(Some(&db.url), &["ff"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(state(db), ["r1/v001-four add running"]);
    assert_eq!(db.query_i64("SELECT statements_done FROM pygrate_state"), 2);
    // The server may still be sleeping for the killed session; it ends in 3s.
    p.run(db, &["ff"]).ok();
    assert_eq!(db.query_strings("SELECT n FROM counter ORDER BY n").len(), 2, "1 and 4, each once");
    assert!(state(db).contains(&"r1/v001-four add applied".to_string()));
}

/// A MySQL DDL statement of a killed run completes on the server without
/// being counted; the resume runs it again and fails. The message says why
/// that may be, and how to settle it.
fn a_resumed_statement_that_fails_may_have_completed_before(db: &TestDb) {
    if db.engine != Engine::Mysql {
        return;
    }
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-ctas.sql",
        "-- @add\nCREATE TABLE first_one (n INTEGER);\nCREATE TABLE slow_copy AS SELECT SLEEP(2) AS s;\n",
    );
    let mut child = p.command(Some(&db.url), &["ff"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.query_i64("SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'CREATE TABLE slow_copy%'")
        == 0
    {
        assert!(Instant::now() < deadline, "the statement never started");
        thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let run = p.run(db, &["ff"]);
    run.code(1)
        .stderr_has("[1050]")
        .stderr_has("this statement was running when an earlier run of this phase stopped")
        .stderr_has("pygrate resolve r1/v001-ctas add --as applied");
}

/// A killed pygrate leaves the server running its statement; in a
/// `no-transaction` section that statement commits on its own, and the
/// resume ran it a second time. PostgreSQL notices the vanished client
/// within a second (`client_connection_check_interval`) and cancels it.
fn a_killed_no_transaction_statement_is_cancelled_not_run_twice(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    db.execute("CREATE TABLE hits (n INTEGER)");
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-backfill.sql",
        "-- @add no-transaction\nINSERT INTO hits SELECT 1 FROM pg_sleep(4);\nINSERT INTO hits VALUES (2);\n",
    );
    let mut child = p.command(Some(&db.url), &["ff"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(db) != ["r1/v001-backfill add running"] {
        assert!(Instant::now() < deadline, "the section never started");
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed session ends once its statement is cancelled, within about
    // a second, not when pg_sleep would have ended.
    let killed = Instant::now();
    let sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pygrate %' AND datname = current_database()";
    while db.query_i64(sessions) > 0 {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(killed.elapsed() < Duration::from_secs(3), "the statement ran on for {:?}", killed.elapsed());
    p.run(db, &["ff"]).ok();
    assert_eq!(db.query_i64("SELECT count(*) FROM hits WHERE n = 1"), 1, "the backfill ran once");
}

/// A state row is never written without its log row: on MySQL the DDL
/// before it had committed the transaction, and on SQLite a `no-transaction`
/// section wrote them one at a time, so a log row the database refused left
/// the phase `applied` with no trace in the log.
fn a_refused_log_row_leaves_no_phase_applied_without_it(db: &TestDb) {
    for marker in ["-- @add", "-- @add no-transaction"] {
        let db = TestDb::create(db.engine).expect("the engine answered once");
        let p = Sandbox::empty();
        p.write("releases/r1/v001-a.sql", "-- @add\nCREATE TABLE a (id INTEGER);\n");
        p.run(&db, &["ff"]).ok();
        refuse_log_rows(&db);
        p.write("releases/r1/v002-b.sql", &format!("{marker}\nCREATE TABLE b (id INTEGER);\n"));
        let run = p.run(&db, &["ff"]);
        run.code(1).stderr_has("log refused");
        let states = state(&db);
        assert!(!states.iter().any(|s| s.starts_with("r1/v002-b") && s.ends_with("applied")), "{marker}: {states:?}");
        if db.table_exists("b") {
            run.stderr_has("pygrate resolve r1/v002-b add --as applied");
        }
    }
}

/// A trigger makes the database refuse every new `pygrate_log` row.
fn refuse_log_rows(db: &TestDb) {
    db.execute(match db.engine {
        Engine::Sqlite => "CREATE TRIGGER no_log BEFORE INSERT ON pygrate_log BEGIN SELECT RAISE(ABORT, 'log refused'); END",
        Engine::Postgres => {
            "CREATE FUNCTION no_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'log refused'; END $$; \
             CREATE TRIGGER no_log BEFORE INSERT ON pygrate_log FOR EACH ROW EXECUTE FUNCTION no_log()"
        }
        Engine::Mysql => {
            "CREATE TRIGGER no_log BEFORE INSERT ON pygrate_log FOR EACH ROW \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'log refused'"
        }
    });
}

/// `baseline` and `rehash` printed each change before writing it, so a write
/// the database refused still said it had been made.
fn a_refused_state_change_prints_nothing_it_did_not_make(db: &TestDb) {
    let p = Sandbox::empty();
    p.write("releases/r1/v001-a.sql", "-- @add\nCREATE TABLE a (id INTEGER);\n");
    p.run(db, &["ff"]).ok();
    p.write("releases/r1/v001-a.sql", "-- @add\nCREATE TABLE a (id INTEGER); -- edited\n");
    p.write("releases/r1/v002-b.sql", "-- @add\nCREATE TABLE b (id INTEGER);\n");
    refuse_log_rows(db);
    let rows = || db.query_strings("SELECT release_name, version_name, phase, status, checksum FROM pygrate_state");
    let before = rows();
    for command in [["baseline", "r1/v002-b"], ["rehash", "r1/v001-a"]] {
        let dry = p.run(db, &[command[0], command[1], "--dry-run"]);
        dry.ok().stdout_has(&format!("would {}", command[0]));
        let run = p.run(db, &command);
        run.code(1).stderr_has("log refused");
        assert!(!run.stdout.contains(command[0]), "{command:?} printed a change it did not make: {}", run.stdout);
        assert_eq!(rows(), before, "{command:?}");
    }
}

/// A session terminated by an administrator cannot run the section again to
/// find the statement; the message said it had, and that the failure did not
/// recur.
fn a_terminated_session_is_reported_as_a_lost_connection(db: &TestDb) {
    let (sleep, sleeping, terminate) = match db.engine {
        Engine::Sqlite => return,
        Engine::Postgres => (
            "SELECT pg_sleep(10)",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pygrate %' \
             AND datname = current_database() AND query LIKE '%pg_sleep(10)%'",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pygrate %' \
             AND datname = current_database() AND query LIKE '%pg_sleep(10)%'",
        ),
        Engine::Mysql => (
            "SELECT SLEEP(10)",
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(10)'",
            "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(10)'",
        ),
    };
    let p = Sandbox::empty();
    p.write("releases/r1/v001-slow.sql", &format!("-- @add\nCREATE TABLE slow (a INTEGER);\n{sleep};\n"));
    let child = p.command(Some(&db.url), &["ff"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.query_i64(sleeping) == 0 {
        assert!(Instant::now() < deadline, "the section never started");
        thread::sleep(Duration::from_millis(20));
    }
    let ids = db.query_strings(terminate);
    if db.engine == Engine::Mysql {
        for id in ids.iter().filter_map(|row| row[0].clone()) {
            db.execute(&format!("KILL {id}"));
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("run again") && !stderr.contains('{'), "{stderr}");
    if db.engine == Engine::Postgres {
        // With 57P01, or without a code when the socket closed first.
        assert!(stderr.contains("the connection failed"), "{stderr}");
        assert!(!db.table_exists("slow"));
    }
}

/// Errors without a position (PostgreSQL reports none for a duplicate table)
/// still name the statement's line.
fn an_error_without_position_still_names_its_statement(db: &TestDb) {
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-dup.sql",
        "-- @add\nCREATE TABLE a (id INTEGER);\n\n-- the same again\nCREATE TABLE a (id INTEGER);\nCREATE TABLE b (id INTEGER);\n",
    );
    let run = p.run(db, &["-v", "ff"]);
    run.code(1).stderr_has("releases/r1/v001-dup.sql:5: add r1/v001-dup failed");
    if db.engine == Engine::Postgres {
        run.stdout_has("add r1/v001-dup: ran the section again (rolled back) to find the failing statement: line 5");
    }
    if db.engine != Engine::Mysql {
        assert!(!db.table_exists("a"), "rolled back, replay included");
    }
    assert!(!db.table_exists("b"));
}

/// A project on PostgreSQL with table `t` and sequence `runs`, whose v001
/// section is `section`: a section that calls nextval('runs') counts how many
/// times it ran, as sequences ignore rollbacks.
fn counting_project(db: &TestDb, config: &str, section: &str) -> Sandbox {
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY); CREATE SEQUENCE runs");
    let p = Sandbox::empty();
    configure(&p, db, config);
    p.write("releases/r1/v001-count.sql", section);
    p
}

fn configure(p: &Sandbox, db: &TestDb, config: &str) {
    p.write("conf.d/test.yaml", &format!("connection: \"{}\"\n{config}", db.url));
}

fn runs(db: &TestDb) -> i64 {
    db.query_i64("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM runs")
}

/// A lock timeout is never replayed to find its statement: that would queue a
/// second lock request in front of the application's traffic. A retry runs
/// the section statement by statement, so its failure names the statement.
fn a_lock_timeout_is_waited_for_once_per_attempt(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    let section = "-- @add\nSELECT nextval('runs');\nALTER TABLE t ADD COLUMN note TEXT;\n";
    let p = counting_project(db, "lock_timeout: 1s\nlock_retries: 0\n", section);
    let (stop, blocker) = block_table(db, Duration::from_secs(60));
    let once = p.run_with(None, &["ff"]);
    configure(&p, db, "lock_timeout: 1s\nlock_retries: 1\n");
    let retried = p.run_with(None, &["ff"]);
    stop.send(()).unwrap();
    blocker.join().unwrap();
    // Both name the ALTER: with no retry to follow, or on the retry, the
    // section runs statement by statement.
    once.code(1).stderr_has("releases/r1/v001-count.sql:3: add r1/v001-count failed: [55P03]");
    retried.code(1).stderr_has("releases/r1/v001-count.sql:3: add r1/v001-count failed: [55P03]").stderr_has("retry 1");
    assert_eq!(runs(db), 1 + 2, "one run per attempt, no replays");
    assert!(state(db).is_empty(), "{:?}", state(db));
}

/// A statement timeout is not replayed either: it would be waited out twice.
fn a_statement_timeout_is_waited_for_once(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    let section = "-- @add\nSELECT nextval('runs');\nSELECT pg_sleep(5);\n";
    let p = counting_project(db, "statement_timeout: 1s\n", section);
    p.run_with(None, &["ff"])
        .code(1)
        .stderr_has("releases/r1/v001-count.sql:1: add r1/v001-count failed: [57014]")
        .stderr_has("statement: (not determined");
    assert_eq!(runs(db), 1);
}

/// An error that the replay does not reproduce is not blamed on the state
/// write: the message says the statement could not be determined.
fn a_failure_that_does_not_recur_is_not_blamed_on_the_state(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    let section = "-- @add\nCREATE TABLE a (id INTEGER);\n\n\
                   DO $$ BEGIN IF nextval('runs') = 1 THEN RAISE EXCEPTION 'first run only'; END IF; END $$;\n";
    let p = counting_project(db, "", section);
    let run = p.run_with(None, &["-v", "ff"]);
    run.code(1)
        .stderr_has("releases/r1/v001-count.sql:1: add r1/v001-count failed: [P0001] first run only")
        .stderr_has("the failure did not recur when the section was run again")
        .stdout_has("ran the section again (rolled back) to find the failing statement: it did not fail the same way");
    assert!(!run.stderr.contains("recording the state"), "{}", run.stderr);
    assert_eq!(runs(db), 2, "the run and its replay");
    assert!(!db.table_exists("a"));
    assert!(state(db).is_empty(), "{:?}", state(db));
}

/// A database host that vanishes mid-run (failover, network partition) is
/// noticed in about two minutes: pygrate's connection probes after 60 s idle,
/// not after the kernel's 2 hours (PostgreSQL) or never (MySQL). A setting in
/// the URL wins. The kernel shows the probe timer in /proc/net/tcp.
fn an_idle_connection_sends_keepalives_within_a_minute(db: &TestDb) {
    // As in libpq, a PostgreSQL 0 means the default.
    let (sleep, own_setting, off, zeros) = match db.engine {
        Engine::Sqlite => return,
        Engine::Postgres => (
            "SELECT pg_sleep(3);",
            "keepalives_idle=600",
            "keepalives=0",
            "keepalives_idle=0&keepalives_interval=0&keepalives_retries=0",
        ),
        Engine::Mysql => ("SELECT SLEEP(3);", "tcp_keepalive_time_ms=600000", "tcp_keepalive_time_ms=0", ""),
    };
    let port = server_port(&db.url);
    let with = |setting: &str| format!("{}{}{setting}", db.url, if db.url.contains('?') { '&' } else { '?' });
    let p = Sandbox::empty();
    for (version, url, seconds) in [
        ("v001", db.url.clone(), Some(1..=60)),
        ("v002", with(own_setting), Some(61..=600)),
        ("v003", with(off), None),
        ("v004", with(zeros), Some(1..=60)),
    ] {
        p.write(&format!("releases/r1/{version}-wait.sql"), &format!("-- @add\n{sleep}\n"));
        let mut child = p.command(Some(&url), &["ff"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let started = Instant::now();
        let timer = loop {
            match tcp_timer(child.id(), port) {
                // Until the section's statement is sent, the timer may be the
                // retransmission one; the keepalive timer is armed when idle.
                Some(("02", left)) => break Some(left),
                Some(_) if seconds.is_none() && started.elapsed() > Duration::from_secs(1) => break None,
                _ if started.elapsed() > Duration::from_secs(2) => {
                    panic!("{version}: no keepalive timer on the connection to port {port}")
                }
                _ => thread::sleep(Duration::from_millis(20)),
            }
        };
        assert!(child.wait().unwrap().success(), "{version}");
        match (timer, seconds) {
            (Some(left), Some(seconds)) => {
                assert!(seconds.contains(&left), "{version}: first probe in {left}s, expected {seconds:?}")
            }
            (timer, seconds) => assert_eq!(timer.is_some(), seconds.is_some(), "{version}: keepalive timer {timer:?}"),
        }
    }
}

/// A keepalive setting the kernel refuses would fail every connect with a
/// bare "Invalid argument"; it is a usage error naming the parameter, before
/// anything is connected to.
fn keepalive_values_the_kernel_refuses_are_usage_errors(db: &TestDb) {
    let refused: &[&str] = match db.engine {
        Engine::Sqlite => return,
        Engine::Postgres => &["keepalives_idle=32768", "keepalives_interval=40000", "keepalives_retries=128"],
        Engine::Mysql => &[
            "tcp_keepalive_time_ms=999",
            "tcp_keepalive_time_ms=32768000",
            "tcp_keepalive_probe_interval_secs=0",
            "tcp_keepalive_probe_count=0",
            "tcp_keepalive_probe_count=200",
        ],
    };
    let p = Sandbox::empty();
    p.write("releases/r1/v001-t.sql", "-- @add\nCREATE TABLE t (id INTEGER PRIMARY KEY);\n");
    for setting in refused {
        let url = format!("{}{}{setting}", db.url, if db.url.contains('?') { '&' } else { '?' });
        p.run_with(Some(&url), &["ff"]).code(2).stderr_has(&format!("{setting} is out of range"));
    }
    assert!(!db.table_exists("pygrate_state") && !db.table_exists("t"), "nothing created");
}

/// A section may move the session elsewhere (`SET search_path`, `USE`, as
/// pg_dump output does): pygrate's own state writes still reach its tables,
/// atomic sections and statement-by-statement ones alike, and the next
/// section starts where the session began, as it would in a later run.
fn a_section_that_moves_the_session_still_records_its_state(db: &TestDb) {
    let database = db.url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default();
    let elsewhere = format!("{database}_elsewhere");
    let moves = match db.engine {
        Engine::Sqlite => return,
        Engine::Postgres => format!("CREATE SCHEMA {elsewhere};\nSET search_path TO {elsewhere};"),
        Engine::Mysql => format!("CREATE DATABASE {elsewhere};\nUSE {elsewhere};"),
    };
    let p = Sandbox::empty();
    p.write("releases/r1/v001-away.sql", &format!("-- @add\n{moves}\nCREATE TABLE moved (id INTEGER);\n"));
    p.write("releases/r1/v002-home.sql", "-- @add no-transaction\nCREATE TABLE at_home (id INTEGER);\n");
    let run = p.run(db, &["ff"]);
    if db.engine == Engine::Mysql {
        db.execute(&format!("DROP DATABASE IF EXISTS {elsewhere}"));
    }
    run.ok();
    let mut expected: Vec<String> = ["add", "drop", "simdrop"]
        .iter()
        .flat_map(|phase| ["v001-away", "v002-home"].map(|version| format!("r1/{version} {phase} applied")))
        .collect();
    expected.sort();
    assert_eq!(state(db), expected);
    assert!(db.table_exists("at_home"), "the second section ran where the session began");
    p.run(db, &["ff"]).ok().stdout_has("nothing to do");
}

/// Without a configured schema the state tables are found through the
/// search_path: a schema named after the user (`"$user"`, first in the
/// default search_path) that appears later must not hide them.
fn a_schema_named_after_the_user_does_not_hide_the_state(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    let p = Sandbox::empty();
    p.write("releases/r1/v001-t.sql", "-- @add\nCREATE TABLE t1 (id INTEGER);\n");
    p.write("releases/r1/v002-own.sql", "-- @add\nCREATE SCHEMA AUTHORIZATION CURRENT_USER;\n");
    p.run(db, &["ff"]).ok();
    p.run(db, &["ff"]).ok().stdout_has("nothing to do");
    p.run(db, &["check"]).ok();
}

/// A `no-transaction` section that failed after some statements resumes
/// after them even if its marker lost `no-transaction` in the fix: the
/// statements that ran are not run again.
fn a_resumed_section_does_not_rerun_what_ran_when_its_marker_changes(db: &TestDb) {
    let p = Sandbox::empty();
    let body = "CREATE TABLE r (id INTEGER PRIMARY KEY);\nINSERT INTO r VALUES (1);\n";
    p.write("releases/r1/v001-r.sql", &format!("-- @add no-transaction\n{body}INSERT INTO nope VALUES (1);\n"));
    p.run(db, &["ff"]).code(1);
    p.write("releases/r1/v001-r.sql", &format!("-- @add\n{body}INSERT INTO r VALUES (2);\n"));
    p.run(db, &["ff"]).ok().stdout_has("1 of 3 statements, resumed after 2");
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM r"), 2);
}

/// A resumed section starts on a fresh session: what its completed
/// statements did to the session (`SET search_path`, `USE`) is done again,
/// so the rest lands where it would have.
fn a_resumed_section_runs_where_its_first_statements_put_it(db: &TestDb) {
    let database = db.url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default();
    let app = format!("{database}_app");
    let (create, enter) = match db.engine {
        Engine::Sqlite => return,
        Engine::Postgres => (format!("CREATE SCHEMA {app};"), format!("SET search_path = {app};")),
        Engine::Mysql => (format!("CREATE DATABASE {app};"), format!("USE {app};")),
    };
    let p = Sandbox::empty();
    p.write("releases/r1/v001-app.sql", &format!("-- @add\n{create}\n"));
    let section = |bad: &str| {
        format!("-- @add no-transaction\n{enter}\nCREATE TABLE ok1 (id INTEGER);\nCREATE TABLE bad (id INTEGER){bad};\nCREATE TABLE ok2 (id INTEGER);\n")
    };
    p.write("releases/r1/v002-in-app.sql", &section(" BOGUS"));
    let failed = p.run(db, &["ff"]);
    p.write("releases/r1/v002-in-app.sql", &section(""));
    let resumed = p.run(db, &["ff"]);
    let placed: Vec<bool> = ["bad", "ok2"].iter().map(|t| db.table_exists(&format!("{app}.{t}"))).collect();
    if db.engine == Engine::Mysql {
        db.execute(&format!("DROP DATABASE IF EXISTS {app}"));
    }
    failed.code(1);
    resumed.ok().stdout_has("resumed after 2");
    assert_eq!(placed, [true, true], "the rest of the section ran in {app}");
}

/// A section may `SET ROLE` (to create objects its application owns) or
/// change the session where no look at its text can tell (`set_config` in a
/// DO block): pygrate still writes its own rows as the session's user, and
/// the next section starts as the session began.
/// pg_dump's `SET SESSION AUTHORIZATION`, and a read-only default, made
/// every state write of the section fail: a transactional section could
/// never be applied, a `no-transaction` one stayed `running` for good, and
/// its failure went unlogged. The state is written as the session's own
/// user, read-write, whatever the section did.
fn a_section_that_changes_the_session_user_or_makes_it_read_only_still_records(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    let database = db.url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default();
    let role = format!("{database}_dump");
    db.execute(&format!("CREATE ROLE {role} NOLOGIN"));
    db.execute(&format!("GRANT CREATE ON SCHEMA public TO {role}"));
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-a.sql",
        &format!("-- @add\nSET SESSION AUTHORIZATION {role};\nCREATE TABLE dumped_a (id INTEGER);\n"),
    );
    p.write(
        "releases/r1/v002-b.sql",
        &format!("-- @add no-transaction\nSET SESSION AUTHORIZATION {role};\nCREATE TABLE dumped_b (id INTEGER);\nSELECT 1;\n"),
    );
    p.write(
        "releases/r1/v003-c.sql",
        "-- @add no-transaction\nSET default_transaction_read_only = on;\nSELECT 1;\nSELECT 2;\n",
    );
    p.write(
        "releases/r1/v004-d.sql",
        "-- @add no-transaction\nSET default_transaction_read_only = on;\nCREATE TABLE nope (id INTEGER);\n",
    );
    let outcome = p.run(db, &["ff"]);
    let logged = db.query_i64("SELECT COUNT(*) FROM pygrate_log WHERE version_name = 'v004-d' AND outcome = 'failed'");
    let rows = state(db);
    db.execute(&format!("DROP OWNED BY {role}"));
    db.execute(&format!("DROP ROLE {role}"));
    outcome.code(1).stderr_has("v004-d.sql:3").stderr_has("[25006]");
    for applied in ["r1/v001-a add applied", "r1/v002-b add applied", "r1/v003-c add applied", "r1/v004-d add failed"] {
        assert!(rows.contains(&applied.to_string()), "{rows:?}");
    }
    assert_eq!(logged, 1, "the failure is logged");
}

fn a_section_that_sets_a_role_still_records_its_state(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    let database = db.url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default();
    let role = format!("{database}_app");
    db.execute(&format!("CREATE ROLE {role} NOLOGIN"));
    // Sections sent whole, and (`lock_retries: 0`) statement by statement.
    for (config, run) in [("", "whole"), ("lock_retries: 0\n", "stepwise")] {
        db.execute(&format!("GRANT CREATE ON SCHEMA public TO {role}"));
        let p = Sandbox::empty();
        p.write("conf.d/test.yaml", config);
        p.write(
            "releases/r1/v001-a.sql",
            &format!("-- @add\nSET ROLE {role};\nCREATE TABLE owned_a_{run} (id INTEGER);\n"),
        );
        p.write(
            "releases/r1/v002-b.sql",
            &format!("-- @add no-transaction\nSET ROLE {role};\nCREATE TABLE owned_b_{run} (id INTEGER);\n"),
        );
        p.write(
            "releases/r1/v003-c.sql",
            "-- @add\nDO $$ BEGIN PERFORM set_config('search_path', '', false); END $$;\n",
        );
        p.write("releases/r1/v004-d.sql", &format!("-- @add\nCREATE TABLE mine_{run} (id INTEGER);\n"));
        let outcome = p.run(db, &["ff"]);
        let owner = |table: &str| {
            db.query_strings(&format!("SELECT tableowner FROM pg_tables WHERE tablename = '{table}_{run}'"))
                .first()
                .and_then(|row| row[0].clone())
                .unwrap_or_default()
        };
        let owners = [owner("owned_a"), owner("owned_b"), owner("mine")];
        db.execute(&format!("DROP OWNED BY {role}"));
        outcome.ok();
        assert_eq!(owners[..2], [role.clone(), role.clone()], "{run}");
        assert_ne!(owners[2], role, "{run}: the next section ran as the session's user");
        assert_eq!(state(db).iter().filter(|r| r.ends_with(" applied")).count(), 4 * 3, "{run}");
        db.execute("DROP TABLE pygrate_state, pygrate_log, pygrate_meta");
    }
    db.execute(&format!("DROP ROLE {role}"));
}

/// `-v` shows each statement as it is sent: where a section runs statement
/// by statement, the ones after a failure never ran and are not shown.
fn verbose_shows_only_the_statements_that_were_sent(db: &TestDb) {
    let p = Sandbox::empty();
    // PostgreSQL sends a transactional section whole unless no retry can follow.
    p.write("conf.d/test.yaml", "lock_retries: 0\n");
    p.write(
        "releases/r1/v001-a.sql",
        "-- @add\nCREATE TABLE sent_first (id INTEGER);\nINSERT INTO nowhere VALUES (1);\nCREATE TABLE never_sent (id INTEGER);\n",
    );
    let run = p.run(db, &["-v", "ff"]);
    run.code(1).stdout_has("2 | CREATE TABLE sent_first").stdout_has("3 | INSERT INTO nowhere");
    assert!(!run.stdout.contains("never_sent"), "{}", run.stdout);
}

/// A role that may create in its own schema, but not in the database, uses
/// `schema:` from the first run: CREATE SCHEMA IF NOT EXISTS was refused
/// for want of CREATE on the database, although the schema existed.
fn a_configured_schema_needs_no_create_right_on_the_database(db: &TestDb) {
    if db.engine != Engine::Postgres {
        return;
    }
    let database = db.url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default();
    let role = format!("{database}_owner");
    db.execute(&format!(
        "CREATE ROLE {role} LOGIN; CREATE SCHEMA app_{role} AUTHORIZATION {role}; \
         REVOKE CREATE ON DATABASE {database} FROM PUBLIC"
    ));
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", &format!("schema: app_{role}\n"));
    p.write("releases/r1/v001-t.sql", &format!("-- @add\nCREATE TABLE app_{role}.t (id INTEGER);\n"));
    let run = p.run_with(Some(&url), &["ff"]);
    db.execute(&format!("DROP SCHEMA app_{role} CASCADE; DROP OWNED BY {role}; DROP ROLE {role}"));
    run.ok();
}

/// The port of a test server's URL (`scheme://user@host:port/db`).
fn server_port(url: &str) -> u16 {
    let authority = url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    host.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).unwrap_or(if url.starts_with("mysql") {
        3306
    } else {
        5432
    })
}

/// The timer of process `pid`'s TCP connection to `port`, from
/// /proc/net/tcp: its kind ("02" is keepalive, "00" none) and the seconds
/// until it fires (clock ticks of 1/100 s). None: no such connection.
fn tcp_timer(pid: u32, port: u16) -> Option<(&'static str, u64)> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|link| Some(link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.to_string()))
        .collect();
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|table| {
        let sockets = std::fs::read_to_string(table).ok()?;
        sockets.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = u16::from_str_radix(fields.get(2)?.rsplit(':').next()?, 16).ok()?;
            let ours = inodes.iter().any(|inode| Some(&inode.as_str()) == fields.get(9));
            if !ours || remote_port != port {
                return None;
            }
            let (kind, when) = fields.get(5)?.split_once(':')?;
            let kind = if kind == "02" {
                "02"
            } else if kind == "00" {
                "00"
            } else {
                "other"
            };
            Some((kind, u64::from_str_radix(when, 16).ok()? / 100))
        })
    })
}

/// mysqldump's `/*! … */` statements run on MySQL: they were dropped as
/// comments, and the phase was recorded applied without them.
#[test]
fn mysql_executable_comments_run() {
    let Some(db) = TestDb::create(Engine::Mysql) else { return };
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-dump.sql",
        "-- @add\n/*!50003 CREATE TABLE t2 (id INT) */;\nCREATE TABLE tt (id INT, v INT);\nDELIMITER ;;\n\
         /*!50003 CREATE*/ /*!50003 TRIGGER trg BEFORE INSERT ON tt FOR EACH ROW SET NEW.v = 7 */;;\nDELIMITER ;\n\
         INSERT INTO tt (id) VALUES (1);\n-- @rollback_add\nDROP TABLE tt;\nDROP TABLE t2;\n",
    );
    p.run_with(Some(&db.url), &["add"]).ok().stdout_has("4 statements");
    assert!(db.table_exists("t2"));
    assert_eq!(db.query_i64("SELECT v FROM tt"), 7);
}

/// A `no-transaction` section may run its own transaction. A statement
/// failing inside it took pygrate's records along: the message said the
/// statements before it stayed applied and the phase was marked failed,
/// while the state still said `running` with fewer done, and the work it
/// called applied was rolled back. Progress inside such a transaction is
/// now recorded at its COMMIT, and a failure inside it rolls it back first.
fn a_transaction_of_the_section_is_rolled_back_and_resumed_whole(db: &TestDb) {
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-a.sql",
        "-- @add\nCREATE TABLE a (id INTEGER PRIMARY KEY);\n-- @rollback_add\nDROP TABLE a;\n",
    );
    let own = |second: u32| {
        format!(
            "-- @add no-transaction\nINSERT INTO a VALUES (10);\nBEGIN;\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES \
             ({second});\nCOMMIT;\n-- @rollback_add\nDELETE FROM a;\n"
        )
    };
    p.write("releases/r1/v002-b.sql", &own(1));
    p.run_with(Some(&db.url), &["add"])
        .code(1)
        .stderr_has("releases/r1/v002-b.sql:5: add r1/v002-b failed")
        .stderr_has("The transaction the section began at line 3 was rolled back, with statements 2 to 3.")
        .stderr_has("1 of 5 statement(s) completed and stay applied; the phase is marked failed");
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM a"), 1, "only the row before the transaction");
    let row = db.query_strings("SELECT status, statements_done FROM pygrate_state WHERE version_name = 'v002-b'");
    assert_eq!(row, vec![vec![Some("failed".to_string()), Some("1".to_string())]]);
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM pygrate_log WHERE version_name = 'v002-b' AND outcome = 'failed'"),
        1
    );
    p.write("releases/r1/v002-b.sql", &own(2));
    p.run_with(Some(&db.url), &["add"]).ok();
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM a"), 3);
    assert!(state(db).contains(&"r1/v002-b add applied".to_string()), "{:?}", state(db));
}

/// `begin` is a common column and parameter name. A trigger or function
/// naming it was read as a body that never ended: every later statement of
/// the section became part of it, so the failing statement's line, the
/// count of statements done and the resume were all wrong (and lint and
/// the COMMIT check saw nothing after it).
fn a_routine_using_begin_as_a_name_is_one_statement(db: &TestDb) {
    let routine = match db.engine {
        Engine::Sqlite => {
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET finish = NEW.begin + 1 WHERE id = NEW.id; END"
        }
        Engine::Postgres => {
            "CREATE FUNCTION plus(begin int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT begin + 1; END;\n\
             CREATE FUNCTION tr() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.finish = plus(NEW.\"begin\"); RETURN NEW; END $$;\n\
             CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION tr()"
        }
        Engine::Mysql => "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.finish = NEW.begin + 1; END",
    };
    let file = |insert: &str| {
        format!(
            "-- @add no-transaction\nCREATE TABLE t (id INT, begin INT, finish INT);\n{routine};\n\
             CREATE TABLE t2 (x INT);\n{insert};\n-- @rollback_add\nDROP TABLE t2;\nDROP TABLE t;\n"
        )
    };
    fails_then_resumes(db, &file("INSERT INTO nowhere VALUES (1)"), &file("INSERT INTO t (id, begin) VALUES (1, 5)"));
    assert_eq!(db.query_i64("SELECT finish FROM t"), 6);
}

fn fails_then_resumes(db: &TestDb, failing: &str, fixed: &str) {
    let p = Sandbox::empty();
    p.write("releases/r1/v001-a.sql", failing);
    let line = failing.lines().position(|l| l.starts_with("INSERT INTO nowhere")).map_or(0, |i| i + 1);
    let before = failing.lines().filter(|l| l.ends_with(';')).count() - 3;
    p.run_with(Some(&db.url), &["add"])
        .code(1)
        .stderr_has(&format!("releases/r1/v001-a.sql:{line}: add r1/v001-a failed"))
        .stderr_has(&format!("{before} of {} statement(s) completed", before + 1));
    p.write("releases/r1/v001-a.sql", fixed);
    p.run_with(Some(&db.url), &["add"]).ok().stdout_has(&format!("resumed after {before}"));
}

crate::on_every_engine!(
    a_routine_using_begin_as_a_name_is_one_statement,
    a_transaction_of_the_section_is_rolled_back_and_resumed_whole,
    a_resumed_section_runs_where_its_first_statements_put_it,
    a_section_that_sets_a_role_still_records_its_state,
    a_section_that_changes_the_session_user_or_makes_it_read_only_still_records,
    a_resumed_section_does_not_rerun_what_ran_when_its_marker_changes,
    a_section_that_moves_the_session_still_records_its_state,
    a_schema_named_after_the_user_does_not_hide_the_state,
    an_idle_connection_sends_keepalives_within_a_minute,
    verbose_shows_only_the_statements_that_were_sent,
    keepalive_values_the_kernel_refuses_are_usage_errors,
    an_error_without_position_still_names_its_statement,
    a_lock_timeout_is_waited_for_once_per_attempt,
    a_statement_timeout_is_waited_for_once,
    a_failure_that_does_not_recur_is_not_blamed_on_the_state,
    lock_timeout_fails_fast_and_applies_nothing,
    lock_timeout_is_five_seconds_unless_configured,
    a_lock_timeout_is_retried_until_the_blocker_lets_go,
    create_index_concurrently_needs_no_transaction,
    a_killed_mysql_section_resumes_at_the_first_statement_not_done,
    a_killed_no_transaction_statement_is_cancelled_not_run_twice,
    a_configured_schema_needs_no_create_right_on_the_database,
    a_resumed_statement_that_fails_may_have_completed_before,
    a_terminated_session_is_reported_as_a_lost_connection,
    a_refused_log_row_leaves_no_phase_applied_without_it,
    a_refused_state_change_prints_nothing_it_did_not_make,
);

/// SPEC 7: a password never appears in any output. A failing statement's
/// error may quote what it was given, and the connection's password was
/// then printed and stored in the state and log rows.
#[test]
fn a_statement_error_never_shows_the_password() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    // Trust authentication on the test server accepts any password.
    let Some((user, rest)) = db.url.strip_prefix("postgres://").and_then(|r| r.split_once('@')) else { return };
    if user.contains(':') {
        return;
    }
    let url = format!("postgres://{user}:S3cretXYZ@{rest}");
    let p = Sandbox::empty();
    p.write("releases/r1/v001-a.sql", "-- @add\nSELECT 'S3cretXYZ'::int;\n");
    // `-v` shows each statement as it is sent: masked there too.
    let run = p.run_with(Some(&url), &["-v", "add"]);
    run.code(1).stderr_has("invalid input syntax for type integer: \"***\"").stdout_has("SELECT '***'::int");
    assert!(!run.stderr.contains("S3cretXYZ"), "{}", run.stderr);
    assert!(!run.stdout.contains("S3cretXYZ"), "{}", run.stdout);
    for plan in [&["plan"][..], &["--format", "json", "plan"], &["-n", "add"]] {
        let shown = p.run_with(Some(&url), plan);
        shown.ok().stdout_has("'***'::int");
        assert!(!shown.stdout.contains("S3cretXYZ"), "{plan:?}: {}", shown.stdout);
    }
    let status = p.run_with(Some(&url), &["status"]);
    assert!(!status.stdout.contains("S3cretXYZ"), "{}", status.stdout);
    let stored = db.query_strings("SELECT detail FROM pygrate_log UNION ALL SELECT error FROM pygrate_state");
    assert!(!format!("{stored:?}").contains("S3cretXYZ"), "{stored:?}");
}

/// What `synchronous_commit` each of `tables` (one row, `s`) recorded.
fn recorded_settings(db: &TestDb, tables: &[&str]) -> Vec<String> {
    tables
        .iter()
        .map(|t| db.query_strings(&format!("SELECT s FROM {t}")).concat().into_iter().flatten().collect())
        .collect()
}

/// PostgreSQL sections commit without waiting for the disk, and the next
/// commit that waits makes them durable: the last before a `no-transaction`
/// section and the last of the run wait, as the session's own setting says
/// (here the database's `local`), so that a run that exits 0 is on disk.
#[test]
fn postgres_commits_wait_for_the_disk_before_a_no_transaction_section_and_at_the_end() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    let database = db.url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default();
    db.execute(&format!("ALTER DATABASE {database} SET synchronous_commit = local"));
    let p = Sandbox::empty();
    let record = |t: &str| format!("-- @add\nCREATE TABLE {t} AS SELECT current_setting('synchronous_commit') AS s;\n");
    p.write("releases/r1/v001-a.sql", &record("seen_a"));
    p.write("releases/r1/v002-b.sql", &record("seen_b"));
    p.write("releases/r1/v003-c.sql", "-- @add no-transaction\nCREATE INDEX CONCURRENTLY ix_a ON seen_a (s);\n");
    p.write("releases/r1/v004-d.sql", &record("seen_d"));
    p.write("releases/r1/v005-e.sql", &format!("{}SET LOCAL synchronous_commit = on;\n", record("seen_e")));
    p.write("releases/r1/v006-f.sql", &record("seen_f"));
    p.run_with(Some(&db.url), &["add"]).ok().stdout_has("r1/v001-a  ok").stdout_has("r1/v006-f  ok");
    let settings = recorded_settings(&db, &["seen_a", "seen_b", "seen_d", "seen_f"]);
    assert_eq!(settings, ["off", "local", "off", "local"]);
    assert_eq!(state(&db).iter().filter(|r| r.ends_with("add applied")).count(), 6, "{:?}", state(&db));
}

/// A failure after a section whose commit did not wait: it is made durable
/// and reported before the error, as if it had waited.
#[test]
fn a_postgres_section_before_a_failure_is_reported_applied() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-a.sql",
        "-- @add\nCREATE TABLE a AS SELECT current_setting('synchronous_commit') AS s;\n",
    );
    p.write("releases/r1/v002-b.sql", "-- @add\nCREATE TABLE b (id INTEGER);\nSELECT 1/0;\n");
    let run = p.run_with(Some(&db.url), &["add"]);
    run.code(1).stderr_has("v002-b.sql:3: add r1/v002-b failed").stdout_has("r1/v001-a  ok");
    assert_eq!(recorded_settings(&db, &["a"]), ["off"], "v001 did not wait, so the failure path confirmed it");
    assert_eq!(state(&db), ["r1/v001-a add applied"]);
}

/// A deferred foreign key fails at COMMIT, after every statement ran. The
/// message said the failure "did not recur" when the section was run again
/// (sent whole), or blamed recording the state (sent statement by statement).
#[test]
fn a_deferred_constraint_is_reported_as_failing_at_commit() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    for config in ["", "lock_retries: 0\n"] {
        let p = Sandbox::empty();
        p.write("conf.d/test.yaml", config);
        p.write(
            "releases/r1/v001-fk.sql",
            "-- @add\nCREATE TABLE parent (id INTEGER PRIMARY KEY);\n\
             CREATE TABLE child (pid INTEGER REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n\
             INSERT INTO child VALUES (1);\n",
        );
        let run = p.run_with(Some(&db.url), &["add"]);
        run.code(1)
            .stderr_has("v001-fk.sql:1: add r1/v001-fk failed")
            .stderr_has("(not determined: the error came at COMMIT, once every statement had run")
            .stderr_has("23503");
        assert!(!db.table_exists("child"), "{config}");
        assert_eq!(state(&db), Vec::<String>::new(), "{config}");
    }
}

/// Starts `pygrate add` on `db`; calling the result waits for it to end.
fn add_in_background(p: &Sandbox, db: &TestDb) -> impl FnOnce() -> Run {
    let child = p.command(Some(&db.url), &["add"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    move || Run::from(child.wait_with_output().unwrap())
}

/// Polls `ready` every 20 ms for up to 30 s.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// PostgreSQL ends a deadlock by failing one side, with its whole
/// transaction. When that is pygrate's section it is retried as after a lock
/// timeout, and applied once the application's transaction is done; it was
/// reported as a failure ("Fix the statement").
#[test]
fn a_postgres_section_that_loses_a_deadlock_is_retried() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    db.execute("CREATE TABLE a (id INTEGER); CREATE TABLE b (id INTEGER)");
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", "lock_retries: 2\n");
    p.write(
        "releases/r1/v001-ab.sql",
        "-- @add\nALTER TABLE a ADD COLUMN note TEXT;\nALTER TABLE b ADD COLUMN note TEXT;\n",
    );
    // The application writes to b, then reads a. Its deadlock_timeout is
    // the longer, so the deadlock check that fires is pygrate's.
    let mut app = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    app.batch_execute("SET deadlock_timeout = '60s'; BEGIN; UPDATE b SET id = id").unwrap();
    let add = add_in_background(&p, &db);
    wait_for("pygrate to hold a and wait for b", || {
        db.query_i64(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'b' AND l.mode = 'AccessExclusiveLock' AND NOT l.granted",
        ) == 1
    });
    // Waits until the deadlock fails pygrate's transaction, which held a.
    app.batch_execute("SELECT * FROM a; COMMIT").unwrap();
    let run = add();
    run.ok()
        .stderr_has("add r1/v001-ab: was in a deadlock with another session")
        .stderr_has("[40P01]")
        .stderr_has("retry 1 in 250ms");
    assert_eq!(state(&db), ["r1/v001-ab add applied"]);
    assert_eq!(db.query_i64("SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"), 2);
}

/// Under REPEATABLE READ (or SERIALIZABLE), a section that updates a row a
/// concurrent transaction changed after the section's snapshot fails with
/// 40001, its transaction rolled back: it is retried, with a new snapshot.
#[test]
fn a_postgres_section_that_loses_a_serialization_conflict_is_retried() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    db.execute(
        "CREATE TABLE counter (n INTEGER); INSERT INTO counter VALUES (0); \
         DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = %L', \
         current_database(), 'repeatable read'); END $$",
    );
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", "lock_retries: 1\n");
    p.write(
        "releases/r1/v001-count.sql",
        "-- @add\nSELECT n FROM counter;\nSELECT pg_sleep(1);\nUPDATE counter SET n = n + 1 WHERE n >= 0;\n",
    );
    let add = add_in_background(&p, &db);
    wait_for("the section to sleep", || {
        db.query_i64(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()",
        ) == 1
    });
    db.execute("UPDATE counter SET n = n + 10");
    let run = add();
    run.ok()
        .stderr_has("add r1/v001-count: could not be serialized with a concurrent transaction")
        .stderr_has("[40001]")
        .stderr_has("retry 1");
    assert_eq!(state(&db), ["r1/v001-count add applied"]);
    assert_eq!(db.query_i64("SELECT n FROM counter"), 11);
}

/// InnoDB ends a deadlock by rolling back the transaction it weighs least.
/// When that is pygrate's, the statement (alone in pygrate's transaction)
/// is retried as after error 1205, and the phase applied.
#[test]
fn a_mysql_statement_that_loses_a_deadlock_is_retried() {
    let Some(db) = TestDb::create(Engine::Mysql) else { return };
    db.execute(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, v INTEGER); CREATE TABLE b (id INTEGER PRIMARY KEY, v INTEGER); \
         CREATE TABLE scratch (id INTEGER); INSERT INTO a VALUES (1, 0); INSERT INTO b VALUES (1, 0)",
    );
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", "lock_retries: 2\n");
    p.write(
        "releases/r1/v001-ab.sql",
        "-- @add\nUPDATE a, b SET a.v = a.v + 1, b.v = b.v + 1 WHERE a.id = 1 AND b.id = 1;\n",
    );
    // The application's transaction holds b's row and has written more
    // rows than pygrate's will have, so InnoDB picks pygrate's to undo.
    let mut app = ::mysql::Conn::new(::mysql::Opts::from_url(&db.url).unwrap()).unwrap();
    app.query_drop("START TRANSACTION").unwrap();
    app.query_drop("INSERT INTO scratch VALUES (1), (2), (3), (4), (5), (6), (7), (8)").unwrap();
    app.query_drop("SELECT * FROM b WHERE id = 1 FOR UPDATE").unwrap();
    let add = add_in_background(&p, &db);
    wait_for("pygrate's statement", || {
        db.query_i64("SELECT count(*) FROM information_schema.processlist WHERE info LIKE 'UPDATE a, b%'") == 1
    });
    // Holding a's row, it waits for b's.
    thread::sleep(Duration::from_millis(200));
    // Waits for a's row, which pygrate's statement holds: a deadlock.
    app.query_drop("UPDATE a SET v = v + 10 WHERE id = 1").unwrap();
    app.query_drop("COMMIT").unwrap();
    let run = add();
    run.ok().stderr_has("add r1/v001-ab: was in a deadlock with another session").stderr_has("[1213]");
    assert_eq!(state(&db), ["r1/v001-ab add applied"]);
    assert_eq!(db.query_i64("SELECT v FROM a"), 11);
    assert_eq!(db.query_i64("SELECT v FROM b"), 1);
}

/// A `CREATE INDEX CONCURRENTLY` that fails (here: a lock timeout, waiting
/// for an application transaction older than it, on any table) leaves an
/// INVALID index behind. Running the statement again, as a retry or as the
/// resume of a later run, drops that index first. Before, the retry of
/// `… IF NOT EXISTS` found the index there and did nothing, and the phase
/// was recorded applied on an index PostgreSQL never uses; without `IF NOT
/// EXISTS` every retry and resume failed with 42P07.
#[test]
fn a_failed_concurrent_index_build_is_built_again_not_left_invalid() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    db.execute(
        "CREATE TABLE k1 (x INTEGER); INSERT INTO k1 SELECT generate_series(1, 100); CREATE TABLE other (x INTEGER)",
    );
    let p = Sandbox::empty();
    p.write("conf.d/test.yaml", "lock_timeout: 1s\nlock_retries: 2\n");
    p.write(
        "releases/r1/v001-k1-x.sql",
        "-- @add no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS k1_x ON k1 (x);\n\
         -- @rollback_add no-transaction\nDROP INDEX CONCURRENTLY k1_x;\n",
    );
    let building = |index: &str| {
        db.query_strings(&format!(
            "SELECT query_start::text FROM pg_stat_activity WHERE state = 'active' \
             AND query LIKE 'CREATE INDEX CONCURRENTLY%{index}%'"
        ))
    };
    let valid = |index: &str| {
        db.query_strings(&format!("SELECT indisvalid::text FROM pg_index WHERE indexrelid = '{index}'::regclass"))
    };
    // A report query's snapshot: the build waits for it to end.
    let mut app = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    app.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM other").unwrap();
    let add = add_in_background(&p, &db);
    wait_for("the first build", || !building("k1_x").is_empty());
    let first = building("k1_x");
    wait_for("the retry's build", || !building("k1_x").is_empty() && building("k1_x") != first);
    app.batch_execute("COMMIT").unwrap();
    add().ok().stderr_has("retry 1 in 250ms").stderr_has(
        "add r1/v001-k1-x: dropped the INVALID index k1_x that a CREATE INDEX CONCURRENTLY which failed had left",
    );
    assert_eq!(valid("k1_x"), [[Some("true".to_string())]]);

    // No retries: the run fails, and the next one resumes by building again.
    p.write("conf.d/test.yaml", "lock_timeout: 1s\nlock_retries: 0\n");
    p.write("releases/r1/v002-k1-y.sql", "-- @add no-transaction\nCREATE INDEX CONCURRENTLY k1_y ON k1 (x);\n");
    app.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM other").unwrap();
    p.run(&db, &["add"]).code(1).stderr_has("[55P03]");
    assert_eq!(valid("k1_y"), [[Some("false".to_string())]]);
    app.batch_execute("COMMIT").unwrap();
    p.run(&db, &["add"]).ok().stderr_has("dropped the INVALID index k1_y");
    assert_eq!(valid("k1_y"), [[Some("true".to_string())]]);
    assert_eq!(state(&db), ["r1/v001-k1-x add applied", "r1/v002-k1-y add applied"]);
}
