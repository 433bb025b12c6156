//! The `Backend` contract, checked against every engine.

use std::path::Path;
use std::time::{Duration, Instant};

use pygrate::backend::{connect, Backend, Keepalive, Location, Settings, Timeouts};
use pygrate::error::{Conflict, Error};
use pygrate::phase::Phase;
use pygrate::project::VersionId;
use pygrate::state::{Actor, LogEntry, PhaseState, Status};

use crate::support::{Engine, TestDb};

crate::on_every_engine!(
    state_tables_appear_on_ensure,
    phases_round_trip,
    log_keeps_order,
    lock_is_exclusive,
    state_table_prefixes_lock_separately,
    execute_errors_carry_code_and_message,
    lock_timeout_is_flagged,
    transactions_roll_back_state,
);

fn settings(prefix: &str) -> Settings {
    Settings {
        state_table: prefix.to_string(),
        schema: None,
        timeouts: Timeouts::default(),
        actor: Actor::current(),
        connect_timeout: Some(Duration::from_secs(5)),
        keepalive: Keepalive::default(),
    }
}

fn open_with(url: &str, settings: &Settings) -> Result<Box<dyn Backend>, Error> {
    Ok(connect(&Location::parse(url, Path::new("/"))?, settings, true)?)
}

fn open(db: &TestDb, settings: &Settings) -> Box<dyn Backend> {
    open_with(&db.url, settings).unwrap_or_else(|e| panic!("{}: {e}", db.engine.name()))
}

fn row(release: &str, version: &str, phase: Phase, status: Status) -> PhaseState {
    PhaseState {
        id: VersionId::new(release, version),
        phase,
        status,
        checksum: Some("a".repeat(64)),
        rollback_checksum: None,
        rolling_back: false,
        statements_done: 0,
        done_checksum: None,
        at: "2026-01-02T03:04:05.678Z".to_string(),
        by: "zoë@hôte".to_string(),
        duration_ms: 1234,
        error: None,
    }
}

fn sorted(mut rows: Vec<PhaseState>) -> Vec<PhaseState> {
    rows.sort_by(|a, b| {
        (&a.id.release, &a.id.version, a.phase.name()).cmp(&(&b.id.release, &b.id.version, b.phase.name()))
    });
    rows
}

fn state_tables_appear_on_ensure(db: &TestDb) {
    let mut backend = open(db, &settings("pygrate"));
    assert_eq!(backend.read_state().unwrap(), None);
    assert_eq!(backend.read_log().unwrap(), Vec::new());
    backend.ensure_state_tables().unwrap();
    assert_eq!(backend.read_state().unwrap(), Some(Vec::new()));
    backend.ensure_state_tables().unwrap();
    assert_eq!(backend.read_state().unwrap(), Some(Vec::new()));
    for table in ["pygrate_state", "pygrate_log", "pygrate_meta"] {
        assert!(db.table_exists(table), "{}: {table} missing", db.engine.name());
    }
}

fn phases_round_trip(db: &TestDb) {
    let mut backend = open(db, &settings("pygrate"));
    backend.ensure_state_tables().unwrap();
    let plain = row("2026.01", "v001-init", Phase::Add, Status::Applied);
    let mut odd = row("2026.02-ünïcødé", "v002-日本語-names", Phase::Simdrop, Status::Failed);
    odd.rollback_checksum = Some("b".repeat(64));
    odd.rolling_back = true;
    odd.statements_done = 3;
    odd.done_checksum = Some("c".repeat(64));
    odd.error = Some("[42P01] relation «x» does not exist\n  hint: ☃".to_string());
    odd.duration_ms = i64::MAX;
    backend.save_phase(&plain).unwrap();
    backend.save_phase(&odd).unwrap();
    assert_eq!(sorted(backend.read_state().unwrap().unwrap()), sorted(vec![plain.clone(), odd.clone()]));

    // The same key again updates every column.
    let mut settled = odd.clone();
    settled.status = Status::Applied;
    settled.rolling_back = false;
    settled.statements_done = 0;
    settled.done_checksum = None;
    settled.error = None;
    settled.checksum = None;
    settled.duration_ms = 0;
    backend.save_phase(&settled).unwrap();
    assert_eq!(sorted(backend.read_state().unwrap().unwrap()), sorted(vec![plain.clone(), settled.clone()]));

    backend.delete_phase(&settled.id, settled.phase).unwrap();
    assert_eq!(backend.read_state().unwrap().unwrap(), vec![plain.clone()]);
    // Deleting what is not there is not an error.
    backend.delete_phase(&settled.id, Phase::Drop).unwrap();
    // A second connection sees what the first wrote.
    let mut other = open(db, &settings("pygrate"));
    assert_eq!(other.read_state().unwrap().unwrap(), vec![plain]);
}

fn log_keeps_order(db: &TestDb) {
    let mut backend = open(db, &settings("pygrate"));
    backend.ensure_state_tables().unwrap();
    let entries: Vec<LogEntry> = (0..5)
        .map(|i| LogEntry {
            at: format!("2026-01-01T00:00:0{}.000Z", 9 - i),
            by: "zoë@hôte".to_string(),
            operation: if i % 2 == 0 { "apply" } else { "rollback" }.to_string(),
            release: "2026.01".to_string(),
            version: format!("v00{i}-ñame"),
            phase: "add".to_string(),
            outcome: if i == 3 { "failed" } else { "ok" }.to_string(),
            checksum: (i != 1).then(|| format!("{i:064}")),
            old_checksum: (i == 2).then(|| "f".repeat(64)),
            duration_ms: i * 1000,
            detail: (i == 3).then(|| "line 4: [1146] Table 'x' doesn't exist — «détail»".to_string()),
        })
        .collect();
    for entry in &entries {
        backend.append_log(entry).unwrap();
    }
    assert_eq!(backend.read_log().unwrap(), entries);
}

fn lock_is_exclusive(db: &TestDb) {
    let settings = settings("pygrate");
    let mut first = open(db, &settings);
    let mut second = open(db, &settings);
    assert!(first.try_lock().unwrap());
    assert!(!second.try_lock().unwrap());
    let holder = second.lock_holder().unwrap();
    let identifying = match db.engine {
        Engine::Mysql => "connection ".to_string(),
        _ => format!("pid {}", settings.actor.pid),
    };
    assert!(holder.contains(&identifying), "{}: holder {holder:?} lacks {identifying:?}", db.engine.name());
    let now = second.lock_holder_now().unwrap().unwrap_or_default();
    assert!(now.contains(&identifying), "{}: holder now {now:?} lacks {identifying:?}", db.engine.name());
    // The lock lives across transactions (a section's COMMIT must not drop it).
    first.begin().unwrap();
    first.commit().unwrap();
    assert!(!second.try_lock().unwrap());
    first.unlock().unwrap();
    assert!(second.try_lock().unwrap());
    assert!(!first.try_lock().unwrap());
    second.unlock().unwrap();
    // Unlocking what one does not hold is harmless.
    second.unlock().unwrap();
    // Asking who holds a free lock takes nothing (the next try_lock gets it).
    assert_eq!(second.lock_holder_now().unwrap(), None, "{}", db.engine.name());
    // A dropped connection releases the lock.
    assert!(first.try_lock().unwrap());
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !second.try_lock().unwrap() {
        assert!(Instant::now() < deadline, "{}: the lock outlived its connection", db.engine.name());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn state_table_prefixes_lock_separately(db: &TestDb) {
    let mut one = open(db, &settings("one"));
    let mut two = open(db, &settings("two"));
    assert!(one.try_lock().unwrap());
    assert!(two.try_lock().unwrap(), "{}: prefix `two` was blocked by `one`", db.engine.name());
    one.ensure_state_tables().unwrap();
    two.ensure_state_tables().unwrap();
    one.save_phase(&row("r", "v", Phase::Add, Status::Applied)).unwrap();
    assert_eq!(one.read_state().unwrap().map(|r| r.len()), Some(1));
    assert_eq!(two.read_state().unwrap().map(|r| r.len()), Some(0));
}

fn execute_errors_carry_code_and_message(db: &TestDb) {
    let mut backend = open(db, &settings("pygrate"));
    backend.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)").unwrap();
    backend.execute("INSERT INTO t (id) VALUES (1)").unwrap();
    // Statements that return rows are fine too.
    backend.execute("SELECT id FROM t").unwrap();
    let error = backend.execute("SELECT * FROM no_such_table").unwrap_err();
    let code = error.code.clone().unwrap_or_default();
    match db.engine {
        Engine::Postgres => assert_eq!(code, "42P01"),
        Engine::Mysql => assert_eq!(code, "1146"),
        Engine::Sqlite => assert!(!code.is_empty()),
    }
    assert!(error.message.contains("no_such_table"), "{}: {error:?}", db.engine.name());
    assert_eq!(error.conflict, None);
    let error = backend.execute("INSERT INTO t (id) VALUES (1)").unwrap_err();
    assert!(error.code.is_some() && !error.message.is_empty(), "{}: {error:?}", db.engine.name());
    // The connection is still usable after errors.
    backend.execute("INSERT INTO t (id) VALUES (2)").unwrap();
    assert_eq!(db.query_i64("SELECT count(*) FROM t"), 2);
}

fn transactions_roll_back_state(db: &TestDb) {
    let mut backend = open(db, &settings("pygrate"));
    backend.ensure_state_tables().unwrap();
    backend.rollback().unwrap(); // no transaction open: a no-op
    backend.begin().unwrap();
    backend.save_phase(&row("r", "v", Phase::Add, Status::Applied)).unwrap();
    backend.rollback().unwrap();
    assert_eq!(backend.read_state().unwrap(), Some(Vec::new()));
    backend.begin().unwrap();
    backend.save_phase(&row("r", "v", Phase::Add, Status::Applied)).unwrap();
    backend.commit().unwrap();
    assert_eq!(backend.read_state().unwrap().map(|r| r.len()), Some(1));
}

fn lock_timeout_is_flagged(db: &TestDb) {
    if db.engine == Engine::Sqlite {
        return; // SQLite's busy timeout is covered with the sqlite adapter.
    }
    db.execute("CREATE TABLE t (id INTEGER)");
    let mut holder = open(db, &settings("pygrate"));
    holder.begin().unwrap();
    match db.engine {
        Engine::Postgres => holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE").unwrap(),
        // An open transaction that read t holds a metadata lock on it.
        _ => holder.execute("SELECT * FROM t").unwrap(),
    }
    let mut waiting_settings = settings("pygrate");
    waiting_settings.timeouts.lock_timeout = Some(match db.engine {
        Engine::Postgres => Duration::from_millis(200),
        _ => Duration::from_secs(1),
    });
    let mut backend = open(db, &waiting_settings);
    let started = Instant::now();
    let error = match db.engine {
        Engine::Postgres => {
            backend.begin().unwrap();
            backend.apply_timeouts(true).unwrap();
            let error = backend.execute("ALTER TABLE t ADD COLUMN x int").unwrap_err();
            backend.rollback().unwrap();
            error
        }
        _ => {
            backend.apply_timeouts(false).unwrap();
            backend.execute("ALTER TABLE t ADD COLUMN x int").unwrap_err()
        }
    };
    assert_eq!(error.conflict, Some(Conflict::LockTimeout), "{}: {error:?}", db.engine.name());
    let expected = if db.engine == Engine::Postgres { "55P03" } else { "1205" };
    assert_eq!(error.code.as_deref(), Some(expected));
    assert!(started.elapsed() < Duration::from_secs(10), "{}: waited {:?}", db.engine.name(), started.elapsed());
    // Once the holder is gone, the same statement goes through.
    holder.rollback().unwrap();
    backend.execute("ALTER TABLE t ADD COLUMN x int").unwrap();
}

const SECRET: &str = "hunter2-secret";

/// A connect error names host:port, never the password, and comes quickly.
#[track_caller]
fn assert_connect_error(url: &str, host_port: &str) {
    let started = Instant::now();
    let error = match open_with(url, &settings("pygrate")) {
        Ok(_) => panic!("connecting to {url} succeeded"),
        Err(e) => e,
    };
    let text = error.to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}: {text}", started.elapsed());
    assert!(matches!(error, Error::Db { .. }) && error.exit_code() == 1, "{error:?}");
    assert!(text.contains(host_port), "{text:?} does not name {host_port}");
    assert!(!text.contains(SECRET) && !format!("{error:?}").contains(SECRET), "{text:?} shows the password");
    assert!(!text.contains('\n'), "{text:?} is not one line");
}

/// `url` with another user and password, and its host:port.
fn with_user(url: &str, user: &str, password: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
    let host_port = rest.split(['/', '?']).next().unwrap().to_string();
    (format!("{scheme}://{user}:{password}@{rest}"), host_port)
}

#[test]
fn postgres_connect_errors_hide_the_password() {
    assert_connect_error(&format!("postgres://app:{SECRET}@127.0.0.1:1/app?sslmode=disable"), "127.0.0.1:1");
    assert_connect_error(&format!("postgresql://app:{SECRET}@127.0.0.1:1/app"), "127.0.0.1:1");
    // A reachable server refusing us: trust authentication does not check
    // passwords, so ask for a role that does not exist.
    if let Some(db) = TestDb::create(Engine::Postgres) {
        let (url, host_port) = with_user(&db.url, "pygrate_no_such_role", SECRET);
        assert_connect_error(&url, &host_port);
    }
}

#[test]
fn mysql_connect_errors_hide_the_password() {
    assert_connect_error(&format!("mysql://app:{SECRET}@127.0.0.1:1/app"), "127.0.0.1:1");
    assert_connect_error(&format!("mariadb://app:{SECRET}@127.0.0.1:1/app?ssl-mode=DISABLED"), "127.0.0.1:1");
    if let Some(db) = TestDb::create(Engine::Mysql) {
        let (url, host_port) = with_user(&db.url, "pygrate_no_such_user", SECRET);
        assert_connect_error(&url, &host_port);
    }
}

/// A password that is also part of the server's words (here `e`) is masked
/// where it stands alone, and the words stay whole: `databas*** do***s not
/// ***xist` was unreadable and told the password.
#[test]
fn a_short_password_leaves_server_messages_whole() {
    for (engine, user, message) in [
        (Engine::Postgres, "pygrate_no_such_role", "role \"pygrate_no_such_role\" does not exist"),
        (Engine::Mysql, "pygrate_no_such_user", "Access denied for user 'pygrate_no_such_user'@"),
    ] {
        let Some(db) = TestDb::create(engine) else { continue };
        let (url, _) = with_user(&db.url, user, "e");
        let error = open_with(&url, &settings("pygrate")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(message), "{}: {error}", engine.name());
    }
}

/// libpq values the driver lacks are named with what it takes instead.
#[test]
fn unsupported_postgres_options_say_what_is_supported() {
    for (option, expected) in [
        ("sslmode=verify-full", "sslmode=verify-full is not supported; use disable, prefer, require"),
        (
            "target_session_attrs=primary",
            "target_session_attrs=primary is not supported; use any, read-write, read-only",
        ),
    ] {
        let error = open_with(&format!("postgres://u:pw@127.0.0.1:1/db?{option}"), &settings("pygrate")).err().unwrap();
        assert!(matches!(error, Error::Usage(_)), "{error:?}");
        assert!(error.to_string().contains(expected) && !error.to_string().contains("pw@"), "{error}");
    }
}

#[test]
fn bad_ssl_mode_is_a_usage_error() {
    let error = open_with("mysql://u:pw@127.0.0.1:1/db?ssl-mode=SOMETIMES", &settings("pygrate")).err().unwrap();
    assert!(matches!(error, Error::Usage(_)), "{error:?}");
    assert!(error.to_string().contains("SOMETIMES") && !error.to_string().contains("pw@"), "{error}");
}

#[test]
fn postgres_schema_holds_the_state_tables() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    let mut in_schema = settings("deploy");
    in_schema.schema = Some("ops".to_string());
    let mut backend = open(&db, &in_schema);
    assert_eq!(backend.read_state().unwrap(), None);
    backend.ensure_state_tables().unwrap();
    for table in ["ops.deploy_state", "ops.deploy_log", "ops.deploy_meta"] {
        assert!(db.table_exists(table), "{table} missing");
    }
    assert!(!db.table_exists("deploy_state"));
    backend.save_phase(&row("r", "v", Phase::Add, Status::Applied)).unwrap();
    assert_eq!(db.query_i64("SELECT count(*) FROM ops.deploy_state"), 1);
    // The same prefix in another schema is another set of tables, and another lock.
    let mut elsewhere = open(&db, &settings("deploy"));
    assert_eq!(elsewhere.read_state().unwrap(), None);
    assert!(backend.try_lock().unwrap());
    assert!(elsewhere.try_lock().unwrap());
}

/// `schema: Audit_E` beside a schema made by `CREATE SCHEMA Audit_E` (that
/// is, `audit_e`) is a mistake to point out, not a new schema to create; a
/// mixed-case schema that exists as written, or that nothing resembles, is used.
#[test]
fn postgres_schema_folded_to_lower_case_is_pointed_out() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    db.execute("CREATE SCHEMA Audit_E");
    let mut mixed = settings("pygrate");
    mixed.schema = Some("Audit_E".to_string());
    match open_with(&db.url, &mixed) {
        Err(Error::Usage(message)) => assert!(message.contains("write `schema: audit_e`"), "{message}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("connected"),
    }
    assert!(!db.table_exists("Audit_E.pygrate_state"));
    db.execute("CREATE SCHEMA \"Audit_E\"");
    let mut backend = open(&db, &mixed);
    backend.ensure_state_tables().unwrap();
    assert!(db.table_exists("Audit_E.pygrate_state"));
    let mut new = settings("pygrate");
    new.schema = Some("New_Ops".to_string());
    open(&db, &new).ensure_state_tables().unwrap();
    assert!(db.table_exists("New_Ops.pygrate_state"));
}

#[test]
fn postgres_concurrently_in_a_transaction_hints_no_transaction() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    db.execute("CREATE TABLE t (id int)");
    let mut backend = open(&db, &settings("pygrate"));
    assert!(backend.try_lock().unwrap());
    backend.begin().unwrap();
    let error = backend.execute("CREATE INDEX CONCURRENTLY t_id ON t (id)").unwrap_err();
    assert_eq!(error.code.as_deref(), Some("25001"));
    assert!(error.hint.as_deref().unwrap_or_default().contains("no-transaction"), "{error:?}");
    backend.rollback().unwrap();
    // Outside a transaction, with the session lock held, it completes.
    backend.execute("CREATE INDEX CONCURRENTLY t_id ON t (id)").unwrap();
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_indexes WHERE indexname = 't_id'"), 1);
}

#[test]
fn postgres_statement_timeout_applies() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    let mut timed = settings("pygrate");
    timed.timeouts =
        Timeouts { lock_timeout: Some(Duration::from_millis(1500)), statement_timeout: Some(Duration::from_secs(2)) };
    let mut backend = open(&db, &timed);
    backend.apply_timeouts(false).unwrap();
    let error = backend.execute("SELECT pg_sleep(5)").unwrap_err();
    assert_eq!(error.code.as_deref(), Some("57014"), "{error:?}");
    assert_eq!(error.conflict, None);
    // Within a transaction they end with it.
    backend.begin().unwrap();
    backend.apply_timeouts(true).unwrap();
    backend.commit().unwrap();
    backend.execute("SELECT pg_sleep(0.01)").unwrap();
}

/// Fails unless the session is (or, with `expect_tls` false, is not) encrypted.
const PG_ASSERT_TLS: &str =
    "DO $$ BEGIN IF (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) IS DISTINCT FROM {want} \
                             THEN RAISE EXCEPTION 'ssl is not {want}'; END IF; END $$";

#[test]
fn postgres_sslmode_is_honoured() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let mut plain = open_with(&format!("{}{sep}sslmode=disable", db.url), &settings("pygrate")).unwrap();
    plain.execute(&PG_ASSERT_TLS.replace("{want}", "false")).unwrap();
    let server_has_tls = db.query_strings("SHOW ssl") == vec![vec![Some("on".to_string())]];
    let required = open_with(&format!("{}{sep}sslmode=require", db.url), &settings("pygrate"));
    if server_has_tls {
        // The server's certificate is self-signed: `require` encrypts without verifying, like libpq.
        let mut required = required.unwrap();
        required.execute(&PG_ASSERT_TLS.replace("{want}", "true")).unwrap();
    } else {
        assert!(required.is_err());
    }
}

/// MySQL has no default database: without one the first state read failed
/// with error 1046 (exit 1) after connecting.
#[test]
fn mysql_url_without_a_database_is_a_usage_error() {
    let Some(db) = TestDb::create(Engine::Mysql) else { return };
    let (base, query) = db.url.split_once('?').map_or((db.url.as_str(), ""), |(b, q)| (b, q));
    let server = &base[..base.rfind('/').unwrap_or(base.len())];
    for url in [server.to_string(), format!("{server}/"), format!("{server}/?{query}")] {
        match open_with(&url, &settings("pygrate")) {
            Err(Error::Usage(message)) => assert!(message.contains("names no database"), "{url}: {message}"),
            Err(other) => panic!("{url}: {other}"),
            Ok(_) => panic!("{url}: connected"),
        }
    }
}

#[test]
fn mysql_ssl_mode_is_honoured() {
    let Some(db) = TestDb::create(Engine::Mysql) else { return };
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let server_has_tls = db.query_strings("SELECT @@have_ssl") == vec![vec![Some("YES".to_string())]];
    let mut disabled = open_with(&format!("{}{sep}ssl-mode=DISABLED", db.url), &settings("pygrate")).unwrap();
    disabled.ensure_state_tables().unwrap();
    // PREFERRED (the default) falls back to a plain connection.
    open_with(&format!("{}{sep}ssl-mode=preferred", db.url), &settings("pygrate")).unwrap();
    let required = open_with(&format!("{}{sep}ssl-mode=REQUIRED", db.url), &settings("pygrate"));
    match required {
        Ok(_) => assert!(server_has_tls),
        Err(e) => {
            assert!(!server_has_tls, "{e}");
            assert!(matches!(e, Error::Db { .. }) && e.to_string().contains("cannot connect to MySQL"), "{e}");
        }
    }
}

#[test]
fn every_engine_reads_back_the_same_state() {
    let mut odd = row("2026.02-ünïcødé", "v002-日本語", Phase::Drop, Status::RolledBack);
    odd.error = Some("it's a \"quoted\" \\ backslash; DROP TABLE x; --".to_string());
    let written = sorted(vec![row("2026.01", "v001", Phase::Add, Status::Running), odd]);
    for engine in Engine::ALL {
        let Some(db) = TestDb::create(engine) else { continue };
        let mut backend = open(&db, &settings("pygrate"));
        backend.ensure_state_tables().unwrap();
        for row in &written {
            backend.save_phase(row).unwrap();
        }
        assert_eq!(sorted(backend.read_state().unwrap().unwrap()), written, "{}", engine.name());
    }
}
